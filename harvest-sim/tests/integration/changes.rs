//! Which change moves which `updated_at`, and what the per-user lists
//! (`/users/{id}/project_assignments`, `billable_rates`, `cost_rates`, `teammates`) show after
//! it: what a client relies on to read those lists only for users with a sign of change.

use std::collections::BTreeSet;

use crate::common::*;
use chrono::NaiveDate;
use harvest_sim::{Sim, SimConfig, Size};
use serde_json::{json, Value};

fn tiny() -> Sim {
    Sim::start(SimConfig::fast(Size::Tiny)).expect("start")
}

/// Every record of a list (all pages), `path` relative to /v2.
fn all(sim: &Sim, path: &str, key: &str) -> Vec<Value> {
    records(&walk(&format!("{}{path}", sim.base_url())), key)
}

fn find(list: &[Value], id: i64) -> Option<&Value> {
    list.iter().find(|x| x["id"] == id)
}

fn by_id(list: &[Value], id: i64) -> &Value {
    find(list, id).unwrap_or_else(|| panic!("record {id} missing"))
}

fn id_of(v: &Value) -> i64 {
    v.as_i64().expect("an id")
}

/// The day before a `YYYY-MM-DD` date, in the same form.
fn day_before(date: &Value) -> String {
    let d = NaiveDate::parse_from_str(date.as_str().expect("a date"), "%Y-%m-%d").unwrap();
    d.pred_opt().unwrap().format("%Y-%m-%d").to_string()
}

/// `POST /__control/delete` of one record: the answer's status.
fn delete_over_http(sim: &Sim, resource: &str, id: i64) -> u16 {
    client()
        .post(format!("{}/delete", sim.control_url()))
        .json(&json!({"resource": resource, "ids": [id]}))
        .send()
        .expect("request")
        .status()
        .as_u16()
}

/// Creates one record of `resource`, checks that no user moved, and returns its id.
fn create_one_moving_no_user(sim: &Sim, resource: &str) -> i64 {
    let users = sim.truth("users");
    let created = sim.mutate(resource, 0, 1).created;
    assert_eq!(created.len(), 1, "{resource}");
    assert_eq!(sim.truth("users"), users, "a new {resource} moved a user");
    created[0]
}

/// A user's project assignments as `/users/{id}/project_assignments` lists them (all pages).
fn project_assignments(sim: &Sim, user: &Value) -> Vec<Value> {
    all(
        sim,
        &format!("/users/{user}/project_assignments"),
        "project_assignments",
    )
}

/// Reads `/users` and every `/users/{id}`, so their pages are in the page cache.
fn warm_user_pages(sim: &Sim) {
    for u in all(sim, "/users", "users") {
        get_json(sim, &format!("/users/{}", u["id"]));
    }
}

#[test]
fn a_new_rate_is_the_users_current_rate_and_moves_that_user_alone() {
    let sim = tiny();
    for (res, field) in [
        ("billable_rates", "default_hourly_rate"),
        ("cost_rates", "cost_rate"),
    ] {
        for (update, create) in [(2, 0), (0, 1)] {
            warm_user_pages(&sim);
            let users_before = sim.truth("users");
            let rates_before = sim.truth(res);
            let r = sim.mutate(res, update, create);
            // Rates are not edited in Harvest, only added: "updating" adds new ones.
            let new: Vec<i64> = r.updated.iter().chain(&r.created).copied().collect();
            assert_eq!(r.updated.len(), update, "{res}");
            assert_eq!(r.created.len(), create, "{res}");
            let rates = sim.truth(res);
            for old in &rates_before {
                let now = by_id(&rates, id_of(&old["id"]));
                for f in ["amount", "start_date", "created_at"] {
                    assert_eq!(now[f], old[f], "{res} {}: {f} edited", old["id"]);
                }
            }
            let users_after = sim.truth("users");
            let listed = all(&sim, "/users", "users");
            let mut owners = BTreeSet::new();
            for &id in &new {
                assert!(find(&rates_before, id).is_none(), "{res} {id} is not new");
                let rate = by_id(&rates, id);
                let uid = id_of(&rate["user_id"]);
                owners.insert(uid);
                let created = rate["created_at"].as_str().unwrap();
                assert_eq!(rate["updated_at"], created);
                assert_eq!(rate["start_date"], created[..10], "{res} {id} starts today");
                assert!(rate["end_date"].is_null());
                // The user's previous current rate now ends the day before (and moved).
                let previous: Vec<&Value> = rates_before
                    .iter()
                    .filter(|x| x["user_id"] == uid && x["end_date"].is_null())
                    .collect();
                assert!(previous.len() <= 1);
                if let Some(p) = previous.first() {
                    let p = by_id(&rates, id_of(&p["id"]));
                    assert_eq!(p["end_date"], day_before(&rate["start_date"]), "{res}");
                    assert_eq!(p["updated_at"], created);
                }
                // The user's list ends with it, the only open-ended rate.
                let list = all(&sim, &format!("/users/{uid}/{res}"), res);
                assert_eq!(list.last().unwrap()["id"], id, "{res} of user {uid}");
                assert_eq!(list.iter().filter(|x| x["end_date"].is_null()).count(), 1);
                // The user shows the new amount and moved: single object, list, truth.
                let single = get_json(&sim, &format!("/users/{uid}"));
                for u in [&single, by_id(&listed, uid), by_id(&users_after, uid)] {
                    assert_eq!(
                        u[field].as_f64(),
                        rate["amount"].as_f64(),
                        "{res} user {uid}"
                    );
                    assert_eq!(u["updated_at"], created, "{res} user {uid}");
                }
            }
            assert_eq!(owners.len(), new.len(), "{res}: one new rate per user");
            for u in &users_before {
                if !owners.contains(&id_of(&u["id"])) {
                    assert_eq!(by_id(&users_after, id_of(&u["id"])), u, "{res}: moved");
                }
            }
        }
    }
    // Harvest has no DELETE for rates.
    let rate = id_of(&sim.truth("billable_rates")[0]["id"]);
    assert_eq!(delete_over_http(&sim, "billable_rates", rate), 400);
}

#[test]
fn a_second_rate_the_same_day_replaces_the_first() {
    let sim = tiny();
    let users = sim.truth("users").len();
    // New rates go to users without one dated today first: one each.
    let first = sim.mutate("billable_rates", users, 0).updated;
    assert_eq!(first.len(), users);
    let rates = sim.truth("billable_rates");
    let owners: BTreeSet<i64> = first
        .iter()
        .map(|&id| id_of(&by_id(&rates, id)["user_id"]))
        .collect();
    assert_eq!(owners.len(), users);
    // Every user has one now: the next replaces that user's (Harvest replaces the rates
    // starting on or after a new rate's start date).
    let second = sim.mutate("billable_rates", 1, 0).updated;
    assert_eq!(second.len(), 1);
    let rates = sim.truth("billable_rates");
    let new = by_id(&rates, second[0]);
    let uid = new["user_id"].clone();
    let replaced: Vec<&i64> = first
        .iter()
        .filter(|&&id| find(&rates, id).is_none())
        .collect();
    assert_eq!(replaced.len(), 1, "one rate replaced");
    let mine: Vec<&Value> = rates.iter().filter(|x| x["user_id"] == uid).collect();
    assert_eq!(
        mine.iter()
            .filter(|x| x["start_date"] == new["start_date"])
            .count(),
        1
    );
    assert_eq!(mine.iter().filter(|x| x["end_date"].is_null()).count(), 1);
    let yesterday = json!(day_before(&new["start_date"]));
    assert!(mine.iter().any(|x| x["end_date"] == yesterday));
    let user = get_json(&sim, &format!("/users/{uid}"));
    assert_eq!(user["default_hourly_rate"].as_f64(), new["amount"].as_f64());
    let listed = all(
        &sim,
        &format!("/users/{uid}/billable_rates"),
        "billable_rates",
    );
    assert_eq!(listed.len(), mine.len());
}

#[test]
fn an_edited_user_assignment_moves_only_itself_and_its_project_assignment_alike() {
    let sim = tiny();
    let mut compared = 0;
    for res in ["user_assignments", "project_assignments"] {
        let users = sim.truth("users");
        let projects = sim.truth("projects");
        let before = sim.truth("user_assignments");
        let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let r = sim.mutate(res, 3, 0);
        assert_eq!(r.updated.len(), 3, "{res}");
        assert_eq!(sim.truth("users"), users, "{res}: a user moved");
        assert_eq!(sim.truth("projects"), projects, "{res}: a project moved");
        let after = sim.truth("user_assignments");
        for old in &before {
            let id = id_of(&old["id"]);
            let now = by_id(&after, id);
            if r.updated.contains(&id) {
                assert_ne!(now, old, "{res} {id}: nothing changed");
                assert!(now["updated_at"].as_str().unwrap() >= started.as_str());
            } else {
                assert_eq!(now, old, "{res}: {id} moved");
            }
        }
        for &id in &r.updated {
            let ua = by_id(&after, id);
            if ua["is_active"] != true {
                continue;
            }
            let uid = &ua["user"]["id"];
            let pas = project_assignments(&sim, uid);
            let pa = by_id(&pas, id);
            for f in [
                "is_project_manager",
                "is_active",
                "use_default_rates",
                "budget",
                "hourly_rate",
                "created_at",
                "updated_at",
            ] {
                assert_eq!(pa[f], ua[f], "{res} {id}: {f}");
            }
            assert_eq!(pa["project"]["id"], ua["project"]["id"]);
            compared += 1;
        }
    }
    assert!(
        compared >= 3,
        "only {compared} project assignments compared"
    );
}

/// The (project id, user id) pair of every user assignment.
fn assignment_pairs(sim: &Sim) -> Vec<(i64, i64)> {
    sim.truth("user_assignments")
        .iter()
        .map(|u| (id_of(&u["project"]["id"]), id_of(&u["user"]["id"])))
        .collect()
}

#[test]
fn a_new_user_assignment_is_a_project_assignment_and_leaves_with_it() {
    let sim = tiny();
    let id = create_one_moving_no_user(&sim, "user_assignments");
    let uas = all(&sim, "/user_assignments", "user_assignments");
    let ua = by_id(&uas, id);
    let (uid, pid) = (&ua["user"]["id"], &ua["project"]["id"]);
    let pas = project_assignments(&sim, uid);
    let pa = by_id(&pas, id);
    for f in ["created_at", "updated_at", "is_active", "hourly_rate"] {
        assert_eq!(pa[f], ua[f], "{f}");
    }
    assert_eq!(pa["project"]["id"], *pid);

    // Deleted over the control API (it has no time or expenses): gone from every list.
    assert_eq!(delete_over_http(&sim, "user_assignments", id), 200);
    for path in [
        "/user_assignments".to_string(),
        format!("/projects/{pid}/user_assignments"),
    ] {
        assert!(
            find(&all(&sim, &path, "user_assignments"), id).is_none(),
            "{path}"
        );
    }
    assert!(find(&project_assignments(&sim, uid), id).is_none());
    assert!(find(&sim.truth("project_assignments"), id).is_none());

    // Archived: leaves the user's project assignments (active ones only), stays an
    // (inactive) user assignment.
    let id = sim.mutate("user_assignments", 0, 1).created[0];
    let uid = &by_id(&sim.truth("user_assignments"), id)["user"]["id"].clone();
    sim.archive("user_assignments", &[id]);
    let ua = by_id(&all(&sim, "/user_assignments", "user_assignments"), id).clone();
    assert_eq!(ua["is_active"], false);
    let pas = project_assignments(&sim, uid);
    assert!(find(&pas, id).is_none());

    // A user is assigned to a project once: creating stops when every active user is on
    // every active project.
    let active = |res: &str| -> Vec<i64> {
        sim.truth(res)
            .iter()
            .filter(|x| x["is_active"] == true)
            .map(|x| id_of(&x["id"]))
            .collect()
    };
    let taken: BTreeSet<(i64, i64)> = assignment_pairs(&sim).into_iter().collect();
    let free = active("projects")
        .iter()
        .flat_map(|&p| active("users").into_iter().map(move |u| (p, u)))
        .filter(|pair| !taken.contains(pair))
        .count();
    assert!(free > 0);
    let r = sim.mutate("user_assignments", 0, free + 1);
    assert_eq!(r.created.len(), free);
    let pairs = assignment_pairs(&sim);
    let distinct: BTreeSet<&(i64, i64)> = pairs.iter().collect();
    assert_eq!(
        distinct.len(),
        pairs.len(),
        "a user assigned twice to a project"
    );
}

#[test]
fn an_edited_task_assignment_shows_alike_in_every_project_assignment() {
    let sim = tiny();
    let users = sim.truth("users");
    let pas_before = sim.truth("project_assignments");
    let r = sim.mutate("task_assignments", 4, 0);
    assert_eq!(r.updated.len(), 4);
    assert_eq!(sim.truth("users"), users, "a user moved");
    let tas = sim.truth("task_assignments");
    let pas = sim.truth("project_assignments");
    let mut compared = 0;
    for &id in &r.updated {
        let ta = by_id(&tas, id);
        for pa in pas
            .iter()
            .filter(|p| p["project"]["id"] == ta["project"]["id"])
        {
            // The project assignment itself was not edited.
            let old = by_id(&pas_before, id_of(&pa["id"]));
            assert_eq!(pa["updated_at"], old["updated_at"]);
            let served = project_assignments(&sim, &pa["user_id"]);
            for p in [pa, by_id(&served, id_of(&pa["id"]))] {
                let nested = p["task_assignments"].as_array().unwrap();
                let n = by_id(nested, id);
                for f in [
                    "billable",
                    "is_active",
                    "hourly_rate",
                    "budget",
                    "created_at",
                    "updated_at",
                ] {
                    assert_eq!(n[f], ta[f], "task assignment {id}: {f}");
                }
                assert_eq!(n["task"], ta["task"]);
                compared += 1;
            }
        }
    }
    assert!(compared > 0, "no project assignment had a touched task");
}

#[test]
fn a_new_teammate_moves_no_user_and_a_renamed_one_moves_its_user() {
    let sim = tiny();
    create_one_moving_no_user(&sim, "teammates");
    let users = sim.truth("users");
    let r = sim.mutate("teammates", 1, 0);
    let renamed = r.updated[0];
    let after = sim.truth("users");
    for u in &users {
        let now = by_id(&after, id_of(&u["id"]));
        if u["id"] == renamed {
            assert_ne!(now["updated_at"], u["updated_at"]);
            assert_ne!(now["last_name"], u["last_name"]);
        } else {
            assert_eq!(now, u);
        }
    }
}

#[test]
fn new_teammates_after_a_deletion_keep_the_deletion() {
    let sim = Sim::start(SimConfig::fast(Size::Small)).expect("start");
    let key = |t: &Value| (id_of(&t["user_id"]), id_of(&t["id"]));
    let before: BTreeSet<(i64, i64)> = sim.truth("teammates").iter().map(key).collect();
    // The user with the largest id: its links come last in each manager's, so new links are
    // inserted before them.
    let gone = before.iter().map(|&(_, u)| u).max().unwrap();
    sim.delete("teammates", &[gone]);
    let kept: BTreeSet<(i64, i64)> = before.iter().filter(|k| k.1 != gone).copied().collect();
    let r = sim.mutate("teammates", 0, 6);
    assert!(!r.created.is_empty());
    let after: BTreeSet<(i64, i64)> = sim.truth("teammates").iter().map(key).collect();
    assert!(kept.is_subset(&after), "a link was lost");
    let added: Vec<&(i64, i64)> = after.difference(&kept).collect();
    assert_eq!(added.len(), r.created.len(), "{added:?}");
    assert!(added.iter().all(|k| r.created.contains(&k.1)));
    assert!(
        !added.iter().any(|k| before.contains(k)),
        "a deleted link came back"
    );
}
