//! Faults, interruptions, concurrent edits, odd data, secrets and a closed stdout: the tap
//! loses nothing, emits nothing invalid and says clearly what went wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use harvest_sim::{Fault, FaultKind, Trigger};
use serde_json::{json, Value};

use crate::util::*;

fn fault(prefix: &str, kind: FaultKind, trigger: Trigger) -> Fault {
    Fault {
        path_prefix: prefix.into(),
        kind,
        trigger,
    }
}

fn ts(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Every record of the ground truth appears among the runs' records (at least once), keyed by
/// primary key.
fn assert_union_covers_truth(runs: &[&Run], sim: &Sim, streams: &[&str]) {
    for stream in nonempty(streams, "streams") {
        let want = expected(sim, stream);
        assert!(
            !want.is_empty(),
            "{stream}: the simulator has no rows, the test proves nothing"
        );
        let got: BTreeSet<String> = runs
            .iter()
            .flat_map(|r| r.records(stream))
            .map(|r| key_of(stream, r))
            .collect();
        let missing: Vec<&String> = want.keys().filter(|k| !got.contains(*k)).take(5).collect();
        assert!(missing.is_empty(), "{stream}: records lost: {missing:?}");
    }
}

/// The last STATE covers only what was emitted: every record of a stream updated before its
/// bookmark was emitted by the run. There must be a STATE; returns how many bookmarks it
/// checked.
fn assert_state_covers_only_emitted(run: &Run, sim: &Sim) -> usize {
    let state = run.last_state();
    let mut checked = 0;
    for stream in api_streams() {
        let Some(bookmark) = ts(&state["bookmarks"][stream]["updated_at"]) else {
            continue;
        };
        checked += 1;
        let emitted: BTreeSet<String> = run
            .records(stream)
            .iter()
            .map(|r| r["id"].to_string())
            .collect();
        for r in sim.truth(resource_of(stream).unwrap()) {
            let updated = ts(&r["updated_at"]).unwrap();
            if updated < bookmark && updated >= ts(&json!("2019-01-01T00:00:00Z")).unwrap() {
                assert!(
                    emitted.contains(&r["id"].to_string()),
                    "{stream}: bookmark {bookmark} covers record {} that was never emitted",
                    r["id"]
                );
            }
        }
    }
    checked
}

#[test]
fn fault_storms_are_survived_with_every_record() {
    let h = Harness::tiny();
    h.sim.add_fault(fault(
        "/v2/",
        FaultKind::Status(500),
        Trigger::Fraction(0.15),
    ));
    h.sim.add_fault(fault(
        "/v2/time_entries",
        FaultKind::Status(502),
        Trigger::FirstN(3),
    ));
    h.sim.add_fault(fault(
        "/v2/invoices",
        FaultKind::Status(503),
        Trigger::FirstN(3),
    ));
    h.sim.add_fault(fault(
        "/v2/users",
        FaultKind::CloseMidBody,
        Trigger::FirstN(2),
    ));
    h.sim.add_fault(fault(
        "/v2/expenses",
        FaultKind::TruncatedJson,
        Trigger::FirstN(2),
    ));
    h.sim.add_fault(fault(
        "/v2/projects",
        FaultKind::Status429 { retry_after: 1 },
        Trigger::FirstN(3),
    ));
    h.sim.add_fault(fault(
        "/v2/contacts",
        FaultKind::Slow(Duration::from_millis(1500)),
        Trigger::FirstN(1),
    ));
    let mut config = h.config();
    config["request_timeout"] = json!(0.5);
    config["max_retries"] = json!(8);
    let run = h.sync(&config, Some(&no_reports()), None);
    run.assert_ok();
    run.assert_valid_singer();
    for stream in api_streams().iter().chain(&derived_streams()) {
        assert_matches_truth(&run, &h.sim, stream);
    }
    let stats = h.sim.requests();
    for status in [500, 502, 503, 429] {
        assert!(stats.status(status) > 0, "no {status} was served");
    }
    assert!(
        run.stderr.contains("within request_timeout"),
        "the slow response did not time out:\n{}",
        run.stderr
    );
}

#[test]
fn exhausted_retries_fail_cleanly_and_a_rerun_from_the_last_state_completes() {
    let h = Harness::tiny();
    h.sim.add_fault(fault(
        "/v2/time_entries",
        FaultKind::Status(503),
        Trigger::FirstN(1000),
    ));
    let mut config = h.config();
    config["max_retries"] = json!(2);
    let first = h.sync(&config, Some(&no_reports()), None);
    assert_eq!(first.code, Some(1));
    let critical = first.critical_lines();
    assert_eq!(critical.len(), 1, "{}", first.stderr);
    assert!(
        critical[0].contains("time_entries") && critical[0].contains("gave up after 3 tries"),
        "{}",
        critical[0]
    );
    assert!(!first.stderr.contains("panicked"));
    first.assert_valid_singer();
    assert_checked(
        assert_state_covers_only_emitted(&first, &h.sim),
        "bookmarks of the streams that finished",
    );

    h.sim.clear_faults();
    let state = first.last_state();
    let second = h.sync(&config, Some(&no_reports()), Some(&state));
    second.assert_ok();
    assert_union_covers_truth(&[&first, &second], &h.sim, &api_streams());
    assert_union_covers_truth(&[&first, &second], &h.sim, &derived_streams());
}

#[test]
fn a_404_html_page_on_a_list_fails_with_a_clear_message() {
    let h = Harness::tiny();
    h.sim.add_fault(fault(
        "/v2/tasks",
        FaultKind::Status(404),
        Trigger::FirstN(1),
    ));
    let run = h.sync(&h.config(), Some(&no_reports()), None);
    assert_eq!(run.code, Some(1));
    let critical = run.critical_lines();
    assert_eq!(critical.len(), 1);
    assert!(
        critical[0].contains("stream tasks") && critical[0].contains("404"),
        "{}",
        critical[0]
    );
    assert!(
        !run.stderr.contains("<html"),
        "the HTML body is not dumped into the log"
    );
    run.assert_valid_singer();
    assert_checked(
        assert_state_covers_only_emitted(&run, &h.sim),
        "bookmarks of the streams that finished",
    );
    let rerun = h.sync(&h.config(), Some(&no_reports()), Some(&run.last_state()));
    rerun.assert_ok();
    assert_union_covers_truth(&[&run, &rerun], &h.sim, &api_streams());
}

/// Points in time spread over an uninterrupted run of the same sync.
fn signal_points(h: &Harness) -> Vec<Duration> {
    let t0 = std::time::Instant::now();
    h.sync(&h.config(), Some(&no_reports()), None).assert_ok();
    let whole = t0.elapsed();
    [0.03, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        .iter()
        .map(|f| whole.mul_f64(*f))
        .collect()
}

#[test]
fn sigterm_at_any_point_ends_with_a_consistent_state_and_a_rerun_completes() {
    let h = Harness::tiny();
    h.sim
        .set_latency(Duration::from_millis(15), Duration::from_millis(10), None);
    let mut interrupted_runs = 0;
    // What the runs' states let the checks below compare: bookmarks, and records re-sent.
    let (mut bookmarks, mut resumed) = (0, 0);
    for delay in signal_points(&h) {
        let delay_ms = delay.as_millis();
        let first = interrupted(&h, &h.config(), None, "TERM", delay);
        assert!(!first.stderr.contains("panicked"));
        if first.code.is_none() {
            // The signal came before the tap could listen for it (its first milliseconds):
            // the default action killed it before it wrote anything.
            assert!(
                first.stdout.is_empty(),
                "{delay_ms} ms: killed after writing output"
            );
            continue;
        }
        if first.code != Some(0) {
            assert!(
                first.stderr.contains("SIGTERM received"),
                "{delay_ms} ms: {}",
                first.stderr
            );
            interrupted_runs += 1;
            assert_eq!(first.code, Some(1));
        }
        first.assert_valid_singer();
        assert_eq!(
            first.messages.last().map(|m| m["type"].clone()),
            Some(json!("STATE")),
            "{delay_ms} ms: no final STATE"
        );
        bookmarks += assert_state_covers_only_emitted(&first, &h.sim);
        let state = first.last_state();
        let second = h.sync(&h.config(), Some(&no_reports()), Some(&state));
        second.assert_ok();
        assert_union_covers_truth(&[&first, &second], &h.sim, &api_streams());
        assert_union_covers_truth(&[&first, &second], &h.sim, &derived_streams());
        // Duplicates only from the streams the signal interrupted: a finished stream resumes at its
        // bookmark. A stream read on signs sends every row of a user it reads (and a sync after
        // an interrupted first one reads every user).
        for stream in api_streams() {
            if streams::find(stream).is_some_and(|d| d.moves_with_signs()) {
                continue;
            }
            let Some(b) = ts(&state["bookmarks"][stream]["updated_at"]) else {
                continue;
            };
            resumed += 1;
            for r in second.records(stream) {
                assert!(
                    ts(&r["updated_at"]).unwrap() >= b,
                    "{stream}: finished before the signal, yet re-sent {}",
                    r["id"]
                );
            }
        }
    }
    assert!(
        interrupted_runs >= 4,
        "only {interrupted_runs} runs were interrupted mid-sync"
    );
    assert_checked(
        bookmarks,
        "bookmarks of interrupted runs against what they emitted",
    );
    assert_checked(resumed, "streams resumed at their bookmark");
}

#[test]
fn sigkill_loses_at_most_what_the_last_state_did_not_cover() {
    let h = Harness::tiny();
    h.sim
        .set_latency(Duration::from_millis(15), Duration::from_millis(10), None);
    let mut killed_mid_sync = 0;
    // The API streams whose bookmark a finished run moves.
    let bookmarked = streams_where(|d| {
        matches!(d.source, Source::List { .. } | Source::Child { .. }) && d.bookmark_key().is_some()
    })
    .len();
    // On a loaded machine the reference run's length says little of the next runs': if too
    // few kills land between the first and the last bookmark, the points are measured again.
    let mut points = signal_points(&h);
    points.extend(signal_points(&h).into_iter().skip(1));
    for (i, delay) in points.into_iter().enumerate() {
        if i >= 10 && killed_mid_sync >= 3 {
            break;
        }
        let first = interrupted(&h, &h.config(), None, "KILL", delay);
        let state = first
            .messages
            .iter()
            .rev()
            .find(|m| m["type"] == "STATE")
            .map(|m| m["value"].clone());
        if state.is_some() {
            let checked = assert_state_covers_only_emitted(&first, &h.sim);
            // Killed (no exit code) after some streams finished and before all of them did.
            if first.code.is_none() && checked > 0 && checked < bookmarked {
                killed_mid_sync += 1;
            }
        }
        let second = h.sync(&h.config(), Some(&no_reports()), state.as_ref());
        second.assert_ok();
        assert_union_covers_truth(&[&first, &second], &h.sim, &api_streams());
        assert_union_covers_truth(&[&first, &second], &h.sim, &derived_streams());
    }
    assert!(
        killed_mid_sync >= 3,
        "only {killed_mid_sync} runs were killed between their first and last bookmark"
    );
}

#[test]
fn a_stream_that_fails_for_good_stops_only_itself_and_its_children() {
    let h = Harness::tiny();
    // A root list and a fan-out child fail on every request: time_entries (with its two
    // derived tables), and every invoice's messages and payments (not the invoices).
    let always = || Trigger::Fraction(1.0);
    h.sim
        .add_fault(fault("/v2/time_entries", FaultKind::Status(503), always()));
    h.sim
        .add_fault(fault("/v2/invoices/", FaultKind::Status(500), always()));
    let mut config = h.config();
    config["max_retries"] = json!(1);
    let run = h.sync(&config, Some(&no_reports()), None);
    assert_eq!(run.code, Some(1), "a scheduler must see the failure");
    assert!(!run.stderr.contains("panicked"));
    run.assert_valid_singer();
    assert_eq!(run.messages.last().unwrap()["type"], "STATE");
    assert!(assert_state_covers_only_emitted(&run, &h.sim) > 0);

    let failed = [
        "time_entries",
        "external_reference",
        "time_entry_external_reference",
        "invoice_messages",
        "invoice_payments",
    ];
    let critical = run.critical_lines();
    assert_eq!(
        critical.len(),
        1,
        "one line names every failure:\n{}",
        run.stderr
    );
    for named in [
        "3 streams failed",
        "stream time_entries failed: GET /time_entries: Harvest answered 503; gave up after 2 tries",
        "not synced: time_entries, external_reference, time_entry_external_reference",
        "stream invoice_messages failed",
        "stream invoice_payments failed",
    ] {
        assert!(critical[0].contains(named), "{named:?} not in {}", critical[0]);
    }
    let state = run.last_state();
    let mut finished = 0;
    for def in STREAMS.iter().filter(|d| !d.name.starts_with("report_")) {
        let bookmark = &state["bookmarks"][def.name];
        if failed.contains(&def.name) {
            assert!(
                bookmark.is_null(),
                "{}: a failed stream's bookmark moved",
                def.name
            );
            continue;
        }
        // Every other stream finished, equal to Harvest, and its bookmark moved.
        assert_matches_truth(&run, &h.sim, def.name);
        if let Some(key) = def.bookmark_key() {
            assert!(bookmark[&key].is_string(), "{}: no bookmark", def.name);
        }
        finished += 1;
    }
    assert_checked(finished, "streams that finished beside the failed ones");
    assert!(run.records("time_entries").is_empty() && run.records("invoice_messages").is_empty());

    // The next run, with the faults gone, completes from that state.
    h.sim.clear_faults();
    let rerun = h.sync(&config, Some(&no_reports()), Some(&state));
    rerun.assert_ok();
    for stream in failed {
        assert_matches_truth(&rerun, &h.sim, stream);
    }
}

#[test]
fn a_parent_gone_is_skipped_but_a_422_on_a_child_list_fails_its_stream() {
    let h = Harness::tiny();
    let user = h.sim.truth("users")[0]["id"].clone();
    let invoice = h.sim.truth("invoices")[0]["id"].clone();
    // The user was deleted after /users was read: 404 on its assignments only.
    h.sim.add_fault(fault(
        &format!("/v2/users/{user}/project_assignments"),
        FaultKind::Status(404),
        Trigger::Fraction(1.0),
    ));
    // Harvest refuses one invoice's messages: a 422 the declaration does not expect.
    h.sim.add_fault(fault(
        &format!("/v2/invoices/{invoice}/messages"),
        FaultKind::Status(422),
        Trigger::Fraction(1.0),
    ));
    let catalog = catalog_selecting(&["users", "user_projects", "invoices", "invoice_messages"]);
    let run = h.sync(&h.config(), Some(&catalog), None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    run.assert_valid_singer();
    assert!(
        run.stderr
            .contains(&format!("user_projects: parent {user} has none to read")),
        "{}",
        run.stderr
    );
    let critical = run.critical_lines();
    assert_eq!(critical.len(), 1, "{}", run.stderr);
    assert!(
        critical[0].contains("1 stream failed")
            && critical[0].contains("stream invoice_messages failed")
    );
    assert!(critical[0].contains("422"), "{}", critical[0]);
    // Every other user's assignments arrived, and the stream's bookmark moved.
    let got: BTreeSet<String> = run
        .records("user_projects")
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    let want: Vec<Value> = h.sim.truth("project_assignments");
    assert!(!want.is_empty());
    for pa in &want {
        assert_eq!(
            got.contains(&pa["id"].to_string()),
            pa["user_id"] != user,
            "assignment {} of user {}",
            pa["id"],
            pa["user_id"]
        );
    }
    let state = run.last_state();
    assert!(state["bookmarks"]["user_projects"]["updated_at"].is_string());
    assert!(state["bookmarks"]["invoice_messages"].is_null());
    assert_matches_truth(&run, &h.sim, "invoices");
}

#[test]
fn records_changed_during_a_sync_are_caught_by_it_or_the_next() {
    let h = Harness::new(SimConfig::fast(Size::Small));
    h.sim
        .set_latency(Duration::from_millis(10), Duration::from_millis(5), None);
    let streams = [
        "clients",
        "contacts",
        "time_entries",
        "invoices",
        "invoice_payments",
        "users",
        "user_projects",
        "expenses",
    ];
    let catalog = catalog_selecting(&streams);
    let first = std::thread::scope(|s| {
        let sync = s.spawn(|| h.sync(&h.config(), Some(&catalog), None));
        for round in 0..12 {
            std::thread::sleep(Duration::from_millis(120));
            for res in [
                "clients",
                "contacts",
                "time_entries",
                "invoices",
                "invoice_payments",
                "users",
                "project_assignments",
                "expenses",
            ] {
                h.sim.mutate(res, 3, (round % 2) as usize);
            }
        }
        sync.join().unwrap()
    });
    first.assert_ok();
    let second = h.sync(&h.config(), Some(&catalog), Some(&first.last_state()));
    second.assert_ok();
    for stream in streams {
        // The newest version of every record reached the target.
        let seen: BTreeMap<String, BTreeSet<String>> = [&first, &second]
            .iter()
            .flat_map(|r| r.records(stream))
            .fold(BTreeMap::new(), |mut m, r| {
                m.entry(r["id"].to_string())
                    .or_default()
                    .insert(r["updated_at"].as_str().unwrap_or("").to_string());
                m
            });
        let truth = h.sim.truth(resource_of(stream).unwrap());
        for r in nonempty(&truth, stream) {
            let versions = seen.get(&r["id"].to_string());
            assert!(
                versions.is_some_and(|v| v.contains(r["updated_at"].as_str().unwrap())),
                "{stream}: the version of {} updated at {} never reached the target",
                r["id"],
                r["updated_at"]
            );
        }
    }
}

#[test]
fn odd_data_is_conformed_with_warnings() {
    let h = Harness::tiny();
    h.sim
        .add_fault(fault("/v2/", FaultKind::OddData, Trigger::Fraction(1.0)));
    let run = h.sync(&h.config(), Some(&no_reports()), None);
    run.assert_ok();
    run.assert_valid_singer();
    for stream in [
        "clients",
        "time_entries",
        "invoices",
        "invoice_payments",
        "users",
        "expenses",
        "user_billable_rates",
    ] {
        let want = expected(&h.sim, stream);
        let got = run.records(stream);
        assert_eq!(got.len(), want.len(), "{stream}");
        for rec in nonempty(&got, stream) {
            let raw = &want[&key_of(stream, rec)];
            for (column, value) in *rec {
                if column != "created_at" {
                    check_column(stream, column, value, raw);
                }
            }
        }
    }
    assert!(
        run.stderr
            .contains("Harvest sent a string, emitted as a number"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("does not know, \"zz_unexpected\""),
        "{}",
        run.stderr
    );
}

#[test]
fn text_serde_cannot_read_is_repaired_and_every_record_arrives() {
    let h = Harness::tiny();
    h.sim
        .add_fault(fault("/v2/", FaultKind::OddText, Trigger::Fraction(1.0)));
    let run = h.sync(&h.config(), Some(&no_reports()), None);
    run.assert_ok();
    run.assert_valid_singer();
    for stream in [
        "clients",
        "projects",
        "tasks",
        "time_entries",
        "expenses",
        "invoices",
    ] {
        let want = expected(&h.sim, stream);
        let got = run.records(stream);
        assert_eq!(got.len(), want.len(), "{stream}");
        let mut marked = 0;
        for rec in nonempty(&got, stream) {
            let raw = &want[&key_of(stream, rec)];
            for column in ["name", "notes"] {
                if let Some(Value::String(s)) = raw.get(column) {
                    marked += 1;
                    let mark = if column == "name" {
                        "\u{FFFD}"
                    } else {
                        "\u{FFFD}\u{FFFD}"
                    };
                    assert_eq!(
                        rec[column],
                        Value::String(format!("{mark}{s}")),
                        "{stream} {column}"
                    );
                }
            }
            assert!(rec.get("zz_huge").is_none());
        }
        assert_checked(marked, &format!("{stream}: names and notes"));
    }
    for needle in [
        "held a lone UTF-16 surrogate, replaced by U+FFFD",
        "held bytes that are not UTF-8, replaced by U+FFFD",
        "field 'zz_huge' held a number out of range in a field the schema does not have, dropped",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
}

#[test]
fn no_secret_reaches_stdout_or_stderr_on_any_path() {
    let h = Harness::tiny();
    let secrets = [
        "sim-pat-admin",
        "sim-pat-manager",
        "sim-client-secret",
        "sim-refresh-admin",
        "sim-oauth-",
        "wrong-secret-token",
    ];
    let mut cases: Vec<(Value, Option<Fault>)> = Vec::new();
    cases.push((h.config(), None));
    cases.push((
        h.oauth_config("sim-refresh-admin"),
        Some(fault(
            "/v2/clients",
            FaultKind::Status(503),
            Trigger::FirstN(2),
        )),
    ));
    let mut bad = h.config();
    bad["access_token"] = json!("wrong-secret-token");
    cases.push((bad, None));
    let mut manager = h.config();
    manager["access_token"] = json!("sim-pat-manager");
    cases.push((manager, None));
    let mut bad_oauth = h.oauth_config("sim-refresh-admin");
    bad_oauth["client_secret"] = json!("wrong-secret-token");
    cases.push((bad_oauth, None));
    cases.push((
        h.oauth_config("sim-refresh-admin"),
        Some(fault(
            "/v2/tasks",
            FaultKind::Status(404),
            Trigger::FirstN(1),
        )),
    ));
    for (config, f) in cases {
        h.sim.clear_faults();
        if let Some(f) = f {
            h.sim.add_fault(f);
        }
        let path = h.write("config.json", &config);
        let out = Command::new(TAP)
            .args([
                "--config",
                path.to_str().unwrap(),
                "--catalog",
                h.write("catalog.json", &no_reports()).to_str().unwrap(),
            ])
            .env("TAP_HARVEST_LOGLEVEL", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("DEBUG"),
            "debug logging is on"
        );
        for s in secrets {
            assert!(
                !text.contains(s),
                "secret {s:?} leaked with config {config}"
            );
        }
    }
    // Config errors do not echo secrets either.
    let run = h.sync(&json!({"access_token": "sim-pat-admin", "refresh_token": "sim-refresh-admin", "start_date": "x"}), None, None);
    assert!(!run.stderr.contains("sim-pat-admin") && !run.stderr.contains("sim-refresh-admin"));
}

#[test]
fn a_closed_stdout_is_a_clean_nonzero_exit() {
    let h = Harness::new(SimConfig::fast(Size::Small));
    let catalog = catalog_selecting(&["time_entries"]);
    let mut child = Command::new(TAP)
        .args([
            "--config",
            h.write("config.json", &h.config()).to_str().unwrap(),
            "--catalog",
            h.write("catalog.json", &catalog).to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("SCHEMA"));
    drop(reader); // the target exits
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let critical: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CRITICAL") || l.contains("ERROR"))
        .collect();
    assert_eq!(critical.len(), 1, "{stderr}");
    assert!(critical[0].contains("stdout was closed"), "{}", critical[0]);
}
