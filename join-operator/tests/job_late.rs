//! Late data: input generated with a late fraction; the job's late side
//! output (`DIR/late/*.csv`) lists exactly the late events of the oracle's
//! replay, and the joined output is the batch join minus what those late
//! events would have produced; with an allowed lateness, late events within
//! it are joined. Each run is crashed once part way, so the restored
//! watermarks decide lateness as an uninterrupted run would.

mod common;

use common::*;
use join_operator::event::LateReason;

const INTERVAL: &str = "4096";

/// Runs with one crash part way (an abrupt exit after half the events, then
/// a SIGKILL once a checkpoint is complete); returns the finished run's summary.
fn run_with_a_crash(job: &Job, events: u64) -> serde_json::Value {
    match job.attempt(Crash::StopAfter(events / 2)) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before the crash: {s}"),
    }
    match job.attempt(Crash::AfterNextCheckpoint) {
        Outcome::Crashed => {}
        Outcome::Finished(s) => panic!("finished before the crash: {s}"),
    }
    let summary = job.run_ok();
    assert!(summary["restored_from"].is_u64(), "{summary}");
    summary
}

#[test]
fn late_side_output_lists_exactly_the_late_events() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 31, 40_000, 0.02);
    let generated = input.late_generated();
    assert!(
        generated > 100,
        "the generator made late events: {}",
        input.summary
    );
    let oracle = input.oracle(0);
    assert!(!oracle.late_events.is_empty() && !oracle.late_rows.is_empty());

    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&["--checkpoint-interval-events", INTERVAL]);
    let summary = run_with_a_crash(&job, input.events());

    let report = assert_valid(&input, &job.output, &[]);
    assert_eq!(report["late"]["found"], report["late"]["expected"]);
    assert!(report["late"]["found"].as_u64() > Some(0));
    assert!(
        report["rows_of_late_events"].as_u64() > Some(0),
        "late events would have joined: the equality above left those rows out"
    );
    let committed = read_committed(&job.output);
    assert_exact(&committed, &oracle);
    // The finishing run's summary counts its own late events only (the
    // events before the restore are counted in `events_before_restore`).
    assert!(summary["late_events"].as_u64() <= Some(committed.late.len() as u64));
    // Each listed event is late by the rule (below the watermark it met), and
    // none is an on-time event: only the generator's late ones can be late.
    assert!(committed.late.len() as u64 <= generated);
    for e in &committed.late {
        assert!(
            e.ts_ms < e.watermark_ms,
            "{e:?} is not behind its watermark"
        );
        assert_eq!(e.reason, LateReason::BehindWatermark, "{e:?}");
    }
    // No joined row involves a late event.
    let late_ids: std::collections::HashSet<_> = committed
        .late
        .iter()
        .map(|e| (e.stream, e.event_id))
        .collect();
    use join_operator::event::Stream;
    for r in &committed.rows {
        assert!(!late_ids.contains(&(Stream::Play, r.play_id)), "{r:?}");
        assert!(
            !late_ids.contains(&(Stream::Impression, r.impression_id)),
            "{r:?}"
        );
    }

    // The oracle is not vacuous: the same output is refused against another
    // allowed lateness, which expects other late events and rows.
    let other = validate(&input, &job.output, &["--allowed-lateness-ms", "30000"]);
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stdout));
}

#[test]
fn allowed_lateness_joins_events_within_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 32, 40_000, 0.02);
    let strict = input.oracle(0);
    let lenient = input.oracle(30_000);
    assert!(
        lenient.late_events.len() < strict.late_events.len() && !lenient.late_events.is_empty(),
        "the input has late events both within and beyond 30 s"
    );
    assert!(lenient.expected.len() > strict.expected.len());

    let job = Job::new(
        &input,
        &tmp.path().join("out"),
        tmp.path().join("ckpt").to_str().unwrap(),
    )
    .args(&[
        "--checkpoint-interval-events",
        INTERVAL,
        "--allowed-lateness-ms",
        "30000",
    ]);
    run_with_a_crash(&job, input.events());

    assert_valid(&input, &job.output, &["--allowed-lateness-ms", "30000"]);
    let committed = read_committed(&job.output);
    assert_exact(&committed, &lenient);
    for e in &committed.late {
        assert!(
            e.ts_ms < e.watermark_ms - 30_000,
            "{e:?} is within the allowed lateness"
        );
        assert_eq!(e.reason, LateReason::BeyondAllowedLateness, "{e:?}");
    }
    let strict_check = validate(&input, &job.output, &[]);
    assert_eq!(
        strict_check.status.code(),
        Some(1),
        "{}",
        text(&strict_check.stdout)
    );
}
