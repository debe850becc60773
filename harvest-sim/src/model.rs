//! The account held in memory: compact typed records that reference each other by index, the
//! resource names ([`Res`]), and the JSON shape (view) of every record. Views are borrowed over
//! the typed records; field names and order follow Harvest's answers; nested objects (client,
//! project, user...) are resolved at render time so a renamed client shows up everywhere at
//! once, as in Harvest.
//!
//! Every `Vec` is kept sorted by id ascending (generated ids are assigned in creation order and
//! new records get larger ids), so an index into a vector is stable for the life of the account
//! and an id is found by binary search. (`Data::teammates`, a relation without ids, is kept
//! sorted by its (manager, user) indexes instead.)

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Serialize;

use crate::util::{clock_string, hex_key, Date, Dec, Flt, Ts};

/// Text that is usually one of a fixed set of phrases but can be replaced by a mutation.
pub type Txt = Cow<'static, str>;

/// Sentinel for "no reference" in `u32` index fields.
pub const NONE: u32 = u32::MAX;

/// The access level a user (and so a token) has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    Administrator,
    Manager,
    Member,
}

impl AccessRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Administrator => "administrator",
            AccessRole::Manager => "manager",
            AccessRole::Member => "member",
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub first_name: Txt,
    pub last_name: Txt,
    pub email: String,
    pub telephone: Txt,
    pub timezone: &'static str,
    pub has_access_to_all_future_projects: bool,
    pub is_contractor: bool,
    pub is_active: bool,
    pub weekly_capacity: i32,
    pub default_hourly_rate: Option<i64>,
    pub cost_rate: Option<i64>,
    pub access: AccessRole,
    /// Manager add-on permissions (only meaningful for managers).
    pub addons: &'static [&'static str],
    pub calendar_integration_enabled: bool,
    pub clock24: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

impl User {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Clone, Debug)]
pub struct Role {
    pub id: i64,
    pub name: Txt,
    pub users: Vec<u32>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct Client {
    pub id: i64,
    pub name: Txt,
    pub is_active: bool,
    pub address: Option<Txt>,
    pub currency: &'static str,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct Contact {
    pub id: i64,
    pub client: u32,
    pub title: Txt,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub phone_office: Txt,
    pub phone_mobile: Txt,
    pub fax: &'static str,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct Project {
    pub id: i64,
    pub client: u32,
    pub name: Txt,
    pub code: Txt,
    pub is_active: bool,
    pub is_billable: bool,
    pub is_fixed_fee: bool,
    pub bill_by: &'static str,
    pub hourly_rate: Option<i64>,
    pub budget: Option<i64>,
    pub budget_by: &'static str,
    pub budget_is_monthly: bool,
    pub notify_when_over_budget: bool,
    pub over_budget_notification_percentage: i64,
    pub over_budget_notification_date: Option<Date>,
    pub show_budget_to_all: bool,
    pub cost_budget: Option<i64>,
    pub cost_budget_include_expenses: bool,
    pub fee: Option<i64>,
    pub notes: Txt,
    pub starts_on: Option<Date>,
    pub ends_on: Option<Date>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

impl Project {
    /// `[CODE] Name` as the reports show it (just `Name` without a code).
    pub fn report_name(&self) -> String {
        if self.code.is_empty() {
            self.name.to_string()
        } else {
            format!("[{}] {}", self.code, self.name)
        }
    }
}

#[derive(Clone, Debug)]
pub struct Task {
    pub id: i64,
    pub name: Txt,
    pub billable_by_default: bool,
    pub default_hourly_rate: Option<i64>,
    pub is_default: bool,
    pub is_active: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct TaskAssignment {
    pub id: i64,
    pub project: u32,
    pub task: u32,
    pub billable: bool,
    pub is_active: bool,
    pub hourly_rate: Option<i64>,
    pub budget: Option<i64>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// A user's assignment to a project; `/users/{id}/project_assignments` shows the same records.
#[derive(Clone, Debug)]
pub struct UserAssignment {
    pub id: i64,
    pub project: u32,
    pub user: u32,
    pub is_project_manager: bool,
    pub is_active: bool,
    pub use_default_rates: bool,
    pub budget: Option<i64>,
    pub hourly_rate: Option<i64>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// A manager's assigned teammate: `/users/{manager}/teammates` lists `user`. Teammates have no
/// id of their own (a teammate is shown by its user's id) and no timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teammate {
    /// The manager (user index; always a user with the manager access role).
    pub manager: u32,
    /// The managed user (user index, never the manager).
    pub user: u32,
}

/// A billable or cost rate in a user's rate history.
#[derive(Clone, Debug)]
pub struct Rate {
    pub id: i64,
    pub user: u32,
    pub amount: i64,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct InvoiceItemCategory {
    pub id: i64,
    pub name: Txt,
    pub use_as_service: bool,
    pub use_as_expense: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct EstimateItemCategory {
    pub id: i64,
    pub name: Txt,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct LineItem {
    pub id: i64,
    pub kind: Txt,
    pub description: &'static str,
    pub quantity: i64,
    pub unit_price: i64,
    pub amount: i64,
    pub taxed: bool,
    pub taxed2: bool,
    /// Project index (invoice line items only; estimates never have one).
    pub project: u32,
}

#[derive(Clone, Debug)]
pub struct Invoice {
    pub id: i64,
    pub client: u32,
    pub number: String,
    pub purchase_order: &'static str,
    pub amount: i64,
    pub due_amount: i64,
    pub tax: Option<i64>,
    pub tax_amount: i64,
    pub tax2: Option<i64>,
    pub tax2_amount: i64,
    pub discount: Option<i64>,
    pub discount_amount: i64,
    pub subject: Txt,
    pub notes: Txt,
    pub currency: &'static str,
    pub state: &'static str,
    pub period_start: Option<Date>,
    pub period_end: Option<Date>,
    pub issue_date: Date,
    pub due_date: Date,
    pub payment_term: &'static str,
    pub payment_options: &'static [&'static str],
    pub sent_at: Option<Ts>,
    pub paid_at: Option<Ts>,
    pub paid_date: Option<Date>,
    pub closed_at: Option<Ts>,
    pub recurring_invoice_id: Option<i64>,
    pub estimate: u32,
    pub retainer_id: Option<i64>,
    pub creator: u32,
    pub line_items: Vec<LineItem>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct InvoiceMessage {
    pub id: i64,
    pub invoice: u32,
    pub sender: u32,
    pub recipients: Vec<u32>,
    pub subject: String,
    pub body: Txt,
    pub include_link_to_client_invoice: bool,
    pub attach_pdf: bool,
    pub send_me_a_copy: bool,
    pub thank_you: bool,
    pub event_type: Option<&'static str>,
    pub reminder: bool,
    pub send_reminder_on: Option<Date>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct InvoicePayment {
    pub id: i64,
    pub invoice: u32,
    pub amount: i64,
    pub paid_at: Ts,
    pub paid_date: Date,
    pub recorder: u32,
    pub notes: Txt,
    pub transaction_id: Option<String>,
    pub gateway_id: Option<i64>,
    pub gateway_name: Option<&'static str>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct Estimate {
    pub id: i64,
    pub client: u32,
    pub number: String,
    pub purchase_order: &'static str,
    pub amount: i64,
    pub tax: Option<i64>,
    pub tax_amount: i64,
    pub tax2: Option<i64>,
    pub tax2_amount: i64,
    pub discount: Option<i64>,
    pub discount_amount: i64,
    pub subject: Txt,
    pub notes: Txt,
    pub currency: &'static str,
    pub state: &'static str,
    pub issue_date: Date,
    pub sent_at: Option<Ts>,
    pub accepted_at: Option<Ts>,
    pub declined_at: Option<Ts>,
    pub creator: u32,
    pub line_items: Vec<LineItem>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct EstimateMessage {
    pub id: i64,
    pub estimate: u32,
    pub sender: u32,
    pub recipients: Vec<u32>,
    pub subject: String,
    pub body: Txt,
    pub send_me_a_copy: bool,
    pub event_type: Option<&'static str>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Debug)]
pub struct ExpenseCategory {
    pub id: i64,
    pub name: Txt,
    pub unit_name: Option<&'static str>,
    pub unit_price: Option<i64>,
    pub is_active: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub file_name: &'static str,
    pub file_size: i32,
    pub content_type: &'static str,
}

#[derive(Clone, Debug)]
pub struct Expense {
    pub id: i64,
    pub ua: u32,
    pub category: u32,
    pub notes: Txt,
    pub total_cost: i64,
    pub units: i64,
    pub is_closed: bool,
    pub is_locked: bool,
    pub is_billed: bool,
    pub locked_reason: Option<&'static str>,
    pub spent_date: Date,
    pub billable: bool,
    pub receipt: Option<Receipt>,
    pub invoice: u32,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// An external reference (an issue in another tool) attached to time entries.
#[derive(Clone, Debug)]
pub struct ExternalRef {
    pub id: String,
    pub group_id: String,
    pub account_id: String,
    pub service: &'static str,
}

pub mod te_flags {
    pub const LOCKED: u16 = 1;
    pub const CLOSED: u16 = 1 << 1;
    pub const BILLED: u16 = 1 << 2;
    pub const RUNNING: u16 = 1 << 3;
    pub const BILLABLE: u16 = 1 << 4;
    pub const BUDGETED: u16 = 1 << 5;
    pub const CLOCK24: u16 = 1 << 6;
    pub const SUBMITTED: u16 = 1 << 7;
    pub const APPROVED: u16 = 1 << 8;
}

/// A time entry, kept compact (~96 bytes) so a million of them fit comfortably in memory.
#[derive(Clone, Debug)]
pub struct TimeEntry {
    pub id: i64,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// Unix seconds the timer started, 0 when no timer is attached.
    pub timer_started_at: i64,
    pub spent_date: Date,
    /// User assignment index (gives the user and the project).
    pub ua: u32,
    /// Task assignment index (gives the task).
    pub ta: u32,
    /// Hundredths of an hour.
    pub hours: i32,
    pub hours_without_timer: i32,
    pub rounded_hours: i32,
    /// Hundredths; negative = null.
    pub billable_rate: i32,
    pub cost_rate: i32,
    pub invoice: u32,
    pub ext_ref: u32,
    /// Index into `Data::notes` (`NONE` = null notes).
    pub notes: u32,
    /// Minutes after midnight; `u16::MAX` = null.
    pub started: u16,
    pub ended: u16,
    pub flags: u16,
}

impl TimeEntry {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
    pub fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// Everything the simulated account holds.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub clients: Vec<Client>,
    pub contacts: Vec<Contact>,
    pub projects: Vec<Project>,
    pub tasks: Vec<Task>,
    pub task_assignments: Vec<TaskAssignment>,
    pub user_assignments: Vec<UserAssignment>,
    pub billable_rates: Vec<Rate>,
    pub cost_rates: Vec<Rate>,
    /// Manager → teammate pairs, sorted by (manager, user) index (they have no id).
    pub teammates: Vec<Teammate>,
    pub invoice_item_categories: Vec<InvoiceItemCategory>,
    pub estimate_item_categories: Vec<EstimateItemCategory>,
    pub invoices: Vec<Invoice>,
    pub invoice_messages: Vec<InvoiceMessage>,
    pub invoice_payments: Vec<InvoicePayment>,
    pub estimates: Vec<Estimate>,
    pub estimate_messages: Vec<EstimateMessage>,
    pub expense_categories: Vec<ExpenseCategory>,
    pub expenses: Vec<Expense>,
    pub time_entries: Vec<TimeEntry>,
    pub ext_refs: Vec<ExternalRef>,
    /// Time-entry notes: a shared pool (generated phrases first, mutated notes appended).
    pub notes: Vec<Txt>,
    /// Next line-item id (invoice and estimate line items share one id space per kind).
    pub next_invoice_line_id: i64,
    pub next_estimate_line_id: i64,
    /// Largest timestamp in the generated data (mutations never go below it).
    pub max_ts: i64,
    /// Bumped by every mutation; caches are keyed by it.
    pub version: u64,
    /// Counter used to make mutated field values distinct.
    pub mutation_counter: u64,
    /// Records deleted (by the `delete` module): left out of every view.
    pub deleted: Tombstones,
}

/// Finds the index of a record by id in an id-sorted vector.
pub fn find_by_id<T>(v: &[T], id: i64, get: impl Fn(&T) -> i64) -> Option<u32> {
    v.binary_search_by(|x| get(x).cmp(&id))
        .ok()
        .map(|i| i as u32)
}

macro_rules! finder {
    ($name:ident, $field:ident) => {
        pub fn $name(&self, id: i64) -> Option<u32> {
            find_by_id(&self.$field, id, |x| x.id)
        }
    };
}

impl Data {
    finder!(user_idx, users);
    finder!(client_idx, clients);
    finder!(contact_idx, contacts);
    finder!(project_idx, projects);
    finder!(task_idx, tasks);
    finder!(invoice_idx, invoices);
    finder!(estimate_idx, estimates);
    finder!(expense_idx, expenses);
    finder!(time_entry_idx, time_entries);
    finder!(role_idx, roles);
    finder!(expense_category_idx, expense_categories);
    finder!(invoice_item_category_idx, invoice_item_categories);
    finder!(estimate_item_category_idx, estimate_item_categories);
    finder!(user_assignment_idx, user_assignments);
    finder!(task_assignment_idx, task_assignments);

    pub fn te_user(&self, te: &TimeEntry) -> u32 {
        self.user_assignments[te.ua as usize].user
    }
    pub fn te_project(&self, te: &TimeEntry) -> u32 {
        self.user_assignments[te.ua as usize].project
    }
    pub fn te_task(&self, te: &TimeEntry) -> u32 {
        self.task_assignments[te.ta as usize].task
    }
    pub fn te_client(&self, te: &TimeEntry) -> u32 {
        self.projects[self.te_project(te) as usize].client
    }
    pub fn ex_user(&self, ex: &Expense) -> u32 {
        self.user_assignments[ex.ua as usize].user
    }
    pub fn ex_project(&self, ex: &Expense) -> u32 {
        self.user_assignments[ex.ua as usize].project
    }
    pub fn ex_client(&self, ex: &Expense) -> u32 {
        self.projects[self.ex_project(ex) as usize].client
    }
    pub fn note(&self, idx: u32) -> Option<&str> {
        if idx == NONE {
            None
        } else {
            self.notes.get(idx as usize).map(|s| s.as_ref())
        }
    }
}

/// Every list-backed resource the simulator serves; each is declared in `resources::DECLS`
/// (at the position of its variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Res {
    Users,
    Roles,
    Clients,
    Contacts,
    Projects,
    Tasks,
    TaskAssignments,
    UserAssignments,
    BillableRates,
    CostRates,
    ProjectAssignments,
    /// A manager's teammates (`/users/{id}/teammates`): users, keyed by (manager, user).
    Teammates,
    InvoiceItemCategories,
    EstimateItemCategories,
    Invoices,
    InvoiceMessages,
    InvoicePayments,
    Estimates,
    EstimateMessages,
    ExpenseCategories,
    Expenses,
    TimeEntries,
}

/// The records of a resource marked deleted (indexes into its vector).
#[derive(Clone, Debug, Default)]
pub struct Tombstones {
    sets: std::collections::HashMap<Res, HashSet<u32>>,
}

impl Tombstones {
    pub fn is_empty(&self) -> bool {
        self.sets.values().all(HashSet::is_empty)
    }

    pub fn has(&self, res: Res, i: u32) -> bool {
        let res = match res {
            Res::ProjectAssignments => Res::UserAssignments,
            r => r,
        };
        self.sets.get(&res).is_some_and(|s| s.contains(&i))
    }

    pub fn mark(&mut self, res: Res, i: u32) -> bool {
        self.sets.entry(res).or_default().insert(i)
    }

    /// A record was inserted at index `pos` of `res`'s vector (teammates, kept sorted by their
    /// indexes): the marks at `pos` or after move up one place with their records.
    pub fn inserted(&mut self, res: Res, pos: u32) {
        if let Some(set) = self.sets.get_mut(&res) {
            *set = set
                .iter()
                .map(|&i| if i >= pos { i + 1 } else { i })
                .collect();
        }
    }
}

// ================================================================ views

#[derive(Serialize)]
pub struct IdName<'a> {
    pub id: i64,
    pub name: &'a str,
}

#[derive(Serialize)]
pub struct IdNameOwned {
    pub id: i64,
    pub name: String,
}

#[derive(Serialize)]
pub struct IdNameCode<'a> {
    pub id: i64,
    pub name: &'a str,
    pub code: &'a str,
}

#[derive(Serialize)]
pub struct ClientRef<'a> {
    pub id: i64,
    pub name: &'a str,
    pub currency: &'a str,
}

fn opt_flt(v: Option<i64>) -> Option<Flt> {
    v.map(Flt)
}

fn opt_dec(v: Option<i64>) -> Option<Dec> {
    v.map(Dec)
}

fn client_ref(d: &Data, c: u32) -> IdName<'_> {
    let c = &d.clients[c as usize];
    IdName {
        id: c.id,
        name: &c.name,
    }
}

fn client_ref_cur(d: &Data, c: u32) -> ClientRef<'_> {
    let c = &d.clients[c as usize];
    ClientRef {
        id: c.id,
        name: &c.name,
        currency: c.currency,
    }
}

fn project_ref(d: &Data, p: u32) -> IdNameCode<'_> {
    let p = &d.projects[p as usize];
    IdNameCode {
        id: p.id,
        name: &p.name,
        code: &p.code,
    }
}

fn user_ref(d: &Data, u: u32) -> IdNameOwned {
    let u = &d.users[u as usize];
    IdNameOwned {
        id: u.id,
        name: u.name(),
    }
}

fn task_ref(d: &Data, t: u32) -> IdName<'_> {
    let t = &d.tasks[t as usize];
    IdName {
        id: t.id,
        name: &t.name,
    }
}

// ---------------------------------------------------------------- company

#[derive(Serialize)]
pub struct CompanyView {
    pub base_uri: String,
    pub full_domain: String,
    pub name: String,
    pub is_active: bool,
    pub week_start_day: &'static str,
    pub wants_timestamp_timers: bool,
    pub time_format: &'static str,
    pub date_format: &'static str,
    pub plan_type: &'static str,
    pub clock: &'static str,
    pub currency: &'static str,
    pub currency_code_display: &'static str,
    pub currency_symbol_display: &'static str,
    pub decimal_symbol: &'static str,
    pub thousands_separator: &'static str,
    pub color_scheme: &'static str,
    pub weekly_capacity: i64,
    pub expense_feature: bool,
    pub invoice_feature: bool,
    pub estimate_feature: bool,
    pub approval_feature: bool,
    pub team_feature: bool,
    pub approval_required: bool,
    pub day_entry_notes_required: bool,
    pub saml_sign_in_required: bool,
}

/// The company of `account`.
pub fn company(
    features: crate::config::Features,
    account: &crate::config::HarvestAccount,
) -> CompanyView {
    let full_domain = format!("{}.harvestapp.com", account.subdomain);
    CompanyView {
        base_uri: format!("https://{full_domain}"),
        full_domain,
        name: account.name.clone(),
        is_active: true,
        week_start_day: "Monday",
        wants_timestamp_timers: false,
        time_format: "hours_minutes",
        date_format: "%Y-%m-%d",
        plan_type: "simple-v4",
        clock: "12h",
        currency: "USD",
        currency_code_display: "iso_code_none",
        currency_symbol_display: "symbol_before",
        decimal_symbol: ".",
        thousands_separator: ",",
        color_scheme: "orange",
        weekly_capacity: 144_000,
        expense_feature: features.expense,
        invoice_feature: features.invoice,
        estimate_feature: features.estimate,
        approval_feature: true,
        team_feature: true,
        approval_required: false,
        day_entry_notes_required: false,
        saml_sign_in_required: false,
    }
}

// ---------------------------------------------------------------- users & roles

#[derive(Serialize)]
pub struct UserView<'a> {
    pub id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub telephone: &'a str,
    pub timezone: &'a str,
    pub has_access_to_all_future_projects: bool,
    pub is_contractor: bool,
    pub is_active: bool,
    pub weekly_capacity: i32,
    pub default_hourly_rate: Option<Flt>,
    pub cost_rate: Option<Flt>,
    pub roles: Vec<&'a str>,
    pub access_roles: Vec<&'a str>,
    pub permissions_claims: Vec<&'static str>,
    pub calendar_integration_enabled: bool,
    pub calendar_integration_source: Option<&'static str>,
    pub avatar_url: String,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn user(d: &Data, i: u32) -> UserView<'_> {
    let u = &d.users[i as usize];
    let mut access_roles = vec![u.access.as_str()];
    if u.access == AccessRole::Manager {
        access_roles.extend_from_slice(u.addons);
    }
    let roles = d
        .roles
        .iter()
        .filter(|r| r.users.contains(&i))
        .map(|r| r.name.as_ref())
        .collect();
    let permissions_claims = match u.access {
        AccessRole::Administrator => vec![
            "billing:read",
            "billing:write",
            "clients:read",
            "clients:write",
            "estimates:read:all",
            "expenses:read:all",
            "invoices:read:all",
            "projects:read:all",
            "timers:read:all",
            "users:read",
        ],
        AccessRole::Manager => vec![
            "expenses:read:own",
            "projects:read:managed",
            "timers:read:managed",
            "users:read",
        ],
        AccessRole::Member => vec!["expenses:read:own", "timers:read:own"],
    };
    UserView {
        id: u.id,
        first_name: &u.first_name,
        last_name: &u.last_name,
        email: &u.email,
        telephone: &u.telephone,
        timezone: u.timezone,
        has_access_to_all_future_projects: u.has_access_to_all_future_projects,
        is_contractor: u.is_contractor,
        is_active: u.is_active,
        weekly_capacity: u.weekly_capacity,
        default_hourly_rate: opt_flt(u.default_hourly_rate),
        cost_rate: opt_flt(u.cost_rate),
        roles,
        access_roles,
        permissions_claims,
        calendar_integration_enabled: u.calendar_integration_enabled,
        calendar_integration_source: if u.calendar_integration_enabled {
            Some("google")
        } else {
            None
        },
        avatar_url: avatar_url(u.id),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

/// A teammate as `/users/{id}/teammates` lists it: exactly these four fields of the user.
#[derive(Serialize)]
pub struct TeammateView<'a> {
    pub id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
}

/// User `i` shown as somebody's teammate.
pub fn teammate(d: &Data, i: u32) -> TeammateView<'_> {
    let u = &d.users[i as usize];
    TeammateView {
        id: u.id,
        first_name: &u.first_name,
        last_name: &u.last_name,
        email: &u.email,
    }
}

pub fn avatar_url(id: i64) -> String {
    format!(
        "https://cache.harvestapp.com/assets/profile_images/{}/avatar.png?{}",
        id,
        1_600_000_000 + id % 100_000
    )
}

#[derive(Serialize)]
pub struct RoleView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub user_ids: Vec<i64>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn role(d: &Data, i: u32) -> RoleView<'_> {
    let r = &d.roles[i as usize];
    RoleView {
        id: r.id,
        name: &r.name,
        user_ids: r.users.iter().map(|&u| d.users[u as usize].id).collect(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

#[derive(Serialize)]
pub struct RateView {
    pub id: i64,
    pub amount: Dec,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn rate(r: &Rate) -> RateView {
    RateView {
        id: r.id,
        amount: Dec(r.amount),
        start_date: r.start_date,
        end_date: r.end_date,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

// ---------------------------------------------------------------- clients & contacts

#[derive(Serialize)]
pub struct ClientView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub is_active: bool,
    pub address: Option<&'a str>,
    pub statement_key: String,
    pub currency: &'a str,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn client(d: &Data, i: u32) -> ClientView<'_> {
    let c = &d.clients[i as usize];
    ClientView {
        id: c.id,
        name: &c.name,
        is_active: c.is_active,
        address: c.address.as_deref(),
        statement_key: hex_key(c.id as u64),
        currency: c.currency,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

#[derive(Serialize)]
pub struct ContactView<'a> {
    pub id: i64,
    pub title: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub phone_office: &'a str,
    pub phone_mobile: &'a str,
    pub fax: &'a str,
    pub client: IdName<'a>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn contact(d: &Data, i: u32) -> ContactView<'_> {
    let c = &d.contacts[i as usize];
    ContactView {
        id: c.id,
        title: &c.title,
        first_name: c.first_name,
        last_name: c.last_name,
        email: &c.email,
        phone_office: &c.phone_office,
        phone_mobile: &c.phone_mobile,
        fax: c.fax,
        client: client_ref(d, c.client),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

// ---------------------------------------------------------------- projects, tasks, assignments

#[derive(Serialize)]
pub struct ProjectView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub code: &'a str,
    pub is_active: bool,
    pub is_billable: bool,
    pub is_fixed_fee: bool,
    pub bill_by: &'a str,
    pub hourly_rate: Option<Flt>,
    pub budget: Option<Flt>,
    pub budget_by: &'a str,
    pub budget_is_monthly: bool,
    pub notify_when_over_budget: bool,
    pub over_budget_notification_percentage: Flt,
    pub over_budget_notification_date: Option<Date>,
    pub show_budget_to_all: bool,
    pub cost_budget: Option<Flt>,
    pub cost_budget_include_expenses: bool,
    pub fee: Option<Flt>,
    pub notes: &'a str,
    pub starts_on: Option<Date>,
    pub ends_on: Option<Date>,
    pub client: ClientRef<'a>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn project(d: &Data, i: u32) -> ProjectView<'_> {
    let p = &d.projects[i as usize];
    ProjectView {
        id: p.id,
        name: &p.name,
        code: &p.code,
        is_active: p.is_active,
        is_billable: p.is_billable,
        is_fixed_fee: p.is_fixed_fee,
        bill_by: p.bill_by,
        hourly_rate: opt_flt(p.hourly_rate),
        budget: opt_flt(p.budget),
        budget_by: p.budget_by,
        budget_is_monthly: p.budget_is_monthly,
        notify_when_over_budget: p.notify_when_over_budget,
        over_budget_notification_percentage: Flt(p.over_budget_notification_percentage),
        over_budget_notification_date: p.over_budget_notification_date,
        show_budget_to_all: p.show_budget_to_all,
        cost_budget: opt_flt(p.cost_budget),
        cost_budget_include_expenses: p.cost_budget_include_expenses,
        fee: opt_flt(p.fee),
        notes: &p.notes,
        starts_on: p.starts_on,
        ends_on: p.ends_on,
        client: client_ref_cur(d, p.client),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

#[derive(Serialize)]
pub struct TaskView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub billable_by_default: bool,
    pub default_hourly_rate: Option<Flt>,
    pub is_default: bool,
    pub is_active: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn task(d: &Data, i: u32) -> TaskView<'_> {
    let t = &d.tasks[i as usize];
    TaskView {
        id: t.id,
        name: &t.name,
        billable_by_default: t.billable_by_default,
        default_hourly_rate: opt_flt(t.default_hourly_rate),
        is_default: t.is_default,
        is_active: t.is_active,
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

#[derive(Serialize)]
pub struct TaskAssignmentView<'a> {
    pub id: i64,
    pub billable: bool,
    pub is_active: bool,
    pub hourly_rate: Option<Flt>,
    pub budget: Option<Flt>,
    pub project: IdNameCode<'a>,
    pub task: IdName<'a>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn task_assignment(d: &Data, i: u32) -> TaskAssignmentView<'_> {
    let t = &d.task_assignments[i as usize];
    TaskAssignmentView {
        id: t.id,
        billable: t.billable,
        is_active: t.is_active,
        hourly_rate: opt_flt(t.hourly_rate),
        budget: opt_flt(t.budget),
        project: project_ref(d, t.project),
        task: task_ref(d, t.task),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

#[derive(Serialize)]
pub struct UserAssignmentView<'a> {
    pub id: i64,
    pub is_project_manager: bool,
    pub is_active: bool,
    pub use_default_rates: bool,
    pub budget: Option<Flt>,
    pub hourly_rate: Option<Flt>,
    pub project: IdNameCode<'a>,
    pub user: IdNameOwned,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn user_assignment(d: &Data, i: u32) -> UserAssignmentView<'_> {
    let u = &d.user_assignments[i as usize];
    UserAssignmentView {
        id: u.id,
        is_project_manager: u.is_project_manager,
        is_active: u.is_active,
        use_default_rates: u.use_default_rates,
        budget: opt_flt(u.budget),
        hourly_rate: opt_flt(u.hourly_rate),
        project: project_ref(d, u.project),
        user: user_ref(d, u.user),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

/// The partial user assignment embedded in time entries and expenses.
#[derive(Serialize)]
pub struct UaPartial {
    pub id: i64,
    pub is_project_manager: bool,
    pub is_active: bool,
    pub use_default_rates: bool,
    pub budget: Option<Flt>,
    pub hourly_rate: Option<Flt>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

fn ua_partial(d: &Data, i: u32) -> UaPartial {
    let u = &d.user_assignments[i as usize];
    UaPartial {
        id: u.id,
        is_project_manager: u.is_project_manager,
        is_active: u.is_active,
        use_default_rates: u.use_default_rates,
        budget: opt_flt(u.budget),
        hourly_rate: opt_flt(u.hourly_rate),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

/// The partial task assignment embedded in time entries.
#[derive(Serialize)]
pub struct TaPartial {
    pub id: i64,
    pub billable: bool,
    pub is_active: bool,
    pub hourly_rate: Option<Flt>,
    pub budget: Option<Flt>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

fn ta_partial(d: &Data, i: u32) -> TaPartial {
    let t = &d.task_assignments[i as usize];
    TaPartial {
        id: t.id,
        billable: t.billable,
        is_active: t.is_active,
        hourly_rate: opt_flt(t.hourly_rate),
        budget: opt_flt(t.budget),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

#[derive(Serialize)]
pub struct NestedTaskAssignment<'a> {
    pub id: i64,
    pub billable: bool,
    pub is_active: bool,
    pub hourly_rate: Option<Flt>,
    pub budget: Option<Flt>,
    pub task: IdName<'a>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

#[derive(Serialize)]
pub struct ProjectAssignmentView<'a> {
    pub id: i64,
    pub is_project_manager: bool,
    pub is_active: bool,
    pub use_default_rates: bool,
    pub budget: Option<Flt>,
    pub hourly_rate: Option<Flt>,
    pub project: IdNameCode<'a>,
    pub client: IdName<'a>,
    pub task_assignments: Vec<NestedTaskAssignment<'a>>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// A project assignment (a user assignment seen from the user), with the project's task
/// assignments nested; `tas` are the task-assignment indices of the project.
pub fn project_assignment<'a>(d: &'a Data, i: u32, tas: &[u32]) -> ProjectAssignmentView<'a> {
    let u = &d.user_assignments[i as usize];
    let p = &d.projects[u.project as usize];
    ProjectAssignmentView {
        id: u.id,
        is_project_manager: u.is_project_manager,
        is_active: u.is_active,
        use_default_rates: u.use_default_rates,
        budget: opt_flt(u.budget),
        hourly_rate: opt_flt(u.hourly_rate),
        project: project_ref(d, u.project),
        client: client_ref(d, p.client),
        task_assignments: tas
            .iter()
            .filter(|&&t| !d.deleted.has(Res::TaskAssignments, t))
            .map(|&t| {
                let ta = &d.task_assignments[t as usize];
                NestedTaskAssignment {
                    id: ta.id,
                    billable: ta.billable,
                    is_active: ta.is_active,
                    hourly_rate: opt_flt(ta.hourly_rate),
                    budget: opt_flt(ta.budget),
                    task: task_ref(d, ta.task),
                    created_at: ta.created_at,
                    updated_at: ta.updated_at,
                }
            })
            .collect(),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

// ---------------------------------------------------------------- invoices & estimates

#[derive(Serialize)]
pub struct ItemCategoryView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub use_as_service: bool,
    pub use_as_expense: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn invoice_item_category(d: &Data, i: u32) -> ItemCategoryView<'_> {
    let c = &d.invoice_item_categories[i as usize];
    ItemCategoryView {
        id: c.id,
        name: &c.name,
        use_as_service: c.use_as_service,
        use_as_expense: c.use_as_expense,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

#[derive(Serialize)]
pub struct EstimateCategoryView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn estimate_item_category(d: &Data, i: u32) -> EstimateCategoryView<'_> {
    let c = &d.estimate_item_categories[i as usize];
    EstimateCategoryView {
        id: c.id,
        name: &c.name,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

#[derive(Serialize)]
pub struct InvoiceLineView<'a> {
    pub id: i64,
    pub kind: &'a str,
    pub description: &'a str,
    pub quantity: Dec,
    pub unit_price: Dec,
    pub amount: Dec,
    pub taxed: bool,
    pub taxed2: bool,
    pub project: Option<IdNameCode<'a>>,
}

#[derive(Serialize)]
pub struct EstimateLineView<'a> {
    pub id: i64,
    pub kind: &'a str,
    pub description: &'a str,
    pub quantity: Dec,
    pub unit_price: Dec,
    pub amount: Dec,
    pub taxed: bool,
    pub taxed2: bool,
}

#[derive(Serialize)]
pub struct IdOnly {
    pub id: i64,
}

#[derive(Serialize)]
pub struct InvoiceView<'a> {
    pub id: i64,
    pub client_key: String,
    pub number: &'a str,
    pub purchase_order: &'a str,
    pub amount: Dec,
    pub due_amount: Dec,
    pub tax: Option<Dec>,
    pub tax_amount: Dec,
    pub tax2: Option<Dec>,
    pub tax2_amount: Dec,
    pub discount: Option<Dec>,
    pub discount_amount: Dec,
    pub subject: &'a str,
    pub notes: &'a str,
    pub currency: &'a str,
    pub state: &'a str,
    pub period_start: Option<Date>,
    pub period_end: Option<Date>,
    pub issue_date: Date,
    pub due_date: Date,
    pub payment_term: &'a str,
    pub payment_options: &'a [&'a str],
    pub sent_at: Option<Ts>,
    pub paid_at: Option<Ts>,
    pub paid_date: Option<Date>,
    pub closed_at: Option<Ts>,
    pub recurring_invoice_id: Option<i64>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub client: IdName<'a>,
    pub estimate: Option<IdOnly>,
    pub retainer: Option<IdOnly>,
    pub creator: IdNameOwned,
    pub line_items: Vec<InvoiceLineView<'a>>,
}

pub fn invoice(d: &Data, i: u32) -> InvoiceView<'_> {
    let v = &d.invoices[i as usize];
    InvoiceView {
        id: v.id,
        client_key: hex_key(v.id as u64 ^ 0xC11E_u64),
        number: &v.number,
        purchase_order: v.purchase_order,
        amount: Dec(v.amount),
        due_amount: Dec(v.due_amount),
        tax: opt_dec(v.tax),
        tax_amount: Dec(v.tax_amount),
        tax2: opt_dec(v.tax2),
        tax2_amount: Dec(v.tax2_amount),
        discount: opt_dec(v.discount),
        discount_amount: Dec(v.discount_amount),
        subject: &v.subject,
        notes: &v.notes,
        currency: v.currency,
        state: v.state,
        period_start: v.period_start,
        period_end: v.period_end,
        issue_date: v.issue_date,
        due_date: v.due_date,
        payment_term: v.payment_term,
        payment_options: v.payment_options,
        sent_at: v.sent_at,
        paid_at: v.paid_at,
        paid_date: v.paid_date,
        closed_at: v.closed_at,
        recurring_invoice_id: v.recurring_invoice_id,
        created_at: v.created_at,
        updated_at: v.updated_at,
        client: client_ref(d, v.client),
        estimate: (v.estimate != NONE).then(|| IdOnly {
            id: d.estimates[v.estimate as usize].id,
        }),
        retainer: v.retainer_id.map(|id| IdOnly { id }),
        creator: user_ref(d, v.creator),
        line_items: v
            .line_items
            .iter()
            .map(|li| InvoiceLineView {
                id: li.id,
                kind: &li.kind,
                description: li.description,
                quantity: Dec(li.quantity),
                unit_price: Dec(li.unit_price),
                amount: Dec(li.amount),
                taxed: li.taxed,
                taxed2: li.taxed2,
                project: (li.project != NONE).then(|| project_ref(d, li.project)),
            })
            .collect(),
    }
}

#[derive(Serialize)]
pub struct Recipient<'a> {
    pub name: String,
    pub email: &'a str,
}

fn recipients<'a>(d: &'a Data, r: &[u32]) -> Vec<Recipient<'a>> {
    r.iter()
        .map(|&c| {
            let c = &d.contacts[c as usize];
            Recipient {
                name: if c.last_name.is_empty() {
                    c.first_name.to_string()
                } else {
                    format!("{} {}", c.first_name, c.last_name)
                },
                email: &c.email,
            }
        })
        .collect()
}

#[derive(Serialize)]
pub struct InvoiceMessageView<'a> {
    pub id: i64,
    pub sent_by: String,
    pub sent_by_email: &'a str,
    pub sent_from: String,
    pub sent_from_email: &'a str,
    pub recipients: Vec<Recipient<'a>>,
    pub subject: &'a str,
    pub body: &'a str,
    pub include_link_to_client_invoice: bool,
    pub attach_pdf: bool,
    pub send_me_a_copy: bool,
    pub thank_you: bool,
    pub event_type: Option<&'a str>,
    pub reminder: bool,
    pub send_reminder_on: Option<Date>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn invoice_message(d: &Data, i: u32) -> InvoiceMessageView<'_> {
    let m = &d.invoice_messages[i as usize];
    let u = &d.users[m.sender as usize];
    InvoiceMessageView {
        id: m.id,
        sent_by: u.name(),
        sent_by_email: &u.email,
        sent_from: u.name(),
        sent_from_email: &u.email,
        recipients: recipients(d, &m.recipients),
        subject: &m.subject,
        body: &m.body,
        include_link_to_client_invoice: m.include_link_to_client_invoice,
        attach_pdf: m.attach_pdf,
        send_me_a_copy: m.send_me_a_copy,
        thank_you: m.thank_you,
        event_type: m.event_type,
        reminder: m.reminder,
        send_reminder_on: m.send_reminder_on,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

#[derive(Serialize)]
pub struct Gateway<'a> {
    pub id: Option<i64>,
    pub name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct InvoicePaymentView<'a> {
    pub id: i64,
    pub amount: Dec,
    pub paid_at: Ts,
    pub paid_date: Date,
    pub recorded_by: String,
    pub recorded_by_email: &'a str,
    pub notes: &'a str,
    pub transaction_id: Option<&'a str>,
    pub payment_gateway: Gateway<'a>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn invoice_payment(d: &Data, i: u32) -> InvoicePaymentView<'_> {
    let p = &d.invoice_payments[i as usize];
    let u = &d.users[p.recorder as usize];
    InvoicePaymentView {
        id: p.id,
        amount: Dec(p.amount),
        paid_at: p.paid_at,
        paid_date: p.paid_date,
        recorded_by: u.name(),
        recorded_by_email: &u.email,
        notes: &p.notes,
        transaction_id: p.transaction_id.as_deref(),
        payment_gateway: Gateway {
            id: p.gateway_id,
            name: p.gateway_name,
        },
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

#[derive(Serialize)]
pub struct EstimateView<'a> {
    pub id: i64,
    pub client_key: String,
    pub number: &'a str,
    pub purchase_order: &'a str,
    pub amount: Dec,
    pub tax: Option<Dec>,
    pub tax_amount: Dec,
    pub tax2: Option<Dec>,
    pub tax2_amount: Dec,
    pub discount: Option<Dec>,
    pub discount_amount: Dec,
    pub subject: &'a str,
    pub notes: &'a str,
    pub currency: &'a str,
    pub state: &'a str,
    pub issue_date: Date,
    pub sent_at: Option<Ts>,
    pub accepted_at: Option<Ts>,
    pub declined_at: Option<Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub client: IdName<'a>,
    pub creator: IdNameOwned,
    pub line_items: Vec<EstimateLineView<'a>>,
}

pub fn estimate(d: &Data, i: u32) -> EstimateView<'_> {
    let v = &d.estimates[i as usize];
    EstimateView {
        id: v.id,
        client_key: hex_key(v.id as u64 ^ 0xE57_u64),
        number: &v.number,
        purchase_order: v.purchase_order,
        amount: Dec(v.amount),
        tax: opt_dec(v.tax),
        tax_amount: Dec(v.tax_amount),
        tax2: opt_dec(v.tax2),
        tax2_amount: Dec(v.tax2_amount),
        discount: opt_dec(v.discount),
        discount_amount: Dec(v.discount_amount),
        subject: &v.subject,
        notes: &v.notes,
        currency: v.currency,
        state: v.state,
        issue_date: v.issue_date,
        sent_at: v.sent_at,
        accepted_at: v.accepted_at,
        declined_at: v.declined_at,
        created_at: v.created_at,
        updated_at: v.updated_at,
        client: client_ref(d, v.client),
        creator: user_ref(d, v.creator),
        line_items: v
            .line_items
            .iter()
            .map(|li| EstimateLineView {
                id: li.id,
                kind: &li.kind,
                description: li.description,
                quantity: Dec(li.quantity),
                unit_price: Dec(li.unit_price),
                amount: Dec(li.amount),
                taxed: li.taxed,
                taxed2: li.taxed2,
            })
            .collect(),
    }
}

#[derive(Serialize)]
pub struct EstimateMessageView<'a> {
    pub id: i64,
    pub sent_by: String,
    pub sent_by_email: &'a str,
    pub sent_from: String,
    pub sent_from_email: &'a str,
    pub send_me_a_copy: bool,
    pub recipients: Vec<Recipient<'a>>,
    pub event_type: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn estimate_message(d: &Data, i: u32) -> EstimateMessageView<'_> {
    let m = &d.estimate_messages[i as usize];
    let u = &d.users[m.sender as usize];
    EstimateMessageView {
        id: m.id,
        sent_by: u.name(),
        sent_by_email: &u.email,
        sent_from: u.name(),
        sent_from_email: &u.email,
        send_me_a_copy: m.send_me_a_copy,
        recipients: recipients(d, &m.recipients),
        event_type: m.event_type,
        subject: &m.subject,
        body: &m.body,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

// ---------------------------------------------------------------- expenses

#[derive(Serialize)]
pub struct ExpenseCategoryView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub unit_name: Option<&'a str>,
    pub unit_price: Option<Dec>,
    pub is_active: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn expense_category(d: &Data, i: u32) -> ExpenseCategoryView<'_> {
    let c = &d.expense_categories[i as usize];
    ExpenseCategoryView {
        id: c.id,
        name: &c.name,
        unit_name: c.unit_name,
        unit_price: opt_dec(c.unit_price),
        is_active: c.is_active,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

#[derive(Serialize)]
pub struct ReceiptView {
    pub url: String,
    pub file_name: &'static str,
    pub file_size: i32,
    pub content_type: &'static str,
}

#[derive(Serialize)]
pub struct CategoryRef<'a> {
    pub id: i64,
    pub name: &'a str,
    pub unit_price: Option<Dec>,
    pub unit_name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct InvoiceRef<'a> {
    pub id: i64,
    pub number: &'a str,
}

#[derive(Serialize)]
pub struct ExpenseView<'a> {
    pub id: i64,
    pub notes: &'a str,
    pub total_cost: Dec,
    pub units: Flt,
    pub is_closed: bool,
    pub is_locked: bool,
    pub is_billed: bool,
    pub locked_reason: Option<&'a str>,
    pub spent_date: Date,
    pub billable: bool,
    pub receipt: Option<ReceiptView>,
    pub user: IdNameOwned,
    pub user_assignment: UaPartial,
    pub project: IdNameCode<'a>,
    pub expense_category: CategoryRef<'a>,
    pub client: ClientRef<'a>,
    pub invoice: Option<InvoiceRef<'a>>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn expense(d: &Data, i: u32) -> ExpenseView<'_> {
    let e = &d.expenses[i as usize];
    let ua = &d.user_assignments[e.ua as usize];
    let cat = &d.expense_categories[e.category as usize];
    let project = &d.projects[ua.project as usize];
    ExpenseView {
        id: e.id,
        notes: &e.notes,
        total_cost: Dec(e.total_cost),
        units: Flt(e.units),
        is_closed: e.is_closed,
        is_locked: e.is_locked,
        is_billed: e.is_billed,
        locked_reason: e.locked_reason,
        spent_date: e.spent_date,
        billable: e.billable,
        receipt: e.receipt.map(|r| ReceiptView {
            url: format!(
                "https://acme.harvestapp.com/expenses/{}/receipt/{}",
                e.id, r.file_name
            ),
            file_name: r.file_name,
            file_size: r.file_size,
            content_type: r.content_type,
        }),
        user: user_ref(d, ua.user),
        user_assignment: ua_partial(d, e.ua),
        project: project_ref(d, ua.project),
        expense_category: CategoryRef {
            id: cat.id,
            name: &cat.name,
            unit_price: opt_dec(cat.unit_price),
            unit_name: cat.unit_name,
        },
        client: client_ref_cur(d, project.client),
        invoice: (e.invoice != NONE).then(|| {
            let inv = &d.invoices[e.invoice as usize];
            InvoiceRef {
                id: inv.id,
                number: &inv.number,
            }
        }),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

// ---------------------------------------------------------------- time entries

#[derive(Serialize)]
pub struct ExternalRefView<'a> {
    pub id: &'a str,
    pub group_id: &'a str,
    pub account_id: &'a str,
    pub permalink: String,
    pub service: &'a str,
    pub service_icon_url: String,
}

#[derive(Serialize)]
pub struct TimeEntryView<'a> {
    pub id: i64,
    pub spent_date: Date,
    pub user: IdNameOwned,
    pub client: ClientRef<'a>,
    pub project: IdNameCode<'a>,
    pub task: IdName<'a>,
    pub user_assignment: UaPartial,
    pub task_assignment: TaPartial,
    pub hours: Flt,
    pub hours_without_timer: Flt,
    pub rounded_hours: Flt,
    pub notes: Option<&'a str>,
    pub is_locked: bool,
    pub locked_reason: Option<&'static str>,
    pub approval_status: &'static str,
    pub is_closed: bool,
    pub is_billed: bool,
    pub timer_started_at: Option<Ts>,
    pub started_time: Option<String>,
    pub ended_time: Option<String>,
    pub is_running: bool,
    pub invoice: Option<InvoiceRef<'a>>,
    pub external_reference: Option<ExternalRefView<'a>>,
    pub billable: bool,
    pub budgeted: bool,
    pub billable_rate: Option<Flt>,
    pub cost_rate: Option<Flt>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

pub fn time_entry(d: &Data, i: u32) -> TimeEntryView<'_> {
    use te_flags as f;
    let t = &d.time_entries[i as usize];
    let ua = &d.user_assignments[t.ua as usize];
    let project = &d.projects[ua.project as usize];
    let h24 = t.has(f::CLOCK24);
    let clock = |m: u16| (m != u16::MAX).then(|| clock_string(m, h24));
    TimeEntryView {
        id: t.id,
        spent_date: t.spent_date,
        user: user_ref(d, ua.user),
        client: client_ref_cur(d, project.client),
        project: project_ref(d, ua.project),
        task: task_ref(d, d.task_assignments[t.ta as usize].task),
        user_assignment: ua_partial(d, t.ua),
        task_assignment: ta_partial(d, t.ta),
        hours: Flt(i64::from(t.hours)),
        hours_without_timer: Flt(i64::from(t.hours_without_timer)),
        rounded_hours: Flt(i64::from(t.rounded_hours)),
        notes: d.note(t.notes),
        is_locked: t.has(f::LOCKED),
        locked_reason: if !t.has(f::LOCKED) {
            None
        } else if t.has(f::BILLED) {
            Some("Item Invoiced and Approved and Locked for this Time Period")
        } else {
            Some("Item Approved and Locked for this Time Period")
        },
        approval_status: if t.has(f::APPROVED) {
            "approved"
        } else if t.has(f::SUBMITTED) {
            "submitted"
        } else {
            "unsubmitted"
        },
        is_closed: t.has(f::CLOSED),
        is_billed: t.has(f::BILLED),
        timer_started_at: (t.timer_started_at != 0).then_some(Ts(t.timer_started_at)),
        started_time: clock(t.started),
        ended_time: clock(t.ended),
        is_running: t.has(f::RUNNING),
        invoice: (t.invoice != NONE).then(|| {
            let inv = &d.invoices[t.invoice as usize];
            InvoiceRef {
                id: inv.id,
                number: &inv.number,
            }
        }),
        external_reference: (t.ext_ref != NONE).then(|| {
            let r = &d.ext_refs[t.ext_ref as usize];
            ExternalRefView {
                id: &r.id,
                group_id: &r.group_id,
                account_id: &r.account_id,
                permalink: format!("https://{}/acme/issues/{}", r.service, r.id),
                service: r.service,
                service_icon_url: format!("https://{}/favicon.png", r.service),
            }
        }),
        billable: t.has(f::BILLABLE),
        budgeted: t.has(f::BUDGETED),
        billable_rate: (t.billable_rate >= 0).then_some(Flt(i64::from(t.billable_rate))),
        cost_rate: (t.cost_rate >= 0).then_some(Flt(i64::from(t.cost_rate))),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}
