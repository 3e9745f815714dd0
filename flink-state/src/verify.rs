//! `verify` of a Flink snapshot: every referenced file is there with the
//! size `_metadata` gives it, `_metadata` parses to its end, and every
//! entry of every state decodes, consumes its bytes exactly and sits in
//! the key group its key hashes to. Canonical savepoints carry no
//! checksums: a changed byte inside a string value can go unseen (native
//! snapshots' SSTs have block checksums, checked by the LSM reader).

use crate::bytes::Reader;
use crate::error::FlinkError;
use crate::javaser::read_object_stream;
use crate::lsm::LsmScanner;
use crate::metadata::{Metadata, StreamHandle};
use crate::snapshot::{DumpOptions, FlinkSnapshot};
use crate::storage::{resolve, Storage};

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file at fault (`_metadata` for inlined streams too).
    pub file: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files_checked: usize,
    pub entries: u64,
    pub problems: Vec<Problem>,
    /// Not damage: states whose serializer we cannot decode.
    pub warnings: Vec<String>,
}

fn metadata_path(base: &str) -> String {
    if base.is_empty() {
        "_metadata".into()
    } else {
        format!("{base}/_metadata")
    }
}

pub fn verify(storage: &dyn Storage, base: &str, lsm: Option<&dyn LsmScanner>) -> VerifyReport {
    let mut report = VerifyReport::default();
    let meta_path = metadata_path(base);
    let snap = match FlinkSnapshot::open(storage, base) {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(Problem {
                file: meta_path,
                message: e.to_string(),
            });
            return report;
        }
    };
    report.files_checked += 1;
    if let Err(m) = check_trailer(storage, &meta_path, &snap.metadata) {
        report.problems.push(Problem {
            file: meta_path.clone(),
            message: m,
        });
    }
    check_sizes(&snap, &mut report);
    let opts = DumpOptions {
        lsm,
        check_key_groups: true,
        ..Default::default()
    };
    for op in &snap.metadata.operators {
        match snap.dump(op, &opts, &mut |_| Ok(())) {
            Ok(r) => {
                report.entries += r.entries;
                report
                    .warnings
                    .extend(r.errors.iter().map(|e| e.to_string()));
            }
            Err(e) => report.problems.push(problem_of(e, &op.label())),
        }
    }
    report
}

fn problem_of(e: FlinkError, operator: &str) -> Problem {
    match e {
        FlinkError::File { file, source } => Problem {
            file,
            message: format!("operator {operator}: {source}"),
        },
        FlinkError::Io { path, source } => Problem {
            file: path,
            message: source.to_string(),
        },
        e => Problem {
            file: String::new(),
            message: format!("operator {operator}: {e}"),
        },
    }
}

/// The CheckpointProperties trailer is a Java object stream: it must parse
/// and end the file.
fn check_trailer(storage: &dyn Storage, path: &str, meta: &Metadata) -> Result<(), String> {
    let bytes = storage.read(path).map_err(|e| e.to_string())?;
    let trailer = bytes.get(meta.trailer_offset..).unwrap_or(&[]);
    if trailer.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(trailer);
    read_object_stream(&mut r).map_err(|e| format!("checkpoint properties trailer: {e}"))?;
    if !r.is_empty() {
        return Err(format!(
            "{} bytes after the checkpoint properties",
            r.remaining()
        ));
    }
    Ok(())
}

fn check_sizes(snap: &FlinkSnapshot, report: &mut VerifyReport) {
    let mut seen = std::collections::HashSet::new();
    for op in &snap.metadata.operators {
        for sub in &op.subtasks {
            let mut streams: Vec<&StreamHandle> = Vec::new();
            for h in [&sub.managed_keyed, &sub.raw_keyed].into_iter().flatten() {
                streams.extend(h.streams().into_iter().map(|(_, s)| s));
            }
            for h in [&sub.managed_operator, &sub.raw_operator]
                .into_iter()
                .flatten()
            {
                streams.push(&h.delegate);
            }
            for s in streams {
                let Some(path) = resolve(&snap.base, s) else {
                    continue;
                };
                if !seen.insert(path.clone()) {
                    continue;
                }
                report.files_checked += 1;
                match snap.storage.size(&path) {
                    Ok(n) if n != s.size() => report.problems.push(Problem {
                        file: path,
                        message: format!("{n} bytes, _metadata says {}", s.size()),
                    }),
                    Ok(_) => {}
                    Err(e) => report.problems.push(Problem {
                        file: path,
                        message: format!("unreadable: {e}"),
                    }),
                }
            }
        }
    }
}
