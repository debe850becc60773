//! Faults, latency, reports, mutations, the control API and the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use chrono::NaiveDate;
use harvest_sim::*;
use serde_json::{json, Value};

fn tiny() -> Sim {
    Sim::start(SimConfig::fast(Size::Tiny)).expect("start")
}

fn fault(prefix: &str, kind: FaultKind, trigger: Trigger) -> Fault {
    Fault {
        path_prefix: prefix.to_string(),
        kind,
        trigger,
    }
}

#[test]
fn status_faults_first_n_and_scoped() {
    let sim = tiny();
    sim.add_fault(fault(
        "/v2/clients",
        FaultKind::Status(503),
        Trigger::FirstN(2),
    ));
    assert_eq!(status(&sim, "/clients", PAT_ADMIN), 503);
    assert_eq!(
        status(&sim, "/tasks", PAT_ADMIN),
        200,
        "other paths unaffected"
    );
    assert_eq!(status(&sim, "/clients", PAT_ADMIN), 503);
    assert_eq!(status(&sim, "/clients", PAT_ADMIN), 200);
    // Faults apply after auth only.
    sim.add_fault(fault("", FaultKind::Status(500), Trigger::FirstN(1)));
    let r = client()
        .get(format!("{}/tasks", sim.base_url()))
        .header("User-Agent", UA)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 500);
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    sim.add_fault(fault("", FaultKind::Status(502), Trigger::FirstN(1)));
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 502);
    let s = sim.requests();
    assert_eq!(s.route_status("GET /v2/clients", 503), 2);
    assert_eq!(s.route_status("GET /v2/tasks", 500), 1);
    assert_eq!(s.route_status("GET /v2/tasks", 502), 1);
}

#[test]
fn fraction_faults_are_deterministic() {
    let run = || {
        let sim = tiny();
        sim.add_fault(fault(
            "/v2/tasks",
            FaultKind::Status(500),
            Trigger::Fraction(0.5),
        ));
        (0..40)
            .map(|_| status(&sim, "/tasks", PAT_ADMIN))
            .collect::<Vec<u16>>()
    };
    let a = run();
    let b = run();
    assert_eq!(a, b);
    let fails = a.iter().filter(|&&s| s == 500).count();
    assert!((5..=35).contains(&fails), "{fails} of 40 failed");
    assert!(a.iter().all(|&s| s == 500 || s == 200));
}

#[test]
fn close_mid_body_and_truncated_json() {
    let sim = tiny();
    sim.add_fault(fault(
        "/v2/time_entries",
        FaultKind::CloseMidBody,
        Trigger::FirstN(1),
    ));
    let r = get(&sim, "/time_entries");
    assert_eq!(r.status().as_u16(), 200, "headers were sent");
    let full_len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(full_len > 100);
    assert!(r.bytes().is_err(), "body must fail mid-way");
    // Next request is fine.
    assert_eq!(
        get_json(&sim, "/time_entries")["time_entries"]
            .as_array()
            .unwrap()
            .len(),
        40
    );

    sim.add_fault(fault(
        "/v2/time_entries",
        FaultKind::TruncatedJson,
        Trigger::FirstN(1),
    ));
    let r = get(&sim, "/time_entries");
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().expect("complete HTTP response");
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "JSON is cut short"
    );
    assert!(body.starts_with(b"{\"time_entries\":["));
    assert_eq!(status(&sim, "/time_entries", PAT_ADMIN), 200);
}

#[test]
fn slow_and_429_faults() {
    let sim = tiny();
    sim.add_fault(fault(
        "/v2/users",
        FaultKind::Slow(Duration::from_millis(1500)),
        Trigger::FirstN(1),
    ));
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = quick
        .get(format!("{}/users", sim.base_url()))
        .header("User-Agent", UA)
        .header("Authorization", format!("Bearer {PAT_ADMIN}"))
        .header("Harvest-Account-Id", ACCOUNT_ID)
        .send();
    assert!(r.is_err_and(|e| e.is_timeout()));
    assert_eq!(status(&sim, "/users", PAT_ADMIN), 200);

    sim.add_fault(fault(
        "/v2/users",
        FaultKind::Status429 { retry_after: 7 },
        Trigger::FirstN(1),
    ));
    let r = get(&sim, "/users");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    sim.clear_faults();
    assert_eq!(status(&sim, "/users", PAT_ADMIN), 200);
    assert_eq!(sim.requests().throttled, 1);
}

#[test]
fn latency_scoped_by_prefix() {
    let sim = tiny();
    sim.set_latency(
        Duration::from_millis(300),
        Duration::from_millis(20),
        Some("/v2/tasks"),
    );
    let t = Instant::now();
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    let slow = t.elapsed();
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    let t = Instant::now();
    assert_eq!(status(&sim, "/clients", PAT_ADMIN), 200);
    assert!(t.elapsed() < Duration::from_millis(250));
    sim.clear_latency();
    let t = Instant::now();
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    assert!(t.elapsed() < Duration::from_millis(200));
}

fn range_contains(from: &str, to: &str, d: &str) -> bool {
    (from..=to).contains(&d)
}

#[test]
fn reports_aggregate_the_account() {
    let sim = Sim::start(SimConfig::fast(Size::Small)).unwrap();
    let (from, to) = ("2025-01-01", "2025-12-31");
    // Expected time/clients from the truth of time entries.
    let mut expected: BTreeMap<(i64, String), (f64, f64, f64)> = BTreeMap::new();
    for t in sim.truth("time_entries") {
        let d = t["spent_date"].as_str().unwrap();
        if !range_contains(from, to, d) {
            continue;
        }
        let key = (
            t["client"]["id"].as_i64().unwrap(),
            t["client"]["currency"].as_str().unwrap().to_string(),
        );
        let h = t["hours"].as_f64().unwrap();
        let e = expected.entry(key).or_default();
        e.0 += h;
        if t["billable"] == true {
            e.1 += h;
            e.2 += h * t["billable_rate"].as_f64().unwrap_or(0.0);
        }
    }
    let v = get_json(&sim, "/reports/time/clients?from=20250101&to=20251231");
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "client_id",
            "client_name",
            "total_hours",
            "billable_hours",
            "currency",
            "billable_amount"
        ]
    );
    for r in rows {
        let key = (
            r["client_id"].as_i64().unwrap(),
            r["currency"].as_str().unwrap().to_string(),
        );
        let e = expected[&key];
        assert!((r["total_hours"].as_f64().unwrap() - e.0).abs() < 0.001);
        assert!((r["billable_hours"].as_f64().unwrap() - e.1).abs() < 0.001);
        assert!((r["billable_amount"].as_f64().unwrap() - e.2).abs() < 1.0);
    }
    // Dashed dates work and give the same rows; Sim::report agrees with the endpoint.
    let v2 = get_json(&sim, "/reports/time/clients?from=2025-01-01&to=2025-12-31");
    assert_eq!(v2["results"], v["results"]);
    let direct = sim.report(
        "time/clients",
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
        true,
    );
    assert_eq!(Value::from(direct), v["results"]);
    // Links carry from/to.
    let first = v["links"]["first"].as_str().unwrap();
    assert_eq!(param_names(first), vec!["from", "page", "per_page", "to"]);

    // include_fixed_fee=false never raises amounts, and lowers some.
    let with = sim.report(
        "time/projects",
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
        true,
    );
    let without = get_json(
        &sim,
        "/reports/time/projects?from=20250101&to=20251231&include_fixed_fee=false",
    );
    let without = without["results"].as_array().unwrap();
    assert_eq!(with.len(), without.len());
    let fixed: BTreeSet<i64> = sim
        .truth("projects")
        .iter()
        .filter(|p| p["is_fixed_fee"] == true)
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let mut lowered = 0;
    for (a, b) in with.iter().zip(without) {
        assert_eq!(a["project_id"], b["project_id"]);
        assert_eq!(a["total_hours"], b["total_hours"]);
        let pid = a["project_id"].as_i64().unwrap();
        if fixed.contains(&pid) {
            assert_eq!(b["billable_amount"].as_f64().unwrap(), 0.0);
            if a["billable_amount"].as_f64().unwrap() > 0.0 {
                lowered += 1;
            }
        } else {
            assert_eq!(a["billable_amount"], b["billable_amount"]);
        }
    }
    assert!(lowered > 0);

    every_report_has_its_row_fields(&sim);
}

/// Every report answers with its row fields (project_budget filtered by is_active).
fn every_report_has_its_row_fields(sim: &Sim) {
    for (path, field) in [
        ("time/tasks", "task_name"),
        ("time/team", "weekly_capacity"),
        ("expenses/clients", "total_amount"),
        ("expenses/projects", "project_name"),
        ("expenses/categories", "expense_category_name"),
        ("expenses/team", "is_contractor"),
        ("uninvoiced", "uninvoiced_amount"),
    ] {
        let v = get_json(sim, &format!("/reports/{path}?from=20250101&to=20251231"));
        let rows = v["results"].as_array().unwrap();
        assert!(!rows.is_empty(), "{path}");
        assert!(rows[0].get(field).is_some(), "{path}.{field}");
    }
    let v = get_json(sim, "/reports/project_budget?is_active=true");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["is_active"] == true && r["budget"].is_number()));
}

#[test]
fn report_timeframe_rules() {
    let sim = tiny();
    // 365 days inclusive is fine, 366 is not (2024 is a leap year).
    assert_eq!(
        status(
            &sim,
            "/reports/time/clients?from=20230101&to=20231231",
            PAT_ADMIN
        ),
        200
    );
    assert_eq!(
        status(
            &sim,
            "/reports/time/clients?from=20240101&to=20241230",
            PAT_ADMIN
        ),
        200
    );
    let r = get(&sim, "/reports/time/clients?from=20240101&to=20241231");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"message": "Invalid timeframe: must not exceed 1 year"})
    );
    for bad in [
        "/reports/time/clients",
        "/reports/time/clients?from=20240101",
        "/reports/expenses/team?to=20240101",
        "/reports/uninvoiced?from=2024-13-01&to=2024-12-01",
    ] {
        assert_eq!(status(&sim, bad, PAT_ADMIN), 400, "{bad}");
    }
    assert_eq!(status(&sim, "/reports/project_budget", PAT_ADMIN), 200);
}

#[test]
fn mutate_semantics() {
    let sim = Sim::start(SimConfig::fast(Size::Small)).unwrap();
    let before = sim.truth("clients");
    let max_before = before
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let started = chrono::Utc::now().timestamp();
    let r = sim.mutate("clients", 6, 3);
    assert_eq!(r.updated.len(), 6);
    assert_eq!(r.created.len(), 3);
    assert!(r.created.iter().all(|&id| id > max_before));
    // Spread across the list, not only the newest.
    let mut sorted: Vec<i64> = before.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(r.updated.iter().any(|&id| id < median) && r.updated.iter().any(|&id| id > median));
    let after = sim.truth("clients");
    let by_id = |v: &[Value], id: i64| v.iter().find(|c| c["id"] == id).cloned().unwrap();
    for &id in &r.updated {
        let (old, new) = (by_id(&before, id), by_id(&after, id));
        assert_ne!(old["updated_at"], new["updated_at"]);
        assert_ne!(old["address"], new["address"], "a visible field changes");
        let ts = chrono::DateTime::parse_from_rfc3339(new["updated_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert!(ts >= started - 1);
        assert!(new["updated_at"].as_str().unwrap().ends_with('Z'));
    }
    for &id in &r.created {
        let c = by_id(&after, id);
        assert_eq!(c["created_at"], c["updated_at"]);
    }
    // updated_since right before the mutation returns exactly the touched records.
    let since = chrono::DateTime::from_timestamp(started - 1, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let v = get_json(&sim, &format!("/clients?updated_since={since}"));
    let got = id_set(v["clients"].as_array().unwrap());
    let want: BTreeSet<i64> = r.updated.iter().chain(&r.created).copied().collect();
    assert_eq!(got, want);

    children_bump_their_parent(&sim);
    // Every resource but company can be mutated, and created records reference real parents.
    for res in [
        "users",
        "contacts",
        "invoices",
        "invoice_messages",
        "invoice_item_categories",
        "estimates",
        "estimate_item_categories",
        "expenses",
        "expense_categories",
        "tasks",
        "time_entries",
        "projects",
        "user_assignments",
        "task_assignments",
        "roles",
        "billable_rates",
        "cost_rates",
        "project_assignments",
        "teammates",
    ] {
        let r = sim.mutate(res, 2, 2);
        assert_eq!(r.updated.len(), 2, "{res}");
        assert_eq!(r.created.len(), 2, "{res}");
        let truth = sim.truth(res);
        let ids = id_set(&truth);
        for id in r.updated.iter().chain(&r.created) {
            assert!(ids.contains(id), "{res} {id}");
        }
    }
    let tes = sim.truth("time_entries");
    let projects = id_set(&sim.truth("projects"));
    let users = id_set(&sim.truth("users"));
    for t in tes.iter().rev().take(5) {
        assert!(projects.contains(&t["project"]["id"].as_i64().unwrap()));
        assert!(users.contains(&t["user"]["id"].as_i64().unwrap()));
    }
    // A new rate closes the previous open one.
    for user in sim.truth("users") {
        let id = user["id"].as_i64().unwrap();
        let rates: Vec<Value> = sim
            .truth("billable_rates")
            .into_iter()
            .filter(|r| r["user_id"] == id)
            .collect();
        let open = rates.iter().filter(|r| r["end_date"].is_null()).count();
        assert!(open <= 1, "user {id} has {open} open rates");
    }
}

/// Mutated and created invoice payments and estimate messages bump their parent's updated_at.
fn children_bump_their_parent(sim: &Sim) {
    let invoices_before = sim.truth("invoices");
    let r = sim.mutate("invoice_payments", 2, 2);
    let pays = sim.truth("invoice_payments");
    let invoices_after = sim.truth("invoices");
    for id in r.updated.iter().chain(&r.created) {
        let p = pays.iter().find(|p| p["id"] == *id).unwrap();
        let inv = p["invoice_id"].as_i64().unwrap();
        let old = invoices_before.iter().find(|i| i["id"] == inv).unwrap();
        let new = invoices_after.iter().find(|i| i["id"] == inv).unwrap();
        assert_ne!(old["updated_at"], new["updated_at"], "parent bumped");
        assert_eq!(new["updated_at"], p["updated_at"]);
    }
    let r = sim.mutate("estimate_messages", 1, 1);
    let msgs = sim.truth("estimate_messages");
    let ests = sim.truth("estimates");
    for id in r.updated.iter().chain(&r.created) {
        let m = msgs.iter().find(|m| m["id"] == *id).unwrap();
        let e = ests.iter().find(|e| e["id"] == m["estimate_id"]).unwrap();
        assert_eq!(e["updated_at"], m["updated_at"]);
    }
}

#[test]
fn teammates_mutations_and_truth_over_http() {
    let sim = tiny();
    let c = client();
    let ctl = sim.control_url();
    let manager = sim.info()["users"]["manager"].as_i64().unwrap();
    let before = sim.truth("teammates");
    let over_http: Value = c
        .get(format!("{ctl}/truth/teammates"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(over_http.as_array().unwrap(), &before);
    assert!(before.iter().all(|t| t["user_id"] == manager));
    let users_before = sim.truth("users");

    // update renames teammates (their users); create assigns another user to a manager.
    let r = sim.mutate("teammates", 1, 1);
    assert_eq!(r.updated.len(), 1);
    assert_eq!(r.created.len(), 1);
    let after = sim.truth("teammates");
    assert_eq!(after.len(), before.len() + 1);
    let new = after.iter().find(|t| t["id"] == r.created[0]).unwrap();
    assert_eq!(new["user_id"], manager);
    assert!(before.iter().all(|t| t["id"] != r.created[0]));
    assert_ne!(new["id"], manager);
    let renamed = r.updated[0];
    let old_user = users_before.iter().find(|u| u["id"] == renamed).unwrap();
    let users = sim.truth("users");
    let user = users.iter().find(|u| u["id"] == renamed).unwrap();
    assert_ne!(user["last_name"], old_user["last_name"]);
    assert_ne!(user["updated_at"], old_user["updated_at"]);
    for t in after.iter().filter(|t| t["id"] == renamed) {
        assert_eq!(t["last_name"], user["last_name"]);
    }
    // The API serves the new state (caches invalidated).
    let served = get_json(&sim, &format!("/users/{manager}/teammates"))["teammates"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(served.len(), after.len());
    assert!(served
        .iter()
        .any(|t| t["id"] == renamed && t["last_name"] == user["last_name"]));
    // Tiny's manager now manages everybody else: nothing is left to create.
    assert_eq!(after.len(), sim.truth("users").len() - 1);
    assert!(sim.mutate("teammates", 0, 1).created.is_empty());
    // Over HTTP too.
    let r: Value = c
        .post(format!("{ctl}/mutate"))
        .json(&json!({"resource": "teammates", "update": 2}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["updated"].as_array().unwrap().len(), 2);
}

#[test]
fn control_api_over_http() {
    let sim = Sim::start(SimConfig {
        rate_limit: Some(RateLimit::new(2, Duration::from_secs(60))),
        ..SimConfig::fast(Size::Tiny)
    })
    .unwrap();
    let c = client();
    let ctl = sim.control_url();
    let info: Value = c.get(format!("{ctl}/info")).send().unwrap().json().unwrap();
    assert_eq!(info["base_url"], sim.base_url());
    assert_eq!(info["auth_url"], sim.auth_url());
    assert_eq!(info["account_id"], ACCOUNT_ID);
    assert_eq!(info["personal_access_tokens"]["member"], PAT_MEMBER);
    assert_eq!(info["oauth"]["client_id"], CLIENT_ID);
    assert!(info["counts"]["time_entries"].as_u64().unwrap() > 0);

    requests_by_route_over_http(&sim, &c, &ctl);
    mutate_and_truth_over_http(&c, &ctl);
    faults_and_latency_over_http(&sim, &c, &ctl);

    // Reports.
    let rows: Value = c
        .get(format!(
            "{ctl}/report/time/clients?from=20250101&to=20251231"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let served = get_json(&sim, "/reports/time/clients?from=20250101&to=20251231");
    assert_eq!(rows, served["results"]);
    let r = c
        .get(format!(
            "{ctl}/report/time/clients?from=20240101&to=20241231"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Features.
    c.post(format!("{ctl}/features"))
        .json(&json!({"invoice": false}))
        .send()
        .unwrap();
    assert_eq!(status(&sim, "/invoices", PAT_ADMIN), 403);
    // Control requests are never counted.
    let s = sim.requests();
    assert!(s.by_route.keys().all(|k| !k.contains("__control")));
}

/// Faults and latency over HTTP.
fn faults_and_latency_over_http(sim: &Sim, c: &reqwest::blocking::Client, ctl: &str) {
    c.post(format!("{ctl}/faults"))
        .json(&json!({"path_prefix": "/v2/clients", "kind": "status", "status": 503, "first_n": 1}))
        .send()
        .unwrap();
    assert_eq!(status(sim, "/clients", PAT_ADMIN), 503);
    assert_eq!(status(sim, "/clients", PAT_ADMIN), 200);
    c.post(format!("{ctl}/faults"))
        .json(&json!({"path_prefix": "/v2/clients", "kind": "status429", "retry_after": 3, "fraction": 1.0}))
        .send()
        .unwrap();
    let r = get(sim, "/clients");
    assert_eq!(r.headers()["retry-after"], "3");
    c.delete(format!("{ctl}/faults")).send().unwrap();
    assert_eq!(status(sim, "/clients", PAT_ADMIN), 200);
    for kind in ["close_mid_body", "truncated_json"] {
        let r = c
            .post(format!("{ctl}/faults"))
            .json(&json!({"path_prefix": "/v2/tasks", "kind": kind, "first_n": 1}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body = get(sim, "/tasks").bytes();
        assert!(body.is_err() || serde_json::from_slice::<Value>(&body.unwrap()).is_err());
    }
    c.post(format!("{ctl}/latency"))
        .json(&json!({"fixed_ms": 200, "jitter_ms": 0, "path_prefix": ""}))
        .send()
        .unwrap();
    let t = Instant::now();
    assert_eq!(status(sim, "/tasks", PAT_ADMIN), 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    c.delete(format!("{ctl}/latency")).send().unwrap();
}

/// Mutate and truth over HTTP (company cannot be mutated, unknown names are 404).
fn mutate_and_truth_over_http(c: &reqwest::blocking::Client, ctl: &str) {
    let r: Value = c
        .post(format!("{ctl}/mutate"))
        .json(&json!({"resource": "tasks", "update": 2, "create": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["updated"].as_array().unwrap().len(), 2);
    assert_eq!(r["created"].as_array().unwrap().len(), 1);
    let truth: Value = c
        .get(format!("{ctl}/truth/tasks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(truth.as_array().unwrap().len(), 7);
    let company: Value = c
        .get(format!("{ctl}/truth/company"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(company[0]["name"], ACCOUNT_NAME);
    let r = c
        .post(format!("{ctl}/mutate"))
        .json(&json!({"resource": "company", "update": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        c.get(format!("{ctl}/truth/nope"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

/// Requests by route (templated) and status, 429s included; reset; rate limits off.
fn requests_by_route_over_http(sim: &Sim, c: &reqwest::blocking::Client, ctl: &str) {
    let inv = sim.truth("invoices")[0]["id"].as_i64().unwrap();
    assert_eq!(
        status(sim, &format!("/invoices/{inv}/messages"), PAT_ADMIN),
        200
    );
    assert_eq!(status(sim, "/clients", PAT_ADMIN), 200);
    assert_eq!(status(sim, "/clients", PAT_ADMIN), 429);
    let s: Value = c
        .get(format!("{ctl}/requests"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(s["total"], 3);
    assert_eq!(s["throttled"], 1);
    assert_eq!(s["by_route"]["GET /v2/invoices/{id}/messages"]["200"], 1);
    assert_eq!(s["by_route"]["GET /v2/clients"]["429"], 1);
    assert_eq!(s["by_status"]["200"], 2);
    let typed = sim.requests();
    assert_eq!(typed.route("GET /v2/clients"), 2);
    c.post(format!("{ctl}/reset")).send().unwrap();
    assert_eq!(sim.requests(), RequestStats::default());
    c.post(format!("{ctl}/rate_limits"))
        .json(&json!({"general": null, "reports": null}))
        .send()
        .unwrap();
}

#[test]
fn binary_prints_one_line_and_serves() {
    let dir = std::env::temp_dir().join(format!("harvest-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("config.json");
    let (mut child, v) = spawn_binary(
        [
            "--size",
            "tiny",
            "--port",
            "0",
            "--no-rate-limit",
            "--write-config",
        ]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([cfg_path.as_os_str()]),
    );
    let base = v["base_url"].as_str().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/v2"));
    assert_eq!(v["account_id"], ACCOUNT_ID);
    assert_eq!(v["access_token"], PAT_ADMIN);
    assert_eq!(v["accounts"], json!([ACCOUNT_ID]));
    assert!(v["auth_url"].as_str().unwrap().ends_with("/id/api/v2"));
    assert!(v["control_url"].as_str().unwrap().ends_with("/__control"));
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    assert_eq!(cfg["base_url"], base.as_str());
    assert_eq!(cfg["start_date"], "2019-01-01T00:00:00Z");
    assert_eq!(cfg["user_agent"], QUICKSTART_USER_AGENT);
    let r = get_url(&format!("{base}/company"));
    assert_eq!(r.status().as_u16(), 200);
    // SIGTERM stops it cleanly.
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(st.success(), "exit status {st:?}");
                break;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sim_drop_stops_the_server() {
    let sim = tiny();
    let base = sim.base_url();
    assert_eq!(get_url(&format!("{base}/company")).status().as_u16(), 200);
    drop(sim);
    let r = client()
        .get(format!("{base}/company"))
        .header("User-Agent", UA)
        .send();
    assert!(r.is_err());
}
