//! Several Harvest accounts under one token: each answers its own data (with overlapping ids),
//! `/accounts` lists them, changes stay in their account, a revoked account fails while the
//! others answer, an account the token does not reach is refused.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use harvest_sim::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};

const SECOND: i64 = 1_234_568;

fn two(size: Size) -> Sim {
    Sim::start(SimConfig::fast(size).with_accounts(2)).expect("start")
}

/// GET `path` (below /v2) in `account` with the admin token.
fn get_in(sim: &Sim, account: &str, path: &str) -> Response {
    client()
        .get(format!("{}{path}", sim.base_url()))
        .header("User-Agent", UA)
        .header("Authorization", format!("Bearer {PAT_ADMIN}"))
        .header("Harvest-Account-Id", account)
        .send()
        .expect("request")
}

fn json_in(sim: &Sim, account: &str, path: &str) -> Value {
    let r = get_in(sim, account, path);
    assert_eq!(r.status().as_u16(), 200, "GET {path} in {account}");
    r.json().expect("json")
}

fn assert_invalid_token(r: Response) {
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_token");
}

/// Records as a set of canonical JSON strings (order-free comparison).
fn canon(records: &[Value]) -> BTreeSet<String> {
    records.iter().map(Value::to_string).collect()
}

#[test]
fn config_ids_names_and_seeds() {
    assert_eq!(SimConfig::default().accounts, 1);
    assert_eq!(SimConfig::fast(Size::Tiny).harvest_accounts().len(), 1);
    let accounts = SimConfig::fast(Size::Tiny)
        .with_accounts(5)
        .harvest_accounts();
    let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
    assert_eq!(ids, [1_234_567, 1_234_568, 1_234_569, 1_234_570, 1_234_571]);
    assert_eq!(ids[0].to_string(), ACCOUNT_ID);
    assert_eq!(harvest_account_id(2), SECOND);
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            ACCOUNT_NAME,
            "Globex Studio",
            "Müller & Söhne GmbH",
            "Initech Consulting",
            "Acme Co 5"
        ]
    );
    let seeds: Vec<u64> = accounts.iter().map(|a| a.seed).collect();
    assert_eq!(seeds, [42, 43, 44, 45, 46]);
}

#[test]
fn two_accounts_answer_their_own_data_with_overlapping_ids() {
    let sim = two(Size::Small);
    let first = sim.account(FIRST_ACCOUNT_ID);
    let second = sim.account(SECOND);
    assert_eq!(second.name(), "Globex Studio");
    assert_eq!(
        sim.accounts().iter().map(|a| a.id).collect::<Vec<_>>(),
        [FIRST_ACCOUNT_ID, SECOND]
    );
    // Every resource: the same id range (the generators number from fixed bases), different
    // records.
    for r in [
        "users",
        "roles",
        "clients",
        "contacts",
        "projects",
        "tasks",
        "task_assignments",
        "user_assignments",
        "billable_rates",
        "cost_rates",
        "invoice_item_categories",
        "estimate_item_categories",
        "invoices",
        "invoice_messages",
        "invoice_payments",
        "estimates",
        "estimate_messages",
        "expense_categories",
        "expenses",
        "time_entries",
    ] {
        let (a, b) = (first.truth(r), second.truth(r));
        let (ia, ib) = (id_set(&a), id_set(&b));
        assert_eq!(ia.first(), ib.first(), "{r}: lowest id");
        assert!(ia.intersection(&ib).count() > 0, "{r}: no shared id");
        assert_ne!(canon(&a), canon(&b), "{r}: same records");
    }
    // Over HTTP: each account's list is its own truth; same ids, other records.
    let c1 = records(&walk_in(&sim, ACCOUNT_ID, "/clients"), "clients");
    let c2 = records(&walk_in(&sim, &SECOND.to_string(), "/clients"), "clients");
    assert_eq!(canon(&c1), canon(&first.truth("clients")));
    assert_eq!(canon(&c2), canon(&second.truth("clients")));
    assert_eq!(id_set(&c1), id_set(&c2));
    assert_ne!(canon(&c1), canon(&c2));
    // The company is the account's; the default (no account) is the first.
    let co2 = json_in(&sim, &SECOND.to_string(), "/company");
    assert_eq!(co2["name"], "Globex Studio");
    assert_eq!(co2["full_domain"], "globex.harvestapp.com");
    assert_eq!(co2["base_uri"], "https://globex.harvestapp.com");
    assert_eq!(json_in(&sim, ACCOUNT_ID, "/company")["name"], ACCOUNT_NAME);
    assert_eq!(first.truth("company")[0]["name"], ACCOUNT_NAME);
    assert_eq!(second.truth("company")[0], co2);
    assert_eq!(sim.truth("clients"), first.truth("clients"));
    // Single objects by a shared id differ.
    let id = c1[0]["id"].as_i64().unwrap();
    let s1 = json_in(&sim, ACCOUNT_ID, &format!("/clients/{id}"));
    let s2 = json_in(&sim, &SECOND.to_string(), &format!("/clients/{id}"));
    assert_eq!(s1["id"], s2["id"]);
    assert_ne!(s1, s2);
    // Account k holds what a one-account simulator with seed + k - 1 holds.
    let alone = Sim::start(SimConfig {
        seed: 43,
        ..SimConfig::fast(Size::Small)
    })
    .unwrap();
    assert_eq!(alone.truth("invoices"), second.truth("invoices"));
    // Counts, info and reports per account.
    assert_eq!(second.counts()["time_entries"], 12_000);
    let info = second.info();
    assert_eq!(info["account"]["id"], SECOND);
    assert_eq!(info["account_id"], ACCOUNT_ID);
    assert_eq!(info["accounts"].as_array().unwrap().len(), 2);
    let (from, to) = (
        chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2024, 12, 30).unwrap(),
    );
    assert_ne!(
        first.report("time/clients", from, to, true),
        second.report("time/clients", from, to, true)
    );
    let rows = ctl_get(
        &sim,
        &format!("/report/time/clients?from=20240101&to=20241230&account_id={SECOND}"),
    );
    assert_eq!(
        rows,
        Value::from(second.report("time/clients", from, to, true))
    );
    let info = ctl_get(&sim, &format!("/info?account_id={SECOND}"));
    assert_eq!(info["account"]["name"], "Globex Studio");
    assert_eq!(info["counts"], second.counts());
}

/// Follows `links.next` in `account`.
fn walk_in(sim: &Sim, account: &str, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = Some(format!("{}{path}", sim.base_url()));
    while let Some(u) = url {
        let r = client()
            .get(&u)
            .header("User-Agent", UA)
            .header("Authorization", format!("Bearer {PAT_ADMIN}"))
            .header("Harvest-Account-Id", account)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {u}");
        let v: Value = r.json().unwrap();
        url = v["links"]["next"].as_str().map(str::to_string);
        pages.push(v);
    }
    pages
}

/// Harvest ID's accounts list for `token`.
fn accounts_as(sim: &Sim, token: &str) -> Value {
    client()
        .get(format!("{}/accounts", sim.auth_url()))
        .header("User-Agent", UA)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn accounts_lists_every_harvest_account() {
    let sim = Sim::start(SimConfig::fast(Size::Tiny).with_accounts(3)).unwrap();
    for token in [PAT_ADMIN, PAT_MEMBER] {
        let v = accounts_as(&sim, token);
        assert_eq!(
            v["accounts"],
            json!([
                {"id": FORECAST_ACCOUNT_ID, "name": FORECAST_ACCOUNT_NAME, "product": "forecast"},
                {"id": 1_234_567, "name": "Acme Co", "product": "harvest"},
                {"id": 1_234_568, "name": "Globex Studio", "product": "harvest"},
                {"id": 1_234_569, "name": "Müller & Söhne GmbH", "product": "harvest"},
            ])
        );
        assert!(v["user"]["email"].is_string());
    }
    // Every listed Harvest account answers the same token.
    for id in ["1234567", "1234568", "1234569"] {
        assert_eq!(get_in(&sim, id, "/users/me").status().as_u16(), 200);
    }
}

#[test]
fn a_change_in_one_account_leaves_the_other() {
    let sim = two(Size::Tiny);
    let (first, second) = (sim.account(FIRST_ACCOUNT_ID), sim.account(SECOND));
    let s = SECOND.to_string();
    // Warm both page caches.
    let before1 = json_in(&sim, ACCOUNT_ID, "/clients");
    let before2 = json_in(&sim, &s, "/clients");
    let truth1 = first.truth("clients");
    let v1 = first.info()["data_version"].clone();
    // Rust API.
    let m = second.mutate("clients", 1, 1);
    assert_eq!((m.updated.len(), m.created.len()), (1, 1));
    assert_eq!(first.truth("clients"), truth1);
    assert_eq!(first.info()["data_version"], v1);
    assert_eq!(json_in(&sim, ACCOUNT_ID, "/clients"), before1);
    let after2 = json_in(&sim, &s, "/clients");
    assert_ne!(after2, before2);
    assert!(id_set(after2["clients"].as_array().unwrap()).contains(&m.created[0]));
    // The same id is new in the second account only.
    assert!(!id_set(&truth1).contains(&m.created[0]));
    // Control API: `?account_id=` or the body's `account_id`.
    let path = format!("/mutate?account_id={SECOND}");
    let r = ctl_post(&sim, &path, &json!({"resource": "tasks", "update": 2}));
    assert_eq!(r["updated"].as_array().unwrap().len(), 2);
    let body = json!({"resource": "tasks", "create": 1, "account_id": s});
    let created = ctl_post(&sim, "/mutate", &body)["created"][0]
        .as_i64()
        .unwrap();
    let t2 = ctl_get(&sim, &format!("/truth/tasks?account_id={SECOND}"));
    assert_eq!(t2, Value::from(second.truth("tasks")));
    assert!(id_set(t2.as_array().unwrap()).contains(&created));
    assert!(!id_set(&first.truth("tasks")).contains(&created));
    // Deletions: the second account's deletable time entry goes there only.
    let entries1 = first.truth("time_entries");
    let entries2 = second.truth("time_entries").len();
    let ids = second.deletable("time_entries", 1);
    let shared = id_set(&first.truth("time_entries")).contains(&ids[0]);
    second.delete("time_entries", &ids);
    assert!(!id_set(&second.truth("time_entries")).contains(&ids[0]));
    assert_eq!(
        id_set(&first.truth("time_entries")).contains(&ids[0]),
        shared
    );
    let path = format!("/delete?account_id={SECOND}");
    let d = ctl_post(
        &sim,
        &path,
        &json!({"resource": "time_entries", "count": 1}),
    );
    assert_eq!(d["deleted"].as_array().unwrap().len(), 1);
    assert_eq!(second.truth("time_entries").len(), entries2 - 2);
    assert_eq!(second.counts()["time_entries"], entries2 - 2);
    assert_eq!(canon(&first.truth("time_entries")), canon(&entries1));
    // Archive: an active project of the second account, whose id the first account has too.
    let projects1 = first.truth("projects");
    let p = second
        .truth("projects")
        .iter()
        .find(|x| x["is_active"] == true)
        .and_then(|x| x["id"].as_i64())
        .unwrap();
    assert!(id_set(&projects1).contains(&p));
    second.archive("projects", &[p]);
    assert!(second
        .truth("projects")
        .iter()
        .any(|x| x["id"] == p && x["is_active"] == false));
    assert_eq!(first.truth("projects"), projects1);
    // An unknown account is a 404 in the control API.
    let (c, ctl) = (client(), sim.control_url());
    let r = c
        .get(format!("{ctl}/truth/tasks?account_id=999"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .post(format!("{ctl}/mutate?account_id=7654321"))
        .json(&json!({"resource": "tasks", "update": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn a_revoked_account_fails_while_the_other_answers() {
    let sim = two(Size::Tiny);
    let s = SECOND.to_string();
    let (c, ctl) = (client(), sim.control_url());
    // Over HTTP: 401 invalid_token by default, on every endpoint, whatever the token.
    assert_eq!(
        ctl_post(&sim, "/revoke", &json!({"account_id": SECOND})),
        json!({"ok": true})
    );
    for path in [
        "/company",
        "/users/me",
        "/clients",
        "/time_entries",
        "/nope",
    ] {
        assert_invalid_token(get_in(&sim, &s, path));
        assert_eq!(get_in(&sim, ACCOUNT_ID, path).status().as_u16(), {
            if path == "/nope" {
                404
            } else {
                200
            }
        });
    }
    assert_eq!(
        sim.account(SECOND).revoked(),
        Some(Revocation::InvalidToken)
    );
    // Still listed by /accounts (access lost after the listing).
    assert_eq!(accounts_as(&sim, PAT_ADMIN)["accounts"][2]["id"], SECOND);
    let info = ctl_get(&sim, "/info");
    assert_eq!(info["accounts"][1]["revoked"], 401);
    assert_eq!(info["accounts"][0]["revoked"], Value::Null);
    // 403 on request; a bad status is refused.
    ctl_post(&sim, "/revoke", &json!({"account_id": s, "status": 403}));
    let r = get_in(&sim, &s, "/clients");
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.json::<Value>().unwrap()["message"].is_string());
    for (query, body) in [
        ("", json!({"account_id": SECOND, "status": 500})),
        ("", json!({"status": 401})),
        ("?account_id=1234569", json!({})),
    ] {
        let r = c
            .post(format!("{ctl}/revoke{query}"))
            .json(&body)
            .send()
            .unwrap();
        let want = if query.is_empty() { 400 } else { 404 };
        assert_eq!(r.status().as_u16(), want, "{query} {body}");
    }
    // Restored (one account, then all).
    c.delete(format!("{ctl}/revoke?account_id={SECOND}"))
        .send()
        .unwrap();
    assert_eq!(get_in(&sim, &s, "/clients").status().as_u16(), 200);
    // Rust API, and request statistics per account.
    sim.reset_requests();
    sim.account(SECOND).revoke(Revocation::Forbidden);
    assert_eq!(get_in(&sim, &s, "/tasks").status().as_u16(), 403);
    assert_eq!(get_in(&sim, ACCOUNT_ID, "/tasks").status().as_u16(), 200);
    let st = sim.requests();
    assert_eq!(st.account_status(SECOND, 403), 1);
    assert_eq!(st.account_status(FIRST_ACCOUNT_ID, 200), 1);
    assert_eq!(st.account(SECOND), 1);
    assert_eq!(st.total, 2);
    c.delete(format!("{ctl}/revoke")).send().unwrap();
    assert_eq!(sim.account(SECOND).revoked(), None);
    assert_eq!(get_in(&sim, &s, "/tasks").status().as_u16(), 200);
    assert_eq!(ctl_get(&sim, "/requests")["by_account"][&s]["200"], 1);
}

#[test]
fn an_account_the_token_does_not_reach_is_refused() {
    let sim = two(Size::Tiny);
    for account in ["1234569", "7654321", "01234568", "", "abc"] {
        assert_invalid_token(get_in(&sim, account, "/clients"));
    }
    // Query-string credentials name accounts too.
    let base = sim.base_url();
    let ok = client()
        .get(format!(
            "{base}/clients?access_token={PAT_ADMIN}&account_id={SECOND}"
        ))
        .header("User-Agent", UA)
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let r = client()
        .get(format!(
            "{base}/clients?access_token={PAT_ADMIN}&account_id=1234569"
        ))
        .header("User-Agent", UA)
        .send()
        .unwrap();
    assert_invalid_token(r);
    // A one-account simulator refuses the second account's id.
    let one = Sim::start(SimConfig::fast(Size::Tiny)).unwrap();
    assert_invalid_token(get_in(&one, &SECOND.to_string(), "/clients"));
    assert!(!one.requests().by_account.contains_key(&SECOND.to_string()));
}

#[test]
fn faults_scope_and_the_rate_limit_is_per_token() {
    let sim = two(Size::Tiny);
    let s = SECOND.to_string();
    sim.account(SECOND).add_fault(Fault {
        path_prefix: "/v2/clients".into(),
        kind: FaultKind::Status(503),
        trigger: Trigger::FirstN(1),
    });
    assert_eq!(get_in(&sim, ACCOUNT_ID, "/clients").status().as_u16(), 200);
    assert_eq!(get_in(&sim, &s, "/clients").status().as_u16(), 503);
    assert_eq!(get_in(&sim, &s, "/clients").status().as_u16(), 200);
    // A delete fault deletes in the account of the request it hits.
    let ids = sim.account(SECOND).deletable("time_entries", 1);
    let first_before = sim.truth("time_entries").len();
    ctl_post(
        &sim,
        "/faults",
        &json!({"path_prefix": "/v2/time_entries", "kind": "delete",
            "resource": "time_entries", "ids": ids, "first_n": 1, "account_id": SECOND}),
    );
    assert_eq!(
        get_in(&sim, ACCOUNT_ID, "/time_entries").status().as_u16(),
        200
    );
    assert_eq!(sim.truth("time_entries").len(), first_before);
    let v = json_in(&sim, &s, "/time_entries");
    assert!(!id_set(v["time_entries"].as_array().unwrap()).contains(&ids[0]));
    // One window per token across accounts.
    sim.set_rate_limits(Some(RateLimit::new(3, Duration::from_secs(60))), None);
    assert_eq!(get_in(&sim, ACCOUNT_ID, "/tasks").status().as_u16(), 200);
    assert_eq!(get_in(&sim, &s, "/tasks").status().as_u16(), 200);
    assert_eq!(get_in(&sim, ACCOUNT_ID, "/tasks").status().as_u16(), 200);
    assert_eq!(get_in(&sim, &s, "/tasks").status().as_u16(), 429);
    assert_eq!(get_in(&sim, ACCOUNT_ID, "/tasks").status().as_u16(), 429);
}

#[test]
fn binary_serves_several_accounts() {
    let (mut child, v) = spawn_binary(["--size", "tiny", "--no-rate-limit", "--accounts", "2"]);
    assert_eq!(v["account_id"], ACCOUNT_ID);
    assert_eq!(v["accounts"], json!(["1234567", "1234568"]));
    let base = v["base_url"].as_str().unwrap();
    let co: Value = client()
        .get(format!("{base}/company"))
        .header("User-Agent", UA)
        .header("Authorization", format!("Bearer {PAT_ADMIN}"))
        .header("Harvest-Account-Id", "1234568")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(co["name"], "Globex Studio");
    let _ = child.kill();
    let _ = child.wait();
    // --accounts 0 is refused.
    let st = Command::new(env!("CARGO_BIN_EXE_harvest-sim"))
        .args(["--accounts", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
}
