//! Deterministic fault injection for tests: an `ObjectStore` wrapper that
//! fails, delays or truncates chosen requests (by operation, path substring
//! and n-th matching call).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// Operation kinds a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    /// Starting a multipart upload.
    PutMultipart,
    /// Completing a multipart upload.
    CompleteMultipart,
    Get,
    Head,
    Delete,
    List,
    Copy,
}

/// What happens to a matching request.
#[derive(Debug, Clone)]
pub enum Action {
    /// A retryable (`Generic`) error; nothing reaches the store.
    Fail,
    /// A permanent (`PermissionDenied`) error; nothing reaches the store.
    FailPermanent,
    /// Sleep, then a retryable error, as a timed-out request.
    Timeout(Duration),
    /// A `NotFound` answer, as a stale read of an object that exists.
    NotFound,
    /// The store keeps only the first `n` bytes of a put (or, for multipart,
    /// only the first part) and the request reports success.
    Truncate(usize),
}

/// One rule: `nth` is 1-based among calls matching `op` and `path_contains`;
/// `None` means every matching call.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    pub path_contains: String,
    pub nth: Option<u64>,
    pub action: Action,
}

impl Fault {
    pub fn new(op: Op, path_contains: &str, nth: Option<u64>, action: Action) -> Self {
        Self {
            op,
            path_contains: path_contains.to_string(),
            nth,
            action,
        }
    }
}

#[derive(Debug, Default)]
struct Rules {
    rules: Vec<(Fault, u64)>,
    injected: u64,
}

/// The fault-injecting wrapper.
#[derive(Debug, Clone)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    rules: Arc<Mutex<Rules>>,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            rules: Default::default(),
        }
    }

    pub fn add(&self, fault: Fault) {
        self.lock().rules.push((fault, 0));
    }

    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many faults were injected so far (tests assert the fault fired).
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, op: Op, path: &Path) -> Option<Action> {
        let mut rules = self.lock();
        let path = path.as_ref();
        let mut hit = None;
        for (fault, count) in rules.rules.iter_mut() {
            if fault.op != op || !path.contains(fault.path_contains.as_str()) {
                continue;
            }
            *count += 1;
            if hit.is_none() && fault.nth.is_none_or(|n| n == *count) {
                hit = Some(fault.action.clone());
            }
        }
        if hit.is_some() {
            rules.injected += 1;
        }
        hit
    }

    async fn gate(&self, op: Op, path: &Path) -> Result<Option<usize>> {
        match self.check(op, path) {
            None => Ok(None),
            Some(Action::Truncate(n)) => Ok(Some(n)),
            Some(Action::Fail) => Err(injected(path, "injected transient failure")),
            Some(Action::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Err(injected(path, "injected timeout"))
            }
            Some(Action::NotFound) => Err(object_store::Error::NotFound {
                path: path.to_string(),
                source: "injected stale read".into(),
            }),
            Some(Action::FailPermanent) => Err(object_store::Error::PermissionDenied {
                path: path.to_string(),
                source: "injected permanent failure".into(),
            }),
        }
    }
}

fn injected(path: &Path, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("{what} on {path}").into(),
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fault({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let payload = match self.gate(Op::Put, location).await? {
            Some(n) => {
                let bytes: bytes::Bytes = payload.into();
                PutPayload::from(bytes.slice(..n.min(bytes.len())))
            }
            None => payload,
        };
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let truncate = self.gate(Op::PutMultipart, location).await?.is_some();
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultUpload {
            inner,
            store: self.clone(),
            location: location.clone(),
            truncate,
            parts: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.gate(op, location).await?;
        self.inner.get_opts(location, options).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.gate(Op::Head, location).await?;
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.gate(Op::Delete, location).await?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.cloned().unwrap_or_default();
        match self.check(Op::List, &path) {
            None | Some(Action::Truncate(_)) => self.inner.list(prefix),
            Some(_) => {
                futures::stream::once(async move { Err(injected(&path, "injected list failure")) })
                    .boxed()
            }
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.gate(Op::List, &prefix.cloned().unwrap_or_default())
            .await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.gate(Op::Copy, to).await?;
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.gate(Op::Copy, to).await?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    store: FaultStore,
    location: Path,
    truncate: bool,
    parts: usize,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts += 1;
        if self.truncate && self.parts > 1 {
            return Box::pin(async { Ok(()) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Err(e) = self.store.gate(Op::CompleteMultipart, &self.location).await {
            let _ = self.inner.abort().await;
            return Err(e);
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
