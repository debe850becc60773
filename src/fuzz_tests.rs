//! Property tests (proptest) of the parsers and record shaping on arbitrary input.
//!
//! Arbitrary JSON is generated with keys drawn both at random and from the names the code
//! looks for (config keys, catalog and state keys, schema properties), so the interesting paths
//! are reached; strings include unicode, control characters, emoji, numbers and dates in every
//! odd form. Properties: the config, catalog and state parsers never panic and name every
//! problem on one line; accepted states round-trip and the legacy flat state is migrated;
//! shaped and conformed records always validate against their stream's schema (formats
//! included), derived rows too; and realistic records with odd values (nulls, missing and extra
//! fields, numeric strings, integral floats, dates as date-times) keep every value the schema
//! allows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Once, OnceLock};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Number, Value};

use crate::catalog::{self, Selection};
use crate::client::config::Accounts;
use crate::config::Config;
use crate::conform::{Conformed, Conformer};
use crate::state::State;
use crate::streams::{shape::shape, Source, StreamDef, STREAMS};
use crate::util::parse_datetime;

const CASES: u32 = 384;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The conformer and the migration log to stderr; the properties would print thousands of
/// lines, so the tests log only critical lines.
fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("TAP_HARVEST_LOGLEVEL", "critical");
        crate::log::init_from_env();
    });
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON
// ---------------------------------------------------------------------------------------------

const CONFIG_KEYS: &[&str] = &[
    "access_token",
    "account_id",
    "client_id",
    "client_secret",
    "refresh_token",
    "start_date",
    "user_agent",
    "base_url",
    "auth_url",
    "request_timeout",
    "full_child_scan",
    "max_retries",
    "backoff_base_seconds",
    "rate_limit_requests",
    "rate_limit_window_seconds",
    "reports_rate_limit_requests",
    "reports_rate_limit_window_seconds",
    "max_concurrency",
    "reports_start_date",
    "include_fixed_fee",
    "detect_deletions",
    "deletion_window_days",
    "deletion_full_scan_days",
    "emit_activate_version_messages",
    "max_response_mb",
    "progress_interval_seconds",
    "metrics_log_level",
];

const SECRET_KEYS: &[&str] = &["access_token", "client_secret", "refresh_token"];

const CATALOG_KEYS: &[&str] = &[
    "streams",
    "tap_stream_id",
    "stream",
    "schema",
    "metadata",
    "breadcrumb",
    "properties",
    "selected",
    "selected-by-default",
    "inclusion",
    "key_properties",
    "replication_method",
    "type",
];

const STATE_KEYS: &[&str] = &[
    "bookmarks",
    "currently_syncing",
    "value",
    "updated_at",
    "invoices_updated_at",
    "from",
    "clients",
    "invoices",
    "time_entries",
    "invoice_line_items",
    "report_time_clients",
];

/// Strings that have broken parsers somewhere: empty, blank, control characters, numbers in
/// every spelling, dates that do not exist, date-times in forms RFC 3339 does or does not allow.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\n",
    "\t",
    "\r\n",
    "\0",
    "\u{7f}",
    "null",
    "true",
    "false",
    "TRUE",
    "0",
    "-0",
    "1",
    "-1",
    "12.5",
    " 12.5 ",
    "5.0",
    "1e3",
    "1e400",
    "-1e400",
    "NaN",
    "inf",
    "-inf",
    "0x10",
    "1_000",
    "+5",
    ".5",
    "5.",
    "9007199254740993",
    "18446744073709551616",
    "1,5",
    "\u{202e}abc",
    "é",
    "日本語",
    "🦀🎉",
    "👩‍👩‍👧",
    "\u{feff}",
    "a\u{0}b",
    "Zoë's \"quoted\" \\ path",
    "line\nbreak",
    "2024-01-01",
    "2024-02-29",
    "2023-02-29",
    "2024-13-01",
    "2024-00-10",
    "2024-1-5",
    "2024-01-5x",
    " 2024-01-01",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01 00:00:00",
    "2024-01-01 00:00:00Z",
    "2024-01-01T00:00:00.123456789Z",
    "2024-01-01T00:00:00.1234567890123Z",
    "2024-01-01T00:00:00+05:30",
    "2024-01-01T00:00:00-00:00",
    "2024-01-01t00:00:00z",
    "2016-12-31T23:59:60Z",
    "2024-01-01T23:59:60Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:60Z",
    "2016-12-31T23:59:60+01:00",
    "2017-01-01T00:59:60+01:00",
    "2016-12-31T23:59:60.5Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01T00:00:00+23:59",
    "0000-01-01",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "+10000-01-01",
    "+2024-01-01",
    "-0001-01-01",
    "99999-01-01",
    "02024-01-01",
    "2024-01-01T00:00Z",
    "20240101",
    "yesterday",
    "3:00pm",
    "https://api.harvestapp.com/v2",
    "http://",
    "https://",
    "http://exa mple.com",
    "http://[::1",
    "ftp://x",
];

/// Date-like strings assembled from odd parts: years of any width and sign, months and days
/// out of range, every separator, time, fraction and zone form.
fn date_like() -> BoxedStrategy<String> {
    let year = prop_oneof![
        4 => (1990i32..2100).prop_map(|y| format!("{y:04}")),
        1 => (0i32..10000).prop_map(|y| format!("{y:04}")),
        1 => (0i32..10000).prop_map(|y| y.to_string()),
        1 => (10000i32..300000).prop_map(|y| format!("+{y}")),
        1 => (1i32..300000).prop_map(|y| format!("-{y:04}")),
    ];
    let two = |lo: u32, hi: u32| {
        prop_oneof![
            4 => (lo..hi).prop_map(|n| format!("{n:02}")),
            1 => (0u32..100).prop_map(|n| n.to_string()),
        ]
    };
    let time = (
        select(vec!["T", "t", " ", "_", "TT"]),
        two(0, 25),
        two(0, 61),
        prop::option::weighted(0.8, two(0, 62)),
        select(vec!["", "", ".5", ".123456", ".000000", ".1234567891234"]),
        select(vec![
            "", "Z", "Z", "z", "+00:00", "-00:00", "-05:30", "+14:00", "+23:59", "+24:00", "+0530",
            "+05", " UTC",
        ]),
    )
        .prop_map(|(sep, h, m, s, frac, zone)| {
            let s = s.map(|s| format!(":{s}{frac}")).unwrap_or_default();
            format!("{sep}{h}:{m}{s}{zone}")
        });
    (
        year,
        two(1, 13),
        two(1, 29),
        select(vec!["-", "-", "-", "/", ""]),
        prop::option::weighted(0.6, time),
    )
        .prop_map(|(y, m, d, sep, t)| format!("{y}{sep}{m}{sep}{d}{}", t.unwrap_or_default()))
        .boxed()
}

/// A valid date-time in one of the forms the tap documents, with the moment it means.
fn valid_datetime() -> BoxedStrategy<(String, i64)> {
    (0i64..4_102_444_800, 0usize..5)
        .prop_map(|(secs, form)| {
            let d = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let s = match form {
                0 => d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                1 => d.format("%Y-%m-%dT%H:%M:%S.000000Z").to_string(),
                2 => d.format("%Y-%m-%d %H:%M:%S").to_string(),
                3 => d
                    .with_timezone(&chrono::FixedOffset::east_opt(-5 * 3600).unwrap())
                    .to_rfc3339(),
                _ => d.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
            };
            (s, secs)
        })
        .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(vec![
            0.0,
            -0.0,
            0.5,
            5.0,
            12.5,
            -3.0,
            1e15,
            9.0e15,
            9.007_199_254_740_993e15,
            1.8e19,
            1e20,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e-300,
        ])
        .prop_map(|f| json!(f)),
    ]
    .boxed()
}

/// Any string: proptest's own (no control characters) or any characters at all.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof![any::<String>(), "(?s).{0,12}"].boxed()
}

fn numeric_string() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (-1000i64..1000, 0u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
        (-1000i64..1000).prop_map(|a| format!(" {a} ")),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(ODD_STRINGS).prop_map(str::to_string),
        2 => date_like(),
        2 => any::<String>(),
        1 => "[ -~]{0,16}",
        // Any character at all, control characters and newlines included.
        1 => "(?s).{0,12}",
        1 => numeric_string(),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number(),
        3 => text().prop_map(Value::String),
    ]
    .boxed()
}

fn key(pool: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(pool),
        2 => any::<String>(),
        2 => "[a-z_]{1,12}",
        1 => text(),
    ]
    .boxed()
}

/// Arbitrary JSON whose object keys are mostly drawn from `pool`.
fn json_with_keys(pool: Vec<String>) -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(key(pool.clone()), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

fn pool(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

fn secret() -> BoxedStrategy<Value> {
    "SECRET-[A-Za-z0-9._-]{4,24}"
        .prop_map(Value::String)
        .boxed()
}

/// A value the config accepts for `key`.
fn valid_config_value(key: &'static str) -> BoxedStrategy<Value> {
    match key {
        "access_token" | "client_secret" | "refresh_token" => secret(),
        "client_id" => "[A-Za-z0-9_-]{1,24}".prop_map(Value::String).boxed(),
        "account_id" => prop_oneof![
            "[0-9]{1,12}".prop_map(Value::String),
            any::<u32>().prop_map(Value::from),
        ]
        .boxed(),
        "start_date" | "reports_start_date" => {
            valid_datetime().prop_map(|(s, _)| Value::String(s)).boxed()
        }
        "user_agent" => "[ -~]{1,30}".prop_map(Value::String).boxed(),
        "base_url" | "auth_url" => select(vec![
            "https://api.harvestapp.com/v2",
            "https://id.getharvest.com/api/v2/",
            "http://127.0.0.1:9/v2",
            "http://[::1]:8080",
        ])
        .prop_map(|s| json!(s))
        .boxed(),
        "deletion_window_days" | "deletion_full_scan_days" => {
            (0u32..400).prop_map(Value::from).boxed()
        }
        "full_child_scan"
        | "include_fixed_fee"
        | "detect_deletions"
        | "emit_activate_version_messages" => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            select(vec!["true", "false", "TRUE"]).prop_map(|s| json!(s)),
        ]
        .boxed(),
        "request_timeout" | "backoff_base_seconds" => prop_oneof![
            (0u32..600).prop_map(Value::from),
            (0.0f64..600.0).prop_map(|f| json!(f)),
            (1u32..600).prop_map(|n| json!(n.to_string())),
            Just(json!("")),
        ]
        .boxed(),
        "max_retries" => (0u32..=100).prop_map(Value::from).boxed(),
        "max_response_mb" => (1u32..=4096).prop_map(Value::from).boxed(),
        "metrics_log_level" => select(vec!["debug", "info", "warning", "INFO"])
            .prop_map(|s| json!(s))
            .boxed(),
        "progress_interval_seconds" => (0u32..600).prop_map(Value::from).boxed(),
        "rate_limit_window_seconds" | "reports_rate_limit_window_seconds" => {
            (0.0f64..86400.0).prop_map(|f| json!(f)).boxed()
        }
        _ => (1u32..100_000).prop_map(Value::from).boxed(),
    }
}

/// A value for `key` that may be anything: mistyped, out of range, empty, odd.
fn odd_config_value(key: &'static str) -> BoxedStrategy<Value> {
    let specific: BoxedStrategy<Value> = match key {
        "start_date" | "reports_start_date" => date_like().prop_map(Value::String).boxed(),
        "user_agent" => text().prop_map(Value::String).boxed(),
        "base_url" | "auth_url" => prop_oneof![
            select(vec![
                "http://",
                "https://",
                "http://exa mple.com",
                "http://[::1",
                "https://x:99999/",
                "not a url",
                "ftp://example.com",
                "/v2",
            ])
            .prop_map(|s| json!(s)),
            "https?://[a-z0-9 .:/\\[\\]]{0,20}".prop_map(Value::String),
        ]
        .boxed(),
        _ => prop_oneof![number(), numeric_string().prop_map(Value::String)].boxed(),
    };
    prop_oneof![
        2 => specific,
        2 => leaf(),
        1 => json_with_keys(pool(CONFIG_KEYS)),
    ]
    .boxed()
}

/// Configs near valid ones: an auth mode (one, both, neither or part of OAuth), then each other
/// key absent, valid, or (less often) odd, plus unknown keys.
fn config_strategy() -> BoxedStrategy<Value> {
    let entry = |k: &'static str, presence: f64, oddness: u32| {
        prop::option::weighted(
            presence,
            prop_oneof![
                8 => valid_config_value(k),
                oddness => odd_config_value(k),
            ]
            .prop_map(move |v| (k.to_string(), v)),
        )
        .boxed()
    };
    let mut per_key: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    for k in CONFIG_KEYS {
        per_key.push(match *k {
            "start_date" => entry(k, 0.95, 1),
            "access_token" | "client_id" | "client_secret" | "refresh_token" => entry(k, 0.6, 1),
            "account_id" => entry(k, 0.8, 1),
            _ => entry(k, 0.25, 1),
        });
    }
    let structured = (per_key, 0usize..5, btree_map("[a-z_]{1,10}", leaf(), 0..3)).prop_map(
        |(pairs, mode, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in pairs.into_iter().flatten() {
                m.insert(k, v);
            }
            // Mostly exactly one auth mode, so that valid configs are common.
            match mode {
                0 | 1 => {
                    for k in ["client_id", "client_secret", "refresh_token"] {
                        m.remove(k);
                    }
                    m.entry("access_token")
                        .or_insert_with(|| json!("SECRET-token"));
                }
                2 | 3 => {
                    m.remove("access_token");
                    for (k, v) in [
                        ("client_id", "client-id"),
                        ("client_secret", "SECRET-client"),
                        ("refresh_token", "SECRET-refresh"),
                    ] {
                        m.entry(k).or_insert_with(|| json!(v));
                    }
                }
                _ => {}
            }
            Value::Object(m)
        },
    );
    prop_oneof![
        6 => structured,
        1 => json_with_keys(pool(CONFIG_KEYS)),
    ]
    .boxed()
}

fn names_a_problem(line: &str) -> bool {
    CONFIG_KEYS.iter().any(|k| line.contains(&format!("'{k}'")))
        || line.starts_with("config must be a JSON object")
}

proptest! {
    #![proptest_config(cases(CASES * 2))]

    /// Config: never a panic; every problem one line naming its key; no secret in errors or
    /// in the debug output; an accepted config is usable.
    #[test]
    fn config_never_panics_and_names_every_problem(v in config_strategy()) {
        let secrets: Vec<String> = SECRET_KEYS
            .iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_str))
            .map(|s| s.trim().to_string())
            .filter(|s| s.starts_with("SECRET-"))
            .collect();
        match Config::from_value(&v) {
            Err(e) => {
                prop_assert!(!e.0.is_empty());
                for line in &e.0 {
                    prop_assert!(!line.trim().is_empty());
                    prop_assert!(!line.contains(['\n', '\r']), "multi-line error {line:?}");
                    prop_assert!(names_a_problem(line), "error names no key: {line:?}");
                    for s in &secrets {
                        prop_assert!(!line.contains(s.as_str()), "secret leaked in {line:?}");
                    }
                }
            }
            Ok(c) => {
                let debug = format!("{c:?}");
                for s in &secrets {
                    prop_assert!(!debug.contains(s.as_str()), "secret in debug output");
                }
                prop_assert!(c.client.request_timeout > std::time::Duration::ZERO);
                prop_assert!(c.client.budget.requests >= 1 && c.client.reports_budget.requests >= 1);
                prop_assert!(c.client.max_concurrency >= 1);
                prop_assert!(c.client.max_retries <= 100);
                prop_assert!(reqwest::Url::parse(&c.client.base_url).is_ok(), "base_url {:?}", c.client.base_url);
                prop_assert!(reqwest::Url::parse(&c.client.auth_url).is_ok(), "auth_url {:?}", c.client.auth_url);
                prop_assert!(
                    reqwest::header::HeaderValue::from_str(&c.client.user_agent).is_ok(),
                    "user_agent {:?} cannot be sent", c.client.user_agent
                );
                let ids: Vec<&String> = match &c.client.accounts {
                    Accounts::One(id) => vec![id],
                    Accounts::These(ids) => ids.iter().collect(),
                    Accounts::First | Accounts::All => Vec::new(),
                };
                for id in ids {
                    prop_assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
                }
                let sd = v["start_date"].as_str().unwrap();
                prop_assert_eq!(Some(c.sync.start_date), parse_datetime(sd));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------------------------

fn discovered() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| catalog::discover().unwrap())
}

fn stream_names() -> Vec<String> {
    STREAMS.iter().map(|s| s.name.to_string()).collect()
}

/// Every property name of every schema.
fn all_properties() -> Vec<String> {
    let mut out = BTreeSet::new();
    for def in STREAMS {
        if let Some(p) = def.schema()["properties"].as_object() {
            out.extend(p.keys().cloned());
        }
    }
    out.into_iter().collect()
}

fn flag() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => any::<bool>().prop_map(Value::Bool),
        2 => select(vec!["true", "false", "TRUE", "False", "yes", ""]).prop_map(|s| json!(s)),
        1 => leaf(),
    ]
    .boxed()
}

fn metadata_entry() -> BoxedStrategy<Value> {
    let props = all_properties();
    prop_oneof![
        3 => (prop::option::of(flag()), prop::option::of(flag())).prop_map(|(s, d)| {
            let mut md = Map::new();
            if let Some(s) = s { md.insert("selected".into(), s); }
            if let Some(d) = d { md.insert("selected-by-default".into(), d); }
            json!({"breadcrumb": [], "metadata": md})
        }),
        4 => (
            prop_oneof![4 => select(props), 1 => any_text()],
            prop::option::of(flag()),
            prop::option::of(prop_oneof![
                select(vec!["available", "automatic", "unsupported"]).prop_map(|s| json!(s)),
                leaf(),
            ]),
        )
            .prop_map(|(p, s, inc)| {
                let mut md = Map::new();
                if let Some(s) = s { md.insert("selected".into(), s); }
                if let Some(i) = inc { md.insert("inclusion".into(), i); }
                json!({"breadcrumb": ["properties", p], "metadata": md})
            }),
        1 => json_with_keys(pool(CATALOG_KEYS)),
    ]
    .boxed()
}

fn catalog_entry() -> BoxedStrategy<Value> {
    let name = prop_oneof![
        6 => select(stream_names()).prop_map(Value::String),
        1 => leaf(),
    ];
    (
        prop::option::weighted(0.9, name.clone()),
        prop::option::weighted(0.3, name),
        prop::option::weighted(
            0.3,
            prop_oneof![
                flag().prop_map(|f| json!({"selected": f})),
                json_with_keys(pool(CATALOG_KEYS)),
            ],
        ),
        prop::option::weighted(
            0.8,
            prop_oneof![
                6 => vec(metadata_entry(), 0..6).prop_map(Value::Array),
                1 => leaf(),
            ],
        ),
        prop::option::weighted(0.2, flag()),
    )
        .prop_map(|(id, stream, schema, metadata, selected)| {
            let mut e = Map::new();
            for (k, v) in [
                ("tap_stream_id", id),
                ("stream", stream),
                ("schema", schema),
                ("metadata", metadata),
                ("selected", selected),
            ] {
                if let Some(v) = v {
                    e.insert(k.into(), v);
                }
            }
            Value::Object(e)
        })
        .boxed()
}

/// The discovered catalog with a few edits at random places.
fn edited_discovery() -> BoxedStrategy<Value> {
    let n = STREAMS.len();
    vec(
        (0..n, 0usize..6, json_with_keys(pool(CATALOG_KEYS)), flag()),
        0..5,
    )
    .prop_map(|edits| {
        let mut c = discovered().clone();
        let entries = c["streams"].as_array_mut().unwrap();
        for (i, kind, junk, flag) in edits {
            let Some(e) = entries.get_mut(i) else {
                continue;
            };
            let md = e.get_mut("metadata").and_then(Value::as_array_mut);
            match (kind, md) {
                (0 | 1, Some(md)) if !md.is_empty() => {
                    let j = if kind == 0 { 0 } else { md.len() / 2 };
                    if let Some(m) = md[j].get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("selected".into(), flag);
                    }
                }
                (2, _) => e["tap_stream_id"] = junk,
                (3, _) => e["metadata"] = junk,
                (4, Some(md)) => {
                    md.push(json!({"breadcrumb": ["properties", junk], "metadata": {}}));
                }
                (5, Some(md)) if !md.is_empty() => {
                    let j = md.len() - 1;
                    md[j] = junk;
                }
                _ => {}
            }
        }
        c
    })
    .boxed()
}

fn catalog_strategy() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => vec(catalog_entry(), 0..5).prop_map(|s| json!({"streams": s})),
        2 => edited_discovery(),
        1 => json_with_keys(pool(CATALOG_KEYS)),
        1 => json_with_keys(pool(CATALOG_KEYS)).prop_map(|s| json!({"streams": [s]})),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(CASES))]

    /// Catalog: never a panic, errors on one line; a selection holds only known streams and
    /// properties, and always the keys and the replication key.
    #[test]
    fn catalog_never_panics_and_selects_only_known_things(v in catalog_strategy()) {
        match Selection::from_value(&v) {
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(!msg.trim().is_empty());
                prop_assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
            }
            Ok(sel) => {
                for (name, props) in &sel.streams {
                    let def = crate::streams::find(name).expect("a known stream");
                    let Some(props) = props else { continue };
                    let known = def.schema()["properties"].as_object().unwrap();
                    for p in props {
                        prop_assert!(known.contains_key(p), "{name}: unknown property {p}");
                    }
                    for k in def.automatic_columns() {
                        prop_assert!(props.contains(k), "{name}: automatic {k} not selected");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

fn bookmark_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => valid_datetime().prop_map(|(s, _)| Value::String(s)),
        2 => date_like().prop_map(Value::String),
        1 => leaf(),
    ]
    .boxed()
}

fn bookmarks_state() -> BoxedStrategy<Value> {
    let bookmark_key = prop_oneof![
        select(vec!["updated_at", "invoices_updated_at", "from", "x"]).prop_map(str::to_string),
        any_text(),
    ];
    let stream = prop_oneof![4 => select(stream_names()), 1 => any_text()];
    let bookmark = prop_oneof![
        6 => btree_map(bookmark_key, bookmark_value(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => leaf(),
    ];
    (
        btree_map(stream, bookmark, 0..5),
        prop::option::of(leaf()),
        any::<bool>(),
    )
        .prop_map(|(b, cs, wrap)| {
            let mut s = json!({"bookmarks": Value::Object(b.into_iter().collect())});
            if let Some(cs) = cs {
                s["currently_syncing"] = cs;
            }
            if wrap {
                json!({ "value": s })
            } else {
                s
            }
        })
        .boxed()
}

fn legacy_stream_name() -> BoxedStrategy<String> {
    prop_oneof![
        select(stream_names()),
        "[a-z_]{1,20}".prop_filter("not a state key", |s| {
            !["bookmarks", "currently_syncing", "value"].contains(&s.as_str())
        }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(CASES * 2))]

    /// State: never a panic, errors on one line; an accepted state round-trips and every
    /// date-time bookmark in it reads back.
    #[test]
    fn state_never_panics_and_round_trips(v in prop_oneof![
        2 => bookmarks_state(),
        1 => json_with_keys(pool(STATE_KEYS)),
        1 => btree_map(legacy_stream_name(), bookmark_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]) {
        quiet();
        match State::from_value(v) {
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(!msg.trim().is_empty());
                prop_assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
            }
            Ok(s) => {
                let out = s.to_value();
                prop_assert!(out["bookmarks"].is_object());
                let again = State::from_value(out.clone());
                prop_assert!(again.is_ok(), "written state not readable: {:?}", again.err());
                let again = again.unwrap();
                prop_assert_eq!(&again, &s);
                prop_assert_eq!(again.to_value(), out.clone());
                for (stream, b) in out["bookmarks"].as_object().unwrap() {
                    for (k, v) in b.as_object().unwrap() {
                        if k.ends_with("updated_at") && !v.is_null() {
                            prop_assert!(s.bookmark(stream, k).is_some(), "{stream}.{k} = {v}");
                        }
                    }
                }
            }
        }
    }

    /// The older singer-io flat state `{stream: timestamp}` becomes
    /// `bookmarks.<stream>.updated_at`, the same moment.
    #[test]
    fn legacy_flat_state_is_migrated(
        flat in btree_map(legacy_stream_name(), valid_datetime(), 1..6),
        currently in prop::option::of(prop_oneof![Just(Value::Null), "[a-z_]{1,10}".prop_map(Value::String)]),
    ) {
        quiet();
        let mut v: Map<String, Value> = flat.iter().map(|(k, (s, _))| (k.clone(), json!(s))).collect();
        if let Some(c) = &currently {
            v.insert("currently_syncing".into(), c.clone());
        }
        let s = State::from_value(Value::Object(v));
        prop_assert!(s.is_ok(), "{:?}", s.err());
        let s = s.unwrap();
        let out = s.to_value();
        for (stream, (text, secs)) in &flat {
            prop_assert_eq!(
                s.bookmark(stream, "updated_at").map(|d| d.timestamp()),
                Some(*secs),
                "{} = {}", stream, text
            );
            prop_assert_eq!(&out["bookmarks"][stream]["updated_at"], &json!(text));
        }
        prop_assert_eq!(out["bookmarks"].as_object().unwrap().len(), flat.len());
        prop_assert_eq!(State::from_value(out.clone()).unwrap(), s);
    }
}

// ---------------------------------------------------------------------------------------------
// Record shaping and conforming
// ---------------------------------------------------------------------------------------------

fn conformer(stream: &'static str) -> &'static Conformer {
    static C: OnceLock<HashMap<&'static str, Conformer>> = OnceLock::new();
    &C.get_or_init(|| {
        STREAMS
            .iter()
            .map(|d| (d.name, Conformer::new(d, None)))
            .collect()
    })[stream]
}

fn validator(stream: &str) -> &'static jsonschema::Validator {
    static V: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    &V.get_or_init(|| {
        STREAMS
            .iter()
            .map(|d| {
                let v = jsonschema::draft7::options()
                    .should_validate_formats(true)
                    .build(d.schema())
                    .expect("schema compiles");
                (d.name, v)
            })
            .collect()
    })[stream]
}

/// Conforms a row; a record must validate against the schema. Returns the record, or `None`
/// when it was rejected (with a one-line reason).
fn conform_and_validate(
    def: &StreamDef,
    row: Map<String, Value>,
) -> Result<Option<Map<String, Value>>, TestCaseError> {
    match conformer(def.name).conform(row) {
        Conformed::Record(r) => {
            let value = Value::Object(r);
            if let Err(e) = validator(def.name).validate(&value) {
                return Err(TestCaseError::fail(format!(
                    "{}: conformed record does not match its schema: {e}\n{value}",
                    def.name
                )));
            }
            let Value::Object(r) = value else {
                unreachable!()
            };
            Ok(Some(r))
        }
        Conformed::Rejected(why) => {
            prop_assert!(!why.contains(['\n', '\r']), "multi-line rejection {why:?}");
            Ok(None)
        }
    }
}

/// The names a raw Harvest record of `def` may hold: its columns, the nested objects they come
/// from and their members.
fn raw_names(def: &StreamDef) -> Vec<String> {
    let mut names: BTreeSet<String> = def.schema()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for (field, _) in def.refs {
        names.insert(field.to_string());
    }
    for (field, prefix) in def.flatten {
        names.insert(field.to_string());
        let members: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix).map(str::to_string))
            .collect();
        names.extend(members);
    }
    names.extend(
        [
            "id",
            "name",
            "line_items",
            "task_assignments",
            "project",
            "task",
        ]
        .map(String::from),
    );
    names.into_iter().collect()
}

fn stream_and_raw_record() -> BoxedStrategy<(usize, Value, Option<Value>)> {
    (0..STREAMS.len())
        .prop_flat_map(|i| {
            let keys = raw_names(&STREAMS[i]);
            (
                Just(i),
                btree_map(key(keys.clone()), json_with_keys(keys), 0..16)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::option::of(leaf()),
            )
        })
        .boxed()
}

/// A record as the engine emits it: a child's parent id put on it as it is read, then shaped.
fn shape_as_read(
    def: &StreamDef,
    mut raw: Map<String, Value>,
    parent_id: Option<&Value>,
) -> Map<String, Value> {
    if let (Some(column), Some(id)) = (def.parent_id, parent_id) {
        raw.insert(column.to_string(), id.clone());
    }
    shape(def, raw)
}

fn derived_rows(def: &StreamDef, parent: &Map<String, Value>) -> Option<Vec<Map<String, Value>>> {
    match def.source {
        Source::Derived { rows, .. } => Some(rows(parent)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(cases(CASES * 2))]

    /// Any object, shaped and conformed for any stream, is either a record valid against the
    /// stream's schema or rejected with a one-line reason; never a panic.
    #[test]
    fn shaped_records_always_validate((i, raw, parent) in stream_and_raw_record()) {
        quiet();
        let def = &STREAMS[i];
        let raw = raw.as_object().unwrap().clone();
        conform_and_validate(def, shape_as_read(def, raw.clone(), parent.as_ref()))?;
        // The same object as a parent of each derived stream.
        for d in STREAMS.iter().filter(|d| d.parent() == Some(def.name)) {
            for row in derived_rows(d, &raw).into_iter().flatten() {
                conform_and_validate(d, row)?;
            }
        }
    }

    /// Derived tables on arbitrary parents: never a panic, every row conforms or is rejected.
    #[test]
    fn derived_rows_always_validate(parent in btree_map(
        key(pool(&["id", "line_items", "user_ids", "external_reference", "task_assignments",
                   "user_id", "project_id", "project", "task", "quantity", "updated_at",
                   "created_at", "billable", "hourly_rate", "budget", "is_active", "permalink",
                   "group_id", "service", "service_icon_url", "unit_price", "amount", "kind"])),
        json_with_keys(pool(&["id", "project", "task", "quantity", "unit_price", "updated_at",
                              "billable", "budget", "hourly_rate", "name", "permalink",
                              "group_id", "kind", "taxed", "description"])),
        0..10,
    )) {
        quiet();
        let parent: Map<String, Value> = parent.into_iter().collect();
        for def in STREAMS.iter().filter(|d| d.is_derived()) {
            for row in derived_rows(def, &parent).unwrap() {
                conform_and_validate(def, row)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Realistic records with odd values
// ---------------------------------------------------------------------------------------------

fn kinds(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn nullable(schema: &Value) -> bool {
    let k = kinds(schema);
    k.is_empty() || k.contains(&"null")
}

fn valid_date() -> BoxedStrategy<String> {
    prop_oneof![
        (1990i32..2100, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        select(vec!["2024-02-29", "2000-02-29", "1999-12-31", "2038-01-19"]).prop_map(String::from),
    ]
    .boxed()
}

fn unicode_text() -> BoxedStrategy<String> {
    prop_oneof![
        "[ -~]{0,20}",
        any_text(),
        select(vec![
            "Zoë",
            "日本語のテキスト",
            "🦀 crab",
            "👩‍👩‍👧",
            "\u{202e}rtl",
            "tab\there",
            "new\nline",
            ""
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

/// A value of the type a property's schema declares.
fn typed_value(schema: &Value) -> BoxedStrategy<Value> {
    let k: Vec<String> = kinds(schema).into_iter().map(String::from).collect();
    let kind = k.iter().find(|k| *k != "null").cloned().unwrap_or_default();
    match (kind.as_str(), schema["format"].as_str()) {
        ("integer", _) => prop_oneof![
            (0i64..100_000_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
        ]
        .boxed(),
        ("number", _) => prop_oneof![
            (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
            (0i64..100_000).prop_map(Value::from),
            select(vec![0.1, 12.5, 1e-7, 123456789.123]).prop_map(|f| json!(f)),
        ]
        .boxed(),
        ("string", Some("date")) => valid_date().prop_map(Value::String).boxed(),
        ("string", Some("date-time")) => valid_date()
            .prop_flat_map(|d| {
                (0u32..24, 0u32..60, 0u32..60)
                    .prop_map(move |(h, m, s)| Value::String(format!("{d}T{h:02}:{m:02}:{s:02}Z")))
            })
            .boxed(),
        ("string", _) => unicode_text().prop_map(Value::String).boxed(),
        ("boolean", _) => any::<bool>().prop_map(Value::Bool).boxed(),
        ("array", _) => vec(typed_value(&schema["items"]), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        ("object", _) => {
            let fields: Vec<(String, BoxedStrategy<Value>)> = schema["properties"]
                .as_object()
                .map(|p| p.iter().map(|(k, s)| (k.clone(), typed_value(s))).collect())
                .unwrap_or_default();
            let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
            let strategies: Vec<BoxedStrategy<Value>> =
                fields.into_iter().map(|(_, s)| s).collect();
            strategies
                .prop_map(move |vals| object(names.clone().into_iter().zip(vals)))
                .boxed()
        }
        _ => leaf(),
    }
}

/// What is done to a field of a realistic record before shaping.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Odd {
    Keep,
    Null,
    Drop,
    /// A number sent as a string: `"12.5"`.
    NumericString,
    /// An integer sent as a float: `5.0`.
    IntegralFloat,
    /// A string replaced by arbitrary unicode.
    Unicode,
    /// A date sent as a date-time, or a date-time as a date.
    OtherDateForm,
    /// A boolean sent as `"true"` / `"false"`.
    BoolString,
    /// A plain string field sent a number.
    NumberForString,
}

const ODDS: &[Odd] = &[
    Odd::Keep,
    Odd::Keep,
    Odd::Keep,
    Odd::Null,
    Odd::Drop,
    Odd::NumericString,
    Odd::IntegralFloat,
    Odd::Unicode,
    Odd::OtherDateForm,
    Odd::BoolString,
    Odd::NumberForString,
];

struct Field {
    name: String,
    schema: Value,
    value: Value,
    odd: Odd,
    unicode: String,
}

impl Field {
    fn kind(&self) -> &str {
        kinds(&self.schema)
            .into_iter()
            .find(|k| *k != "null")
            .unwrap_or("")
    }

    fn format(&self) -> Option<&str> {
        self.schema["format"].as_str()
    }

    /// The value sent (`None`: the field is absent) and the value the conformed record must
    /// hold.
    fn apply(&mut self) -> (Option<Value>, Value) {
        let v = self.value.clone();
        let kind = self.kind().to_string();
        let (sent, want) = match (self.odd, kind.as_str(), self.format()) {
            (Odd::Null, _, _) => (Some(Value::Null), Value::Null),
            (Odd::Drop, _, _) => (None, Value::Null),
            (Odd::NumericString, "integer" | "number", _) => {
                (Some(Value::String(v.to_string())), v.clone())
            }
            (Odd::IntegralFloat, "integer", _) if v.as_i64().is_some_and(|n| n.abs() < 1 << 52) => {
                (Some(json!(v.as_i64().unwrap() as f64)), v.clone())
            }
            (Odd::Unicode, "string", None) => {
                let s = Value::String(self.unicode.clone());
                (Some(s.clone()), s)
            }
            (Odd::OtherDateForm, "string", Some("date")) => {
                let d = v.as_str().unwrap();
                (Some(json!(format!("{d}T13:45:00Z"))), v.clone())
            }
            (Odd::OtherDateForm, "string", Some("date-time")) => {
                let d = &v.as_str().unwrap()[..10];
                (Some(json!(d)), json!(format!("{d}T00:00:00Z")))
            }
            (Odd::BoolString, "boolean", _) => (Some(json!(v.to_string())), v.clone()),
            (Odd::NumberForString, "string", None) => (Some(json!(42.5)), json!("42.5")),
            _ => {
                self.odd = Odd::Keep;
                (Some(v.clone()), v)
            }
        };
        (sent, want)
    }
}

/// A realistic record of a stream: every property a value of its type, each then kept or made
/// odd, with extra unknown fields.
#[allow(clippy::type_complexity)]
fn realistic_record() -> BoxedStrategy<(
    usize,
    Vec<(String, Value, Odd, String)>,
    BTreeMap<String, Value>,
)> {
    (0..STREAMS.len())
        .prop_flat_map(|i| {
            let props = STREAMS[i].schema()["properties"].as_object().unwrap();
            let fields: Vec<BoxedStrategy<(String, Value, Odd, String)>> = props
                .iter()
                // Set on tombstones only, never on a record read from Harvest.
                .filter(|(name, _)| *name != crate::streams::DELETED_AT)
                .map(|(name, schema)| {
                    let name = name.clone();
                    (typed_value(schema), select(ODDS), unicode_text())
                        .prop_map(move |(v, odd, u)| (name.clone(), v, odd, u))
                        .boxed()
                })
                .collect();
            let extra = btree_map(
                "x_[a-z_]{0,10}|[A-Z][a-zA-Z]{0,8}|日本|🦀",
                json_with_keys(pool(&["id", "name"])),
                0..4,
            );
            (Just(i), fields, extra)
        })
        .boxed()
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(cases(CASES * 2))]

    /// Realistic records with odd values: the conformed record validates, and every value the
    /// schema allows is kept (numeric strings become the number, `5.0` the integer 5, a date
    /// sent as a date-time its date, ...), whatever was nulled, dropped or added.
    #[test]
    fn odd_but_realistic_records_keep_their_data((i, fields, extra) in realistic_record()) {
        quiet();
        let def = &STREAMS[i];
        let mut fields: Vec<Field> = fields
            .into_iter()
            .map(|(name, value, odd, unicode)| Field {
                schema: def.schema()["properties"][&name].clone(),
                name,
                value,
                odd,
                unicode,
            })
            .collect();
        // The record as Harvest would send it: shaped columns folded back into nested objects.
        let mut raw = Map::new();
        let mut parent_id = None;
        let mut want = Map::new();
        let mut must_reject = false;
        for f in &mut fields {
            let (sent, expect) = f.apply();
            if expect.is_null() && !nullable(&f.schema) {
                must_reject = true;
            }
            want.insert(f.name.clone(), expect);
            if def.parent_id == Some(f.name.as_str()) {
                parent_id = sent;
                continue;
            }
            if let Some((field, _)) = def.refs.iter().find(|(_, c)| *c == f.name) {
                match sent {
                    None => {}
                    Some(Value::Null) => {
                        raw.insert(field.to_string(), Value::Null);
                    }
                    Some(id) => {
                        raw.insert(field.to_string(), json!({"id": id, "name": "Zoë 🦀"}));
                    }
                }
                continue;
            }
            if let Some((field, prefix)) = def.flatten.iter().find(|(_, p)| f.name.starts_with(p)) {
                let nested = raw
                    .entry(field.to_string())
                    .or_insert_with(|| json!({}));
                if let Some(v) = sent {
                    nested[&f.name[prefix.len()..]] = v;
                }
                continue;
            }
            if let Some(v) = sent {
                raw.insert(f.name.clone(), v);
            }
        }
        for (k, v) in extra {
            if !raw.contains_key(&k) && !want.contains_key(&k) {
                raw.insert(k, v);
            }
        }
        let shaped = shape_as_read(def, raw.clone(), parent_id.as_ref());
        let got = conform_and_validate(def, shaped)?;
        match got {
            None => prop_assert!(must_reject, "{}: a valid record was rejected: {}", def.name, Value::Object(raw)),
            Some(rec) => {
                prop_assert!(!must_reject, "{}: a record without its key was emitted", def.name);
                for f in &fields {
                    let got = &rec[&f.name];
                    let want = &want[&f.name];
                    prop_assert!(
                        same(got, want),
                        "{}.{} ({:?} of {}): emitted {}, expected {}",
                        def.name, f.name, f.odd, f.value, got, want
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every odd string and date form in every typed field
// ---------------------------------------------------------------------------------------------

/// A minimal valid record of `def`: its key properties set.
fn keyed_record(def: &StreamDef) -> Map<String, Value> {
    let props = def.schema()["properties"].as_object().unwrap();
    let mut r = Map::new();
    for k in def.key_properties {
        let v = match (
            kinds(&props[*k]).first().copied(),
            props[*k]["format"].as_str(),
        ) {
            (_, Some("date")) => json!("2024-01-01"),
            (Some("integer"), _) => json!(7),
            _ => json!("k"),
        };
        r.insert(k.to_string(), v);
    }
    r
}

/// Each odd string into each property of each stream: the conformed record validates.
#[test]
fn every_odd_string_in_every_field_validates() {
    quiet();
    let mut failures = BTreeMap::new();
    for def in STREAMS {
        let props = def.schema()["properties"].as_object().unwrap();
        for name in props.keys() {
            for s in ODD_STRINGS {
                let mut r = keyed_record(def);
                r.insert(name.clone(), json!(s));
                if let Err(e) = conform_and_validate(def, r) {
                    let e = e.to_string();
                    failures.entry(format!("{s:?}")).or_insert_with(|| {
                        format!("{}.{name}: {}", def.name, e.lines().next().unwrap_or(""))
                    });
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn date_fields() -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, def) in STREAMS.iter().enumerate() {
        for (name, p) in def.schema()["properties"].as_object().unwrap() {
            if p["format"].is_string() {
                out.push((i, name.clone()));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(cases(CASES * 2))]

    /// Date-like strings of every form into date and date-time fields: the record validates,
    /// and a value that is a valid date-time is kept (never nulled).
    #[test]
    fn date_forms_in_date_fields_validate(
        (i, name) in select(date_fields()),
        s in prop_oneof![date_like(), valid_datetime().prop_map(|(s, _)| s)],
    ) {
        quiet();
        let def = &STREAMS[i];
        let mut r = keyed_record(def);
        r.insert(name.clone(), json!(s));
        conform_and_validate(def, r)?;
    }
}

/// The config values the properties found wrong, named here so they stay fixed.
#[test]
fn config_rejects_what_would_fail_later() {
    let base = json!({"access_token": "t", "account_id": "1", "start_date": "2024-01-01"});
    for (key, value) in [
        ("user_agent", json!("tap\nharvest")),
        ("user_agent", json!("tap-harvest (zoë@example.com)")),
        ("user_agent", json!("a\u{0}b")),
        ("rate_limit_window_seconds", json!(1e20)),
        ("reports_rate_limit_window_seconds", json!(1e300)),
        ("request_timeout", json!("1e30")),
        ("backoff_base_seconds", json!(f64::MAX)),
        ("base_url", json!("http://")),
        ("auth_url", json!("https://")),
        ("base_url", json!("http://exa mple.com")),
        ("base_url", json!("http://[::1")),
    ] {
        let mut c = base.clone();
        c[key] = value.clone();
        let e = Config::from_value(&c).expect_err(&format!("{key} = {value}"));
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].contains(&format!("'{key}'")), "{e}");
    }
    let mut c = base.clone();
    c["request_timeout"] = json!(1e-300);
    let c = Config::from_value(&c).unwrap();
    assert_eq!(
        c.client.request_timeout,
        std::time::Duration::from_secs(300)
    );
}

/// Huge values pass whole: a megabyte of unicode in a note, thousands of line items and role
/// members, each row valid.
#[test]
fn huge_values_pass_through() {
    quiet();
    let invoices = crate::streams::find("invoices").unwrap();
    let line_items = crate::streams::find("invoice_line_items").unwrap();
    let note = "Zoë 🦀 日本語 ".repeat(60_000);
    let items: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"id": i + 1, "quantity": format!("{i}.5"), "description": note[..64].to_string(),
                        "project": {"id": i, "name": "p"}})
        })
        .collect();
    let invoice =
        json!({"id": 1, "notes": note, "line_items": items, "updated_at": "2024-01-01T00:00:00Z"});
    let invoice = invoice.as_object().unwrap().clone();
    let rec = conform_and_validate(invoices, shape_as_read(invoices, invoice.clone(), None))
        .unwrap()
        .expect("a record");
    assert_eq!(rec["notes"], json!(note));
    let rows = derived_rows(line_items, &invoice).unwrap();
    assert_eq!(rows.len(), 5000);
    for (i, row) in rows.into_iter().enumerate() {
        let r = conform_and_validate(line_items, row)
            .unwrap()
            .expect("a row");
        assert_eq!(r["quantity"], json!(i as f64 + 0.5));
        assert_eq!(r["invoice_id"], json!(1));
    }
    let roles = crate::streams::find("user_roles").unwrap();
    let role = json!({"id": 3, "user_ids": (1..=20_000).collect::<Vec<i64>>()});
    let rows = derived_rows(roles, role.as_object().unwrap()).unwrap();
    assert_eq!(rows.len(), 20_000);
    for row in rows {
        conform_and_validate(roles, row).unwrap().expect("a row");
    }
}
