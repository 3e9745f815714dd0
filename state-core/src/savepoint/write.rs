//! Writing a savepoint: data files first (each encoded to a local temporary
//! file, hashed while written, then uploaded in the background), the
//! metadata last with a conditional create. Any failure deletes what was
//! uploaded, so a target is whole or absent.

use super::avro::{self, ContainerWriter, Entry, EntryValue, TimerRecord};
use super::error::{Result, SavepointError};
use super::location::Location;
use super::meta::{
    checksum_hex, FileMeta, Layout, SavepointMeta, SourceInfo, StateSection, TimersSection,
    METADATA_NAME, SAVEPOINT_FORMAT_VERSION, TIMERS_FILE,
};
use crate::descriptor::StateDescriptor;
use crate::keygroup::KeyGroupRange;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Counts entries as they are written (progress bars).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Knobs of a savepoint write.
#[derive(Clone)]
pub struct WriteOptions {
    /// A state's file is closed at the next key-group boundary once it has
    /// grown past this many bytes.
    pub max_file_bytes: u64,
    /// Key groups at which a new file must start (instance boundaries).
    pub splits: Vec<u16>,
    pub progress: Option<Progress>,
    /// Where temporary files go (default: the system temp folder).
    pub work_dir: Option<PathBuf>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            max_file_bytes: 64 << 20,
            splits: Vec::new(),
            progress: None,
            work_dir: None,
        }
    }
}

impl std::fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("max_file_bytes", &self.max_file_bytes)
            .field("splits", &self.splits)
            .finish()
    }
}

/// A file being written: hashes and counts what passes through.
struct HashingFile {
    file: std::io::BufWriter<std::fs::File>,
    hasher: xxhash_rust::xxh3::Xxh3,
    size: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

struct OpenFile {
    writer: ContainerWriter<HashingFile>,
    local: PathBuf,
    first_kg: u16,
    last_kg: u16,
}

pub(crate) struct SavepointWriter {
    rt: Arc<Runtime>,
    dst: Location,
    tmp: tempfile::TempDir,
    opts: WriteOptions,
    max_parallelism: u16,
    range: KeyGroupRange,
    uploads: Vec<JoinHandle<Result<()>>>,
    /// Relative paths uploaded (or being uploaded), deleted on failure.
    written: Arc<Mutex<Vec<String>>>,
    states: Vec<StateSection>,
    timers: Option<TimersSection>,
    layout: Option<Layout>,
    seq: u64,
    /// The local target folder did not exist before this write.
    created_root: bool,
}

impl SavepointWriter {
    /// Checks the target and prepares the write. Nothing is written yet.
    pub fn create(
        rt: Arc<Runtime>,
        dst_url: &str,
        max_parallelism: u16,
        range: KeyGroupRange,
        opts: WriteOptions,
    ) -> Result<SavepointWriter> {
        let created_root = local_root_absent(dst_url);
        let dst = rt.block_on(Location::open(dst_url, false))?;
        if rt.block_on(dst.exists(METADATA_NAME))? {
            return Err(SavepointError::TargetExists {
                location: dst.display.clone(),
            });
        }
        let tmp = match &opts.work_dir {
            Some(d) => tempfile::Builder::new().prefix("savepoint-").tempdir_in(d),
            None => tempfile::Builder::new().prefix("savepoint-").tempdir(),
        }
        .map_err(SavepointError::io("creating a temporary folder"))?;
        Ok(SavepointWriter {
            rt,
            dst,
            tmp,
            opts,
            max_parallelism,
            range,
            uploads: Vec::new(),
            written: Arc::new(Mutex::new(Vec::new())),
            states: Vec::new(),
            timers: None,
            layout: None,
            seq: 0,
            created_root,
        })
    }

    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = Some(layout);
    }

    /// Writes one state's entries, which must come in key order and lie in
    /// the savepoint's key-group range.
    pub fn write_state(
        &mut self,
        descriptor: StateDescriptor,
        schema: String,
        schema_history: Vec<String>,
        entries: impl Iterator<Item = Result<Entry>>,
    ) -> Result<()> {
        let name = descriptor.name.clone();
        let file_schema = avro::entry_schema_json(descriptor.kind, &schema);
        let mut section = StateSection {
            descriptor,
            schema,
            schema_history,
            entries: 0,
            bytes: 0,
            entries_with_ttl: 0,
            key_group_entries: vec![0; self.range.len()],
            files: Vec::new(),
        };
        let mut open: Option<OpenFile> = None;
        let mut pending = 0u64;
        for entry in entries {
            let entry = entry?;
            if !self.range.contains(entry.key_group) {
                return Err(SavepointError::InvalidInput(format!(
                    "state '{name}': entry in key group {} outside the savepoint's {}",
                    entry.key_group, self.range
                )));
            }
            if let Some(f) = &open {
                if entry.key_group > f.last_kg && self.should_roll(f, entry.key_group) {
                    let f = open
                        .take()
                        .ok_or_else(|| SavepointError::InvalidInput("no file".into()))?;
                    section.files.push(self.close_file(&name, f)?);
                }
            }
            let f = match &mut open {
                Some(f) => f,
                None => open.insert(self.open_file(&file_schema, entry.key_group)?),
            };
            f.last_kg = f.last_kg.max(entry.key_group);
            section.key_group_entries[usize::from(entry.key_group - self.range.start)] += 1;
            if has_ttl(&entry) {
                section.entries_with_ttl += 1;
            }
            f.writer
                .append(|out| avro::encode_entry(out, &entry))
                .map_err(SavepointError::io(format!("writing {}", f.local.display())))?;
            pending += 1;
            if pending == 4096 {
                self.report(pending);
                pending = 0;
            }
        }
        self.report(pending);
        if let Some(f) = open {
            section.files.push(self.close_file(&name, f)?);
        }
        section.entries = section.files.iter().map(|f| f.entries).sum();
        section.bytes = section.files.iter().map(|f| f.size).sum();
        self.states.push(section);
        Ok(())
    }

    fn report(&self, n: u64) {
        if let (Some(p), true) = (&self.opts.progress, n > 0) {
            p(n);
        }
    }

    fn should_roll(&self, f: &OpenFile, next_kg: u16) -> bool {
        f.writer.bytes_written >= self.opts.max_file_bytes
            || self
                .opts
                .splits
                .iter()
                .any(|s| *s > f.last_kg && *s <= next_kg)
    }

    fn open_file(&mut self, schema_json: &str, first_kg: u16) -> Result<OpenFile> {
        self.seq += 1;
        let local = self.tmp.path().join(format!("{}.avro", self.seq));
        let file = std::fs::File::create(&local)
            .map_err(SavepointError::io(format!("creating {}", local.display())))?;
        let seed = format!("{}:{}:{}", self.dst.display, self.seq, now_ms());
        let writer = ContainerWriter::new(
            HashingFile {
                file: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: xxhash_rust::xxh3::Xxh3::new(),
                size: 0,
            },
            schema_json,
            seed.as_bytes(),
        )
        .map_err(SavepointError::io(format!("writing {}", local.display())))?;
        Ok(OpenFile {
            writer,
            local,
            first_kg,
            last_kg: first_kg,
        })
    }

    fn close_file(&mut self, state: &str, f: OpenFile) -> Result<FileMeta> {
        let records = f.writer.records;
        let hf = f
            .writer
            .finish()
            .map_err(SavepointError::io(format!("writing {}", f.local.display())))?;
        let checksum = checksum_hex(hf.hasher.digest128());
        let size = hf.size;
        drop(hf);
        let rel = format!("states/{state}/kg-{}-{}.avro", f.first_kg, f.last_kg);
        self.spawn_upload(f.local, rel.clone());
        Ok(FileMeta {
            path: rel,
            key_group_range: [f.first_kg, f.last_kg],
            entries: records,
            size,
            checksum,
        })
    }

    fn spawn_upload(&mut self, local: PathBuf, rel: String) {
        let dst = self.dst.clone();
        let written = self.written.clone();
        // Keep at most two uploads in flight: temp files stay bounded on disk.
        while self.uploads.len() >= 2 {
            let first = self.uploads.remove(0);
            let _ = self.rt.block_on(first);
        }
        if let Ok(mut w) = written.lock() {
            w.push(rel.clone());
        }
        self.uploads.push(self.rt.spawn(async move {
            let r = dst.upload(&local, &rel).await;
            let _ = tokio::fs::remove_file(&local).await;
            r
        }));
    }

    /// Writes the timers (any order).
    pub fn write_timers(
        &mut self,
        timers: impl Iterator<Item = Result<TimerRecord>>,
    ) -> Result<()> {
        let mut f = self.open_file(&avro::timer_schema_json(), self.range.start)?;
        let mut lo = u16::MAX;
        let mut hi = 0u16;
        for t in timers {
            let t = t?;
            if !self.range.contains(t.key_group) {
                continue;
            }
            lo = lo.min(t.key_group);
            hi = hi.max(t.key_group);
            f.writer
                .append(|out| avro::encode_timer(out, &t))
                .map_err(SavepointError::io(format!("writing {}", f.local.display())))?;
        }
        let count = f.writer.records;
        let hf = f
            .writer
            .finish()
            .map_err(SavepointError::io(format!("writing {}", f.local.display())))?;
        let file = FileMeta {
            path: TIMERS_FILE.into(),
            key_group_range: if count == 0 {
                [self.range.start, self.range.end]
            } else {
                [lo, hi]
            },
            entries: count,
            size: hf.size,
            checksum: checksum_hex(hf.hasher.digest128()),
        };
        drop(hf);
        self.spawn_upload(f.local, TIMERS_FILE.into());
        self.timers = Some(TimersSection { count, file });
        Ok(())
    }

    /// Waits for the uploads, then creates the metadata: the commit point.
    pub fn finish(mut self, source: SourceInfo, user: serde_json::Value) -> Result<SavepointMeta> {
        let r = self.try_finish(source, user);
        if r.is_err() {
            self.abort();
        }
        r
    }

    fn try_finish(&mut self, source: SourceInfo, user: serde_json::Value) -> Result<SavepointMeta> {
        if self.timers.is_none() {
            self.write_timers(std::iter::empty())?;
        }
        for h in std::mem::take(&mut self.uploads) {
            self.rt
                .block_on(h)
                .map_err(|e| SavepointError::InvalidInput(format!("upload task: {e}")))??;
        }
        let timers = self
            .timers
            .clone()
            .ok_or_else(|| SavepointError::InvalidInput("timers not written".into()))?;
        let meta = SavepointMeta {
            format_version: SAVEPOINT_FORMAT_VERSION,
            created_ms: now_ms(),
            source,
            max_parallelism: self.max_parallelism,
            key_group_range: [self.range.start, self.range.end],
            layout: self.layout.clone(),
            states: std::mem::take(&mut self.states),
            timers,
            user,
        };
        self.rt
            .block_on(self.dst.put_create(METADATA_NAME, meta.to_json()))?;
        if let Ok(mut w) = self.written.lock() {
            w.clear();
        }
        Ok(meta)
    }

    /// Deletes everything uploaded so far (best effort).
    pub fn abort(&mut self) {
        for h in std::mem::take(&mut self.uploads) {
            let _ = self.rt.block_on(h);
        }
        let written: Vec<String> = match self.written.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return,
        };
        let mut dirs: Vec<String> = Vec::new();
        for rel in &written {
            self.rt.block_on(self.dst.delete(rel));
            if let Some((dir, _)) = rel.rsplit_once('/') {
                if !dirs.contains(&dir.to_string()) {
                    dirs.push(dir.to_string());
                }
            }
        }
        let mut tidy: Vec<&str> = dirs.iter().map(String::as_str).collect();
        tidy.push("states");
        if self.created_root {
            tidy.push("");
        }
        self.dst.tidy_local(&tidy);
    }
}

impl Drop for SavepointWriter {
    fn drop(&mut self) {
        // A writer dropped on an error path (`?`) must not leave files behind.
        self.abort();
    }
}

fn local_root_absent(url: &str) -> bool {
    let local = url.starts_with("file://") || !url.contains("://");
    let path = url.strip_prefix("file://").unwrap_or(url);
    local && !std::path::Path::new(path).exists()
}

fn has_ttl(e: &Entry) -> bool {
    match &e.value {
        EntryValue::Single(_) => e.expiry_ms.is_some(),
        EntryValue::List(items) => items.iter().any(|i| i.expiry_ms.is_some()),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
