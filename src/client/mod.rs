//! The HTTP client: every request goes auth → rate budget → send → retry, shared by all streams.

pub mod auth;
pub mod budget;
pub mod pager;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::config::Config;
use auth::Auth;
use budget::Budget;

/// How many pages of the streams' own general-API lists (up to 2000 records, 0.5 to 3 MB of
/// JSON each) may be held at once, across all streams: waiting for the budget, in flight, or
/// being turned into RECORD lines. Three keep 100 requests per 15 s busy at up to 450 ms a
/// page; child fan-out requests, which are small, do not count (`max_concurrency` bounds them).
pub const PAGES_HELD: usize = 3;

/// The same for report pages (up to 2000 rows, up to 2 MB each): one at a time is ample for
/// 100 requests per 15 minutes.
pub const REPORT_PAGES_HELD: usize = 1;

/// Why a request failed for good.
#[derive(Debug)]
pub enum HttpError {
    /// 403: the token's role (or the account's plan) does not allow this endpoint.
    Forbidden(String),
    /// 404 (Harvest answers an HTML page).
    NotFound(String),
    /// 401 that a refresh did not cure, or a failed OAuth refresh.
    Unauthorized(String),
    /// Retryable failures that went on past the retry limit.
    Exhausted(String),
    /// Any other client error, with Harvest's message.
    Rejected(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Forbidden(m)
            | HttpError::NotFound(m)
            | HttpError::Unauthorized(m)
            | HttpError::Exhausted(m)
            | HttpError::Rejected(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HttpError {}

/// Which rate budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    General,
    /// `/reports/*`, which Harvest limits separately (100 per 15 minutes).
    #[allow(dead_code)]
    Reports,
}

/// Which connections a request uses. hyper keeps each connection's read buffer at the size its
/// largest response needed (0.4 to 0.8 MB after a 2000-record page), for as long as the
/// connection lives. The child fan-out's many small responses go over connections of their
/// own, so that they do not grow a buffer on every connection they touch: only the few that
/// carry the pooled list pages do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A stream's own list pages and reports (the page pool bounds how many at once).
    Pages,
    /// Child lists and single objects.
    Small,
}

/// Per-stream request accounting, for the progress lines.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub pages: AtomicU64,
    pub waited: budget::WaitClock,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
}

/// A response body as Harvest served it, with what the caller's reader made of it: a few
/// bytes per record where a parsed page takes several times more, so pages fetched ahead stay
/// cheap to hold.
pub struct RawPage<T> {
    pub body: bytes::Bytes,
    pub read: T,
    /// The response's `Date` header: when Harvest served it.
    pub served_at: Option<DateTime<Utc>>,
}

pub struct Client {
    http: reqwest::Client,
    /// A second connection pool, for small responses: see [`Lane`].
    http_small: reqwest::Client,
    auth: Auth,
    account_id: HeaderValue,
    base_url: String,
    general: Budget,
    reports: Budget,
    in_flight: Semaphore,
    /// The page pools, one per bucket: see [`Client::pages`].
    pages: Arc<Semaphore>,
    report_pages: Arc<Semaphore>,
    max_retries: u32,
    backoff_base: Duration,
    pub total_requests: AtomicU64,
}

/// A reqwest error in words, without the URL's query (which never holds secrets anyway).
pub fn describe(e: &reqwest::Error) -> String {
    let host = e
        .url()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "the server".into());
    // The innermost cause says what really happened (refused, DNS, TLS...).
    let mut cause: Option<String> = None;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = Some(s.to_string());
        src = s.source();
    }
    let cause = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    if e.is_timeout() {
        format!("no answer from {host} within request_timeout")
    } else if e.is_connect() {
        format!("cannot connect to {host}{cause}")
    } else if e.is_body() || e.is_decode() {
        format!("the response body from {host} was cut short{cause}")
    } else {
        format!("request to {host} failed{cause}")
    }
}

fn http_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_str(&config.user_agent).map_err(|_| {
            anyhow::anyhow!("user_agent holds characters not allowed in an HTTP header")
        })?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
        .pool_max_idle_per_host(64)
        .gzip(true)
        .build()?)
}

impl Client {
    /// Builds the client and settles the credentials (OAuth refresh, account lookup).
    pub async fn connect(config: &Config) -> anyhow::Result<Client> {
        let http = http_client(config)?;
        let auth = Auth::new(config);
        let account = auth.account_id(&http, config.account_id.as_deref()).await?;
        Ok(Client {
            account_id: HeaderValue::from_str(&account)?,
            http_small: http_client(config)?,
            http,
            auth,
            base_url: config.base_url.clone(),
            general: Budget::new("general", config.budget.requests, config.budget.window),
            reports: Budget::new(
                "reports",
                config.reports_budget.requests,
                config.reports_budget.window,
            ),
            in_flight: Semaphore::new(config.max_concurrency),
            pages: Arc::new(Semaphore::new(config.max_concurrency.min(PAGES_HELD))),
            report_pages: Arc::new(Semaphore::new(REPORT_PAGES_HELD)),
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            total_requests: AtomicU64::new(0),
        })
    }

    /// The page pool of a bucket: how many of its list pages may be held at once, from the
    /// request to the last of their RECORD lines. Their sizes bound the tap's memory, whatever
    /// the account's size. One pool per bucket, so that reports waiting out their 15-minute
    /// budget hold no permit the general streams need.
    pub fn pages(&self, bucket: Bucket) -> &Arc<Semaphore> {
        match bucket {
            Bucket::General => &self.pages,
            Bucket::Reports => &self.report_pages,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn waited(&self) -> Duration {
        self.general.waited() + self.reports.waited()
    }

    /// GETs `url` and parses its JSON body. See [`Client::get_raw`].
    pub async fn get(
        &self,
        url: &str,
        endpoint: &str,
        bucket: Bucket,
        counters: &Counters,
    ) -> Result<Value, HttpError> {
        let page = self
            .get_raw(url, endpoint, bucket, Lane::Small, counters, |body| {
                serde_json::from_slice::<Value>(body)
            })
            .await?;
        Ok(page.read)
    }

    /// GETs `url`, retrying what is worth retrying, and reads its body with `read` (one pass
    /// over it). A body that is not complete JSON is retried (it was cut short); one that is
    /// JSON but not what `read` expects is rejected. `endpoint` is the path template used in
    /// logs and metrics.
    pub async fn get_raw<T>(
        &self,
        url: &str,
        endpoint: &str,
        bucket: Bucket,
        lane: Lane,
        counters: &Counters,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<RawPage<T>, HttpError> {
        let http = match lane {
            Lane::Pages => &self.http,
            Lane::Small => &self.http_small,
        };
        let budget = match bucket {
            Bucket::General => &self.general,
            Bucket::Reports => &self.reports,
        };
        let mut failures = 0u32;
        let mut refreshed = false;
        let mut throttled = 0u32;
        loop {
            let token = self
                .auth
                .token(&self.http)
                .await
                .map_err(|e| HttpError::Unauthorized(e.to_string()))?;
            let _in_flight = self.in_flight.acquire().await.expect("never closed");
            let slot = budget.acquire(&counters.waited).await;
            counters.requests.fetch_add(1, Ordering::Relaxed);
            self.total_requests.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let sent = http
                .get(url)
                .bearer_auth(token.expose())
                .header("Harvest-Account-Id", self.account_id.clone())
                .send()
                .await;
            let (status, outcome) = match sent {
                Err(e) => (None, Err(describe(&e))),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let served_at = resp
                        .headers()
                        .get(reqwest::header::DATE)
                        .and_then(|d| d.to_str().ok())
                        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                        .map(|d| d.with_timezone(&Utc));
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match read_body(resp).await {
                        Err(e) => (Some(status), Err(describe(&e))),
                        Ok(body) => (Some(status), Ok((status, served_at, retry_after, body))),
                    }
                }
            };
            drop(slot);
            crate::log::debug(&format!(
                "GET {url} -> {}",
                status.map_or("no response".to_string(), |s| s.to_string())
            ));
            metric(endpoint, status, started.elapsed());
            let failure = match outcome {
                Ok((200..=299, served_at, _, body)) => match read(&body) {
                    Ok(read) => {
                        counters.pages.fetch_add(1, Ordering::Relaxed);
                        return Ok(RawPage { body, read, served_at });
                    }
                    Err(e) if e.is_data() => return Err(HttpError::Rejected(format!("GET {endpoint}: unreadable page: {e}"))),
                    Err(_) => format!("the response body is not complete JSON ({} bytes)", body.len()),
                },
                Ok((429, _, retry_after, _)) => {
                    throttled += 1;
                    counters.throttled.fetch_add(1, Ordering::Relaxed);
                    if throttled > 50 {
                        return Err(HttpError::Exhausted(format!("GET {endpoint}: still throttled (429) after 50 waits")));
                    }
                    budget.pause(retry::retry_after(retry_after.as_deref(), Duration::from_secs(15)));
                    continue;
                }
                Ok((401, ..)) if self.auth.is_oauth() && !refreshed => {
                    refreshed = true;
                    crate::log::info(&format!("GET {endpoint}: 401, refreshing the OAuth access token and retrying"));
                    self.auth.refresh_after_401(&self.http, &token).await.map_err(|e| HttpError::Unauthorized(e.to_string()))?;
                    continue;
                }
                Ok((401, ..)) => {
                    return Err(HttpError::Unauthorized(format!(
                        "GET {endpoint}: Harvest rejected the credentials (401 invalid_token): check the token and account_id"
                    )))
                }
                Ok((403, _, _, body)) => return Err(HttpError::Forbidden(format!("GET {endpoint}: 403 Forbidden: {}", message(&body)))),
                Ok((404, ..)) => return Err(HttpError::NotFound(format!("GET {endpoint}: 404 Not Found"))),
                Ok((s, _, _, body)) if !retry::retryable_status(s) => {
                    return Err(HttpError::Rejected(format!("GET {endpoint}: Harvest answered {s}: {}", message(&body))))
                }
                Ok((s, ..)) => format!("Harvest answered {s}"),
                Err(e) => e,
            };
            failures += 1;
            counters.retries.fetch_add(1, Ordering::Relaxed);
            if failures > self.max_retries {
                return Err(HttpError::Exhausted(format!(
                    "GET {endpoint}: {failure}; gave up after {failures} tries"
                )));
            }
            let wait = retry::backoff(self.backoff_base, failures);
            crate::log::warn(&format!(
                "GET {endpoint}: {failure}; retry {failures}/{} in {:.1} s",
                self.max_retries,
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads a response body into one buffer of its announced size, chunk by chunk. (Collecting
/// the chunks first and then copying them, as `Response::bytes` does, holds every page twice.)
async fn read_body(mut resp: reqwest::Response) -> Result<bytes::Bytes, reqwest::Error> {
    const MAX_PRESIZE: u64 = 64 << 20;
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(MAX_PRESIZE) as usize);
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Harvest's message from an error body (JSON `message` or `error_description`), else a prefix
/// of the text.
fn message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error_description", "error"] {
            if let Some(m) = v.get(key).and_then(Value::as_str) {
                return m.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') {
        "(an HTML page)".into()
    } else {
        text.chars().take(200).collect()
    }
}

fn metric(endpoint: &str, status: Option<u16>, elapsed: Duration) {
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    crate::log::metric(
        "timer",
        "http_request_duration",
        json!(elapsed.as_secs_f64()),
        json!({"endpoint": endpoint, "http_status_code": status, "status": if ok { "succeeded" } else { "failed" }}),
    );
}
