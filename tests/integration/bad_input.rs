//! Bad input: broken configs, catalogs and states, and command-line misuse. Each one ends the
//! tap with a non-zero exit, nothing on stdout, and on stderr one line naming the problem (a
//! config with several problems: one line per problem, then "Config validation failed");
//! never a panic. The older singer-io flat state is not bad input: it is migrated and the sync
//! honours its bookmarks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::util::*;

/// The secrets the configs below hold: they must never reach stderr.
const TOKEN: &str = "pat-SECRET-4f2a9c";
const CLIENT_SECRET: &str = "oauth-SECRET-client-77";
const REFRESH: &str = "oauth-SECRET-refresh-88";

/// Runs the tap with the log level left at its default, whatever the environment says.
fn tap<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(TAP)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOGLEVEL")
        .env_remove("TAP_HARVEST_LOGLEVEL")
        .stdin(Stdio::null())
        .output()
        .expect("tap runs");
    Run {
        messages: Vec::new(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// `(level, message)` of each stderr line (`date | LEVEL | tap-harvest | message`).
fn log_lines(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, " | ").collect();
            assert_eq!(parts.len(), 4, "not a log line: {l:?}\nstderr:\n{stderr}");
            (parts[1].trim().to_string(), parts[3].to_string())
        })
        .collect()
}

/// A clean failure: non-zero exit, stdout empty, no panic, no secret on stderr.
fn assert_clean_failure(run: &Run, case: &str) {
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{case}: the tap panicked:\n{}",
        run.stderr
    );
    assert!(
        run.code.is_some_and(|c| c != 0),
        "{case}: exit {:?}, a failure expected; stderr:\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{case}: stdout must stay empty, got:\n{}",
        run.stdout
    );
    for secret in [TOKEN, CLIENT_SECRET, REFRESH, "SECRET-4f2a9c", "2a9c"] {
        assert!(
            !run.stderr.contains(secret),
            "{case}: a secret reached stderr:\n{}",
            run.stderr
        );
    }
}

/// Exactly one line on stderr, at ERROR or CRITICAL, containing `needle`.
fn assert_one_error(run: &Run, case: &str, needle: &str) {
    assert_clean_failure(run, case);
    let lines = log_lines(&run.stderr);
    assert_eq!(
        lines.len(),
        1,
        "{case}: one line expected on stderr, got:\n{}",
        run.stderr
    );
    let (level, message) = &lines[0];
    assert!(
        level == "ERROR" || level == "CRITICAL",
        "{case}: level {level}"
    );
    assert!(
        message.contains(needle),
        "{case}: {message:?} does not say {needle:?}"
    );
}

/// One ERROR line per problem, each containing its needle, in order, then a CRITICAL
/// "Config validation failed".
fn assert_config_errors(run: &Run, case: &str, needles: &[&str]) {
    assert_clean_failure(run, case);
    nonempty(needles, case);
    let lines = log_lines(&run.stderr);
    assert_eq!(
        lines.len(),
        needles.len() + 1,
        "{case}: {} problem line(s) and a summary expected, got:\n{}",
        needles.len(),
        run.stderr
    );
    for ((level, message), needle) in lines.iter().zip(needles) {
        assert_eq!(level, "ERROR", "{case}: {message}");
        assert!(
            message.contains(needle),
            "{case}: {message:?} does not say {needle:?}"
        );
    }
    let (level, message) = lines.last().unwrap();
    assert_eq!(level, "CRITICAL", "{case}");
    // The last line alone names every problem (Meltano shows only the last line).
    assert!(
        message.starts_with("Config validation failed: "),
        "{case}: {message}"
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "{case}: {message:?} does not say {needle:?}"
        );
    }
}

fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A valid config pointing at a port where nothing listens: the cases below fail before any
/// request, and one that did not would fail fast instead of hanging.
fn offline_config() -> Value {
    json!({
        "access_token": TOKEN,
        "account_id": "1234567",
        "start_date": "2024-01-01T00:00:00Z",
        "base_url": "http://127.0.0.1:9/v2",
        "auth_url": "http://127.0.0.1:9/id",
        "max_retries": 0,
        "request_timeout": 2,
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, keys: &[&str]) -> Value {
    for k in keys {
        base.as_object_mut().unwrap().remove(*k);
    }
    base
}

#[test]
fn broken_configs_name_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = offline_config();
    let oauth = json!({
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH,
        "start_date": "2024-01-01",
    });

    // Not a config at all: one CRITICAL line.
    for (case, text, needle) in [
        ("not JSON", "{\"start_date\": ", "is not valid JSON"),
        ("empty file", "", "is not valid JSON"),
        ("binary", "\u{0}\u{1}PK\u{3}", "is not valid JSON"),
    ] {
        let path = write_text(dir.path(), "config.json", text);
        let run = tap(&["--config", path.to_str().unwrap()]);
        assert_one_error(&run, case, needle);
        assert!(run.stderr.contains("config file"), "{case}: {}", run.stderr);
    }

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "a JSON array",
            json!([good.clone()]),
            vec!["config must be a JSON object"],
        ),
        (
            "a JSON string",
            json!("config"),
            vec!["config must be a JSON object"],
        ),
        (
            "missing start_date",
            without(good.clone(), &["start_date"]),
            vec!["'start_date' is required"],
        ),
        (
            "start_date garbage",
            with(good.clone(), "start_date", json!("next tuesday")),
            vec!["'start_date' is not a date or date-time: \"next tuesday\""],
        ),
        (
            "start_date a day that does not exist",
            with(good.clone(), "start_date", json!("2023-02-29")),
            vec!["'start_date' is not a date"],
        ),
        (
            "start_date of the wrong type",
            with(good.clone(), "start_date", json!(20240101)),
            vec!["'start_date' must be a string"],
        ),
        (
            "start_date an object",
            with(good.clone(), "start_date", json!({"date": "2024-01-01"})),
            vec!["'start_date' must be a string"],
        ),
        (
            "start_date empty",
            with(good.clone(), "start_date", json!("")),
            vec!["'start_date'"],
        ),
        (
            "both auth modes",
            json!({"access_token": TOKEN, "account_id": "1", "client_id": "app-id",
                   "client_secret": CLIENT_SECRET, "refresh_token": REFRESH,
                   "start_date": "2024-01-01"}),
            vec!["both 'access_token' and OAuth keys"],
        ),
        (
            "neither auth mode",
            json!({"start_date": "2024-01-01"}),
            vec!["config has no credentials"],
        ),
        (
            "partial OAuth",
            without(oauth.clone(), &["client_secret"]),
            vec!["OAuth config is missing 'client_secret'"],
        ),
        (
            "OAuth with only a refresh token",
            without(oauth.clone(), &["client_secret", "client_id"]),
            vec!["OAuth config is missing 'client_id', 'client_secret'"],
        ),
        (
            "token without account_id",
            without(good.clone(), &["account_id"]),
            vec!["'account_id' is required with 'access_token'"],
        ),
        (
            "account_id an object",
            with(good.clone(), "account_id", json!({"id": 1234567})),
            vec!["'account_id' must be a positive integer or a string of digits"],
        ),
        (
            "account_id not digits",
            with(good.clone(), "account_id", json!("acme")),
            vec!["'account_id' must be a string of digits"],
        ),
        (
            "account_id negative",
            with(good.clone(), "account_id", json!(-5)),
            vec!["'account_id' must be a positive integer"],
        ),
        (
            "access_token a number",
            with(good.clone(), "access_token", json!(12345)),
            vec!["'access_token' must be a string"],
        ),
        (
            "client_secret a list",
            with(oauth.clone(), "client_secret", json!([CLIENT_SECRET])),
            vec!["'client_secret' must be a string"],
        ),
        (
            "request_timeout negative",
            with(good.clone(), "request_timeout", json!(-5)),
            vec!["'request_timeout' must be a non-negative number"],
        ),
        (
            "request_timeout a word",
            with(good.clone(), "request_timeout", json!("five minutes")),
            vec!["'request_timeout' must be a non-negative number"],
        ),
        (
            "request_timeout huge",
            with(good.clone(), "request_timeout", json!(1e300)),
            vec!["'request_timeout' must be a number of seconds"],
        ),
        (
            "base_url not a URL",
            with(good.clone(), "base_url", json!("api.harvestapp.com/v2")),
            vec!["'base_url' must be an http(s) URL"],
        ),
        (
            "base_url without a host",
            with(good.clone(), "base_url", json!("https://")),
            vec!["'base_url' must be an http(s) URL"],
        ),
        (
            "base_url with a space",
            with(good.clone(), "base_url", json!("http://api harvestapp.com")),
            vec!["'base_url' must be an http(s) URL"],
        ),
        (
            "auth_url another scheme",
            with(good.clone(), "auth_url", json!("ftp://id.getharvest.com")),
            vec!["'auth_url' must be an http(s) URL"],
        ),
        (
            "user_agent with a newline",
            with(
                good.clone(),
                "user_agent",
                json!("tap-harvest\nX-Injected: 1"),
            ),
            vec!["'user_agent' holds a control character"],
        ),
        (
            "rate_limit_requests 0",
            with(good.clone(), "rate_limit_requests", json!(0)),
            vec!["'rate_limit_requests' must be a positive integer"],
        ),
        (
            "rate_limit_window_seconds beyond any duration",
            with(good.clone(), "rate_limit_window_seconds", json!(1e30)),
            vec!["'rate_limit_window_seconds' must be a number of seconds"],
        ),
        (
            "max_concurrency fractional",
            with(good.clone(), "max_concurrency", json!(2.5)),
            vec!["'max_concurrency' must be a positive integer"],
        ),
        (
            "max_retries too many",
            with(good.clone(), "max_retries", json!(1000)),
            vec!["'max_retries' must be an integer from 0 to 100"],
        ),
        (
            "full_child_scan a word",
            with(good.clone(), "full_child_scan", json!("yes")),
            vec!["'full_child_scan' must be true or false"],
        ),
        (
            "reports_start_date garbage",
            with(good.clone(), "reports_start_date", json!("Q1")),
            vec!["'reports_start_date' is not a date"],
        ),
        (
            "batch_config (a Meltano SDK feature the tap does not implement)",
            with(
                good.clone(),
                "batch_config",
                json!({"encoding": {"format": "jsonl", "compression": "gzip"}}),
            ),
            vec!["config key 'batch_config' (Meltano SDK BATCH messages) is not supported by tap-harvest"],
        ),
        (
            "a stream map for a stream that does not exist",
            with(
                good.clone(),
                "stream_maps",
                json!({"client": {"name": null}}),
            ),
            vec!["stream_maps key 'client' names no stream of tap-harvest (did you mean 'clients'?)"],
        ),
        (
            "a stream map calling a function the tap does not have",
            with(
                good.clone(),
                "stream_maps",
                json!({"clients": {"n": "fake.name()"}}),
            ),
            vec!["stream_maps.clients.n: cannot read \"fake.name()\": 'fake.name' is not supported"],
        ),
        (
            "flattening without a depth",
            with(good.clone(), "flattening_enabled", json!(true)),
            vec!["'flattening_max_depth' is required when flattening_enabled is true"],
        ),
        (
            "a line break inside access_token",
            with(good.clone(), "access_token", json!("pat-SECRET-4f\n2a9c")),
            vec!["config key 'access_token' holds a control character"],
        ),
        (
            "the token pasted into account_id",
            with(
                good.clone(),
                "account_id",
                json!(TOKEN.replace("pat-", "1234567.pt.")),
            ),
            vec!["'account_id' must be a string of digits, got a 24-character value (not shown"],
        ),
        (
            "user:password in base_url",
            with(
                good.clone(),
                "base_url",
                json!(format!("https://bob:{TOKEN}@api.harvestapp.com/v2")),
            ),
            vec!["'base_url' must not hold a user name or password"],
        ),
        (
            "several problems",
            json!({"access_token": TOKEN, "start_date": "nope", "request_timeout": "x",
                   "max_concurrency": 0, "base_url": "localhost"}),
            vec![
                "'account_id' is required",
                "'start_date' is not a date",
                "'base_url' must be an http(s) URL",
                "'request_timeout' must be a non-negative number",
                "'max_concurrency' must be a positive integer",
            ],
        ),
        (
            "problems of every part, in the settings' order",
            {
                let mut c = good.clone();
                for (k, v) in [
                    ("request_timeout", json!("x")),
                    ("full_child_scan", json!("yes")),
                    ("max_retries", json!(1.5)),
                    ("max_concurrency", json!(0)),
                    ("reports_start_date", json!("nope")),
                    ("detect_deletions", json!("x")),
                    ("emit_activate_version_messages", json!("x")),
                    ("deletion_window_days", json!(-1)),
                    ("max_response_mb", json!(5000)),
                    ("metrics_log_level", json!("loud")),
                ] {
                    c[k] = v;
                }
                c
            },
            vec![
                "'request_timeout' must be a non-negative number",
                "'full_child_scan' must be true or false",
                "'max_retries' must be an integer from 0 to 100",
                "'max_concurrency' must be a positive integer",
                "'reports_start_date' is not a date",
                "'detect_deletions' must be true or false",
                "'emit_activate_version_messages' must be true or false",
                "'deletion_window_days'",
                "'max_response_mb' must be at most 4096",
                "'metrics_log_level' must be debug, info, warning, error or critical",
            ],
        ),
    ];
    for (case, config, needles) in cases {
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let run = tap(&["--config", path.to_str().unwrap()]);
        assert_config_errors(&run, case, &needles);
    }
}

#[test]
fn broken_catalogs_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, offline_config().to_string()).unwrap();
    let selected = |crumbs: Value| {
        json!({"streams": [{"tap_stream_id": "clients", "schema": {},
            "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}, crumbs]}]})
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "streams: [clients]".into(), "is not valid JSON"),
        ("empty file", "".into(), "is not valid JSON"),
        (
            "an array",
            "[{\"tap_stream_id\": \"clients\"}]".into(),
            "a catalog must be an object with a 'streams' array",
        ),
        (
            "streams a number",
            "{\"streams\": 5}".into(),
            "a catalog must be an object with a 'streams' array",
        ),
        (
            "no streams key",
            "{\"stream\": []}".into(),
            "a catalog must be an object with a 'streams' array",
        ),
        (
            "an entry that is not an object",
            "{\"streams\": [\"clients\"]}".into(),
            "streams[0] must be an object",
        ),
        (
            "an entry without tap_stream_id",
            json!({"streams": [{"schema": {}, "metadata": []}]}).to_string(),
            "streams[0] has no 'tap_stream_id'",
        ),
        (
            "unknown stream",
            json!({"streams": [{"tap_stream_id": "timesheets", "schema": {}, "metadata": []}]})
                .to_string(),
            "unknown stream \"timesheets\"",
        ),
        (
            "a replication method the tap does not have",
            json!({"streams": [{"tap_stream_id": "clients", "schema": {}, "metadata": [
                {"breadcrumb": [], "metadata": {"selected": true, "replication-method": "LOG_BASED"}}]}]})
            .to_string(),
            "stream \"clients\": replication-method \"LOG_BASED\" is not supported",
        ),
        (
            "metadata not an array",
            json!({"streams": [{"tap_stream_id": "clients", "metadata": {"selected": true}}]})
                .to_string(),
            "stream \"clients\": 'metadata' must be an array",
        ),
        (
            "breadcrumb not an array",
            selected(json!({"breadcrumb": "properties/name", "metadata": {"selected": true}}))
                .to_string(),
            "a metadata entry has no 'breadcrumb' array",
        ),
        (
            "breadcrumb holding a number",
            selected(json!({"breadcrumb": ["properties", 3], "metadata": {}})).to_string(),
            "a breadcrumb holds a non-string",
        ),
        (
            "metadata entry without metadata",
            selected(json!({"breadcrumb": ["properties", "name"]})).to_string(),
            "a metadata entry has no 'metadata' object",
        ),
    ];
    for (case, text, needle) in cases {
        let catalog = write_text(dir.path(), "catalog.json", &text);
        let run = tap(&[
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
        ]);
        assert_one_error(&run, case, needle);
        assert!(
            run.stderr.contains("catalog file"),
            "{case}: {}",
            run.stderr
        );
    }
}

#[test]
fn broken_states_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, offline_config().to_string()).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"bookmarks\": ".into(), "is not valid JSON"),
        ("an array", "[]".into(), "state must be a JSON object"),
        (
            "a string",
            "\"2024-01-01\"".into(),
            "state must be a JSON object",
        ),
        (
            "bookmarks not an object",
            "{\"bookmarks\": [\"clients\"]}".into(),
            "'bookmarks' must be an object",
        ),
        (
            "a bookmark that is a string",
            json!({"bookmarks": {"clients": "2024-01-01T00:00:00Z"}}).to_string(),
            "bookmarks.clients must be an object",
        ),
        (
            "updated_at not a date",
            json!({"bookmarks": {"clients": {"updated_at": "last tuesday"}}}).to_string(),
            "bookmarks.clients.updated_at is not a date-time: \"last tuesday\"",
        ),
        (
            "updated_at a number",
            json!({"bookmarks": {"invoices": {"updated_at": 1700000000}}}).to_string(),
            "bookmarks.invoices.updated_at is not a date-time: 1700000000",
        ),
        (
            "a derived stream's bookmark not a date",
            json!({"bookmarks": {"invoice_line_items": {"invoices_updated_at": "soon"}}})
                .to_string(),
            "bookmarks.invoice_line_items.invoices_updated_at is not a date-time",
        ),
        (
            "a flat state with a number",
            json!({"clients": 1700000000}).to_string(),
            "state key \"clients\" is neither 'bookmarks' nor a legacy stream timestamp",
        ),
        (
            "a flat state with a word",
            json!({"clients": "2024-01-01T00:00:00Z", "tasks": "never"}).to_string(),
            "state key \"tasks\"",
        ),
    ];
    for (case, text, needle) in cases {
        let state = write_text(dir.path(), "state.json", &text);
        let run = tap(&[
            "--config",
            config.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ]);
        assert_one_error(&run, case, needle);
        assert!(run.stderr.contains("state file"), "{case}: {}", run.stderr);
    }
}

#[test]
fn command_line_misuse_gives_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, offline_config().to_string()).unwrap();
    let config = config.to_str().unwrap();
    let dir_path = dir.path().to_str().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "unknown flag",
            vec!["--config", config, "--frobnicate"],
            "'--frobnicate'",
        ),
        (
            "a stray argument",
            vec!["--config", config, "sync"],
            "'sync'",
        ),
        (
            "--catalog without a value",
            vec!["--config", config, "--catalog"],
            "a value is required for '--catalog <FILE>'",
        ),
        (
            "--config without a value",
            vec!["--config"],
            "a value is required for '--config <FILE>'",
        ),
        (
            "--state file missing",
            vec!["--config", config, "--state", missing],
            "cannot read state file",
        ),
        (
            "--catalog file missing",
            vec!["--config", config, "--catalog", missing],
            "cannot read catalog file",
        ),
        (
            "--config file missing",
            vec!["--config", missing],
            "cannot read config file",
        ),
        (
            "--config a directory",
            vec!["--config", dir_path],
            "cannot read config file",
        ),
        (
            "--state a directory",
            vec!["--config", config, "--state", dir_path],
            "cannot read state file",
        ),
        (
            "no --config",
            vec!["--state", missing],
            "--config is required",
        ),
        (
            "unknown --test mode",
            vec!["--config", config, "--test=everything"],
            "unknown --test mode \"everything\"",
        ),
        (
            "unknown --about format",
            vec!["--about", "--format", "yaml"],
            "'yaml'",
        ),
    ];
    for (case, args, needle) in cases {
        let run = tap(&args);
        assert_one_error(&run, case, needle);
    }
}

/// The singer-io 2.x flat state, as its users have it: migrated, and the sync resumes from its
/// bookmark instead of `start_date`.
#[test]
fn legacy_flat_state_is_migrated_and_honoured() {
    let h = Harness::tiny();
    let mut catalog = discover();
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let on = entry["tap_stream_id"] == "clients";
        entry["metadata"][0]["metadata"]["selected"] = json!(on);
    }
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = h
        .sim
        .truth("clients")
        .iter()
        .map(|c| c["updated_at"].as_str().unwrap().parse().unwrap())
        .collect();
    times.sort();
    assert!(times.len() >= 3, "the tiny account has too few clients");
    let since = times[times.len() / 2];
    let expected = times.iter().filter(|t| **t >= since).count();
    assert!(expected < times.len());
    // singer-io wrote microseconds and kept `currently_syncing` beside the bookmarks.
    let flat = json!({
        "clients": since.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "currently_syncing": null,
    });
    let run = h.sync(&h.config(), Some(&catalog), Some(&flat));
    run.assert_ok();
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.stderr.contains("migrated a legacy flat state"),
        "{}",
        run.stderr
    );
    run.assert_valid_singer();
    let records = run.records("clients");
    assert_eq!(
        records.len(),
        expected,
        "only clients updated since the legacy bookmark are read"
    );
    for r in &records {
        let at: chrono::DateTime<chrono::Utc> = r["updated_at"].as_str().unwrap().parse().unwrap();
        assert!(at >= since, "{at} is before the bookmark {since}");
    }
    let state = run.last_state();
    let bookmark: chrono::DateTime<chrono::Utc> = state["bookmarks"]["clients"]["updated_at"]
        .as_str()
        .expect("the migrated bookmark is written in the new layout")
        .parse()
        .unwrap();
    assert!(bookmark >= since);
    assert!(
        state.get("clients").is_none(),
        "the flat key is not written back: {state}"
    );
}
