//! The HTTP client: every request goes auth → rate budget → send → retry, shared by all streams.

pub mod auth;
pub mod budget;
pub mod config;
pub mod odd;
pub mod pager;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use auth::Auth;
use budget::Budget;
use config::ClientConfig as Config;

/// How many pages of the streams' own lists (up to 2000 records, 0.5 to 3 MB of JSON each) may
/// be held at once, across all streams and both rate budgets: waiting for the budget, in flight, or
/// being turned into RECORD lines. Three keep 100 requests per 15 s busy at up to 450 ms a
/// page; child fan-out requests, which are small, do not count (`max_concurrency` bounds them,
/// and [`BIG_BODY`] the odd big one).
pub const PAGES_HELD: usize = 3;

/// Responses outside the page pools (child lists, single objects) are small as a rule: one
/// invoice's messages, one user's project assignments. A few are not: an admin who is on every
/// project has megabytes of them. A response that turns out bigger than this is read only
/// while it holds one of [`BIG_BODIES_HELD`] permits, kept until the caller is done with it,
/// so that the child fan-out's width never multiplies big bodies in memory.
pub const BIG_BODY: usize = 256 << 10;

/// How many big responses outside the page pools may be held at once.
pub const BIG_BODIES_HELD: usize = 1;

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
    /// 422: Harvest cannot process the request for this object (teammates of a user who is
    /// not a manager).
    Unprocessable(String),
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
            | HttpError::Unprocessable(m)
            | HttpError::Rejected(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HttpError {}

/// How a request is read, which connections it uses, which rate budget it draws on (`/reports/*` has its own:
/// 100 per 15 minutes), and what bounds its body in memory. hyper keeps each
/// connection's read buffer at the size its largest response needed (0.4 MB after a
/// 2000-record page) for as long as the connection lives. The child fan-out's many small
/// responses go over connections of their own, so that they do not grow a buffer on every
/// connection they touch: only the few that carry the pooled list pages do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A page of a stream's own list; the pager holds its page-pool permit, and fetches
    /// page-mode pages ahead (up to `max_concurrency`) as far as the pool allows.
    Pages,
    /// A report page, on the same connections and the reports' budget: it takes its page-pool
    /// permit itself, only
    /// once the reports' budget has a slot for it, so that a report waiting out its 15-minute
    /// budget never holds a permit the general streams need. The permit comes back with the
    /// page.
    Report,
    /// Child lists (one parent's) and single objects, a page at a time; a big one waits its
    /// turn (see [`BIG_BODY`]).
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
    /// Responses the stream is known to need so far (a list's `total_pages`, one per parent
    /// of a child list, one per report window): with `pages`, what is left, for the ETA.
    pub planned: AtomicU64,
    /// `total_entries` of the list being read, when Harvest told it.
    pub total_entries: AtomicU64,
    /// The stream these requests are for (metric tags).
    pub stream: std::sync::OnceLock<&'static str>,
}

/// A response body as Harvest served it, with what the caller's reader made of it: a few
/// bytes per record where a parsed page takes several times more, so pages fetched ahead stay
/// cheap to hold.
pub struct RawPage<T> {
    pub body: bytes::Bytes,
    pub read: T,
    /// The response's `Date` header: when Harvest served it.
    pub served_at: Option<DateTime<Utc>>,
    /// The permit that lets this body be held (a report page's, or a big body's: see
    /// [`Lane`]), released with it.
    pub held: Option<OwnedSemaphorePermit>,
    /// The body held bytes that are not UTF-8, replaced by U+FFFD before it was read.
    pub repaired_utf8: bool,
}

pub struct Client {
    http: reqwest::Client,
    /// A second connection pool, for small responses: see [`Lane`].
    http_small: reqwest::Client,
    auth: Auth,
    account_id: HeaderValue,
    base_url: String,
    /// Where API requests may go: under `base_url`.
    origins: Origins,
    general: Budget,
    reports: Budget,
    in_flight: Semaphore,
    /// The page pool: see [`Client::pages`].
    pages: Arc<Semaphore>,
    /// Permits for big responses on the Small lane: see [`BIG_BODY`].
    big_bodies: Arc<Semaphore>,
    max_retries: u32,
    backoff_base: Duration,
    /// `max_response_mb`, in bytes.
    max_body: usize,
    /// `max_concurrency`: how many pages a list fetches ahead at most.
    width: usize,
    pub total_requests: AtomicU64,
    /// Why Harvest refused the credentials, asked of Harvest ID once a run.
    diagnosis: tokio::sync::OnceCell<String>,
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

/// Where the tap may send its credentials: the API under `base_url` and Harvest ID under
/// `auth_url`, each its scheme, host, port and path prefix. A link or redirect elsewhere (another
/// port, `localhost` for `127.0.0.1`, another host) is never followed.
#[derive(Debug, Clone)]
pub struct Origins(Vec<(String, String, Option<u16>, String)>);

impl Origins {
    pub fn new(bases: &[&str]) -> Origins {
        Origins(
            bases
                .iter()
                .filter_map(|b| reqwest::Url::parse(b).ok())
                .map(|u| {
                    let prefix = u.path().trim_end_matches('/').to_string();
                    (
                        u.scheme().to_string(),
                        u.host_str().unwrap_or("").to_string(),
                        u.port_or_known_default(),
                        prefix,
                    )
                })
                .collect(),
        )
    }

    /// Whether `url` lies under one of the origins (and path prefixes).
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let path = url.path();
        self.0.iter().any(|(scheme, host, port, prefix)| {
            url.scheme() == scheme
                && url.host_str() == Some(host.as_str())
                && url.port_or_known_default() == *port
                && (path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty())
                && url.username().is_empty()
                && url.password().is_none()
        })
    }

    pub fn allows_str(&self, url: &str) -> bool {
        reqwest::Url::parse(url).is_ok_and(|u| self.allows(&u))
    }
}

pub use crate::util::shown_link;

fn http_client(config: &Config, idle: usize) -> anyhow::Result<reqwest::Client> {
    let origins = Origins::new(&[&config.base_url, &config.auth_url]);
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
        .pool_max_idle_per_host(idle)
        .gzip(true)
        // Redirects within base_url's (or auth_url's) origin and path only, a few at most; any
        // other is not followed, and its 3xx fails the request.
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() < 5 && origins.allows(attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()?)
}

impl Client {
    /// Builds the client and settles the credentials (OAuth refresh, account lookup).
    pub async fn connect(config: &Config) -> anyhow::Result<Client> {
        // The Pages lane keeps no more connections than pages can be in flight at once.
        let http = http_client(config, PAGES_HELD)?;
        warn_if_clear_text(config);
        let auth = Auth::new(config);
        let account = auth.account_id(&http, config.account_id.as_deref()).await?;
        Ok(Client {
            account_id: HeaderValue::from_str(&account)?,
            http_small: http_client(config, config.max_concurrency)?,
            http,
            auth,
            base_url: config.base_url.clone(),
            origins: Origins::new(&[&config.base_url]),
            general: Budget::new("general", config.budget.requests, config.budget.window),
            reports: Budget::new(
                "reports",
                config.reports_budget.requests,
                config.reports_budget.window,
            ),
            in_flight: Semaphore::new(config.max_concurrency),
            pages: Arc::new(Semaphore::new(config.max_concurrency.min(PAGES_HELD))),
            big_bodies: Arc::new(Semaphore::new(BIG_BODIES_HELD)),
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            max_body: config.max_response_bytes,
            width: config.max_concurrency,
            total_requests: AtomicU64::new(0),
            diagnosis: tokio::sync::OnceCell::new(),
        })
    }

    /// The page pool: how many list and report pages may be held at once, from the request to
    /// the last of their RECORD lines. Their sizes bound the tap's memory, whatever the
    /// account's size.
    pub fn pages(&self) -> &Arc<Semaphore> {
        &self.pages
    }

    /// How many pages of a list may be requested at once.
    pub fn width(&self) -> usize {
        self.width
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
        counters: &Counters,
    ) -> Result<Value, HttpError> {
        let page = self
            .get_raw(url, endpoint, Lane::Small, counters, |body| {
                serde_json::from_slice::<Value>(body)
            })
            .await?;
        Ok(page.read)
    }

    /// Waits for what a request needs before it is sent: its rate-budget slot, an in-flight
    /// permit and, for a report page, a page-pool permit. A report takes its budget slot
    /// first, then its page permit: see `Lane::Report`. No wait here is for something a holder
    /// of a later one waits for, so the three kinds of permit cannot deadlock.
    async fn admit<'a>(
        &'a self,
        lane: Lane,
        budget: &'a Budget,
        counters: &Counters,
    ) -> (
        budget::Slot,
        Option<OwnedSemaphorePermit>,
        tokio::sync::SemaphorePermit<'a>,
    ) {
        if lane == Lane::Report {
            let slot = budget.acquire(&counters.waited).await;
            let permit = self.pages.clone().acquire_owned().await;
            let in_flight = self.in_flight.acquire().await.expect("never closed");
            (slot, Some(permit.expect("never closed")), in_flight)
        } else {
            let in_flight = self.in_flight.acquire().await.expect("never closed");
            (budget.acquire(&counters.waited).await, None, in_flight)
        }
    }

    /// GETs `url`, retrying what is worth retrying, and reads its body with `read` (one pass
    /// over it). A body that is not complete JSON is retried (it was cut short); one that is
    /// JSON but not what `read` expects is rejected. `endpoint` is the path template used in
    /// logs and metrics.
    pub async fn get_raw<T>(
        &self,
        url: &str,
        endpoint: &str,
        lane: Lane,
        counters: &Counters,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<RawPage<T>, HttpError> {
        let (http, gate) = match lane {
            Lane::Pages | Lane::Report => (&self.http, None),
            Lane::Small => (&self.http_small, Some(&self.big_bodies)),
        };
        let budget = if lane == Lane::Report {
            &self.reports
        } else {
            &self.general
        };
        if !self.origins.allows_str(url) {
            return Err(HttpError::Rejected(format!(
                "GET {endpoint}: refused to follow {}: it is not under base_url {} (the token is only sent there)",
                shown_link(url),
                shown_link(&self.base_url)
            )));
        }
        let mut failures = 0u32;
        let mut refreshed = false;
        let mut throttled = 0u32;
        // Waited on 429s for this one request: past ten windows it fails.
        let mut throttled_for = Duration::ZERO;
        loop {
            let token = self
                .auth
                .token(&self.http)
                .await
                .map_err(|e| HttpError::Unauthorized(e.to_string()))?;
            let (slot, report_permit, _in_flight) = self.admit(lane, budget, counters).await;
            counters.requests.fetch_add(1, Ordering::Relaxed);
            self.total_requests.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let sent = http
                .get(url)
                .bearer_auth(token.expose())
                .header("Harvest-Account-Id", self.account_id.clone())
                .send()
                .await;
            let (status, outcome) = receive(sent, gate, self.max_body).await;
            drop(slot);
            crate::log::debug(&format!(
                "GET {url} -> {}",
                status.map_or("no response".to_string(), |s| s.to_string())
            ));
            metric(endpoint, counters, status, started.elapsed());
            let failure = match outcome {
                Err(Trouble::Retry(e)) => e,
                Err(Trouble::Fatal(e)) => {
                    return Err(HttpError::Rejected(format!("GET {endpoint}: {e}")));
                }
                Ok((200..=299, served_at, _, (mut body, big))) => {
                    let mut parsed = read(&body);
                    let mut repaired_utf8 = false;
                    if parsed.as_ref().is_err_and(|e| e.is_syntax())
                        && std::str::from_utf8(&body).is_err()
                    {
                        // Bytes that are not UTF-8 are not a cut body: they are replaced
                        // (U+FFFD), and the records they were in are named when read.
                        body = bytes::Bytes::from(String::from_utf8_lossy(&body).into_owned());
                        repaired_utf8 = true;
                        parsed = read(&body);
                        crate::log::warn(&format!(
                            "GET {endpoint}: the response holds bytes that are not UTF-8; they are replaced by U+FFFD"
                        ));
                    }
                    match parsed {
                        Ok(read) => {
                            counters.pages.fetch_add(1, Ordering::Relaxed);
                            let held = report_permit.or(big);
                            return Ok(RawPage {
                                body,
                                read,
                                served_at,
                                held,
                                repaired_utf8,
                            });
                        }
                        Err(e) if e.is_data() => {
                            let why = format!("GET {endpoint}: unreadable page: {e}");
                            return Err(HttpError::Rejected(why));
                        }
                        Err(_) => format!(
                            "the response body is not complete JSON ({} bytes)",
                            body.len()
                        ),
                    }
                }
                Ok((429, _, retry_after, _)) => {
                    throttled += 1;
                    counters.throttled.fetch_add(1, Ordering::Relaxed);
                    if throttled > 50 || throttled_for > budget.window() * 10 {
                        let why = format!(
                            "GET {endpoint}: still throttled (429) after {throttled} waits ({:.0} s)",
                            throttled_for.as_secs_f64()
                        );
                        return Err(HttpError::Exhausted(why));
                    }
                    let fallback = Duration::from_secs(15);
                    let wait = retry::capped_retry_after(
                        retry_after.as_deref(),
                        fallback,
                        budget.window(),
                        endpoint,
                    );
                    throttled_for += wait;
                    budget.pause(wait);
                    continue;
                }
                Ok((401, ..)) if self.auth.is_oauth() && !refreshed => {
                    refreshed = true;
                    crate::log::info(&format!(
                        "GET {endpoint}: 401, refreshing the OAuth access token and retrying"
                    ));
                    self.auth
                        .refresh_after_401(&self.http, &token)
                        .await
                        .map_err(|e| HttpError::Unauthorized(e.to_string()))?;
                    continue;
                }
                Ok((401, ..)) => {
                    let account = self.account_id.to_str().unwrap_or("");
                    let why = self
                        .diagnosis
                        .get_or_init(|| self.auth.diagnose_401(&self.http, &token, account))
                        .await;
                    return Err(HttpError::Unauthorized(format!(
                        "GET {endpoint}: Harvest refused the credentials (401): {why}"
                    )));
                }
                Ok((s, _, _, (body, _))) if !retry::retryable_status(s) => {
                    return Err(refusal(endpoint, s, &body));
                }
                Ok((s, _, retry_after, _)) => {
                    // A 503 that says when to come back is waited out (capped), not backed off.
                    if let (503, Some(h)) = (s, retry_after.as_deref()) {
                        failures += 1;
                        counters.retries.fetch_add(1, Ordering::Relaxed);
                        if failures > self.max_retries {
                            return Err(HttpError::Exhausted(format!(
                                "GET {endpoint}: Harvest answered 503; gave up after {failures} tries"
                            )));
                        }
                        let wait = retry::capped_retry_after(
                            Some(h),
                            retry::backoff(self.backoff_base, failures),
                            budget.window(),
                            endpoint,
                        );
                        crate::log::warn(&format!(
                            "GET {endpoint}: Harvest answered 503; retry {failures}/{} in {:.1} s (Retry-After)",
                            self.max_retries,
                            wait.as_secs_f64()
                        ));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    format!("Harvest answered {s}")
                }
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

/// A response's status, `Date`, `Retry-After` and body (with its big-body permit), or what
/// went wrong on the way.
type Received = (
    u16,
    Option<DateTime<Utc>>,
    Option<String>,
    (bytes::Bytes, Option<OwnedSemaphorePermit>),
);

/// A request that went wrong: worth another try, or not.
enum Trouble {
    Retry(String),
    Fatal(String),
}

async fn receive(
    sent: Result<reqwest::Response, reqwest::Error>,
    gate: Option<&Arc<Semaphore>>,
    max_body: usize,
) -> (Option<u16>, Result<Received, Trouble>) {
    let resp = match sent {
        Err(e) if e.is_builder() || e.is_request() && !e.is_timeout() && !e.is_connect() => {
            // The request itself cannot be made (a header value that cannot be sent):
            // another try makes the same request.
            return (None, Err(Trouble::Fatal(describe(&e))));
        }
        Err(e) => return (None, Err(Trouble::Retry(describe(&e)))),
        Ok(resp) => resp,
    };
    let status = resp.status().as_u16();
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let served_at = header(reqwest::header::DATE)
        .and_then(|d| DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| d.with_timezone(&Utc));
    let retry_after = header(reqwest::header::RETRY_AFTER);
    match read_body(resp, gate, max_body).await {
        Err(BodyError::Http(e)) => (Some(status), Err(Trouble::Retry(describe(&e)))),
        Err(BodyError::TooBig) => (
            Some(status),
            Err(Trouble::Fatal(format!(
                "the response is larger than max_response_mb ({} MB); not read",
                max_body >> 20
            ))),
        ),
        Ok(body) => (Some(status), Ok((status, served_at, retry_after, body))),
    }
}

enum BodyError {
    Http(reqwest::Error),
    /// Larger than `max_response_mb`.
    TooBig,
}

/// The error for a status that is not retried.
fn refusal(endpoint: &str, status: u16, body: &[u8]) -> HttpError {
    match status {
        401 => HttpError::Unauthorized(format!(
            "GET {endpoint}: Harvest rejected the credentials (401 invalid_token): check the token and account_id"
        )),
        403 => HttpError::Forbidden(format!("GET {endpoint}: 403 Forbidden: {}", message(body))),
        404 => HttpError::NotFound(format!("GET {endpoint}: 404 Not Found")),
        422 => HttpError::Unprocessable(format!(
            "GET {endpoint}: Harvest answered 422: {}",
            message(body)
        )),
        s @ 300..=399 => HttpError::Rejected(format!(
            "GET {endpoint}: Harvest answered {s}, a redirect outside base_url (not followed: the token is only sent there)"
        )),
        s => HttpError::Rejected(format!("GET {endpoint}: Harvest answered {s}: {}", message(body))),
    }
}

/// Reads a response body into one buffer of its announced size, chunk by chunk. (Collecting
/// the chunks first and then copying them, as `Response::bytes` does, holds every page twice.)
/// With a `gate`, a body bigger than [`BIG_BODY`] (announced, or found while reading) waits
/// for a permit before it is read further, and comes back with it; until then it stays in
/// the connection.
async fn read_body(
    mut resp: reqwest::Response,
    gate: Option<&Arc<Semaphore>>,
    max_body: usize,
) -> Result<(bytes::Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    const MAX_PRESIZE: u64 = 64 << 20;
    let announced = resp.content_length().unwrap_or(0);
    if announced > max_body as u64 {
        return Err(BodyError::TooBig);
    }
    let mut big = None;
    let take = |gate: &Arc<Semaphore>| gate.clone().acquire_owned();
    if let Some(gate) = gate.filter(|_| announced > BIG_BODY as u64) {
        big = Some(take(gate).await.expect("never closed"));
    }
    let mut body = Vec::with_capacity(announced.min(MAX_PRESIZE) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > max_body {
            return Err(BodyError::TooBig);
        }
        if big.is_none() && body.len() + chunk.len() > BIG_BODY {
            if let Some(gate) = gate {
                big = Some(take(gate).await.expect("never closed"));
            }
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.into(), big))
}

/// The longest error message shown from a response.
const MESSAGE_CHARS: usize = 200;

/// Harvest's message from an error body: its JSON `message`, `error_description` or `error`,
/// at most [`MESSAGE_CHARS`] characters on one line. Nothing else of a body is shown (it may
/// echo the request).
fn message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error_description", "error"] {
            if let Some(m) = v.get(key).and_then(Value::as_str) {
                let one_line: String = crate::log::redact(m)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(MESSAGE_CHARS)
                    .collect();
                return one_line;
            }
        }
        return "(no message)".into();
    }
    if body.trim_ascii_start().starts_with(b"<") {
        "(an HTML page)".into()
    } else {
        format!("(a body of {} bytes that is not JSON)", body.len())
    }
}

/// Warns when credentials would travel in clear text: an `http://` `base_url` or `auth_url`
/// to a host that is not this machine.
fn warn_if_clear_text(config: &Config) {
    for (key, url) in [
        ("base_url", &config.base_url),
        ("auth_url", &config.auth_url),
    ] {
        let Ok(u) = reqwest::Url::parse(url) else {
            continue;
        };
        let host = u.host_str().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let used = key == "base_url"
            || config.account_id.is_none()
            || matches!(config.auth, config::Credentials::OAuth { .. });
        if u.scheme() == "http" && !loopback && used {
            crate::log::warn(&format!(
                "{key} is plain http:// to {}: the credentials travel unencrypted; use https://",
                u.host_str().unwrap_or("?")
            ));
        }
    }
}

fn metric(endpoint: &str, counters: &Counters, status: Option<u16>, elapsed: Duration) {
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let stream = counters.stream.get().copied().unwrap_or("");
    crate::log::metric(
        "timer",
        "http_request_duration",
        json!(elapsed.as_secs_f64()),
        json!({"stream": stream, "endpoint": endpoint, "http_status_code": status, "status": if ok { "succeeded" } else { "failed" }}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A loopback HTTP server whose `/big` answers a JSON body over [`BIG_BODY`] and whose
    /// other paths answer a small one.
    fn server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut conn = conn;
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut line = String::new();
                        while reader.read_line(&mut line).unwrap_or(0) > 2 {
                            line.clear();
                        }
                        let size = if request.contains("/big") {
                            BIG_BODY + 1000
                        } else {
                            100
                        };
                        let body = format!(r#"{{"x":"{}"}}"#, "a".repeat(size));
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if conn.write_all(head.as_bytes()).is_err()
                            || conn.write_all(body.as_bytes()).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}/v2")
    }

    async fn client(base_url: &str, reports_per_minute: u32) -> Arc<Client> {
        let config = crate::config::Config::from_value(&json!({
            "access_token": "t", "account_id": "1", "start_date": "2020-01-01T00:00:00Z",
            "user_agent": "test (t@example.com)", "base_url": base_url,
            "reports_rate_limit_requests": reports_per_minute,
            "reports_rate_limit_window_seconds": 60,
        }))
        .unwrap()
        .client;
        Arc::new(Client::connect(&config).await.unwrap())
    }

    async fn get(client: &Arc<Client>, path: &str, lane: Lane) -> RawPage<()> {
        let counters = Counters::default();
        let url = client.url(path);
        client
            .get_raw(&url, path, lane, &counters, |_| Ok(()))
            .await
            .unwrap()
    }

    /// Starts a GET that must still be waiting a while later (`why` it must not be done).
    async fn stalled(
        client: &Arc<Client>,
        path: &'static str,
        lane: Lane,
        why: &str,
    ) -> tokio::task::JoinHandle<RawPage<()>> {
        let c = client.clone();
        let task = tokio::spawn(async move { get(&c, path, lane).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!task.is_finished(), "{why}");
        task
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_bodies_outside_the_pool_are_held_one_at_a_time() {
        let client = client(&server(), 100).await;
        let first = get(&client, "/big", Lane::Small).await;
        assert!(first.held.is_some() && first.body.len() > BIG_BODY);
        let why = "a second big body was read while one is held";
        let second = stalled(&client, "/big", Lane::Small, why).await;
        // Small bodies do not wait, nor do list pages (their pool bounds them).
        assert!(get(&client, "/small", Lane::Small).await.held.is_none());
        assert!(get(&client, "/big", Lane::Pages).await.held.is_none());
        drop(first);
        let second = second.await.unwrap();
        assert!(second.held.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_page_takes_a_page_permit_after_its_budget_slot() {
        // Waiting for the reports' budget, a report holds no page permit.
        let client = client(&server(), 1).await;
        drop(get(&client, "/reports/x", Lane::Report).await);
        let why = "the reports' budget let a second report through";
        let report = stalled(&client, "/reports/x", Lane::Report, why).await;
        assert_eq!(client.pages().available_permits(), PAGES_HELD);
        report.abort();

        // With a slot and no permit free, it waits for a permit.
        let client = self::client(&server(), 100).await;
        let taken = client
            .pages()
            .clone()
            .acquire_many_owned(PAGES_HELD as u32)
            .await
            .unwrap();
        let why = "a report page was requested with no permit free";
        let report = stalled(&client, "/reports/x", Lane::Report, why).await;
        // Meanwhile the report holds no connection slot: other requests go on.
        assert!(get(&client, "/small", Lane::Small).await.held.is_none());
        drop(taken);
        let page = report.await.unwrap();
        assert!(page.held.is_some());
        assert_eq!(client.pages().available_permits(), PAGES_HELD - 1);
        drop(page);
        assert_eq!(client.pages().available_permits(), PAGES_HELD);
    }
}
