//! Trying again: the deterministic backoff policy, `Retry-After`, and the loop every request (the OCI
//! registry API's included) runs in.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The first retry waits this many milliseconds, each later one twice the one before.
pub const RETRY_BASE_ENV: &str = "STACK_RETRY_BASE_MS";
/// Attempts per request, the first one included.
pub const MAX_ATTEMPTS: u32 = 4;
/// A `Retry-After` longer than this is cut to it: a lock should fail rather than hang for an hour.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// All the waiting between the attempts of one request together: past it, the request gives up
/// (reported as "gave up after N attempts") instead of sleeping through `Retry-After: 100000` thrice.
pub const MAX_TOTAL_RETRY_WAIT: Duration = Duration::from_secs(30);

/// When and how often to try again. Delays are deterministic (no jitter), so tests can reason about them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
}

impl RetryPolicy {
    /// From `STACK_RETRY_BASE_MS` (milliseconds, at most a minute), else 500 ms. A value that is not such
    /// a number is an error naming the variable.
    pub fn from_env() -> Result<RetryPolicy, super::HttpError> {
        let base_ms = super::env_number::<u64>(
            RETRY_BASE_ENV,
            "a number of milliseconds from 0 to 60000",
            |ms| *ms <= 60_000,
        )?
        .unwrap_or(500);
        Ok(RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            base: Duration::from_millis(base_ms),
        })
    }

    /// The wait after the `failed`-th failed attempt (1-based): base, 2·base, 4·base, …
    pub fn backoff(&self, failed: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << failed.saturating_sub(1).min(16))
    }
}

/// What a caller wants to know about a failure to decide whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    No,
    /// After the policy's backoff.
    Backoff,
    /// After what the server asked for (`Retry-After`).
    After(Duration),
}

/// Runs `op` until it succeeds, fails with an error `classify` calls final, or runs out of attempts.
/// Returns the last error and how many attempts were made.
pub async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    mut op: F,
    classify: impl Fn(&E) -> Retry,
) -> Result<T, (E, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    let mut waited = Duration::ZERO;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let wait = match classify(&e) {
                    Retry::No => return Err((e, attempt)),
                    _ if attempt >= policy.max_attempts => return Err((e, attempt)),
                    Retry::Backoff => policy.backoff(attempt),
                    Retry::After(d) => d.min(MAX_RETRY_AFTER),
                };
                if waited + wait > MAX_TOTAL_RETRY_WAIT {
                    return Err((e, attempt));
                }
                waited += wait;
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}
