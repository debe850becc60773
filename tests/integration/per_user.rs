//! The per-user streams read on signs (issue 23): a user's project assignments, rates and
//! teammates are requested only for the users whose data changed, each change reaches the
//! target in the next incremental sync (or, without a sign, in the next sweep), and a sync when
//! nothing changed requests no per-user list at all.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use harvest_sim::{Fault, FaultKind, Trigger};

use crate::util::*;

const PER_USER: [&str; 5] = [
    "user_projects",
    "user_project_tasks",
    "user_billable_rates",
    "user_cost_rates",
    "user_teammates",
];

const ROUTES: [&str; 4] = [
    "GET /v2/users/{id}/project_assignments",
    "GET /v2/users/{id}/billable_rates",
    "GET /v2/users/{id}/cost_rates",
    "GET /v2/users/{id}/teammates",
];

/// What a target holds of the per-user streams after these runs: upserts by key, tombstones
/// delete.
struct Warehouse(BTreeMap<&'static str, BTreeMap<String, Map<String, Value>>>);

impl Warehouse {
    fn new() -> Warehouse {
        Warehouse(PER_USER.iter().map(|s| (*s, BTreeMap::new())).collect())
    }

    fn load(&mut self, run: &Run) {
        for (stream, rows) in &mut self.0 {
            for r in run.records(stream) {
                let key = key_of(stream, r);
                if r.get("_sdc_deleted_at").is_some_and(|v| !v.is_null()) {
                    rows.remove(&key);
                } else {
                    rows.insert(key, r.clone());
                }
            }
        }
    }

    /// Every per-user stream equals the simulator's truth, row by row and column by column.
    fn assert_equal_to_harvest(&self, h: &Harness, what: &str) {
        for (stream, rows) in &self.0 {
            let want = expected(&h.sim, stream);
            assert_checked(want.len(), &format!("{what}: {stream} rows in Harvest"));
            let got: BTreeSet<&String> = rows.keys().collect();
            let missing: Vec<&String> = want.keys().filter(|k| !got.contains(k)).take(5).collect();
            let stale: Vec<&&String> = got
                .iter()
                .filter(|k| !want.contains_key(**k))
                .take(5)
                .collect();
            assert!(
                missing.is_empty() && stale.is_empty(),
                "{what}: {stream}: the target lacks {missing:?} and keeps {stale:?}"
            );
            for (k, rec) in rows {
                for (column, value) in rec {
                    if column != "_sdc_deleted_at" {
                        check_column(stream, column, value, &want[k]);
                    }
                }
            }
        }
    }
}

/// The per-user requests of the last sync, by route.
fn per_user_requests(h: &Harness) -> [u64; 4] {
    let stats = h.sim.requests();
    ROUTES.map(|r| stats.route(r))
}

/// The users a sync read the project assignments of: the `user_id`s of its user_projects rows
/// (every row of a user read is sent), checked against the request count.
fn users_read(h: &Harness, run: &Run) -> BTreeSet<i64> {
    let users: BTreeSet<i64> = run
        .records("user_projects")
        .iter()
        .filter(|r| r.get("_sdc_deleted_at").is_none_or(Value::is_null))
        .filter_map(|r| r["user_id"].as_i64())
        .collect();
    assert!(
        users.len() as u64 <= per_user_requests(h)[0],
        "rows of {} users from {} requests",
        users.len(),
        per_user_requests(h)[0]
    );
    users
}

/// A field (by its path) of the record `id` of a simulator resource.
fn field_of(h: &Harness, resource: &str, id: i64, path: &[&str]) -> i64 {
    let records = h.sim.truth(resource);
    let record = records
        .iter()
        .find(|r| r["id"] == json!(id))
        .unwrap_or_else(|| panic!("{resource} {id} is not in the simulator"));
    path.iter()
        .fold(record, |v, p| &v[*p])
        .as_i64()
        .unwrap_or_else(|| panic!("{resource} {id}: no {path:?}"))
}

/// The users with an active assignment to `project`.
fn assigned_to(h: &Harness, project: i64) -> BTreeSet<i64> {
    h.sim
        .truth("user_assignments")
        .iter()
        .filter(|a| a["project"]["id"] == json!(project) && a["is_active"] == json!(true))
        .filter_map(|a| a["user"]["id"].as_i64())
        .collect()
}

fn user_of_assignment(h: &Harness, id: i64) -> i64 {
    field_of(h, "user_assignments", id, &["user", "id"])
}

struct Syncs<'a> {
    h: &'a Harness,
    config: Value,
    state: Value,
    target: Warehouse,
}

impl Syncs<'_> {
    /// An incremental sync from the last STATE, loaded into the target. It starts once the
    /// second of the last change has ended: a change in the second a read begins is read
    /// again by the next sync too (which would blur what each sync is checked for).
    fn sync(&mut self, config: &Value) -> Run {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        self.h.sim.reset_requests();
        let run = self.h.sync(config, Some(&no_reports()), Some(&self.state));
        run.assert_ok();
        self.state = run.last_state();
        self.target.load(&run);
        run
    }

    fn incremental(&mut self) -> Run {
        let config = self.config.clone();
        self.sync(&config)
    }
}

#[test]
fn each_change_of_a_users_lists_reaches_the_target_reading_only_that_user() {
    let h = Harness::tiny();
    let config = h.config();
    let first = h.sync(&config, Some(&no_reports()), None);
    first.assert_ok();
    let users = h.sim.truth("users").len() as u64;
    assert_eq!(
        per_user_requests(&h)[0],
        users,
        "the first sync reads every user"
    );
    let mut s = Syncs {
        h: &h,
        config,
        state: first.last_state(),
        target: Warehouse::new(),
    };
    s.target.load(&first);
    s.target.assert_equal_to_harvest(&h, "after the first sync");

    // Nothing changed: no per-user request at all, nothing sent.
    let quiet = s.incremental();
    assert_eq!(per_user_requests(&h), [0; 4], "nothing changed");
    for stream in PER_USER {
        assert!(
            quiet.records(stream).is_empty(),
            "{stream}: sent with nothing changed"
        );
    }

    // A user's assignment edited: that user alone.
    let edited = h.sim.mutate("user_assignments", 1, 0).updated;
    let user = user_of_assignment(&h, edited[0]);
    let run = s.incremental();
    assert_eq!(
        users_read(&h, &run),
        BTreeSet::from([user]),
        "an assignment edited"
    );
    assert_eq!(per_user_requests(&h), [1, 0, 0, 0], "an assignment edited");
    s.target.assert_equal_to_harvest(&h, "an assignment edited");

    // An assignment created: its user alone.
    let created = h.sim.mutate("user_assignments", 0, 1).created;
    let user = user_of_assignment(&h, created[0]);
    let run = s.incremental();
    assert_eq!(
        users_read(&h, &run),
        BTreeSet::from([user]),
        "an assignment created"
    );
    assert_eq!(per_user_requests(&h)[0], 1, "an assignment created");
    s.target
        .assert_equal_to_harvest(&h, "an assignment created");

    // An assignment deleted: told by the user assignments' list, no user read.
    let gone = h.sim.deletable("user_assignments", 1);
    h.sim.delete("user_assignments", &gone);
    let run = s.incremental();
    assert_eq!(per_user_requests(&h), [0; 4], "an assignment deleted");
    let tombstones: Vec<&Map<String, Value>> = run
        .records("user_projects")
        .into_iter()
        .filter(|r| r.get("_sdc_deleted_at").is_some_and(|v| !v.is_null()))
        .collect();
    assert_eq!(tombstones.len(), 1, "an assignment deleted: one tombstone");
    assert_eq!(tombstones[0]["id"], json!(gone[0]));
    s.target
        .assert_equal_to_harvest(&h, "an assignment deleted");

    // A task assignment of a project changed: the users assigned to that project.
    let ta = h.sim.mutate("task_assignments", 1, 0).updated[0];
    let project = field_of(&h, "task_assignments", ta, &["project", "id"]);
    let assigned = assigned_to(&h, project);
    let run = s.incremental();
    assert_eq!(
        users_read(&h, &run),
        *nonempty_set(&assigned, "users on the task assignment's project"),
        "a task assignment changed"
    );
    assert_eq!(per_user_requests(&h)[0], assigned.len() as u64);
    let rows: Vec<&Map<String, Value>> = run
        .records("user_project_tasks")
        .into_iter()
        .filter(|r| r["project_task_id"] == json!(ta))
        .collect();
    assert_eq!(
        rows.len(),
        assigned.len(),
        "a user_project_task per user on the project"
    );
    s.target
        .assert_equal_to_harvest(&h, "a task assignment changed");

    // A new current billable rate: its user's rates, and that user.
    let rate = h.sim.mutate("billable_rates", 1, 0).updated[0];
    let user = field_of(&h, "billable_rates", rate, &["user_id"]);
    let run = s.incremental();
    let rates: Vec<i64> = run
        .records("user_billable_rates")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert!(rates.contains(&rate), "the new rate {rate} is sent");
    assert_eq!(
        &per_user_requests(&h)[..3],
        &[1, 1, 1],
        "a new rate: that user alone"
    );
    let sent_user = run.records("users");
    assert_eq!(sent_user.len(), 1);
    assert_eq!(sent_user[0]["id"], json!(user));
    s.target.assert_equal_to_harvest(&h, "a new rate");

    // A user changed: that user's lists.
    let changed = h.sim.mutate("users", 1, 0).updated[0];
    let run = s.incremental();
    let sent: Vec<&Value> = run.records("users").iter().map(|u| &u["id"]).collect();
    assert_eq!(sent, [&json!(changed)], "a user changed: that user is sent");
    assert!(users_read(&h, &run).is_subset(&BTreeSet::from([changed])));
    assert_eq!(
        &per_user_requests(&h)[..3],
        &[1, 1, 1],
        "a user changed: their lists"
    );
    s.target.assert_equal_to_harvest(&h, "a user changed");

    // A project changed (its client, say): the users assigned to it.
    let project = h.sim.mutate("projects", 1, 0).updated[0];
    let assigned = assigned_to(&h, project);
    s.incremental();
    assert_eq!(
        per_user_requests(&h)[0],
        nonempty_set(&assigned, "users on the changed project").len() as u64,
        "a project changed: its users"
    );
    s.target.assert_equal_to_harvest(&h, "a project changed");

    // A teammate renamed: their managers' teammates, no one else's.
    let renamed = h.sim.mutate("teammates", 1, 0).updated[0];
    let managers: BTreeSet<i64> = h
        .sim
        .truth("teammates")
        .iter()
        .filter(|t| t["id"] == json!(renamed))
        .filter_map(|t| t["user_id"].as_i64())
        .collect();
    let manager_changed = managers.contains(&renamed) as u64;
    s.incremental();
    assert_eq!(
        per_user_requests(&h)[3],
        nonempty_set(&managers, "managers of the renamed teammate").len() as u64 + manager_changed,
        "a teammate renamed: their managers"
    );
    s.target.assert_equal_to_harvest(&h, "a teammate renamed");

    // A new teammate link moves no user: the next sweep brings it.
    h.sim.mutate("teammates", 0, 1);
    s.incremental();
    assert_eq!(per_user_requests(&h), [0; 4], "a teammate link added");
    let sweep = json!({"deletion_full_scan_days": 0});
    let mut c = s.config.clone();
    c.as_object_mut()
        .unwrap()
        .extend(sweep.as_object().unwrap().clone());
    s.sync(&c);
    let stats = per_user_requests(&h);
    assert_eq!(stats[0], users, "a sweep reads every user");
    s.target.assert_equal_to_harvest(&h, "after the sweep");
}

fn nonempty_set<'a>(set: &'a BTreeSet<i64>, what: &str) -> &'a BTreeSet<i64> {
    assert!(
        !set.is_empty(),
        "{what}: none, the test would prove nothing"
    );
    set
}

#[test]
fn full_child_scan_no_deletion_detection_and_a_failed_sign_list_read_every_user() {
    let h = Harness::tiny();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    let users = h.sim.truth("users").len() as u64;
    let mut config = h.config();
    config["full_child_scan"] = json!(true);
    h.sim.reset_requests();
    let run = h.sync(&config, Some(&no_reports()), Some(&first.last_state()));
    run.assert_ok();
    assert_eq!(per_user_requests(&h)[0], users, "full_child_scan");
    // Every row of every user is sent again.
    assert_count_matches_truth(&run, &h.sim, "user_projects");
    // Without deletion detection there is no memory for the signs: every user, every sync.
    let mut config = h.config();
    config["detect_deletions"] = json!(false);
    h.sim.reset_requests();
    let run = h.sync(&config, Some(&no_reports()), Some(&first.last_state()));
    run.assert_ok();
    assert_eq!(per_user_requests(&h)[0], users, "detect_deletions: false");
    // A sign list that cannot be read (a role without access to /user_assignments): every
    // user, and the sync goes on.
    h.sim.add_fault(Fault {
        path_prefix: "/v2/user_assignments".into(),
        kind: FaultKind::Status(403),
        trigger: Trigger::FirstN(100),
    });
    h.sim.reset_requests();
    let run = h.sync(
        &h.config(),
        Some(&catalog_selecting(&["user_projects"])),
        Some(&first.last_state()),
    );
    h.sim.clear_faults();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(per_user_requests(&h)[0], users, "a sign list refused");
    assert_count_matches_truth(&run, &h.sim, "user_projects");
}

#[test]
fn the_bookmarks_last_second_is_not_read_again() {
    let h = Harness::tiny();
    let first = h.sync(&h.config(), Some(&no_reports()), None);
    first.assert_ok();
    let touched = h.sim.mutate("invoices", 2, 0).updated;
    // The second of the change ends before the next sync reads it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = h.sync(&h.config(), Some(&no_reports()), Some(&first.last_state()));
    second.assert_ok();
    let sent: BTreeSet<i64> = second
        .records("invoices")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    for id in nonempty(&touched, "invoices changed") {
        assert!(sent.contains(id), "changed invoice {id} not sent");
    }
    h.sim.reset_requests();
    let third = h.sync(&h.config(), Some(&no_reports()), Some(&second.last_state()));
    third.assert_ok();
    assert!(
        third.records("invoices").is_empty(),
        "invoices of the bookmark's second sent again: {:?}",
        third
            .records("invoices")
            .iter()
            .map(|r| &r["id"])
            .collect::<Vec<_>>()
    );
    let stats = h.sim.requests();
    assert_eq!(
        stats.route("GET /v2/invoices/{id}/messages")
            + stats.route("GET /v2/invoices/{id}/payments"),
        0,
        "children of the bookmark's second requested again"
    );
}

#[test]
fn the_rows_made_of_assignments_alone_are_read_on_signs_too() {
    // user_project_tasks selected without user_projects: the assignments are read only to make
    // its rows, and keep the bookmark the signs are told from.
    let h = Harness::tiny();
    let catalog = catalog_selecting(&["user_project_tasks"]);
    let first = h.sync(&h.config(), Some(&catalog), None);
    first.assert_ok();
    assert_count_matches_truth(&first, &h.sim, "user_project_tasks");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    h.sim.reset_requests();
    let second = h.sync(&h.config(), Some(&catalog), Some(&first.last_state()));
    second.assert_ok();
    assert_eq!(per_user_requests(&h), [0; 4], "nothing changed");
    let ta = h.sim.mutate("task_assignments", 1, 0).updated[0];
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let third = h.sync(&h.config(), Some(&catalog), Some(&second.last_state()));
    third.assert_ok();
    let rows = third
        .records("user_project_tasks")
        .into_iter()
        .filter(|r| r["project_task_id"] == json!(ta))
        .count();
    assert_checked(rows, "rows of the changed task assignment");
}
