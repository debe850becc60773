//! Deletions, end to end: records deleted in the simulator (with Harvest's cascades) reach
//! what a target loads as tombstones, exactly those and nothing else, whatever else happens
//! meanwhile (archiving, edits, a signal, a list that shifts while it is read).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harvest_sim::{Fault, FaultKind, Trigger};
use serde_json::{json, Map, Value};

use crate::util::*;

type Keys = BTreeMap<&'static str, BTreeSet<String>>;

/// The streams that report deletions and the keys Harvest has now, computed from the
/// simulator's ground truth.
fn keys_now(sim: &Sim) -> Keys {
    streams_where(|d| d.reports_deletions())
        .into_iter()
        .map(|s| (s, expected(sim, s).into_keys().collect()))
        .collect()
}

fn is_tombstone(r: &Map<String, Value>) -> bool {
    r.get(streams::DELETED_AT).is_some_and(|v| !v.is_null())
}

/// The keys a run reported deleted, by stream.
fn tombstones(run: &Run) -> Keys {
    let mut out = Keys::new();
    for s in streams_where(|d| d.reports_deletions()) {
        let keys: BTreeSet<String> = run
            .records(s)
            .into_iter()
            .filter(|r| is_tombstone(r))
            .map(|r| {
                assert!(
                    r.keys().all(|k| k == streams::DELETED_AT
                        || streams::find(s)
                            .unwrap()
                            .key_properties
                            .contains(&k.as_str())),
                    "{s}: a tombstone carries the key and {} only: {r:?}",
                    streams::DELETED_AT
                );
                key_of(s, r)
            })
            .collect();
        out.insert(s, keys);
    }
    out
}

/// What an upserting target holds after loading these runs in order: a tombstone removes the
/// row it names (a soft delete, for this comparison).
fn warehouse(runs: &[&Run]) -> Keys {
    let mut out = Keys::new();
    for s in streams_where(|d| d.reports_deletions()) {
        let rows = out.entry(s).or_default();
        for run in runs {
            for r in run.records(s) {
                let k = key_of(s, r);
                if is_tombstone(r) {
                    rows.remove(&k);
                } else {
                    rows.insert(k);
                }
            }
        }
    }
    out
}

/// Asserts that `run` reported no deletion in any of the streams that report them.
fn assert_no_tombstones(run: &Run, why: &str) {
    let reported = tombstones(run);
    assert!(!reported.is_empty(), "no stream reports deletions");
    for (s, keys) in reported {
        assert!(keys.is_empty(), "{s}: {keys:?} reported deleted, {why}");
    }
}

fn minus(a: &Keys, b: &Keys) -> Keys {
    a.iter()
        .map(|(s, k)| (*s, k.difference(&b[s]).cloned().collect()))
        .collect()
}

fn with(config: &Value, extra: Value) -> Value {
    let mut c = config.clone();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Asserts that no stream was reported deleted beyond `deleted`.
fn assert_no_false_deletion(reported: &Keys, deleted: &Keys, what: &str) {
    assert!(!reported.is_empty(), "{what}: no stream reports deletions");
    for (s, keys) in reported {
        let wrong: Vec<&String> = keys.difference(&deleted[s]).take(5).collect();
        assert!(
            wrong.is_empty(),
            "{what}: {s} reported deleted but exists: {wrong:?}"
        );
    }
}

fn assert_equal_to_harvest(got: &Keys, now: &Keys, what: &str) {
    assert_checked(
        now.values().map(BTreeSet::len).sum(),
        &format!("{what}: rows in Harvest"),
    );
    for (s, want) in now {
        let stale: Vec<&String> = got[s].difference(want).take(5).collect();
        let missing: Vec<&String> = want.difference(&got[s]).take(5).collect();
        assert!(
            stale.is_empty() && missing.is_empty(),
            "{what}: {s}: the target keeps deleted {stale:?} and lacks {missing:?}"
        );
    }
}

/// Deletes something of every kind Harvest lets one delete, cascades included; returns the
/// ids deleted directly, by resource.
fn delete_one_of_everything(sim: &Sim) -> BTreeMap<&'static str, Vec<i64>> {
    let mut direct = BTreeMap::new();
    for (res, n) in [
        // First the records that take others with them: a project's time entries, expenses
        // and assignments, an invoice's messages, payments and line items; then records of
        // the parents that stay.
        ("projects", 1),
        ("invoices", 1),
        ("estimates", 1),
        ("time_entries", 2),
        ("expenses", 1),
        ("invoice_messages", 1),
        ("invoice_payments", 1),
        ("estimate_messages", 1),
        ("invoice_line_items", 1),
        ("estimate_line_items", 1),
        ("contacts", 1),
        ("roles", 1),
        ("teammates", 1),
        ("task_assignments", 1),
        ("user_assignments", 1),
        ("users", 1),
        ("clients", 1),
        ("tasks", 1),
        ("expense_categories", 1),
        ("invoice_item_categories", 1),
        ("estimate_item_categories", 1),
    ] {
        let ids = sim.deletable(res, n);
        assert!(!ids.is_empty(), "the simulator has no {res} one may delete");
        sim.delete(res, &ids);
        direct.insert(res, ids);
    }
    direct
}

/// A small account with records one may delete: a user, a client, a task and an expense
/// category with nothing tracked to them.
fn account() -> Harness {
    let h = Harness::tiny();
    for res in ["users", "clients", "tasks", "expense_categories"] {
        h.sim.mutate(res, 0, 1);
    }
    h
}

#[test]
fn every_deletion_reaches_the_target_once_and_nothing_else_does() {
    let h = account();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    assert_no_tombstones(&first, "on the first sync");
    let before = keys_now(&h.sim);
    let direct = delete_one_of_everything(&h.sim);
    let after = keys_now(&h.sim);
    let deleted = minus(&before, &after);
    let changed: Vec<&str> = deleted
        .iter()
        .filter(|(_, k)| !k.is_empty())
        .map(|(s, _)| *s)
        .collect();
    // Every stream but those this account has nothing of to delete (the deleted user had no
    // rates; the deleted time entries no external reference).
    let untouched = [
        "user_billable_rates",
        "user_cost_rates",
        "external_reference",
        "time_entry_external_reference",
    ];
    let touched = streams_where(|d| d.reports_deletions() && !untouched.contains(&d.name));
    for s in nonempty(&touched, "streams with deletions") {
        assert!(
            changed.contains(s),
            "nothing of {s} was deleted: the test proves nothing for it"
        );
    }

    // An incremental sync with the defaults: the small lists, the time entries and expenses
    // dated in the window, the children of changed parents and every cascade.
    let second = h.sync(&h.config(), Some(&no_reports()), Some(&first.last_state()));
    second.assert_ok();
    let reported = tombstones(&second);
    assert_no_false_deletion(&reported, &deleted, "incremental sync");
    for s in [
        "clients",
        "contacts",
        "tasks",
        "projects",
        "project_tasks",
        "project_users",
        "roles",
        "user_roles",
        "users",
        "user_projects",
        "user_project_tasks",
        "user_billable_rates",
        "user_cost_rates",
        "expense_categories",
        "invoice_item_categories",
        "estimate_item_categories",
    ] {
        let missed: Vec<&String> = deleted[s].difference(&reported[s]).take(5).collect();
        assert!(
            missed.is_empty(),
            "incremental sync: {s} deletions not reported: {missed:?}"
        );
    }
    // A message or payment deleted changes its invoice or estimate, whose children are read
    // again (those of a deleted invoice or estimate go with it at the sweep).
    for (res, stream) in [
        ("invoice_messages", "invoice_messages"),
        ("invoice_payments", "invoice_payments"),
        ("estimate_messages", "estimate_messages"),
    ] {
        for id in &direct[res] {
            assert!(
                reported[stream].contains(&id.to_string()),
                "incremental sync: {stream} {id} not reported"
            );
        }
    }

    // A full sweep finds the rest; the target then equals Harvest, and each deletion was
    // reported once.
    let sweep = with(&h.config(), json!({"deletion_full_scan_days": 0}));
    let third = h.sync(&sweep, Some(&no_reports()), Some(&second.last_state()));
    third.assert_ok();
    let reported_later = tombstones(&third);
    assert_no_false_deletion(&reported_later, &deleted, "sweep");
    // A teammate link removed leaves every user's `updated_at` as it was: no sign, the sweep
    // finds it (README, "Per-user streams").
    let links: Vec<&String> = deleted["user_teammates"].iter().collect();
    for link in nonempty(&links, "teammate links removed") {
        assert!(
            reported_later["user_teammates"].contains(*link),
            "sweep: user_teammates {link} not reported"
        );
    }
    for (s, keys) in &reported {
        let twice: Vec<&String> = keys.intersection(&reported_later[s]).collect();
        assert!(twice.is_empty(), "{s}: {twice:?} reported deleted twice");
    }
    assert_equal_to_harvest(
        &warehouse(&[&first, &second, &third]),
        &after,
        "after the sweep",
    );
    third.assert_valid_singer();

    // Nothing more to report.
    let fourth = h.sync(&sweep, Some(&no_reports()), Some(&third.last_state()));
    fourth.assert_ok();
    assert_no_tombstones(&fourth, "all were reported before");
}

#[test]
fn archived_edited_and_new_records_are_never_reported_deleted() {
    let h = account();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    // Archived: still in Harvest (a user's project assignments list active ones only).
    for res in [
        "user_assignments",
        "projects",
        "clients",
        "tasks",
        "users",
        "task_assignments",
    ] {
        let ids = h.sim.deletable(res, 1);
        h.sim.archive(res, &ids);
    }
    for res in [
        "time_entries",
        "expenses",
        "invoices",
        "estimates",
        "invoice_messages",
        "invoice_payments",
        "contacts",
        "roles",
        "project_assignments",
    ] {
        h.sim.mutate(res, 3, 2);
    }
    let second = h.sync(&h.config(), Some(&no_reports()), Some(&first.last_state()));
    second.assert_ok();
    let sweep = with(&h.config(), json!({"deletion_full_scan_days": 0}));
    let third = h.sync(&sweep, Some(&no_reports()), Some(&second.last_state()));
    third.assert_ok();
    for run in [&second, &third] {
        assert_no_tombstones(run, "none was");
    }
    // A user's project assignments list active ones only: an archived one stays in the
    // target as last seen, though Harvest's list no longer shows it.
    let mut now = keys_now(&h.sim);
    let mut got = warehouse(&[&first, &second, &third]);
    for s in ["user_projects", "user_project_tasks"] {
        let listed = now.remove(s).unwrap();
        let kept = got.remove(s).unwrap();
        let lost: Vec<&String> = listed.difference(&kept).take(5).collect();
        assert!(lost.is_empty(), "{s}: the target lacks {lost:?}");
    }
    assert_equal_to_harvest(&got, &now, "no deletion");
}

#[test]
fn a_deletion_between_two_page_reads_skips_no_record() {
    let h = Harness::new(SimConfig::fast(Size::Small));
    let entries = h.sim.truth("time_entries");
    assert!(entries.len() > 3 * 2000, "the account needs several pages");
    // Five records of page 1 go just before page 2 is served: the next pages move up by
    // five, and the first five records of page 2 would land on page 1, already read.
    let ids: Vec<i64> = entries[10..15]
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    h.sim.add_fault(Fault {
        path_prefix: "/v2/time_entries".into(),
        kind: FaultKind::Delete {
            resource: "time_entries".into(),
            ids,
        },
        trigger: Trigger::Nth(2),
    });
    let run = h.sync(
        &h.config(),
        Some(&catalog_selecting(&["time_entries"])),
        None,
    );
    run.assert_ok();
    assert!(
        run.stderr.contains("while /time_entries was read"),
        "the shift was not noticed:\n{}",
        run.stderr
    );
    let got: BTreeSet<String> = run
        .records("time_entries")
        .into_iter()
        .map(|r| key_of("time_entries", r))
        .collect();
    let want = expected(&h.sim, "time_entries");
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains(*k)).take(5).collect();
    assert!(missing.is_empty(), "skipped by the shift: {missing:?}");
}

#[test]
fn a_sync_stopped_in_the_middle_of_a_sweep_reports_no_false_deletion() {
    let h = account();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    let before = keys_now(&h.sim);
    delete_one_of_everything(&h.sim);
    let after = keys_now(&h.sim);
    let deleted = minus(&before, &after);
    h.sim
        .set_latency(Duration::from_millis(15), Duration::from_millis(10), None);
    let sweep = with(&h.config(), json!({"deletion_full_scan_days": 0}));
    // How long the whole sweep takes (a sync changes nothing in Harvest).
    let t0 = std::time::Instant::now();
    h.sync(&sweep, Some(&no_reports()), Some(&first.last_state()))
        .assert_ok();
    let whole = t0.elapsed();
    let mut stopped = 0;
    // Several points, so that a loaded machine (tests run in parallel) still stops a few.
    for share in [0.1, 0.25, 0.4, 0.55, 0.7, 0.85] {
        let delay = whole.mul_f64(share);
        let delay_ms = delay.as_millis();
        let second = interrupted(&h, &sweep, Some(&first.last_state()), "TERM", delay);
        // Finished before the signal, or killed before it could listen for it (its first
        // milliseconds: nothing written).
        if second.code == Some(0) || second.code.is_none() {
            continue;
        }
        stopped += 1;
        // Stopped before it decided, nothing is reported; stopped while it reported, what
        // it reported is deleted; the STATE keeps what the tap knew of the rest.
        assert_no_false_deletion(
            &tombstones(&second),
            &deleted,
            &format!("sweep stopped after {delay_ms} ms"),
        );
        let state = second.last_state();
        let third = h.sync(&sweep, Some(&no_reports()), Some(&state));
        third.assert_ok();
        assert_no_false_deletion(&tombstones(&third), &deleted, "the sweep after the signal");
        assert_equal_to_harvest(
            &warehouse(&[&first, &second, &third]),
            &after,
            "after the signal",
        );
    }
    assert!(stopped >= 3, "only {stopped} sweeps were interrupted");
}

#[test]
fn a_large_memory_is_written_in_the_last_state_only_and_a_state_without_it_rebuilds_it() {
    let h = Harness::new(SimConfig::fast(Size::Small));
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    let states: Vec<&Value> = first
        .messages
        .iter()
        .filter(|m| m["type"] == "STATE")
        .map(|m| &m["value"])
        .collect();
    assert!(states.len() > 1, "one STATE: none before the last to check");
    let last = states.last().unwrap();
    let memory = &last["deletions"]["time_entries"];
    assert_eq!(memory["count"], json!(h.sim.truth("time_entries").len()));
    let bytes = memory.to_string().len();
    assert!(bytes < 12_000 * 6, "{bytes} bytes for 12,000 time entries");
    for s in &states[..states.len() - 1] {
        assert!(
            s["deletions"].get("time_entries").is_none(),
            "a large memory is repeated in a STATE before the last"
        );
    }
    // A state without the memory (singer-io's, or one cut short): nothing is reported, and
    // the sweep it triggers rebuilds the memory for what follows.
    let mut bare: Value = (*last).clone();
    bare.as_object_mut().unwrap().remove("deletions");
    let before = keys_now(&h.sim);
    h.sim
        .delete("time_entries", &h.sim.deletable("time_entries", 3));
    let second = h.sync(&h.config(), Some(&no_reports()), Some(&bare));
    second.assert_ok();
    assert_no_tombstones(&second, "the state had no memory to compare with");
    let middle = keys_now(&h.sim);
    h.sim
        .delete("time_entries", &h.sim.deletable("time_entries", 3));
    h.sim.delete("contacts", &h.sim.deletable("contacts", 2));
    let third = h.sync(&h.config(), Some(&no_reports()), Some(&second.last_state()));
    third.assert_ok();
    let reported = tombstones(&third);
    let deleted = minus(&middle, &keys_now(&h.sim));
    assert_no_false_deletion(&reported, &deleted, "after the rebuild");
    assert_checked(deleted["contacts"].len(), "contacts deleted");
    assert_eq!(reported["contacts"], deleted["contacts"]);
    assert_eq!(minus(&before, &middle)["time_entries"].len(), 3);
}

#[test]
fn streams_read_in_full_are_sent_as_a_version_and_activated_after_their_last_record() {
    let h = account();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    let before = keys_now(&h.sim);
    delete_one_of_everything(&h.sim);
    let deleted = minus(&before, &keys_now(&h.sim));
    let config = with(
        &h.config(),
        json!({"deletion_full_scan_days": 0, "emit_activate_version_messages": true}),
    );
    let run = h.sync(&config, Some(&no_reports()), Some(&first.last_state()));
    run.assert_ok();
    let reported = tombstones(&run);
    // Streams of each kind checked, and deletions among the tombstones compared.
    let (mut versioned, mut by_tombstone, mut tombstoned) = (0, 0, 0);
    for s in streams_where(|d| d.reports_deletions()) {
        let activations: Vec<usize> = run
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m["type"] == "ACTIVATE_VERSION" && m["stream"] == s)
            .map(|(i, _)| i)
            .collect();
        let records: Vec<(usize, &Value)> = run
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m["type"] == "RECORD" && m["stream"] == s)
            .collect();
        // Read under changed parents only, or listed while active only (and what is made
        // from those): tombstones, no version.
        let never_whole = |d: &StreamDef| {
            matches!(
                d.source,
                Source::Child {
                    fan_out: streams::FanOut::ChangedParents,
                    ..
                }
            ) || matches!(d.deletions.confirm, streams::Confirm::SameAs(_))
        };
        let def = streams::find(s).unwrap();
        let by_parent = never_whole(def)
            || def
                .parent()
                .and_then(streams::find)
                .is_some_and(never_whole);
        if by_parent {
            assert!(
                activations.is_empty(),
                "{s}: activated, but it is not read in full"
            );
            assert_eq!(reported[s], deleted[s], "{s}: tombstones");
            by_tombstone += 1;
            tombstoned += deleted[s].len();
            continue;
        }
        assert_eq!(activations.len(), 1, "{s}: one ACTIVATE_VERSION");
        let version = &run.messages[activations[0]]["version"];
        assert!(version.is_i64(), "{s}: version {version}");
        assert!(
            reported[s].is_empty(),
            "{s}: a versioned stream sends no tombstones"
        );
        // The version holds every record Harvest has, each once, before the activation.
        let sent: BTreeSet<String> = records
            .iter()
            .map(|(i, m)| {
                assert!(
                    *i < activations[0],
                    "{s}: a record after its ACTIVATE_VERSION"
                );
                assert_eq!(&m["version"], version, "{s}: a record of another version");
                key_of(s, m["record"].as_object().unwrap())
            })
            .collect();
        assert_checked(sent.len(), &format!("{s}: records of the version"));
        assert_eq!(
            sent,
            expected(&h.sim, s).into_keys().collect(),
            "{s}: the version"
        );
        versioned += 1;
    }
    assert_checked(versioned, "streams sent as a version");
    assert_checked(by_tombstone, "streams sent with tombstones");
    assert_checked(tombstoned, "deletions sent as tombstones");
}

#[test]
fn a_record_moved_out_of_the_window_or_hidden_by_a_403_is_never_reported_deleted() {
    let h = account();
    let today = chrono::Utc::now().date_naive();
    let days = |n: i64| today - chrono::Duration::days(n);
    let moved = h.sim.deletable("time_entries", 2);
    let spent = h.sim.deletable("expenses", 1);
    h.sim.redate("time_entries", &moved, days(3));
    h.sim.redate("expenses", &spent, days(3));
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    // Edited out of the deletion window (30 days): the window read no longer shows them.
    h.sim.redate("time_entries", &moved, days(90));
    h.sim.redate("expenses", &spent, days(400));
    let second = h.sync(&h.config(), Some(&no_reports()), Some(&first.last_state()));
    second.assert_ok();
    assert_no_tombstones(&second, "they moved out of the window");
    // This token may no longer read time entries: skipped, nothing decided for them.
    h.sim.add_fault(Fault {
        path_prefix: "/v2/time_entries".into(),
        kind: FaultKind::Status(403),
        trigger: Trigger::Fraction(1.0),
    });
    let sweep = with(&h.config(), json!({"deletion_full_scan_days": 0}));
    let third = h.sync(&sweep, Some(&no_reports()), Some(&second.last_state()));
    third.assert_ok();
    assert!(
        third.stderr.contains("stream time_entries skipped"),
        "{}",
        third.stderr
    );
    assert_no_tombstones(&third, "behind a 403");
    h.sim.clear_faults();
    let fourth = h.sync(&sweep, Some(&no_reports()), Some(&third.last_state()));
    fourth.assert_ok();
    assert_no_tombstones(&fourth, "none was");
    assert_equal_to_harvest(
        &warehouse(&[&first, &second, &third, &fourth]),
        &keys_now(&h.sim),
        "after the 403",
    );
}
