//! Pagination, written once for every list: follow `links.next` (right in page and cursor
//! mode; `next_page` is null on cursor mode's middle pages). On page-mode endpoints, once the
//! first page gives `total_pages`, the remaining pages are requested concurrently, a few ahead,
//! and still handed out in order; pages fetched ahead are held as raw bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::{Bucket, Client, Counters, HttpError, RawPage};

/// One page of records.
pub struct Records {
    pub records: Vec<Value>,
    pub served_at: Option<DateTime<Utc>>,
}

pub struct Pager {
    client: Arc<Client>,
    endpoint: &'static str,
    envelope: &'static str,
    bucket: Bucket,
    counters: Arc<Counters>,
    /// The link to follow next, one page at a time.
    next: Option<String>,
    /// Pages requested ahead, in page order.
    ahead: VecDeque<JoinHandle<Result<RawPage, HttpError>>>,
    /// Page URLs not requested yet.
    queued: VecDeque<String>,
    width: usize,
}

impl Pager {
    /// `width`: how many pages may be in flight at once on page-mode endpoints.
    pub fn new(
        client: Arc<Client>,
        first_url: String,
        endpoint: &'static str,
        envelope: &'static str,
        bucket: Bucket,
        counters: Arc<Counters>,
        width: usize,
    ) -> Pager {
        Pager {
            client,
            endpoint,
            envelope,
            bucket,
            counters,
            next: Some(first_url),
            ahead: VecDeque::new(),
            queued: VecDeque::new(),
            width: width.max(1),
        }
    }

    fn spawn(&mut self, url: String) {
        let (client, counters, endpoint, bucket) = (
            self.client.clone(),
            self.counters.clone(),
            self.endpoint,
            self.bucket,
        );
        self.ahead.push_back(tokio::spawn(async move {
            client.get_raw(&url, endpoint, bucket, &counters).await
        }));
    }

    fn refill(&mut self) {
        while self.ahead.len() < self.width {
            match self.queued.pop_front() {
                Some(url) => self.spawn(url),
                None => break,
            }
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Records>, HttpError> {
        let (raw, planned) = if let Some(task) = self.ahead.pop_front() {
            self.refill();
            let raw = task.await.map_err(|e| {
                HttpError::Rejected(format!("GET {}: page task failed: {e}", self.endpoint))
            })??;
            (raw, true)
        } else if let Some(url) = self.next.take() {
            (
                self.client
                    .get_raw(&url, self.endpoint, self.bucket, &self.counters)
                    .await?,
                false,
            )
        } else {
            return Ok(None);
        };
        let served_at = raw.served_at;
        let Value::Object(mut body) = raw.parse()?.body else {
            return Err(HttpError::Rejected(format!(
                "GET {}: the response is not a JSON object",
                self.endpoint
            )));
        };
        let records = match body.remove(self.envelope) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(HttpError::Rejected(format!(
                    "GET {}: the response has no '{}' array",
                    self.endpoint, self.envelope
                )))
            }
        };
        let next = body
            .get("links")
            .and_then(|l| l.get("next"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if planned {
            // After the last planned page, follow its link in case the list grew meanwhile.
            if self.ahead.is_empty() && self.queued.is_empty() {
                self.next = next;
            }
        } else if let Some(link) = next {
            let total = body.get("total_pages").and_then(Value::as_u64).unwrap_or(0);
            match page_urls(&link, total) {
                Some(urls) if self.width > 1 && urls.len() > 1 => {
                    self.queued = urls.into();
                    self.refill();
                }
                _ => self.next = Some(link),
            }
        }
        Ok(Some(Records { records, served_at }))
    }
}

/// For a page-mode `next` link (`page=N`, no cursor), the URLs of pages N..=total.
fn page_urls(next: &str, total: u64) -> Option<Vec<String>> {
    let url = reqwest::Url::parse(next).ok()?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.iter().any(|(k, _)| k == "cursor") {
        return None;
    }
    let first: u64 = pairs.iter().find(|(k, _)| k == "page")?.1.parse().ok()?;
    if first > total {
        return None;
    }
    Some(
        (first..=total)
            .map(|p| {
                let mut u = url.clone();
                u.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs.iter().map(|(k, v)| {
                        if k == "page" {
                            (k.clone(), p.to_string())
                        } else {
                            (k.clone(), v.clone())
                        }
                    }));
                u.to_string()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_mode_links_expand_and_cursor_links_do_not() {
        let urls = page_urls(
            "http://h/v2/time_entries?page=2&per_page=2000&updated_since=2020-01-01T00%3A00%3A00Z",
            4,
        )
        .unwrap();
        assert_eq!(urls.len(), 3);
        assert!(
            urls[2].contains("page=4")
                && urls[2].contains("updated_since=2020-01-01T00%3A00%3A00Z")
        );
        assert!(page_urls(
            "http://h/v2/clients?cursor=abc&per_page=2000&ref=next_cursor",
            9
        )
        .is_none());
        assert!(page_urls("http://h/v2/clients?per_page=2000", 9).is_none());
    }
}
