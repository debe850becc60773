//! The resources, declared: one [`Decl`] per resource in [`DECLS`], holding everything the
//! generic list, single-object, truth, mutation and deletion code needs to know about it — its
//! table, its parent, its route, sort order and filters, who may read it, how it renders, how a
//! mutation touches and creates records, and what deleting one takes with it or is refused.
//!
//! Adding a resource: its record, its view and its `Res` variant (plus the `Data` table) in
//! `model.rs`; its declaration (and the functions it names) here, at the variant's position.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Value;

use crate::config::Size;
use crate::model::*;
use crate::params::Filters;
use crate::util::{mix64, mul_hundredths, Date, Ts};

/// Lookup of a parent's children (implemented by the list indexes), for views that nest them.
pub trait Related {
    /// Indexes of the records of `res` under parent `parent`, ascending.
    fn children(&self, d: &Data, res: Res, parent: u32) -> &[u32];
}

/// How a record renders: as JSON bytes (lists, single objects) or as a value (truth).
pub struct View {
    pub bytes: fn(&Data, &dyn Related, u32, &mut Vec<u8>),
    pub value: fn(&Data, &dyn Related, u32) -> Value,
}

/// Declares a [`View`] from one expression of `(data, related, index)` that serializes: a
/// closure-like `|d, rel, i| expr`, or a function's path.
macro_rules! view {
    (|$d:ident, $rel:tt, $i:ident| $body:expr) => {
        View {
            bytes: |$d, $rel, $i, out| {
                let _ = serde_json::to_writer(out, &$body);
            },
            value: |$d, $rel, $i| serde_json::to_value($body).unwrap_or(Value::Null),
        }
    };
    ($f:path) => {
        view!(|d, rel, i| $f(d, rel, i))
    };
}

/// A sort order of a list.
#[derive(Clone, Copy)]
pub enum Sort {
    /// Id descending (newest first).
    IdDesc,
    /// Id ascending (table order).
    IdAsc,
    /// Ascending by a key (made descending by negating it).
    By(fn(&Data, u32) -> (i64, i64)),
}

/// A nested resource's parent.
pub struct Parent {
    pub res: Res,
    /// The route segment after `/{parent}/{id}/`.
    pub segment: &'static str,
    /// The field naming the parent in `truth` output (none: not shown).
    pub truth_field: Option<&'static str>,
    /// The parent's index of record `i`.
    pub of: fn(&Data, u32) -> u32,
    /// The order of one parent's children.
    pub sort: Sort,
    /// Whether the nested list answers in cursor mode by default.
    pub cursor: bool,
    /// A condition on the parent, and the 422 message when it does not hold.
    pub requires: Option<(Predicate, &'static str)>,
}

/// The company feature a resource needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Invoice,
    Estimate,
    Expense,
}

/// What a member token may read of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    No,
    /// The top-level list and single objects.
    Yes,
    /// The nested list under the member's own user only.
    OwnParent,
}

/// The top-level route `/v2/{name}`.
#[derive(Clone, Copy)]
pub struct Top {
    /// `/v2/{name}/{id}` exists.
    pub single: bool,
    /// The list answers in cursor mode by default.
    pub cursor: bool,
}

/// A condition on record `i` of a table.
pub type Predicate = fn(&Data, u32) -> bool;

/// A record of this resource whose owner is the `u32` record: (dependent resource, owner).
pub type Owner = fn(&Data, u32) -> u32;

/// Everything about one resource.
pub struct Decl {
    pub res: Res,
    /// The name `truth`, `mutate` and `delete` accept, the route and the envelope key.
    pub name: &'static str,
    // -- the table
    /// How many records the table holds (live or deleted).
    pub len: fn(&Data) -> usize,
    /// The id of record `i` (the key cursors carry).
    pub id: fn(&Data, u32) -> i64,
    /// The index of the record with an id.
    pub find: fn(&Data, i64) -> Option<u32>,
    /// The resource whose table (and tombstones) hold the records.
    pub stored_as: Option<Res>,
    /// The user a record belongs to, when members see only their own.
    pub owner: Option<Owner>,
    // -- lists and routes
    pub top: Option<Top>,
    pub parent: Option<Parent>,
    /// The order of the whole list.
    pub sort: Sort,
    /// Whether ids ascend along a list (for cursors); they descend otherwise.
    pub ids_ascend: bool,
    /// Which records a list shows at all (none: every live one).
    pub listed: Option<Predicate>,
    /// The filters Harvest supports on the list, and whether record `i` passes them.
    pub filters: &'static [&'static str],
    pub pass: fn(&Filters, &Data, u32) -> bool,
    // -- permissions
    pub feature: Option<Feature>,
    pub manager: bool,
    pub member: Member,
    // -- rendering
    pub view: View,
    // -- mutation
    /// Touches `update` records spread over the table (updated_at = now plus a visible
    /// change); returns their ids.
    pub touch: fn(&mut Data, usize, Ts) -> Vec<i64>,
    /// Creates the `k`-th new record of a mutation; returns its id.
    pub create: fn(&mut Data, usize, Ts) -> Option<i64>,
    /// Archives record `i` (`is_active: false`).
    pub archive: Option<fn(&mut Data, usize, Ts)>,
    /// Moves record `i` to another `spent_date`.
    pub redate: Option<fn(&mut Data, usize, Date, Ts)>,
    // -- deletion
    /// Why Harvest refuses to delete record `i`, if it does.
    pub refusal: fn(&Data, u32) -> Option<&'static str>,
    /// What goes with a deleted record: each dependent resource and the owner of its records.
    pub dependents: &'static [(Res, Owner)],
    /// What else changes when record `i` is deleted (a parent's `updated_at`...).
    pub on_delete: fn(&mut Data, u32, Ts),
    /// The records one id names (a teammate id names every link to that user); none: one.
    pub links: Option<fn(&Data, u32) -> Vec<u32>>,
    // -- generation
    /// Adds the resource's records to a newly generated account (seed, size), after the
    /// generators of `gen` (which generate every resource declared without this hook,
    /// together, since they reference each other); timestamps within `gen::DATA_START..=DATA_END`.
    pub generate: Option<fn(&mut Data, u64, Size)>,
}

impl Res {
    /// The declaration of this resource.
    pub fn decl(self) -> &'static Decl {
        &DECLS[self as usize]
    }
    pub fn name(self) -> &'static str {
        self.decl().name
    }
    pub fn from_name(s: &str) -> Option<Res> {
        DECLS.iter().find(|d| d.name == s).map(|d| d.res)
    }
}

/// Every resource, in `Res` order.
pub fn all() -> impl Iterator<Item = Res> {
    DECLS.iter().map(|d| d.res)
}

// ---------------------------------------------------------------- defaults and helpers

const US: &str = "updated_since";

fn no_refusal(_: &Data, _: u32) -> Option<&'static str> {
    None
}
fn nothing_else(_: &mut Data, _: u32, _: Ts) {}
fn all_pass(_: &Filters, _: &Data, _: u32) -> bool {
    true
}
fn cannot_create(_: &mut Data, _: usize, _: Ts) -> Option<i64> {
    None
}

/// Positions of `count` records spread evenly across `len` (every k-th, not just the newest).
pub fn spread(len: usize, count: usize) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count >= len {
        return (0..len).collect();
    }
    (0..count)
        .map(|k| k * len / count + (len / count) / 2)
        .collect()
}

/// Touches the records at `positions` of a table: each gets the next mutation number `n`,
/// `updated_at = now` and `change(record, n)`; returns their ids.
fn touch_at<T>(
    d: &mut Data,
    positions: &[usize],
    now: Ts,
    table: fn(&mut Data) -> &mut Vec<T>,
    change: impl Fn(&mut T, Ts, u64) -> i64,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for &pos in positions {
        d.mutation_counter += 1;
        let n = d.mutation_counter;
        ids.push(change(&mut table(d)[pos], now, n));
    }
    ids
}

/// [`touch_at`] over `update` records spread across the whole table.
fn touch<T>(
    d: &mut Data,
    update: usize,
    now: Ts,
    table: fn(&mut Data) -> &mut Vec<T>,
    change: impl Fn(&mut T, Ts, u64) -> i64,
) -> Vec<i64> {
    let positions = spread(table(d).len(), update);
    touch_at(d, &positions, now, table, change)
}

/// `base` with its mutation marker replaced by `n` (so names do not grow on every mutation).
fn marked(base: &str, n: u64) -> String {
    let stem = match base.rfind(" ·") {
        Some(p) => &base[..p],
        None => base,
    };
    format!("{stem} ·{n}")
}

fn next_id(last: Option<i64>, base: i64) -> i64 {
    last.map(|x| x + 1).unwrap_or(base)
}

fn pick_idx(len: usize, k: usize, salt: u64) -> usize {
    if len == 0 {
        0
    } else {
        (mix64(salt.wrapping_add(k as u64)) % len as u64) as usize
    }
}

fn active_uas(d: &Data) -> Vec<u32> {
    d.user_assignments
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_active && d.projects[u.project as usize].is_active)
        .map(|(i, _)| i as u32)
        .collect()
}

/// Whether any live time entry satisfies `f`.
fn live_te(d: &Data, f: impl Fn(&TimeEntry) -> bool) -> bool {
    d.time_entries
        .iter()
        .enumerate()
        .any(|(k, t)| !d.deleted.has(Res::TimeEntries, k as u32) && f(t))
}

/// Whether any live expense satisfies `f`.
fn live_ex(d: &Data, f: impl Fn(&Expense) -> bool) -> bool {
    d.expenses
        .iter()
        .enumerate()
        .any(|(k, x)| !d.deleted.has(Res::Expenses, k as u32) && f(x))
}

/// The live (not deleted) records of `res`, by index.
fn live(d: &Data, res: Res) -> Vec<u32> {
    (0..(res.decl().len)(d) as u32)
        .filter(|&i| !d.deleted.has(res, i))
        .collect()
}

/// Whether any live record of `res` (at `k`) satisfies `f`.
fn live_any<T>(d: &Data, res: Res, v: &[T], f: impl Fn(&T) -> bool) -> bool {
    v.iter()
        .enumerate()
        .any(|(k, x)| f(x) && !d.deleted.has(res, k as u32))
}

fn position<T>(v: &[T], id: i64, get: impl Fn(&T) -> i64) -> Option<u32> {
    v.iter().position(|x| get(x) == id).map(|i| i as u32)
}

/// The sort key of dated lists: date then id, newest first.
fn newest(date: Date, id: i64) -> (i64, i64) {
    (-i64::from(date.0), -id)
}

/// The sort key of rates: start date then id, ascending.
fn rate_key(r: &Rate) -> (i64, i64) {
    (r.start_date.map_or(i64::MIN, |s| i64::from(s.0)), r.id)
}

/// What every declaration leaves as is unless it says otherwise (the `res`, `name`, table
/// functions, view and touch are always given).
const BASE: Decl = Decl {
    res: Res::Users,
    name: "",
    len: |_| 0,
    id: |_, _| 0,
    find: |_, _| None,
    stored_as: None,
    owner: None,
    top: None,
    parent: None,
    sort: Sort::IdDesc,
    ids_ascend: false,
    listed: None,
    filters: &[],
    pass: all_pass,
    feature: None,
    manager: true,
    member: Member::No,
    view: view!(|_d, _, _i| Value::Null),
    touch: |_, _, _| Vec::new(),
    create: cannot_create,
    archive: None,
    redate: None,
    refusal: no_refusal,
    dependents: &[],
    on_delete: nothing_else,
    links: None,
    generate: None,
};

/// A top-level list with single objects, in cursor mode.
const TOP: Option<Top> = Some(Top {
    single: true,
    cursor: true,
});
/// A top-level list with single objects, in page mode.
const TOP_PAGED: Option<Top> = Some(Top {
    single: true,
    cursor: false,
});
/// A top-level list without single objects, in cursor mode.
const TOP_LIST: Option<Top> = Some(Top {
    single: false,
    cursor: true,
});

/// Every resource's declaration, in `Res` order.
pub static DECLS: [Decl; 22] = [
    Decl {
        res: Res::Users,
        name: "users",
        len: |d| d.users.len(),
        id: |d, i| d.users[i as usize].id,
        find: |d, id| d.user_idx(id),
        top: TOP,
        filters: &["is_active", US],
        pass: |f, d, i| {
            let x = &d.users[i as usize];
            f.since(x.updated_at) && f.active(x.is_active)
        },
        view: view!(|d, _, i| user(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.users,
                |x, now, n| {
                    x.updated_at = now;
                    x.telephone = Cow::Owned(format!("+1 555 9{:03}", n % 1000));
                    x.id
                },
            )
        },
        create: create_users,
        archive: Some(|d, i, now| {
            d.users[i].is_active = false;
            d.users[i].updated_at = now;
        }),
        refusal: |d, i| {
            (live_te(d, |t| d.te_user(t) == i) || live_ex(d, |x| d.ex_user(x) == i))
                .then_some("a user with time entries or expenses")
        },
        dependents: &[
            (Res::UserAssignments, |d, k| {
                d.user_assignments[k as usize].user
            }),
            (Res::BillableRates, |d, k| d.billable_rates[k as usize].user),
            (Res::CostRates, |d, k| d.cost_rates[k as usize].user),
            (Res::Teammates, |d, k| d.teammates[k as usize].user),
            (Res::Teammates, |d, k| d.teammates[k as usize].manager),
        ],
        on_delete: |d, i, now| {
            for role in &mut d.roles {
                if role.users.contains(&i) {
                    role.users.retain(|&u| u != i);
                    role.updated_at = now;
                }
            }
        },
        ..BASE
    },
    Decl {
        res: Res::Roles,
        name: "roles",
        len: |d| d.roles.len(),
        id: |d, i| d.roles[i as usize].id,
        find: |d, id| d.role_idx(id),
        top: TOP,
        manager: false,
        view: view!(|d, _, i| role(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.roles,
                |x, now, n| {
                    x.updated_at = now;
                    x.name = Cow::Owned(marked(&x.name, n));
                    x.id
                },
            )
        },
        create: create_roles,
        ..BASE
    },
    Decl {
        res: Res::Clients,
        name: "clients",
        len: |d| d.clients.len(),
        id: |d, i| d.clients[i as usize].id,
        find: |d, id| d.client_idx(id),
        top: TOP,
        filters: &["is_active", US],
        pass: |f, d, i| {
            let x = &d.clients[i as usize];
            f.since(x.updated_at) && f.active(x.is_active)
        },
        view: view!(|d, _, i| client(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.clients,
                |x, now, n| {
                    x.updated_at = now;
                    x.address = Some(Cow::Owned(format!("{n} Updated Way\nSpringfield")));
                    x.id
                },
            )
        },
        create: create_clients,
        archive: Some(|d, i, now| {
            d.clients[i].is_active = false;
            d.clients[i].updated_at = now;
        }),
        refusal: |d, i| {
            let used = live_any(d, Res::Projects, &d.projects, |p| p.client == i)
                || live_any(d, Res::Invoices, &d.invoices, |x| x.client == i)
                || live_any(d, Res::Estimates, &d.estimates, |x| x.client == i);
            used.then_some("a client with projects, invoices or estimates")
        },
        dependents: &[(Res::Contacts, |d, k| d.contacts[k as usize].client)],
        ..BASE
    },
    Decl {
        res: Res::Contacts,
        name: "contacts",
        len: |d| d.contacts.len(),
        id: |d, i| d.contacts[i as usize].id,
        find: |d, id| d.contact_idx(id),
        top: TOP,
        filters: &["client_id", US],
        pass: |f, d, i| {
            let x = &d.contacts[i as usize];
            f.since(x.updated_at) && Filters::eq_id(f.client_id, d.clients[x.client as usize].id)
        },
        view: view!(|d, _, i| contact(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.contacts,
                |x, now, n| {
                    x.updated_at = now;
                    x.title = Cow::Owned(format!("Updated title {n}"));
                    x.id
                },
            )
        },
        create: create_contacts,
        ..BASE
    },
    Decl {
        res: Res::Projects,
        name: "projects",
        len: |d| d.projects.len(),
        id: |d, i| d.projects[i as usize].id,
        find: |d, id| d.project_idx(id),
        top: TOP,
        filters: &["is_active", "client_id", US],
        pass: |f, d, i| {
            let x = &d.projects[i as usize];
            f.since(x.updated_at)
                && f.active(x.is_active)
                && Filters::eq_id(f.client_id, d.clients[x.client as usize].id)
        },
        view: view!(|d, _, i| project(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.projects,
                |x, now, n| {
                    x.updated_at = now;
                    x.notes = Cow::Owned(format!("Updated note {n}"));
                    x.id
                },
            )
        },
        create: create_projects,
        archive: Some(|d, i, now| {
            d.projects[i].is_active = false;
            d.projects[i].updated_at = now;
        }),
        dependents: &[
            (Res::TimeEntries, |d, k| {
                d.te_project(&d.time_entries[k as usize])
            }),
            (Res::Expenses, |d, k| d.ex_project(&d.expenses[k as usize])),
            (Res::UserAssignments, |d, k| {
                d.user_assignments[k as usize].project
            }),
            (Res::TaskAssignments, |d, k| {
                d.task_assignments[k as usize].project
            }),
        ],
        ..BASE
    },
    Decl {
        res: Res::Tasks,
        name: "tasks",
        len: |d| d.tasks.len(),
        id: |d, i| d.tasks[i as usize].id,
        find: |d, id| d.task_idx(id),
        top: TOP,
        member: Member::Yes,
        filters: &["is_active", US],
        pass: |f, d, i| {
            let x = &d.tasks[i as usize];
            f.since(x.updated_at) && f.active(x.is_active)
        },
        view: view!(|d, _, i| task(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.tasks,
                |x, now, n| {
                    x.updated_at = now;
                    x.default_hourly_rate = Some(10_000 + (n as i64 % 50) * 100 + 50);
                    x.id
                },
            )
        },
        create: create_tasks,
        archive: Some(|d, i, now| {
            d.tasks[i].is_active = false;
            d.tasks[i].updated_at = now;
        }),
        refusal: |d, i| {
            live_te(d, |t| d.task_assignments[t.ta as usize].task == i)
                .then_some("a task with time tracked to it")
        },
        dependents: &[(Res::TaskAssignments, |d, k| {
            d.task_assignments[k as usize].task
        })],
        ..BASE
    },
    Decl {
        res: Res::TaskAssignments,
        name: "task_assignments",
        len: |d| d.task_assignments.len(),
        id: |d, i| d.task_assignments[i as usize].id,
        find: |d, id| d.task_assignment_idx(id),
        top: TOP_LIST,
        parent: Some(Parent {
            res: Res::Projects,
            segment: "task_assignments",
            truth_field: None,
            of: |d, i| d.task_assignments[i as usize].project,
            sort: Sort::IdDesc,
            cursor: false,
            requires: None,
        }),
        filters: &["is_active", US],
        pass: |f, d, i| {
            let x = &d.task_assignments[i as usize];
            f.since(x.updated_at) && f.active(x.is_active)
        },
        view: view!(|d, _, i| task_assignment(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.task_assignments,
                |x, now, n| {
                    x.updated_at = now;
                    x.hourly_rate = Some(9_000 + (n as i64 % 40) * 100 + 25);
                    x.id
                },
            )
        },
        create: create_task_assignments,
        archive: Some(|d, i, now| {
            d.task_assignments[i].is_active = false;
            d.task_assignments[i].updated_at = now;
        }),
        refusal: |d, i| {
            live_te(d, |t| t.ta == i).then_some("a task assignment with time tracked to it")
        },
        ..BASE
    },
    Decl {
        res: Res::UserAssignments,
        name: "user_assignments",
        len: |d| d.user_assignments.len(),
        id: |d, i| d.user_assignments[i as usize].id,
        find: |d, id| d.user_assignment_idx(id),
        top: TOP_LIST,
        parent: Some(Parent {
            res: Res::Projects,
            segment: "user_assignments",
            truth_field: None,
            of: |d, i| d.user_assignments[i as usize].project,
            sort: Sort::IdDesc,
            cursor: false,
            requires: None,
        }),
        filters: &["user_id", "is_active", US],
        pass: |f, d, i| {
            let x = &d.user_assignments[i as usize];
            f.since(x.updated_at)
                && f.active(x.is_active)
                && Filters::eq_id(f.user_id, d.users[x.user as usize].id)
        },
        view: view!(|d, _, i| user_assignment(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.user_assignments,
                |x, now, n| {
                    x.updated_at = now;
                    x.hourly_rate = Some(8_000 + (n as i64 % 40) * 100 + 75);
                    x.id
                },
            )
        },
        create: create_user_assignments,
        archive: Some(archive_user_assignment),
        refusal: user_assignment_refusal,
        ..BASE
    },
    Decl {
        res: Res::BillableRates,
        name: "billable_rates",
        len: |d| d.billable_rates.len(),
        id: |d, i| d.billable_rates[i as usize].id,
        find: |d, id| position(&d.billable_rates, id, |x| x.id),
        parent: Some(Parent {
            res: Res::Users,
            segment: "billable_rates",
            truth_field: Some("user_id"),
            of: |d, i| d.billable_rates[i as usize].user,
            sort: Sort::By(|d, i| rate_key(&d.billable_rates[i as usize])),
            cursor: true,
            requires: None,
        }),
        sort: Sort::IdAsc,
        ids_ascend: true,
        view: view!(|d, _, i| rate(&d.billable_rates[i as usize])),
        touch: |d, u, now| touch_rates(d, u, now, true),
        create: |d, k, now| create_rate(d, k, now, true),
        refusal: rate_refusal,
        ..BASE
    },
    Decl {
        res: Res::CostRates,
        name: "cost_rates",
        len: |d| d.cost_rates.len(),
        id: |d, i| d.cost_rates[i as usize].id,
        find: |d, id| position(&d.cost_rates, id, |x| x.id),
        parent: Some(Parent {
            res: Res::Users,
            segment: "cost_rates",
            truth_field: Some("user_id"),
            of: |d, i| d.cost_rates[i as usize].user,
            sort: Sort::By(|d, i| rate_key(&d.cost_rates[i as usize])),
            cursor: true,
            requires: None,
        }),
        sort: Sort::IdAsc,
        ids_ascend: true,
        manager: false,
        view: view!(|d, _, i| rate(&d.cost_rates[i as usize])),
        touch: |d, u, now| touch_rates(d, u, now, false),
        create: |d, k, now| create_rate(d, k, now, false),
        refusal: rate_refusal,
        ..BASE
    },
    Decl {
        res: Res::ProjectAssignments,
        name: "project_assignments",
        len: |d| d.user_assignments.len(),
        id: |d, i| d.user_assignments[i as usize].id,
        find: |d, id| d.user_assignment_idx(id),
        stored_as: Some(Res::UserAssignments),
        parent: Some(Parent {
            res: Res::Users,
            segment: "project_assignments",
            truth_field: Some("user_id"),
            of: |d, i| d.user_assignments[i as usize].user,
            sort: Sort::IdDesc,
            cursor: true,
            requires: None,
        }),
        listed: Some(|d, i| d.user_assignments[i as usize].is_active),
        member: Member::OwnParent,
        filters: &[US],
        pass: |f, d, i| f.since(d.user_assignments[i as usize].updated_at),
        view: view!(project_assignment_view),
        touch: touch_project_assignments,
        create: create_user_assignments,
        archive: Some(archive_user_assignment),
        refusal: user_assignment_refusal,
        ..BASE
    },
    Decl {
        res: Res::Teammates,
        name: "teammates",
        len: |d| d.teammates.len(),
        // A teammate is shown (and named) by its user's id.
        id: |d, i| d.users[d.teammates[i as usize].user as usize].id,
        find: |d, id| d.user_idx(id),
        parent: Some(Parent {
            res: Res::Users,
            segment: "teammates",
            truth_field: Some("user_id"),
            of: |d, i| d.teammates[i as usize].manager,
            sort: Sort::By(|d, i| (-d.users[d.teammates[i as usize].user as usize].id, 0)),
            cursor: true,
            requires: Some((
                |d, u| d.users[u as usize].access == AccessRole::Manager,
                "Teammates can only be listed for a user with the manager role",
            )),
        }),
        sort: Sort::IdAsc,
        manager: false,
        view: view!(|d, _, i| teammate(d, d.teammates[i as usize].user)),
        touch: touch_teammates,
        create: create_teammates,
        // Every link to the user goes; the user stays.
        links: Some(|d, user| {
            (0..d.teammates.len() as u32)
                .filter(|&k| {
                    d.teammates[k as usize].user == user && !d.deleted.has(Res::Teammates, k)
                })
                .collect()
        }),
        ..BASE
    },
    Decl {
        res: Res::InvoiceItemCategories,
        name: "invoice_item_categories",
        len: |d| d.invoice_item_categories.len(),
        id: |d, i| d.invoice_item_categories[i as usize].id,
        find: |d, id| d.invoice_item_category_idx(id),
        top: TOP,
        feature: Some(Feature::Invoice),
        filters: &[US],
        pass: |f, d, i| f.since(d.invoice_item_categories[i as usize].updated_at),
        view: view!(|d, _, i| invoice_item_category(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.invoice_item_categories,
                |x, now, n| {
                    x.updated_at = now;
                    x.name = Cow::Owned(marked(&x.name, n));
                    x.id
                },
            )
        },
        create: create_invoice_item_categories,
        ..BASE
    },
    Decl {
        res: Res::EstimateItemCategories,
        name: "estimate_item_categories",
        len: |d| d.estimate_item_categories.len(),
        id: |d, i| d.estimate_item_categories[i as usize].id,
        find: |d, id| d.estimate_item_category_idx(id),
        top: TOP,
        feature: Some(Feature::Estimate),
        manager: false,
        filters: &[US],
        pass: |f, d, i| f.since(d.estimate_item_categories[i as usize].updated_at),
        view: view!(|d, _, i| estimate_item_category(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.estimate_item_categories,
                |x, now, n| {
                    x.updated_at = now;
                    x.name = Cow::Owned(marked(&x.name, n));
                    x.id
                },
            )
        },
        create: create_estimate_item_categories,
        ..BASE
    },
    Decl {
        res: Res::Invoices,
        name: "invoices",
        len: |d| d.invoices.len(),
        id: |d, i| d.invoices[i as usize].id,
        find: |d, id| d.invoice_idx(id),
        top: TOP_PAGED,
        sort: Sort::By(|d, i| newest(d.invoices[i as usize].issue_date, d.invoices[i as usize].id)),
        feature: Some(Feature::Invoice),
        filters: &["client_id", "project_id", US, "from", "to", "state"],
        pass: |f, d, i| {
            let x = &d.invoices[i as usize];
            f.since(x.updated_at)
                && f.date_ok(x.issue_date)
                && Filters::eq_id(f.client_id, d.clients[x.client as usize].id)
                && f.state.as_deref().is_none_or(|s| s == x.state)
                && f.project_id.is_none_or(|pid| {
                    x.line_items
                        .iter()
                        .any(|li| li.project != NONE && d.projects[li.project as usize].id == pid)
                })
        },
        view: view!(|d, _, i| invoice(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.invoices,
                |x, now, n| {
                    x.updated_at = now;
                    x.notes = Cow::Owned(format!("Updated notes {n}"));
                    x.id
                },
            )
        },
        create: create_invoices,
        dependents: &[
            (Res::InvoiceMessages, |d, k| {
                d.invoice_messages[k as usize].invoice
            }),
            (Res::InvoicePayments, |d, k| {
                d.invoice_payments[k as usize].invoice
            }),
        ],
        ..BASE
    },
    Decl {
        res: Res::InvoiceMessages,
        name: "invoice_messages",
        len: |d| d.invoice_messages.len(),
        id: |d, i| d.invoice_messages[i as usize].id,
        find: |d, id| position(&d.invoice_messages, id, |x| x.id),
        parent: Some(Parent {
            res: Res::Invoices,
            segment: "messages",
            truth_field: Some("invoice_id"),
            of: |d, i| d.invoice_messages[i as usize].invoice,
            sort: Sort::IdDesc,
            cursor: true,
            requires: None,
        }),
        feature: Some(Feature::Invoice),
        filters: &[US],
        pass: |f, d, i| f.since(d.invoice_messages[i as usize].updated_at),
        view: view!(|d, _, i| invoice_message(d, i)),
        touch: |d, u, now| {
            let ids = touch(
                d,
                u,
                now,
                |d| &mut d.invoice_messages,
                |x, now, n| {
                    x.updated_at = now;
                    x.body = Cow::Owned(format!("Updated body {n}"));
                    x.id
                },
            );
            bump_parents(d, Res::InvoiceMessages, &ids, now);
            ids
        },
        create: create_invoice_messages,
        on_delete: |d, i, now| {
            let p = d.invoice_messages[i as usize].invoice as usize;
            d.invoices[p].updated_at = now;
        },
        ..BASE
    },
    Decl {
        res: Res::InvoicePayments,
        name: "invoice_payments",
        len: |d| d.invoice_payments.len(),
        id: |d, i| d.invoice_payments[i as usize].id,
        find: |d, id| position(&d.invoice_payments, id, |x| x.id),
        parent: Some(Parent {
            res: Res::Invoices,
            segment: "payments",
            truth_field: Some("invoice_id"),
            of: |d, i| d.invoice_payments[i as usize].invoice,
            sort: Sort::IdDesc,
            cursor: true,
            requires: None,
        }),
        feature: Some(Feature::Invoice),
        filters: &[US],
        pass: |f, d, i| f.since(d.invoice_payments[i as usize].updated_at),
        view: view!(|d, _, i| invoice_payment(d, i)),
        touch: |d, u, now| {
            let ids = touch(
                d,
                u,
                now,
                |d| &mut d.invoice_payments,
                |x, now, n| {
                    x.updated_at = now;
                    x.notes = Cow::Owned(format!("Updated payment note {n}"));
                    x.id
                },
            );
            bump_parents(d, Res::InvoicePayments, &ids, now);
            ids
        },
        create: create_invoice_payments,
        on_delete: |d, i, now| {
            let p = d.invoice_payments[i as usize].invoice as usize;
            d.invoices[p].updated_at = now;
        },
        ..BASE
    },
    Decl {
        res: Res::Estimates,
        name: "estimates",
        len: |d| d.estimates.len(),
        id: |d, i| d.estimates[i as usize].id,
        find: |d, id| d.estimate_idx(id),
        top: TOP_PAGED,
        sort: Sort::By(|d, i| {
            newest(
                d.estimates[i as usize].issue_date,
                d.estimates[i as usize].id,
            )
        }),
        feature: Some(Feature::Estimate),
        filters: &["client_id", US, "from", "to", "state"],
        pass: |f, d, i| {
            let x = &d.estimates[i as usize];
            f.since(x.updated_at)
                && f.date_ok(x.issue_date)
                && Filters::eq_id(f.client_id, d.clients[x.client as usize].id)
                && f.state.as_deref().is_none_or(|s| s == x.state)
        },
        view: view!(|d, _, i| estimate(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.estimates,
                |x, now, n| {
                    x.updated_at = now;
                    x.notes = Cow::Owned(format!("Updated notes {n}"));
                    x.id
                },
            )
        },
        create: create_estimates,
        dependents: &[(Res::EstimateMessages, |d, k| {
            d.estimate_messages[k as usize].estimate
        })],
        ..BASE
    },
    Decl {
        res: Res::EstimateMessages,
        name: "estimate_messages",
        len: |d| d.estimate_messages.len(),
        id: |d, i| d.estimate_messages[i as usize].id,
        find: |d, id| position(&d.estimate_messages, id, |x| x.id),
        parent: Some(Parent {
            res: Res::Estimates,
            segment: "messages",
            truth_field: Some("estimate_id"),
            of: |d, i| d.estimate_messages[i as usize].estimate,
            sort: Sort::IdDesc,
            cursor: true,
            requires: None,
        }),
        feature: Some(Feature::Estimate),
        filters: &[US],
        pass: |f, d, i| f.since(d.estimate_messages[i as usize].updated_at),
        view: view!(|d, _, i| estimate_message(d, i)),
        touch: |d, u, now| {
            let ids = touch(
                d,
                u,
                now,
                |d| &mut d.estimate_messages,
                |x, now, n| {
                    x.updated_at = now;
                    x.body = Cow::Owned(format!("Updated body {n}"));
                    x.id
                },
            );
            bump_parents(d, Res::EstimateMessages, &ids, now);
            ids
        },
        create: create_estimate_messages,
        on_delete: |d, i, now| {
            let p = d.estimate_messages[i as usize].estimate as usize;
            d.estimates[p].updated_at = now;
        },
        ..BASE
    },
    Decl {
        res: Res::ExpenseCategories,
        name: "expense_categories",
        len: |d| d.expense_categories.len(),
        id: |d, i| d.expense_categories[i as usize].id,
        find: |d, id| d.expense_category_idx(id),
        top: TOP,
        feature: Some(Feature::Expense),
        manager: false,
        filters: &["is_active", US],
        pass: |f, d, i| {
            let x = &d.expense_categories[i as usize];
            f.since(x.updated_at) && f.active(x.is_active)
        },
        view: view!(|d, _, i| expense_category(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.expense_categories,
                |x, now, n| {
                    x.updated_at = now;
                    x.name = Cow::Owned(marked(&x.name, n));
                    x.id
                },
            )
        },
        create: create_expense_categories,
        refusal: |d, i| live_ex(d, |x| x.category == i).then_some("an expense category in use"),
        ..BASE
    },
    Decl {
        res: Res::Expenses,
        name: "expenses",
        len: |d| d.expenses.len(),
        id: |d, i| d.expenses[i as usize].id,
        find: |d, id| d.expense_idx(id),
        owner: Some(|d, i| d.ex_user(&d.expenses[i as usize])),
        top: TOP_PAGED,
        sort: Sort::By(|d, i| newest(d.expenses[i as usize].spent_date, d.expenses[i as usize].id)),
        feature: Some(Feature::Expense),
        member: Member::Yes,
        filters: &[
            "user_id",
            "client_id",
            "project_id",
            "is_billed",
            US,
            "from",
            "to",
        ],
        pass: |f, d, i| {
            let x = &d.expenses[i as usize];
            f.since(x.updated_at)
                && f.date_ok(x.spent_date)
                && Filters::eq_id(f.user_id, d.users[d.ex_user(x) as usize].id)
                && Filters::eq_id(f.project_id, d.projects[d.ex_project(x) as usize].id)
                && Filters::eq_id(f.client_id, d.clients[d.ex_client(x) as usize].id)
                && f.is_billed.is_none_or(|b| b == x.is_billed)
        },
        view: view!(|d, _, i| expense(d, i)),
        touch: |d, u, now| {
            touch(
                d,
                u,
                now,
                |d| &mut d.expenses,
                |x, now, n| {
                    x.updated_at = now;
                    x.notes = Cow::Owned(format!("Updated expense note {n}"));
                    x.id
                },
            )
        },
        create: create_expenses,
        redate: Some(|d, i, date, now| {
            d.expenses[i].spent_date = date;
            d.expenses[i].updated_at = now;
        }),
        ..BASE
    },
    Decl {
        res: Res::TimeEntries,
        name: "time_entries",
        len: |d| d.time_entries.len(),
        id: |d, i| d.time_entries[i as usize].id,
        find: |d, id| d.time_entry_idx(id),
        owner: Some(|d, i| d.te_user(&d.time_entries[i as usize])),
        top: TOP_PAGED,
        sort: Sort::By(|d, i| {
            newest(
                d.time_entries[i as usize].spent_date,
                d.time_entries[i as usize].id,
            )
        }),
        member: Member::Yes,
        filters: &[
            "user_id",
            "client_id",
            "project_id",
            "task_id",
            "external_reference_id",
            "is_billed",
            "is_running",
            US,
            "from",
            "to",
        ],
        pass: time_entry_passes,
        view: view!(|d, _, i| time_entry(d, i)),
        touch: touch_time_entries,
        create: create_time_entries,
        redate: Some(|d, i, date, now| {
            d.time_entries[i].spent_date = date;
            d.time_entries[i].updated_at = now;
        }),
        ..BASE
    },
];

// ---------------------------------------------------------------- rules named above

/// A project assignment with its project's task assignments nested.
fn project_assignment_view<'a>(
    d: &'a Data,
    rel: &'a dyn Related,
    i: u32,
) -> ProjectAssignmentView<'a> {
    let p = d.user_assignments[i as usize].project;
    project_assignment(d, i, rel.children(d, Res::TaskAssignments, p))
}

fn archive_user_assignment(d: &mut Data, i: usize, now: Ts) {
    d.user_assignments[i].is_active = false;
    d.user_assignments[i].updated_at = now;
}

fn user_assignment_refusal(d: &Data, i: u32) -> Option<&'static str> {
    (live_te(d, |t| t.ua == i) || live_ex(d, |x| x.ua == i))
        .then_some("a user assignment with time or expenses")
}

fn rate_refusal(_: &Data, _: u32) -> Option<&'static str> {
    Some("a rate (Harvest has no DELETE for rates)")
}

/// Bumps the parents of the touched children `ids` of `res` (`updated_at = now`).
fn bump_parents(d: &mut Data, res: Res, ids: &[i64], now: Ts) {
    let decl = res.decl();
    let parent = decl.parent.as_ref().expect("a nested resource");
    for &id in ids {
        if let Some(i) = (decl.find)(d, id) {
            let p = (parent.of)(d, i);
            match parent.res {
                Res::Invoices => d.invoices[p as usize].updated_at = now,
                _ => d.estimates[p as usize].updated_at = now,
            }
        }
    }
}

fn touch_project_assignments(d: &mut Data, update: usize, now: Ts) -> Vec<i64> {
    let active: Vec<usize> = d
        .user_assignments
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_active)
        .map(|(i, _)| i)
        .collect();
    let positions: Vec<usize> = spread(active.len(), update)
        .into_iter()
        .map(|p| active[p])
        .collect();
    touch_at(
        d,
        &positions,
        now,
        |d| &mut d.user_assignments,
        |x, now, n| {
            x.updated_at = now;
            x.budget = Some(1_000 + (n as i64 % 90) * 100);
            x.id
        },
    )
}

/// A teammate shows its user's name and email: rename the user (once per user, however many
/// managers it has), which every view of the user shows.
fn touch_teammates(d: &mut Data, update: usize, now: Ts) -> Vec<i64> {
    let mut users: Vec<u32> = d.teammates.iter().map(|t| t.user).collect();
    users.sort_unstable();
    users.dedup();
    let positions: Vec<usize> = spread(users.len(), update)
        .into_iter()
        .map(|p| users[p] as usize)
        .collect();
    touch_at(
        d,
        &positions,
        now,
        |d| &mut d.users,
        |x, now, n| {
            x.updated_at = now;
            x.last_name = Cow::Owned(marked(&x.last_name, n));
            x.id
        },
    )
}

/// Time-entry notes live in a shared pool: a touched entry gets a new note.
fn touch_time_entries(d: &mut Data, update: usize, now: Ts) -> Vec<i64> {
    let mut ids = Vec::new();
    for pos in spread(d.time_entries.len(), update) {
        d.mutation_counter += 1;
        let n = d.mutation_counter;
        d.notes.push(Cow::Owned(format!("Updated entry note {n}")));
        let note = (d.notes.len() - 1) as u32;
        let x = &mut d.time_entries[pos];
        x.updated_at = now;
        x.notes = note;
        ids.push(x.id);
    }
    ids
}

fn time_entry_passes(f: &Filters, d: &Data, i: u32) -> bool {
    use crate::model::te_flags as tf;
    let x = &d.time_entries[i as usize];
    f.since(x.updated_at)
        && f.date_ok(x.spent_date)
        && Filters::eq_id(f.user_id, d.users[d.te_user(x) as usize].id)
        && Filters::eq_id(f.project_id, d.projects[d.te_project(x) as usize].id)
        && Filters::eq_id(f.client_id, d.clients[d.te_client(x) as usize].id)
        && Filters::eq_id(f.task_id, d.tasks[d.te_task(x) as usize].id)
        && f.is_billed.is_none_or(|b| b == x.has(tf::BILLED))
        && f.is_running.is_none_or(|b| b == x.has(tf::RUNNING))
        && f.external_reference_id
            .as_deref()
            .is_none_or(|e| x.ext_ref != NONE && d.ext_refs[x.ext_ref as usize].id == e)
}

// ---------------------------------------------------------------- creating records

fn create_users(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.users.last().map(|x| x.id), 1_782_001);
    d.users.push(User {
        id,
        first_name: Cow::Borrowed("New"),
        last_name: Cow::Owned(format!("Hire{n}")),
        email: format!("new.hire{n}@example.com"),
        telephone: Cow::Borrowed(""),
        timezone: "UTC",
        has_access_to_all_future_projects: false,
        is_contractor: false,
        is_active: true,
        weekly_capacity: 126_000,
        default_hourly_rate: Some(10_000),
        cost_rate: None,
        access: AccessRole::Member,
        addons: &[],
        calendar_integration_enabled: false,
        clock24: n % 2 == 0,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_roles(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.roles.last().map(|x| x.id), 617_630);
    let nu = d.users.len() as u32;
    d.roles.push(Role {
        id,
        name: Cow::Owned(format!("New role {n}")),
        users: (0..nu.min(2)).collect(),
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_clients(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.clients.last().map(|x| x.id), 5_735_001);
    d.clients.push(Client {
        id,
        name: Cow::Owned(format!("New Client {n}")),
        is_active: true,
        address: None,
        currency: if n % 3 == 0 { "EUR" } else { "USD" },
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_contacts(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let id = next_id(d.contacts.last().map(|x| x.id), 4_706_001);
    let client = pick_idx(d.clients.len(), k, salt) as u32;
    d.contacts.push(Contact {
        id,
        client,
        title: Cow::Borrowed("New contact"),
        first_name: "Casey",
        last_name: "New",
        email: format!("casey.new{n}@example.com"),
        phone_office: Cow::Borrowed(""),
        phone_mobile: Cow::Borrowed(""),
        fax: "",
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_projects(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    let id = next_id(d.projects.last().map(|x| x.id), 14_307_001);
    let client = pick_idx(d.clients.len(), k, salt) as u32;
    d.projects.push(Project {
        id,
        client,
        name: Cow::Owned(format!("New Project {n}")),
        code: Cow::Owned(format!("NP{n}")),
        is_active: true,
        is_billable: true,
        is_fixed_fee: false,
        bill_by: "Project",
        hourly_rate: Some(12_000),
        budget: None,
        budget_by: "none",
        budget_is_monthly: false,
        notify_when_over_budget: false,
        over_budget_notification_percentage: 8000,
        over_budget_notification_date: None,
        show_budget_to_all: false,
        cost_budget: None,
        cost_budget_include_expenses: false,
        fee: None,
        notes: Cow::Borrowed(""),
        starts_on: Some(today),
        ends_on: None,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_tasks(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.tasks.last().map(|x| x.id), 8_083_001);
    d.tasks.push(Task {
        id,
        name: Cow::Owned(format!("New Task {n}")),
        billable_by_default: true,
        default_hourly_rate: Some(11_000),
        is_default: false,
        is_active: true,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_task_assignments(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let salt = d.mutation_counter.wrapping_mul(31);
    if d.projects.is_empty() || d.tasks.is_empty() {
        return None;
    }
    let id = next_id(d.task_assignments.last().map(|x| x.id), 155_502_001);
    let project = pick_idx(d.projects.len(), k, salt) as u32;
    let task = pick_idx(d.tasks.len(), k, salt ^ 7) as u32;
    d.task_assignments.push(TaskAssignment {
        id,
        project,
        task,
        billable: true,
        is_active: true,
        hourly_rate: Some(10_000),
        budget: None,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

/// Assigns a user to a project (both live and active) they are not assigned to yet: Harvest
/// assigns a user to a project once. The user's project assignments show it (same record).
fn create_user_assignments(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let salt = d.mutation_counter.wrapping_mul(31);
    let projects: Vec<u32> = live(d, Res::Projects)
        .into_iter()
        .filter(|&p| d.projects[p as usize].is_active)
        .collect();
    let users: Vec<u32> = live(d, Res::Users)
        .into_iter()
        .filter(|&u| d.users[u as usize].is_active)
        .collect();
    let taken: HashSet<(u32, u32)> = live(d, Res::UserAssignments)
        .into_iter()
        .map(|i| {
            let x = &d.user_assignments[i as usize];
            (x.project, x.user)
        })
        .collect();
    let (p0, u0) = (
        pick_idx(projects.len(), k, salt),
        pick_idx(users.len(), k, salt ^ 3),
    );
    let (project, user) = (0..projects.len() * users.len())
        .map(|s| {
            (
                projects[(p0 + s / users.len()) % projects.len()],
                users[(u0 + s) % users.len()],
            )
        })
        .find(|pair| !taken.contains(pair))?;
    let id = next_id(d.user_assignments.last().map(|x| x.id), 125_068_001);
    d.user_assignments.push(UserAssignment {
        id,
        project,
        user,
        is_project_manager: false,
        is_active: true,
        use_default_rates: true,
        budget: None,
        hourly_rate: Some(10_000),
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

/// Rates cannot be edited in Harvest, only added: touching `update` rates adds a new current
/// rate (as [`create_rate`] does) for each of `update` distinct users spread over the list;
/// returns the new rates' ids.
fn touch_rates(d: &mut Data, update: usize, now: Ts, billable: bool) -> Vec<i64> {
    let users = rate_candidates(d, now, billable, update);
    let mut ids = Vec::new();
    for pos in spread(users.len(), update) {
        d.mutation_counter += 1;
        ids.push(add_rate(d, users[pos], now, billable));
    }
    ids
}

fn create_rate(d: &mut Data, k: usize, now: Ts, billable: bool) -> Option<i64> {
    let salt = d.mutation_counter.wrapping_mul(31);
    let users = rate_candidates(d, now, billable, 1);
    if users.is_empty() {
        return None;
    }
    let user = users[pick_idx(users.len(), k, salt)];
    Some(add_rate(d, user, now, billable))
}

/// The rate table of a kind, and its resource.
fn rate_table(d: &Data, billable: bool) -> (Res, &[Rate]) {
    if billable {
        (Res::BillableRates, &d.billable_rates)
    } else {
        (Res::CostRates, &d.cost_rates)
    }
}

/// The users `want` new rates of a kind may go to: the live users without such a rate starting
/// today (a second one the same day would replace the first), or every live user when fewer
/// than `want` are left.
fn rate_candidates(d: &Data, now: Ts, billable: bool, want: usize) -> Vec<u32> {
    let today = Date::of_ts(now.0);
    let (res, rates) = rate_table(d, billable);
    let mut dated_today = vec![false; d.users.len()];
    for (k, r) in rates.iter().enumerate() {
        if r.start_date == Some(today) && !d.deleted.has(res, k as u32) {
            dated_today[r.user as usize] = true;
        }
    }
    let users = live(d, Res::Users);
    let fresh: Vec<u32> = users
        .iter()
        .copied()
        .filter(|&u| !dated_today[u as usize])
        .collect();
    if fresh.len() >= want {
        fresh
    } else {
        users
    }
}

/// Adds a rate of user `u` starting today, as Harvest's "create a billable (cost) rate" does,
/// and returns its id. A new rate replaces the user's rates starting on or after its start
/// date (here: one added earlier today), and Harvest computes end dates: the user's latest
/// remaining rate now ends yesterday. Its `updated_at` moves too, as in Harvest's documented
/// example (each ended rate's `updated_at` is the next rate's `created_at`) and in the
/// generated histories. The new rate, the latest, is the user's current one: the user's
/// `default_hourly_rate` (billable) or `cost_rate` (cost) shows its amount and the user's
/// `updated_at` moves, which is how a client sees that the user's rates changed.
fn add_rate(d: &mut Data, u: u32, now: Ts, billable: bool) -> i64 {
    let n = d.mutation_counter;
    let today = Date::of_ts(now.0);
    let user = &d.users[u as usize];
    let current = if billable {
        user.default_hourly_rate
    } else {
        user.cost_rate
    };
    let mut amount = 13_000 + (n as i64 % 20) * 100;
    if current == Some(amount) {
        amount += 50;
    }
    let (res, base) = if billable {
        (Res::BillableRates, 1_836_001)
    } else {
        (Res::CostRates, 2_946_001)
    };
    let (rates, deleted) = if billable {
        (&mut d.billable_rates, &mut d.deleted)
    } else {
        (&mut d.cost_rates, &mut d.deleted)
    };
    let id = next_id(rates.last().map(|x| x.id), base);
    for (k, r) in rates.iter().enumerate() {
        if r.user == u && r.start_date.is_some_and(|s| s >= today) {
            deleted.mark(res, k as u32);
        }
    }
    let yesterday = Some(Date(today.0 - 1));
    if let Some(latest) = rates
        .iter_mut()
        .enumerate()
        .filter(|(k, r)| r.user == u && !deleted.has(res, *k as u32))
        .map(|(_, r)| r)
        .max_by_key(|r| (r.start_date, r.id))
    {
        if latest.end_date != yesterday {
            latest.end_date = yesterday;
            latest.updated_at = now;
        }
    }
    rates.push(Rate {
        id,
        user: u,
        amount,
        start_date: Some(today),
        end_date: None,
        created_at: now,
        updated_at: now,
    });
    let user = &mut d.users[u as usize];
    *if billable {
        &mut user.default_hourly_rate
    } else {
        &mut user.cost_rate
    } = Some(amount);
    user.updated_at = now;
    id
}

/// Assigns a live user to a live manager who does not manage them yet (a link deleted before
/// is not made again); the id is the user's (not a fresh one). Nothing else changes: Harvest
/// does not document that a new teammate moves anybody's `updated_at`, so no user's does.
fn create_teammates(d: &mut Data, k: usize, _now: Ts) -> Option<i64> {
    let salt = d.mutation_counter.wrapping_mul(31);
    let users = live(d, Res::Users);
    let managers: Vec<u32> = users
        .iter()
        .copied()
        .filter(|&u| d.users[u as usize].access == AccessRole::Manager)
        .collect();
    let start = pick_idx(managers.len(), k, salt);
    let (manager, user) = (0..managers.len()).find_map(|step| {
        let m = managers[(start + step) % managers.len()];
        let free: Vec<u32> = users
            .iter()
            .copied()
            .filter(|&u| {
                u != m
                    && d.teammates
                        .binary_search_by_key(&(m, u), |t| (t.manager, t.user))
                        .is_err()
            })
            .collect();
        (!free.is_empty()).then(|| (m, free[pick_idx(free.len(), k, salt ^ 11)]))
    })?;
    let pos = d
        .teammates
        .partition_point(|t| (t.manager, t.user) < (manager, user));
    d.teammates.insert(pos, Teammate { manager, user });
    // The links after it moved up one place: so do their tombstones.
    d.deleted.inserted(Res::Teammates, pos as u32);
    Some(d.users[user as usize].id)
}

fn create_invoice_item_categories(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.invoice_item_categories.last().map(|x| x.id), 1_466_001);
    d.invoice_item_categories.push(InvoiceItemCategory {
        id,
        name: Cow::Owned(format!("New category {n}")),
        use_as_service: false,
        use_as_expense: false,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_estimate_item_categories(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.estimate_item_categories.last().map(|x| x.id), 1_378_001);
    d.estimate_item_categories.push(EstimateItemCategory {
        id,
        name: Cow::Owned(format!("New category {n}")),
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_expense_categories(d: &mut Data, _k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let id = next_id(d.expense_categories.last().map(|x| x.id), 4_195_001);
    d.expense_categories.push(ExpenseCategory {
        id,
        name: Cow::Owned(format!("New expense category {n}")),
        unit_name: None,
        unit_price: None,
        is_active: true,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_invoices(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    if d.clients.is_empty() || d.users.is_empty() {
        return None;
    }
    let id = next_id(d.invoices.last().map(|x| x.id), 13_150_001);
    let client = pick_idx(d.clients.len(), k, salt) as u32;
    let project = d
        .projects
        .iter()
        .position(|p| p.client == client)
        .map(|p| p as u32)
        .unwrap_or(NONE);
    let quantity = 250;
    let unit_price = 12_000;
    let amount = mul_hundredths(quantity, unit_price);
    let line_id = d.next_invoice_line_id;
    d.next_invoice_line_id += 1;
    let number = format!("{}", 1001 + d.invoices.len());
    d.invoices.push(Invoice {
        id,
        client,
        number,
        purchase_order: "",
        amount,
        due_amount: amount,
        tax: None,
        tax_amount: 0,
        tax2: None,
        tax2_amount: 0,
        discount: None,
        discount_amount: 0,
        subject: Cow::Owned(format!("New invoice {n}")),
        notes: Cow::Borrowed(""),
        currency: d.clients[client as usize].currency,
        state: "draft",
        period_start: None,
        period_end: None,
        issue_date: today,
        due_date: Date(today.0 + 30),
        payment_term: "net 30",
        payment_options: &[],
        sent_at: None,
        paid_at: None,
        paid_date: None,
        closed_at: None,
        recurring_invoice_id: None,
        estimate: NONE,
        retainer_id: None,
        creator: 0,
        line_items: vec![LineItem {
            id: line_id,
            kind: Cow::Borrowed("Service"),
            description: "Consulting",
            quantity,
            unit_price,
            amount,
            taxed: false,
            taxed2: false,
            project,
        }],
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_invoice_messages(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    if d.invoices.is_empty() {
        return None;
    }
    let id = next_id(d.invoice_messages.last().map(|x| x.id), 27_835_001);
    let inv = pick_idx(d.invoices.len(), k, salt) as u32;
    let client = d.invoices[inv as usize].client;
    let recipients = d
        .contacts
        .iter()
        .position(|c| c.client == client)
        .map(|c| vec![c as u32])
        .unwrap_or_default();
    let number = d.invoices[inv as usize].number.clone();
    d.invoice_messages.push(InvoiceMessage {
        id,
        invoice: inv,
        sender: d.invoices[inv as usize].creator,
        recipients,
        subject: format!("Invoice #{number} (resent)"),
        body: Cow::Owned(format!("New message {n}")),
        include_link_to_client_invoice: false,
        attach_pdf: true,
        send_me_a_copy: false,
        thank_you: false,
        event_type: None,
        reminder: false,
        send_reminder_on: None,
        created_at: now,
        updated_at: now,
    });
    d.invoices[inv as usize].updated_at = now;
    Some(id)
}

fn create_invoice_payments(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    if d.invoices.is_empty() {
        return None;
    }
    let id = next_id(d.invoice_payments.last().map(|x| x.id), 10_336_001);
    let open: Vec<u32> = d
        .invoices
        .iter()
        .enumerate()
        .filter(|(_, v)| v.due_amount > 0 && v.state == "open")
        .map(|(i, _)| i as u32)
        .collect();
    let inv = if open.is_empty() {
        pick_idx(d.invoices.len(), k, salt) as u32
    } else {
        open[pick_idx(open.len(), k, salt)]
    };
    let v = &mut d.invoices[inv as usize];
    let amount = if v.due_amount > 0 {
        (v.due_amount / 2).max(1)
    } else {
        100
    };
    v.due_amount = (v.due_amount - amount).max(0);
    v.updated_at = now;
    let recorder = v.creator;
    d.invoice_payments.push(InvoicePayment {
        id,
        invoice: inv,
        amount,
        paid_at: now,
        paid_date: today,
        recorder,
        notes: Cow::Borrowed("Recorded by the simulator"),
        transaction_id: None,
        gateway_id: None,
        gateway_name: Some("Stripe"),
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_estimates(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    if d.clients.is_empty() || d.users.is_empty() {
        return None;
    }
    let id = next_id(d.estimates.last().map(|x| x.id), 1_439_001);
    let client = pick_idx(d.clients.len(), k, salt) as u32;
    let line_id = d.next_estimate_line_id;
    d.next_estimate_line_id += 1;
    let number = format!("{}", 1001 + d.estimates.len());
    d.estimates.push(Estimate {
        id,
        client,
        number,
        purchase_order: "",
        amount: 500_000,
        tax: None,
        tax_amount: 0,
        tax2: None,
        tax2_amount: 0,
        discount: None,
        discount_amount: 0,
        subject: Cow::Owned(format!("New estimate {n}")),
        notes: Cow::Borrowed(""),
        currency: d.clients[client as usize].currency,
        state: "draft",
        issue_date: today,
        sent_at: None,
        accepted_at: None,
        declined_at: None,
        creator: 0,
        line_items: vec![LineItem {
            id: line_id,
            kind: Cow::Borrowed("Service"),
            description: "Consulting",
            quantity: 100,
            unit_price: 500_000,
            amount: 500_000,
            taxed: false,
            taxed2: false,
            project: NONE,
        }],
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_estimate_messages(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    if d.estimates.is_empty() {
        return None;
    }
    let id = next_id(d.estimate_messages.last().map(|x| x.id), 2_666_001);
    let est = pick_idx(d.estimates.len(), k, salt) as u32;
    let number = d.estimates[est as usize].number.clone();
    d.estimate_messages.push(EstimateMessage {
        id,
        estimate: est,
        sender: d.estimates[est as usize].creator,
        recipients: Vec::new(),
        subject: format!("Estimate #{number} (resent)"),
        body: Cow::Owned(format!("New message {n}")),
        send_me_a_copy: false,
        event_type: Some("send"),
        created_at: now,
        updated_at: now,
    });
    d.estimates[est as usize].updated_at = now;
    Some(id)
}

fn create_expenses(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    let uas = active_uas(d);
    if uas.is_empty() || d.expense_categories.is_empty() {
        return None;
    }
    let id = next_id(d.expenses.last().map(|x| x.id), 15_296_001);
    let ua = uas[pick_idx(uas.len(), k, salt)];
    d.expenses.push(Expense {
        id,
        ua,
        category: pick_idx(d.expense_categories.len(), k, salt ^ 5) as u32,
        notes: Cow::Owned(format!("New expense {n}")),
        total_cost: 4_250,
        units: 100,
        is_closed: false,
        is_locked: false,
        is_billed: false,
        locked_reason: None,
        spent_date: today,
        billable: true,
        receipt: None,
        invoice: NONE,
        created_at: now,
        updated_at: now,
    });
    Some(id)
}

fn create_time_entries(d: &mut Data, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let salt = d.mutation_counter.wrapping_mul(31);
    let today = Date::of_ts(now.0);
    let uas = active_uas(d);
    if uas.is_empty() {
        return None;
    }
    let id = next_id(d.time_entries.last().map(|x| x.id), 636_709_001);
    let ua = uas[pick_idx(uas.len(), k, salt)];
    let project = d.user_assignments[ua as usize].project;
    let ta = d
        .task_assignments
        .iter()
        .position(|t| t.project == project)
        .map(|t| t as u32)?;
    let user = d.user_assignments[ua as usize].user;
    d.notes.push(Cow::Owned(format!("New entry {n}")));
    let notes = (d.notes.len() - 1) as u32;
    let billable = d.task_assignments[ta as usize].billable;
    let mut flags = 0;
    if billable {
        flags |= te_flags::BILLABLE;
    }
    if d.users[user as usize].clock24 {
        flags |= te_flags::CLOCK24;
    }
    d.time_entries.push(TimeEntry {
        id,
        created_at: now,
        updated_at: now,
        timer_started_at: 0,
        spent_date: today,
        ua,
        ta,
        hours: 150,
        hours_without_timer: 150,
        rounded_hours: 150,
        billable_rate: if billable { 10_000 } else { -1 },
        cost_rate: d.users[user as usize]
            .cost_rate
            .map(|c| c as i32)
            .unwrap_or(-1),
        invoice: NONE,
        ext_ref: NONE,
        notes,
        started: 9 * 60,
        ended: 10 * 60 + 30,
        flags,
    });
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_in_res_order() {
        for (k, decl) in DECLS.iter().enumerate() {
            assert_eq!(decl.res as usize, k, "{}", decl.name);
            assert!(!decl.name.is_empty());
        }
    }
}
