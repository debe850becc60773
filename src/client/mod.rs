//! The HTTP client, shared by all streams. Every GET goes down the request path, a layer at a
//! time, each a small type with one job (after tower's layers and octocrab's request path):
//!
//! 1. **Admission** ([`admit`]): the request waits for a slot of its rate budget
//!    ([`budget`]: general, or the reports' own), an in-flight permit (`max_concurrency`)
//!    and, for a report page, a page-pool permit (see [`Lane`]).
//! 2. **Authentication** ([`auth::Authenticator`]): the request is signed with the access
//!    token (refreshed before it expires) and the account's id.
//! 3. **The send** ([`send`]): one HTTP exchange over the lane's connections; the body is
//!    read under `max_response_mb` (a big one on the Small lane under a big-body permit), and
//!    the budget slot goes back once it is read. A 2xx body is then read by the caller's
//!    reader ([`Client::get_raw`]).
//! 4. **The retry policy** ([`retry::RetryPolicy`]), a value: what a try came to (an
//!    [`retry::Outcome`]) makes a [`retry::Decision`]: back off and send again (5xx, no
//!    response, a cut body), hold the whole budget for a 429's `Retry-After`, refresh the
//!    token once on a 401, or give up with the [`HttpError`] to report.
//!
//! [`Client::get_raw`] is the loop that runs a request through the layers until the policy
//! says it is done; [`pager`] reads lists over it, a page at a time or a few ahead.

pub mod admit;
pub mod auth;
pub mod budget;
pub mod config;
pub mod odd;
pub mod pager;
pub mod retry;
pub mod send;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::util::shown_link;
use admit::{Admission, Ticket};
pub use auth::Account;
use auth::{Auth, Authenticator};
use budget::Budget;
use config::{Accounts, ClientConfig, Credentials};
use retry::{Attempts, Decision, Outcome, RetryPolicy};
use send::{Response, Sender};

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

/// The HTTP client: the four layers of the request path (see the module's doc), shared by
/// all streams.
pub struct Client {
    /// Layer 1: the rate budgets, and the permits that bound what is in flight and held
    /// (shared by the clients of one token's accounts, unless each has a budget of its own).
    admission: Arc<Admission>,
    /// Layer 2: the credentials each try is signed with.
    auth: Authenticator,
    /// Layer 3: the connections, and the bound on a body.
    sender: Arc<Sender>,
    /// Layer 4: which outcomes are tried again, and when.
    retry: RetryPolicy,
    base_url: String,
    /// Where API requests may go: under `base_url`.
    origins: Origins,
    /// `max_concurrency`: how many pages a list fetches ahead at most.
    width: usize,
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

/// The rate budgets and permits of `config`.
fn admission(config: &ClientConfig) -> Admission {
    let (general, reports) = (&config.budget, &config.reports_budget);
    Admission::new(
        Budget::new("general", general.requests, general.window),
        Budget::new("reports", reports.requests, reports.window),
        config.max_concurrency,
    )
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

impl Client {
    /// Builds the client and settles the credentials (OAuth refresh, account lookup).
    pub async fn connect(config: &ClientConfig) -> anyhow::Result<Client> {
        let mut all = Client::connect_accounts(config).await?;
        Ok(all.swap_remove(0).0)
    }

    /// A client for each account the config names (`account_id`: one, a list, `"*"`), with
    /// the account as Harvest ID lists it: one token and one set of connections for all, and
    /// one rate budget unless `budget_per_account`.
    pub async fn connect_accounts(config: &ClientConfig) -> anyhow::Result<Vec<(Client, Account)>> {
        let sender = Sender::new(send::Settings {
            origins: Origins::new(&[&config.base_url, &config.auth_url]),
            user_agent: &config.user_agent,
            request_timeout: config.request_timeout,
            width: config.max_concurrency,
            max_body: config.max_response_bytes,
        })?;
        warn_if_clear_text(config);
        let auth = Auth::new(config);
        let accounts = match config.accounts {
            Accounts::First => {
                let id = auth.account_id(sender.id_http(), None).await?;
                vec![Account {
                    id,
                    name: String::new(),
                    harvest: true,
                }]
            }
            _ => auth.accounts(sender.id_http(), &config.accounts).await?,
        };
        let account = accounts[0].id.clone();
        let general = &config.budget;
        let first = Client {
            retry: RetryPolicy {
                max_retries: config.max_retries,
                backoff_base: config.backoff_base,
                refresh_on_401: auth.is_oauth(),
                window: general.window,
            },
            auth: Authenticator::new(Arc::new(auth), HeaderValue::from_str(&account)?),
            admission: Arc::new(admission(config)),
            sender: Arc::new(sender),
            base_url: config.base_url.clone(),
            origins: Origins::new(&[&config.base_url]),
            width: config.max_concurrency,
            total_requests: AtomicU64::new(0),
        };
        let others = accounts[1..]
            .iter()
            .map(|a| first.for_account(&a.id, !config.budget_per_account, config))
            .collect::<anyhow::Result<Vec<Client>>>()?;
        let mut accounts = accounts.into_iter();
        let mut out = vec![(first, accounts.next().expect("one account at least"))];
        out.extend(others.into_iter().zip(accounts));
        Ok(out)
    }

    /// A client of another account of the same token: the same token (and its refreshes) and
    /// connections; the same rate budgets when `shared_budget`, else budgets of its own (from
    /// `config`); its own request count.
    pub fn for_account(
        &self,
        account: &str,
        shared_budget: bool,
        config: &ClientConfig,
    ) -> anyhow::Result<Client> {
        Ok(Client {
            retry: self.retry,
            auth: self.auth.for_account(HeaderValue::from_str(account)?),
            admission: if shared_budget {
                self.admission.clone()
            } else {
                Arc::new(admission(config))
            },
            sender: self.sender.clone(),
            base_url: self.base_url.clone(),
            origins: self.origins.clone(),
            width: self.width,
            total_requests: AtomicU64::new(0),
        })
    }

    /// The account this client reads.
    pub fn account(&self) -> &str {
        self.auth.account()
    }

    /// The page pool: how many list and report pages may be held at once, from the request to
    /// the last of their RECORD lines. Their sizes bound the tap's memory, whatever the
    /// account's size.
    pub fn pages(&self) -> &Arc<Semaphore> {
        self.admission.pages()
    }

    /// How many pages of a list may be requested at once.
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn waited(&self) -> Duration {
        self.admission.waited()
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

    /// GETs `url`, retrying what is worth retrying, and reads its body with `read` (one pass
    /// over it). A body that is not complete JSON is retried (it was cut short); one that is
    /// JSON but not what `read` expects is rejected. `endpoint` is the path template used in
    /// logs and metrics. Each try goes through the layers: the token (layer 2) first, then
    /// admission (1), the signed request sent (3), and its outcome judged by the policy (4);
    /// the try's permits are held until what the policy decided is done.
    pub async fn get_raw<T>(
        &self,
        url: &str,
        endpoint: &str,
        lane: Lane,
        counters: &Counters,
        read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<RawPage<T>, HttpError> {
        self.check_origin(url, endpoint)?;
        let budget = self.admission.budget(lane);
        let policy = self.retry.within(budget.window());
        let mut attempts = Attempts::new(endpoint);
        let http = self.sender.id_http();
        loop {
            let token = self.auth.token(http).await?;
            let (slot, mut ticket) = self.admission.admit(lane, counters).await;
            let request = self.auth.sign(self.sender.get(lane, url), &token);
            let tried = self.try_once(request, slot, &mut ticket, (url, endpoint, lane), counters);
            let outcome = match tried.await.and_then(|r| read_2xx(endpoint, r, &read)) {
                Ok(mut page) => {
                    counters.pages.fetch_add(1, Ordering::Relaxed);
                    page.held = ticket.into_held(page.held.take());
                    return Ok(page);
                }
                Err(outcome) => outcome,
            };
            match decide_and_count(&policy, &mut attempts, &outcome, counters) {
                Decision::Retry { after, warning } => {
                    crate::log::warn(&warning);
                    tokio::time::sleep(after).await;
                }
                Decision::Pause(wait) => budget.pause(wait),
                Decision::Refresh => self.auth.refresh(http, endpoint, &token).await?,
                Decision::Refused => return Err(self.auth.refused(http, endpoint, &token).await),
                Decision::GiveUp(e) => return Err(e),
            }
            drop(ticket);
        }
    }

    /// A request may only go under `base_url`: the token is only sent there.
    fn check_origin(&self, url: &str, endpoint: &str) -> Result<(), HttpError> {
        if self.origins.allows_str(url) {
            return Ok(());
        }
        Err(HttpError::Rejected(format!(
            "GET {endpoint}: refused to follow {}: it is not under base_url {} (the token is only sent there)",
            shown_link(url),
            shown_link(&self.base_url)
        )))
    }

    /// One try: `request` sent, counted, logged and timed; a 2xx response, or what else it
    /// came to. The big-body permit of a response that is not a 2xx stays with the `ticket`.
    async fn try_once(
        &self,
        request: reqwest::RequestBuilder,
        slot: budget::Slot,
        ticket: &mut Ticket<'_>,
        (url, endpoint, lane): (&str, &str, Lane),
        counters: &Counters,
    ) -> Result<Response, Outcome> {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        self.total_requests.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let gate = self.admission.big_body_gate(lane);
        let (status, received) = self.sender.send(request, slot, gate).await;
        crate::log::debug(&format!(
            "GET {url} -> {}",
            status.map_or("no response".to_string(), |s| s.to_string())
        ));
        metric(endpoint, counters, status, started.elapsed());
        match received? {
            r if (200..300).contains(&r.status) => Ok(r),
            r => {
                ticket.keep(r.big);
                Err(Outcome::Status {
                    code: r.status,
                    retry_after: r.retry_after,
                    body: r.body,
                })
            }
        }
    }
}

/// The policy's decision on `outcome`, with the failures and 429s it noted counted for the
/// progress lines.
fn decide_and_count(
    policy: &RetryPolicy,
    attempts: &mut Attempts,
    outcome: &Outcome,
    counters: &Counters,
) -> Decision {
    let (failures, throttled) = (attempts.failures, attempts.throttled);
    let decision = policy.decide(attempts, outcome);
    let (failed, waited) = (attempts.failures - failures, attempts.throttled - throttled);
    if failed > 0 {
        counters
            .retries
            .fetch_add(u64::from(failed), Ordering::Relaxed);
    }
    if waited > 0 {
        counters
            .throttled
            .fetch_add(u64::from(waited), Ordering::Relaxed);
    }
    decision
}

/// A 2xx response read with `read`. Bytes that are not UTF-8 are not a cut body: they are
/// replaced (U+FFFD), and the records they were in are named when read.
fn read_2xx<T>(
    endpoint: &str,
    response: Response,
    read: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<RawPage<T>, Outcome> {
    let Response {
        mut body,
        served_at,
        big,
        ..
    } = response;
    let mut parsed = read(&body);
    let mut repaired_utf8 = false;
    if parsed.as_ref().is_err_and(|e| e.is_syntax()) && std::str::from_utf8(&body).is_err() {
        body = bytes::Bytes::from(String::from_utf8_lossy(&body).into_owned());
        repaired_utf8 = true;
        parsed = read(&body);
        crate::log::warn(&format!(
            "GET {endpoint}: the response holds bytes that are not UTF-8; they are replaced by U+FFFD"
        ));
    }
    match parsed {
        Ok(read) => Ok(RawPage {
            body,
            read,
            served_at,
            held: big,
            repaired_utf8,
        }),
        Err(e) if e.is_data() => Err(Outcome::Unreadable(e.to_string())),
        Err(_) => Err(Outcome::CutShort { bytes: body.len() }),
    }
}

/// Warns when credentials would travel in clear text: an `http://` `base_url` or `auth_url`
/// to a host that is not this machine.
fn warn_if_clear_text(config: &ClientConfig) {
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
            || config.accounts.one().is_none()
            || matches!(config.auth, Credentials::OAuth { .. });
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
