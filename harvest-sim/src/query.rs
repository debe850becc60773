//! Lists: each resource's sort order and parent→children index (built lazily, once per data
//! version, from its declaration), the query and page caches, and the list envelope with its
//! page and cursor pagination.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;

use crate::model::{Data, Res};
use crate::params::{encode_cursor, PageReq, Paging};
use crate::resources::{self, Related, Sort};

/// Which records of a resource a list covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    /// Children of one parent (invoice, estimate, user or project index).
    Parent(u32),
}

/// Lazily built sort orders and parent→children indexes for one data version, plus the
/// query and page caches (which die with it when the data changes).
pub struct Indexes {
    pub version: u64,
    /// Per resource (by `Res` position): its live records in its `Sort::By` order.
    sorted: Vec<OnceLock<Vec<u32>>>,
    /// Per nested resource: each parent's children, ascending (or in the parent's `Sort::By`).
    children: Vec<OnceLock<Vec<Vec<u32>>>>,
    queries: Mutex<HashMap<String, Arc<Vec<u32>>>>,
    pages: Mutex<PageCache>,
    page_cache_limit: usize,
}

#[derive(Default)]
struct PageCache {
    bytes: usize,
    map: HashMap<String, Bytes>,
}

fn sort_by(order: &mut [u32], d: &Data, key: fn(&Data, u32) -> (i64, i64)) {
    order.sort_by_key(|&i| key(d, i));
}

impl Indexes {
    pub fn new(version: u64, page_cache_limit: usize) -> Indexes {
        let n = resources::DECLS.len();
        Indexes {
            version,
            sorted: (0..n).map(|_| OnceLock::new()).collect(),
            children: (0..n).map(|_| OnceLock::new()).collect(),
            queries: Mutex::new(HashMap::new()),
            pages: Mutex::new(PageCache::default()),
            page_cache_limit,
        }
    }

    /// The live records of `res` in its sort order, for a `Sort::By` resource (lists and
    /// reports: time entries and expenses by spent date, newest first).
    pub fn sorted(&self, d: &Data, res: Res) -> &[u32] {
        self.sorted[res as usize].get_or_init(|| {
            let decl = res.decl();
            let mut o: Vec<u32> = (0..(decl.len)(d) as u32).collect();
            if let Sort::By(key) = decl.sort {
                sort_by(&mut o, d, key);
            }
            o.retain(|&i| !d.deleted.has(res, i));
            o
        })
    }

    /// Each parent's records of the nested resource `res` (indexes by parent index).
    pub fn groups(&self, d: &Data, res: Res) -> &[Vec<u32>] {
        self.children[res as usize].get_or_init(|| {
            let decl = res.decl();
            let Some(parent) = &decl.parent else {
                return Vec::new();
            };
            let mut g = vec![Vec::new(); (parent.res.decl().len)(d)];
            for i in 0..(decl.len)(d) as u32 {
                if let Some(list) = g.get_mut((parent.of)(d, i) as usize) {
                    list.push(i);
                }
            }
            if let Sort::By(key) = parent.sort {
                for list in g.iter_mut() {
                    sort_by(list, d, key);
                }
            }
            g
        })
    }

    /// A filtered, sorted list of records, computed once per data version and query.
    pub fn query(&self, key: String, compute: impl FnOnce() -> Vec<u32>) -> Arc<Vec<u32>> {
        if let Some(v) = self.queries.lock().get(&key) {
            return v.clone();
        }
        let v = Arc::new(compute());
        let mut q = self.queries.lock();
        if q.len() >= 1024 {
            q.clear();
        }
        q.insert(key, v.clone());
        v
    }

    pub fn cached_page(&self, key: &str) -> Option<Bytes> {
        self.pages.lock().map.get(key).cloned()
    }

    pub fn store_page(&self, key: String, body: Bytes) {
        let mut pc = self.pages.lock();
        if pc.bytes + body.len() > self.page_cache_limit {
            return;
        }
        pc.bytes += body.len();
        pc.map.insert(key, body);
    }

    /// All records of a list in the endpoint's sort order (unfiltered).
    pub fn base_order(&self, d: &Data, res: Res, scope: Scope) -> Vec<u32> {
        let decl = res.decl();
        let mut order = match (scope, &decl.parent) {
            (Scope::Parent(p), Some(parent)) => {
                let list = self.groups(d, res).get(p as usize);
                let list = list.map(Vec::as_slice).unwrap_or_default();
                match parent.sort {
                    Sort::IdDesc => list.iter().rev().copied().collect(),
                    _ => list.to_vec(),
                }
            }
            _ => match decl.sort {
                Sort::IdDesc => (0..(decl.len)(d) as u32).rev().collect(),
                Sort::IdAsc => (0..(decl.len)(d) as u32).collect(),
                Sort::By(_) => self.sorted(d, res).to_vec(),
            },
        };
        if let Some(listed) = decl.listed {
            order.retain(|&i| listed(d, i));
        }
        if !d.deleted.is_empty() {
            order.retain(|&i| !d.deleted.has(res, i));
        }
        order
    }
}

impl Related for Indexes {
    fn children(&self, d: &Data, res: Res, parent: u32) -> &[u32] {
        &self.groups(d, res)[parent as usize]
    }
}

/// Record `i` as a JSON value (with the parent field for nested resources).
pub fn item_value(d: &Data, ix: &Indexes, res: Res, i: u32) -> serde_json::Value {
    let decl = res.decl();
    let mut v = (decl.view.value)(d, ix, i);
    if let (Some(parent), Some(obj)) = (&decl.parent, v.as_object_mut()) {
        if let Some(field) = parent.truth_field {
            let pid = (parent.res.decl().id)(d, (parent.of)(d, i));
            obj.insert(field.to_string(), serde_json::Value::from(pid));
        }
    }
    v
}

/// Renders one record as JSON bytes (used by `write_list`).
pub fn render_into(res: Res, d: &Data, ix: &Indexes, i: u32, out: &mut Vec<u8>) {
    (res.decl().view.bytes)(d, ix, i, out)
}

/// Absolute link builder: `http://host/v2/path?` + params sorted by name.
pub struct Links {
    pub prefix: String,
    pub carried: Vec<(String, String)>,
}

impl Links {
    pub fn url(&self, extra: &[(&str, String)]) -> String {
        let mut all: Vec<(&str, &str)> = self
            .carried
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in all {
            ser.append_pair(k, v);
        }
        format!("{}?{}", self.prefix, ser.finish())
    }
}

#[derive(Serialize)]
struct LinksOut {
    first: String,
    next: Option<String>,
    previous: Option<String>,
    last: String,
}

#[derive(Serialize)]
struct Tail {
    per_page: u32,
    total_pages: u64,
    total_entries: u64,
    next_page: Option<u64>,
    previous_page: Option<u64>,
    page: Option<u64>,
    links: LinksOut,
}

/// Writes a whole list envelope for the records `order` (already filtered and sorted).
/// `id_at(k)` gives the id of `order[k]`; ids are monotonic along `order` for cursor lists.
pub fn write_list(
    key: &str,
    order: &[u32],
    req: PageReq,
    links: &Links,
    id_at: impl Fn(u32) -> i64,
    ascending_ids: bool,
    mut render_item: impl FnMut(u32, &mut Vec<u8>),
) -> Vec<u8> {
    let (slice, tail) = match req.paging {
        Paging::Page(p) => page_slice(order, req, links, u64::from(p)),
        paging => cursor_slice(order, req, links, paging, &id_at, ascending_ids),
    };
    let mut out = Vec::with_capacity(64 + slice.len() * 900);
    out.push(b'{');
    let _ = serde_json::to_writer(&mut out, key);
    out.extend_from_slice(b":[");
    for (k, &i) in slice.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        render_item(i, &mut out);
    }
    out.push(b']');
    // Splice the tail object's members after the records.
    let tail = serde_json::to_vec(&tail).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b',');
    out.extend_from_slice(&tail[1..]);
    out
}

/// Page `p` of `order` (page mode) and the envelope's tail.
fn page_slice<'o>(order: &'o [u32], req: PageReq, links: &Links, p: u64) -> (&'o [u32], Tail) {
    let total = order.len() as u64;
    let pp = u64::from(req.per_page);
    let total_pages = total.div_ceil(pp);
    let pps = req.per_page.to_string();
    let start = ((p - 1) * pp).min(total) as usize;
    let end = (start as u64 + pp).min(total) as usize;
    let next = (p < total_pages).then_some(p + 1);
    let prev = (p > 1).then_some(p - 1);
    let page_link = |n: u64| links.url(&[("page", n.to_string()), ("per_page", pps.clone())]);
    let tail = Tail {
        per_page: req.per_page,
        total_pages,
        total_entries: total,
        next_page: next,
        previous_page: prev,
        page: Some(p),
        links: LinksOut {
            first: page_link(1),
            next: next.map(page_link),
            previous: prev.map(page_link),
            last: page_link(total_pages.max(1)),
        },
    };
    (&order[start..end], tail)
}

/// The records a cursor request covers, as (start, end) positions in `order`.
fn cursor_span(
    order: &[u32],
    per_page: usize,
    paging: Paging,
    id_at: &impl Fn(u32) -> i64,
    ascending_ids: bool,
) -> (usize, usize) {
    let len = order.len();
    match paging {
        Paging::After(id) => {
            let s = if ascending_ids {
                order.partition_point(|&i| id_at(i) <= id)
            } else {
                order.partition_point(|&i| id_at(i) >= id)
            };
            (s, (s + per_page).min(len))
        }
        Paging::Before(id) => {
            let e = if ascending_ids {
                order.partition_point(|&i| id_at(i) < id)
            } else {
                order.partition_point(|&i| id_at(i) > id)
            };
            (e.saturating_sub(per_page), e)
        }
        _ => (0, per_page.min(len)),
    }
}

/// The page a cursor request covers (cursor mode) and the envelope's tail.
fn cursor_slice<'o>(
    order: &'o [u32],
    req: PageReq,
    links: &Links,
    paging: Paging,
    id_at: &impl Fn(u32) -> i64,
    ascending_ids: bool,
) -> (&'o [u32], Tail) {
    let total = order.len() as u64;
    let total_pages = total.div_ceil(u64::from(req.per_page));
    let pps = req.per_page.to_string();
    let (start, end) = cursor_span(order, req.per_page as usize, paging, id_at, ascending_ids);
    let is_first = start == 0;
    let is_last = end >= order.len();
    let (page, next, prev) = if is_first {
        (Some(1), (!is_last).then_some(2), None)
    } else if is_last {
        (
            Some(total_pages),
            None,
            (total_pages > 1).then(|| total_pages - 1),
        )
    } else {
        (None, None, None)
    };
    let slice = &order[start..end];
    let cursor_link = |dir: &str, at: u32, r: &str| {
        links.url(&[
            ("cursor", encode_cursor(dir, id_at(at))),
            ("per_page", pps.clone()),
            ("ref", r.to_string()),
        ])
    };
    let numbered_link = |n: u64, r: &str| {
        links.url(&[
            ("page", n.to_string()),
            ("per_page", pps.clone()),
            ("ref", r.to_string()),
        ])
    };
    let tail = Tail {
        per_page: req.per_page,
        total_pages,
        total_entries: total,
        next_page: next,
        previous_page: prev,
        page,
        links: LinksOut {
            first: numbered_link(1, "first"),
            next: (!is_last && !slice.is_empty())
                .then(|| cursor_link("after", slice[slice.len() - 1], "next_cursor")),
            previous: (!is_first && !slice.is_empty())
                .then(|| cursor_link("before", slice[0], "prev_cursor")),
            last: numbered_link(total_pages.max(1), "last"),
        },
    };
    (slice, tail)
}
