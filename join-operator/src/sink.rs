//! A transactional CSV part-file sink: output is committed together with
//! checkpoints (two-phase commit, as Flink's FileSink does).
//!
//! - `write` appends to an in-progress file in `DIR/.inprogress/`, a hidden
//!   folder that never matches `DIR/*.csv`.
//! - `pre_commit(checkpoint)` (in the checkpoint's synchronous part) flushes
//!   and fsyncs the in-progress file and turns it into a *pending* file; the
//!   returned [`SinkState`] goes into the checkpoint's metadata.
//! - `commit(state)` (once the checkpoint is durable) renames the pending
//!   files to `DIR/part-<instance>-<checkpoint:08>-<seq>.csv`, atomically and
//!   idempotently.
//! - On restore, `open` with the state of the last completed checkpoint
//!   re-commits its pending files that are still in progress (a crash between
//!   the checkpoint and the rename) and deletes every other in-progress file of
//!   the instance: rows written after that checkpoint will be produced again.
//!
//! A committed file is renamed whole after an fsync, so it never holds a
//! partial row. The format is described in `docs/join-output-format.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::CsvRecord;

/// Hidden folder of in-progress and pending files, inside the sink folder.
pub const INPROGRESS_DIR: &str = ".inprogress";
/// Version of [`SinkState`]'s serialized form.
pub const SINK_STATE_VERSION: u32 = 1;
const DEFAULT_MAX_PART_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink: {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("sink: pending file {} of checkpoint {checkpoint_id} is neither in progress nor committed as {}", .pending.display(), .committed.display())]
    PendingLost {
        checkpoint_id: u64,
        pending: PathBuf,
        committed: PathBuf,
    },
    #[error("sink: state of instance {state_instance} given to instance {instance}")]
    WrongInstance { instance: u32, state_instance: u32 },
    #[error("sink: state version {0} is not supported (this build reads {SINK_STATE_VERSION})")]
    Version(u32),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Io { op, path, source }
}

/// A file closed at a checkpoint, to be committed when that checkpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    pub checkpoint_id: u64,
    /// File name inside `DIR/.inprogress/`.
    pub inprogress: String,
    /// File name inside `DIR/` once committed.
    pub committed: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What a checkpoint stores for one sink instance: every pending file not
/// known to be committed yet (of this and earlier checkpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    pub version: u32,
    pub instance: u32,
    pub checkpoint_id: u64,
    pub pending: Vec<PendingFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// A part file is closed and a new one started past this size.
    pub max_part_bytes: u64,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_part_bytes: DEFAULT_MAX_PART_BYTES,
        }
    }
}

struct OpenPart {
    name: String,
    writer: BufWriter<File>,
    rows: u64,
    bytes: u64,
}

/// One instance's transactional sink into one folder.
pub struct TxnSink {
    dir: PathBuf,
    inprogress_dir: PathBuf,
    instance: u32,
    header: String,
    options: SinkOptions,
    /// Unique per open, so that files of a crashed attempt never collide.
    attempt: String,
    next_file: u64,
    current: Option<OpenPart>,
    /// Parts closed by size since the last `pre_commit`.
    closed: Vec<(String, u64, u64)>,
    /// Pending files handed out by `pre_commit` and not committed yet.
    uncommitted: Vec<PendingFile>,
    line: Vec<u8>,
}

impl TxnSink {
    /// Opens the sink of `instance` in `dir`; `header` is the first line of
    /// every part file. `recovered` is the state of the last completed
    /// checkpoint, `None` on a fresh start.
    pub fn open(
        dir: &Path,
        instance: u32,
        header: &str,
        recovered: Option<&SinkState>,
    ) -> Result<Self, SinkError> {
        Self::open_with(dir, instance, header, recovered, SinkOptions::default())
    }

    pub fn open_with(
        dir: &Path,
        instance: u32,
        header: &str,
        recovered: Option<&SinkState>,
        options: SinkOptions,
    ) -> Result<Self, SinkError> {
        let inprogress_dir = dir.join(INPROGRESS_DIR);
        fs::create_dir_all(&inprogress_dir).map_err(io_err("create", &inprogress_dir))?;
        if let Some(state) = recovered {
            check_state(state, Some(instance))?;
            commit_files(dir, &state.pending)?;
        }
        remove_inprogress(&inprogress_dir, Some(instance))?;
        sync_dir(&inprogress_dir)?;
        Ok(TxnSink {
            dir: dir.to_path_buf(),
            inprogress_dir,
            instance,
            header: header.to_owned(),
            options,
            attempt: uuid::Uuid::new_v4().simple().to_string(),
            next_file: 0,
            current: None,
            closed: Vec::new(),
            uncommitted: Vec::new(),
            line: Vec::with_capacity(256),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record.
    pub fn write<R: CsvRecord>(&mut self, record: &R) -> Result<(), SinkError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        record.write_csv(&mut line);
        let result = self.write_line(&line);
        self.line = line;
        result
    }

    /// Appends one already formatted line (ending with `\n`).
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        if self.current.is_none() {
            self.start_part()?;
        }
        let full = match self.current.as_mut() {
            Some(part) => {
                if let Err(e) = part.writer.write_all(line) {
                    return Err(io_err("write", &self.inprogress_dir.join(&part.name))(e));
                }
                part.rows += 1;
                part.bytes += line.len() as u64;
                part.bytes >= self.options.max_part_bytes
            }
            None => false,
        };
        if full {
            self.close_part()?;
        }
        Ok(())
    }

    fn start_part(&mut self) -> Result<(), SinkError> {
        let name = format!(
            "part-{}-{}-{}.csv.inprogress",
            self.instance, self.attempt, self.next_file
        );
        self.next_file += 1;
        let path = self.inprogress_dir.join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        writer
            .write_all(self.header.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(io_err("write", &path))?;
        self.current = Some(OpenPart {
            name,
            writer,
            rows: 0,
            bytes: 0,
        });
        Ok(())
    }

    /// Flushes and fsyncs the open part and sets it aside as closed.
    fn close_part(&mut self) -> Result<(), SinkError> {
        if let Some(part) = self.current.take() {
            let path = self.inprogress_dir.join(&part.name);
            let file = part.writer.into_inner().map_err(|e| SinkError::Io {
                op: "flush",
                path: path.clone(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(io_err("fsync", &path))?;
            self.closed.push((part.name, part.rows, part.bytes));
        }
        Ok(())
    }

    /// Closes what was written since the last checkpoint as pending files of
    /// `checkpoint_id`; returns the state to store in that checkpoint.
    pub fn pre_commit(&mut self, checkpoint_id: u64) -> Result<SinkState, SinkError> {
        self.close_part()?;
        for (seq, (name, rows, bytes)) in self.closed.drain(..).enumerate() {
            let committed = format!("part-{}-{:08}-{}.csv", self.instance, checkpoint_id, seq);
            self.uncommitted.push(PendingFile {
                checkpoint_id,
                inprogress: name,
                committed,
                rows,
                bytes,
            });
        }
        sync_dir(&self.inprogress_dir)?;
        Ok(SinkState {
            version: SINK_STATE_VERSION,
            instance: self.instance,
            checkpoint_id,
            pending: self.uncommitted.clone(),
        })
    }

    /// Commits the pending files of a durable checkpoint; idempotent.
    pub fn commit(&mut self, state: &SinkState) -> Result<(), SinkError> {
        check_state(state, Some(self.instance))?;
        commit_files(&self.dir, &state.pending)?;
        self.uncommitted
            .retain(|u| !state.pending.iter().any(|p| p.inprogress == u.inprogress));
        Ok(())
    }
}

fn check_state(state: &SinkState, instance: Option<u32>) -> Result<(), SinkError> {
    if state.version != SINK_STATE_VERSION {
        return Err(SinkError::Version(state.version));
    }
    match instance {
        Some(i) if i != state.instance => Err(SinkError::WrongInstance {
            instance: i,
            state_instance: state.instance,
        }),
        _ => Ok(()),
    }
}

/// Renames each pending file to its committed name unless already done.
fn commit_files(dir: &Path, pending: &[PendingFile]) -> Result<(), SinkError> {
    if pending.is_empty() {
        return Ok(());
    }
    let inprogress_dir = dir.join(INPROGRESS_DIR);
    for p in pending {
        let from = inprogress_dir.join(&p.inprogress);
        let to = dir.join(&p.committed);
        if from.exists() {
            fs::rename(&from, &to).map_err(io_err("rename", &from))?;
        } else if !to.exists() {
            return Err(SinkError::PendingLost {
                checkpoint_id: p.checkpoint_id,
                pending: from,
                committed: to,
            });
        }
    }
    sync_dir(dir)?;
    sync_dir(&inprogress_dir)
}

/// Deletes in-progress files of `instance` (all instances if `None`).
fn remove_inprogress(inprogress_dir: &Path, instance: Option<u32>) -> Result<(), SinkError> {
    let prefix = instance.map(|i| format!("part-{i}-"));
    for entry in fs::read_dir(inprogress_dir).map_err(io_err("list", inprogress_dir))? {
        let entry = entry.map_err(io_err("list", inprogress_dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let mine = prefix.as_deref().is_none_or(|p| name.starts_with(p));
        if mine {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

/// For a restore at another parallelism, before any instance opens: commits
/// the pending files of every old instance's state and deletes all in-progress
/// files in `dir`. Then open the new instances with `recovered = None`.
pub fn recover_all(dir: &Path, states: &[SinkState]) -> Result<(), SinkError> {
    let inprogress_dir = dir.join(INPROGRESS_DIR);
    fs::create_dir_all(&inprogress_dir).map_err(io_err("create", &inprogress_dir))?;
    for s in states {
        check_state(s, None)?;
        commit_files(dir, &s.pending)?;
    }
    remove_inprogress(&inprogress_dir, None)?;
    sync_dir(&inprogress_dir)
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}
