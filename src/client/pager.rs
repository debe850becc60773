//! Pagination, written once for every list: follow `links.next` (right in page and cursor
//! mode; `next_page` is null on cursor mode's middle pages). On page-mode endpoints, once the
//! first page gives `total_pages`, the remaining pages are requested concurrently, a few ahead,
//! and still handed out in order; pages fetched ahead are held as raw bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use super::{Bucket, Client, Counters, HttpError, RawPage};

/// What a page says besides its records.
#[derive(Default)]
struct PageInfo {
    next: Option<String>,
    total_pages: u64,
    has_records: bool,
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

    /// Reads the next page, handing each record to `each` as it is parsed (a page is never
    /// held as a parsed whole). Returns the page's `Date`, or `None` after the last page.
    pub async fn next(
        &mut self,
        each: impl FnMut(Map<String, Value>),
    ) -> Result<Option<Option<DateTime<Utc>>>, HttpError> {
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
        let info = read_page(&raw.body, self.envelope, each).map_err(|e| {
            HttpError::Rejected(format!("GET {}: unreadable page: {e}", self.endpoint))
        })?;
        if !info.has_records {
            return Err(HttpError::Rejected(format!(
                "GET {}: the response has no '{}' array",
                self.endpoint, self.envelope
            )));
        }
        if planned {
            // After the last planned page, follow its link in case the list grew meanwhile.
            if self.ahead.is_empty() && self.queued.is_empty() {
                self.next = info.next;
            }
        } else if let Some(link) = info.next {
            match page_urls(&link, info.total_pages) {
                Some(urls) if self.width > 1 && urls.len() > 1 => {
                    self.queued = urls.into();
                    self.refill();
                }
                _ => self.next = Some(link),
            }
        }
        Ok(Some(raw.served_at))
    }
}

/// Parses a list page in one pass: each record of `envelope` goes to `each` as soon as it is
/// parsed; `links.next` and `total_pages` are kept.
fn read_page(
    body: &[u8],
    envelope: &str,
    each: impl FnMut(Map<String, Value>),
) -> Result<PageInfo, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let info = PageSeed { envelope, each }.deserialize(&mut de)?;
    de.end()?;
    Ok(info)
}

struct PageSeed<'a, F> {
    envelope: &'a str,
    each: F,
}

impl<'de, F: FnMut(Map<String, Value>)> DeserializeSeed<'de> for PageSeed<'_, F> {
    type Value = PageInfo;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PageInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(Map<String, Value>)> Visitor<'de> for PageSeed<'_, F> {
    type Value = PageInfo;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Harvest list page (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<PageInfo, A::Error> {
        let mut info = PageInfo::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.envelope {
                map.next_value_seed(RecordsSeed {
                    each: &mut self.each,
                })?;
                info.has_records = true;
            } else if key == "links" {
                let links: Value = map.next_value()?;
                info.next = links
                    .get("next")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            } else if key == "total_pages" {
                info.total_pages = map.next_value::<Value>()?.as_u64().unwrap_or(0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(info)
    }
}

struct RecordsSeed<'a, F> {
    each: &'a mut F,
}

impl<'de, F: FnMut(Map<String, Value>)> DeserializeSeed<'de> for RecordsSeed<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Map<String, Value>)> Visitor<'de> for RecordsSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            // Anything but an object is not a record: skipped.
            if let Value::Object(record) = v {
                (self.each)(record);
            }
        }
        Ok(())
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
    fn a_page_is_read_record_by_record() {
        let body = br#"{"clients":[{"id":1},5,{"id":2}],"per_page":2000,"total_pages":3,"links":{"next":"http://h/v2/clients?page=2","first":"x"},"page":1}"#;
        let mut seen = Vec::new();
        let info = read_page(body, "clients", |r| seen.push(r["id"].clone())).unwrap();
        assert_eq!(seen, vec![Value::from(1), Value::from(2)]);
        assert_eq!(info.next.as_deref(), Some("http://h/v2/clients?page=2"));
        assert_eq!(info.total_pages, 3);
        assert!(info.has_records);
        let info = read_page(br#"{"links":{"next":null}}"#, "clients", |_| {}).unwrap();
        assert!(!info.has_records && info.next.is_none());
        assert!(read_page(br#"{"clients":[{"id":1}"#, "clients", |_| {}).is_err());
        assert!(read_page(b"[1]", "clients", |_| {}).is_err());
    }

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
