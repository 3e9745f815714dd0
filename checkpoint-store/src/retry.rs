//! Retries with exponential backoff, as a function and as an `ObjectStore` wrapper.
//!
//! The wrapper retries whole requests whose error is retryable (see
//! [`crate::error::is_retryable`]). Streams (list, get bodies) and multipart
//! parts are not retried here: callers retry the whole file instead.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::Rng;

use crate::error::is_retryable;

/// Backoff settings.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryConfig {
    /// Delay before retry number `attempt` (0-based), with full jitter so
    /// that parallel uploads failing together do not retry together.
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let cap = exp.min(self.max_backoff);
        let millis = cap.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis.max(1)))
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error or the
/// retries are used up. `retryable` classifies errors.
pub async fn with_retry<T, E, F, Fut>(
    config: &RetryConfig,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> std::result::Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if attempt < config.max_retries && retryable(&e) => {
                tokio::time::sleep(config.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// An `ObjectStore` that retries retryable request failures.
#[derive(Debug)]
pub struct RetryStore {
    inner: Arc<dyn ObjectStore>,
    config: RetryConfig,
}

impl RetryStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: RetryConfig) -> Self {
        Self { inner, config }
    }

    async fn retry<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        with_retry(&self.config, is_retryable, op).await
    }
}

impl fmt::Display for RetryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retry({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.retry(|| self.inner.put_opts(location, payload.clone(), opts.clone()))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.retry(|| self.inner.put_multipart_opts(location, opts.clone()))
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.retry(|| self.inner.get_opts(location, options.clone()))
            .await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.retry(|| self.inner.delete(location)).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.retry(|| self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.retry(|| self.inner.copy(from, to)).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.retry(|| self.inner.copy_if_not_exists(from, to)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryConfig {
        RetryConfig {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_retryable_then_gives_up() {
        let calls = AtomicU32::new(0);
        let r: std::result::Result<(), &str> = with_retry(
            &fast(),
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("boom")
            },
        )
        .await;
        assert_eq!(r, Err("boom"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let r: std::result::Result<(), &str> = with_retry(
            &fast(),
            |_| false,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("no")
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn succeeds_after_transient_failures() {
        let calls = AtomicU32::new(0);
        let r: std::result::Result<u32, &str> = with_retry(
            &fast(),
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err("transient")
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(r, Ok(2));
    }
}
