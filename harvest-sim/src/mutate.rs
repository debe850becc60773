//! Mutations: touch existing records (updated_at = now, plus a visible change) and create new
//! ones with fresh ids and consistent references (each resource's `touch` and `create` are
//! declared in `resources`); archive and move records to another day. Messages and payments
//! bump their parent's updated_at; a new rate (rates are only ever added, so touching one adds
//! one) moves its user's.

use crate::model::*;
use crate::util::Ts;

/// Applies a mutation; returns (updated ids, created ids).
pub fn mutate(
    d: &mut Data,
    res: Res,
    update: usize,
    create: usize,
    now: i64,
) -> (Vec<i64>, Vec<i64>) {
    let now = Ts(now);
    let decl = res.decl();
    let updated = (decl.touch)(d, update, now);
    let mut created = Vec::new();
    for k in 0..create {
        d.mutation_counter += 1;
        if let Some(id) = (decl.create)(d, k, now) {
            created.push(id);
        }
    }
    d.version += 1;
    (updated, created)
}

/// Archives records (`is_active: false`, `updated_at` = now), as Harvest's "archive" does: they
/// stay in every list (a user's project assignments, which list active ones only, excepted).
pub fn archive(d: &mut Data, res: Res, ids: &[i64], now: i64) -> Result<(), String> {
    let now = Ts(now.max(d.max_ts + 1));
    for &id in ids {
        let i = crate::delete::index_of(d, res, id)
            .ok_or_else(|| format!("{} {id} does not exist", res.name()))? as usize;
        match res.decl().archive {
            Some(archive) => archive(d, i, now),
            None => return Err(format!("{} cannot be archived", res.name())),
        }
    }
    d.version += 1;
    Ok(())
}

/// Moves time entries or expenses to another day (`spent_date` = `date`, `updated_at` = now),
/// as editing one in Harvest does.
pub fn redate(
    d: &mut Data,
    res: Res,
    ids: &[i64],
    date: crate::util::Date,
    now: i64,
) -> Result<(), String> {
    let now = Ts(now.max(d.max_ts + 1));
    for &id in ids {
        let i = crate::delete::index_of(d, res, id)
            .ok_or_else(|| format!("{} {id} does not exist", res.name()))? as usize;
        match res.decl().redate {
            Some(redate) => redate(d, i, date, now),
            None => return Err(format!("{} has no spent_date", res.name())),
        }
    }
    d.version += 1;
    Ok(())
}
