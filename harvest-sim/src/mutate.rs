//! Mutations: touch existing records (updated_at = now, plus a visible change) and create new
//! ones with fresh ids and consistent references. Children bump their parent's updated_at.

use std::borrow::Cow;

use crate::model::*;
use crate::util::{mul_hundredths, Date, Ts};

/// Positions of `count` records spread evenly across `len` (every k-th, not just the newest).
fn spread(len: usize, count: usize) -> Vec<usize> {
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

/// Applies a mutation; returns (updated ids, created ids).
pub fn mutate(
    d: &mut Data,
    res: Res,
    update: usize,
    create: usize,
    now: i64,
) -> (Vec<i64>, Vec<i64>) {
    let now = Ts(now);
    let mut updated = Vec::new();
    let mut created = Vec::new();
    macro_rules! touch {
        ($vec:ident, |$x:ident, $n:ident| $body:block) => {{
            let len = d.$vec.len();
            for pos in spread(len, update) {
                d.mutation_counter += 1;
                let $n = d.mutation_counter;
                let $x = &mut d.$vec[pos];
                $x.updated_at = now;
                $body
                updated.push($x.id);
            }
        }};
    }
    match res {
        Res::Users => touch!(users, |x, n| {
            x.telephone = Cow::Owned(format!("+1 555 9{:03}", n % 1000));
        }),
        Res::Roles => touch!(roles, |x, n| {
            x.name = Cow::Owned(marked(&x.name, n));
        }),
        Res::Clients => touch!(clients, |x, n| {
            x.address = Some(Cow::Owned(format!("{n} Updated Way\nSpringfield")));
        }),
        Res::Contacts => touch!(contacts, |x, n| {
            x.title = Cow::Owned(format!("Updated title {n}"));
        }),
        Res::Projects => touch!(projects, |x, n| {
            x.notes = Cow::Owned(format!("Updated note {n}"));
        }),
        Res::Tasks => touch!(tasks, |x, n| {
            x.default_hourly_rate = Some(10_000 + (n as i64 % 50) * 100 + 50);
        }),
        Res::TaskAssignments => touch!(task_assignments, |x, n| {
            x.hourly_rate = Some(9_000 + (n as i64 % 40) * 100 + 25);
        }),
        Res::UserAssignments => touch!(user_assignments, |x, n| {
            x.hourly_rate = Some(8_000 + (n as i64 % 40) * 100 + 75);
        }),
        Res::ProjectAssignments => {
            let active: Vec<usize> = d
                .user_assignments
                .iter()
                .enumerate()
                .filter(|(_, u)| u.is_active)
                .map(|(i, _)| i)
                .collect();
            for pos in spread(active.len(), update) {
                d.mutation_counter += 1;
                let n = d.mutation_counter as i64;
                let x = &mut d.user_assignments[active[pos]];
                x.updated_at = now;
                x.budget = Some(1_000 + (n % 90) * 100);
                updated.push(x.id);
            }
        }
        Res::BillableRates => touch!(billable_rates, |x, _n| {
            x.amount += 100;
        }),
        Res::CostRates => touch!(cost_rates, |x, _n| {
            x.amount += 100;
        }),
        Res::Teammates => {
            // A teammate shows its user's name and email: rename the user (once per user,
            // however many managers it has), which every view of the user shows.
            let mut users: Vec<u32> = d.teammates.iter().map(|t| t.user).collect();
            users.sort_unstable();
            users.dedup();
            for pos in spread(users.len(), update) {
                d.mutation_counter += 1;
                let n = d.mutation_counter;
                let x = &mut d.users[users[pos] as usize];
                x.updated_at = now;
                x.last_name = Cow::Owned(marked(&x.last_name, n));
                updated.push(x.id);
            }
        }
        Res::InvoiceItemCategories => touch!(invoice_item_categories, |x, n| {
            x.name = Cow::Owned(marked(&x.name, n));
        }),
        Res::EstimateItemCategories => touch!(estimate_item_categories, |x, n| {
            x.name = Cow::Owned(marked(&x.name, n));
        }),
        Res::Invoices => touch!(invoices, |x, n| {
            x.notes = Cow::Owned(format!("Updated notes {n}"));
        }),
        Res::InvoiceMessages => {
            touch!(invoice_messages, |x, n| {
                x.body = Cow::Owned(format!("Updated body {n}"));
            });
            bump_invoices(d, &updated, now, |d, id| {
                d.invoice_messages
                    .binary_search_by_key(&id, |m| m.id)
                    .ok()
                    .map(|i| d.invoice_messages[i].invoice)
            });
        }
        Res::InvoicePayments => {
            touch!(invoice_payments, |x, n| {
                x.notes = Cow::Owned(format!("Updated payment note {n}"));
            });
            bump_invoices(d, &updated, now, |d, id| {
                d.invoice_payments
                    .binary_search_by_key(&id, |m| m.id)
                    .ok()
                    .map(|i| d.invoice_payments[i].invoice)
            });
        }
        Res::Estimates => touch!(estimates, |x, n| {
            x.notes = Cow::Owned(format!("Updated notes {n}"));
        }),
        Res::EstimateMessages => {
            touch!(estimate_messages, |x, n| {
                x.body = Cow::Owned(format!("Updated body {n}"));
            });
            for &id in &updated {
                if let Ok(i) = d.estimate_messages.binary_search_by_key(&id, |m| m.id) {
                    let e = d.estimate_messages[i].estimate as usize;
                    d.estimates[e].updated_at = now;
                }
            }
        }
        Res::ExpenseCategories => touch!(expense_categories, |x, n| {
            x.name = Cow::Owned(marked(&x.name, n));
        }),
        Res::Expenses => touch!(expenses, |x, n| {
            x.notes = Cow::Owned(format!("Updated expense note {n}"));
        }),
        Res::TimeEntries => {
            let len = d.time_entries.len();
            for pos in spread(len, update) {
                d.mutation_counter += 1;
                let n = d.mutation_counter;
                d.notes.push(Cow::Owned(format!("Updated entry note {n}")));
                let note = (d.notes.len() - 1) as u32;
                let x = &mut d.time_entries[pos];
                x.updated_at = now;
                x.notes = note;
                updated.push(x.id);
            }
        }
    }
    for k in 0..create {
        d.mutation_counter += 1;
        if let Some(id) = create_one(d, res, k, now) {
            created.push(id);
        }
    }
    d.version += 1;
    (updated, created)
}

fn bump_invoices(d: &mut Data, ids: &[i64], now: Ts, parent: impl Fn(&Data, i64) -> Option<u32>) {
    for &id in ids {
        if let Some(p) = parent(d, id) {
            d.invoices[p as usize].updated_at = now;
        }
    }
}

fn pick_idx(len: usize, k: usize, salt: u64) -> usize {
    if len == 0 {
        0
    } else {
        (crate::util::mix64(salt.wrapping_add(k as u64)) % len as u64) as usize
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

fn create_one(d: &mut Data, res: Res, k: usize, now: Ts) -> Option<i64> {
    let n = d.mutation_counter;
    let today = Date::of_ts(now.0);
    let salt = n.wrapping_mul(31);
    Some(match res {
        Res::Users => {
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
            id
        }
        Res::Roles => {
            let id = next_id(d.roles.last().map(|x| x.id), 617_630);
            let nu = d.users.len() as u32;
            d.roles.push(Role {
                id,
                name: Cow::Owned(format!("New role {n}")),
                users: (0..nu.min(2)).collect(),
                created_at: now,
                updated_at: now,
            });
            id
        }
        Res::Clients => {
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
            id
        }
        Res::Contacts => {
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
            id
        }
        Res::Projects => {
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
            id
        }
        Res::Tasks => {
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
            id
        }
        Res::TaskAssignments => {
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
            id
        }
        Res::UserAssignments | Res::ProjectAssignments => {
            if d.projects.is_empty() || d.users.is_empty() {
                return None;
            }
            let id = next_id(d.user_assignments.last().map(|x| x.id), 125_068_001);
            let project = pick_idx(d.projects.len(), k, salt) as u32;
            let user = pick_idx(d.users.len(), k, salt ^ 3) as u32;
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
            id
        }
        Res::BillableRates | Res::CostRates => {
            if d.users.is_empty() {
                return None;
            }
            let user = pick_idx(d.users.len(), k, salt) as u32;
            let rates = if res == Res::BillableRates {
                &mut d.billable_rates
            } else {
                &mut d.cost_rates
            };
            let base = if res == Res::BillableRates {
                1_836_001
            } else {
                2_946_001
            };
            let id = next_id(rates.last().map(|x| x.id), base);
            // Close the user's open-ended rate the day before the new one starts.
            if let Some(open) = rates
                .iter_mut()
                .filter(|r| r.user == user && r.end_date.is_none())
                .max_by_key(|r| (r.start_date, r.id))
            {
                if open.start_date.is_none_or_compat(|s| s < today) {
                    open.end_date = Some(Date(today.0 - 1));
                    open.updated_at = now;
                }
            }
            rates.push(Rate {
                id,
                user,
                amount: 13_000 + (n as i64 % 20) * 100,
                start_date: Some(today),
                end_date: None,
                created_at: now,
                updated_at: now,
            });
            id
        }
        Res::Teammates => {
            // Assigns an existing user to a manager who does not manage them yet; the id is
            // the user's (not a fresh one).
            let managers: Vec<u32> = d
                .users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.access == AccessRole::Manager)
                .map(|(i, _)| i as u32)
                .collect();
            let start = pick_idx(managers.len(), k, salt);
            let (manager, user) = (0..managers.len()).find_map(|step| {
                let m = managers[(start + step) % managers.len()];
                let free: Vec<u32> = (0..d.users.len() as u32)
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
            d.users[user as usize].id
        }
        Res::InvoiceItemCategories => {
            let id = next_id(d.invoice_item_categories.last().map(|x| x.id), 1_466_001);
            d.invoice_item_categories.push(InvoiceItemCategory {
                id,
                name: Cow::Owned(format!("New category {n}")),
                use_as_service: false,
                use_as_expense: false,
                created_at: now,
                updated_at: now,
            });
            id
        }
        Res::EstimateItemCategories => {
            let id = next_id(d.estimate_item_categories.last().map(|x| x.id), 1_378_001);
            d.estimate_item_categories.push(EstimateItemCategory {
                id,
                name: Cow::Owned(format!("New category {n}")),
                created_at: now,
                updated_at: now,
            });
            id
        }
        Res::ExpenseCategories => {
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
            id
        }
        Res::Invoices => {
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
            id
        }
        Res::InvoiceMessages => {
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
            id
        }
        Res::InvoicePayments => {
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
            id
        }
        Res::Estimates => {
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
            id
        }
        Res::EstimateMessages => {
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
            id
        }
        Res::Expenses => {
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
            id
        }
        Res::TimeEntries => {
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
            id
        }
    })
}

trait OptDateExt {
    fn is_none_or_compat(&self, f: impl Fn(Date) -> bool) -> bool;
}

impl OptDateExt for Option<Date> {
    fn is_none_or_compat(&self, f: impl Fn(Date) -> bool) -> bool {
        match self {
            None => true,
            Some(d) => f(*d),
        }
    }
}

/// Archives records (`is_active: false`, `updated_at` = now), as Harvest's "archive" does: they
/// stay in every list (a user's project assignments, which list active ones only, excepted).
pub fn archive(d: &mut Data, res: Res, ids: &[i64], now: i64) -> Result<(), String> {
    let now = Ts(now.max(d.max_ts + 1));
    for &id in ids {
        let i = crate::delete::index_of(d, res, id)
            .ok_or_else(|| format!("{} {id} does not exist", res.name()))? as usize;
        macro_rules! off {
            ($v:ident) => {{
                let x = &mut d.$v[i];
                x.is_active = false;
                x.updated_at = now;
            }};
        }
        match res {
            Res::Users => off!(users),
            Res::Clients => off!(clients),
            Res::Projects => off!(projects),
            Res::Tasks => off!(tasks),
            Res::UserAssignments | Res::ProjectAssignments => off!(user_assignments),
            Res::TaskAssignments => off!(task_assignments),
            other => return Err(format!("{} cannot be archived", other.name())),
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
        match res {
            Res::TimeEntries => {
                d.time_entries[i].spent_date = date;
                d.time_entries[i].updated_at = now;
            }
            Res::Expenses => {
                d.expenses[i].spent_date = date;
                d.expenses[i].updated_at = now;
            }
            other => return Err(format!("{} has no spent_date", other.name())),
        }
    }
    d.version += 1;
    Ok(())
}
