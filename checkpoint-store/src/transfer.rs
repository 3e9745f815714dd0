//! Uploading one file: hash, single put or streamed multipart, or on a
//! genuine local-folder store a kernel-side copy into a staging name that
//! is then linked into place. Downloads are in `download.rs`.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    GetResultPayload, ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::error::CheckpointError;
use crate::manifest::{abs, checksum_hex};

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

/// The folder holding a job's objects on a genuine local-folder store.
///
/// Uploads into it skip the `ObjectStore` API: a put must hold the whole
/// file in memory (or go multipart, which reads it a second time), while a
/// file copy runs in the kernel. The objects and their names are the same
/// as those `LocalFileSystem` writes, and so is the never-overwrite rule.
#[derive(Debug, Clone)]
pub(crate) struct LocalFolder {
    /// Filesystem path of the job prefix.
    root: PathBuf,
}

/// What `JobStore::from_store` makes of a bare `LocalFileSystem`. Any other
/// wrapper in between (fault injection, metrics) prints differently and
/// keeps every request on the `ObjectStore` path, where it can see them.
const BARE_LOCAL_STORE: &str = "Retry(LocalFileSystem(";

impl LocalFolder {
    /// Recognises a bare local-folder store by its description and finds
    /// the job's folder through an existing object `probe_key` (relative to
    /// `prefix`): the store hands such an object out as an open file with
    /// its filesystem path. `None` means: use the `ObjectStore` path.
    pub(crate) async fn detect(
        store: &Arc<dyn ObjectStore>,
        prefix: &Path,
        probe_key: &str,
    ) -> Option<LocalFolder> {
        if !store.to_string().starts_with(BARE_LOCAL_STORE) {
            return None;
        }
        let result = store.get(&abs(prefix, probe_key)).await.ok()?;
        let GetResultPayload::File(_, file_path) = result.payload else {
            return None;
        };
        let mut root = file_path.clone();
        for _ in probe_key.split('/').filter(|p| !p.is_empty()) {
            if !root.pop() {
                return None;
            }
        }
        let folder = LocalFolder { root };
        (folder.object_path(probe_key) == file_path).then_some(folder)
    }

    /// The file holding the object `key` (a key this crate builds, such as
    /// `shared_key`: plain components, no escaping needed).
    pub(crate) fn object_path(&self, key: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.split('/').filter(|p| !p.is_empty()));
        path
    }
}

/// The version of a local file that was hashed: a copy is only published
/// if the source still is that version after the copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileVersion {
    pub size: u64,
    pub mtime_ns: i128,
    pub inode: u64,
}

impl FileVersion {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(-1);
        FileVersion {
            size: meta.len(),
            mtime_ns,
            inode,
        }
    }
}

/// Copies `src` (hashed as `checksum` when it was `version`) to the object
/// file `dest` unless that exists; returns the bytes written (0 if it
/// existed). The copy goes to a staging name first (`<dest>#<n>`, which
/// `LocalFileSystem` hides from listings, as its own puts do) and is
/// hard-linked into place, so `dest` appears whole or not at all and an
/// existing object is never replaced.
pub(crate) async fn copy_create(
    src: &FsPath,
    dest: PathBuf,
    checksum: &str,
    version: &FileVersion,
) -> Result<u64, CheckpointError> {
    let (src, version, checksum) = (src.to_path_buf(), version.clone(), checksum.to_string());
    tokio::task::spawn_blocking(move || copy_create_blocking(&src, &dest, &checksum, &version))
        .await
        .map_err(|e| CheckpointError::Task(format!("copy task: {e}")))?
}

fn copy_create_blocking(
    src: &FsPath,
    dest: &FsPath,
    checksum: &str,
    version: &FileVersion,
) -> Result<u64, CheckpointError> {
    if std::fs::symlink_metadata(dest).is_ok() {
        // Content-addressed: an existing object has the same bytes.
        return Ok(0);
    }
    let mut input = File::open(src).map_err(|e| CheckpointError::io("open", src, e))?;
    check_version(&input, src, checksum, version)?;
    let (mut output, staging) = create_staging(dest)?;
    let published = (|| {
        // std uses copy_file_range here: no copy through user space.
        let copied = std::io::copy(&mut input, &mut output)
            .map_err(|e| CheckpointError::io("copy", &staging, e))?;
        drop(output);
        check_version(&input, src, checksum, version)?;
        if copied != version.size {
            return Err(changed(src, checksum));
        }
        match std::fs::hard_link(&staging, dest) {
            Ok(()) => Ok(copied),
            Err(e) if e.kind() == IoErrorKind::AlreadyExists => Ok(0),
            Err(e) => Err(CheckpointError::io("link", dest, e)),
        }
    })();
    // The staging name goes in every case (after the link, `dest` holds the data).
    let _ = std::fs::remove_file(&staging);
    published
}

/// Opens a new staging file `<dest>#<n>`, creating the folder if needed.
fn create_staging(dest: &FsPath) -> Result<(File, PathBuf), CheckpointError> {
    let mut n = 1u32;
    let mut created_dir = false;
    loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let staging = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            Err(e) if e.kind() == IoErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == IoErrorKind::NotFound && !created_dir => {
                let dir = dest.parent().unwrap_or(FsPath::new("."));
                std::fs::create_dir_all(dir)
                    .map_err(|e| CheckpointError::io("create_dir", dir, e))?;
                created_dir = true;
            }
            Err(e) => return Err(CheckpointError::io("create", &staging, e)),
        }
    }
}

fn check_version(
    file: &File,
    path: &FsPath,
    checksum: &str,
    version: &FileVersion,
) -> Result<(), CheckpointError> {
    let meta = file
        .metadata()
        .map_err(|e| CheckpointError::io("stat", path, e))?;
    if FileVersion::of(&meta) != *version {
        return Err(changed(path, checksum));
    }
    Ok(())
}

fn changed(path: &FsPath, checksum: &str) -> CheckpointError {
    CheckpointError::FileChanged {
        path: path.to_path_buf(),
        expected: checksum.to_string(),
        found: "unknown (size, mtime or inode changed)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultStore;
    use crate::retry::{RetryConfig, RetryStore};
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;

    fn retrying(store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(RetryStore::new(store, RetryConfig::default()))
    }

    async fn probe(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Option<LocalFolder> {
        store
            .put(&abs(prefix, "checkpoints/chk-1/_manifest"), "{}".into())
            .await
            .unwrap();
        LocalFolder::detect(store, prefix, "checkpoints/chk-1/_manifest").await
    }

    #[tokio::test]
    async fn detects_only_a_bare_local_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let local: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(tmp.path()).unwrap());
        let prefix = Path::from("jobs/j1");
        let folder = probe(&retrying(Arc::clone(&local)), &prefix)
            .await
            .expect("a bare local folder is detected");
        let want = tmp.path().canonicalize().unwrap().join("jobs/j1/a/b.sst");
        assert_eq!(folder.object_path("a/b.sst"), want);

        // Wrappers that must see every request keep the ObjectStore path.
        let faulty: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(Arc::clone(&local)));
        assert!(probe(&retrying(faulty), &prefix).await.is_none());
        assert!(probe(&retrying(Arc::new(InMemory::new())), &prefix)
            .await
            .is_none());
        // Not through JobStore's own retry wrapper: not recognised either.
        assert!(probe(&local, &prefix).await.is_none());
    }

    fn version(path: &FsPath) -> FileVersion {
        FileVersion::of(&std::fs::metadata(path).unwrap())
    }

    fn names(dir: &FsPath) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn copy_create_publishes_whole_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.sst");
        std::fs::write(&src, vec![7u8; 300_000]).unwrap();
        let dest = tmp.path().join("store/shared/x.sst");
        let written = copy_create(&src, dest.clone(), "x", &version(&src))
            .await
            .unwrap();
        assert_eq!(written, 300_000);
        assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 300_000]);
        assert_eq!(names(dest.parent().unwrap()), vec!["x.sst"]);

        // An existing object is left alone (content-addressed).
        std::fs::write(&src, b"other bytes").unwrap();
        let written = copy_create(&src, dest.clone(), "x", &version(&src))
            .await
            .unwrap();
        assert_eq!(written, 0);
        assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 300_000]);
    }

    #[tokio::test]
    async fn copy_create_refuses_a_file_that_changed_since_hashing() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.sst");
        std::fs::write(&src, b"hashed version").unwrap();
        let hashed = version(&src);
        // Replaced by a different file under the same name.
        let other = tmp.path().join("other");
        std::fs::write(&other, b"a newer version!").unwrap();
        std::fs::rename(&other, &src).unwrap();
        let dest = tmp.path().join("store/y.sst");
        let err = copy_create(&src, dest.clone(), "y", &hashed)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CheckpointError::FileChanged { .. }),
            "{err:?}"
        );
        assert!(!dest.exists());
        let store = tmp.path().join("store");
        assert!(
            !store.exists() || names(&store).is_empty(),
            "no staging left"
        );
    }
}
