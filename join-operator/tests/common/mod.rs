//! Helpers of the end-to-end tests of the real `stream-join` binary: input
//! generation, runs that crash (abrupt exit or SIGKILL) or finish, strict
//! checks of the committed output folder, and the batch oracle.
#![allow(dead_code)] // every test binary uses a subset

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use join_operator::event::{CsvRecord, JoinedRow, LateEvent};
use join_operator::oracle::{self, OracleConfig, OracleResult};

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_stream-join")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A generated input: the two CSV files and `gen --json`'s summary.
pub struct Input {
    pub impressions: PathBuf,
    pub plays: PathBuf,
    pub summary: serde_json::Value,
}

impl Input {
    pub fn events(&self) -> u64 {
        self.summary["impressions"].as_u64().unwrap() + self.summary["plays"].as_u64().unwrap()
    }

    pub fn late_generated(&self) -> u64 {
        self.summary["late_impressions"].as_u64().unwrap()
            + self.summary["late_plays"].as_u64().unwrap()
    }

    pub fn oracle(&self, allowed_lateness_ms: i64) -> OracleResult {
        oracle::run(
            &self.impressions,
            &self.plays,
            OracleConfig {
                out_of_order_ms: 5000,
                allowed_lateness_ms,
            },
        )
        .unwrap()
    }
}

/// `stream-join gen` into `dir`.
pub fn gen(dir: &Path, seed: u64, impressions: u64, late_fraction: f64) -> Input {
    gen_with(
        dir,
        seed,
        impressions,
        &["--late-fraction", &late_fraction.to_string()],
    )
}

/// A workload denser in event time: `impressions` over `span_ms`.
pub fn gen_dense(dir: &Path, seed: u64, impressions: u64, span_ms: i64) -> Input {
    gen_with(dir, seed, impressions, &["--span-ms", &span_ms.to_string()])
}

fn gen_with(dir: &Path, seed: u64, impressions: u64, extra: &[&str]) -> Input {
    let out = Command::new(exe())
        .args(["gen", "--json", "--seed", &seed.to_string()])
        .args(["--impressions", &impressions.to_string()])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "gen: {}", text(&out.stderr));
    Input {
        impressions: dir.join("impressions.csv"),
        plays: dir.join("plays.csv"),
        summary: serde_json::from_slice(&out.stdout).unwrap(),
    }
}

/// One `stream-join run` command line, rerun identically after each crash.
#[derive(Clone)]
pub struct Job {
    pub impressions: PathBuf,
    pub plays: PathBuf,
    pub output: PathBuf,
    pub checkpoints: String,
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Job {
    pub fn new(input: &Input, output: &Path, checkpoints: &str) -> Self {
        Job {
            impressions: input.impressions.clone(),
            plays: input.plays.clone(),
            output: output.to_path_buf(),
            checkpoints: checkpoints.to_string(),
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl ToString) -> Self {
        self.extra.push(a.to_string());
        self
    }

    pub fn args<S: ToString>(mut self, a: &[S]) -> Self {
        self.extra.extend(a.iter().map(|s| s.to_string()));
        self
    }

    pub fn command(&self, more: &[String]) -> Command {
        let mut c = Command::new(exe());
        c.arg("run")
            .arg("--impressions")
            .arg(&self.impressions)
            .arg("--plays")
            .arg(&self.plays)
            .arg("--output")
            .arg(&self.output)
            .arg("--checkpoints")
            .arg(&self.checkpoints)
            .args(&self.extra)
            .args(more);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs to the end; panics unless it exits 0. Returns the summary.
    pub fn run_ok(&self) -> serde_json::Value {
        let out = self.command(&[]).output().unwrap();
        assert!(
            out.status.success(),
            "run {:?} failed ({}): {}",
            self.extra,
            out.status,
            text(&out.stderr)
        );
        summary_of(&out)
    }

    pub fn output(&self, more: &[&str]) -> Output {
        let more: Vec<String> = more.iter().map(|s| s.to_string()).collect();
        self.command(&more).output().unwrap()
    }

    /// One attempt with a planned crash.
    pub fn attempt(&self, crash: Crash) -> Outcome {
        match crash {
            Crash::StopAfter(n) => {
                let out = self.output(&["--stop-after-events", &n.to_string()]);
                outcome(&out, "--stop-after-events")
            }
            Crash::AfterCommit(n) => {
                let out = self.output(&["--stop-after-checkpoints", &n.to_string()]);
                outcome(&out, "--stop-after-checkpoints")
            }
            Crash::KillAfter(delay) => {
                let deadline = Instant::now() + delay;
                kill_when(self.spawn(&[]), || Instant::now() >= deadline)
            }
            Crash::AfterNextCheckpoint => {
                let before = self.completed_checkpoints().len();
                kill_when(self.spawn(&[]), || {
                    self.completed_checkpoints().len() > before
                })
            }
        }
    }

    /// Ids of the complete checkpoints under the job's URL: a local folder,
    /// or `s3://` on the S3-compatible server of `AWS_ENDPOINT_URL`.
    pub fn completed_checkpoints(&self) -> Vec<u64> {
        match self.checkpoints.strip_prefix("s3://") {
            Some(rest) => {
                let endpoint = self
                    .env
                    .iter()
                    .find(|(k, _)| k == "AWS_ENDPOINT_URL")
                    .map(|(_, v)| v.as_str())
                    .expect("AWS_ENDPOINT_URL in the job's env");
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                s3_completed_checkpoints(endpoint, bucket, prefix)
            }
            None => completed_checkpoints(Path::new(&self.checkpoints)),
        }
    }

    pub fn spawn(&self, more: &[String]) -> Child {
        self.command(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// How an attempt is made to crash.
#[derive(Debug, Clone, Copy)]
pub enum Crash {
    /// `--stop-after-events N`: exit(3) after N events of this run.
    StopAfter(u64),
    /// `--stop-after-checkpoints N`: exit(3) once this run's Nth checkpoint
    /// is committed, before its output is published.
    AfterCommit(u64),
    /// SIGKILL the process after this wall-clock delay.
    KillAfter(Duration),
    /// SIGKILL the process as soon as a new checkpoint is complete in its
    /// local checkpoint folder (before or while its output is published).
    AfterNextCheckpoint,
}

#[derive(Debug)]
pub enum Outcome {
    Crashed,
    Finished(serde_json::Value),
}

fn summary_of(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("run summary is not JSON ({e}): {stdout:?}"))
}

/// `--stop-after-events` exits that died of SIGSEGV after announcing the
/// stop (seen before 2cf320d: `process::exit` ran C++ static destructors
/// while worker threads still used RocksDB). Tolerated and counted by the
/// crash tests, which test what a crash leaves behind; `job_e2e` asserts
/// exit code 3.
pub static SEGV_AFTER_STOP: AtomicUsize = AtomicUsize::new(0);

fn outcome(out: &Output, how: &str) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let stopping = text(&out.stderr).contains("stopping abruptly");
    match (out.status.code(), out.status.signal()) {
        (Some(0), _) => Outcome::Finished(summary_of(out)),
        (Some(3), _) if stopping => Outcome::Crashed,
        (_, Some(9)) => Outcome::Crashed,
        (_, Some(11)) if stopping => {
            SEGV_AFTER_STOP.fetch_add(1, Ordering::Relaxed);
            Outcome::Crashed
        }
        _ => panic!(
            "run ({how}) failed unexpectedly ({}): {}",
            out.status,
            text(&out.stderr)
        ),
    }
}

/// SIGKILLs the child as soon as `now()` holds, unless it exits by itself.
pub fn kill_when(mut child: Child, mut now: impl FnMut() -> bool) -> Outcome {
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if now() {
            // Child::kill is SIGKILL on Unix: no destructor, no flush runs.
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let out = child.wait_with_output().unwrap();
    outcome(&out, "SIGKILL")
}

/// Ids of the complete checkpoints (a `_manifest` of kind `checkpoint`) in
/// a local job folder.
pub fn completed_checkpoints(job_folder: &Path) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(job_folder.join("checkpoints")) else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| fs::read(e.path().join("_manifest")).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|m| m["kind"] == "checkpoint")
        .filter_map(|m| m["id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (moto accepts unsigned requests);
/// returns the body.
pub fn http_get(endpoint: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => String::new(),
    }
}

/// Ids of the complete checkpoints of a job under `s3://bucket/prefix`:
/// `chk-N/_manifest` objects that are checkpoints, not fences. Listing only
/// (moto refuses unsigned object reads), so the record's size tells them
/// apart: a fence is under 200 bytes, a checkpoint's manifest carries its
/// file list and every state's schema history (kilobytes). A v2 checkpoint
/// has no private files beside its manifest, so they cannot tell.
pub fn s3_completed_checkpoints(endpoint: &str, bucket: &str, prefix: &str) -> Vec<u64> {
    let listing = http_get(
        endpoint,
        &format!("/{bucket}?list-type=2&prefix={prefix}/checkpoints/chk-"),
    );
    let field = |entry: &str, tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = entry.find(&open)? + open.len();
        let len = entry[start..].find(&close)?;
        Some(entry[start..start + len].to_string())
    };
    let mut ids = Vec::new();
    for entry in listing.split("<Contents>").skip(1) {
        let (Some(key), Some(size)) = (field(entry, "Key"), field(entry, "Size")) else {
            continue;
        };
        let Some((chk, file)) = key
            .rsplit_once("/checkpoints/chk-")
            .and_then(|(_, rest)| rest.split_once('/'))
        else {
            continue;
        };
        let (Ok(id), Ok(size)) = (chk.parse::<u64>(), size.parse::<u64>()) else {
            continue;
        };
        if file == "_manifest" && size > 400 {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids
}

/// `stream-join validate`; returns the output (exit code and report).
pub fn validate(input: &Input, output: &Path, extra: &[&str]) -> Output {
    Command::new(exe())
        .arg("validate")
        .arg("--impressions")
        .arg(&input.impressions)
        .arg("--plays")
        .arg(&input.plays)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .unwrap()
}

/// Asserts `validate` exits 0 and returns its JSON report.
pub fn assert_valid(input: &Input, output: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = validate(input, output, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "validate found differences: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the committed output folder holds, read strictly.
#[derive(Debug, Default)]
pub struct Committed {
    pub rows: Vec<JoinedRow>,
    pub late: Vec<LateEvent>,
    pub files: usize,
}

/// Reads every file `DIR/*.csv` (and `DIR/late/*.csv`) as a shell glob would
/// see them, and asserts that each is a whole committed part file: a
/// committed name (never an in-progress one), the header, whole lines each
/// ending in `\n` that parse.
pub fn read_committed(dir: &Path) -> Committed {
    let (rows, files) = read_dir_strict::<JoinedRow>(dir);
    let (late, late_files) = read_dir_strict::<LateEvent>(&dir.join("late"));
    Committed {
        rows,
        late,
        files: files + late_files,
    }
}

fn read_dir_strict<R: CsvRecord>(dir: &Path) -> (Vec<R>, usize) {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return (out, 0);
    };
    let mut files = 0;
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".csv") {
            continue; // what `DIR/*.csv` does not match
        }
        assert!(
            is_committed_name(&name),
            "{}: {name} matches *.csv but is not a committed part name",
            dir.display()
        );
        let bytes = fs::read(entry.path()).unwrap();
        let header = format!("{}\n", R::header());
        assert!(
            bytes.starts_with(header.as_bytes()),
            "{name}: does not start with the header"
        );
        assert!(
            bytes.ends_with(b"\n"),
            "{name}: partial file (last line has no end)"
        );
        for (i, line) in bytes[header.len()..]
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
        {
            let r = R::parse_csv(line)
                .unwrap_or_else(|e| panic!("{name}: line {} does not parse: {e}", i + 2));
            out.push(r);
        }
        files += 1;
    }
    (out, files)
}

/// `part-<instance>-<checkpoint id, 8 digits>-<seq>.csv`.
fn is_committed_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_prefix("part-")
        .and_then(|s| s.strip_suffix(".csv"))
    else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3 && parts.iter().all(|p| digits(p)) && parts[1].len() == 8
}

fn counts<T: Ord + Clone>(v: &[T]) -> BTreeMap<T, u64> {
    let mut m = BTreeMap::new();
    for x in v {
        *m.entry(x.clone()).or_insert(0) += 1;
    }
    m
}

/// Asserts that what is committed so far is a sub-multiset of the expected
/// rows and late events: nothing extra, nothing doubled, at any moment.
pub fn assert_no_extra_or_doubled(c: &Committed, oracle: &OracleResult) {
    let expected = counts(&oracle.expected);
    for (row, n) in counts(&c.rows) {
        let e = expected.get(&row).copied().unwrap_or(0);
        assert!(
            n <= e,
            "committed row {row:?} appears {n} times, expected {e}"
        );
    }
    let id = |e: &LateEvent| (e.stream, e.event_id);
    let expected_late = counts(&oracle.late_events.iter().map(id).collect::<Vec<_>>());
    for (ev, n) in counts(&c.late.iter().map(id).collect::<Vec<_>>()) {
        let e = expected_late.get(&ev).copied().unwrap_or(0);
        assert!(
            n <= e,
            "late event {ev:?} committed {n} times, expected {e}"
        );
    }
}

/// Asserts the committed output is exactly the oracle's (independently of
/// `validate`): same rows and same late events as multisets.
pub fn assert_exact(c: &Committed, oracle: &OracleResult) {
    let mut rows = c.rows.clone();
    rows.sort_unstable();
    assert_eq!(rows.len(), oracle.expected.len(), "row count");
    assert!(
        rows == oracle.expected,
        "committed rows differ from the batch join"
    );
    let id = |e: &LateEvent| (e.stream, e.event_id);
    let mut late: Vec<_> = c.late.iter().map(id).collect();
    let mut want: Vec<_> = oracle.late_events.iter().map(id).collect();
    late.sort_unstable();
    want.sort_unstable();
    assert_eq!(
        late, want,
        "late side output differs from the oracle's late events"
    );
}

/// Checkpoint folders `chk-N` without a `_manifest` in a local job folder:
/// an upload the crash interrupted.
pub fn interrupted_uploads(checkpoints: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(checkpoints.join("checkpoints")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("chk-"))
        .filter(|e| !e.path().join("_manifest").exists())
        // Folders emptied by retention stay behind on a local file system.
        .filter(|e| fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
