//! Lists: resources, their sort orders, filters, page and cursor pagination, and the envelope.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;

use crate::model::*;
use crate::render;
use crate::util::{parse_date, parse_strict_datetime, Date};

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
    te_order: OnceLock<Vec<u32>>,
    ex_order: OnceLock<Vec<u32>>,
    inv_order: OnceLock<Vec<u32>>,
    est_order: OnceLock<Vec<u32>>,
    inv_msgs: OnceLock<Vec<Vec<u32>>>,
    inv_pays: OnceLock<Vec<Vec<u32>>>,
    est_msgs: OnceLock<Vec<Vec<u32>>>,
    user_brates: OnceLock<Vec<Vec<u32>>>,
    user_crates: OnceLock<Vec<Vec<u32>>>,
    user_uas: OnceLock<Vec<Vec<u32>>>,
    user_teammates: OnceLock<Vec<Vec<u32>>>,
    project_uas: OnceLock<Vec<Vec<u32>>>,
    project_tas: OnceLock<Vec<Vec<u32>>>,
    queries: Mutex<HashMap<String, Arc<Vec<u32>>>>,
    pages: Mutex<PageCache>,
    page_cache_limit: usize,
}

#[derive(Default)]
struct PageCache {
    bytes: usize,
    map: HashMap<String, Bytes>,
}

fn group(len: usize, items: impl Iterator<Item = (usize, u32)>) -> Vec<Vec<u32>> {
    let mut v = vec![Vec::new(); len];
    for (i, parent) in items {
        if let Some(list) = v.get_mut(parent as usize) {
            list.push(i as u32);
        }
    }
    v
}

fn date_desc(n: usize, key: impl Fn(usize) -> (Date, i64)) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    v.sort_unstable_by_key(|&a| std::cmp::Reverse(key(a as usize)));
    v
}

impl Indexes {
    pub fn new(version: u64, page_cache_limit: usize) -> Indexes {
        Indexes {
            version,
            te_order: OnceLock::new(),
            ex_order: OnceLock::new(),
            inv_order: OnceLock::new(),
            est_order: OnceLock::new(),
            inv_msgs: OnceLock::new(),
            inv_pays: OnceLock::new(),
            est_msgs: OnceLock::new(),
            user_brates: OnceLock::new(),
            user_crates: OnceLock::new(),
            user_uas: OnceLock::new(),
            user_teammates: OnceLock::new(),
            project_uas: OnceLock::new(),
            project_tas: OnceLock::new(),
            queries: Mutex::new(HashMap::new()),
            pages: Mutex::new(PageCache::default()),
            page_cache_limit,
        }
    }

    /// Live time entries by spent date, newest first (lists and reports).
    pub fn te_order(&self, d: &Data) -> &[u32] {
        self.te_order.get_or_init(|| {
            let mut o = date_desc(d.time_entries.len(), |i| {
                (d.time_entries[i].spent_date, d.time_entries[i].id)
            });
            o.retain(|&i| !d.deleted.has(Res::TimeEntries, i));
            o
        })
    }
    /// Live expenses by spent date, newest first (lists and reports).
    pub fn ex_order(&self, d: &Data) -> &[u32] {
        self.ex_order.get_or_init(|| {
            let mut o = date_desc(d.expenses.len(), |i| {
                (d.expenses[i].spent_date, d.expenses[i].id)
            });
            o.retain(|&i| !d.deleted.has(Res::Expenses, i));
            o
        })
    }
    fn inv_order(&self, d: &Data) -> &[u32] {
        self.inv_order.get_or_init(|| {
            date_desc(d.invoices.len(), |i| {
                (d.invoices[i].issue_date, d.invoices[i].id)
            })
        })
    }
    fn est_order(&self, d: &Data) -> &[u32] {
        self.est_order.get_or_init(|| {
            date_desc(d.estimates.len(), |i| {
                (d.estimates[i].issue_date, d.estimates[i].id)
            })
        })
    }
    pub fn inv_msgs(&self, d: &Data) -> &[Vec<u32>] {
        self.inv_msgs.get_or_init(|| {
            group(
                d.invoices.len(),
                d.invoice_messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (i, m.invoice)),
            )
        })
    }
    pub fn inv_pays(&self, d: &Data) -> &[Vec<u32>] {
        self.inv_pays.get_or_init(|| {
            group(
                d.invoices.len(),
                d.invoice_payments
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (i, m.invoice)),
            )
        })
    }
    pub fn est_msgs(&self, d: &Data) -> &[Vec<u32>] {
        self.est_msgs.get_or_init(|| {
            group(
                d.estimates.len(),
                d.estimate_messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (i, m.estimate)),
            )
        })
    }
    pub fn user_brates(&self, d: &Data) -> &[Vec<u32>] {
        self.user_brates.get_or_init(|| {
            let mut g = group(
                d.users.len(),
                d.billable_rates
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (i, r.user)),
            );
            sort_rates(&mut g, &d.billable_rates);
            g
        })
    }
    pub fn user_crates(&self, d: &Data) -> &[Vec<u32>] {
        self.user_crates.get_or_init(|| {
            let mut g = group(
                d.users.len(),
                d.cost_rates.iter().enumerate().map(|(i, r)| (i, r.user)),
            );
            sort_rates(&mut g, &d.cost_rates);
            g
        })
    }
    pub fn user_uas(&self, d: &Data) -> &[Vec<u32>] {
        self.user_uas.get_or_init(|| {
            group(
                d.users.len(),
                d.user_assignments
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (i, u.user)),
            )
        })
    }
    /// Each manager's teammates (indexes into `Data::teammates`), teammate id descending.
    pub fn user_teammates(&self, d: &Data) -> &[Vec<u32>] {
        self.user_teammates.get_or_init(|| {
            let mut g = group(
                d.users.len(),
                d.teammates.iter().enumerate().map(|(i, t)| (i, t.manager)),
            );
            for list in g.iter_mut() {
                list.sort_unstable_by_key(|&i| {
                    std::cmp::Reverse(d.users[d.teammates[i as usize].user as usize].id)
                });
            }
            g
        })
    }
    pub fn project_uas(&self, d: &Data) -> &[Vec<u32>] {
        self.project_uas.get_or_init(|| {
            group(
                d.projects.len(),
                d.user_assignments
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (i, u.project)),
            )
        })
    }
    pub fn project_tas(&self, d: &Data) -> &[Vec<u32>] {
        self.project_tas.get_or_init(|| {
            group(
                d.projects.len(),
                d.task_assignments
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i, t.project)),
            )
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
        let desc = |n: usize| (0..n as u32).rev().collect::<Vec<u32>>();
        let child_desc = |g: &[Vec<u32>], p: u32| -> Vec<u32> {
            g.get(p as usize)
                .map(|v| v.iter().rev().copied().collect())
                .unwrap_or_default()
        };
        let mut order = match (res, scope) {
            (Res::Users, _) => desc(d.users.len()),
            (Res::Roles, _) => desc(d.roles.len()),
            (Res::Clients, _) => desc(d.clients.len()),
            (Res::Contacts, _) => desc(d.contacts.len()),
            (Res::Projects, _) => desc(d.projects.len()),
            (Res::Tasks, _) => desc(d.tasks.len()),
            (Res::TaskAssignments, Scope::All) => desc(d.task_assignments.len()),
            (Res::TaskAssignments, Scope::Parent(p)) => child_desc(self.project_tas(d), p),
            (Res::UserAssignments, Scope::All) => desc(d.user_assignments.len()),
            (Res::UserAssignments, Scope::Parent(p)) => child_desc(self.project_uas(d), p),
            (Res::ProjectAssignments, Scope::All) => (0..d.user_assignments.len() as u32)
                .rev()
                .filter(|&i| d.user_assignments[i as usize].is_active)
                .collect(),
            (Res::ProjectAssignments, Scope::Parent(u)) => child_desc(self.user_uas(d), u)
                .into_iter()
                .filter(|&i| d.user_assignments[i as usize].is_active)
                .collect(),
            (Res::BillableRates, Scope::All) => (0..d.billable_rates.len() as u32).collect(),
            (Res::BillableRates, Scope::Parent(u)) => self
                .user_brates(d)
                .get(u as usize)
                .cloned()
                .unwrap_or_default(),
            (Res::CostRates, Scope::All) => (0..d.cost_rates.len() as u32).collect(),
            (Res::CostRates, Scope::Parent(u)) => self
                .user_crates(d)
                .get(u as usize)
                .cloned()
                .unwrap_or_default(),
            (Res::Teammates, Scope::All) => (0..d.teammates.len() as u32).collect(),
            (Res::Teammates, Scope::Parent(u)) => self
                .user_teammates(d)
                .get(u as usize)
                .cloned()
                .unwrap_or_default(),
            (Res::InvoiceItemCategories, _) => desc(d.invoice_item_categories.len()),
            (Res::EstimateItemCategories, _) => desc(d.estimate_item_categories.len()),
            (Res::Invoices, _) => self.inv_order(d).to_vec(),
            (Res::InvoiceMessages, Scope::All) => desc(d.invoice_messages.len()),
            (Res::InvoiceMessages, Scope::Parent(p)) => child_desc(self.inv_msgs(d), p),
            (Res::InvoicePayments, Scope::All) => desc(d.invoice_payments.len()),
            (Res::InvoicePayments, Scope::Parent(p)) => child_desc(self.inv_pays(d), p),
            (Res::Estimates, _) => self.est_order(d).to_vec(),
            (Res::EstimateMessages, Scope::All) => desc(d.estimate_messages.len()),
            (Res::EstimateMessages, Scope::Parent(p)) => child_desc(self.est_msgs(d), p),
            (Res::ExpenseCategories, _) => desc(d.expense_categories.len()),
            (Res::Expenses, _) => self.ex_order(d).to_vec(),
            (Res::TimeEntries, _) => self.te_order(d).to_vec(),
        };
        if !d.deleted.is_empty() {
            order.retain(|&i| !d.deleted.has(res, i));
        }
        order
    }
}

fn sort_rates(g: &mut [Vec<u32>], rates: &[Rate]) {
    for list in g.iter_mut() {
        list.sort_by_key(|&i| {
            let r = &rates[i as usize];
            (r.start_date, r.id)
        });
    }
}

/// A request error answered with a JSON `{"message": ...}` body.
#[derive(Debug, Clone)]
pub struct ParamError {
    pub status: u16,
    pub message: String,
}

fn bad(msg: impl Into<String>) -> ParamError {
    ParamError {
        status: 400,
        message: msg.into(),
    }
}

fn unprocessable(msg: impl Into<String>) -> ParamError {
    ParamError {
        status: 422,
        message: msg.into(),
    }
}

/// Parsed query parameters (last occurrence of a name wins), in request order.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if let Some(p) = pairs.iter_mut().find(|(pk, _)| *pk == k) {
                    p.1 = v.into_owned();
                } else {
                    pairs.push((k.into_owned(), v.into_owned()));
                }
            }
        }
        Params { pairs }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    }
    /// Parameters to carry in links: everything but paging and credentials.
    pub fn carried(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "page" | "per_page" | "cursor" | "ref" | "access_token" | "account_id"
                )
            })
            .cloned()
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub updated_since: Option<i64>,
    pub is_active: Option<bool>,
    pub client_id: Option<i64>,
    pub project_id: Option<i64>,
    pub user_id: Option<i64>,
    pub task_id: Option<i64>,
    pub is_billed: Option<bool>,
    pub is_running: Option<bool>,
    pub state: Option<String>,
    pub external_reference_id: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ParamError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(unprocessable(format!(
            "{name} must be true or false, got {v:?}"
        ))),
    }
}

fn parse_id(name: &str, v: &str) -> Result<i64, ParamError> {
    v.parse::<i64>()
        .map_err(|_| unprocessable(format!("{name} must be an integer, got {v:?}")))
}

impl Filters {
    /// Parses the filters `res` supports; others are ignored as Harvest ignores them.
    pub fn parse(res: Res, p: &Params) -> Result<Filters, ParamError> {
        let mut f = Filters::default();
        for &name in res.filters() {
            let Some(v) = p.get(name) else { continue };
            match name {
                "updated_since" => {
                    f.updated_since = Some(parse_strict_datetime(v).ok_or_else(|| {
                        bad(format!(
                            "updated_since must be an ISO 8601 date-time like 2024-01-01T00:00:00Z, got {v:?}"
                        ))
                    })?)
                }
                "is_active" => f.is_active = Some(parse_bool(name, v)?),
                "is_billed" => f.is_billed = Some(parse_bool(name, v)?),
                "is_running" => f.is_running = Some(parse_bool(name, v)?),
                "client_id" => f.client_id = Some(parse_id(name, v)?),
                "project_id" => f.project_id = Some(parse_id(name, v)?),
                "user_id" => f.user_id = Some(parse_id(name, v)?),
                "task_id" => f.task_id = Some(parse_id(name, v)?),
                "state" => f.state = Some(v.to_string()),
                "external_reference_id" => f.external_reference_id = Some(v.to_string()),
                "from" | "to" => {
                    let d = parse_date(v).ok_or_else(|| {
                        bad(format!("{name} must be a date like 2024-01-31, got {v:?}"))
                    })?;
                    if name == "from" {
                        f.from = Some(d);
                    } else {
                        f.to = Some(d);
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }

    fn date_ok(&self, d: Date) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }

    fn eq_id(want: Option<i64>, have: i64) -> bool {
        want.is_none_or(|w| w == have)
    }

    /// Whether record `i` of `res` passes; `viewer` restricts time/expenses to one user.
    pub fn pass(&self, d: &Data, res: Res, i: u32, viewer: Option<u32>) -> bool {
        let i = i as usize;
        let since_ok = |u: crate::util::Ts| self.updated_since.is_none_or(|s| u.0 >= s);
        let active_ok = |a: bool| self.is_active.is_none_or(|w| w == a);
        match res {
            Res::Users => {
                let x = &d.users[i];
                since_ok(x.updated_at) && active_ok(x.is_active)
            }
            Res::Roles => true,
            Res::Clients => {
                let x = &d.clients[i];
                since_ok(x.updated_at) && active_ok(x.is_active)
            }
            Res::Contacts => {
                let x = &d.contacts[i];
                since_ok(x.updated_at)
                    && Self::eq_id(self.client_id, d.clients[x.client as usize].id)
            }
            Res::Projects => {
                let x = &d.projects[i];
                since_ok(x.updated_at)
                    && active_ok(x.is_active)
                    && Self::eq_id(self.client_id, d.clients[x.client as usize].id)
            }
            Res::Tasks => {
                let x = &d.tasks[i];
                since_ok(x.updated_at) && active_ok(x.is_active)
            }
            Res::TaskAssignments => {
                let x = &d.task_assignments[i];
                since_ok(x.updated_at) && active_ok(x.is_active)
            }
            Res::UserAssignments => {
                let x = &d.user_assignments[i];
                since_ok(x.updated_at)
                    && active_ok(x.is_active)
                    && Self::eq_id(self.user_id, d.users[x.user as usize].id)
            }
            Res::ProjectAssignments => since_ok(d.user_assignments[i].updated_at),
            Res::BillableRates | Res::CostRates | Res::Teammates => true,
            Res::InvoiceItemCategories => since_ok(d.invoice_item_categories[i].updated_at),
            Res::EstimateItemCategories => since_ok(d.estimate_item_categories[i].updated_at),
            Res::Invoices => {
                let x = &d.invoices[i];
                since_ok(x.updated_at)
                    && self.date_ok(x.issue_date)
                    && Self::eq_id(self.client_id, d.clients[x.client as usize].id)
                    && self.state.as_deref().is_none_or(|s| s == x.state)
                    && self.project_id.is_none_or(|pid| {
                        x.line_items.iter().any(|li| {
                            li.project != NONE && d.projects[li.project as usize].id == pid
                        })
                    })
            }
            Res::InvoiceMessages => since_ok(d.invoice_messages[i].updated_at),
            Res::InvoicePayments => since_ok(d.invoice_payments[i].updated_at),
            Res::Estimates => {
                let x = &d.estimates[i];
                since_ok(x.updated_at)
                    && self.date_ok(x.issue_date)
                    && Self::eq_id(self.client_id, d.clients[x.client as usize].id)
                    && self.state.as_deref().is_none_or(|s| s == x.state)
            }
            Res::EstimateMessages => since_ok(d.estimate_messages[i].updated_at),
            Res::ExpenseCategories => {
                let x = &d.expense_categories[i];
                since_ok(x.updated_at) && active_ok(x.is_active)
            }
            Res::Expenses => {
                let x = &d.expenses[i];
                let user = d.ex_user(x);
                let project = d.ex_project(x);
                viewer.is_none_or(|v| v == user)
                    && since_ok(x.updated_at)
                    && self.date_ok(x.spent_date)
                    && Self::eq_id(self.user_id, d.users[user as usize].id)
                    && Self::eq_id(self.project_id, d.projects[project as usize].id)
                    && Self::eq_id(self.client_id, d.clients[d.ex_client(x) as usize].id)
                    && self.is_billed.is_none_or(|b| b == x.is_billed)
            }
            Res::TimeEntries => {
                use crate::model::te_flags as tf;
                let x = &d.time_entries[i];
                let user = d.te_user(x);
                viewer.is_none_or(|v| v == user)
                    && since_ok(x.updated_at)
                    && self.date_ok(x.spent_date)
                    && Self::eq_id(self.user_id, d.users[user as usize].id)
                    && Self::eq_id(self.project_id, d.projects[d.te_project(x) as usize].id)
                    && Self::eq_id(self.client_id, d.clients[d.te_client(x) as usize].id)
                    && Self::eq_id(self.task_id, d.tasks[d.te_task(x) as usize].id)
                    && self.is_billed.is_none_or(|b| b == x.has(tf::BILLED))
                    && self.is_running.is_none_or(|b| b == x.has(tf::RUNNING))
                    && self
                        .external_reference_id
                        .as_deref()
                        .is_none_or(|e| x.ext_ref != NONE && d.ext_refs[x.ext_ref as usize].id == e)
            }
        }
    }
}

/// Receives each rendered object.
pub trait Sink {
    fn put<T: Serialize>(&mut self, v: &T);
}

/// Renders record `i` of `res` into `sink`.
pub fn visit<S: Sink>(res: Res, d: &Data, ix: &Indexes, i: u32, sink: &mut S) {
    match res {
        Res::Users => sink.put(&render::user(d, i)),
        Res::Roles => sink.put(&render::role(d, i)),
        Res::Clients => sink.put(&render::client(d, i)),
        Res::Contacts => sink.put(&render::contact(d, i)),
        Res::Projects => sink.put(&render::project(d, i)),
        Res::Tasks => sink.put(&render::task(d, i)),
        Res::TaskAssignments => sink.put(&render::task_assignment(d, i)),
        Res::UserAssignments => sink.put(&render::user_assignment(d, i)),
        Res::ProjectAssignments => {
            let p = d.user_assignments[i as usize].project;
            let tas = ix.project_tas(d);
            sink.put(&render::project_assignment(d, i, &tas[p as usize]))
        }
        Res::BillableRates => sink.put(&render::rate(&d.billable_rates[i as usize])),
        Res::CostRates => sink.put(&render::rate(&d.cost_rates[i as usize])),
        Res::Teammates => sink.put(&render::teammate(d, d.teammates[i as usize].user)),
        Res::InvoiceItemCategories => sink.put(&render::invoice_item_category(d, i)),
        Res::EstimateItemCategories => sink.put(&render::estimate_item_category(d, i)),
        Res::Invoices => sink.put(&render::invoice(d, i)),
        Res::InvoiceMessages => sink.put(&render::invoice_message(d, i)),
        Res::InvoicePayments => sink.put(&render::invoice_payment(d, i)),
        Res::Estimates => sink.put(&render::estimate(d, i)),
        Res::EstimateMessages => sink.put(&render::estimate_message(d, i)),
        Res::ExpenseCategories => sink.put(&render::expense_category(d, i)),
        Res::Expenses => sink.put(&render::expense(d, i)),
        Res::TimeEntries => sink.put(&render::time_entry(d, i)),
    }
}

struct ValueSink(Option<serde_json::Value>);
impl Sink for ValueSink {
    fn put<T: Serialize>(&mut self, v: &T) {
        self.0 = serde_json::to_value(v).ok();
    }
}

/// Record `i` as a JSON value (with the parent field for nested resources).
pub fn item_value(d: &Data, ix: &Indexes, res: Res, i: u32) -> serde_json::Value {
    let mut s = ValueSink(None);
    visit(res, d, ix, i, &mut s);
    let mut v = s.0.unwrap_or(serde_json::Value::Null);
    if let (Some(field), Some(pid), Some(obj)) = (
        res.parent_field(),
        parent_id_of(d, res, i),
        v.as_object_mut(),
    ) {
        obj.insert(field.to_string(), serde_json::Value::from(pid));
    }
    v
}

struct BytesSink<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}
impl Sink for BytesSink<'_> {
    fn put<T: Serialize>(&mut self, v: &T) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        let _ = serde_json::to_writer(&mut *self.out, v);
    }
}

/// How the client asked to page.
#[derive(Clone, Copy, Debug)]
pub enum Paging {
    Page(u32),
    CursorStart,
    After(i64),
    Before(i64),
}

#[derive(Clone, Copy, Debug)]
pub struct PageReq {
    pub per_page: u32,
    pub paging: Paging,
}

/// Parses `per_page`, `page` and `cursor`. Page-only endpoints ignore `cursor`.
pub fn parse_paging(p: &Params, cursor_capable: bool) -> Result<PageReq, ParamError> {
    let per_page = match p.get("per_page") {
        None | Some("") => 2000,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=2000).contains(&n) => n as u32,
            _ => {
                return Err(unprocessable(format!(
                    "per_page must be between 1 and 2000, got {v:?}"
                )))
            }
        },
    };
    let page = match p.get("page") {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 && n <= u32::MAX as i64 => Some(n as u32),
            _ => {
                return Err(unprocessable(format!(
                    "page must be a positive integer, got {v:?}"
                )))
            }
        },
    };
    let cursor = if cursor_capable {
        p.get("cursor").filter(|c| !c.is_empty())
    } else {
        None
    };
    let paging = match (cursor, page) {
        (Some(c), _) => decode_cursor(c)?,
        (None, Some(n)) => Paging::Page(n),
        (None, None) if cursor_capable => Paging::CursorStart,
        (None, None) => Paging::Page(1),
    };
    Ok(PageReq { per_page, paging })
}

pub fn encode_cursor(dir: &str, id: i64) -> String {
    let raw = format!("{{\"{dir}\":{{\"id\":{id}}}}}");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_cursor(c: &str) -> Result<Paging, ParamError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let raw = STANDARD
        .decode(c)
        .or_else(|_| STANDARD_NO_PAD.decode(c))
        .or_else(|_| URL_SAFE.decode(c))
        .or_else(|_| URL_SAFE_NO_PAD.decode(c))
        .map_err(|_| bad("Invalid cursor"))?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("Invalid cursor"))?;
    if let Some(id) = v.pointer("/after/id").and_then(|x| x.as_i64()) {
        return Ok(Paging::After(id));
    }
    if let Some(id) = v.pointer("/before/id").and_then(|x| x.as_i64()) {
        return Ok(Paging::Before(id));
    }
    Err(bad("Invalid cursor"))
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
    let total = order.len() as u64;
    let pp = u64::from(req.per_page);
    let total_pages = total.div_ceil(pp);
    let pps = req.per_page.to_string();
    let last_page = total_pages.max(1);
    let (slice, tail) = match req.paging {
        Paging::Page(p) => {
            let p = u64::from(p);
            let start = ((p - 1) * pp).min(total) as usize;
            let end = (start as u64 + pp).min(total) as usize;
            let next = (p < total_pages).then_some(p + 1);
            let prev = (p > 1).then_some(p - 1);
            let page_link =
                |n: u64| links.url(&[("page", n.to_string()), ("per_page", pps.clone())]);
            (
                &order[start..end],
                Tail {
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
                        last: page_link(last_page),
                    },
                },
            )
        }
        paging => {
            let len = order.len();
            let (start, end) = match paging {
                Paging::After(id) => {
                    let s = if ascending_ids {
                        order.partition_point(|&i| id_at(i) <= id)
                    } else {
                        order.partition_point(|&i| id_at(i) >= id)
                    };
                    (s, (s + req.per_page as usize).min(len))
                }
                Paging::Before(id) => {
                    let e = if ascending_ids {
                        order.partition_point(|&i| id_at(i) < id)
                    } else {
                        order.partition_point(|&i| id_at(i) > id)
                    };
                    (e.saturating_sub(req.per_page as usize), e)
                }
                _ => (0, (req.per_page as usize).min(len)),
            };
            let is_first = start == 0;
            let is_last = end >= len;
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
            let next_link = (!is_last && !slice.is_empty()).then(|| {
                let last_id = id_at(slice[slice.len() - 1]);
                links.url(&[
                    ("cursor", encode_cursor("after", last_id)),
                    ("per_page", pps.clone()),
                    ("ref", "next_cursor".to_string()),
                ])
            });
            let prev_link = (!is_first && !slice.is_empty()).then(|| {
                let first_id = id_at(slice[0]);
                links.url(&[
                    ("cursor", encode_cursor("before", first_id)),
                    ("per_page", pps.clone()),
                    ("ref", "prev_cursor".to_string()),
                ])
            });
            (
                slice,
                Tail {
                    per_page: req.per_page,
                    total_pages,
                    total_entries: total,
                    next_page: next,
                    previous_page: prev,
                    page,
                    links: LinksOut {
                        first: links.url(&[
                            ("page", "1".to_string()),
                            ("per_page", pps.clone()),
                            ("ref", "first".to_string()),
                        ]),
                        next: next_link,
                        previous: prev_link,
                        last: links.url(&[
                            ("page", last_page.to_string()),
                            ("per_page", pps.clone()),
                            ("ref", "last".to_string()),
                        ]),
                    },
                },
            )
        }
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

/// Renders one record as JSON bytes (used by `write_list`).
pub fn render_into(res: Res, d: &Data, ix: &Indexes, i: u32, out: &mut Vec<u8>) {
    let mut s = BytesSink { out, first: true };
    visit(res, d, ix, i, &mut s);
}
