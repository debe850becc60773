//! The shared harness: a simulator per test, the real tap binary, what a target would receive,
//! the ground truth computed independently of the tap, and the checks that a test checked
//! something.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use harvest_sim::{Sim, SimConfig, Size};
use serde_json::{json, Map, Value};
pub use tap_harvest::streams::{self, Source, StreamDef, STREAMS};

pub const TAP: &str = env!("CARGO_BIN_EXE_tap-harvest");

/// A running simulator plus a scratch directory for config, catalog and state files.
pub struct Harness {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

/// One run of the tap: its parsed stdout, its stderr and exit status.
pub struct Run {
    pub messages: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl Harness {
    pub fn new(config: SimConfig) -> Harness {
        Harness {
            sim: Sim::start(config).expect("simulator starts"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn tiny() -> Harness {
        Harness::new(SimConfig::fast(Size::Tiny))
    }

    /// A PAT config pointing at the simulator, with fast retries.
    pub fn config(&self) -> Value {
        json!({
            "access_token": "sim-pat-admin",
            "account_id": "1234567",
            "start_date": "2019-01-01T00:00:00Z",
            "user_agent": "tap-harvest tests (dev@example.com)",
            "base_url": self.sim.base_url(),
            "auth_url": self.sim.auth_url(),
            "backoff_base_seconds": 0.02,
            "request_timeout": 10,
            // The fast simulator has no rate limit: neither has the tap, unless a test says so.
            "rate_limit_requests": 1000000,
            "rate_limit_window_seconds": 1,
        })
    }

    pub fn oauth_config(&self, refresh_token: &str) -> Value {
        json!({
            "client_id": "sim-client-id",
            "client_secret": "sim-client-secret",
            "refresh_token": refresh_token,
            "start_date": "2019-01-01",
            "user_agent": "tap-harvest tests (dev@example.com)",
            "base_url": self.sim.base_url(),
            "auth_url": self.sim.auth_url(),
            "backoff_base_seconds": 0.02,
        })
    }

    pub fn write(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }

    /// Runs the tap with `config`, and optionally a catalog and a state.
    pub fn sync(&self, config: &Value, catalog: Option<&Value>, state: Option<&Value>) -> Run {
        let mut args = vec![
            "--config".to_string(),
            self.write("config.json", config).display().to_string(),
        ];
        if let Some(c) = catalog {
            args.push("--catalog".into());
            args.push(self.write("catalog.json", c).display().to_string());
        }
        if let Some(s) = state {
            args.push("--state".into());
            args.push(self.write("state.json", s).display().to_string());
        }
        run_tap(&args)
    }
}

/// Runs the tap for output that is not a message stream (`--discover`, `--about`).
pub fn run_raw<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(TAP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tap runs");
    Run {
        messages: Vec::new(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// The catalog `--discover` prints.
pub fn discover() -> Value {
    let run = run_raw(&["--discover"]);
    run.assert_ok();
    serde_json::from_str(&run.stdout).expect("the catalog is JSON")
}

/// The discovered catalog with the streams `select` accepts selected, as Meltano writes it
/// (the metadata flag and the top-level copy).
pub fn catalog_where(select: impl Fn(&str) -> bool) -> Value {
    let mut catalog = discover();
    for entry in catalog["streams"].as_array_mut().unwrap() {
        let on = select(entry["tap_stream_id"].as_str().unwrap());
        entry["metadata"][0]["metadata"]["selected"] = json!(on);
        entry["selected"] = json!(on);
    }
    catalog
}

/// A catalog selecting exactly `streams`.
pub fn catalog_selecting(streams: &[&str]) -> Value {
    catalog_where(|s| streams.contains(&s))
}

/// Runs the tap and parses its stdout as Singer messages, one JSON object per line.
pub fn run_tap<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(TAP)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOGLEVEL")
        .env_remove("TAP_HARVEST_LOGLEVEL")
        .stdin(Stdio::null())
        .output()
        .expect("tap runs");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let messages = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect();
    Run {
        messages,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

impl Run {
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "tap failed; stderr:\n{}", self.stderr);
        self
    }

    /// The CRITICAL lines of stderr: a failed run has exactly one.
    pub fn critical_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("CRITICAL"))
            .collect()
    }

    pub fn records(&self, stream: &str) -> Vec<&Map<String, Value>> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
            .map(|m| m["record"].as_object().unwrap())
            .collect()
    }

    pub fn streams_with_records(&self) -> BTreeSet<String> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "RECORD")
            .map(|m| m["stream"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn last_state(&self) -> Value {
        self.messages
            .iter()
            .rev()
            .find(|m| m["type"] == "STATE")
            .map(|m| m["value"].clone())
            .expect("a STATE message")
    }

    pub fn schema(&self, stream: &str) -> &Value {
        self.messages
            .iter()
            .find(|m| m["type"] == "SCHEMA" && m["stream"] == stream)
            .unwrap_or_else(|| panic!("no SCHEMA for {stream}"))
    }

    /// Singer's rules as targets apply them: every line a message, SCHEMA before a stream's
    /// RECORDs, key properties present, every record valid against its schema (formats
    /// included), the last message a STATE.
    pub fn assert_valid_singer(&self) {
        let mut validators: BTreeMap<String, (jsonschema::Validator, Vec<String>)> =
            BTreeMap::new();
        for m in &self.messages {
            match m["type"].as_str() {
                Some("SCHEMA") => {
                    let stream = m["stream"].as_str().unwrap().to_string();
                    let keys: Vec<String> = m["key_properties"]
                        .as_array()
                        .expect("key_properties")
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect();
                    assert!(
                        m["bookmark_properties"].is_array(),
                        "{stream}: bookmark_properties"
                    );
                    let v = jsonschema::draft7::options()
                        .should_validate_formats(true)
                        .build(&m["schema"])
                        .expect("schema compiles");
                    validators.insert(stream, (v, keys));
                }
                Some("RECORD") => {
                    let stream = m["stream"].as_str().unwrap();
                    let (v, keys) = validators
                        .get(stream)
                        .unwrap_or_else(|| panic!("RECORD of {stream} before its SCHEMA"));
                    let rec = &m["record"];
                    for k in keys {
                        assert!(!rec[k].is_null(), "{stream}: key {k} missing in {rec}");
                    }
                    if let Err(e) = v.validate(rec) {
                        panic!("{stream}: record does not match its schema: {e}\n{rec}");
                    }
                    assert!(
                        m["time_extracted"]
                            .as_str()
                            .is_some_and(|t| t.ends_with('Z')),
                        "time_extracted"
                    );
                }
                Some("STATE") => assert!(m["value"]["bookmarks"].is_object()),
                Some("ACTIVATE_VERSION") => {
                    let stream = m["stream"].as_str().unwrap();
                    assert!(
                        validators.contains_key(stream),
                        "ACTIVATE_VERSION of {stream} before its SCHEMA"
                    );
                    assert!(m["version"].is_i64(), "{stream}: version {}", m["version"]);
                }
                other => panic!("unexpected message type {other:?}"),
            }
        }
        let last = self
            .messages
            .last()
            .expect("no message at all: nothing to validate");
        assert_eq!(last["type"], "STATE", "the last message must be a STATE");
    }
}

/// `items`, once asserted to hold something: a check over none of them would pass having
/// checked nothing. `what` names them in the failure.
#[track_caller]
pub fn nonempty<'a, T>(items: &'a [T], what: &str) -> &'a [T] {
    assert!(
        !items.is_empty(),
        "{what}: none to check, the test would prove nothing"
    );
    items
}

/// Asserts that a check counted at least one thing it checked (a loop that skips what does
/// not apply, or an `all` over what a run happened to send).
#[track_caller]
pub fn assert_checked(count: usize, what: &str) {
    assert!(
        count > 0,
        "{what}: none checked, the test would prove nothing"
    );
}

/// The simulator resource a stream reads, for the streams with requests of their own: the
/// simulator names each resource after the envelope Harvest serves it in (a single object
/// after its path), so this follows from the tap's own table.
pub fn resource_of(stream: &str) -> Option<&'static str> {
    match streams::find(stream)?.source {
        Source::Single { path } => Some(path.trim_start_matches('/')),
        Source::List { envelope, .. } | Source::Child { envelope, .. } => Some(envelope),
        Source::Report { .. } | Source::Derived { .. } => None,
    }
}

/// The names of the streams `pick` accepts, in table order.
pub fn streams_where(pick: impl Fn(&StreamDef) -> bool) -> Vec<&'static str> {
    STREAMS.iter().filter(|d| pick(d)).map(|d| d.name).collect()
}

/// The streams read from a list endpoint of their own (roots and children), not reports.
pub fn api_streams() -> Vec<&'static str> {
    streams_where(|d| matches!(d.source, Source::List { .. } | Source::Child { .. }))
}

/// The streams made from their parent's records, with no request of their own.
pub fn derived_streams() -> Vec<&'static str> {
    streams_where(StreamDef::is_derived)
}

/// The reports read in windows.
pub fn windowed_reports() -> Vec<&'static str> {
    streams_where(|d| matches!(d.source, Source::Report { windowed: true, .. }))
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Expected rows of a stream, keyed by its primary key, computed here from the simulator's
/// raw objects independently of the tap's shaping code.
pub fn expected(sim: &Sim, stream: &str) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, row: Map<String, Value>| {
        out.insert(key, row);
    };
    match stream {
        "invoice_line_items" | "estimate_line_items" => {
            let (res, parent) = if stream == "invoice_line_items" {
                ("invoices", "invoice_id")
            } else {
                ("estimates", "estimate_id")
            };
            for p in sim.truth(res) {
                for li in p["line_items"].as_array().into_iter().flatten() {
                    let mut row = obj(li);
                    row.insert(parent.into(), p["id"].clone());
                    if stream == "invoice_line_items" {
                        row.insert("project_id".into(), li["project"]["id"].clone());
                    }
                    put(li["id"].to_string(), row);
                }
            }
        }
        "user_roles" => {
            for r in sim.truth("roles") {
                for u in r["user_ids"].as_array().into_iter().flatten() {
                    put(
                        format!("{}/{}", r["id"], u),
                        obj(&json!({"role_id": r["id"], "user_id": u})),
                    );
                }
            }
        }
        "external_reference" | "time_entry_external_reference" => {
            for t in sim.truth("time_entries") {
                let er = &t["external_reference"];
                if er.is_object() {
                    if stream == "external_reference" {
                        put(er["id"].to_string(), obj(er));
                    } else {
                        put(
                            format!("{}/{}", t["id"], er["id"]),
                            obj(
                                &json!({"time_entry_id": t["id"], "external_reference_id": er["id"]}),
                            ),
                        );
                    }
                }
            }
        }
        "user_project_tasks" => {
            for pa in sim.truth("project_assignments") {
                for ta in pa["task_assignments"].as_array().into_iter().flatten() {
                    let mut row = obj(
                        &json!({"user_id": pa["user_id"], "project_task_id": ta["id"],
                        "project_id": pa["project"]["id"], "task_id": ta["task"]["id"]}),
                    );
                    for f in [
                        "billable",
                        "is_active",
                        "hourly_rate",
                        "budget",
                        "created_at",
                        "updated_at",
                    ] {
                        row.insert(f.into(), ta[f].clone());
                    }
                    put(format!("{}/{}", pa["user_id"], ta["id"]), row);
                }
            }
        }
        "report_project_budget" => {
            let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
            for r in sim.report("project_budget", day, day, true) {
                put(r["project_id"].to_string(), obj(&r));
            }
        }
        s if s.starts_with("report_") => {
            let path = s.trim_start_matches("report_").replacen('_', "/", 1);
            for (from, to) in report_windows(REPORTS_START) {
                for r in sim.report(&path, from, to, true) {
                    let mut row = obj(&r);
                    row.insert("from".into(), json!(from.to_string()));
                    row.insert("to".into(), json!(to.to_string()));
                    put(key_of(stream, &row), row);
                }
            }
        }
        _ => {
            let res = resource_of(stream).unwrap_or_else(|| panic!("unknown stream {stream}"));
            for r in sim.truth(res) {
                let row = obj(&r);
                put(key_of(stream, &row), row);
            }
        }
    }
    out
}

/// The first day of the reports in [`Harness::config`] (its `start_date`).
pub const REPORTS_START: &str = "2019-01-01";

/// Report windows computed here, independently of the tap: 365 days, both ends included,
/// one after the other, the last ending today.
pub fn report_windows(start: &str) -> Vec<(chrono::NaiveDate, chrono::NaiveDate)> {
    let today = chrono::Utc::now().date_naive();
    let mut from = chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap();
    let mut out = Vec::new();
    while from <= today {
        let to = (from + chrono::Duration::days(364)).min(today);
        out.push((from, to));
        from = to + chrono::Duration::days(1);
    }
    out
}

/// The primary key of an emitted record, in the form [`expected`] uses: the values of the
/// stream's key properties (from the tap's table), joined by `/`.
pub fn key_of(stream: &str, rec: &Map<String, Value>) -> String {
    let def = streams::find(stream).unwrap_or_else(|| panic!("unknown stream {stream}"));
    def.key_properties
        .iter()
        .map(|k| rec.get(*k).unwrap_or(&Value::Null).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9
        }
        _ => a == b,
    }
}

/// Checks one emitted column against the raw object: the same field, a nested reference's id
/// (`client_id` ← `client.id`), or a flattened member (`receipt_url` ← `receipt.url`).
pub fn check_column(stream: &str, column: &str, got: &Value, raw: &Map<String, Value>) {
    let want = if let Some(v) = raw.get(column) {
        v.clone()
    } else if let Some(v) = column
        .strip_suffix("_id")
        .and_then(|base| raw.get(base))
        .filter(|v| v.is_object() || v.is_null())
    {
        v.get("id").cloned().unwrap_or(Value::Null)
    } else if let Some((obj, member)) = [
        ("receipt_", "receipt"),
        ("payment_gateway_", "payment_gateway"),
    ]
    .iter()
    .find_map(|(p, o)| column.strip_prefix(p).map(|m| (*o, m)))
    {
        raw.get(obj)
            .and_then(|o| o.get(member))
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    assert!(
        same(got, &want),
        "{stream}.{column}: emitted {got}, Harvest has {want} (record {})",
        raw.get("id").unwrap_or(&Value::Null)
    );
}

/// Asserts that the records of `stream` in `run` are exactly the simulator's ground truth.
pub fn assert_matches_truth(run: &Run, sim: &Sim, stream: &str) {
    let want = expected(sim, stream);
    let got: BTreeMap<String, &Map<String, Value>> = run
        .records(stream)
        .into_iter()
        .map(|r| (key_of(stream, r), r))
        .collect();
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{stream}: missing {missing:?}, unexpected {extra:?} ({} emitted, {} in Harvest)",
        got.len(),
        want.len()
    );
    assert!(
        !want.is_empty(),
        "{stream}: the simulator has no rows, the test proves nothing"
    );
    for (k, rec) in got {
        let raw = &want[&k];
        for (column, value) in rec {
            check_column(stream, column, value, raw);
        }
    }
}

/// Asserts that `run` sent as many records of `stream` as the simulator has rows, and that it
/// has some.
#[track_caller]
pub fn assert_count_matches_truth(run: &Run, sim: &Sim, stream: &str) {
    let want = expected(sim, stream).len();
    assert_checked(want, &format!("{stream}: rows in the simulator"));
    assert_eq!(run.records(stream).len(), want, "{stream}");
}

/// A catalog selecting every stream but the reports (which have tests of their own).
pub fn no_reports() -> Value {
    catalog_where(|s| !s.starts_with("report_"))
}

/// Runs the tap, stops it with `signal` after `delay`, returns what a target received.
pub fn interrupted(
    h: &Harness,
    config: &Value,
    state: Option<&Value>,
    signal: &str,
    delay: Duration,
) -> Run {
    let mut args = vec![
        "--config".to_string(),
        h.write("config.json", config).display().to_string(),
    ];
    args.push("--catalog".into());
    args.push(h.write("catalog.json", &no_reports()).display().to_string());
    if let Some(s) = state {
        args.push("--state".into());
        args.push(h.write("state.json", s).display().to_string());
    }
    let mut child = Command::new(TAP)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let signal = signal.to_string();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    killer.join().unwrap();
    // A SIGKILL can cut the last line short: a target would drop it.
    let messages = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    Run {
        messages,
        stdout,
        stderr,
        code: status.code(),
    }
}

/// A file's code without its comments and, for Rust, without its `#[cfg(test)]` part.
pub fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let rust = path.extension().is_some_and(|e| e == "rs");
    let text = match text.find("#[cfg(test)]") {
        Some(at) if rust => &text[..at],
        _ => &text[..],
    };
    let comment = if rust { "//" } else { "#" };
    let mut code = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if rust && t.starts_with("#[cfg(doc)]") {
            // An import for the docs' links only.
            lines.next();
        } else if !t.starts_with(comment) {
            code.push(l);
        }
    }
    code.join("\n")
}
