//! The one table that declares every stream. Everything else (pagination, bookmarks, rate
//! limiting, retries, selection, output) is generic and driven by these declarations: adding a
//! stream means adding one entry here and its schema file in `schemas/`.
//!
//! What the engine makes of a declaration is decided here, once: [`StreamDef::replication`]
//! says how a stream's bookmark moves (and refuses a shape the engine cannot read), and
//! [`check_table`] holds the rules between streams (parents, keys, schemas). Both are checked
//! over the whole table by unit tests, so a declaration the engine cannot read fails the build's
//! tests instead of reading nothing.

pub mod derived;
pub mod reports;
pub mod schemas;
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
    /// The parents with a sign of change since the child's bookmark ([`Sign`]); every parent
    /// in a full sweep (`deletion_full_scan_days`), with `full_child_scan`, and whenever a sign
    /// cannot be read. Every row of a parent read is sent (a sign says the parent's rows may
    /// have changed, not which).
    Signalled(&'static [Sign]),
}

/// A sign that a parent's child list changed, read from lists the sync reads anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// The parent record's own `updated_at` moved (a new current rate moves the user's
    /// `default_hourly_rate` or `cost_rate`, and so its `updated_at`).
    Parent,
    /// A record of the root list `stream` changed since the child's bookmark names the parent
    /// in `column` (an edited or new user assignment's user).
    Names {
        stream: &'static str,
        column: &'static str,
    },
    /// A record of the root list `stream` changed since the child's bookmark names, in
    /// `column`, the owner that `via` (the stream confirming the child's deletions, same keys)
    /// remembers for one of the child's remembered rows: that row's parent has a sign (a task
    /// assignment or a project of a project the user is assigned to).
    Owns {
        stream: &'static str,
        column: &'static str,
        via: &'static str,
    },
    /// A parent record that changed is the last key part of one of the child's remembered
    /// rows: that row's parent has a sign (a renamed teammate, for each manager of theirs).
    Member,
}

impl Sign {
    /// The root list the sign is read from, besides the parent.
    pub fn source(self) -> Option<&'static str> {
        match self {
            Sign::Names { stream, .. } | Sign::Owns { stream, .. } => Some(stream),
            Sign::Parent | Sign::Member => None,
        }
    }
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
        /// Only the parents this accepts have children to request (teammates: managers only).
        only: Option<ParentFilter>,
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
        /// Each key is sent once per sync, however many parents carry it (an external
        /// reference shared by many time entries).
        distinct: bool,
    },
}

/// Which parent records have children: a child stream's filter on its parent's raw record.
pub type ParentFilter = fn(&Row) -> bool;

/// How a stream's bookmark moves: the one notion of a replication key, decided from the
/// declaration by [`StreamDef::replication`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// No bookmark: every record on every sync.
    FullTable,
    /// The stream's own records' `updated_at`, capped by the `Date` of its own responses.
    Own,
    /// The parent record's `updated_at`, capped by the `Date` of the parent's responses: the
    /// stream is read again for the parents that changed.
    Parent,
    /// The rows' own `updated_at`, capped by the `Date` of the responses they came from (rows
    /// nested in a parent whose own `updated_at` does not move when they change).
    Row,
    /// Report windows: the bookmark is the first day of the window to read next.
    Window,
}

/// A stream's replication, as the catalog advertises it and the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub clock: Clock,
    /// The replication key the catalog and SCHEMA advertise: a column of the stream's own.
    pub key: Option<&'static str>,
    /// The key under `bookmarks.<stream>` in the state.
    pub bookmark: Option<String>,
}

impl Replication {
    /// `FULL_TABLE` or `INCREMENTAL`, for the catalog.
    pub fn method(&self) -> &'static str {
        match self.clock {
            Clock::FullTable => "FULL_TABLE",
            Clock::Own | Clock::Parent | Clock::Row | Clock::Window => "INCREMENTAL",
        }
    }
}

/// The column every stream that reports deletions declares: set on a tombstone RECORD, which
/// carries the key properties and this (RFC 3339) only.
pub const DELETED_AT: &str = stream_maps::DELETED_AT;

/// The column a record names its account in, in a sync whose rows say their account (several
/// accounts, or `include_account_id`): an integer, first of the keys.
pub const ACCOUNT_ID: &str = "account_id";

/// Where a stream's own `account_id` (an external reference's: the external service's
/// account) goes when the records say their Harvest account in that column.
pub const OWN_ACCOUNT_ID: &str = "external_account_id";

/// What proves that a record missing from a complete read of its list is gone from Harvest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// The read is a snapshot: cursor pages (a deletion shifts nothing), one parent's child
    /// list, or the rows inside a parent record.
    Listing,
    /// Offset pages shift when records go, and a filtered read misses a record whose date was
    /// edited: a missing record is deleted only once `GET <path>` (with `{id}`) answers 404.
    Get(&'static str),
    /// The list shows active records only (a user's project assignments): a missing record is
    /// deleted only if this stream (read in full in the same sync) has no record of that id.
    SameAs(&'static str),
    /// Not checked: a report's rows are sums, the company cannot be deleted.
    Never,
}

/// How a stream's deletions are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletions {
    pub confirm: Confirm,
    /// The date column a list's `from` filters on: records dated within the last
    /// `deletion_window_days` are checked on every sync, the rest in full sweeps.
    pub window: Option<&'static str>,
    /// For a root list: the column naming the record that owns it, and the owner's stream (a
    /// project's time entries go with it). A child's or derived row's owner is its parent.
    pub owner: Option<(&'static str, &'static str)>,
    /// A key column naming a record of another stream (declared before, keyed by id) that the
    /// row goes with, besides its owner: a user's project task goes with its task assignment.
    pub refers: Option<(&'static str, &'static str)>,
}

const LISTED: Deletions = Deletions {
    confirm: Confirm::Listing,
    window: None,
    owner: None,
    refers: None,
};

const NEVER: Deletions = Deletions {
    confirm: Confirm::Never,
    window: None,
    owner: None,
    refers: None,
};

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
    /// How records deleted in Harvest are found.
    pub deletions: Deletions,
}

impl StreamDef {
    pub fn parent(&self) -> Option<&'static str> {
        match self.source {
            Source::Child { parent, .. } | Source::Derived { parent, .. } => Some(parent),
            Source::Single { .. } | Source::List { .. } | Source::Report { .. } => None,
        }
    }

    pub fn is_derived(&self) -> bool {
        match self.source {
            Source::Derived { .. } => true,
            Source::Single { .. }
            | Source::List { .. }
            | Source::Child { .. }
            | Source::Report { .. } => false,
        }
    }

    /// A child read on signs ([`FanOut::Signalled`]), or a stream below one: every row of a
    /// parent read is sent, and its bookmark is the moment the signs were read up to.
    pub fn moves_with_signs(&self) -> bool {
        let mut at = Some(self);
        while let Some(d) = at {
            if matches!(
                d.source,
                Source::Child {
                    fan_out: FanOut::Signalled(_),
                    ..
                }
            ) {
                return true;
            }
            at = d.parent().and_then(find);
        }
        false
    }

    /// How the stream's bookmark moves, or why the engine cannot read the declaration.
    pub fn replication(&self) -> Result<Replication, String> {
        let own = |clock, key: &'static str| Replication {
            clock,
            key: Some(key),
            bookmark: Some(key.to_string()),
        };
        let full = Replication {
            clock: Clock::FullTable,
            key: None,
            bookmark: None,
        };
        let key = self.replication_key;
        match self.source {
            Source::Single { .. } => match key {
                None => Ok(full),
                Some(_) => Err("a single object has no replication key".into()),
            },
            Source::List { .. } => Ok(key.map_or(full, |k| own(Clock::Own, k))),
            Source::Child {
                fan_out, parent, ..
            } => match (fan_out, key) {
                // No clock of its own (teammates): it moves with the signs, as its parent's.
                (FanOut::Signalled(_), None) => Ok(Replication {
                    clock: Clock::Parent,
                    key: None,
                    bookmark: Some(format!("{parent}_updated_at")),
                }),
                (FanOut::Signalled(_), Some(k)) => Ok(own(Clock::Own, k)),
                (FanOut::ChangedParents, Some(k)) => Ok(own(Clock::Parent, k)),
                (FanOut::ChangedParents, None) => {
                    Err("reading only changed parents needs a replication key".into())
                }
            },
            Source::Report { windowed, .. } => match (windowed, key) {
                (true, Some(k)) => Ok(own(Clock::Window, k)),
                (false, None) => Ok(full),
                (true, None) => Err("a windowed report needs a bookmark (`from`)".into()),
                (false, Some(_)) => Err("a report without windows has no bookmark".into()),
            },
            Source::Derived { parent, clock, .. } => match key {
                // The singer-io layout: no key of their own, `<parent>_updated_at` in the state.
                Some(_) => Ok(Replication {
                    clock: match clock {
                        DerivedClock::Parent => Clock::Parent,
                        DerivedClock::Row => Clock::Row,
                    },
                    key: None,
                    bookmark: Some(format!("{parent}_updated_at")),
                }),
                None => Err("a derived stream moves with a bookmark".into()),
            },
        }
    }

    /// The replication key the catalog and SCHEMA advertise, for a stream whose declaration
    /// [`check_table`] accepts.
    pub fn advertised_key(&self) -> Option<&'static str> {
        self.replication().ok()?.key
    }

    /// The columns always emitted, whatever the catalog selects: the key properties and the
    /// advertised replication key.
    pub fn automatic_columns(&self) -> impl Iterator<Item = &'static str> {
        self.key_properties
            .iter()
            .copied()
            .chain(self.advertised_key())
            .chain(self.reports_deletions().then_some(DELETED_AT))
    }

    /// The key under `bookmarks.<stream>`, for a stream whose declaration [`check_table`]
    /// accepts.
    pub fn bookmark_key(&self) -> Option<String> {
        self.replication().ok()?.bookmark
    }

    /// Whether deleted records of the stream are reported.
    pub fn reports_deletions(&self) -> bool {
        self.deletions.confirm != Confirm::Never
    }

    /// The JSON Schema of the stream, as shipped in `schemas/`.
    pub fn schema(&self) -> &'static Value {
        schemas::schema(self.name)
    }
}

/// The stream whose record carries the account's feature flags ([`Feature::company_flag`]).
pub const FEATURE_FLAGS: &str = "company";

/// The rules between a stream and the rest of the table that the engine relies on; `Err` names
/// the stream and the rule it breaks.
pub fn check_table() -> Result<(), String> {
    for (i, s) in STREAMS.iter().enumerate() {
        check_stream(i, s).map_err(|why| format!("stream {}: {why}", s.name))?;
    }
    match find(FEATURE_FLAGS).map(|d| d.source) {
        Some(Source::Single { .. }) => Ok(()),
        _ => Err(format!(
            "{FEATURE_FLAGS} must be declared as a single object"
        )),
    }
}

/// The rules for the `i`th stream of the table.
fn check_stream(i: usize, s: &StreamDef) -> Result<(), String> {
    if STREAMS[..i].iter().any(|o| o.name == s.name) {
        return Err("declared twice".into());
    }
    let rep = s.replication()?;
    let props = s
        .schema()
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("its schema has no properties")?;
    for col in s
        .key_properties
        .iter()
        .chain(rep.key.iter())
        .chain(s.refs.iter().map(|(_, c)| c))
        .chain(s.parent_id.iter())
    {
        if !props.contains_key(*col) {
            return Err(format!("column {col} is not in its schema"));
        }
    }
    check_deletions(i, s, props)?;
    if rep.clock == Clock::Row && !props.contains_key("updated_at") {
        return Err("its rows' own clock needs an updated_at column".into());
    }
    check_parent(i, s, &rep)
}

/// How a stream's deletions are found fits its kind and the table.
fn check_deletions(i: usize, s: &StreamDef, props: &Map<String, Value>) -> Result<(), String> {
    let d = s.deletions;
    for col in d.window.iter().chain(d.owner.iter().map(|(c, _)| c)) {
        if !props.contains_key(*col) && !s.refs.iter().any(|(_, c)| c == col) {
            return Err(format!("deletion column {col} is not in its schema"));
        }
    }
    if let Some((column, stream)) = d.refers {
        let declared = STREAMS[..i]
            .iter()
            .any(|o| o.name == stream && o.key_properties == ["id"] && o.reports_deletions());
        if !s.key_properties.contains(&column) || !declared {
            return Err(format!(
                "it refers to {stream} by the key column {column}: {stream} must be declared before it, keyed by id, with its deletions found"
            ));
        }
    }
    if let Some((_, owner)) = d.owner {
        match STREAMS.iter().position(|o| o.name == owner) {
            Some(pos) if pos < i && STREAMS[pos].key_properties == ["id"] => {}
            _ => {
                return Err(format!(
                    "its owner {owner} must be declared before it, keyed by id"
                ))
            }
        }
        match s.source {
            Source::List { .. } => {}
            Source::Single { .. }
            | Source::Child { .. }
            | Source::Report { .. }
            | Source::Derived { .. } => {
                return Err(
                    "only a root list names an owner (a child's owner is its parent)".into(),
                )
            }
        }
    }
    match (d.confirm, s.source) {
        (Confirm::Never, Source::Report { .. } | Source::Single { .. }) => Ok(()),
        (Confirm::Never, _) => Err("a list's deletions must be found".into()),
        (_, Source::Report { .. } | Source::Single { .. }) => {
            Err("a report or a single object has no deletions to find".into())
        }
        (Confirm::Get(path), Source::List { .. })
            if path.contains("{id}") && s.key_properties == ["id"] =>
        {
            Ok(())
        }
        (Confirm::Get(_), _) => {
            Err("a GET confirmation is for a root list keyed by id, with {id} in its path".into())
        }
        (Confirm::SameAs(other), _) => {
            if find(other).is_none_or(|o| {
                o.key_properties != s.key_properties || o.deletions.confirm != Confirm::Listing
            }) {
                return Err(format!("{other} cannot confirm its deletions"));
            }
            Ok(())
        }
        (Confirm::Listing, _) => Ok(()),
    }
}

/// A child or derived stream's parent is declared before it and can carry it.
fn check_parent(i: usize, s: &StreamDef, rep: &Replication) -> Result<(), String> {
    let Some(parent_name) = s.parent() else {
        if s.parent_id.is_some() {
            return Err("only a child stream has a parent id column".into());
        }
        return Ok(());
    };
    let Some(pos) = STREAMS.iter().position(|o| o.name == parent_name) else {
        return Err(format!("its parent {parent_name} is not declared"));
    };
    if pos > i {
        return Err(format!("declared before its parent {parent_name}"));
    }
    let parent = &STREAMS[pos];
    let parent_clock = parent.replication().map(|r| r.clock);
    match (s.source, parent.source) {
        (_, Source::Report { .. }) => {
            return Err("a report's rows have no id or updated_at to hang rows on".into())
        }
        (Source::Child { path, .. }, _) => {
            if !path.contains("{id}") {
                return Err("a child path needs {id}".into());
            }
            if s.parent_id.is_none() {
                return Err("a child stream needs its parent id column".into());
            }
            if !parent.key_properties.contains(&"id") {
                return Err(format!("its parent {parent_name} has no id to request by"));
            }
        }
        (Source::Derived { .. }, _) => {}
        (Source::Single { .. } | Source::List { .. } | Source::Report { .. }, _) => {
            return Err("only child and derived streams have a parent".into())
        }
    }
    if rep.clock == Clock::Parent && !matches!(parent_clock, Ok(Clock::Own) | Ok(Clock::Parent)) {
        return Err(format!(
            "it moves with its parent, but {parent_name} has no updated_at bookmark"
        ));
    }
    match s.source {
        Source::Child {
            fan_out: FanOut::Signalled(signs),
            ..
        } => check_signs(s, pos, signs),
        _ => Ok(()),
    }
}

/// A child read on signs can read them: each sign's list is a root list filtered by
/// `updated_since` and read before the child's parent (whose fan-out waits for it), and the
/// memory a sign reads has the shape it needs.
fn check_signs(s: &StreamDef, parent_pos: usize, signs: &[Sign]) -> Result<(), String> {
    for sign in signs {
        if let Some(name) = sign.source() {
            match STREAMS.iter().position(|o| o.name == name) {
                Some(p)
                    if p < parent_pos
                        && matches!(
                            STREAMS[p].source,
                            Source::List {
                                updated_since: true,
                                ..
                            }
                        ) => {}
                _ => {
                    return Err(format!(
                        "its sign {name} must be a root list with updated_since, declared before its parent"
                    ))
                }
            }
        }
        match *sign {
            Sign::Owns { via, .. } if s.deletions.confirm != Confirm::SameAs(via) => {
                return Err(format!(
                    "a sign through {via} needs {via} to confirm its deletions (the same keys)"
                ))
            }
            Sign::Member
                if s.key_properties.len() != 2
                    || s.key_properties[0] != s.parent_id.unwrap_or_default() =>
            {
                return Err("a member sign needs the keys (parent id, member id)".into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// A project's records: they go with it.
const OF_PROJECT: Deletions = Deletions {
    owner: Some(("project_id", "projects")),
    ..LISTED
};

/// Time entries and expenses: checked by `spent_date` window, and they go with their project.
const DATED_OF_PROJECT: Deletions = Deletions {
    window: Some("spent_date"),
    ..OF_PROJECT
};

const ADMIN: &str = "administrator";
const MANAGER: &str = "administrator or manager";
const ANYONE: &str = "any user";

/// What changes a user's project assignments: the user, one of their user assignments (a
/// project assignment is the user assignment of the same id and `updated_at`), and a task
/// assignment or the project of a project they are assigned to.
const ASSIGNMENT_SIGNS: &[Sign] = &[
    Sign::Parent,
    Sign::Names {
        stream: "project_users",
        column: "user_id",
    },
    Sign::Owns {
        stream: "project_tasks",
        column: "project_id",
        via: "project_users",
    },
    Sign::Owns {
        stream: "projects",
        column: "id",
        via: "project_users",
    },
];

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
        deletions: NEVER,
    },
    list("clients", "/clients", "clients", &[], None, MANAGER),
    StreamDef {
        deletions: Deletions {
            owner: Some(("client_id", "clients")),
            ..LISTED
        },
        ..list(
            "contacts",
            "/contacts",
            "contacts",
            &[("client", "client_id")],
            None,
            MANAGER,
        )
    },
    list("tasks", "/tasks", "tasks", &[], None, ANYONE),
    list(
        "projects",
        "/projects",
        "projects",
        &[("client", "client_id")],
        None,
        MANAGER,
    ),
    StreamDef {
        deletions: OF_PROJECT,
        ..list(
            "project_tasks",
            "/task_assignments",
            "task_assignments",
            TA,
            None,
            MANAGER,
        )
    },
    StreamDef {
        deletions: OF_PROJECT,
        ..list(
            "project_users",
            "/user_assignments",
            "user_assignments",
            UA,
            None,
            MANAGER,
        )
    },
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
    StreamDef {
        // Harvest lists a user's active assignments only; the same records (same ids) are
        // `/user_assignments`, which lists them all.
        deletions: Deletions {
            confirm: Confirm::SameAs("project_users"),
            ..LISTED
        },
        ..child(
            "user_projects",
            "users",
            "/users/{id}/project_assignments",
            "project_assignments",
            true,
            FanOut::Signalled(ASSIGNMENT_SIGNS),
            "user_id",
            &[("project", "project_id"), ("client", "client_id")],
            ANYONE,
        )
    },
    StreamDef {
        deletions: Deletions {
            refers: Some(("project_task_id", "project_tasks")),
            ..LISTED
        },
        ..derived(
            "user_project_tasks",
            "user_projects",
            &["user_id", "project_task_id"],
            derived::user_project_tasks,
            "task_assignments",
            DerivedClock::Row,
        )
    },
    child(
        "user_billable_rates",
        "users",
        "/users/{id}/billable_rates",
        "billable_rates",
        false,
        FanOut::Signalled(&[Sign::Parent]),
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
        FanOut::Signalled(&[Sign::Parent]),
        "user_id",
        &[],
        ADMIN,
    ),
    StreamDef {
        source: Source::Child {
            parent: "users",
            path: "/users/{id}/teammates",
            envelope: "teammates",
            updated_since: false,
            fan_out: FanOut::Signalled(&[Sign::Parent, Sign::Member]),
            only: Some(manages_people),
        },
        key_properties: &["user_id", "id"],
        replication_key: None,
        // A teammate deleted as a user is deleted as a teammate of every manager.
        deletions: Deletions {
            refers: Some(("id", "users")),
            ..LISTED
        },
        ..child(
            "user_teammates",
            "users",
            "/users/{id}/teammates",
            "teammates",
            false,
            FanOut::Signalled(&[Sign::Parent, Sign::Member]),
            "user_id",
            &[],
            ADMIN,
        )
    },
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
        deletions: Deletions {
            confirm: Confirm::Get("/expenses/{id}"),
            ..DATED_OF_PROJECT
        },
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
    StreamDef {
        deletions: Deletions {
            confirm: Confirm::Get("/invoices/{id}"),
            ..LISTED
        },
        ..list(
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
        )
    },
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
    StreamDef {
        deletions: Deletions {
            confirm: Confirm::Get("/estimates/{id}"),
            ..LISTED
        },
        ..list(
            "estimates",
            "/estimates",
            "estimates",
            &[("client", "client_id"), ("creator", "creator_id")],
            Some(Feature::Estimate),
            MANAGER,
        )
    },
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
    StreamDef {
        deletions: Deletions {
            confirm: Confirm::Get("/time_entries/{id}"),
            ..DATED_OF_PROJECT
        },
        ..list(
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
        )
    },
    StreamDef {
        source: Source::Derived {
            parent: "time_entries",
            rows: derived::external_reference,
            consumes: "external_reference",
            clock: DerivedClock::Parent,
            distinct: true,
        },
        ..derived(
            "external_reference",
            "time_entries",
            &["id"],
            derived::external_reference,
            "external_reference",
            DerivedClock::Parent,
        )
    },
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

/// Whether a user has teammates to list: Harvest answers 422 for anyone without the manager
/// role (`access_roles` holds `manager`; administrators see everyone, so they have none).
fn manages_people(user: &Row) -> bool {
    user.get("access_roles")
        .and_then(Value::as_array)
        .is_some_and(|roles| roles.iter().any(|r| r == "manager"))
}

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
        b"expense_category_id" => &["expense_category_id", "currency", "from", "to"],
        // Evaluated in the `STREAMS` static: an unknown subject fails the build.
        _ => panic!("a report's subject must be one of the report keys above"),
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
        deletions: NEVER,
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
        deletions: LISTED,
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
            only: None,
        },
        key_properties: &["id"],
        replication_key: Some("updated_at"),
        refs,
        flatten: &[],
        parent_id: Some(parent_id),
        feature: None,
        role,
        deletions: LISTED,
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
            distinct: false,
        },
        key_properties,
        replication_key: Some("updated_at"),
        refs: &[],
        flatten: &[],
        parent_id: None,
        feature: None,
        role: ANYONE,
        deletions: LISTED,
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
        Source::Single { .. }
        | Source::List { .. }
        | Source::Child { .. }
        | Source::Report { .. } => None,
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
    fn the_engine_can_read_every_declared_stream() {
        check_table().unwrap();
    }

    /// Declarations the engine cannot read are refused, by name, instead of reading nothing.
    #[test]
    fn shapes_the_engine_cannot_read_are_refused() {
        let company = find("company").unwrap();
        let incremental_object = StreamDef {
            replication_key: Some("updated_at"),
            ..*company
        };
        assert!(incremental_object.replication().is_err());
        let messages = find("invoice_messages").unwrap();
        let unbookmarked = StreamDef {
            replication_key: None,
            ..*messages
        };
        assert!(unbookmarked.replication().is_err());
        let windowed = find("report_time_clients").unwrap();
        assert!(StreamDef {
            replication_key: None,
            ..*windowed
        }
        .replication()
        .is_err());
        // A second single object and a grandchild with requests of its own are read like any
        // other stream: their replication is decided like the others'.
        let second = StreamDef {
            name: "users_me",
            source: Source::Single { path: "/users/me" },
            ..*company
        };
        assert_eq!(second.replication().unwrap().clock, Clock::FullTable);
        assert_eq!(
            find("user_project_tasks").unwrap().replication().unwrap(),
            Replication {
                clock: Clock::Row,
                key: None,
                bookmark: Some("user_projects_updated_at".into())
            }
        );
    }

    #[test]
    fn replication_keeps_the_singer_io_layout() {
        let key = |n: &str| find(n).unwrap().replication().unwrap();
        assert_eq!(key("clients").bookmark.as_deref(), Some("updated_at"));
        assert_eq!(key("clients").method(), "INCREMENTAL");
        assert_eq!(key("invoice_messages").clock, Clock::Parent);
        assert_eq!(key("invoice_messages").key, Some("updated_at"));
        assert_eq!(
            key("invoice_line_items").bookmark.as_deref(),
            Some("invoices_updated_at")
        );
        assert_eq!(key("invoice_line_items").key, None);
        assert_eq!(key("report_time_team").bookmark.as_deref(), Some("from"));
        assert_eq!(key("report_project_budget").method(), "FULL_TABLE");
        assert_eq!(key("company").method(), "FULL_TABLE");
    }
}
