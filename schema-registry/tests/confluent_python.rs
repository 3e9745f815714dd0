//! Drives the `schema-registry serve` binary with confluent-kafka's Python
//! SchemaRegistryClient. Skips (with a notice) when python3 lacks it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn has_client() -> bool {
    Command::new("python3")
        .args(["-c", "import confluent_kafka.schema_registry"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn confluent_kafka_client_drives_the_server() {
    if !has_client() {
        println!("SKIPPED: python3 cannot import confluent_kafka.schema_registry (pip install 'confluent-kafka[schemaregistry]')");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--storage"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    // Resolved at run time: a test binary built from another checkout that
    // shares the target directory must still find this checkout's script
    // (cargo runs tests from the package root).
    let script = std::env::current_dir()
        .unwrap()
        .join("tests/python/confluent_client_e2e.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&url)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        out.status.success(),
        "python client failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The registry is durable: the folder holds what the client left.
    let reg = schema_registry::open_registry(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(
        reg.subjects(false).unwrap(),
        vec!["plays-value".to_string()]
    );
}
