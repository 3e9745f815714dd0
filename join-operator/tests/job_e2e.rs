//! `stream-join run` end to end: refusals of bad input (exit 2, one line
//! naming what and where, no panic) and crash-and-restore with checkpoints on
//! S3 (moto) when `S3_TEST_ENDPOINT` is set.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Exit 2, exactly one line on stderr, no panic; returns the line.
fn assert_one_line_error(out: &std::process::Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit 2 expected: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    stderr.trim_end().to_string()
}

fn small_input(dir: &Path) -> Input {
    gen(dir, 5, 5_000, 0.0)
}

#[test]
fn missing_input_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    let mut job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    );
    job.plays = tmp.path().join("no-such-plays.csv");
    let line = assert_one_line_error(&job.output(&[]));
    assert!(line.contains("no-such-plays.csv"), "{line}");
}

/// A second process on the output folder of a running job (a supervisor's
/// restart while the old process still runs) refuses at once, naming the
/// holder's pid, instead of removing the running job's local state.
#[test]
fn a_second_process_on_the_same_output_refuses_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    // The first job blocks on a FIFO nobody writes to, holding the lock.
    let fifo = tmp.path().join("impressions.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let mut first = Job::new(&input, &out, ckpt.to_str().unwrap());
    first.impressions = fifo.clone();
    let mut running = first.spawn(&[]);
    let lock = out.join(".job").join("LOCK-all");
    let pid = running.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_to_string(&lock).unwrap_or_default() != pid {
        assert!(
            std::time::Instant::now() < deadline,
            "the first job never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = Job::new(&input, &out, ckpt.to_str().unwrap());
    let line = assert_one_line_error(&second.output(&[]));
    assert!(line.contains(&pid) && line.contains("in use"), "{line}");
    running.kill().unwrap();
    running.wait().unwrap();
    // Once the holder is gone, the same command runs.
    let summary = second.run_ok();
    assert!(summary["events"].as_u64() > Some(0), "{summary}");
}

#[test]
fn malformed_csv_line_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    let text_in = fs::read_to_string(&input.impressions).unwrap();
    let mut lines: Vec<String> = text_in.lines().map(str::to_string).collect();
    // Line 700 of the file (the header is line 1): a ts_ms that is not a number.
    let mut fields: Vec<String> = lines[699].split(',').map(str::to_string).collect();
    fields[3] = "12x4".into();
    lines[699] = fields.join(",");
    let bad = tmp.path().join("bad-impressions.csv");
    fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let mut job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    );
    job.impressions = bad;
    let line = assert_one_line_error(&job.output(&[]));
    assert!(
        line.contains("bad-impressions.csv"),
        "names the file: {line}"
    );
    assert!(line.contains("line 700"), "names the line: {line}");
    assert!(line.contains("ts_ms"), "names the column: {line}");
}

/// A bad line deep in the input, met while the workers are busy and
/// checkpoints are running, is refused just as cleanly (exit 2, one line),
/// every time: the process must not die of a signal on its way out.
#[test]
fn malformed_line_deep_in_the_input_exits_2_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 8, 80_000, 0.0);
    let text_in = fs::read_to_string(&input.impressions).unwrap();
    let mut lines: Vec<&str> = text_in.lines().collect();
    let bad_line = lines[60_000].replacen(',', ",x", 2);
    lines[60_000] = &bad_line;
    let bad = tmp.path().join("bad-deep.csv");
    fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let mut exits = Vec::new();
    for attempt in 0..12 {
        let mut job = Job::new(
            &input,
            &tmp.path().join(format!("out-{attempt}")),
            tmp.path().join(format!("ckpt-{attempt}")).to_str().unwrap(),
        )
        .args(&["--checkpoint-interval-events", "4096"]);
        job.impressions = bad.clone();
        let out = job.output(&[]);
        exits.push(out.status.to_string());
        if out.status.code() == Some(2) {
            let line = assert_one_line_error(&out);
            assert!(
                line.contains("bad-deep.csv") && line.contains("line 60001"),
                "{line}"
            );
        }
    }
    assert!(
        exits.iter().all(|e| e == "exit status: 2"),
        "every attempt exits 2: {exits:?}"
    );
}

/// `--stop-after-events N` exits with code 3, also when it stops while a
/// checkpoint upload and the workers are running (N a multiple of the
/// checkpoint interval), and not by dying of a signal.
#[test]
fn stop_after_events_exits_with_code_3() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 9, 30_000, 0.0);
    let mut exits = Vec::new();
    for attempt in 0..10u64 {
        let job = Job::new(
            &input,
            &tmp.path().join(format!("out-{attempt}")),
            tmp.path().join(format!("ckpt-{attempt}")).to_str().unwrap(),
        )
        .args(&["--checkpoint-interval-events", "4096"]);
        let n = 4096 * (1 + attempt % 3);
        let out = job.output(&["--stop-after-events", &n.to_string()]);
        exits.push(out.status.to_string());
    }
    assert!(
        exits.iter().all(|e| e == "exit status: 3"),
        "every --stop-after-events run exits 3: {exits:?}"
    );
}

#[test]
fn bad_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    let body = fs::read_to_string(&input.plays).unwrap();
    let bad = tmp.path().join("plays-bad-header.csv");
    fs::write(&bad, body.replacen("play_id", "id", 1)).unwrap();
    let mut job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    );
    job.plays = bad;
    let line = assert_one_line_error(&job.output(&[]));
    assert!(line.contains("plays-bad-header.csv"), "{line}");
}

#[test]
fn unwritable_checkpoint_location_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    // A folder below a regular file can never be created, even by root.
    let file = tmp.path().join("a-file");
    fs::write(&file, "not a folder").unwrap();
    let url = file.join("ckpt");
    let job = Job::new(&input, &tmp.path().join("out"), url.to_str().unwrap());
    let line = assert_one_line_error(&job.output(&[]));
    assert!(line.contains("a-file"), "names the location: {line}");
    // Nothing was committed.
    assert_eq!(read_committed(&job.output).files, 0);
}

#[test]
fn unsupported_checkpoint_url_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    let job = Job::new(&input, &tmp.path().join("out"), "ftp://example/ckpt");
    let line = assert_one_line_error(&job.output(&[]));
    assert!(line.contains("ftp"), "{line}");
}

#[test]
fn bad_parallelism_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = small_input(&tmp.path().join("in"));
    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    );
    let line = assert_one_line_error(&job.output(&["--parallelism", "0"]));
    assert!(line.contains("--parallelism"), "{line}");
    let line = assert_one_line_error(&job.output(&["--parallelism", "2", "--index", "2"]));
    assert!(line.contains("--index"), "{line}");
}

/// Crash-and-restore with checkpoints on S3 (moto): SIGKILL and abrupt exits,
/// rerun until it finishes, output exactly the batch join.
#[test]
fn crash_and_restore_with_checkpoints_on_s3() {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        eprintln!("skipped: S3_TEST_ENDPOINT unset");
        return;
    };
    let bucket = format!("stream-join-e2e-{}", std::process::id());
    // moto creates buckets with a plain PUT.
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import urllib.request as u; u.urlopen(u.Request('{endpoint}/{bucket}', method='PUT'))"
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "bucket {bucket} created");

    let tmp = tempfile::tempdir().unwrap();
    // Long enough to outlast a checkpoint: barriers cost microseconds, and the
    // job must still be running when one completes on S3.
    let input = gen(&tmp.path().join("in"), 61, 300_000, 0.0);
    let oracle = input.oracle(0);
    let mut job = Job::new(
        &input,
        &tmp.path().join("out"),
        &format!("s3://{bucket}/jobs/join"),
    )
    .args(&["--checkpoint-interval-events", "4096"]);
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        job.env.push((k.to_string(), v.to_string()));
    }
    // An abrupt exit while the first upload runs, an abrupt exit right
    // after a checkpoint is committed on S3 (deterministic: polling S3 for
    // it raced a job whose barriers take microseconds), then a SIGKILL at a
    // random moment.
    for crash in [Crash::StopAfter(4096), Crash::AfterCommit(1)] {
        if let Outcome::Finished(s) = job.attempt(crash) {
            panic!("finished before the crash {crash:?}: {s}");
        }
        assert_no_extra_or_doubled(&read_committed(&job.output), &oracle);
    }
    assert!(!job.completed_checkpoints().is_empty());
    let killed = job.attempt(Crash::KillAfter(std::time::Duration::from_millis(300)));
    eprintln!("SIGKILL after 300 ms: {killed:?}");
    assert_no_extra_or_doubled(&read_committed(&job.output), &oracle);
    let summary = job.run_ok();
    assert!(summary["restored_from"].is_u64(), "{summary}");
    assert_valid(&input, &job.output, &[]);
    assert_exact(&read_committed(&job.output), &oracle);
}
