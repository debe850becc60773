//! Deletions, as Harvest does them: what goes with a deleted record (a project takes its time
//! entries, expenses and assignments; an invoice its messages and payments; an estimate its
//! messages; a user its assignments, rates and teammate links) and what Harvest refuses to
//! delete (a client with projects, invoices or estimates; a task, task assignment or user
//! assignment with time tracked to it; a user with time entries or expenses; an expense
//! category in use). Harvest has no DELETE for rates. Those rules are declared per resource
//! (`resources::Decl::{refusal, dependents, on_delete, links}`); this module applies them.
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

/// The index of the live record `id` of `res` (a single GET's, a deletion's).
pub fn index_of(d: &Data, res: Res, id: i64) -> Option<u32> {
    let decl = res.decl();
    let i = (decl.find)(d, id)?;
    // Where one id names several links (teammates), the index is the named record's: it is
    // not deleted with its links.
    (decl.links.is_some() || !d.deleted.has(res, i)).then_some(i)
}

/// Why Harvest would refuse to delete record `i` of `res`, if it would.
fn refusal(d: &Data, res: Res, i: u32) -> Option<String> {
    (res.decl().refusal)(d, i).map(|w| format!("Harvest refuses to delete {w}"))
}

/// Marks record `i` of `res` deleted, and what goes with it.
fn cascade(d: &mut Data, res: Res, i: u32, now: Ts, out: &mut Vec<(String, i64)>) {
    let res = res.decl().stored_as.unwrap_or(res);
    if !d.deleted.mark(res, i) {
        return;
    }
    let decl = res.decl();
    out.push((decl.name.to_string(), (decl.id)(d, i)));
    let mut goes: Vec<(Res, u32)> = Vec::new();
    for (child, owner) in decl.dependents {
        goes.extend(
            (0..(child.decl().len)(d) as u32)
                .filter(|&k| !d.deleted.has(*child, k) && owner(d, k) == i)
                .map(|k| (*child, k)),
        );
    }
    (decl.on_delete)(d, i, now);
    for (child, k) in goes {
        cascade(d, child, k, now, out);
    }
}

/// Records of `res` that can be deleted, `count` of them spread over the list (every k-th,
/// not just the newest), skipping those Harvest would refuse.
pub fn pick(d: &Data, res: Res, count: usize) -> Vec<i64> {
    let decl = res.decl();
    let live: Vec<u32> = (0..(decl.len)(d) as u32)
        .filter(|&i| !d.deleted.has(res, i) && refusal(d, res, i).is_none())
        .collect();
    let step = (live.len() / count.max(1)).max(1);
    live.iter()
        .skip(step / 2)
        .step_by(step)
        .take(count)
        .map(|&i| (decl.id)(d, i))
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
        let targets = match res.decl().links {
            Some(links) => links(d, i),
            None => vec![i],
        };
        for k in targets {
            cascade(d, res, k, now, &mut out);
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
