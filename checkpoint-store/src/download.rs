//! Downloading one object into a new local file, verifying its size and
//! checksum.
//!
//! All file I/O of one object runs in few blocking tasks: a local-folder
//! store hands out an open file (read, hash and write in one blocking task,
//! or hard-link it when allowed), other stores stream chunks that are
//! batched into large blocking writes. The hash is computed on the bytes as
//! they are written, so nothing is read twice.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::error::CheckpointError;
use crate::manifest::{checksum_hex, Compression};

/// Bytes of a streamed object handed to one blocking write.
const BATCH: usize = 8 << 20;
/// Read size when copying from a local object; also the write buffer.
const COPY_CHUNK: usize = 4 << 20;

/// What a download expects (from the manifest).
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub id: u64,
    pub name: String,
    pub size: u64,
    pub checksum: String,
    pub compression: Compression,
}

/// How to write restored files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sink {
    /// `sync_data` every file before returning.
    pub fsync: bool,
    /// Hard-link objects of a local-folder store instead of copying them.
    pub link_local: bool,
}

/// Downloads `location` into the new file `dest`. On error `dest` may
/// exist with partial content: the caller discards the whole directory.
pub(crate) async fn download(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    dest: &FsPath,
    expected: &Expected,
    sink: Sink,
) -> Result<(), CheckpointError> {
    let result = store.get(location).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => CheckpointError::MissingObject {
            id: expected.id,
            path: location.to_string(),
        },
        e => CheckpointError::store("get", location, e),
    })?;
    if expected.compression == Compression::Zstd {
        let compressed = result
            .bytes()
            .await
            .map_err(|e| CheckpointError::store("get", location, e))?;
        let (expected, dest, location) = (expected.clone(), dest.to_path_buf(), location.clone());
        return blocking(move || write_zstd(&compressed, &location, &dest, &expected, sink)).await;
    }
    let range = result.range.clone();
    match result.payload {
        GetResultPayload::File(file, src_path) => {
            let local = LocalObject {
                file,
                path: src_path,
                range,
                full: result.meta.size,
            };
            let (expected, dest) = (expected.clone(), dest.to_path_buf());
            blocking(move || local.restore(&dest, &expected, sink)).await
        }
        GetResultPayload::Stream(stream) => {
            write_stream(stream, location, dest, expected, sink).await
        }
    }
}

async fn blocking<F>(f: F) -> Result<(), CheckpointError>
where
    F: FnOnce() -> Result<(), CheckpointError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CheckpointError::Task(format!("restore task: {e}")))?
}

/// An object of a local-folder store, already open.
struct LocalObject {
    file: File,
    path: PathBuf,
    range: Range<u64>,
    /// Size of the whole object.
    full: u64,
}

impl LocalObject {
    fn restore(
        mut self,
        dest: &FsPath,
        expected: &Expected,
        sink: Sink,
    ) -> Result<(), CheckpointError> {
        let len = self.range.end - self.range.start;
        if len != expected.size {
            return Err(corrupt(
                expected,
                format!(
                    "object {} has {len} bytes, manifest says {}",
                    self.path.display(),
                    expected.size
                ),
            ));
        }
        let whole = self.range.start == 0 && len == self.full;
        if sink.link_local && whole && std::fs::hard_link(&self.path, dest).is_ok() {
            // The link may name a newer inode than the one opened (a
            // replaced object): verify what `dest` now holds.
            let (checksum, size) = hash_path(dest)?;
            verify(expected, &checksum, size)?;
            return finish(dest, sink.fsync);
        }
        self.file
            .seek(SeekFrom::Start(self.range.start))
            .map_err(|e| CheckpointError::io("seek", &self.path, e))?;
        let mut out = Output::create(dest)?;
        let src = &self.path;
        // One more byte than expected is read, to see a grown object.
        let mut reader = (&mut self.file).take(len + 1);
        with_buffer(|buf| loop {
            let n = read_full(&mut reader, buf).map_err(|e| CheckpointError::io("read", src, e))?;
            if n == 0 {
                return Ok(());
            }
            out.write(expected, &buf[..n])?;
        })?;
        out.finish(expected, sink.fsync)
    }
}

/// Streams chunks into `dest`, hashing them; the blocking writes get large
/// batches because a stream's chunks can be small.
async fn write_stream(
    mut stream: BoxStream<'static, object_store::Result<Bytes>>,
    location: &Path,
    dest: &FsPath,
    expected: &Expected,
    sink: Sink,
) -> Result<(), CheckpointError> {
    let mut out: Option<Output> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0usize;
    let mut received = 0u64;
    loop {
        let chunk = stream.next().await;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            let chunk = chunk.map_err(|e| CheckpointError::store("get", location, e))?;
            received += chunk.len() as u64;
            if received > expected.size {
                return Err(corrupt(
                    expected,
                    format!("object {location} is longer than {} bytes", expected.size),
                ));
            }
            batched += chunk.len();
            batch.push(chunk);
        }
        if done || batched >= BATCH {
            let chunks = std::mem::take(&mut batch);
            batched = 0;
            let (exp, dest) = (expected.clone(), dest.to_path_buf());
            let prev = out.take();
            let next = tokio::task::spawn_blocking(move || {
                write_batch(prev, &dest, &exp, chunks, done, sink)
            })
            .await
            .map_err(|e| CheckpointError::Task(format!("restore task: {e}")))??;
            out = next;
        }
        if done {
            return Ok(());
        }
    }
}

/// Writes one batch. The last batch of an object that fits in one batch is
/// verified before anything is written: a corrupt small object never
/// creates a file.
fn write_batch(
    out: Option<Output>,
    dest: &FsPath,
    expected: &Expected,
    chunks: Vec<Bytes>,
    last: bool,
    sink: Sink,
) -> Result<Option<Output>, CheckpointError> {
    let mut out = match out {
        Some(out) => out,
        None if last => {
            let mut hasher = Xxh3::new();
            let mut size = 0u64;
            for c in &chunks {
                hasher.update(c);
                size += c.len() as u64;
            }
            verify(expected, &checksum_hex(hasher.digest128()), size)?;
            write_new(dest, &chunks, sink.fsync)?;
            return Ok(None);
        }
        None => Output::create(dest)?,
    };
    for c in &chunks {
        out.write(expected, c)?;
    }
    if last {
        out.finish(expected, sink.fsync)?;
        return Ok(None);
    }
    Ok(Some(out))
}

fn write_zstd(
    compressed: &[u8],
    location: &Path,
    dest: &FsPath,
    expected: &Expected,
    sink: Sink,
) -> Result<(), CheckpointError> {
    let bytes = decompress(compressed, expected.size)
        .map_err(|e| corrupt(expected, format!("zstd decode of {location}: {e}")))?;
    verify(
        expected,
        &checksum_hex(xxh3_128(&bytes)),
        bytes.len() as u64,
    )?;
    write_new(dest, &[Bytes::from(bytes)], sink.fsync)
}

/// Creates `dest` holding `chunks` (already verified).
fn write_new(dest: &FsPath, chunks: &[Bytes], fsync: bool) -> Result<(), CheckpointError> {
    let io = |e| CheckpointError::io("write", dest, e);
    let mut f = File::create(dest).map_err(io)?;
    for c in chunks {
        f.write_all(c).map_err(io)?;
    }
    if fsync {
        f.sync_data()
            .map_err(|e| CheckpointError::io("fsync", dest, e))?;
    }
    Ok(())
}

/// A file being written, with the running hash of what went in.
struct Output {
    dest: PathBuf,
    file: BufWriter<File>,
    hasher: Xxh3,
    size: u64,
}

impl Output {
    fn create(dest: &FsPath) -> Result<Self, CheckpointError> {
        let file = File::create(dest).map_err(|e| CheckpointError::io("create", dest, e))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            file: BufWriter::with_capacity(COPY_CHUNK, file),
            hasher: Xxh3::new(),
            size: 0,
        })
    }

    fn write(&mut self, expected: &Expected, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.size += bytes.len() as u64;
        if self.size > expected.size {
            return Err(corrupt(
                expected,
                format!("object is longer than {} bytes", expected.size),
            ));
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| CheckpointError::io("write", &self.dest, e))
    }

    fn finish(self, expected: &Expected, fsync: bool) -> Result<(), CheckpointError> {
        verify(expected, &checksum_hex(self.hasher.digest128()), self.size)?;
        let dest = self.dest;
        let file = self
            .file
            .into_inner()
            .map_err(|e| CheckpointError::io("write", &dest, e.into_error()))?;
        if fsync {
            file.sync_data()
                .map_err(|e| CheckpointError::io("fsync", &dest, e))?;
        }
        Ok(())
    }
}

fn finish(dest: &FsPath, fsync: bool) -> Result<(), CheckpointError> {
    if fsync {
        File::open(dest)
            .and_then(|f| f.sync_data())
            .map_err(|e| CheckpointError::io("fsync", dest, e))?;
    }
    Ok(())
}

fn verify(expected: &Expected, checksum: &str, size: u64) -> Result<(), CheckpointError> {
    if size != expected.size {
        return Err(corrupt(
            expected,
            format!("size {size}, manifest says {}", expected.size),
        ));
    }
    if checksum != expected.checksum {
        return Err(corrupt(
            expected,
            format!("checksum {checksum}, manifest says {}", expected.checksum),
        ));
    }
    Ok(())
}

/// Hashes a local file; returns (checksum, size).
pub(crate) fn hash_path(path: &FsPath) -> Result<(String, u64), CheckpointError> {
    let mut file = File::open(path).map_err(|e| CheckpointError::io("open", path, e))?;
    let mut hasher = Xxh3::new();
    let mut size = 0u64;
    with_buffer(|buf| loop {
        let n = read_full(&mut file, buf).map_err(|e| CheckpointError::io("read", path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    })?;
    Ok((checksum_hex(hasher.digest128()), size))
}

thread_local! {
    /// One copy buffer per blocking thread: a fresh multi-MiB buffer per
    /// file costs a page fault per 4 KiB.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_buffer(
    f: impl FnOnce(&mut [u8]) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < COPY_CHUNK {
                buf.resize(COPY_CHUNK, 0);
            }
            f(&mut buf)
        }
        // Re-entered on this thread (not expected): use a private buffer.
        Err(_) => f(&mut vec![0u8; COPY_CHUNK]),
    })
}

/// Reads until `buf` is full or the end; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompresses at most `limit` bytes (plus one, to detect a longer stream):
/// a hostile object cannot make us allocate more than the manifest claims.
fn decompress(compressed: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let decoder = zstd::stream::read::Decoder::new(compressed)?;
    let mut out = Vec::new();
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    Ok(out)
}

fn corrupt(expected: &Expected, reason: String) -> CheckpointError {
    CheckpointError::CorruptFile {
        id: expected.id,
        file: expected.name.clone(),
        reason,
    }
}
