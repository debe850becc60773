//! Pagination, written once for every list: follow `links.next` (right in page and cursor
//! mode; `next_page` is null on cursor mode's middle pages). On page-mode endpoints, once the
//! first page gives `total_pages`, the remaining pages are requested concurrently, a few ahead,
//! and still handed out in order; pages fetched ahead are held as raw bytes.
//!
//! Memory. A page is kept as the bytes Harvest sent plus where each record lies in them;
//! records are parsed one at a time as the caller asks for them, so a page is never held as a
//! parsed whole, and the caller can hand its RECORD lines on in small pieces while it reads.
//! Every page of a stream's own list, and every report page, holds one permit of the client's
//! page pool (see [`Client::pages`]) until the next page is asked for. A list page takes it
//! before it is requested; pages fetched ahead only take a permit that is free at once, so
//! fetching ahead never delays the page a stream needs next, and a stream that waits for a
//! permit holds none, so the pool cannot deadlock. A report page takes it once the reports'
//! budget has a slot for it (see [`Lane::Report`]). The pool's size, not the account's,
//! bounds these pages in memory. A single object (`/company`) is read as a page of one record.
//! A child list (one parent's messages, say) is read a page at a time outside the pool: its pages are small as a rule, the fan-out's concurrency bounds
//! how many are held, and a big one waits its turn (see [`super::BIG_BODY`]).

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::odd::{self, Fix};
use super::{Client, Counters, HttpError, Lane, RawPage};

/// One list page: its body and where its records are.
pub struct Page {
    body: bytes::Bytes,
    records: Vec<Range<usize>>,
    /// The response's `Date` header.
    pub served_at: Option<DateTime<Utc>>,
    /// A report page's or a big child page's permit (see [`Lane`]), released with the page.
    _held: Option<OwnedSemaphorePermit>,
    /// The body held invalid UTF-8, replaced by U+FFFD.
    repaired_utf8: bool,
}

/// One element of a page's records array.
pub enum Element {
    /// A record, with what had to be repaired in it (see [`odd`]).
    Record(Map<String, Value>, Vec<Fix>),
    /// An element that is not an object (a number, a string, null...).
    NotAnObject(&'static str),
    /// A record that could not be read even repaired: its `id` as far as it shows, and why.
    Unreadable(Option<String>, String),
}

impl Page {
    /// The page's records, parsed one at a time.
    pub fn records(&self) -> impl Iterator<Item = Element> + '_ {
        self.records.iter().map(|r| {
            let text = &self.body[r.clone()];
            let (parsed, mut fixes) = match serde_json::from_slice::<Value>(text) {
                Ok(v) => (Ok(v), Vec::new()),
                Err(e) => match odd::repair(text) {
                    Some((repaired, fixes)) => (serde_json::from_slice::<Value>(&repaired), fixes),
                    None => (Err(e), Vec::new()),
                },
            };
            match parsed {
                Ok(Value::Object(record)) => {
                    if self.repaired_utf8 {
                        fixes.extend(odd::replaced_chars(&record));
                    }
                    Element::Record(record, fixes)
                }
                Ok(other) => Element::NotAnObject(match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    Value::Array(_) => "an array",
                    Value::Object(_) => "an object",
                }),
                Err(e) => Element::Unreadable(odd::id_of(text), e.to_string()),
            }
        })
    }
}

/// What a page says besides its records.
#[derive(Debug, Default)]
pub struct PageInfo {
    next: Option<String>,
    total_pages: u64,
    total_entries: Option<u64>,
    /// `page` and `next_page`, where the envelope has them.
    page: Option<u64>,
    next_page: Option<u64>,
    records: Option<Vec<Range<usize>>>,
    /// The body held invalid UTF-8 (replaced before it was read).
    repaired_utf8: bool,
}

/// The pages still to request of a page-mode list, made one at a time as they are asked for:
/// a page claiming `total_pages: 10^12` costs nothing until its pages are read, and the list
/// ends at its first empty page anyway.
struct Plan {
    url: reqwest::Url,
    pairs: Vec<(String, String)>,
    next: u64,
    last: u64,
}

impl Plan {
    fn pop(&mut self) -> Option<String> {
        if self.next > self.last {
            return None;
        }
        let p = self.next;
        self.next += 1;
        Some(page_url(&self.url, &self.pairs, p))
    }

    fn is_empty(&self) -> bool {
        self.next > self.last
    }
}

pub struct Pager {
    client: Arc<Client>,
    endpoint: &'static str,
    envelope: &'static str,
    counters: Arc<Counters>,
    /// The link to follow next, one page at a time.
    next: Option<String>,
    /// Pages requested ahead, in page order, each with its permit.
    ahead: VecDeque<Ahead>,
    /// Page URLs not requested yet.
    queued: Option<Plan>,
    /// The URLs requested (hashed), to stop a list whose links loop.
    fetched: HashSet<u64>,
    /// The URL of the page read last (for `next_page` when `links.next` is missing).
    current: Option<String>,
    /// Why the list cannot be read past the page handed out last: the next call says it.
    broken: Option<HttpError>,
    /// An empty page said more pages follow: the list ended early, as far as it shows.
    cut_short: bool,
    /// The page numbers and (first, last record) digests of the planned pages read, to stop
    /// a server that ignores `page=` and answers the same page again and again.
    pages_seen: HashSet<u64>,
    width: usize,
    lane: Lane,
    /// The pool this pager takes its pages' permits from, if it takes them itself.
    pool: Option<Arc<Semaphore>>,
    /// The permit of the page handed out last.
    held: Option<OwnedSemaphorePermit>,
    /// `total_entries` as the first page told it, and the records handed out since.
    first_total: Option<u64>,
    records: u64,
    /// A later page told another `total_entries`: records were added or deleted while the
    /// list was read, so offset pages may have shifted.
    changed: bool,
    /// The list is read by cursor (a deletion shifts nothing).
    cursor: bool,
}

type Fetched = Result<RawPage<PageInfo>, HttpError>;

type Ahead = (JoinHandle<Fetched>, Option<OwnedSemaphorePermit>);

impl Pager {
    pub fn new(
        client: Arc<Client>,
        first_url: String,
        endpoint: &'static str,
        envelope: &'static str,
        counters: Arc<Counters>,
        lane: Lane,
    ) -> Pager {
        // A stream's own list takes a page-pool permit for every page and fetches page-mode
        // pages up to `max_concurrency` at once, as far as the pool allows; the other lanes
        // read a page at a time (see [`Lane`]).
        let (width, pool) = match lane {
            Lane::Pages => (client.width().max(1), Some(client.pages().clone())),
            Lane::Small | Lane::Report => (1, None),
        };
        Pager {
            endpoint,
            envelope,
            counters,
            next: Some(first_url),
            ahead: VecDeque::new(),
            queued: None,
            fetched: HashSet::new(),
            current: None,
            broken: None,
            cut_short: false,
            pages_seen: HashSet::new(),
            width,
            lane,
            pool,
            held: None,
            client,
            first_total: None,
            records: 0,
            changed: false,
            cursor: false,
        }
    }

    /// Whether the list changed while it was read: a page told another `total_entries` than
    /// the first, or the pages held another number of records than it said. Offset pages
    /// then may have shifted past a record; cursor pages cannot.
    pub fn changed(&self) -> bool {
        self.cut_short
            || !self.cursor && (self.changed || self.first_total.is_some_and(|t| t != self.records))
    }

    /// A planned page must be another page than those read before: its `page` number (when
    /// it has one) and its first and last records differ from theirs. A server that ignores
    /// `page=` would otherwise be asked for every page `total_pages` claims.
    fn check_planned_page(
        &mut self,
        info: &PageInfo,
        records: &[Range<usize>],
        body: &[u8],
    ) -> Result<(), HttpError> {
        let mut keys = Vec::new();
        if let Some(p) = info.page {
            keys.push(digest(&[b"page", &p.to_le_bytes()]));
        }
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            keys.push(digest(&[&body[first.clone()], &body[last.clone()]]));
        }
        for k in keys {
            if !self.pages_seen.insert(k) {
                return Err(HttpError::Rejected(format!(
                    "GET {}: a page answered the same as one read before (page {}): the server does not move through the pages, so the list is not read further",
                    self.endpoint,
                    info.page.map_or("?".into(), |p| p.to_string())
                )));
            }
        }
        Ok(())
    }

    fn spawn(&mut self, url: String, permit: Option<OwnedSemaphorePermit>) {
        let (client, counters, endpoint, envelope, lane) = (
            self.client.clone(),
            self.counters.clone(),
            self.endpoint,
            self.envelope,
            self.lane,
        );
        let task = tokio::spawn(async move {
            client
                .get_raw(&url, endpoint, lane, &counters, |body| {
                    read_page(body, envelope)
                })
                .await
        });
        self.ahead.push_back((task, permit));
    }

    fn queued_is_empty(&self) -> bool {
        self.queued.as_ref().is_none_or(Plan::is_empty)
    }

    /// Requests queued pages ahead, as far as the width and the pool's free permits allow.
    fn refill(&mut self) {
        while self.ahead.len() < self.width && !self.queued_is_empty() {
            let permit = match &self.pool {
                Some(pool) => match pool.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => break,
                },
                None => None,
            };
            let url = self.pop_planned().expect("not empty");
            self.spawn(url, permit);
        }
    }

    /// Ends the planned pages here: the pages requested ahead are dropped.
    fn end_plan(&mut self) {
        // The pages not fetched are no longer needed (for the progress lines).
        let unfetched = self
            .queued
            .as_ref()
            .map_or(0, |p| (p.last + 1).saturating_sub(p.next))
            + self.ahead.len() as u64;
        let _ = self.counters.planned.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |p| Some(p.saturating_sub(unfetched)),
        );
        self.queued = None;
        for (task, _) in self.ahead.drain(..) {
            task.abort();
        }
    }

    /// The next planned page's URL, noted as read: a link back to it is a loop.
    fn pop_planned(&mut self) -> Option<String> {
        let url = self.queued.as_mut().and_then(Plan::pop)?;
        self.fetched.insert(digest(&[url.as_bytes()]));
        Some(url)
    }

    /// Notes that `url` is being requested; a link back to a page already read is refused.
    fn visit(&mut self, url: &str) -> Result<(), HttpError> {
        if !self.fetched.insert(digest(&[url.as_bytes()])) {
            return Err(HttpError::Rejected(format!(
                "GET {}: links.next leads back to a page already read ({}): the list loops, so it is not read further",
                self.endpoint,
                crate::util::shown_link(url)
            )));
        }
        self.current = Some(url.to_string());
        Ok(())
    }

    /// GETs a page now, once a permit is free.
    async fn fetch(&mut self, url: &str) -> Fetched {
        if let Some(pool) = &self.pool {
            self.held = Some(pool.clone().acquire_owned().await.expect("never closed"));
        }
        let envelope = self.envelope;
        self.client
            .get_raw(url, self.endpoint, self.lane, &self.counters, |body| {
                read_page(body, envelope)
            })
            .await
    }

    /// The next page, or `None` after the last one. Asking for it releases the page before.
    pub async fn next(&mut self) -> Result<Option<Page>, HttpError> {
        self.held = None;
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let Some((raw, planned)) = self.fetch_next().await? else {
            return Ok(None);
        };
        let mut info = raw.read;
        info.repaired_utf8 = raw.repaired_utf8;
        let Some(records) = info.records.take() else {
            return Err(HttpError::Rejected(format!(
                "GET {}: the response has no '{}' array",
                self.endpoint, self.envelope
            )));
        };
        self.records += records.len() as u64;
        if planned || self.pages_seen.is_empty() {
            // Page 1 too, so that a planned page answering it again is caught.
            self.check_planned_page(&info, &records, &raw.body)?;
        }
        self.note_end(&mut info, records.is_empty(), planned);
        self.note_totals(&info, planned);
        self.plan_after(info.next, info.total_pages, planned);
        Ok(Some(Page {
            body: raw.body,
            records,
            served_at: raw.served_at,
            _held: raw.held,
            repaired_utf8: info.repaired_utf8,
        }))
    }

    /// The next page's response, and whether it is a planned page: one fetched ahead, else
    /// the next planned one, else the link to follow; `None` after the last.
    async fn fetch_next(&mut self) -> Result<Option<(RawPage<PageInfo>, bool)>, HttpError> {
        if let Some((task, permit)) = self.ahead.pop_front() {
            self.held = permit;
            self.refill();
            let raw = task.await.map_err(|e| {
                HttpError::Rejected(format!("GET {}: page task failed: {e}", self.endpoint))
            })??;
            Ok(Some((raw, true)))
        } else if let Some(url) = self.pop_planned() {
            // No permit was free to fetch it ahead.
            let raw = self.fetch(&url).await?;
            self.refill();
            Ok(Some((raw, true)))
        } else if let Some(url) = self.next.take() {
            self.visit(&url)?;
            Ok(Some((self.fetch(&url).await?, false)))
        } else {
            Ok(None)
        }
    }

    /// Where the list ends, as a page tells it: its link to the next page (an empty page has
    /// none, whatever it says; a missing one is made from the page number), and whether the
    /// list was cut short, ends before its plan, or is read by cursor.
    fn note_end(&mut self, info: &mut PageInfo, empty: bool, planned: bool) {
        let says_more = info.next.is_some() || info.next_page.is_some();
        if empty && says_more {
            // An empty page that says more follow: the list cannot be trusted to be complete.
            self.cut_short = true;
        }
        if planned && (empty || !says_more) && !self.queued_is_empty() {
            self.end_plan_early(info, empty);
        }
        if empty {
            // An empty page ends the list, whatever its links say.
            info.next = None;
        } else if !planned && info.next.is_none() {
            match self.missing_next(info) {
                Ok(next) => info.next = next,
                // This page's records are read; the list fails after them.
                Err(e) => self.broken = Some(e),
            }
        }
        if info.next.as_deref().is_some_and(|l| l.contains("cursor=")) {
            self.cursor = true;
        }
    }

    /// The envelope says the list ends here, before the pages planned from page 1's
    /// total_pages: the plan stops (a list that shrank meanwhile is read again: see
    /// `changed`).
    fn end_plan_early(&mut self, info: &PageInfo, empty: bool) {
        crate::log::warn(&format!(
            "GET {}: page {} {} before the {} pages the first page announced; the list ends there",
            self.endpoint,
            info.page.map_or("?".into(), |p| p.to_string()),
            if empty {
                "is empty"
            } else {
                "has no next link"
            },
            self.queued.as_ref().map_or(0, |p| p.last),
        ));
        self.end_plan();
    }

    /// The list's size as its pages tell it: the first page (planned by whoever started the
    /// list) how many pages follow and, on a stream's own list, the stream's total; a later
    /// page telling another `total_entries` means the list changed while it was read.
    fn note_totals(&mut self, info: &PageInfo, planned: bool) {
        if self.first_total.is_none() && !planned {
            let more = info.total_pages.saturating_sub(1).min(1 << 20);
            self.counters
                .planned
                .fetch_add(more, std::sync::atomic::Ordering::Relaxed);
            // A stream's own list: its total is the stream's (a child list's is one parent's).
            if let (Some(t), Lane::Pages) = (info.total_entries, self.lane) {
                self.counters
                    .total_entries
                    .store(t.min(1 << 40), std::sync::atomic::Ordering::Relaxed);
            }
        }
        match (self.first_total, info.total_entries) {
            (None, total) => self.first_total = total,
            (Some(first), Some(now)) if first != now => self.changed = true,
            _ => {}
        }
    }

    /// What is requested after a page with the link `next`: after a followed link, the pages
    /// it leads to, planned (page mode, when pages may be fetched ahead), else the link; after
    /// the last planned page, its link, in case the list grew meanwhile.
    fn plan_after(&mut self, next: Option<String>, total_pages: u64, planned: bool) {
        if planned {
            if self.ahead.is_empty() && self.queued_is_empty() {
                self.next = next;
                self.queued = None;
            }
        } else if let Some(link) = next {
            match plan(&link, total_pages) {
                Some(plan) if self.width > 1 && plan.last > plan.next => {
                    self.queued = Some(plan);
                    self.refill();
                }
                _ => self.next = Some(link),
            }
        }
    }

    /// A page without `links.next` whose envelope says more pages follow (`next_page`, or
    /// `page` short of `total_pages`): the next page by number, warned about; on a cursor
    /// list, where no page number can be made, the stream fails rather than stop short.
    fn missing_next(&self, info: &PageInfo) -> Result<Option<String>, HttpError> {
        let wanted = info
            .next_page
            .or_else(|| info.page.filter(|p| *p < info.total_pages).map(|p| p + 1));
        let Some(n) = wanted else {
            return Ok(None);
        };
        let current = self.current.as_deref().unwrap_or("");
        let url = reqwest::Url::parse(current).ok();
        let pairs: Vec<(String, String)> = url
            .iter()
            .flat_map(|u| u.query_pairs())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        match url {
            Some(url) if !pairs.iter().any(|(k, _)| k == "cursor") => {
                let mut pairs = pairs;
                if !pairs.iter().any(|(k, _)| k == "page") {
                    pairs.push(("page".into(), n.to_string()));
                }
                crate::log::warn(&format!(
                    "GET {}: a page says page {n} of {} follows but has no links.next; reading page {n}",
                    self.endpoint, info.total_pages
                ));
                Ok(Some(page_url(&url, &pairs, n)))
            }
            _ => Err(HttpError::Rejected(format!(
                "GET {}: a page says page {n} of {} follows but has no links.next to it; the list cannot be read to its end",
                self.endpoint, info.total_pages
            ))),
        }
    }
}

impl Drop for Pager {
    /// Pages fetched ahead that nobody will read (the stream stopped) are not fetched on.
    fn drop(&mut self) {
        for (task, _) in &self.ahead {
            task.abort();
        }
    }
}

/// Reads a list page in one pass: where each record of `envelope` lies, `links.next` and
/// `total_pages`. With no envelope, the body is a single object: a page of one record.
pub fn read_page(body: &[u8], envelope: &str) -> Result<PageInfo, serde_json::Error> {
    if envelope.is_empty() {
        let object: &RawValue = serde_json::from_slice(body)?;
        let text = object.get();
        if !text.starts_with('{') {
            return Err(serde::de::Error::custom(
                "the response is not a JSON object",
            ));
        }
        let start = text.as_ptr() as usize - body.as_ptr() as usize;
        return Ok(PageInfo {
            next: None,
            total_pages: 1,
            records: Some(std::iter::once(start..start + text.len()).collect()),
            ..PageInfo::default()
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let info = PageSeed {
        envelope,
        base: body.as_ptr() as usize,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(info)
}

struct PageSeed<'a> {
    envelope: &'a str,
    /// The body's address, to turn borrowed records into ranges.
    base: usize,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = PageInfo;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PageInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = PageInfo;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Harvest list page (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageInfo, A::Error> {
        let mut info = PageInfo::default();
        let mut seen: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let read = [
                self.envelope,
                "links",
                "total_pages",
                "total_entries",
                "page",
                "next_page",
            ];
            if read.contains(&key.as_ref()) {
                if seen.contains(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "the response has the key '{key}' twice"
                    )));
                }
                seen.push(key.clone());
            }
            if key == "page" {
                info.page = map.next_value::<Value>()?.as_u64();
            } else if key == "next_page" {
                info.next_page = map.next_value::<Value>()?.as_u64();
            } else if key == self.envelope {
                info.records = Some(map.next_value_seed(RecordsSeed { base: self.base })?);
            } else if key == "links" {
                let links: Value = map.next_value()?;
                info.next = links
                    .get("next")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            } else if key == "total_pages" {
                info.total_pages = map.next_value::<Value>()?.as_u64().unwrap_or(0);
            } else if key == "total_entries" {
                info.total_entries = map.next_value::<Value>()?.as_u64();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(info)
    }
}

struct RecordsSeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = Vec<Range<usize>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed {
    type Value = Vec<Range<usize>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ranges = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let text = raw.get();
            let start = text.as_ptr() as usize - self.base;
            ranges.push(start..start + text.len());
        }
        Ok(ranges)
    }
}

/// For a page-mode `next` link (`page=N`, no cursor), the plan of pages N..=total.
fn plan(next: &str, total: u64) -> Option<Plan> {
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
    Some(Plan {
        url,
        pairs,
        next: first,
        last: total,
    })
}

/// A 64-bit digest of `parts`, for the sets of pages and links already read.
fn digest(parts: &[&[u8]]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// `url` with its `page` parameter set to `page` (its other parameters kept, in order).
fn page_url(url: &reqwest::Url, pairs: &[(String, String)], page: u64) -> String {
    let mut u = url.clone();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| {
            if k == "page" {
                (k.clone(), page.to_string())
            } else {
                (k.clone(), v.clone())
            }
        }));
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_read_record_by_record() {
        let body = br#"{"clients":[{"id":1},5,{"id":2}],"per_page":2000,"total_pages":3,"links":{"next":"http://h/v2/clients?page=2","first":"x"},"page":1}"#;
        let info = read_page(body, "clients").unwrap();
        let page = Page {
            body: bytes::Bytes::from_static(body),
            records: info.records.unwrap(),
            served_at: None,
            _held: None,
            repaired_utf8: false,
        };
        let seen: Vec<String> = page
            .records()
            .map(|e| match e {
                Element::Record(r, _) => r["id"].to_string(),
                Element::NotAnObject(what) => what.to_string(),
                Element::Unreadable(..) => "unreadable".into(),
            })
            .collect();
        assert_eq!(seen, vec!["1", "a number", "2"]);
        assert_eq!(info.next.as_deref(), Some("http://h/v2/clients?page=2"));
        assert_eq!(info.total_pages, 3);
        let info = read_page(br#"{"links":{"next":null}}"#, "clients").unwrap();
        assert!(info.records.is_none() && info.next.is_none());
        assert!(read_page(br#"{"clients":[{"id":1}"#, "clients").is_err());
        assert!(read_page(b"[1]", "clients").is_err());
    }

    #[test]
    fn a_single_object_is_a_page_of_one() {
        let body = br#" {"id":1,"name":"Acme"} "#;
        let info = read_page(body, "").unwrap();
        let page = Page {
            body: bytes::Bytes::from_static(body),
            records: info.records.unwrap(),
            served_at: None,
            _held: None,
            repaired_utf8: false,
        };
        let records: Vec<_> = page
            .records()
            .filter_map(|e| match e {
                Element::Record(r, _) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["name"], "Acme");
        assert!(info.next.is_none());
        let not_an_object = read_page(b"[1]", "").unwrap_err();
        assert!(not_an_object.is_data());
        assert!(read_page(b"{\"id\":", "").unwrap_err().is_eof());
    }

    #[test]
    fn page_mode_links_expand_and_cursor_links_do_not() {
        let mut p = plan(
            "http://h/v2/time_entries?page=2&per_page=2000&updated_since=2020-01-01T00%3A00%3A00Z",
            4,
        )
        .unwrap();
        let urls: Vec<String> = std::iter::from_fn(|| p.pop()).collect();
        assert_eq!(urls.len(), 3);
        // A claim of 10^12 pages plans nothing up front.
        let mut huge = plan("http://h/v2/clients?page=2", 1_000_000_000_000).unwrap();
        assert!(huge.pop().unwrap().contains("page=2") && !huge.is_empty());
        assert!(
            urls[2].contains("page=4")
                && urls[2].contains("updated_since=2020-01-01T00%3A00%3A00Z")
        );
        assert!(plan(
            "http://h/v2/clients?cursor=abc&per_page=2000&ref=next_cursor",
            9
        )
        .is_none());
        assert!(plan("http://h/v2/clients?per_page=2000", 9).is_none());
        let twice = read_page(br#"{"clients":[{"id":1}],"clients":[]}"#, "clients").unwrap_err();
        assert!(twice.to_string().contains("'clients' twice"), "{twice}");
    }
}
