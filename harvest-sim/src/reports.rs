//! The Reports API: rows aggregated from the account's own time entries and expenses.
//!
//! `include_fixed_fee` rule (time reports and uninvoiced; default `true`): with `false`, time
//! tracked on fixed-fee projects contributes 0 to `billable_amount` / `uninvoiced_amount`; hours
//! are unchanged and the rows stay. Expenses are never affected.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::*;
use crate::query::Indexes;
use crate::util::{dec_value, mul_hundredths, Date};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportKind {
    TimeClients,
    TimeProjects,
    TimeTasks,
    TimeTeam,
    ExpensesClients,
    ExpensesProjects,
    ExpensesCategories,
    ExpensesTeam,
    Uninvoiced,
    ProjectBudget,
}

impl ReportKind {
    /// From the path after `/reports/` (e.g. `time/clients`).
    pub fn from_path(p: &str) -> Option<ReportKind> {
        Some(match p.trim_matches('/') {
            "time/clients" => ReportKind::TimeClients,
            "time/projects" => ReportKind::TimeProjects,
            "time/tasks" => ReportKind::TimeTasks,
            "time/team" => ReportKind::TimeTeam,
            "expenses/clients" => ReportKind::ExpensesClients,
            "expenses/projects" => ReportKind::ExpensesProjects,
            "expenses/categories" => ReportKind::ExpensesCategories,
            "expenses/team" => ReportKind::ExpensesTeam,
            "uninvoiced" => ReportKind::Uninvoiced,
            "project_budget" => ReportKind::ProjectBudget,
            _ => return None,
        })
    }
    pub fn path(self) -> &'static str {
        match self {
            ReportKind::TimeClients => "time/clients",
            ReportKind::TimeProjects => "time/projects",
            ReportKind::TimeTasks => "time/tasks",
            ReportKind::TimeTeam => "time/team",
            ReportKind::ExpensesClients => "expenses/clients",
            ReportKind::ExpensesProjects => "expenses/projects",
            ReportKind::ExpensesCategories => "expenses/categories",
            ReportKind::ExpensesTeam => "expenses/team",
            ReportKind::Uninvoiced => "uninvoiced",
            ReportKind::ProjectBudget => "project_budget",
        }
    }
    pub fn is_time(self) -> bool {
        matches!(
            self,
            ReportKind::TimeClients
                | ReportKind::TimeProjects
                | ReportKind::TimeTasks
                | ReportKind::TimeTeam
        )
    }
    pub fn is_expenses(self) -> bool {
        matches!(
            self,
            ReportKind::ExpensesClients
                | ReportKind::ExpensesProjects
                | ReportKind::ExpensesCategories
                | ReportKind::ExpensesTeam
        )
    }
    pub fn needs_dates(self) -> bool {
        self != ReportKind::ProjectBudget
    }
}

/// Options of one report request.
#[derive(Clone, Copy, Debug)]
pub struct ReportArgs {
    pub from: Date,
    pub to: Date,
    pub include_fixed_fee: bool,
    /// Members only see their own time and expenses.
    pub viewer: Option<u32>,
    /// `is_active` filter of project_budget.
    pub is_active: Option<bool>,
}

#[derive(Default, Clone, Copy)]
struct TimeAgg {
    total_hours: i64,
    billable_hours: i64,
    billable_amount: i64,
}

#[derive(Default, Clone, Copy)]
struct ExpAgg {
    total: i64,
    billable: i64,
}

#[derive(Default, Clone, Copy)]
struct UninvAgg {
    total_hours: i64,
    uninvoiced_hours: i64,
    uninvoiced_expenses: i64,
    uninvoiced_amount: i64,
}

/// Indices into a (spent_date desc) order whose dates fall in [from, to].
fn date_range(order: &[u32], date: impl Fn(u32) -> Date, from: Date, to: Date) -> &[u32] {
    let start = order.partition_point(|&i| date(i) > to);
    let end = order.partition_point(|&i| date(i) >= from);
    if start >= end {
        &[]
    } else {
        &order[start..end]
    }
}

fn te_amount(d: &Data, te: &TimeEntry, include_fixed_fee: bool) -> i64 {
    if !te.has(te_flags::BILLABLE) || te.billable_rate < 0 {
        return 0;
    }
    let project = &d.projects[d.te_project(te) as usize];
    if project.is_fixed_fee && !include_fixed_fee {
        return 0;
    }
    mul_hundredths(i64::from(te.hours), i64::from(te.billable_rate))
}

/// Computes the rows of a report.
pub fn compute(d: &Data, ix: &Indexes, kind: ReportKind, a: ReportArgs) -> Vec<Value> {
    if kind.is_time() {
        time_report(d, ix, kind, a)
    } else if kind.is_expenses() {
        expense_report(d, ix, kind, a)
    } else if kind == ReportKind::Uninvoiced {
        uninvoiced(d, ix, a)
    } else {
        project_budget(d, a)
    }
}

fn time_report(d: &Data, ix: &Indexes, kind: ReportKind, a: ReportArgs) -> Vec<Value> {
    let order = ix.sorted(d, Res::TimeEntries);
    let slice = date_range(
        order,
        |i| d.time_entries[i as usize].spent_date,
        a.from,
        a.to,
    );
    let mut agg: BTreeMap<(u32, &'static str), TimeAgg> = BTreeMap::new();
    for &i in slice {
        let te = &d.time_entries[i as usize];
        let user = d.te_user(te);
        if a.viewer.is_some_and(|v| v != user) {
            continue;
        }
        let client = d.te_client(te);
        let currency = d.clients[client as usize].currency;
        let subject = match kind {
            ReportKind::TimeClients => client,
            ReportKind::TimeProjects => d.te_project(te),
            ReportKind::TimeTasks => d.te_task(te),
            _ => user,
        };
        let e = agg.entry((subject, currency)).or_default();
        e.total_hours += i64::from(te.hours);
        if te.has(te_flags::BILLABLE) {
            e.billable_hours += i64::from(te.hours);
        }
        e.billable_amount += te_amount(d, te, a.include_fixed_fee);
    }
    agg.into_iter()
        .map(|((s, currency), g)| {
            let hours = |v: i64| dec_value(v);
            match kind {
                ReportKind::TimeClients => {
                    let c = &d.clients[s as usize];
                    json!({
                        "client_id": c.id, "client_name": c.name,
                        "total_hours": hours(g.total_hours), "billable_hours": hours(g.billable_hours),
                        "currency": currency, "billable_amount": dec_value(g.billable_amount),
                    })
                }
                ReportKind::TimeProjects => {
                    let p = &d.projects[s as usize];
                    let c = &d.clients[p.client as usize];
                    json!({
                        "project_id": p.id, "project_name": p.report_name(),
                        "client_id": c.id, "client_name": c.name,
                        "total_hours": hours(g.total_hours), "billable_hours": hours(g.billable_hours),
                        "currency": currency, "billable_amount": dec_value(g.billable_amount),
                    })
                }
                ReportKind::TimeTasks => {
                    let t = &d.tasks[s as usize];
                    json!({
                        "task_id": t.id, "task_name": t.name,
                        "total_hours": hours(g.total_hours), "billable_hours": hours(g.billable_hours),
                        "currency": currency, "billable_amount": dec_value(g.billable_amount),
                    })
                }
                _ => {
                    let u = &d.users[s as usize];
                    json!({
                        "user_id": u.id, "user_name": u.name(), "is_contractor": u.is_contractor,
                        "total_hours": hours(g.total_hours), "billable_hours": hours(g.billable_hours),
                        "currency": currency, "billable_amount": dec_value(g.billable_amount),
                        "weekly_capacity": u.weekly_capacity,
                        "avatar_url": crate::model::avatar_url(u.id),
                    })
                }
            }
        })
        .collect()
}

fn expense_report(d: &Data, ix: &Indexes, kind: ReportKind, a: ReportArgs) -> Vec<Value> {
    let order = ix.sorted(d, Res::Expenses);
    let slice = date_range(order, |i| d.expenses[i as usize].spent_date, a.from, a.to);
    let mut agg: BTreeMap<(u32, &'static str), ExpAgg> = BTreeMap::new();
    for &i in slice {
        let ex = &d.expenses[i as usize];
        let user = d.ex_user(ex);
        if a.viewer.is_some_and(|v| v != user) {
            continue;
        }
        let client = d.ex_client(ex);
        let currency = d.clients[client as usize].currency;
        let subject = match kind {
            ReportKind::ExpensesClients => client,
            ReportKind::ExpensesProjects => d.ex_project(ex),
            ReportKind::ExpensesCategories => ex.category,
            _ => user,
        };
        let e = agg.entry((subject, currency)).or_default();
        e.total += ex.total_cost;
        if ex.billable {
            e.billable += ex.total_cost;
        }
    }
    agg.into_iter()
        .map(|((s, currency), g)| match kind {
            ReportKind::ExpensesClients => {
                let c = &d.clients[s as usize];
                json!({
                    "client_id": c.id, "client_name": c.name,
                    "total_amount": dec_value(g.total), "billable_amount": dec_value(g.billable),
                    "currency": currency,
                })
            }
            ReportKind::ExpensesProjects => {
                let p = &d.projects[s as usize];
                let c = &d.clients[p.client as usize];
                json!({
                    "client_id": c.id, "client_name": c.name,
                    "project_id": p.id, "project_name": p.report_name(),
                    "total_amount": dec_value(g.total), "billable_amount": dec_value(g.billable),
                    "currency": currency,
                })
            }
            ReportKind::ExpensesCategories => {
                let c = &d.expense_categories[s as usize];
                json!({
                    "expense_category_id": c.id, "expense_category_name": c.name,
                    "total_amount": dec_value(g.total), "billable_amount": dec_value(g.billable),
                    "currency": currency,
                })
            }
            _ => {
                let u = &d.users[s as usize];
                json!({
                    "user_id": u.id, "user_name": u.name(), "is_contractor": u.is_contractor,
                    "total_amount": dec_value(g.total), "billable_amount": dec_value(g.billable),
                    "currency": currency,
                })
            }
        })
        .collect()
}

fn uninvoiced(d: &Data, ix: &Indexes, a: ReportArgs) -> Vec<Value> {
    let mut agg: BTreeMap<(u32, &'static str), UninvAgg> = BTreeMap::new();
    let tes = date_range(
        ix.sorted(d, Res::TimeEntries),
        |i| d.time_entries[i as usize].spent_date,
        a.from,
        a.to,
    );
    for &i in tes {
        let te = &d.time_entries[i as usize];
        if a.viewer.is_some_and(|v| v != d.te_user(te)) {
            continue;
        }
        let project = d.te_project(te);
        let currency = d.clients[d.projects[project as usize].client as usize].currency;
        let e = agg.entry((project, currency)).or_default();
        e.total_hours += i64::from(te.hours);
        if te.has(te_flags::BILLABLE) && !te.has(te_flags::BILLED) {
            e.uninvoiced_hours += i64::from(te.hours);
            e.uninvoiced_amount += te_amount(d, te, a.include_fixed_fee);
        }
    }
    let exs = date_range(
        ix.sorted(d, Res::Expenses),
        |i| d.expenses[i as usize].spent_date,
        a.from,
        a.to,
    );
    for &i in exs {
        let ex = &d.expenses[i as usize];
        if a.viewer.is_some_and(|v| v != d.ex_user(ex)) {
            continue;
        }
        let project = d.ex_project(ex);
        let currency = d.clients[d.projects[project as usize].client as usize].currency;
        let e = agg.entry((project, currency)).or_default();
        if ex.billable && !ex.is_billed {
            e.uninvoiced_expenses += ex.total_cost;
            e.uninvoiced_amount += ex.total_cost;
        }
    }
    agg.into_iter()
        .map(|((p, currency), g)| {
            let p = &d.projects[p as usize];
            let c = &d.clients[p.client as usize];
            json!({
                "client_id": c.id, "client_name": c.name,
                "project_id": p.id, "project_name": p.name,
                "currency": currency,
                "total_hours": dec_value(g.total_hours),
                "uninvoiced_hours": dec_value(g.uninvoiced_hours),
                "uninvoiced_expenses": dec_value(g.uninvoiced_expenses),
                "uninvoiced_amount": dec_value(g.uninvoiced_amount),
            })
        })
        .collect()
}

/// One row per project with a budget. Spent is hours for hour budgets (project, task,
/// person) and billable amount for money budgets (project_cost, task_fees), over all time.
fn project_budget(d: &Data, a: ReportArgs) -> Vec<Value> {
    let mut hours = vec![0i64; d.projects.len()];
    let mut amount = vec![0i64; d.projects.len()];
    for (i, te) in d.time_entries.iter().enumerate() {
        if d.deleted.has(crate::model::Res::TimeEntries, i as u32) {
            continue;
        }
        if a.viewer.is_some_and(|v| v != d.te_user(te)) {
            continue;
        }
        let p = d.te_project(te) as usize;
        hours[p] += i64::from(te.hours);
        amount[p] += te_amount(d, te, true);
    }
    d.projects
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.budget.is_some() && !d.deleted.has(crate::model::Res::Projects, *i as u32)
        })
        .filter(|(_, p)| a.is_active.is_none_or_compat(p.is_active))
        .map(|(i, p)| {
            let c = &d.clients[p.client as usize];
            let budget = p.budget.unwrap_or(0);
            let spent = if matches!(p.budget_by, "project_cost" | "task_fees") {
                amount[i]
            } else {
                hours[i]
            };
            json!({
                "project_id": p.id, "project_name": p.name,
                "client_id": c.id, "client_name": c.name,
                "budget_is_monthly": p.budget_is_monthly, "budget_by": p.budget_by,
                "is_active": p.is_active,
                "budget": dec_value(budget),
                "budget_spent": dec_value(spent),
                "budget_remaining": dec_value(budget - spent),
            })
        })
        .collect()
}

trait OptBoolExt {
    fn is_none_or_compat(&self, v: bool) -> bool;
}

impl OptBoolExt for Option<bool> {
    fn is_none_or_compat(&self, v: bool) -> bool {
        match self {
            None => true,
            Some(w) => *w == v,
        }
    }
}

/// Inclusive day count of a timeframe.
pub fn span_days(from: Date, to: Date) -> i64 {
    i64::from(to.0) - i64::from(from.0) + 1
}
