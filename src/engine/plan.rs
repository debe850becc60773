//! The read plan: which streams to read, in which tree, from which moment, and how each one's
//! bookmark moves. Everything is decided here, before the first request, and the plan does not
//! change while the sync runs: what does change (records counted, the newest `updated_at` seen,
//! whether a stream stopped) lives in each node's [`Tally`].

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use chrono::{DateTime, NaiveTime, Utc};

use super::tally::Tally;
use crate::catalog::Selection;
use crate::config::Config;
use crate::conform::Conformer;
use crate::output::RecordFrame;
use crate::state::State;
use crate::streams::{self, Clock, DerivedClock, FanOut, Source, StreamDef};

/// One stream in the plan, with the children it feeds.
pub struct Node {
    pub def: &'static StreamDef,
    /// Emit its records (it may be read only to feed its children).
    pub selected: bool,
    /// How its bookmark moves.
    pub clock: Clock,
    /// The key under `bookmarks.<stream>`, if it has a bookmark.
    pub bookmark: Option<String>,
    /// Records older than this are not emitted: max(bookmark, start date). `None`: every record.
    pub since: Option<DateTime<Utc>>,
    /// The `updated_since` its requests carry: the oldest moment it or a child needs.
    pub request_since: Option<DateTime<Utc>>,
    /// For a child: the parent records it needs are those updated at or after this; `None`:
    /// every parent.
    pub parents_since: Option<DateTime<Utc>>,
    /// For the stream that carries the feature flags: its record is kept for the engine.
    pub keeps_record: bool,
    /// For the selected streams: the schema's columns it emits, and its RECORD framing.
    pub output: Option<(Conformer, RecordFrame)>,
    pub children: Vec<Arc<Node>>,
    pub tally: Tally,
}

impl Node {
    /// Whether a record updated at `updated_at` is emitted. One whose `updated_at` cannot be
    /// read is emitted rather than lost.
    pub fn passes(&self, updated_at: Option<DateTime<Utc>>) -> bool {
        match self.clock {
            Clock::Own | Clock::Parent | Clock::Row => after(self.since, updated_at),
            // A report window is read whole; a full table has no `since`.
            Clock::Window | Clock::FullTable => true,
        }
    }

    /// Whether this child needs the parent record updated at `updated_at`.
    pub fn wants_parent(&self, updated_at: Option<DateTime<Utc>>) -> bool {
        after(self.parents_since, updated_at)
    }

    /// This node and every node below it, parents first.
    pub fn walk<'a>(self: &'a Arc<Node>, out: &mut Vec<&'a Arc<Node>>) {
        out.push(self);
        for c in &self.children {
            c.walk(out);
        }
    }

    /// The selected streams of this subtree, by name.
    pub fn selected_names(self: &Arc<Node>) -> Vec<&'static str> {
        let mut all = Vec::new();
        self.walk(&mut all);
        all.into_iter()
            .filter(|n| n.selected)
            .map(|n| n.def.name)
            .collect()
    }
}

fn after(since: Option<DateTime<Utc>>, updated_at: Option<DateTime<Utc>>) -> bool {
    match (since, updated_at) {
        (None, _) | (Some(_), None) => true,
        (Some(since), Some(u)) => u >= since,
    }
}

/// The plan: one tree per root endpoint, holding the streams that are selected or that a
/// selected descendant needs.
pub struct Plan {
    pub roots: Vec<Arc<Node>>,
}

impl Plan {
    pub fn new(selection: &Selection, state: &State, config: &Config) -> Result<Plan> {
        streams::check_table().map_err(|e| anyhow!("the stream table is inconsistent: {e}"))?;
        let mut needed: BTreeSet<&'static str> = BTreeSet::new();
        for def in streams::STREAMS
            .iter()
            .filter(|d| selection.is_selected(d.name))
        {
            let mut cur = Some(def);
            while let Some(d) = cur {
                needed.insert(d.name);
                cur = d.parent().and_then(streams::find);
            }
        }
        let roots = streams::STREAMS
            .iter()
            .filter(|d| d.parent().is_none() && needed.contains(d.name))
            .map(|d| build(d, &needed, selection, state, config))
            .collect::<Result<_>>()?;
        Ok(Plan { roots })
    }
}

fn build(
    def: &'static StreamDef,
    needed: &BTreeSet<&'static str>,
    selection: &Selection,
    state: &State,
    config: &Config,
) -> Result<Arc<Node>> {
    let replication = def
        .replication()
        .map_err(|e| anyhow!("stream {}: {e}", def.name))?;
    let selected = selection.is_selected(def.name);
    let start = match def.source {
        Source::Report { .. } => config
            .reports_start_date
            .map_or(config.start_date, |d| d.and_time(NaiveTime::MIN).and_utc()),
        Source::Single { .. }
        | Source::List { .. }
        | Source::Child { .. }
        | Source::Derived { .. } => config.start_date,
    };
    let since = replication.bookmark.as_ref().map(|key| {
        state
            .bookmark(def.name, key)
            .map_or(start, |b| b.max(start))
    });
    let children: Vec<Arc<Node>> = streams::children_of(def.name)
        .filter(|c| needed.contains(c.name))
        .map(|c| build(c, needed, selection, state, config))
        .collect::<Result<_>>()?;
    let parents_since = match def.source {
        Source::Child {
            fan_out: FanOut::AllParents,
            ..
        } => None,
        Source::Child {
            fan_out: FanOut::ChangedParents,
            ..
        } => since.filter(|_| !config.full_child_scan),
        Source::Derived {
            clock: DerivedClock::Parent,
            ..
        } => since,
        Source::Derived {
            clock: DerivedClock::Row,
            ..
        } => None,
        Source::Single { .. } | Source::List { .. } | Source::Report { .. } => None,
    };
    let takes_updated_since = match def.source {
        Source::List { updated_since, .. } | Source::Child { updated_since, .. } => updated_since,
        Source::Single { .. } | Source::Report { .. } | Source::Derived { .. } => false,
    };
    let request_since = if takes_updated_since {
        oldest_needed(
            selected.then_some(since),
            children.iter().map(|c| c.parents_since),
        )
    } else {
        None
    };
    Ok(Arc::new(Node {
        def,
        selected,
        clock: replication.clock,
        bookmark: replication.bookmark,
        since,
        request_since,
        parents_since,
        keeps_record: def.name == streams::FEATURE_FLAGS,
        output: selected.then(|| {
            (
                Conformer::new(def, selection.properties(def.name)),
                RecordFrame::new(def.name),
            )
        }),
        children,
        tally: Tally::new(match def.source {
            Source::Derived { distinct, .. } => distinct,
            Source::Single { .. }
            | Source::List { .. }
            | Source::Child { .. }
            | Source::Report { .. } => false,
        }),
    }))
}

/// The `updated_since` a list request can carry: the oldest moment among those its readers
/// need (the stream's own, when it is emitted, and each child's need of parents), or none when
/// one of them needs every record.
pub fn oldest_needed(
    own: Option<Option<DateTime<Utc>>>,
    children: impl IntoIterator<Item = Option<DateTime<Utc>>>,
) -> Option<DateTime<Utc>> {
    own.into_iter()
        .chain(children)
        .try_fold(None, |oldest: Option<DateTime<Utc>>, need| {
            let need = need?;
            Some(Some(oldest.map_or(need, |o| o.min(need))))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::config::parse_datetime(s).unwrap()
    }

    fn config(extra: serde_json::Value) -> Config {
        let mut c =
            json!({"access_token": "t", "account_id": "1", "start_date": "2020-01-01T00:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        Config::from_value(&c).unwrap()
    }

    fn selecting(names: &[&str]) -> Selection {
        let mut s = Selection::default();
        for n in names {
            s.streams.insert(streams::find(n).unwrap().name, None);
        }
        s
    }

    fn find<'a>(plan: &'a Plan, name: &str) -> &'a Arc<Node> {
        let mut all = Vec::new();
        for r in &plan.roots {
            r.walk(&mut all);
        }
        all.into_iter()
            .find(|n| n.def.name == name)
            .unwrap_or_else(|| panic!("{name} not planned"))
    }

    #[test]
    fn oldest_needed_is_the_minimum_or_none() {
        let (a, b) = (at("2024-01-01"), at("2023-06-01"));
        assert_eq!(oldest_needed(Some(Some(a)), [Some(b)]), Some(b));
        assert_eq!(oldest_needed(None, [Some(a)]), Some(a));
        assert_eq!(oldest_needed(Some(Some(a)), [Some(b), None]), None);
        assert_eq!(oldest_needed(Some(None), []), None);
        assert_eq!(oldest_needed(None, []), None);
    }

    #[test]
    fn every_stream_can_be_planned() {
        let plan = Plan::new(&Selection::all(), &State::default(), &config(json!({}))).unwrap();
        let mut all = Vec::new();
        for r in &plan.roots {
            r.walk(&mut all);
        }
        assert_eq!(all.len(), streams::STREAMS.len());
        // Only a stream declared so keeps the keys it sent (they cost memory).
        let once: Vec<&str> = all
            .iter()
            .filter(|n| n.tally.sends_each_key_once())
            .map(|n| n.def.name)
            .collect();
        assert_eq!(once, ["external_reference"]);
        for n in all {
            assert_eq!(
                n.children.len(),
                streams::children_of(n.def.name).count(),
                "{}",
                n.def.name
            );
        }
    }

    #[test]
    fn a_child_alone_plans_its_parent_unselected_and_the_request_follows_its_need() {
        let state = State::from_value(json!({"bookmarks": {
            "invoices": {"updated_at": "2025-01-01T00:00:00Z"},
            "invoice_messages": {"updated_at": "2024-06-01T00:00:00Z"}}}))
        .unwrap();
        let plan = Plan::new(
            &selecting(&["invoice_messages"]),
            &state,
            &config(json!({})),
        )
        .unwrap();
        assert_eq!(plan.roots.len(), 1);
        let invoices = &plan.roots[0];
        assert!(!invoices.selected && invoices.output.is_none());
        // Unselected, the parent's own bookmark does not count: only the child's need.
        assert_eq!(invoices.request_since, Some(at("2024-06-01")));
        let messages = find(&plan, "invoice_messages");
        assert_eq!(messages.clock, Clock::Parent);
        assert_eq!(messages.parents_since, Some(at("2024-06-01")));
        assert_eq!(messages.request_since, Some(at("2024-06-01")));

        // Selected too: the older of the two.
        let plan = Plan::new(
            &selecting(&["invoices", "invoice_messages"]),
            &state,
            &config(json!({})),
        )
        .unwrap();
        assert_eq!(plan.roots[0].request_since, Some(at("2024-06-01")));
        // A full child scan needs every invoice.
        let plan = Plan::new(
            &selecting(&["invoices", "invoice_messages"]),
            &state,
            &config(json!({"full_child_scan": true})),
        )
        .unwrap();
        assert_eq!(plan.roots[0].request_since, None);
        assert_eq!(find(&plan, "invoice_messages").parents_since, None);
    }

    #[test]
    fn clocks_and_starts_are_decided_per_stream() {
        let state = State::from_value(json!({"bookmarks": {
            "users": {"updated_at": "2025-01-01T00:00:00Z"},
            "user_project_tasks": {"user_projects_updated_at": "2025-02-01T00:00:00Z"},
            "report_time_team": {"from": "2019-01-01"}}}))
        .unwrap();
        let config = config(json!({"reports_start_date": "2022-03-01"}));
        let plan = Plan::new(
            &selecting(&[
                "users",
                "user_project_tasks",
                "user_teammates",
                "report_time_team",
                "company",
            ]),
            &state,
            &config,
        )
        .unwrap();
        let users = find(&plan, "users");
        assert_eq!(
            (users.clock, users.since),
            (Clock::Own, Some(at("2025-01-01")))
        );
        // user_projects is read for every user (its rows change without the user), so the
        // user list is read whole.
        assert_eq!(users.request_since, None);
        let upt = find(&plan, "user_project_tasks");
        assert_eq!((upt.clock, upt.since), (Clock::Row, Some(at("2025-02-01"))));
        assert!(!find(&plan, "user_projects").selected);
        let teammates = find(&plan, "user_teammates");
        assert_eq!((teammates.clock, teammates.since), (Clock::FullTable, None));
        assert_eq!(teammates.parents_since, None);
        // A bookmark older than the reports' start date starts at the start date.
        let report = find(&plan, "report_time_team");
        assert_eq!(
            (report.clock, report.since),
            (Clock::Window, Some(at("2022-03-01")))
        );
        assert_eq!(report.bookmark.as_deref(), Some("from"));
        let company = find(&plan, "company");
        assert!(company.keeps_record && company.since.is_none());
    }
}
