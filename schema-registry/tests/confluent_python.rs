//! Drives the `schema-registry serve` binary with confluent-kafka's Python
//! SchemaRegistryClient. Skips (with a notice) when python3 lacks it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn has_client() -> bool {
    Command::new("python3")
        .args(["-c", "import confluent_kafka.schema_registry"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the server on a free port over `dir`; returns it and its URL.
fn start_server(dir: &std::path::Path) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_schema-registry"))
        .args(["serve", "--addr", "127.0.0.1:0", "--storage"])
        .arg(dir)
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
    (server, url)
}

/// Runs one script of `tests/python` against a fresh server over `dir`.
fn run_script(dir: &std::path::Path, script: &str) -> Output {
    let (mut server, url) = start_server(dir);
    // Resolved at run time: a test binary built from another checkout that
    // shares the target directory must still find this checkout's script
    // (cargo runs tests from the package root).
    let script = std::env::current_dir()
        .unwrap()
        .join("tests/python")
        .join(script);
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
    out
}

#[test]
fn confluent_kafka_client_drives_the_server() {
    if !has_client() {
        println!("SKIPPED: python3 cannot import confluent_kafka.schema_registry (pip install 'confluent-kafka[schemaregistry]')");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run_script(dir.path(), "confluent_client_e2e.py");
    // The registry is durable: the folder holds what the client left.
    let reg = schema_registry::open_registry(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(
        reg.subjects(false).unwrap(),
        vec!["plays-value".to_string()]
    );
}

#[test]
fn confluent_kafka_client_uses_schema_references() {
    if !has_client() {
        println!("SKIPPED: python3 cannot import confluent_kafka.schema_registry (pip install 'confluent-kafka[schemaregistry]')");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_script(dir.path(), "confluent_references_e2e.py");
    // Say so when the serializer half was skipped (fastavro missing).
    print!("{}", String::from_utf8_lossy(&out.stdout));
    // What the client registered resolves from the folder: the referencing
    // schema is self-contained once loaded, its references kept.
    let reg = schema_registry::open_registry(dir.path().to_str().unwrap()).unwrap();
    let user = reg
        .version(
            "user-value",
            schema_registry::VersionSelector::Number(2),
            false,
        )
        .unwrap();
    assert_eq!(
        user.schema.references(),
        [schema_registry::SchemaReference {
            name: "com.example.Address".into(),
            subject: "address-value".into(),
            version: 2
        }]
    );
    assert!(user.schema.json().contains(r#""name":"country""#));
    assert!(!user
        .schema
        .registered_json()
        .contains(r#""name":"country""#));
}
