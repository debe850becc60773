//! The tap against the simulator: what a target receives equals Harvest's data.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::util::*;

fn all_streams() -> Vec<String> {
    let catalog = discover();
    catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tap_stream_id"].as_str().unwrap().to_string())
        .collect()
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn discover_lists_every_stream_without_a_request() {
    let h = Harness::tiny();
    let run = run_raw(&[
        "--discover",
        "--config",
        h.write("config.json", &h.config()).to_str().unwrap(),
    ]);
    run.assert_ok();
    let catalog: Value = serde_json::from_str(&run.stdout).unwrap();
    let entries = catalog["streams"].as_array().unwrap();
    assert_eq!(entries.len(), STREAMS.len(), "every declared stream");
    for e in entries {
        let md = &e["metadata"][0]["metadata"];
        assert!(
            md["table-key-properties"].is_array() && md["forced-replication-method"].is_string()
        );
        assert!(
            md["valid-replication-keys"].is_array() && md["selected-by-default"] == json!(true)
        );
        let keys = md["table-key-properties"].as_array().unwrap();
        for k in nonempty(keys, &format!("{}: key properties", e["tap_stream_id"])) {
            let crumb = e["metadata"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["breadcrumb"] == json!(["properties", k]))
                .unwrap();
            assert_eq!(crumb["metadata"]["inclusion"], "automatic");
        }
    }
    assert_eq!(h.sim.requests().total, 0, "discover must not call Harvest");
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/catalog.example.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        example, catalog,
        "catalog.example.json is the discover output: regenerate it"
    );
}

#[test]
fn full_sync_of_every_stream_equals_ground_truth() {
    let h = Harness::tiny();
    let run = h.sync(&h.config(), None, None);
    run.assert_ok();
    run.assert_valid_singer();
    for stream in nonempty(&all_streams(), "discovered streams") {
        assert_matches_truth(&run, &h.sim, stream);
    }
    let state = run.last_state();
    for def in STREAMS {
        let b = &state["bookmarks"][def.name];
        match def.bookmark_key() {
            Some(key) => assert!(
                b[&key].is_string(),
                "{} has no {key} bookmark in {state}",
                def.name
            ),
            None => assert!(b.is_null(), "{} is full-table but has a bookmark", def.name),
        }
    }
}

#[test]
fn multi_page_sync_in_both_pagination_modes() {
    let h = Harness::new(SimConfig::fast(Size::Small));
    let streams = [
        "time_entries",
        "external_reference",
        "invoices",
        "contacts",
        "invoice_line_items",
        "invoice_payments",
        "clients",
        "expenses",
        "user_teammates",
    ];
    let run = h.sync(&h.config(), Some(&catalog_selecting(&streams)), None);
    run.assert_ok();
    run.assert_valid_singer();
    for s in streams {
        assert_matches_truth(&run, &h.sim, s);
    }
    assert!(run.records("time_entries").len() > 4000 && run.records("contacts").len() > 2000);
    // An external reference shared by many time entries is sent once.
    let refs = run.records("external_reference");
    let distinct: BTreeSet<String> = refs.iter().map(|r| r["id"].to_string()).collect();
    let referencing = h
        .sim
        .truth("time_entries")
        .iter()
        .filter(|t| t["external_reference"].is_object())
        .count();
    assert!(
        referencing > distinct.len(),
        "no shared reference: the test proves nothing"
    );
    assert_eq!(refs.len(), distinct.len(), "a reference was sent twice");
    // Teammates are read for managers only: no request Harvest would refuse with 422.
    let teammates = &h.sim.requests().by_route["GET /v2/users/{id}/teammates"];
    assert!(
        teammates.keys().all(|status| status == "200"),
        "{teammates:?}"
    );
    let managers: BTreeSet<String> = run
        .records("user_teammates")
        .iter()
        .map(|r| r["user_id"].to_string())
        .collect();
    assert!(managers.len() > 1 && teammates["200"] >= managers.len() as u64);
    assert_eq!(
        run.streams_with_records(),
        streams
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn incremental_sync_emits_every_change_and_nothing_older_than_its_bookmark() {
    let h = Harness::tiny();
    let first = h.sync(&h.config(), None, None);
    first.assert_ok();
    let state = first.last_state();
    // Let the clock move past the bookmarks' second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut changed = Vec::new();
    for res in [
        "clients",
        "time_entries",
        "invoices",
        "invoice_payments",
        "invoice_messages",
        "estimate_messages",
        "users",
        "project_assignments",
        "billable_rates",
        "roles",
        "task_assignments",
    ] {
        let m = h.sim.mutate(res, 2, 1);
        changed.push((res, m));
    }
    h.sim.reset_requests();
    let second = h.sync(&h.config(), None, Some(&state));
    second.assert_ok();
    second.assert_valid_singer();
    for (res, m) in &changed {
        let stream = all_streams()
            .into_iter()
            .find(|s| resource_of(s) == Some(res))
            .unwrap();
        let ids: BTreeSet<String> = second
            .records(&stream)
            .iter()
            .map(|r| r["id"].to_string())
            .collect();
        let ids_changed: Vec<&i64> = m.updated.iter().chain(&m.created).collect();
        for id in nonempty(&ids_changed, &format!("{res}: records changed")) {
            assert!(
                ids.contains(&id.to_string()),
                "{stream}: changed record {id} not emitted by the incremental sync"
            );
        }
    }
    // Every record of a stream with an updated_at bookmark is at least as new as it (but for a
    // stream read on signs, which sends every row of a user with a sign).
    let (mut bookmarked, mut compared) = (0, 0);
    for stream in all_streams() {
        if streams::find(&stream).is_some_and(|d| d.moves_with_signs()) {
            continue;
        }
        let Some(b) = state["bookmarks"][&stream]["updated_at"].as_str() else {
            continue;
        };
        bookmarked += 1;
        let bookmark = ts(&json!(b));
        for r in second.records(&stream) {
            assert!(
                ts(&r["updated_at"]) >= bookmark,
                "{stream}: record {} older than the bookmark {b} re-emitted",
                r["id"]
            );
            compared += 1;
        }
    }
    assert_checked(bookmarked, "streams with an updated_at bookmark");
    assert_checked(
        compared,
        "records of the incremental sync against their bookmark",
    );
    // Messages and payments were fetched only for the invoices that changed, not all of them.
    let stats = h.sim.requests();
    let per_invoice = stats
        .by_route
        .get("GET /v2/invoices/{id}/messages")
        .map(|s| s.values().sum::<u64>())
        .unwrap_or(0);
    assert!(
        per_invoice > 0 && (per_invoice as usize) < h.sim.truth("invoices").len(),
        "{per_invoice} message requests"
    );
    // And the second run moved the bookmarks forward from the first.
    let later = second.last_state();
    assert!(
        ts(&later["bookmarks"]["clients"]["updated_at"])
            > ts(&state["bookmarks"]["clients"]["updated_at"])
    );
}

#[test]
fn input_state_is_carried_forward_and_legacy_state_migrated() {
    let h = Harness::tiny();
    let catalog = catalog_selecting(&["clients"]);
    let state = json!({"bookmarks": {"some_old_stream": {"updated_at": "2020-01-01T00:00:00Z"}, "tasks": {"updated_at": "2021-01-01T00:00:00Z"}}});
    let run = h.sync(&h.config(), Some(&catalog), Some(&state));
    run.assert_ok();
    let out = run.last_state();
    assert_eq!(
        out["bookmarks"]["some_old_stream"],
        state["bookmarks"]["some_old_stream"]
    );
    assert_eq!(out["bookmarks"]["tasks"], state["bookmarks"]["tasks"]);
    assert!(out["bookmarks"]["clients"]["updated_at"].is_string());

    // The singer-io 2.x flat layout: its bookmark is honoured, not restarted from start_date.
    let newest = h
        .sim
        .truth("clients")
        .iter()
        .map(|c| ts(&c["updated_at"]))
        .max()
        .unwrap();
    let flat = json!({"clients": newest.to_rfc3339()});
    let run = h.sync(&h.config(), Some(&catalog), Some(&flat));
    run.assert_ok();
    assert!(
        nonempty(&run.records("clients"), "clients since the flat bookmark")
            .iter()
            .all(|r| ts(&r["updated_at"]) >= newest)
    );
    assert!(run.records("clients").len() < h.sim.truth("clients").len());
}

#[test]
fn selecting_a_child_reads_its_parent_without_emitting_it() {
    let h = Harness::tiny();
    let mut catalog = catalog_selecting(&["invoice_line_items", "user_project_tasks"]);
    // Deselect a property: it disappears from records and SCHEMA, keys stay.
    let entry = catalog["streams"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["tap_stream_id"] == "invoice_line_items")
        .unwrap();
    for m in entry["metadata"].as_array_mut().unwrap() {
        if m["breadcrumb"] == json!(["properties", "description"])
            || m["breadcrumb"] == json!(["properties", "id"])
        {
            m["metadata"]["selected"] = json!("false");
        }
    }
    let run = h.sync(&h.config(), Some(&catalog), None);
    run.assert_ok();
    run.assert_valid_singer();
    assert_eq!(
        run.streams_with_records(),
        ["invoice_line_items", "user_project_tasks"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let schemas: BTreeSet<&str> = run
        .messages
        .iter()
        .filter(|m| m["type"] == "SCHEMA")
        .map(|m| m["stream"].as_str().unwrap())
        .collect();
    assert_eq!(
        schemas,
        ["invoice_line_items", "user_project_tasks"]
            .into_iter()
            .collect()
    );
    let items = run.records("invoice_line_items");
    assert!(nonempty(&items, "invoice line items")
        .iter()
        .all(|r| !r.contains_key("description") && r.contains_key("id")));
    assert!(run.schema("invoice_line_items")["schema"]["properties"]
        .get("description")
        .is_none());
    assert_matches_truth(&run, &h.sim, "user_project_tasks");
    let stats = h.sim.requests();
    assert!(stats.by_route.contains_key("GET /v2/invoices"));
    assert!(
        !stats.by_route.contains_key("GET /v2/clients"),
        "unselected streams are not read"
    );
}

#[test]
fn oauth_refresh_picks_the_harvest_account() {
    let h = Harness::tiny();
    let run = h.sync(
        &h.oauth_config("sim-refresh-admin"),
        Some(&catalog_selecting(&["clients", "users"])),
        None,
    );
    run.assert_ok();
    assert_matches_truth(&run, &h.sim, "clients");
    assert!(!run.stderr.contains("sim-client-secret") && !run.stderr.contains("sim-refresh-admin"));

    let run = h.sync(&h.oauth_config("not-a-refresh-token"), None, None);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("OAuth token refresh failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-a-refresh-token"));
}

#[test]
fn forbidden_streams_are_skipped_with_a_warning_and_the_rest_finishes() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["access_token"] = json!("sim-pat-manager");
    let run = h.sync(&config, None, None);
    run.assert_ok();
    run.assert_valid_singer();
    // The administrators' streams, and what is made from them.
    let admin_only = streams_where(|d| {
        let mut cur = Some(d);
        while let Some(def) = cur {
            if def.role == "administrator" {
                return true;
            }
            cur = def.parent().and_then(streams::find);
        }
        false
    });
    assert!(admin_only.contains(&"user_teammates") && admin_only.contains(&"user_roles"));
    for s in admin_only {
        assert!(
            run.records(s).is_empty(),
            "{s} should be skipped for a manager"
        );
        assert!(
            run.stderr.contains(&format!("stream {s} was not synced")),
            "no skip notice for {s}:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("needs the administrator role"));
    for s in ["clients", "time_entries", "invoices", "user_billable_rates"] {
        assert_matches_truth(&run, &h.sim, s);
    }
    let state = run.last_state();
    assert!(
        state["bookmarks"].get("roles").is_none(),
        "a skipped stream's bookmark does not move"
    );
}

#[test]
fn features_turned_off_are_skipped_without_requests() {
    let mut cfg = SimConfig::fast(Size::Tiny);
    cfg.features.invoice = false;
    let h = Harness::new(cfg);
    let run = h.sync(&h.config(), None, None);
    run.assert_ok();
    assert!(run.records("invoices").is_empty() && run.records("invoice_line_items").is_empty());
    assert!(!run.records("estimates").is_empty());
    assert!(!h
        .sim
        .requests()
        .by_route
        .keys()
        .any(|r| r.starts_with("GET /v2/invoice")));
}

#[test]
fn retries_transient_failures_and_waits_out_429s() {
    let h = Harness::tiny();
    h.sim.add_fault(harvest_sim::Fault {
        path_prefix: "/v2/clients".into(),
        kind: harvest_sim::FaultKind::Status(503),
        trigger: harvest_sim::Trigger::FirstN(2),
    });
    h.sim.add_fault(harvest_sim::Fault {
        path_prefix: "/v2/tasks".into(),
        kind: harvest_sim::FaultKind::TruncatedJson,
        trigger: harvest_sim::Trigger::FirstN(1),
    });
    h.sim.add_fault(harvest_sim::Fault {
        path_prefix: "/v2/users".into(),
        kind: harvest_sim::FaultKind::Status429 { retry_after: 1 },
        trigger: harvest_sim::Trigger::FirstN(1),
    });
    let run = h.sync(
        &h.config(),
        Some(&catalog_selecting(&["clients", "tasks", "users"])),
        None,
    );
    run.assert_ok();
    for s in ["clients", "tasks", "users"] {
        assert_matches_truth(&run, &h.sim, s);
    }
    assert_eq!(
        h.sim.requests().by_route["GET /v2/clients"]
            .get("503")
            .copied(),
        Some(2)
    );
}

#[test]
fn the_rate_budget_is_kept_without_429s() {
    let mut cfg = SimConfig::fast(Size::Tiny);
    cfg.rate_limit = Some(harvest_sim::RateLimit {
        max_requests: 10,
        window: std::time::Duration::from_secs(1),
    });
    let h = Harness::new(cfg);
    let mut config = h.config();
    config["rate_limit_requests"] = json!(10);
    config["rate_limit_window_seconds"] = json!(1);
    let run = h.sync(&config, None, None);
    run.assert_ok();
    let stats = h.sim.requests();
    assert!(stats.total > 30, "{} requests", stats.total);
    assert_eq!(
        stats.throttled, 0,
        "the tap exceeded the budget it was given"
    );
}

#[test]
fn full_child_scan_checks_every_parent() {
    let h = Harness::tiny();
    let catalog = catalog_selecting(&["invoice_messages", "invoice_payments", "estimate_messages"]);
    let first = h.sync(&h.config(), Some(&catalog), None);
    first.assert_ok();
    let state = first.last_state();
    h.sim.reset_requests();
    let quiet = h.sync(&h.config(), Some(&catalog), Some(&state));
    quiet.assert_ok();
    // Nothing changed: at most the newest invoice (updated_since is inclusive) is checked.
    assert!(h.sim.requests().route("GET /v2/invoices/{id}/messages") <= 1);
    let mut config = h.config();
    config["full_child_scan"] = json!(true);
    h.sim.reset_requests();
    let full = h.sync(&config, Some(&catalog), Some(&state));
    full.assert_ok();
    let stats = h.sim.requests();
    let invoices = h.sim.truth("invoices").len();
    let estimates = h.sim.truth("estimates").len();
    assert_checked(invoices.min(estimates), "invoices and estimates");
    assert_eq!(
        stats.route("GET /v2/invoices/{id}/messages"),
        invoices as u64
    );
    assert_eq!(
        stats.route("GET /v2/invoices/{id}/payments"),
        invoices as u64
    );
    assert_eq!(
        stats.route("GET /v2/estimates/{id}/messages"),
        estimates as u64
    );
}

#[test]
fn a_feature_turned_off_without_company_selected_is_a_skipped_403() {
    let mut cfg = SimConfig::fast(Size::Tiny);
    cfg.features.invoice = false;
    let h = Harness::new(cfg);
    let run = h.sync(
        &h.config(),
        Some(&catalog_selecting(&[
            "invoices",
            "invoice_payments",
            "clients",
        ])),
        None,
    );
    run.assert_ok();
    assert!(run.records("invoices").is_empty());
    assert_matches_truth(&run, &h.sim, "clients");
    assert!(
        run.stderr.contains("stream invoices was not synced"),
        "{}",
        run.stderr
    );
    assert!(
        !h.sim.requests().by_route.contains_key("GET /v2/company"),
        "no request spent on /company"
    );
}

#[test]
fn pages_held_at_once_are_bounded_and_child_fan_out_runs_wide() {
    // Streams' own list pages and report pages share one pool: at most 3 are requested or
    // held at once, from the request to their last RECORD line (README, Performance),
    // whatever max_concurrency allows. Child fan-out requests (small pages, one parent each)
    // run max_concurrency wide.
    let h = Harness::new(SimConfig::fast(Size::Small));
    h.sim
        .set_latency(Duration::from_millis(10), Duration::from_millis(5), None);
    let mut config = h.config();
    config["max_concurrency"] = json!(16);
    let lists = [
        "time_entries",
        "invoices",
        "expenses",
        "estimates",
        "contacts",
        "projects",
        "clients",
        "tasks",
        "users",
        "report_time_projects",
        "report_expenses_clients",
    ];
    let run = h.sync(&config, Some(&catalog_selecting(&lists)), None);
    run.assert_ok();
    for s in lists {
        assert_matches_truth(&run, &h.sim, s);
    }
    let most = h.sim.requests().max_in_flight;
    assert_eq!(
        most,
        tap_harvest::client::PAGES_HELD as u64,
        "list and report requests at once"
    );

    h.sim.reset_requests();
    let run = h.sync(
        &config,
        Some(&catalog_selecting(&["invoice_messages"])),
        None,
    );
    run.assert_ok();
    assert_matches_truth(&run, &h.sim, "invoice_messages");
    let most = h.sim.requests().max_in_flight;
    assert!((8..=16).contains(&most), "{most} fan-out requests at once");
}

#[test]
fn full_table_asked_by_the_catalog_reads_everything_and_writes_no_bookmark() {
    let h = Harness::tiny();
    let mut catalog = catalog_selecting(&["clients", "tasks"]);
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let id = entry["tap_stream_id"].as_str().unwrap().to_string();
        let md = entry["metadata"].as_array_mut().unwrap();
        if id == "tasks" {
            md[0]["metadata"]["replication-method"] = json!("FULL_TABLE");
        } else if id == "clients" {
            // A property of another tap's catalog (singer-io's): ignored with a warning.
            md.push(
                json!({"breadcrumb": ["properties", "colour"], "metadata": {"selected": true}}),
            );
        }
    }
    // A state whose bookmarks would skip everything: the FULL_TABLE stream ignores its own.
    let state = json!({"bookmarks": {"tasks": {"updated_at": "2030-01-01T00:00:00Z"}}});
    let run = h.sync(&h.config(), Some(&catalog), Some(&state));
    run.assert_ok();
    assert_count_matches_truth(&run, &h.sim, "tasks");
    assert_count_matches_truth(&run, &h.sim, "clients");
    assert!(
        run.stderr
            .contains("catalog: stream \"clients\" has no property \"colour\"; ignored"),
        "{}",
        run.stderr
    );
    let bookmarks = &run.last_state()["bookmarks"];
    assert_eq!(
        bookmarks["tasks"]["updated_at"], "2030-01-01T00:00:00Z",
        "carried, not moved"
    );
    assert!(bookmarks["clients"]["updated_at"].is_string());
}

#[test]
fn unknown_config_keys_are_warned_about_and_the_sync_goes_on() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["max_retires"] = json!(3);
    config["colour"] = json!("blue");
    let run = h.sync(&config, Some(&catalog_selecting(&["clients"])), None);
    run.assert_ok();
    assert!(
        run.stderr.contains(
            "config key 'max_retires' is not a setting of tap-harvest; ignored (did you mean 'max_retries'?)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("config key 'colour' is not a setting of tap-harvest; ignored\n"),
        "{}",
        run.stderr
    );
    assert_count_matches_truth(&run, &h.sim, "clients");
}

#[test]
fn a_refused_token_is_diagnosed_by_harvest_id() {
    let h = Harness::tiny();
    let catalog = catalog_selecting(&["clients"]);
    let mut cases = Vec::new();
    let mut bad_token = h.config();
    bad_token["access_token"] = json!("wrong-token-123");
    cases.push((bad_token, "the access token is invalid, expired or revoked (Harvest ID refuses it too): create a new personal access token"));
    let mut other_account = h.config();
    other_account["account_id"] = json!("999");
    cases.push((
        other_account,
        "account_id 999 is not one of this token's accounts; the token's Harvest accounts: 1234567 (",
    ));
    let mut forecast = h.config();
    forecast["account_id"] = json!(harvest_sim::FORECAST_ACCOUNT_ID.to_string());
    cases.push((
        forecast,
        "account_id 7654321 is a Forecast account (Acme Forecast), not a Harvest one; the token's Harvest accounts: 1234567 (",
    ));
    for (config, needle) in cases {
        let run = h.sync(&config, Some(&catalog), None);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let critical = run.critical_lines();
        assert_eq!(critical.len(), 1, "{}", run.stderr);
        assert!(
            critical[0].contains("Harvest refused the credentials (401): "),
            "{}",
            critical[0]
        );
        assert!(critical[0].contains(needle), "{needle}\n{}", critical[0]);
        assert!(!run.stderr.contains("wrong-token-123"));
    }
}

/// The seconds of a progress line's `ETA 1 min 05 s` or `ETA 12 s`.
fn eta_seconds(line: &str) -> Option<f64> {
    let at = line.find("ETA ")? + 4;
    let rest = &line[at..line[at..].find(" (").map_or(line.len(), |e| at + e)];
    let mut total = 0.0;
    let words: Vec<&str> = rest.split_whitespace().collect();
    for pair in words.chunks(2) {
        let n: f64 = pair[0].parse().ok()?;
        total += n * match pair.get(1).copied() {
            Some("h") => 3600.0,
            Some("min") => 60.0,
            _ => 1.0,
        };
    }
    Some(total)
}

/// The number just before `what` in `line`: `12 requests made` -> 12.
fn number_before(line: &str, what: &str) -> u64 {
    let head = &line[..line
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} in {line}"))];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The log line's time, in seconds of the day.
fn line_time(line: &str) -> f64 {
    let t = &line[11..23]; // HH:MM:SS,mmm
    let (hms, ms) = t.split_once(',').unwrap();
    let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
}

#[test]
fn progress_lines_show_records_requests_and_an_eta_from_the_requests_left() {
    // The small account (about 4,800 requests) at a budget 60 times Harvest's.
    let mut cfg = SimConfig::fast(Size::Small);
    cfg.rate_limit = Some(harvest_sim::RateLimit {
        max_requests: 100,
        window: std::time::Duration::from_millis(250),
    });
    let h = Harness::new(cfg);
    let mut config = h.config();
    config["rate_limit_requests"] = json!(100);
    config["rate_limit_window_seconds"] = json!(0.25);
    config["progress_interval_seconds"] = json!(1);
    let run = h.sync(&config, Some(&no_reports()), None);
    run.assert_ok();
    let lines: Vec<&str> = run.stderr.lines().collect();
    let plan = lines
        .iter()
        .find(|l| l.contains("| plan: "))
        .expect("a plan line");
    assert!(
        plan.contains("requests before the first pages tell how many more")
            && plan.contains("at 100 requests per 0.25 s"),
        "{plan}"
    );
    let finished = lines.iter().find(|l| l.contains("sync finished")).unwrap();
    let end = line_time(finished);
    let requests = number_before(finished, " requests,");
    let progress: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("| progress: "))
        .collect();
    assert!(progress.len() >= 3, "{}", run.stderr);
    let start = line_time(plan);
    let total = end - start;
    let mut checked = 0;
    for l in &progress {
        assert!(
            l.contains(" records")
                && l.contains("requests made")
                && l.contains("waited on Harvest's budget"),
            "{l}"
        );
        let at = line_time(l);
        if at - start < total * 0.25 || at - start > total * 0.75 {
            continue;
        }
        // The ETA is the requests left at the budget's pace: what must hold whatever the
        // machine's load is the count of requests left (the time is measured, README).
        assert!(eta_seconds(l).is_some(), "{l}");
        let made = number_before(l, " requests made");
        let left = number_before(l, " known to be left");
        let really_left = requests - made;
        assert!(
            left.abs_diff(really_left) as f64 <= requests as f64 * 0.2 + 5.0,
            "{left} requests said to be left, {really_left} really left of {requests}: {l}"
        );
        checked += 1;
    }
    assert!(checked >= 1, "{}", run.stderr);
    // The SDK's metrics: record_count counters add up to the records sent, a sync_duration each.
    let mut counted = 0u64;
    for l in &lines {
        if let Some(m) = l.split("METRIC: ").nth(1) {
            let m: Value = serde_json::from_str(m).unwrap();
            if m["metric"] == "record_count" {
                counted += m["value"].as_u64().unwrap();
            }
        }
    }
    let sent = run
        .messages
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .count() as u64;
    assert_checked(sent as usize, "records sent");
    assert_eq!(counted, sent);
    assert!(run.stderr.contains("\"metric\":\"sync_duration\""));
    // metrics_log_level debug keeps every METRIC line out of an INFO log; warning keeps the summary.
    config["metrics_log_level"] = json!("debug");
    let quiet = h.sync(&config, Some(&catalog_selecting(&["clients"])), None);
    quiet.assert_ok();
    assert!(!quiet.stderr.contains("METRIC"), "{}", quiet.stderr);
}
