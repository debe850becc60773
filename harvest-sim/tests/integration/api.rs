//! Envelopes, both pagination modes, sort orders, filters, 404s and the shapes of objects.

use std::collections::BTreeSet;

use crate::common::*;
use harvest_sim::{Sim, SimConfig, Size};
use serde_json::Value;

fn tiny() -> Sim {
    Sim::start(SimConfig::fast(Size::Tiny)).expect("start")
}

fn small() -> Sim {
    Sim::start(SimConfig::fast(Size::Small)).expect("start")
}

const ENVELOPE_KEYS: &[&str] = &[
    "per_page",
    "total_pages",
    "total_entries",
    "next_page",
    "previous_page",
    "page",
    "links",
];

#[test]
fn envelope_of_every_list() {
    let sim = tiny();
    let invoice = sim.truth("invoices")[0]["id"].as_i64().unwrap();
    let estimate = sim.truth("estimates")[0]["id"].as_i64().unwrap();
    let project = sim.truth("projects")[0]["id"].as_i64().unwrap();
    let user = sim.truth("users")[0]["id"].as_i64().unwrap();
    let manager = sim.info()["users"]["manager"].as_i64().unwrap();
    let lists: Vec<(String, &str)> = vec![
        ("/clients".into(), "clients"),
        ("/contacts".into(), "contacts"),
        ("/invoices".into(), "invoices"),
        (format!("/invoices/{invoice}/messages"), "invoice_messages"),
        (format!("/invoices/{invoice}/payments"), "invoice_payments"),
        ("/invoice_item_categories".into(), "invoice_item_categories"),
        ("/estimates".into(), "estimates"),
        (
            format!("/estimates/{estimate}/messages"),
            "estimate_messages",
        ),
        (
            "/estimate_item_categories".into(),
            "estimate_item_categories",
        ),
        ("/expenses".into(), "expenses"),
        ("/expense_categories".into(), "expense_categories"),
        ("/tasks".into(), "tasks"),
        ("/time_entries".into(), "time_entries"),
        ("/projects".into(), "projects"),
        ("/user_assignments".into(), "user_assignments"),
        (
            format!("/projects/{project}/user_assignments"),
            "user_assignments",
        ),
        ("/task_assignments".into(), "task_assignments"),
        (
            format!("/projects/{project}/task_assignments"),
            "task_assignments",
        ),
        ("/roles".into(), "roles"),
        ("/users".into(), "users"),
        (format!("/users/{user}/billable_rates"), "billable_rates"),
        (format!("/users/{user}/cost_rates"), "cost_rates"),
        (
            format!("/users/{user}/project_assignments"),
            "project_assignments",
        ),
        (
            "/users/me/project_assignments".into(),
            "project_assignments",
        ),
        (format!("/users/{manager}/teammates"), "teammates"),
        (
            "/reports/time/clients?from=20250101&to=20251231".into(),
            "results",
        ),
        ("/reports/project_budget".into(), "results"),
    ];
    for (path, key) in lists {
        let v = get_json(&sim, &path);
        let obj = v.as_object().unwrap();
        let keys: Vec<&String> = obj.keys().collect();
        assert_eq!(keys[0], key, "{path}: records key first");
        for k in ENVELOPE_KEYS {
            assert!(obj.contains_key(*k), "{path}: missing {k}");
        }
        assert_eq!(v["per_page"], 2000, "{path}");
        let links = v["links"].as_object().unwrap();
        for k in ["first", "next", "previous", "last"] {
            assert!(links.contains_key(k), "{path}: links.{k}");
        }
        let first = links["first"].as_str().unwrap();
        assert!(
            first.starts_with(&sim.base_url()),
            "{path}: absolute link {first}"
        );
        assert_eq!(
            v["total_entries"].as_u64().unwrap() as usize,
            v[key].as_array().unwrap().len(),
            "{path}: one page holds everything in tiny"
        );
    }
    // Single objects have no envelope.
    let company = get_json(&sim, "/company");
    assert_eq!(company["name"], "Acme Co");
    assert!(company.get("per_page").is_none());
    let me = get_json(&sim, "/users/me");
    assert_eq!(me["access_roles"][0], "administrator");
}

#[test]
fn every_stream_non_empty_in_tiny_and_odd_values_present() {
    let sim = tiny();
    for r in [
        "users",
        "clients",
        "contacts",
        "invoices",
        "invoice_messages",
        "invoice_payments",
        "invoice_item_categories",
        "estimates",
        "estimate_messages",
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
        assert!(!sim.truth(r).is_empty(), "{r} is empty");
    }
    let payments = sim.truth("invoice_payments");
    assert!(payments
        .iter()
        .any(|p| p["payment_gateway"]["id"].is_null() && p["payment_gateway"]["name"].is_null()));
    assert!(payments
        .iter()
        .any(|p| p["payment_gateway"]["name"].is_string()));
    let invoices = sim.truth("invoices");
    assert!(invoices.iter().any(|i| i["discount"].is_null()));
    assert!(invoices
        .iter()
        .any(|i| i["line_items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|li| li["quantity"].as_f64().unwrap().fract() != 0.0)));
    let raw = get(&sim, "/invoices").text().unwrap();
    assert!(raw.contains("\"quantity\":1.5"), "fractional quantity");
    let tes = sim.truth("time_entries");
    assert!(tes
        .iter()
        .any(|t| t["external_reference"]["id"].is_string()));
    assert!(tes.iter().any(|t| t["external_reference"].is_null()));
    let clocks: Vec<&str> = tes
        .iter()
        .filter_map(|t| t["started_time"].as_str())
        .collect();
    assert!(clocks
        .iter()
        .any(|c| c.ends_with("am") || c.ends_with("pm")));
    assert!(clocks.iter().any(|c| !c.ends_with('m')));
    assert!(tes.iter().any(|t| t["started_time"].is_null()));
    assert!(tes
        .iter()
        .any(|t| t["is_running"] == true && t["timer_started_at"].is_string()));
    assert!(tes.iter().any(|t| t["invoice"]["number"].is_string()));
    assert!(tes
        .iter()
        .all(|t| t["user_assignment"].get("project").is_none()));
    // Integral decimals as integers and fractional ones as floats.
    let raw_te = get(&sim, "/time_entries").text().unwrap();
    assert!(raw_te.contains("\"hourly_rate\":") && raw_te.contains(".0,"));
    assert!(invoices
        .iter()
        .any(|i| i["tax"].is_u64() || i["discount"].is_u64()));
    assert!(invoices.iter().any(|i| i["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|li| li["amount"].is_u64())));
    assert!(invoices.iter().any(|i| i["amount"].is_f64()));
    let roles = sim.truth("roles");
    assert!(roles
        .iter()
        .any(|r| !r["user_ids"].as_array().unwrap().is_empty()));
    let pas = sim.truth("project_assignments");
    assert!(pas
        .iter()
        .any(|p| !p["task_assignments"].as_array().unwrap().is_empty()));
    assert!(pas.iter().all(|p| p["user_id"].is_i64()));
    let rates = sim.truth("billable_rates");
    assert!(rates.iter().any(|r| r["end_date"].is_null()));
    assert!(rates.iter().any(|r| r["end_date"].is_string()));
    for t in &tes {
        let s = t["updated_at"].as_str().unwrap();
        assert!(s.ends_with('Z') && s.len() == 20, "{s}");
    }
}

#[test]
fn truth_matches_what_lists_serve() {
    let sim = tiny();
    for (path, key, truth) in [
        ("/invoices", "invoices", "invoices"),
        ("/time_entries", "time_entries", "time_entries"),
        ("/users", "users", "users"),
        ("/roles", "roles", "roles"),
        ("/expenses", "expenses", "expenses"),
    ] {
        let served = get_json(&sim, path)[key].as_array().unwrap().clone();
        let mut t = sim.truth(truth);
        t.sort_by_key(|v| std::cmp::Reverse(v["id"].as_i64()));
        let mut s = served.clone();
        s.sort_by_key(|v| std::cmp::Reverse(v["id"].as_i64()));
        assert_eq!(s, t, "{path}");
    }
    // Nested: truth adds exactly one field naming the parent.
    let invoice = sim.truth("invoice_messages")[0]["invoice_id"]
        .as_i64()
        .unwrap();
    let served = get_json(&sim, &format!("/invoices/{invoice}/messages"))["invoice_messages"]
        .as_array()
        .unwrap()
        .clone();
    let truth: Vec<Value> = sim
        .truth("invoice_messages")
        .into_iter()
        .filter(|m| m["invoice_id"] == invoice)
        .map(|mut m| {
            m.as_object_mut().unwrap().remove("invoice_id");
            m
        })
        .collect();
    assert_eq!(id_set(&served), id_set(&truth));
    for m in &served {
        let t = truth.iter().find(|t| t["id"] == m["id"]).unwrap();
        assert_eq!(m, t);
    }
}

#[test]
fn page_mode_walk() {
    let sim = small();
    let truth = sim.truth("time_entries");
    assert!(
        truth.len() > 6000,
        "small has several pages of time entries"
    );
    let first = format!("{}/time_entries", sim.base_url());
    let pages = walk(&first);
    let total_pages = pages[0]["total_pages"].as_u64().unwrap();
    assert_eq!(pages.len() as u64, total_pages);
    for (k, p) in pages.iter().enumerate() {
        let n = k as u64 + 1;
        assert_eq!(p["page"], n);
        assert_eq!(p["total_entries"].as_u64().unwrap() as usize, truth.len());
        assert_eq!(
            p["previous_page"],
            if n == 1 {
                Value::Null
            } else {
                Value::from(n - 1)
            }
        );
        assert_eq!(
            p["next_page"],
            if n == total_pages {
                Value::Null
            } else {
                Value::from(n + 1)
            }
        );
        if let Some(next) = p["links"]["next"].as_str() {
            assert_eq!(query_param(next, "page").unwrap(), (n + 1).to_string());
            assert_eq!(param_names(next), vec!["page", "per_page"]);
        }
        assert_eq!(
            query_param(p["links"]["last"].as_str().unwrap(), "page").unwrap(),
            total_pages.to_string()
        );
    }
    let recs = records(&pages, "time_entries");
    assert_eq!(recs.len(), truth.len());
    assert_eq!(id_set(&recs), id_set(&truth));
    // spent_date desc, then id desc.
    for w in recs.windows(2) {
        let a = (
            w[0]["spent_date"].as_str().unwrap(),
            w[0]["id"].as_i64().unwrap(),
        );
        let b = (
            w[1]["spent_date"].as_str().unwrap(),
            w[1]["id"].as_i64().unwrap(),
        );
        assert!(a > b, "{a:?} before {b:?}");
    }
    // Invoices need two pages in small.
    let inv_pages = walk(&format!("{}/invoices", sim.base_url()));
    assert!(inv_pages.len() >= 2);
    let invs = records(&inv_pages, "invoices");
    for w in invs.windows(2) {
        let a = (
            w[0]["issue_date"].as_str().unwrap(),
            w[0]["id"].as_i64().unwrap(),
        );
        let b = (
            w[1]["issue_date"].as_str().unwrap(),
            w[1]["id"].as_i64().unwrap(),
        );
        assert!(a > b);
    }
}

#[test]
fn cursor_mode_walk() {
    let sim = small();
    let truth = sim.truth("contacts");
    assert!(truth.len() > 2000);
    let pages = walk(&format!("{}/contacts?per_page=500", sim.base_url()));
    let n = pages.len();
    assert_eq!(n as u64, pages[0]["total_pages"].as_u64().unwrap());
    assert!(n >= 4);
    // First page populated, middle pages null, last page populated.
    assert_eq!(pages[0]["page"], 1);
    assert_eq!(pages[0]["next_page"], 2);
    assert_eq!(pages[0]["previous_page"], Value::Null);
    assert_eq!(pages[0]["links"]["previous"], Value::Null);
    let first_link = pages[0]["links"]["first"].as_str().unwrap();
    assert_eq!(query_param(first_link, "ref").as_deref(), Some("first"));
    for p in &pages[1..n - 1] {
        assert_eq!(p["page"], Value::Null);
        assert_eq!(p["next_page"], Value::Null);
        assert_eq!(p["previous_page"], Value::Null);
        assert!(p["total_pages"].is_u64() && p["total_entries"].is_u64());
        assert!(p["links"]["previous"].is_string());
    }
    let last = &pages[n - 1];
    assert_eq!(last["page"], n as u64);
    assert_eq!(last["next_page"], Value::Null);
    assert_eq!(last["previous_page"], (n - 1) as u64);
    assert_eq!(last["links"]["next"], Value::Null);
    let next = pages[0]["links"]["next"].as_str().unwrap();
    assert_eq!(param_names(next), vec!["cursor", "per_page", "ref"]);
    assert_eq!(query_param(next, "ref").as_deref(), Some("next_cursor"));
    let recs = records(&pages, "contacts");
    let ids = ids(&recs);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "id desc");
    assert_eq!(ids.len(), truth.len());
    assert_eq!(id_set(&recs), id_set(&truth));
    // The cursor is base64 of {"after":{"id":N}} with N the last id of the page.
    let cursor = query_param(next, "cursor").unwrap();
    let cursor = cursor
        .replace("%3D", "=")
        .replace("%2B", "+")
        .replace("%2F", "/");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["after"]["id"], pages[0]["contacts"][499]["id"]);
    // A previous link walks back to the same records.
    let prev = pages[2]["links"]["previous"].as_str().unwrap();
    let back = get_url(prev).json::<Value>().unwrap();
    assert_eq!(
        ids_of(&back["contacts"]),
        ids_of(&pages[1]["contacts"]),
        "previous cursor"
    );
}

fn ids_of(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn cursor_walk_survives_creates_and_updates_mid_walk() {
    let sim = small();
    let before = id_set(&sim.truth("contacts"));
    let mut url = Some(format!("{}/contacts?per_page=400", sim.base_url()));
    let mut seen = Vec::new();
    let mut page = 0;
    while let Some(u) = url {
        let v: Value = get_url(&u).json().unwrap();
        seen.extend(ids_of(&v["contacts"]));
        url = v["links"]["next"].as_str().map(str::to_string);
        page += 1;
        if page == 2 {
            let r = sim.mutate("contacts", 25, 7);
            assert_eq!(r.updated.len(), 25);
            assert_eq!(r.created.len(), 7);
        }
    }
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), seen_set.len(), "no duplicates");
    assert_eq!(
        seen_set, before,
        "no omissions; records created mid-walk are newer"
    );
}

#[test]
fn page_param_on_cursor_endpoint_answers_in_page_mode() {
    let sim = tiny();
    let v = get_json(&sim, "/clients?page=2&per_page=1");
    assert_eq!(v["page"], 2);
    assert_eq!(v["previous_page"], 1);
    assert_eq!(v["next_page"], 3);
    let next = v["links"]["next"].as_str().unwrap();
    assert_eq!(query_param(next, "page").as_deref(), Some("3"));
    assert!(query_param(next, "cursor").is_none());
    // Past the end: empty list, still an envelope.
    let v = get_json(&sim, "/clients?page=50");
    assert_eq!(v["clients"].as_array().unwrap().len(), 0);
}

#[test]
fn per_page_bounds() {
    let sim = tiny();
    for bad in ["0", "2001", "-1", "abc", "1.5"] {
        let r = get(&sim, &format!("/clients?per_page={bad}"));
        assert_eq!(r.status().as_u16(), 422, "per_page={bad}");
        let v: Value = r.json().unwrap();
        assert!(v["message"].is_string());
        assert_eq!(
            status(
                &sim,
                &format!("/time_entries?per_page={bad}"),
                harvest_sim::PAT_ADMIN
            ),
            422
        );
    }
    for ok in ["1", "2000"] {
        let v = get_json(&sim, &format!("/time_entries?per_page={ok}"));
        assert_eq!(v["per_page"].to_string(), ok);
    }
    assert_eq!(
        status(&sim, "/time_entries?page=0", harvest_sim::PAT_ADMIN),
        422
    );
}

#[test]
fn sort_orders() {
    let sim = small();
    let check_desc = |path: &str, key: &str| {
        let v = get_json(&sim, path);
        let ids = ids_of(&v[key]);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{path} id desc");
    };
    for (p, k) in [
        ("/clients", "clients"),
        ("/projects", "projects"),
        ("/users", "users"),
        ("/tasks", "tasks"),
        ("/roles", "roles"),
        ("/task_assignments", "task_assignments"),
        ("/user_assignments", "user_assignments"),
        ("/invoice_item_categories", "invoice_item_categories"),
        ("/expense_categories", "expense_categories"),
    ] {
        check_desc(p, k);
    }
    let v = get_json(&sim, "/expenses");
    let e = v["expenses"].as_array().unwrap();
    for w in e.windows(2) {
        assert!(
            (w[0]["spent_date"].as_str(), w[0]["id"].as_i64())
                > (w[1]["spent_date"].as_str(), w[1]["id"].as_i64())
        );
    }
    let v = get_json(&sim, "/estimates");
    let e = v["estimates"].as_array().unwrap();
    for w in e.windows(2) {
        assert!(
            (w[0]["issue_date"].as_str(), w[0]["id"].as_i64())
                > (w[1]["issue_date"].as_str(), w[1]["id"].as_i64())
        );
    }
    // Rates: start_date ascending.
    for user in sim.truth("users") {
        let id = user["id"].as_i64().unwrap();
        let v = get_json(&sim, &format!("/users/{id}/billable_rates"));
        let r = v["billable_rates"].as_array().unwrap();
        for w in r.windows(2) {
            assert!(w[0]["start_date"].as_str() <= w[1]["start_date"].as_str());
            assert!(
                w[0]["end_date"].is_string(),
                "only the last rate is open-ended"
            );
        }
    }
    // Teammates: id descending, like the other cursor lists.
    for user in sim.truth("users") {
        if !user["access_roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "manager")
        {
            continue;
        }
        let id = user["id"].as_i64().unwrap();
        check_desc(&format!("/users/{id}/teammates"), "teammates");
    }
}

#[test]
fn updated_since_filter() {
    let sim = small();
    let since = "2025-06-01T00:00:00Z";
    let truth = sim.truth("time_entries");
    let expected: BTreeSet<i64> = truth
        .iter()
        .filter(|t| t["updated_at"].as_str().unwrap() >= since)
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let pages = walk(&format!(
        "{}/time_entries?updated_since={}",
        sim.base_url(),
        since
    ));
    let recs = records(&pages, "time_entries");
    assert_eq!(id_set(&recs), expected);
    assert!(!expected.is_empty() && expected.len() < truth.len());
    // Links carry the filter, alphabetical order.
    let last = pages[0]["links"]["last"].as_str().unwrap();
    assert_eq!(param_names(last), vec!["page", "per_page", "updated_since"]);
    // An offset form works when percent-encoded.
    let v = get_json(&sim, "/clients?updated_since=2025-06-01T02:00:00%2B02:00");
    let n = sim
        .truth("clients")
        .iter()
        .filter(|c| c["updated_at"].as_str().unwrap() >= since)
        .count();
    assert_eq!(v["total_entries"].as_u64().unwrap() as usize, n);
    // Malformed values are 400s.
    for bad in [
        "2010-01-01%2000:00:00%2B00:00",
        "2010-01-01",
        "2010-01-01T00:00:00",
        "yesterday",
        "2010-01-01T00:00:00%2000:00",
    ] {
        let r = get(&sim, &format!("/users?updated_since={bad}"));
        assert_eq!(r.status().as_u16(), 400, "updated_since={bad}");
        assert!(r.json::<Value>().unwrap()["message"].is_string());
    }
}

#[test]
fn from_to_and_other_filters() {
    let sim = small();
    let v = get_json(&sim, "/time_entries?from=2024-03-01&to=2024-03-31");
    let te = v["time_entries"].as_array().unwrap();
    assert!(!te.is_empty());
    let n = sim
        .truth("time_entries")
        .iter()
        .filter(|t| {
            let d = t["spent_date"].as_str().unwrap();
            ("2024-03-01"..="2024-03-31").contains(&d)
        })
        .count();
    assert_eq!(te.len(), n);
    let v = get_json(&sim, "/invoices?from=2023-01-01&to=2023-06-30");
    for i in v["invoices"].as_array().unwrap() {
        let d = i["issue_date"].as_str().unwrap();
        assert!(("2023-01-01"..="2023-06-30").contains(&d));
    }
    assert_eq!(
        status(&sim, "/time_entries?from=March", harvest_sim::PAT_ADMIN),
        400
    );

    let clients = sim.truth("clients");
    let active = clients.iter().filter(|c| c["is_active"] == true).count();
    let v = get_json(&sim, "/clients?is_active=true");
    assert_eq!(v["total_entries"].as_u64().unwrap() as usize, active);
    let v = get_json(&sim, "/clients?is_active=false");
    assert_eq!(
        v["total_entries"].as_u64().unwrap() as usize,
        clients.len() - active
    );

    let client_id = sim.truth("projects")[0]["client"]["id"].as_i64().unwrap();
    let v = get_json(&sim, &format!("/projects?client_id={client_id}"));
    assert!(v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["client"]["id"] == client_id));

    let te = &sim.truth("time_entries")[0];
    let (pid, uid) = (
        te["project"]["id"].as_i64().unwrap(),
        te["user"]["id"].as_i64().unwrap(),
    );
    let v = get_json(
        &sim,
        &format!("/time_entries?project_id={pid}&user_id={uid}"),
    );
    let got = v["time_entries"].as_array().unwrap();
    assert!(!got.is_empty());
    assert!(got
        .iter()
        .all(|t| t["project"]["id"] == pid && t["user"]["id"] == uid));
    let links = v["links"]["first"].as_str().unwrap();
    assert_eq!(
        param_names(links),
        vec!["page", "per_page", "project_id", "user_id"]
    );

    let v = get_json(&sim, &format!("/user_assignments?user_id={uid}"));
    assert!(v["user_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["user"]["id"] == uid));
}

#[test]
fn unknown_paths_and_ids_are_html_404s() {
    let sim = tiny();
    for path in [
        "/nope",
        "/invoices/1/messages",
        "/users/99/billable_rates",
        "/users/99/teammates",
        "/users/me/teammates",
        "/clients/1",
        "/invoices/abc/payments",
    ] {
        let r = get(&sim, path);
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{ct}");
        let body = r.text().unwrap();
        assert!(body.contains("<title>HARVEST: Can't find page</title>"));
    }
    // Outside /v2 too.
    let r = client()
        .get(format!("http://{}/api/v1/whatever", sim.addr()))
        .header("User-Agent", UA)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Auth comes first.
    let r = client()
        .get(format!("{}/nope", sim.base_url()))
        .header("User-Agent", UA)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Single objects exist for the top-level resources.
    let id = sim.truth("clients")[0]["id"].as_i64().unwrap();
    let v = get_json(&sim, &format!("/clients/{id}"));
    assert_eq!(v["id"], id);
}

#[test]
fn every_response_has_a_date_header() {
    let sim = tiny();
    for path in ["/company", "/nope", "/clients?per_page=0"] {
        let r = get(&sim, path);
        assert!(r.headers().contains_key("date"), "{path}");
    }
}

#[test]
fn sim_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sim>();
    assert_send_sync::<harvest_sim::RequestStats>();
}

fn is_manager(user: &Value) -> bool {
    user["access_roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "manager")
}

#[test]
fn teammates_of_a_manager_in_cursor_and_page_mode() {
    let sim = tiny();
    let manager = sim.info()["users"]["manager"].as_i64().unwrap();
    let truth: Vec<Value> = sim
        .truth("teammates")
        .into_iter()
        .filter(|t| t["user_id"] == manager)
        .collect();
    assert!(truth.len() >= 2, "the manager token's user has teammates");

    // One page with everything: the envelope, teammate objects of exactly four fields.
    let v = get_json(&sim, &format!("/users/{manager}/teammates"));
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().next().unwrap(), "teammates");
    for k in ENVELOPE_KEYS {
        assert!(obj.contains_key(*k), "missing {k}");
    }
    let served = v["teammates"].as_array().unwrap();
    assert_eq!(v["total_entries"], truth.len() as u64);
    assert_eq!(v["page"], 1);
    assert_eq!(v["next_page"], Value::Null);
    assert_eq!(v["links"]["next"], Value::Null);
    let first = v["links"]["first"].as_str().unwrap();
    assert_eq!(
        first,
        format!(
            "{}/users/{manager}/teammates?page=1&per_page=2000&ref=first",
            sim.base_url()
        )
    );
    let users = sim.truth("users");
    for t in served {
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "first_name", "last_name", "email"]);
        assert_ne!(t["id"], manager, "never themselves");
        let u = users.iter().find(|u| u["id"] == t["id"]).unwrap();
        for f in ["first_name", "last_name", "email"] {
            assert_eq!(t[f], u[f], "{f}");
        }
    }
    let want = ids_of(&v["teammates"]);
    assert!(want.windows(2).all(|w| w[0] > w[1]), "id desc");

    // Cursor mode, one record a page: first/last pages populated, keyset cursors on id.
    let pages = walk(&format!(
        "{}/users/{manager}/teammates?per_page=1",
        sim.base_url()
    ));
    let n = pages.len();
    assert_eq!(n, truth.len());
    assert_eq!(pages[0]["page"], 1);
    assert_eq!(pages[0]["next_page"], 2);
    assert_eq!(pages[0]["total_pages"], n as u64);
    assert_eq!(pages[0]["links"]["previous"], Value::Null);
    let next = pages[0]["links"]["next"].as_str().unwrap();
    assert_eq!(param_names(next), vec!["cursor", "per_page", "ref"]);
    assert_eq!(query_param(next, "ref").as_deref(), Some("next_cursor"));
    let last = &pages[n - 1];
    assert_eq!(last["page"], n as u64);
    assert_eq!(last["previous_page"], (n - 1) as u64);
    assert_eq!(last["links"]["next"], Value::Null);
    let prev = last["links"]["previous"].as_str().unwrap();
    assert_eq!(query_param(prev, "ref").as_deref(), Some("prev_cursor"));
    assert_eq!(
        ids_of(&get_url(prev).json::<Value>().unwrap()["teammates"]),
        ids_of(&pages[n - 2]["teammates"]),
        "previous cursor"
    );
    assert_eq!(ids(&records(&pages, "teammates")), want);

    // Page mode on request.
    let v = get_json(
        &sim,
        &format!("/users/{manager}/teammates?page=2&per_page=1"),
    );
    assert_eq!(v["page"], 2);
    assert_eq!(v["previous_page"], 1);
    assert_eq!(ids_of(&v["teammates"]), vec![want[1]]);
    let link = v["links"]["first"].as_str().unwrap();
    assert_eq!(param_names(link), vec!["page", "per_page"]);

    // No filters: updated_since is ignored (even malformed), as for billable rates.
    for q in [
        "updated_since=2100-01-01T00:00:00Z",
        "updated_since=yesterday",
    ] {
        let v = get_json(&sim, &format!("/users/{manager}/teammates?{q}"));
        assert_eq!(ids_of(&v["teammates"]), want, "{q}");
    }
}

#[test]
fn teammates_of_a_non_manager_is_422_json() {
    let sim = tiny();
    let users = sim.truth("users");
    let others: Vec<i64> = users
        .iter()
        .filter(|u| !is_manager(u))
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert!(!others.is_empty());
    for id in others {
        let r = get(&sim, &format!("/users/{id}/teammates"));
        assert_eq!(r.status().as_u16(), 422, "user {id}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        let v: Value = r.json().unwrap();
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(sim.truth("teammates").iter().all(|t| {
        let m = users.iter().find(|u| u["id"] == t["user_id"]).unwrap();
        is_manager(m)
    }));
}

#[test]
fn teammates_truth_equals_what_the_api_serves_across_pages() {
    for (sim, min_managers) in [(tiny(), 1), (small(), 2)] {
        let truth = sim.truth("teammates");
        let mut served: Vec<Value> = Vec::new();
        let mut managers = 0;
        for u in sim.truth("users") {
            let id = u["id"].as_i64().unwrap();
            let path = format!("/users/{id}/teammates?per_page=2");
            if !is_manager(&u) {
                assert_eq!(status(&sim, &path, harvest_sim::PAT_ADMIN), 422);
                continue;
            }
            let pages = walk(&format!("{}{path}", sim.base_url()));
            let recs = records(&pages, "teammates");
            assert!(!recs.is_empty(), "manager {id} has teammates");
            managers += 1;
            served.extend(recs.into_iter().map(|mut t| {
                t.as_object_mut()
                    .unwrap()
                    .insert("user_id".into(), Value::from(id));
                t
            }));
        }
        assert!(managers >= min_managers, "{managers} managers");
        let key = |v: &Value| (v["user_id"].as_i64(), v["id"].as_i64());
        let mut t = truth.clone();
        t.sort_by_key(key);
        served.sort_by_key(key);
        assert_eq!(served, t);
        let keys: BTreeSet<_> = truth.iter().map(key).collect();
        assert_eq!(keys.len(), truth.len(), "(user_id, id) is a key");
    }
}
