//! The account held in memory: compact typed records that reference each other by index.
//!
//! Every `Vec` is kept sorted by id ascending (generated ids are assigned in creation order and
//! new records get larger ids), so an index into a vector is stable for the life of the account
//! and an id is found by binary search. (`Data::teammates`, a relation without ids, is kept
//! sorted by its (manager, user) indexes instead.)

use std::borrow::Cow;
use std::collections::HashSet;

use crate::util::{Date, Ts};

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

/// Every list-backed resource the simulator serves (the names `truth`/`mutate` accept).
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

pub const ALL_RES: &[Res] = &[
    Res::Users,
    Res::Roles,
    Res::Clients,
    Res::Contacts,
    Res::Projects,
    Res::Tasks,
    Res::TaskAssignments,
    Res::UserAssignments,
    Res::BillableRates,
    Res::CostRates,
    Res::ProjectAssignments,
    Res::Teammates,
    Res::InvoiceItemCategories,
    Res::EstimateItemCategories,
    Res::Invoices,
    Res::InvoiceMessages,
    Res::InvoicePayments,
    Res::Estimates,
    Res::EstimateMessages,
    Res::ExpenseCategories,
    Res::Expenses,
    Res::TimeEntries,
];

impl Res {
    pub fn name(self) -> &'static str {
        match self {
            Res::Users => "users",
            Res::Roles => "roles",
            Res::Clients => "clients",
            Res::Contacts => "contacts",
            Res::Projects => "projects",
            Res::Tasks => "tasks",
            Res::TaskAssignments => "task_assignments",
            Res::UserAssignments => "user_assignments",
            Res::BillableRates => "billable_rates",
            Res::CostRates => "cost_rates",
            Res::ProjectAssignments => "project_assignments",
            Res::Teammates => "teammates",
            Res::InvoiceItemCategories => "invoice_item_categories",
            Res::EstimateItemCategories => "estimate_item_categories",
            Res::Invoices => "invoices",
            Res::InvoiceMessages => "invoice_messages",
            Res::InvoicePayments => "invoice_payments",
            Res::Estimates => "estimates",
            Res::EstimateMessages => "estimate_messages",
            Res::ExpenseCategories => "expense_categories",
            Res::Expenses => "expenses",
            Res::TimeEntries => "time_entries",
        }
    }

    pub fn from_name(s: &str) -> Option<Res> {
        ALL_RES.iter().copied().find(|r| r.name() == s)
    }

    /// The envelope key of the list (the same as the name for every resource).
    pub fn key(self) -> &'static str {
        self.name()
    }

    /// The field naming the parent in `truth` output, for nested resources.
    pub fn parent_field(self) -> Option<&'static str> {
        match self {
            Res::InvoiceMessages | Res::InvoicePayments => Some("invoice_id"),
            Res::EstimateMessages => Some("estimate_id"),
            Res::BillableRates | Res::CostRates | Res::ProjectAssignments | Res::Teammates => {
                Some("user_id")
            }
            _ => None,
        }
    }

    /// Filters Harvest supports on the list endpoint.
    pub fn filters(self) -> &'static [&'static str] {
        const US: &str = "updated_since";
        match self {
            Res::Clients => &["is_active", US],
            Res::Contacts => &["client_id", US],
            Res::Invoices => &["client_id", "project_id", US, "from", "to", "state"],
            Res::InvoiceMessages | Res::InvoicePayments | Res::EstimateMessages => &[US],
            Res::InvoiceItemCategories | Res::EstimateItemCategories => &[US],
            Res::Estimates => &["client_id", US, "from", "to", "state"],
            Res::Expenses => &[
                "user_id",
                "client_id",
                "project_id",
                "is_billed",
                US,
                "from",
                "to",
            ],
            Res::ExpenseCategories | Res::Tasks | Res::Users => &["is_active", US],
            Res::TimeEntries => &[
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
            Res::Projects => &["is_active", "client_id", US],
            Res::UserAssignments => &["user_id", "is_active", US],
            Res::TaskAssignments => &["is_active", US],
            Res::ProjectAssignments => &[US],
            Res::Roles | Res::BillableRates | Res::CostRates | Res::Teammates => &[],
        }
    }
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
}

/// The id of record `i` (the key cursors carry).
pub fn id_of(d: &Data, res: Res, i: u32) -> i64 {
    let i = i as usize;
    match res {
        Res::Users => d.users[i].id,
        Res::Roles => d.roles[i].id,
        Res::Clients => d.clients[i].id,
        Res::Contacts => d.contacts[i].id,
        Res::Projects => d.projects[i].id,
        Res::Tasks => d.tasks[i].id,
        Res::TaskAssignments => d.task_assignments[i].id,
        Res::UserAssignments | Res::ProjectAssignments => d.user_assignments[i].id,
        Res::BillableRates => d.billable_rates[i].id,
        Res::CostRates => d.cost_rates[i].id,
        Res::Teammates => d.users[d.teammates[i].user as usize].id,
        Res::InvoiceItemCategories => d.invoice_item_categories[i].id,
        Res::EstimateItemCategories => d.estimate_item_categories[i].id,
        Res::Invoices => d.invoices[i].id,
        Res::InvoiceMessages => d.invoice_messages[i].id,
        Res::InvoicePayments => d.invoice_payments[i].id,
        Res::Estimates => d.estimates[i].id,
        Res::EstimateMessages => d.estimate_messages[i].id,
        Res::ExpenseCategories => d.expense_categories[i].id,
        Res::Expenses => d.expenses[i].id,
        Res::TimeEntries => d.time_entries[i].id,
    }
}

/// The parent id a nested record carries in `truth` output.
pub fn parent_id_of(d: &Data, res: Res, i: u32) -> Option<i64> {
    let i = i as usize;
    Some(match res {
        Res::InvoiceMessages => d.invoices[d.invoice_messages[i].invoice as usize].id,
        Res::InvoicePayments => d.invoices[d.invoice_payments[i].invoice as usize].id,
        Res::EstimateMessages => d.estimates[d.estimate_messages[i].estimate as usize].id,
        Res::BillableRates => d.users[d.billable_rates[i].user as usize].id,
        Res::CostRates => d.users[d.cost_rates[i].user as usize].id,
        Res::ProjectAssignments => d.users[d.user_assignments[i].user as usize].id,
        Res::Teammates => d.users[d.teammates[i].manager as usize].id,
        _ => return None,
    })
}
