//! Crash-and-restore of the real `stream-join run` on RocksDB state with
//! checkpoints to a local folder: killed at random moments (abrupt exit
//! after N events, SIGKILL after a random delay, exits right after a
//! checkpoint was triggered so that its upload is in flight), rerun with the
//! same command each time until a run exits 0. The committed output is then
//! exactly the batch join, and at every moment in between it was a
//! sub-multiset of it in whole, committed part files.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const IMPRESSIONS: u64 = 80_000;
/// A multiple of the job's tick (1024 events): a checkpoint is triggered on
/// exactly the event counts `k * INTERVAL` of a run.
const INTERVAL: u64 = 4096;
const MIN_CRASHES: usize = 20;
/// Attempts of one round without finishing before the test gives up.
const MAX_ATTEMPTS: usize = 150;

fn seed() -> u64 {
    std::env::var("E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024)
}

#[test]
fn killed_at_random_moments_commits_exactly_the_batch_join() {
    crash_rounds(&[], MIN_CRASHES);
}

/// The window in front of RocksDB (`--join-state window`) far smaller than
/// the join's state: written out whole again and again, keys read back from
/// RocksDB, and restores that start with an unknown window.
#[test]
fn killed_at_random_moments_with_a_window_that_spills() {
    let summary = crash_rounds(&["--join-state", "window", "--window-memory-mb", "1"], 8);
    assert!(summary["window_spills"].as_u64() > Some(0), "{summary}");
    assert!(summary["keys_loaded"].as_u64() > Some(0), "{summary}");
}

/// Bucketed state (the default) on a workload dense in event time (two
/// hours instead of a day: the live state is many times the 1 MiB budget):
/// runs spill to disk, buckets expire whole, checkpoints carry runs and
/// restores reopen them, across kills at random moments.
#[test]
fn killed_at_random_moments_on_a_dense_workload_with_buckets_that_spill_and_expire() {
    let summary = crash_rounds_on(
        |dir| gen_dense(dir, 11, IMPRESSIONS, 7_200_000),
        &["--window-memory-mb", "1"],
        8,
    );
    assert!(summary["bucket_spills"].as_u64() > Some(0), "{summary}");
    assert!(summary["run_probes"].as_u64() > Some(0), "{summary}");
    assert!(summary["buckets_expired"].as_u64() > Some(0), "{summary}");
}

/// Every event through RocksDB: probes are range scans, cleanup by timers.
#[test]
fn killed_at_random_moments_with_every_event_in_rocksdb() {
    let summary = crash_rounds(&["--window-memory-mb", "0"], 8);
    assert_eq!(summary["entries_persisted"].as_u64(), Some(0), "{summary}");
    assert!(summary["timers_fired"].as_u64() > Some(0), "{summary}");
}

/// Kills the job at random moments until `min_crashes` happened, each round
/// rerun to the end; returns the summary of the uninterrupted reference run.
fn crash_rounds(extra: &[&str], min_crashes: usize) -> serde_json::Value {
    crash_rounds_on(|dir| gen(dir, 7, IMPRESSIONS, 0.0), extra, min_crashes)
}

fn crash_rounds_on(
    input: impl FnOnce(&std::path::Path) -> Input,
    extra: &[&str],
    min_crashes: usize,
) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let input = input(&tmp.path().join("in"));
    let oracle = input.oracle(0);
    assert!(oracle.expected.len() > 1000, "the input joins");
    assert!(oracle.late_events.is_empty());
    let events = input.events();

    // An uninterrupted run: the output to reproduce, and the wall-clock scale
    // of the random kill delays (not asserted on).
    let reference = Job::new(
        &input,
        &tmp.path().join("ref-out"),
        tmp.path().join("ref-ckpt").to_str().unwrap(),
    )
    .args(&["--checkpoint-interval-events", &INTERVAL.to_string()])
    .args(extra);
    let started = Instant::now();
    let summary = reference.run_ok();
    let full = started.elapsed();
    assert_eq!(summary["events"].as_u64(), Some(events));
    let reference_out = read_committed(&reference.output);
    assert_exact(&reference_out, &oracle);

    let seed = seed();
    eprintln!("seed {seed} (E2E_SEED), uninterrupted run {full:?}, {events} events");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut crashes = 0;
    let mut kinds = [0usize; 5];
    let mut interrupted: HashSet<(usize, String)> = HashSet::new();
    let mut round = 0;
    while crashes < min_crashes || kinds.contains(&0) {
        round += 1;
        let ckpt = tmp.path().join(format!("ckpt-{round}"));
        let job = Job::new(
            &input,
            &tmp.path().join(format!("out-{round}")),
            ckpt.to_str().unwrap(),
        )
        .args(&["--checkpoint-interval-events", &INTERVAL.to_string()])
        .args(extra);
        let mut committed_before = 0;
        let mut attempts = 0;
        let last = loop {
            attempts += 1;
            assert!(
                attempts <= MAX_ATTEMPTS,
                "round {round}: no run finished in {MAX_ATTEMPTS} attempts"
            );
            let (kind, crash) = match rng.gen_range(0..5) {
                // Right after a checkpoint was triggered: its upload runs.
                0 => (0, Crash::StopAfter(INTERVAL * rng.gen_range(1..=3))),
                1 => (1, Crash::StopAfter(rng.gen_range(1..events / 5))),
                // From the start (restore, opening RocksDB) to well into the run.
                2 => (2, Crash::KillAfter(full.mul_f64(rng.gen_range(0.0..0.4)))),
                // As soon as a checkpoint is complete, before or while its
                // output files are published.
                3 => (3, Crash::AfterNextCheckpoint),
                // Right after a commit, before any output is published.
                _ => (4, Crash::AfterCommit(rng.gen_range(1..=3))),
            };
            match job.attempt(crash) {
                Outcome::Crashed => {
                    crashes += 1;
                    kinds[kind] += 1;
                    for chk in interrupted_uploads(&ckpt) {
                        interrupted.insert((round, chk));
                    }
                    let now = read_committed(&job.output);
                    assert_no_extra_or_doubled(&now, &oracle);
                    assert!(
                        now.rows.len() >= committed_before,
                        "committed rows went from {committed_before} down to {} after {crash:?}",
                        now.rows.len()
                    );
                    committed_before = now.rows.len();
                }
                Outcome::Finished(summary) => break summary,
            }
        };
        assert_eq!(
            last["events_before_restore"].as_u64().unwrap() + last["events"].as_u64().unwrap(),
            events,
            "the finishing run resumed at the checkpoint's offsets: {last}"
        );
        let report = assert_valid(&input, &job.output, &[]);
        assert_eq!(
            report["rows"]["found"].as_u64(),
            Some(oracle.expected.len() as u64)
        );
        let out = read_committed(&job.output);
        assert_exact(&out, &oracle);
        eprintln!(
            "round {round}: {attempts} attempts, finished after resuming from {} ({} events before)",
            last["restored_from"], last["events_before_restore"]
        );
    }
    eprintln!(
        "{crashes} crashes in {round} round(s): {} right after a checkpoint trigger, {} after N events, \
         {} SIGKILL after a delay, {} SIGKILL once a checkpoint completed, {} exit right after a commit; \
         {} left an upload visibly unfinished",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4],
        interrupted.len()
    );
    let segv = SEGV_AFTER_STOP.load(std::sync::atomic::Ordering::Relaxed);
    if segv > 0 {
        eprintln!(
            "note: {segv} --stop-after-events exits died of SIGSEGV instead of exit 3 \
             (job_e2e::stop_after_events_exits_with_code_3)"
        );
    }
    assert!(kinds.iter().all(|&k| k > 0), "every kind of crash happened");
    summary
}

/// A checkpoint whose upload is in flight when the process dies must not be
/// restored from, and its output must not be committed: rerunning resumes
/// from the previous complete checkpoint and still commits each row once.
#[test]
fn exit_during_each_of_the_first_uploads_then_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 3, 30_000, 0.0);
    let oracle = input.oracle(0);
    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&["--checkpoint-interval-events", &INTERVAL.to_string()]);
    // Each attempt dies right after triggering its k-th checkpoint.
    for k in 1..=4 {
        match job.attempt(Crash::StopAfter(INTERVAL * k)) {
            Outcome::Crashed => {}
            Outcome::Finished(s) => panic!("finished before the crash: {s}"),
        }
        assert_no_extra_or_doubled(&read_committed(&job.output), &oracle);
    }
    // Then killed once a checkpoint is complete, so the last run resumes.
    match job.attempt(Crash::AfterNextCheckpoint) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before a checkpoint completed: {s}"),
    }
    assert_no_extra_or_doubled(&read_committed(&job.output), &oracle);
    let summary = job.run_ok();
    assert!(
        summary["restored_from"].is_u64(),
        "resumed from a checkpoint: {summary}"
    );
    assert_valid(&input, &job.output, &[]);
    assert_exact(&read_committed(&job.output), &oracle);
    // Rerunning a finished job changes nothing.
    job.run_ok();
    assert_exact(&read_committed(&job.output), &oracle);
}
