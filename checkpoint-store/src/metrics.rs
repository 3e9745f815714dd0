//! An `ObjectStore` wrapper counting requests and bytes (the benchmark reports
//! "bytes uploaded per checkpoint" from it).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// Counters, cheap to clone and read while the store is in use.
#[derive(Debug, Default)]
pub struct Counters {
    pub put_requests: AtomicU64,
    pub put_bytes: AtomicU64,
    pub get_requests: AtomicU64,
    pub get_bytes: AtomicU64,
    pub head_requests: AtomicU64,
    pub list_requests: AtomicU64,
    pub delete_requests: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub put_requests: u64,
    pub put_bytes: u64,
    pub get_requests: u64,
    pub get_bytes: u64,
    pub head_requests: u64,
    pub list_requests: u64,
    pub delete_requests: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            put_requests: r(&self.put_requests),
            put_bytes: r(&self.put_bytes),
            get_requests: r(&self.get_requests),
            get_bytes: r(&self.get_bytes),
            head_requests: r(&self.head_requests),
            list_requests: r(&self.list_requests),
            delete_requests: r(&self.delete_requests),
        }
    }
}

impl Snapshot {
    /// Counts since `earlier`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            put_requests: self.put_requests - earlier.put_requests,
            put_bytes: self.put_bytes - earlier.put_bytes,
            get_requests: self.get_requests - earlier.get_requests,
            get_bytes: self.get_bytes - earlier.get_bytes,
            head_requests: self.head_requests - earlier.head_requests,
            list_requests: self.list_requests - earlier.list_requests,
            delete_requests: self.delete_requests - earlier.delete_requests,
        }
    }
}

/// The counting wrapper.
#[derive(Debug, Clone)]
pub struct MetricsStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl MetricsStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            counters: Default::default(),
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl fmt::Display for MetricsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metrics({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MetricsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        add(&self.counters.put_requests, 1);
        add(&self.counters.put_bytes, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        add(&self.counters.put_requests, 1);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            inner,
            counters: self.counters(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            add(&self.counters.head_requests, 1);
        } else {
            add(&self.counters.get_requests, 1);
        }
        let result = self.inner.get_opts(location, options).await?;
        add(
            &self.counters.get_bytes,
            result.range.end - result.range.start,
        );
        Ok(result)
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        add(&self.counters.head_requests, 1);
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        add(&self.counters.delete_requests, 1);
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        add(&self.counters.list_requests, 1);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        add(&self.counters.list_requests, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        add(&self.counters.put_requests, 1);
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        add(&self.counters.put_requests, 1);
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        add(&self.counters.put_bytes, data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
