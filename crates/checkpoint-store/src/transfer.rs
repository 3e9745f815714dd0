//! Moving one file: hash, upload (single put or streamed multipart),
//! download with verification.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::error::CheckpointError;
use crate::manifest::{checksum_hex, Compression};

const READ_CHUNK: usize = 1 << 20;

/// Objects up to this size are fetched in one piece on restore.
const WHOLE_OBJECT_LIMIT: u64 = 16 << 20;

/// Reads a whole (small) file.
pub(crate) async fn read_file(path: &FsPath) -> Result<Bytes, CheckpointError> {
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|e| CheckpointError::io("read", path, e))
}

pub(crate) fn hash_bytes(bytes: &[u8]) -> String {
    checksum_hex(xxh3_128(bytes))
}

/// Hashes a file by streaming it; returns (checksum, size).
pub(crate) async fn hash_file(path: &FsPath) -> Result<(String, u64), CheckpointError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CheckpointError::io("open", path, e))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| CheckpointError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((checksum_hex(hasher.digest128()), size))
}

/// Puts `bytes` at `location` unless an object is already there.
/// Returns the bytes written (0 if the object existed).
pub(crate) async fn put_create(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    bytes: Bytes,
) -> Result<u64, CheckpointError> {
    let len = bytes.len() as u64;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(location, PutPayload::from(bytes), opts)
        .await
    {
        Ok(_) => Ok(len),
        // Content-addressed: an existing object has the same bytes.
        Err(object_store::Error::AlreadyExists { .. }) => Ok(0),
        Err(e) => Err(CheckpointError::store("put", location, e)),
    }
}

/// Streams a large file to `location` with a multipart upload, hashing it
/// again on the way; aborts (nothing visible) if the file changed since it
/// was hashed. Returns bytes written (0 if the object already existed).
pub(crate) async fn put_multipart_file(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    file_path: &FsPath,
    expected_checksum: &str,
    part_size: usize,
) -> Result<u64, CheckpointError> {
    // Multipart completion cannot be conditional on every store; look first
    // so an existing object is never rewritten (same content anyway).
    match store.head(location).await {
        Ok(_) => return Ok(0),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(CheckpointError::store("head", location, e)),
    }
    let upload = store
        .put_multipart(location)
        .await
        .map_err(|e| CheckpointError::store("put_multipart", location, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size.max(5 << 20));
    match stream_into(&mut writer, file_path).await {
        Ok((checksum, size)) if checksum == expected_checksum => {
            writer
                .finish()
                .await
                .map_err(|e| CheckpointError::store("complete_multipart", location, e))?;
            Ok(size)
        }
        Ok((checksum, _)) => {
            let _ = writer.abort().await;
            Err(CheckpointError::FileChanged {
                path: file_path.to_path_buf(),
                expected: expected_checksum.to_string(),
                found: checksum,
            })
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

async fn stream_into(
    writer: &mut WriteMultipart,
    path: &FsPath,
) -> Result<(String, u64), CheckpointError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CheckpointError::io("open", path, e))?;
    let mut hasher = Xxh3::new();
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; READ_CHUNK];
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| CheckpointError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        size += n as u64;
        // Bounded: at most a few parts in flight per file.
        writer.wait_for_capacity(4).await.map_err(|e| {
            CheckpointError::Task(format!("multipart part upload of {}: {e}", path.display()))
        })?;
        writer.put(Bytes::from(buf));
    }
    Ok((checksum_hex(hasher.digest128()), size))
}

/// What a download expects.
pub(crate) struct Expected<'a> {
    pub id: u64,
    pub name: &'a str,
    pub size: u64,
    pub checksum: &'a str,
    pub compression: Compression,
}

/// Downloads `location` into `dest`, verifying size and checksum of the
/// (decompressed) bytes. `dest` is created fresh.
pub(crate) async fn download(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    dest: &FsPath,
    expected: &Expected<'_>,
    fsync: bool,
) -> Result<(), CheckpointError> {
    let result = store.get(location).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => CheckpointError::MissingObject {
            id: expected.id,
            path: location.to_string(),
        },
        e => CheckpointError::store("get", location, e),
    })?;
    let mut file = LazyFile { dest, file: None };
    let (checksum, size) = match expected.compression {
        // Small objects in one request body: some stores (local files)
        // stream in tiny chunks that cost a blocking task each.
        Compression::None if expected.size <= WHOLE_OBJECT_LIMIT => {
            let bytes = result
                .bytes()
                .await
                .map_err(|e| CheckpointError::store("get", location, e))?;
            // Verify before writing: one blocking write, nothing written if bad.
            let (checksum, size) = (hash_bytes(&bytes), bytes.len() as u64);
            if checksum == expected.checksum && size == expected.size {
                write_whole(dest, bytes, fsync).await?;
                return Ok(());
            }
            (checksum, size)
        }
        Compression::None => {
            let mut stream = result.into_stream();
            let mut hasher = Xxh3::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| CheckpointError::store("get", location, e))?;
                size += chunk.len() as u64;
                if size > expected.size {
                    return Err(corrupt(
                        expected,
                        format!("object {location} is longer than {} bytes", expected.size),
                    ));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            (checksum_hex(hasher.digest128()), size)
        }
        Compression::Zstd => {
            let compressed = result
                .bytes()
                .await
                .map_err(|e| CheckpointError::store("get", location, e))?;
            let bytes = decompress(&compressed, expected.size)
                .map_err(|e| corrupt(expected, format!("zstd decode of {location}: {e}")))?;
            file.write_all(&bytes).await?;
            (hash_bytes(&bytes), bytes.len() as u64)
        }
    };
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
    file.finish(fsync).await
}

/// Writes a verified object in one blocking call.
async fn write_whole(dest: &FsPath, bytes: Bytes, fsync: bool) -> Result<(), CheckpointError> {
    let path = dest.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        if fsync {
            f.sync_all()?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(|e| CheckpointError::Task(e.to_string()))?
    .map_err(|e| CheckpointError::io("write", dest, e))
}

/// A destination file created on first write, buffered: stores yield small
/// chunks (8 KiB for local files) and each tokio write is a blocking task.
struct LazyFile<'a> {
    dest: &'a FsPath,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

impl LazyFile<'_> {
    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        if self.file.is_none() {
            let f = tokio::fs::File::create(self.dest)
                .await
                .map_err(|e| CheckpointError::io("create", self.dest, e))?;
            self.file = Some(tokio::io::BufWriter::with_capacity(READ_CHUNK, f));
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes)
                .await
                .map_err(|e| CheckpointError::io("write", self.dest, e))?;
        }
        Ok(())
    }

    async fn finish(self, fsync: bool) -> Result<(), CheckpointError> {
        let dest = self.dest;
        let Some(mut f) = self.file else {
            // Empty file.
            return tokio::fs::write(dest, b"")
                .await
                .map_err(|e| CheckpointError::io("write", dest, e));
        };
        f.flush()
            .await
            .map_err(|e| CheckpointError::io("flush", dest, e))?;
        if fsync {
            f.get_ref()
                .sync_all()
                .await
                .map_err(|e| CheckpointError::io("fsync", dest, e))?;
        }
        Ok(())
    }
}

/// Decompresses at most `limit` bytes (plus one, to detect a longer stream):
/// a hostile object cannot make us allocate more than the manifest claims.
fn decompress(compressed: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let decoder = zstd::stream::read::Decoder::new(compressed)?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, limit.saturating_add(1)),
        &mut out,
    )?;
    Ok(out)
}

fn corrupt(expected: &Expected<'_>, reason: String) -> CheckpointError {
    CheckpointError::CorruptFile {
        id: expected.id,
        file: expected.name.to_string(),
        reason,
    }
}

pub(crate) fn compress(bytes: &[u8], level: i32) -> Result<Bytes, CheckpointError> {
    zstd::bulk::compress(bytes, level)
        .map(Bytes::from)
        .map_err(|e| CheckpointError::Task(format!("zstd compress: {e}")))
}
