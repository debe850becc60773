//! Deletions, as Harvest does them: what goes with a deleted record (a project takes its time
//! entries, expenses and assignments; an invoice its messages and payments; an estimate its
//! messages; a user its assignments, rates and teammate links) and what Harvest refuses to
//! delete (a client with projects, invoices or estimates; a task, task assignment or user
//! assignment with time tracked to it; a user with time entries or expenses; an expense
//! category in use). Harvest has no DELETE for rates.
//!
//! A deleted record stays in its vector (every reference is an index) and is marked in
//! [`Data::deleted`]; every list, single GET, report and the ground truth leave it out. The data
//! version moves, so a sync in progress sees the deletion on its next request: a deletion
//! between two page requests shifts the later pages, as Harvest's offset pagination does.
//! Deleting a line item removes it from its invoice or estimate and bumps the parent's
//! `updated_at`; deleting a message or payment bumps its parent's, as sending or recording one does.

use serde::{Deserialize, Serialize};

use crate::model::*;
use crate::util::Ts;

/// Everything one deletion removed, by resource name (cascades included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: Vec<(String, i64)>,
}

fn position<T>(v: &[T], id: i64, get: impl Fn(&T) -> i64) -> Option<u32> {
    v.iter().position(|x| get(x) == id).map(|i| i as u32)
}

/// The index of the live record `id` of `res` (a single GET's, a deletion's).
pub fn index_of(d: &Data, res: Res, id: i64) -> Option<u32> {
    let i = match res {
        Res::Users => d.user_idx(id),
        Res::Roles => d.role_idx(id),
        Res::Clients => d.client_idx(id),
        Res::Contacts => d.contact_idx(id),
        Res::Projects => d.project_idx(id),
        Res::Tasks => d.task_idx(id),
        Res::TaskAssignments => d.task_assignment_idx(id),
        Res::UserAssignments | Res::ProjectAssignments => d.user_assignment_idx(id),
        Res::BillableRates => position(&d.billable_rates, id, |x| x.id),
        Res::CostRates => position(&d.cost_rates, id, |x| x.id),
        // A teammate link is named by its user: every link to that user goes.
        Res::Teammates => d.user_idx(id),
        Res::InvoiceItemCategories => d.invoice_item_category_idx(id),
        Res::EstimateItemCategories => d.estimate_item_category_idx(id),
        Res::Invoices => d.invoice_idx(id),
        Res::InvoiceMessages => position(&d.invoice_messages, id, |x| x.id),
        Res::InvoicePayments => position(&d.invoice_payments, id, |x| x.id),
        Res::Estimates => d.estimate_idx(id),
        Res::EstimateMessages => position(&d.estimate_messages, id, |x| x.id),
        Res::ExpenseCategories => d.expense_category_idx(id),
        Res::Expenses => d.expense_idx(id),
        Res::TimeEntries => d.time_entry_idx(id),
    }?;
    // A teammate "index" is its user's: the user is not deleted with its links.
    (res == Res::Teammates || !d.deleted.has(res, i)).then_some(i)
}

/// Why Harvest would refuse to delete record `i` of `res`, if it would.
fn refusal(d: &Data, res: Res, i: u32) -> Option<String> {
    let live_te = |f: &dyn Fn(&TimeEntry) -> bool| {
        d.time_entries
            .iter()
            .enumerate()
            .any(|(k, t)| !d.deleted.has(Res::TimeEntries, k as u32) && f(t))
    };
    let live_ex = |f: &dyn Fn(&Expense) -> bool| {
        d.expenses
            .iter()
            .enumerate()
            .any(|(k, x)| !d.deleted.has(Res::Expenses, k as u32) && f(x))
    };
    let why = match res {
        Res::Clients => {
            let used = d
                .projects
                .iter()
                .enumerate()
                .any(|(k, p)| p.client == i && !d.deleted.has(Res::Projects, k as u32))
                || d.invoices
                    .iter()
                    .enumerate()
                    .any(|(k, x)| x.client == i && !d.deleted.has(Res::Invoices, k as u32))
                || d.estimates
                    .iter()
                    .enumerate()
                    .any(|(k, x)| x.client == i && !d.deleted.has(Res::Estimates, k as u32));
            used.then_some("a client with projects, invoices or estimates")
        }
        Res::Tasks => live_te(&|t| d.task_assignments[t.ta as usize].task == i)
            .then_some("a task with time tracked to it"),
        Res::TaskAssignments => {
            live_te(&|t| t.ta == i).then_some("a task assignment with time tracked to it")
        }
        Res::UserAssignments | Res::ProjectAssignments => (live_te(&|t| t.ua == i)
            || live_ex(&|x| x.ua == i))
        .then_some("a user assignment with time or expenses"),
        Res::Users => (live_te(&|t| d.te_user(t) == i) || live_ex(&|x| d.ex_user(x) == i))
            .then_some("a user with time entries or expenses"),
        Res::ExpenseCategories => {
            live_ex(&|x| x.category == i).then_some("an expense category in use")
        }
        Res::BillableRates | Res::CostRates => Some("a rate (Harvest has no DELETE for rates)"),
        _ => None,
    };
    why.map(|w| format!("Harvest refuses to delete {w}"))
}

/// Marks record `i` of `res` deleted, and what goes with it.
fn cascade(d: &mut Data, res: Res, i: u32, now: Ts, out: &mut Vec<(String, i64)>) {
    let res = match res {
        Res::ProjectAssignments => Res::UserAssignments,
        r => r,
    };
    if !d.deleted.mark(res, i) {
        return;
    }
    let id = match res {
        // A teammate link is named by its user's id.
        Res::Teammates => d.users[d.teammates[i as usize].user as usize].id,
        _ => id_of(d, res, i),
    };
    out.push((res.name().to_string(), id));
    let mut goes: Vec<(Res, u32)> = Vec::new();
    for (child, owner) in dependents(res) {
        goes.extend(
            (0..len(d, *child) as u32)
                .filter(|&k| !d.deleted.has(*child, k) && owner(d, k) == i)
                .map(|k| (*child, k)),
        );
    }
    match res {
        Res::Users => {
            for role in &mut d.roles {
                if role.users.contains(&i) {
                    role.users.retain(|&u| u != i);
                    role.updated_at = now;
                }
            }
        }
        Res::InvoiceMessages => {
            let p = d.invoice_messages[i as usize].invoice as usize;
            d.invoices[p].updated_at = now;
        }
        Res::InvoicePayments => {
            let p = d.invoice_payments[i as usize].invoice as usize;
            d.invoices[p].updated_at = now;
        }
        Res::EstimateMessages => {
            let p = d.estimate_messages[i as usize].estimate as usize;
            d.estimates[p].updated_at = now;
        }
        _ => {}
    }
    for (child, k) in goes {
        cascade(d, child, k, now, out);
    }
}

type Owner = fn(&Data, u32) -> u32;

/// What goes with a record of `res`: each dependent resource, with the index of the record
/// of `res` that owns each of its records.
fn dependents(res: Res) -> &'static [(Res, Owner)] {
    match res {
        Res::Projects => &[
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
        Res::Invoices => &[
            (Res::InvoiceMessages, |d, k| {
                d.invoice_messages[k as usize].invoice
            }),
            (Res::InvoicePayments, |d, k| {
                d.invoice_payments[k as usize].invoice
            }),
        ],
        Res::Estimates => &[(Res::EstimateMessages, |d, k| {
            d.estimate_messages[k as usize].estimate
        })],
        Res::Clients => &[(Res::Contacts, |d, k| d.contacts[k as usize].client)],
        Res::Tasks => &[(Res::TaskAssignments, |d, k| {
            d.task_assignments[k as usize].task
        })],
        Res::Users => &[
            (Res::UserAssignments, |d, k| {
                d.user_assignments[k as usize].user
            }),
            (Res::BillableRates, |d, k| d.billable_rates[k as usize].user),
            (Res::CostRates, |d, k| d.cost_rates[k as usize].user),
            (Res::Teammates, |d, k| d.teammates[k as usize].user),
            (Res::Teammates, |d, k| d.teammates[k as usize].manager),
        ],
        _ => &[],
    }
}

/// How many records (live or deleted) the vector of `res` holds.
fn len(d: &Data, res: Res) -> usize {
    match res {
        Res::Users => d.users.len(),
        Res::Roles => d.roles.len(),
        Res::Clients => d.clients.len(),
        Res::Contacts => d.contacts.len(),
        Res::Projects => d.projects.len(),
        Res::Tasks => d.tasks.len(),
        Res::TaskAssignments => d.task_assignments.len(),
        Res::UserAssignments | Res::ProjectAssignments => d.user_assignments.len(),
        Res::BillableRates => d.billable_rates.len(),
        Res::CostRates => d.cost_rates.len(),
        Res::Teammates => d.teammates.len(),
        Res::InvoiceItemCategories => d.invoice_item_categories.len(),
        Res::EstimateItemCategories => d.estimate_item_categories.len(),
        Res::Invoices => d.invoices.len(),
        Res::InvoiceMessages => d.invoice_messages.len(),
        Res::InvoicePayments => d.invoice_payments.len(),
        Res::Estimates => d.estimates.len(),
        Res::EstimateMessages => d.estimate_messages.len(),
        Res::ExpenseCategories => d.expense_categories.len(),
        Res::Expenses => d.expenses.len(),
        Res::TimeEntries => d.time_entries.len(),
    }
}

/// Records of `res` that can be deleted, `count` of them spread over the list (every k-th,
/// not just the newest), skipping those Harvest would refuse.
pub fn pick(d: &Data, res: Res, count: usize) -> Vec<i64> {
    let n = len(d, res);
    let live: Vec<u32> = (0..n as u32)
        .filter(|&i| !d.deleted.has(res, i) && refusal(d, res, i).is_none())
        .collect();
    let step = (live.len() / count.max(1)).max(1);
    live.iter()
        .skip(step / 2)
        .step_by(step)
        .take(count)
        .map(|&i| match res {
            Res::Teammates => d.users[d.teammates[i as usize].user as usize].id,
            _ => id_of(d, res, i),
        })
        .collect()
}

/// Deletes the records `ids` of `res` with their cascades, or refuses (nothing is deleted).
pub fn delete(d: &mut Data, res: Res, ids: &[i64], now: i64) -> Result<Deleted, String> {
    let mut found = Vec::new();
    for &id in ids {
        let i = index_of(d, res, id)
            .ok_or_else(|| format!("{} {id} does not exist (or was deleted)", res.name()))?;
        if let Some(why) = refusal(d, res, i) {
            return Err(format!("{} {id}: {why}", res.name()));
        }
        found.push(i);
    }
    let now = Ts(now.max(d.max_ts + 1));
    let mut out = Vec::new();
    for i in found {
        if res == Res::Teammates {
            // Every link to this user goes; the user stays.
            let links: Vec<u32> = (0..d.teammates.len() as u32)
                .filter(|&k| d.teammates[k as usize].user == i && !d.deleted.has(res, k))
                .collect();
            for k in links {
                cascade(d, res, k, now, &mut out);
            }
        } else {
            cascade(d, res, i, now, &mut out);
        }
    }
    d.version += 1;
    Ok(Deleted { deleted: out })
}

/// Removes line items (by id) from their invoices or estimates, bumping each parent.
pub fn delete_line_items(
    d: &mut Data,
    invoices: bool,
    ids: &[i64],
    now: i64,
) -> Result<Deleted, String> {
    let now = Ts(now.max(d.max_ts + 1));
    let mut out = Vec::new();
    let kind = if invoices {
        "invoice_line_items"
    } else {
        "estimate_line_items"
    };
    for &id in ids {
        let mut hit = false;
        let parents: Box<dyn Iterator<Item = (&mut Vec<LineItem>, &mut Ts)>> = if invoices {
            Box::new(
                d.invoices
                    .iter_mut()
                    .map(|p| (&mut p.line_items, &mut p.updated_at)),
            )
        } else {
            Box::new(
                d.estimates
                    .iter_mut()
                    .map(|p| (&mut p.line_items, &mut p.updated_at)),
            )
        };
        for (items, updated_at) in parents {
            if let Some(pos) = items.iter().position(|li| li.id == id) {
                items.remove(pos);
                *updated_at = now;
                hit = true;
                break;
            }
        }
        if !hit {
            return Err(format!("{kind} {id} does not exist"));
        }
        out.push((kind.to_string(), id));
    }
    d.version += 1;
    Ok(Deleted { deleted: out })
}

/// Line items that can be deleted: `count` of them, spread over the parents.
pub fn pick_line_items(d: &Data, invoices: bool, count: usize) -> Vec<i64> {
    let ids: Vec<i64> = if invoices {
        d.invoices
            .iter()
            .enumerate()
            .filter(|(k, _)| !d.deleted.has(Res::Invoices, *k as u32))
            .flat_map(|(_, p)| p.line_items.iter().map(|li| li.id))
            .collect()
    } else {
        d.estimates
            .iter()
            .enumerate()
            .filter(|(k, _)| !d.deleted.has(Res::Estimates, *k as u32))
            .flat_map(|(_, p)| p.line_items.iter().map(|li| li.id))
            .collect()
    };
    let step = (ids.len() / count.max(1)).max(1);
    ids.into_iter()
        .skip(step / 2)
        .step_by(step)
        .take(count)
        .collect()
}
