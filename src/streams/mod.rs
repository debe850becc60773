//! The one table that declares every stream. Everything else (pagination, bookmarks, rate
//! limiting, retries, selection, output) is generic and driven by these declarations: adding a
//! stream means adding one entry here and its schema file in `schemas/`.

pub mod derived;
pub mod reports;
pub mod shape;

use serde_json::{Map, Value};

/// A row: a JSON object.
pub type Row = Map<String, Value>;

/// A derived table: the rows made from one parent record.
pub type DeriveFn = fn(&Row) -> Vec<Row>;

/// A Harvest company feature that gates a family of endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Invoice,
    Estimate,
    Expense,
}

impl Feature {
    /// The flag on `GET /company` that tells whether the feature is on.
    pub fn company_flag(self) -> &'static str {
        match self {
            Feature::Invoice => "invoice_feature",
            Feature::Estimate => "estimate_feature",
            Feature::Expense => "expense_feature",
        }
    }
}

/// How a child endpoint is fanned out over its parent's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOut {
    /// Only parents changed since the child's bookmark (recording a payment or sending a
    /// message bumps the parent's `updated_at`); `updated_since` goes on the child request.
    ChangedParents,
    /// Every parent on every sync: a new assignment or rate leaves the parent (a user) untouched.
    AllParents,
}

/// What a derived row's bookmark is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedClock {
    /// The parent record's `updated_at` (line items change their invoice).
    Parent,
    /// The row's own `updated_at`, when the parent's may not move (nested task assignments).
    Row,
}

/// Where a stream's rows come from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A single object (no envelope), e.g. `/company`.
    Single { path: &'static str },
    /// A top-level list endpoint.
    List {
        path: &'static str,
        envelope: &'static str,
        /// Whether Harvest accepts `updated_since` on it (`/roles` does not).
        updated_since: bool,
    },
    /// A list endpoint under each record of `parent` (`{id}` in `path`).
    Child {
        parent: &'static str,
        path: &'static str,
        envelope: &'static str,
        updated_since: bool,
        fan_out: FanOut,
    },
    /// A Reports API endpoint (`results` envelope, its own rate budget). `windowed` reports
    /// take `from`/`to` and are read in windows of at most 365 days; `fixed_fee` ones accept
    /// `include_fixed_fee`.
    Report {
        path: &'static str,
        windowed: bool,
        fixed_fee: bool,
    },
    /// Rows computed from each record of `parent`, with no request of their own.
    Derived {
        parent: &'static str,
        rows: DeriveFn,
        /// The parent's field the rows are made from (not a column of the parent).
        consumes: &'static str,
        clock: DerivedClock,
    },
}

/// One Harvest stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamDef {
    pub name: &'static str,
    pub source: Source,
    pub key_properties: &'static [&'static str],
    /// `Some("updated_at")` for incremental streams, `None` for full-table ones.
    pub replication_key: Option<&'static str>,
    /// Nested reference objects reduced to a column holding their `id`: (field, column).
    pub refs: &'static [(&'static str, &'static str)],
    /// Nested objects whose members become prefixed columns: (field, prefix).
    pub flatten: &'static [(&'static str, &'static str)],
    /// For child streams, the column that receives the parent's id.
    pub parent_id: Option<&'static str>,
    /// The company feature the stream needs, if any.
    pub feature: Option<Feature>,
    /// The Harvest role that can read it, for the 403 warning.
    pub role: &'static str,
}

impl StreamDef {
    pub fn parent(&self) -> Option<&'static str> {
        match self.source {
            Source::Child { parent, .. } | Source::Derived { parent, .. } => Some(parent),
            _ => None,
        }
    }

    pub fn is_derived(&self) -> bool {
        matches!(self.source, Source::Derived { .. })
    }

    /// The bookmark key under `bookmarks.<stream>`: the replication key for streams with
    /// requests of their own, `<parent>_updated_at` for derived streams (the singer-io layout).
    pub fn bookmark_key(&self) -> Option<String> {
        let key = self.replication_key?;
        Some(match self.source {
            Source::Derived { parent, .. } => format!("{parent}_updated_at"),
            _ => key.to_string(),
        })
    }

    /// The JSON Schema of the stream, as shipped in `schemas/`.
    pub fn schema(&self) -> &'static Value {
        crate::schema::schema(self.name)
    }
}

const ADMIN: &str = "administrator";
const MANAGER: &str = "administrator or manager";
const ANYONE: &str = "any user";

const UA: &[(&str, &str)] = &[("project", "project_id"), ("user", "user_id")];
const TA: &[(&str, &str)] = &[("project", "project_id"), ("task", "task_id")];

/// Every stream, parents before their children.
pub static STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "company",
        source: Source::Single { path: "/company" },
        key_properties: &["full_domain"],
        replication_key: None,
        refs: &[],
        flatten: &[],
        parent_id: None,
        feature: None,
        role: ANYONE,
    },
    list("clients", "/clients", "clients", &[], None, MANAGER),
    list(
        "contacts",
        "/contacts",
        "contacts",
        &[("client", "client_id")],
        None,
        MANAGER,
    ),
    list("tasks", "/tasks", "tasks", &[], None, ANYONE),
    list(
        "projects",
        "/projects",
        "projects",
        &[("client", "client_id")],
        None,
        MANAGER,
    ),
    list(
        "project_tasks",
        "/task_assignments",
        "task_assignments",
        TA,
        None,
        MANAGER,
    ),
    list(
        "project_users",
        "/user_assignments",
        "user_assignments",
        UA,
        None,
        MANAGER,
    ),
    StreamDef {
        source: Source::List {
            path: "/roles",
            envelope: "roles",
            updated_since: false,
        },
        ..list("roles", "/roles", "roles", &[], None, ADMIN)
    },
    derived(
        "user_roles",
        "roles",
        &["role_id", "user_id"],
        derived::user_roles,
        "user_ids",
        DerivedClock::Parent,
    ),
    list("users", "/users", "users", &[], None, MANAGER),
    child(
        "user_projects",
        "users",
        "/users/{id}/project_assignments",
        "project_assignments",
        true,
        FanOut::AllParents,
        "user_id",
        &[("project", "project_id"), ("client", "client_id")],
        ANYONE,
    ),
    derived(
        "user_project_tasks",
        "user_projects",
        &["user_id", "project_task_id"],
        derived::user_project_tasks,
        "task_assignments",
        DerivedClock::Row,
    ),
    child(
        "user_billable_rates",
        "users",
        "/users/{id}/billable_rates",
        "billable_rates",
        false,
        FanOut::AllParents,
        "user_id",
        &[],
        MANAGER,
    ),
    child(
        "user_cost_rates",
        "users",
        "/users/{id}/cost_rates",
        "cost_rates",
        false,
        FanOut::AllParents,
        "user_id",
        &[],
        ADMIN,
    ),
    list(
        "expense_categories",
        "/expense_categories",
        "expense_categories",
        &[],
        Some(Feature::Expense),
        ADMIN,
    ),
    StreamDef {
        flatten: &[("receipt", "receipt_")],
        ..list(
            "expenses",
            "/expenses",
            "expenses",
            &[
                ("client", "client_id"),
                ("project", "project_id"),
                ("expense_category", "expense_category_id"),
                ("user", "user_id"),
                ("user_assignment", "user_assignment_id"),
                ("invoice", "invoice_id"),
            ],
            Some(Feature::Expense),
            ANYONE,
        )
    },
    list(
        "invoice_item_categories",
        "/invoice_item_categories",
        "invoice_item_categories",
        &[],
        Some(Feature::Invoice),
        MANAGER,
    ),
    list(
        "invoices",
        "/invoices",
        "invoices",
        &[
            ("client", "client_id"),
            ("estimate", "estimate_id"),
            ("retainer", "retainer_id"),
            ("creator", "creator_id"),
        ],
        Some(Feature::Invoice),
        MANAGER,
    ),
    StreamDef {
        feature: Some(Feature::Invoice),
        ..child(
            "invoice_messages",
            "invoices",
            "/invoices/{id}/messages",
            "invoice_messages",
            true,
            FanOut::ChangedParents,
            "invoice_id",
            &[],
            MANAGER,
        )
    },
    StreamDef {
        feature: Some(Feature::Invoice),
        flatten: &[("payment_gateway", "payment_gateway_")],
        ..child(
            "invoice_payments",
            "invoices",
            "/invoices/{id}/payments",
            "invoice_payments",
            true,
            FanOut::ChangedParents,
            "invoice_id",
            &[],
            MANAGER,
        )
    },
    StreamDef {
        feature: Some(Feature::Invoice),
        ..derived(
            "invoice_line_items",
            "invoices",
            &["id"],
            derived::invoice_line_items,
            "line_items",
            DerivedClock::Parent,
        )
    },
    list(
        "estimate_item_categories",
        "/estimate_item_categories",
        "estimate_item_categories",
        &[],
        Some(Feature::Estimate),
        ADMIN,
    ),
    list(
        "estimates",
        "/estimates",
        "estimates",
        &[("client", "client_id"), ("creator", "creator_id")],
        Some(Feature::Estimate),
        MANAGER,
    ),
    StreamDef {
        feature: Some(Feature::Estimate),
        ..child(
            "estimate_messages",
            "estimates",
            "/estimates/{id}/messages",
            "estimate_messages",
            true,
            FanOut::ChangedParents,
            "estimate_id",
            &[],
            MANAGER,
        )
    },
    StreamDef {
        feature: Some(Feature::Estimate),
        ..derived(
            "estimate_line_items",
            "estimates",
            &["id"],
            derived::estimate_line_items,
            "line_items",
            DerivedClock::Parent,
        )
    },
    list(
        "time_entries",
        "/time_entries",
        "time_entries",
        &[
            ("user", "user_id"),
            ("client", "client_id"),
            ("project", "project_id"),
            ("task", "task_id"),
            ("user_assignment", "user_assignment_id"),
            ("task_assignment", "task_assignment_id"),
            ("invoice", "invoice_id"),
            ("external_reference", "external_reference_id"),
        ],
        None,
        ANYONE,
    ),
    derived(
        "external_reference",
        "time_entries",
        &["id"],
        derived::external_reference,
        "external_reference",
        DerivedClock::Parent,
    ),
    derived(
        "time_entry_external_reference",
        "time_entries",
        &["time_entry_id", "external_reference_id"],
        derived::time_entry_external_reference,
        "external_reference",
        DerivedClock::Parent,
    ),
    report(
        "report_time_clients",
        "/reports/time/clients",
        "client_id",
        true,
        None,
    ),
    report(
        "report_time_projects",
        "/reports/time/projects",
        "project_id",
        true,
        None,
    ),
    report(
        "report_time_tasks",
        "/reports/time/tasks",
        "task_id",
        true,
        None,
    ),
    report(
        "report_time_team",
        "/reports/time/team",
        "user_id",
        true,
        None,
    ),
    report(
        "report_expenses_clients",
        "/reports/expenses/clients",
        "client_id",
        false,
        Some(Feature::Expense),
    ),
    report(
        "report_expenses_projects",
        "/reports/expenses/projects",
        "project_id",
        false,
        Some(Feature::Expense),
    ),
    report(
        "report_expenses_categories",
        "/reports/expenses/categories",
        "expense_category_id",
        false,
        Some(Feature::Expense),
    ),
    report(
        "report_expenses_team",
        "/reports/expenses/team",
        "user_id",
        false,
        Some(Feature::Expense),
    ),
    StreamDef {
        role: MANAGER,
        ..report(
            "report_uninvoiced",
            "/reports/uninvoiced",
            "project_id",
            true,
            None,
        )
    },
    StreamDef {
        source: Source::Report {
            path: "/reports/project_budget",
            windowed: false,
            fixed_fee: false,
        },
        key_properties: &["project_id"],
        replication_key: None,
        role: MANAGER,
        ..report(
            "report_project_budget",
            "/reports/project_budget",
            "project_id",
            false,
            None,
        )
    },
];

/// A windowed report: one row per subject and currency in each window.
const fn report(
    name: &'static str,
    path: &'static str,
    subject: &'static str,
    fixed_fee: bool,
    feature: Option<Feature>,
) -> StreamDef {
    let key_properties: &'static [&'static str] = match subject.as_bytes() {
        b"client_id" => &["client_id", "currency", "from", "to"],
        b"project_id" => &["project_id", "currency", "from", "to"],
        b"task_id" => &["task_id", "currency", "from", "to"],
        b"user_id" => &["user_id", "currency", "from", "to"],
        _ => &["expense_category_id", "currency", "from", "to"],
    };
    StreamDef {
        name,
        source: Source::Report {
            path,
            windowed: true,
            fixed_fee,
        },
        key_properties,
        replication_key: Some("from"),
        refs: &[],
        flatten: &[],
        parent_id: None,
        feature,
        role: ANYONE,
    }
}

const fn list(
    name: &'static str,
    path: &'static str,
    envelope: &'static str,
    refs: &'static [(&'static str, &'static str)],
    feature: Option<Feature>,
    role: &'static str,
) -> StreamDef {
    StreamDef {
        name,
        source: Source::List {
            path,
            envelope,
            updated_since: true,
        },
        key_properties: &["id"],
        replication_key: Some("updated_at"),
        refs,
        flatten: &[],
        parent_id: None,
        feature,
        role,
    }
}

#[allow(clippy::too_many_arguments)]
const fn child(
    name: &'static str,
    parent: &'static str,
    path: &'static str,
    envelope: &'static str,
    updated_since: bool,
    fan_out: FanOut,
    parent_id: &'static str,
    refs: &'static [(&'static str, &'static str)],
    role: &'static str,
) -> StreamDef {
    StreamDef {
        name,
        source: Source::Child {
            parent,
            path,
            envelope,
            updated_since,
            fan_out,
        },
        key_properties: &["id"],
        replication_key: Some("updated_at"),
        refs,
        flatten: &[],
        parent_id: Some(parent_id),
        feature: None,
        role,
    }
}

const fn derived(
    name: &'static str,
    parent: &'static str,
    key_properties: &'static [&'static str],
    rows: DeriveFn,
    consumes: &'static str,
    clock: DerivedClock,
) -> StreamDef {
    StreamDef {
        name,
        source: Source::Derived {
            parent,
            rows,
            consumes,
            clock,
        },
        key_properties,
        replication_key: Some("updated_at"),
        refs: &[],
        flatten: &[],
        parent_id: None,
        feature: None,
        role: ANYONE,
    }
}

/// Looks a stream up by name.
pub fn find(name: &str) -> Option<&'static StreamDef> {
    STREAMS.iter().find(|s| s.name == name)
}

/// The parent fields that `name`'s derived streams are made from.
pub fn consumed_fields(name: &str) -> impl Iterator<Item = &'static str> + '_ {
    children_of(name).filter_map(|c| match c.source {
        Source::Derived { consumes, .. } => Some(consumes),
        _ => None,
    })
}

/// The streams whose parent is `name`.
pub fn children_of(name: &str) -> impl Iterator<Item = &'static StreamDef> + '_ {
    STREAMS.iter().filter(move |s| s.parent() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parents_come_first() {
        for (i, s) in STREAMS.iter().enumerate() {
            assert!(
                STREAMS[..i].iter().all(|o| o.name != s.name),
                "duplicate {}",
                s.name
            );
            if let Some(p) = s.parent() {
                let pos = STREAMS
                    .iter()
                    .position(|o| o.name == p)
                    .expect("parent declared");
                assert!(pos < i, "{} declared before its parent {p}", s.name);
            }
        }
    }

    #[test]
    fn keys_and_columns_exist_in_schemas() {
        for s in STREAMS {
            let props = s.schema()["properties"].as_object().expect("properties");
            for k in s.key_properties {
                assert!(props.contains_key(*k), "{}: key {k} not in schema", s.name);
            }
            if let Some(rk) = s.replication_key {
                if !s.is_derived() {
                    assert!(props.contains_key(rk), "{}: {rk} not in schema", s.name);
                }
            }
            for (_, col) in s.refs {
                assert!(props.contains_key(*col), "{}: {col} not in schema", s.name);
            }
            if let Some(col) = s.parent_id {
                assert!(props.contains_key(col), "{}: {col} not in schema", s.name);
            }
        }
    }
}
