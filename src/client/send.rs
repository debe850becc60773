//! The third layer of the request path: the send. One HTTP exchange: the request goes out, and
//! the response's status, `Date`, `Retry-After` and body (bounded by `max_response_mb`) come
//! back, or what went wrong on the way, as an [`Outcome`] for the retry policy.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::budget::Slot;
use super::retry::Outcome;
use super::{describe, Lane, Origins, BIG_BODY, PAGES_HELD};

/// The two connection pools (see [`Lane`]) and the bound on a body.
pub struct Sender {
    /// The pages' connections (also Harvest ID's): no more than pages can be in flight.
    pages: reqwest::Client,
    /// A second connection pool, for small responses: see [`Lane`].
    small: reqwest::Client,
    /// `max_response_mb`, in bytes.
    max_body: usize,
}

/// How the connections are made.
pub struct Settings<'a> {
    /// Where redirects may lead: `base_url` and `auth_url`.
    pub origins: Origins,
    pub user_agent: &'a str,
    pub request_timeout: Duration,
    /// `max_concurrency`: the small responses' idle connections.
    pub width: usize,
    /// `max_response_mb`, in bytes.
    pub max_body: usize,
}

/// A response, read: its status, `Date`, `Retry-After`, and its body with the big-body permit
/// it was read under (see [`BIG_BODY`]).
pub struct Response {
    pub status: u16,
    pub served_at: Option<DateTime<Utc>>,
    pub retry_after: Option<String>,
    pub body: bytes::Bytes,
    pub big: Option<OwnedSemaphorePermit>,
}

impl Sender {
    pub fn new(settings: Settings) -> anyhow::Result<Sender> {
        Ok(Sender {
            pages: http_client(&settings, PAGES_HELD)?,
            small: http_client(&settings, settings.width)?,
            max_body: settings.max_body,
        })
    }

    /// The connections Harvest ID's requests go over (the pages').
    pub fn id_http(&self) -> &reqwest::Client {
        &self.pages
    }

    /// A GET of `url` over the lane's connections.
    pub fn get(&self, lane: Lane, url: &str) -> reqwest::RequestBuilder {
        match lane {
            Lane::Pages | Lane::Report => self.pages.get(url),
            Lane::Small => self.small.get(url),
        }
    }

    /// Sends `request` and reads its response; a body over [`BIG_BODY`] waits for a permit of
    /// `gate` (when there is one) while it is read. The budget `slot` is given back once the
    /// response is read. Also the status, for the metric, when a body failed.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        slot: Slot,
        gate: Option<&Arc<Semaphore>>,
    ) -> (Option<u16>, Result<Response, Outcome>) {
        let answer = receive(request.send().await, gate, self.max_body).await;
        drop(slot);
        answer
    }
}

fn http_client(settings: &Settings, idle: usize) -> anyhow::Result<reqwest::Client> {
    let origins = settings.origins.clone();
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_str(settings.user_agent).map_err(|_| {
            anyhow::anyhow!("user_agent holds characters not allowed in an HTTP header")
        })?,
    );
    let timeout = settings.request_timeout;
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(30)))
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

async fn receive(
    sent: Result<reqwest::Response, reqwest::Error>,
    gate: Option<&Arc<Semaphore>>,
    max_body: usize,
) -> (Option<u16>, Result<Response, Outcome>) {
    let resp = match sent {
        Err(e) if e.is_builder() || e.is_request() && !e.is_timeout() && !e.is_connect() => {
            // The request itself cannot be made (a header value that cannot be sent):
            // another try makes the same request.
            return (None, Err(Outcome::Fatal(describe(&e))));
        }
        Err(e) => return (None, Err(Outcome::Failed(describe(&e)))),
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
    let read = match read_body(resp, gate, max_body).await {
        Err(BodyError::Http(e)) => Err(Outcome::Failed(describe(&e))),
        Err(BodyError::TooBig) => Err(Outcome::Fatal(format!(
            "the response is larger than max_response_mb ({} MB); not read",
            max_body >> 20
        ))),
        Ok((body, big)) => Ok(Response {
            status,
            served_at,
            retry_after,
            body,
            big,
        }),
    };
    (Some(status), read)
}

enum BodyError {
    Http(reqwest::Error),
    /// Larger than `max_response_mb`.
    TooBig,
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
