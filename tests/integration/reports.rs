//! Reports API streams against the simulator's own aggregates.

use std::collections::BTreeSet;

use serde_json::json;

use crate::util::*;

fn windows_of(run: &Run, stream: &str) -> BTreeSet<(String, String)> {
    run.records(stream)
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_string(),
                r["to"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn leap_year_windows_are_accepted_and_rows_equal_the_aggregates() {
    let h = Harness::tiny();
    let mut config = h.config();
    // 2023-03-01..2024-02-28 then 2024-02-29..2025-02-27: a leap year inside 365 inclusive days.
    config["reports_start_date"] = json!("2023-03-01");
    let run = h.sync(
        &config,
        Some(&catalog_selecting(&[
            "report_time_projects",
            "report_uninvoiced",
        ])),
        None,
    );
    run.assert_ok();
    run.assert_valid_singer();
    let windows = windows_of(&run, "report_time_projects");
    assert!(
        windows.contains(&("2024-02-29".into(), "2025-02-27".into())),
        "{windows:?}"
    );
    for (from, to) in &windows {
        let days = (chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap()
            - chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap())
        .num_days();
        assert!(days <= 364, "window {from}..{to} is over 365 days");
    }
    for stream in ["report_time_projects", "report_uninvoiced"] {
        let got: BTreeSet<String> = run
            .records(stream)
            .iter()
            .map(|r| key_of(stream, r))
            .collect();
        let mut want = BTreeSet::new();
        let path = stream.trim_start_matches("report_").replacen('_', "/", 1);
        for (from, to) in report_windows("2023-03-01") {
            for r in h.sim.report(&path, from, to, true) {
                let mut row = r.as_object().unwrap().clone();
                row.insert("from".into(), json!(from.to_string()));
                row.insert("to".into(), json!(to.to_string()));
                want.insert(key_of(stream, &row));
                let emitted = run
                    .records(stream)
                    .into_iter()
                    .find(|e| key_of(stream, e) == key_of(stream, &row))
                    .unwrap();
                for (k, v) in &row {
                    check_column(stream, k, &emitted[k], &row);
                    let _ = v;
                }
            }
        }
        assert_checked(want.len(), stream);
        assert_eq!(got, want, "{stream}");
    }
    let stats = h.sim.requests();
    assert_eq!(stats.status(400), 0, "Harvest refused a window");
}

#[test]
fn every_report_stream_and_include_fixed_fee() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["reports_start_date"] = json!("2025-06-01");
    config["include_fixed_fee"] = json!(false);
    let mut streams = windowed_reports();
    streams.push("report_project_budget");
    let run = h.sync(&config, Some(&catalog_selecting(&streams)), None);
    run.assert_ok();
    run.assert_valid_singer();
    let windows = report_windows("2025-06-01");
    for stream in nonempty(&windowed_reports(), "windowed reports") {
        let path = stream.trim_start_matches("report_").replacen('_', "/", 1);
        let fixed_fee_param = stream.starts_with("report_time") || *stream == "report_uninvoiced";
        let mut want = 0;
        for (from, to) in &windows {
            let rows = h.sim.report(&path, *from, *to, !fixed_fee_param);
            want += rows.len();
            for r in rows {
                let mut row = r.as_object().unwrap().clone();
                row.insert("from".into(), json!(from.to_string()));
                row.insert("to".into(), json!(to.to_string()));
                let key = key_of(stream, &row);
                let emitted = run
                    .records(stream)
                    .into_iter()
                    .find(|e| key_of(stream, e) == key)
                    .unwrap_or_else(|| panic!("{stream}: row {key} missing"));
                for k in row.keys() {
                    check_column(stream, k, &emitted[k], &row);
                }
            }
        }
        assert_checked(want, stream);
        assert_eq!(run.records(stream).len(), want, "{stream}");
    }
    assert!(!run.records("report_project_budget").is_empty());
    // One request per window per report, plus project budget (no report here has 2000 rows).
    let stats = h.sim.requests();
    let report_requests: u64 = stats
        .by_route
        .iter()
        .filter(|(r, _)| r.starts_with("GET /v2/reports/"))
        .map(|(_, s)| s.values().sum::<u64>())
        .sum();
    assert_eq!(
        report_requests as usize,
        windowed_reports().len() * windows.len() + 1
    );
}

#[test]
fn incremental_rereads_only_the_open_window() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["reports_start_date"] = json!("2022-01-01");
    let cat = catalog_selecting(&windowed_reports());
    let first = h.sync(&config, Some(&cat), None);
    first.assert_ok();
    let state = first.last_state();
    let windows = report_windows("2022-01-01");
    let (last_from, last_to) = *windows.last().unwrap();
    for stream in nonempty(&windowed_reports(), "windowed reports") {
        assert_eq!(
            state["bookmarks"][stream]["from"],
            json!(last_from.to_string()),
            "{stream}"
        );
    }
    // New time and expenses land in the open window.
    h.sim.mutate("time_entries", 0, 5);
    h.sim.mutate("expenses", 0, 3);
    h.sim.reset_requests();
    let second = h.sync(&config, Some(&cat), Some(&state));
    second.assert_ok();
    second.assert_valid_singer();
    for stream in windowed_reports() {
        let w = windows_of(&second, stream);
        assert!(!w.is_empty(), "{stream}: no window read again");
        assert!(
            w.iter().all(|(f, _)| *f == last_from.to_string()),
            "{stream}: re-read closed windows {w:?}"
        );
        let path = stream.trim_start_matches("report_").replacen('_', "/", 1);
        assert_eq!(
            second.records(stream).len(),
            h.sim.report(&path, last_from, last_to, true).len(),
            "{stream}"
        );
    }
    assert_eq!(
        h.sim.requests().total as usize,
        windowed_reports().len(),
        "one request per report"
    );
}

#[test]
fn a_429_from_the_reports_bucket_is_waited_out() {
    let mut cfg = SimConfig::fast(Size::Tiny);
    cfg.reports_rate_limit = Some(harvest_sim::RateLimit {
        max_requests: 5,
        window: std::time::Duration::from_secs(2),
    });
    let h = Harness::new(cfg);
    let mut config = h.config();
    config["reports_start_date"] = json!("2024-01-01");
    let run = h.sync(
        &config,
        Some(&catalog_selecting(&[
            "report_time_clients",
            "report_time_tasks",
            "report_expenses_team",
        ])),
        None,
    );
    run.assert_ok();
    let stats = h.sim.requests();
    assert!(
        stats.throttled > 0,
        "the simulator's reports bucket never answered 429"
    );
    assert!(
        run.stderr.contains("reports rate limit hit (429)"),
        "{}",
        run.stderr
    );
    let windows = report_windows("2024-01-01");
    for stream in [
        "report_time_clients",
        "report_time_tasks",
        "report_expenses_team",
    ] {
        let path = stream.trim_start_matches("report_").replacen('_', "/", 1);
        let want: usize = windows
            .iter()
            .map(|(f, t)| h.sim.report(&path, *f, *t, true).len())
            .sum();
        assert_checked(want, stream);
        assert_eq!(run.records(stream).len(), want, "{stream}");
    }
}

#[test]
fn the_plan_says_how_long_the_reports_budget_makes_it_wait() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["reports_start_date"] = json!("2019-01-01");
    config["reports_rate_limit_requests"] = json!(20);
    config["reports_rate_limit_window_seconds"] = json!(1);
    let run = h.sync(&config, Some(&catalog_selecting(&windowed_reports())), None);
    run.assert_ok();
    assert!(run.stderr.contains("expect about"), "{}", run.stderr);
}
