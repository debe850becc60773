//! The command line as Singer runners use it.

use serde_json::{json, Value};

use crate::util::*;

#[test]
fn version_and_about_need_no_config() {
    let run = run_raw(&["--version"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("tap-harvest "));
    let run = run_raw(&["--about", "--format", "json"]);
    run.assert_ok();
    let about: Value =
        serde_json::from_str(&run.stdout).expect("--about --format json prints only JSON");
    assert_eq!(about["name"], "tap-harvest");
    for cap in ["catalog", "discover", "state", "about", "test"] {
        assert!(
            about["capabilities"]
                .as_array()
                .unwrap()
                .contains(&json!(cap)),
            "{cap}"
        );
    }
    let settings = &about["settings"]["properties"];
    assert_eq!(settings["client_secret"]["secret"], json!(true));
    assert_eq!(about["settings"]["required"], json!(["start_date"]));
    let run = run_raw(&["--about", "--format", "MARKDOWN"]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with("# `tap-harvest`") && run.stdout.contains("| start_date | True |")
    );
    let run = run_raw(&["--about"]);
    run.assert_ok();
    assert!(run.stdout.contains("Capabilities:"));
}

#[test]
fn misuse_gives_one_line_and_a_nonzero_exit() {
    for (args, expect) in [
        (vec!["--frobnicate"], "--frobnicate"),
        (
            vec![
                "--catalog",
                "/nonexistent/catalog.json",
                "--config",
                "/nonexistent/config.json",
            ],
            "cannot read config file",
        ),
        (vec![], "--config is required"),
        (vec!["--format", "json"], "--about"),
    ] {
        let run = run_raw(&args);
        assert_ne!(run.code, Some(0), "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}: stdout must stay clean");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: one line expected, got:\n{}",
            run.stderr
        );
        assert!(lines[0].contains(expect), "{args:?}: {}", lines[0]);
    }
}

#[test]
fn properties_is_an_alias_of_catalog() {
    let h = Harness::tiny();
    let catalog = catalog_selecting(&["tasks"]);
    let config = h.write("config.json", &h.config());
    let props = h.write("properties.json", &catalog);
    let run = run_tap(&[
        "--config",
        config.to_str().unwrap(),
        "--properties",
        props.to_str().unwrap(),
    ]);
    run.assert_ok();
    assert_eq!(
        run.streams_with_records(),
        ["tasks".to_string()].into_iter().collect()
    );
}

#[test]
fn test_mode_checks_credentials_with_one_request() {
    let h = Harness::tiny();
    let good = h.write("good.json", &h.config());
    let run = run_raw(&["--config", good.to_str().unwrap(), "--test"]);
    run.assert_ok();
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("connection test passed"),
        "{}",
        run.stderr
    );
    assert_eq!(h.sim.requests().total, 1);

    let mut bad = h.config();
    bad["access_token"] = json!("wrong-token");
    let run = run_raw(&[
        "--config",
        h.write("bad.json", &bad).to_str().unwrap(),
        "--test",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("401") && !run.stderr.contains("wrong-token"),
        "{}",
        run.stderr
    );

    let mut account = h.config();
    account["account_id"] = json!("999");
    let run = run_raw(&[
        "--config",
        h.write("account.json", &account).to_str().unwrap(),
        "--test",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("account_id"), "{}", run.stderr);

    let run = run_tap(&["--config", good.to_str().unwrap(), "--test=schema"]);
    run.assert_ok();
    assert!(
        run.messages.iter().all(|m| m["type"] == "SCHEMA") && run.messages.len() == STREAMS.len()
    );
}

#[test]
fn expired_oauth_tokens_are_refreshed_mid_sync() {
    let h = Harness::tiny();
    h.sim.set_latency(
        std::time::Duration::from_millis(40),
        std::time::Duration::ZERO,
        None,
    );
    let config = h.oauth_config("sim-refresh-admin");
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(400));
            h.sim.expire_access_tokens();
        });
        let run = h.sync(&config, None, None);
        run.assert_ok();
        assert!(
            run.stderr
                .contains("401, refreshing the OAuth access token"),
            "{}",
            run.stderr
        );
        for stream in ["time_entries", "invoices", "invoice_payments", "users"] {
            assert_matches_truth(&run, &h.sim, stream);
        }
    });
    let token_requests = h.sim.requests().route("POST /id/api/v2/oauth2/token");
    assert!(token_requests >= 2, "{token_requests} token requests");
}

/// The README's stream tables say what the tap's table says: a row per stream, with its key,
/// replication and parent.
#[test]
fn the_readme_lists_every_stream_as_the_table_declares_it() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parents = 0;
    for def in STREAMS {
        let name = format!("`{}`", def.name);
        let found: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == name).collect();
        assert_eq!(
            found.len(),
            1,
            "README: {} rows for {}",
            found.len(),
            def.name
        );
        let row = found[0];
        assert_eq!(
            row[1],
            quoted(def.key_properties),
            "README: key of {}",
            def.name
        );
        let replication = def.replication().unwrap();
        let want = match (replication.method(), replication.key) {
            ("FULL_TABLE", _) => "FULL_TABLE".to_string(),
            (_, Some(key)) => format!("INCREMENTAL on `{key}`"),
            (_, None) => "with its parent".to_string(),
        };
        assert_eq!(row[2], want, "README: replication of {}", def.name);
        if let Some(parent) = row.get(3) {
            let want = def.parent().map(|p| format!("`{p}`")).unwrap_or_default();
            assert_eq!(*parent, want, "README: parent of {}", def.name);
            parents += 1;
        }
    }
    assert_checked(parents, "README rows with a parent column");
}
