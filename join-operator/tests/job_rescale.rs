//! Restore at another parallelism: a run crashed at parallelism P resumes
//! from its checkpoint at P' (threads of one process), and the final
//! committed output is exactly the batch join. Also P processes started with
//! `--parallelism P --index I` sharing the output folder, each crashed and
//! resumed.

mod common;

use common::*;

const INTERVAL: &str = "4096";

/// Runs `chain[0]`, crashing after a share of the input, resumes at each next
/// parallelism (crashing again), and finishes at the last one.
fn rescale_chain(seed: u64, chain: &[u32]) {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), seed, 40_000, 0.0);
    let oracle = input.oracle(0);
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let job = |p: u32| {
        Job::new(&input, &out, ckpt.to_str().unwrap()).args(&[
            "--checkpoint-interval-events",
            INTERVAL,
            "--parallelism",
            &p.to_string(),
        ])
    };
    for &p in &chain[..chain.len() - 1] {
        match job(p).attempt(Crash::AfterNextCheckpoint) {
            Outcome::Crashed => {}
            Outcome::Finished(s) => panic!("p={p} finished before its crash: {s}"),
        }
        assert_no_extra_or_doubled(&read_committed(&out), &oracle);
    }
    let last = *chain.last().unwrap();
    let summary = job(last).run_ok();
    assert!(
        summary["restored_from"].is_u64() && summary["events_before_restore"].as_u64() > Some(0),
        "p={last} resumed from a checkpoint of p={}: {summary}",
        chain[chain.len() - 2]
    );
    let report = assert_valid(&input, &out, &[]);
    assert!(report["rows"]["found"].as_u64() > Some(0));
    let committed = read_committed(&out);
    assert_exact(&committed, &oracle);
    // Part files name their instance: only instances that existed, and the
    // last run's highest instance committed rows.
    let instances: std::collections::BTreeSet<u32> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("part-")
                .and_then(|r| r.split('-').next())
                .and_then(|i| i.parse().ok())
        })
        .collect();
    let max = chain.iter().max().copied().unwrap();
    assert!(
        instances.iter().all(|&i| i < max) && instances.contains(&(last - 1)),
        "part files by instance: {instances:?}"
    );
}

#[test]
fn parallelism_1_crashed_resumes_at_3() {
    rescale_chain(21, &[1, 3]);
}

#[test]
fn parallelism_2_crashed_resumes_at_1() {
    rescale_chain(22, &[2, 1]);
}

#[test]
fn parallelism_1_then_3_then_2_with_a_crash_at_each() {
    rescale_chain(23, &[1, 3, 2]);
}

/// Two processes `--parallelism 2 --index 0|1` share the output folder and
/// the checkpoint URL; each crashes once and is rerun; the union of what they
/// commit is the batch join.
#[test]
fn two_processes_by_index_crash_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let input = gen(&tmp.path().join("in"), 24, 30_000, 0.0);
    let oracle = input.oracle(0);
    let out = tmp.path().join("out");
    let ckpt = tmp.path().join("ckpt");
    let job = |i: u32| {
        Job::new(&input, &out, ckpt.to_str().unwrap()).args(&[
            "--checkpoint-interval-events",
            INTERVAL,
            "--parallelism",
            "2",
            "--index",
            &i.to_string(),
        ])
    };
    // Side by side, each SIGKILLed once its first checkpoint is complete.
    std::thread::scope(|scope| {
        let crashes: Vec<_> = (0..2u32)
            .map(|i| {
                let child = job(i).spawn(&[]);
                let folder = ckpt.join(format!("instance-{i}-of-2"));
                scope.spawn(move || kill_when(child, || !completed_checkpoints(&folder).is_empty()))
            })
            .collect();
        for c in crashes {
            let outcome = c.join().unwrap();
            assert!(matches!(outcome, Outcome::Crashed), "{outcome:?}");
        }
    });
    assert_no_extra_or_doubled(&read_committed(&out), &oracle);
    let spawn = |i: u32| job(i).spawn(&[]);
    let children = [spawn(0), spawn(1)];
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        let summary: serde_json::Value =
            serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
        assert!(summary["restored_from"].is_u64(), "{summary}");
    }
    assert_valid(&input, &out, &[]);
    assert_exact(&read_committed(&out), &oracle);
}
