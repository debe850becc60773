//! Auth (headers, PATs, OAuth refresh and expiry, accounts), permissions, features, rate limits.

use std::time::{Duration, Instant};

use crate::common::*;
use harvest_sim::*;
use serde_json::Value;

const INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed or invalid for other reasons.";

fn tiny() -> Sim {
    Sim::start(SimConfig::fast(Size::Tiny)).expect("start")
}

fn raw_get(url: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut rb = client().get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().unwrap()
}

fn assert_invalid_token(r: reqwest::blocking::Response) {
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"], "invalid_token");
    assert_eq!(v["error_description"], INVALID_TOKEN);
}

#[test]
fn headers_and_tokens() {
    let sim = tiny();
    let url = format!("{}/clients", sim.base_url());
    let bearer = format!("Bearer {PAT_ADMIN}");
    // No User-Agent: 400 even with good credentials.
    let r = raw_get(
        &url,
        &[
            ("Authorization", &bearer),
            ("Harvest-Account-Id", ACCOUNT_ID),
        ],
    );
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.json::<Value>().unwrap()["message"].is_string());
    let r = raw_get(
        &url,
        &[
            ("User-Agent", ""),
            ("Authorization", &bearer),
            ("Harvest-Account-Id", ACCOUNT_ID),
        ],
    );
    assert_eq!(r.status().as_u16(), 400);
    // Bad token, missing token, missing or wrong account: the invalid_token body.
    assert_invalid_token(raw_get(
        &url,
        &[
            ("User-Agent", UA),
            ("Authorization", "Bearer nope"),
            ("Harvest-Account-Id", ACCOUNT_ID),
        ],
    ));
    assert_invalid_token(raw_get(
        &url,
        &[("User-Agent", UA), ("Harvest-Account-Id", ACCOUNT_ID)],
    ));
    assert_invalid_token(raw_get(
        &url,
        &[("User-Agent", UA), ("Authorization", &bearer)],
    ));
    assert_invalid_token(raw_get(
        &url,
        &[
            ("User-Agent", UA),
            ("Authorization", &bearer),
            ("Harvest-Account-Id", "7654321"),
        ],
    ));
    // The header name is case-insensitive and the good request works.
    let r = raw_get(
        &url,
        &[
            ("User-Agent", UA),
            ("Authorization", &bearer),
            ("Harvest-Account-ID", ACCOUNT_ID),
        ],
    );
    assert_eq!(r.status().as_u16(), 200);
    // Query-string credentials are accepted too, and not carried into links.
    let r = raw_get(
        &format!("{url}?access_token={PAT_ADMIN}&account_id={ACCOUNT_ID}"),
        &[("User-Agent", UA)],
    );
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert!(!v["links"]["first"]
        .as_str()
        .unwrap()
        .contains("access_token"));
}

fn refresh(sim: &Sim, form: &[(&str, &str)], ua: bool) -> reqwest::blocking::Response {
    let mut rb = client()
        .post(format!("{}/oauth2/token", sim.auth_url()))
        .form(form);
    if ua {
        rb = rb.header("User-Agent", UA);
    }
    rb.send().unwrap()
}

#[test]
fn oauth_refresh_expiry_and_accounts() {
    let sim = Sim::start(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..SimConfig::fast(Size::Tiny)
    })
    .unwrap();
    let good = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_MEMBER),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let r = refresh(&sim, &good, true);
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["refresh_token"], REFRESH_MEMBER);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 1);
    let access = v["access_token"].as_str().unwrap().to_string();
    let v2: Value = refresh(&sim, &good, true).json().unwrap();
    assert_ne!(v2["access_token"].as_str().unwrap(), access, "fresh tokens");

    // The access token works with the member's permissions.
    assert_eq!(status(&sim, "/time_entries", &access), 200);
    assert_eq!(status(&sim, "/clients", &access), 403);

    // Accounts: Forecast first, then Harvest; no account header needed.
    let r = raw_get(
        &format!("{}/accounts", sim.auth_url()),
        &[
            ("User-Agent", UA),
            ("Authorization", &format!("Bearer {access}")),
        ],
    );
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["accounts"][0]["product"], "forecast");
    assert_eq!(v["accounts"][0]["id"], FORECAST_ACCOUNT_ID);
    assert_eq!(v["accounts"][1]["product"], "harvest");
    assert_eq!(v["accounts"][1]["id"].to_string(), ACCOUNT_ID);
    assert!(v["user"]["id"].is_i64());
    assert_invalid_token(raw_get(
        &format!("{}/accounts", sim.auth_url()),
        &[("User-Agent", UA), ("Authorization", "Bearer nope")],
    ));

    // After the TTL the token is refused; PATs never expire.
    std::thread::sleep(Duration::from_millis(1300));
    assert_invalid_token(get_as(&sim, "/time_entries", &access));
    assert_eq!(status(&sim, "/time_entries", PAT_MEMBER), 200);

    // Bad inputs.
    let bad_secret = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_ADMIN),
        ("client_id", CLIENT_ID),
        ("client_secret", "wrong"),
    ];
    let r = refresh(&sim, &bad_secret, true);
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_client");
    let bad_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "nope"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let r = refresh(&sim, &bad_grant, true);
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"], "invalid_grant");
    assert!(v["error_description"].is_string());
    assert_eq!(
        refresh(&sim, &good, false).status().as_u16(),
        400,
        "UA required"
    );

    // Expire on demand.
    let v: Value = refresh(&sim, &good, true).json().unwrap();
    let t = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(status(&sim, "/tasks", &t), 200);
    sim.expire_access_tokens();
    assert_eq!(status(&sim, "/tasks", &t), 401);
}

#[test]
fn permissions_per_role() {
    let sim = tiny();
    let member_id = sim.info()["users"]["member"].as_i64().unwrap();
    let admin_id = sim.info()["users"]["administrator"].as_i64().unwrap();
    let manager_id = sim.info()["users"]["manager"].as_i64().unwrap();
    let invoice = sim.truth("invoices")[0]["id"].as_i64().unwrap();
    let all: Vec<String> = vec![
        "/company".into(),
        "/users/me".into(),
        "/users/me/project_assignments".into(),
        format!("/users/{member_id}/project_assignments"),
        format!("/users/{admin_id}/project_assignments"),
        "/clients".into(),
        "/contacts".into(),
        "/invoices".into(),
        format!("/invoices/{invoice}/messages"),
        format!("/invoices/{invoice}/payments"),
        "/invoice_item_categories".into(),
        "/estimates".into(),
        "/estimate_item_categories".into(),
        "/expenses".into(),
        "/expense_categories".into(),
        "/tasks".into(),
        "/time_entries".into(),
        "/projects".into(),
        "/user_assignments".into(),
        "/task_assignments".into(),
        "/roles".into(),
        "/users".into(),
        format!("/users/{admin_id}/billable_rates"),
        format!("/users/{admin_id}/cost_rates"),
        format!("/users/{manager_id}/teammates"),
        "/reports/time/team?from=20250101&to=20251231".into(),
        "/reports/expenses/team?from=20250101&to=20251231".into(),
        "/reports/uninvoiced?from=20250101&to=20251231".into(),
        "/reports/project_budget".into(),
    ];
    let member_ok = |p: &str| {
        p == "/company"
            || p.starts_with("/users/me")
            || p == format!("/users/{member_id}/project_assignments")
            || p == "/tasks"
            || p == "/time_entries"
            || p == "/expenses"
            || p.starts_with("/reports/time/")
            || p.starts_with("/reports/expenses/")
    };
    let manager_denied = |p: &str| {
        p == "/roles"
            || p == "/estimate_item_categories"
            || p.ends_with("/cost_rates")
            || p.ends_with("/teammates")
            || p == "/expense_categories"
    };
    for p in &all {
        assert_eq!(status(&sim, p, PAT_ADMIN), 200, "admin {p}");
        let want = if manager_denied(p) { 403 } else { 200 };
        assert_eq!(status(&sim, p, PAT_MANAGER), want, "manager {p}");
        let want = if member_ok(p) { 200 } else { 403 };
        let r = get_as(&sim, p, PAT_MEMBER);
        assert_eq!(r.status().as_u16(), want, "member {p}");
        if want == 403 {
            assert!(r.json::<Value>().unwrap()["message"].is_string());
        }
    }
    // 403 comes before 404 for unknown parents.
    assert_eq!(status(&sim, "/users/1/cost_rates", PAT_MANAGER), 403);
    assert_eq!(status(&sim, "/users/1/cost_rates", PAT_ADMIN), 404);
    // Teammates: admin only, even for the manager's own list; 403 before 422 and 404.
    for token in [PAT_MANAGER, PAT_MEMBER] {
        for p in [
            format!("/users/{manager_id}/teammates"),
            format!("/users/{member_id}/teammates"),
            "/users/1/teammates".to_string(),
        ] {
            let r = get_as(&sim, &p, token);
            assert_eq!(r.status().as_u16(), 403, "{token} {p}");
            assert!(r.json::<Value>().unwrap()["message"].is_string());
        }
    }
    assert_eq!(
        status(&sim, &format!("/users/{member_id}/teammates"), PAT_ADMIN),
        422
    );
    assert_eq!(status(&sim, "/users/1/teammates", PAT_ADMIN), 404);
    // Members see only their own time and expenses.
    let me = get_as(&sim, "/users/me", PAT_MEMBER)
        .json::<Value>()
        .unwrap();
    assert_eq!(me["id"], member_id);
    let v: Value = get_as(&sim, "/time_entries", PAT_MEMBER).json().unwrap();
    let mine = v["time_entries"].as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|t| t["user"]["id"] == member_id));
    let all_te = sim.truth("time_entries");
    assert!(mine.len() < all_te.len());
    let v: Value = get_as(&sim, "/expenses", PAT_MEMBER).json().unwrap();
    assert!(v["expenses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["user"]["id"] == member_id));
}

#[test]
fn features_switch_endpoints_off() {
    let sim = Sim::start(SimConfig {
        features: Features {
            invoice: false,
            estimate: true,
            expense: false,
        },
        ..SimConfig::fast(Size::Tiny)
    })
    .unwrap();
    let invoice = sim.truth("invoices")[0]["id"].as_i64().unwrap();
    for p in [
        "/invoices".to_string(),
        format!("/invoices/{invoice}/messages"),
        format!("/invoices/{invoice}/payments"),
        "/invoice_item_categories".into(),
        "/expenses".into(),
        "/expense_categories".into(),
        "/reports/expenses/clients?from=20250101&to=20251231".into(),
    ] {
        assert_eq!(status(&sim, &p, PAT_ADMIN), 403, "{p}");
    }
    assert_eq!(status(&sim, "/estimates", PAT_ADMIN), 200);
    let c = get_json(&sim, "/company");
    assert_eq!(c["invoice_feature"], false);
    assert_eq!(c["expense_feature"], false);
    assert_eq!(c["estimate_feature"], true);
    sim.set_features(Features {
        invoice: true,
        estimate: false,
        expense: true,
    });
    assert_eq!(status(&sim, "/invoices", PAT_ADMIN), 200);
    assert_eq!(status(&sim, "/estimates", PAT_ADMIN), 403);
    assert_eq!(status(&sim, "/estimate_item_categories", PAT_ADMIN), 403);
    assert_eq!(get_json(&sim, "/company")["estimate_feature"], false);
}

#[test]
fn rate_limit_sliding_window() {
    let sim = Sim::start(SimConfig {
        rate_limit: Some(RateLimit::new(5, Duration::from_secs(2))),
        reports_rate_limit: Some(RateLimit::new(3, Duration::from_secs(30))),
        ..SimConfig::default()
    })
    .unwrap();
    for _ in 0..5 {
        assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    }
    let t0 = Instant::now();
    for _ in 0..4 {
        let r = get(&sim, "/tasks");
        assert_eq!(r.status().as_u16(), 429);
        let ra: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&ra), "Retry-After {ra}");
        assert!(r.json::<Value>().unwrap()["message"].is_string());
    }
    // Another token has its own window.
    assert_eq!(status(&sim, "/tasks", PAT_MANAGER), 200);
    // Throttled requests are not counted: once the first five leave the window, five more pass.
    let elapsed = t0.elapsed();
    if elapsed < Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(2100) - elapsed);
    }
    for _ in 0..5 {
        assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    }
    assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 429);

    // Reports have their own window.
    let rep = "/reports/time/clients?from=20250101&to=20251231";
    for _ in 0..3 {
        assert_eq!(status(&sim, rep, PAT_MANAGER), 200);
    }
    let r = get_as(&sim, rep, PAT_MANAGER);
    assert_eq!(r.status().as_u16(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&ra), "reports Retry-After {ra}");
    // The general window of that token is not affected by the reports one.
    assert_eq!(status(&sim, "/tasks", PAT_MANAGER), 200);

    let stats = sim.requests();
    assert!(stats.throttled >= 6);
    assert_eq!(stats.throttled, stats.status(429));
    assert!(stats.route_status("GET /v2/tasks", 429) >= 5);
    assert_eq!(stats.route_status("GET /v2/reports/time/clients", 429), 1);

    // Switchable off at run time.
    sim.set_rate_limits(None, None);
    for _ in 0..20 {
        assert_eq!(status(&sim, "/tasks", PAT_ADMIN), 200);
    }
}

#[test]
fn default_config_has_harvest_limits_and_fast_has_none() {
    let d = SimConfig::default();
    assert_eq!(
        d.rate_limit,
        Some(RateLimit::new(100, Duration::from_secs(15)))
    );
    assert_eq!(
        d.reports_rate_limit,
        Some(RateLimit::new(100, Duration::from_secs(900)))
    );
    assert_eq!(d.seed, 42);
    assert_eq!(d.size, Size::Tiny);
    assert_eq!(d.token_ttl, Duration::from_secs(3600));
    let f = SimConfig::fast(Size::Small);
    assert!(f.rate_limit.is_none() && f.reports_rate_limit.is_none());
    assert_eq!(f.size, Size::Small);
}
