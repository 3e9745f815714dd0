//! Uploading one file: hash, single put or streamed multipart. Downloads
//! are in `download.rs`.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::error::CheckpointError;
use crate::manifest::checksum_hex;

const READ_CHUNK: usize = 1 << 20;

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

/// Hashes a file in one blocking task; returns (checksum, size).
pub(crate) async fn hash_file(path: &FsPath) -> Result<(String, u64), CheckpointError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || crate::download::hash_path(&path))
        .await
        .map_err(|e| CheckpointError::Task(format!("hash task: {e}")))?
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

pub(crate) fn compress(bytes: &[u8], level: i32) -> Result<Bytes, CheckpointError> {
    zstd::bulk::compress(bytes, level)
        .map(Bytes::from)
        .map_err(|e| CheckpointError::Task(format!("zstd compress: {e}")))
}
