//! The settings, each stated once: name and type (a field of [`Settings`]), default (a
//! `DEFAULT_*` constant, fed to the schema's `default` and to the description's prose by the
//! schemars attributes), and required-ness (`start_date` is the one field that is not an
//! `Option`; `dependentRequired` says `account_id` is required with `access_token`).
//!
//! [`schema`] is what `--about` prints (and renders as text and Markdown);
//! [`Config::from_value`] falls back on the same constants for a key the config omits.

#[cfg(doc)]
use crate::config::Config;
use schemars::JsonSchema;
use serde_json::Value;

pub const DEFAULT_BASE_URL: &str = "https://api.harvestapp.com/v2";
pub const DEFAULT_AUTH_URL: &str = "https://id.getharvest.com/api/v2";
/// `0` and an empty value mean the default too.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 300;
pub const DEFAULT_FULL_CHILD_SCAN: bool = false;
pub const DEFAULT_INCLUDE_ACCOUNT_ID: bool = false;
pub const DEFAULT_BUDGET_PER_ACCOUNT: bool = false;
pub const DEFAULT_MAX_RETRIES: u32 = 6;
pub const DEFAULT_BACKOFF_BASE_SECONDS: u64 = 1;
/// Harvest's own limit.
pub const DEFAULT_RATE_LIMIT_REQUESTS: u32 = 100;
pub const DEFAULT_RATE_LIMIT_WINDOW_SECONDS: u64 = 15;
pub const DEFAULT_REPORTS_RATE_LIMIT_REQUESTS: u32 = 100;
pub const DEFAULT_REPORTS_RATE_LIMIT_WINDOW_SECONDS: u64 = 900;
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
pub const DEFAULT_DETECT_DELETIONS: bool = true;
pub const DEFAULT_DELETION_WINDOW_DAYS: u32 = 30;
pub const DEFAULT_EMIT_ACTIVATE_VERSION_MESSAGES: bool = false;
pub const DEFAULT_DELETION_FULL_SCAN_DAYS: u32 = 7;
pub const DEFAULT_PROGRESS_INTERVAL_SECONDS: u64 = 30;
pub const DEFAULT_METRICS_LOG_LEVEL: &str = "info";
/// Harvest's biggest pages are a few MB.
pub const DEFAULT_MAX_RESPONSE_MB: u32 = 64;
/// The Meltano SDK's.
pub const DEFAULT_FLATTENING_MAX_KEY_LENGTH: u32 =
    stream_maps::flatten::DEFAULT_MAX_KEY_LENGTH as u32;
pub const DEFAULT_FLATTENING_SEPARATOR: &str = stream_maps::flatten::DEFAULT_SEPARATOR;

/// The project's address, in the default User-Agent (Harvest asks for a way to reach the
/// author of a client).
const CONTACT: &str = "https://github.com/tap-harvest/tap-harvest";

/// The User-Agent of this build: `tap-harvest/<version> (<project URL>)`.
pub fn default_user_agent() -> String {
    user_agent_of(env!("CARGO_PKG_VERSION"))
}

fn user_agent_of(version: &str) -> String {
    format!("tap-harvest/{version} ({CONTACT})")
}

/// The settings the tap reads from its config file. This type documents them (`--about`
/// prints its JSON Schema); [`Config::from_value`] parses and validates them.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(
    title = "tap-harvest settings",
    extend("dependentRequired" = {"access_token": ["account_id"]})
)]
pub struct Settings {
    /// Personal access token (id.getharvest.com/developers). Use it with `account_id`, or use OAuth instead.
    #[schemars(extend("secret" = true, "writeOnly" = true))]
    pub access_token: Option<String>,
    /// Harvest account id, sent as `Harvest-Account-Id`; or several, comma-separated (or a JSON list), or `*` for every Harvest account of the token: each row then carries `account_id`. Required with `access_token`; with OAuth the first Harvest (not Forecast) account of the token is used when absent.
    pub account_id: Option<String>,
    /// OAuth application client id (with `client_secret` and `refresh_token`).
    pub client_id: Option<String>,
    /// OAuth application client secret.
    #[schemars(extend("secret" = true, "writeOnly" = true))]
    pub client_secret: Option<String>,
    /// OAuth refresh token; the tap exchanges it for access tokens and refreshes them when they expire.
    #[schemars(extend("secret" = true, "writeOnly" = true))]
    pub refresh_token: Option<String>,
    /// Records updated at or after this moment are extracted on the first sync: a date (2024-01-01) or a date-time (2024-01-01T00:00:00Z, with or without a zone).
    #[schemars(extend("format" = "date-time"))]
    pub start_date: String,
    #[schemars(
        description = format!(
            "User-Agent sent to Harvest, which asks for `AppName (contact email or URL)`. Default: `{}`.",
            user_agent_of("<version>")
        ),
        extend("default" = default_user_agent())
    )]
    pub user_agent: Option<String>,
    #[schemars(
        description = format!("Harvest API base URL. Default: {DEFAULT_BASE_URL}."),
        extend("default" = DEFAULT_BASE_URL)
    )]
    pub base_url: Option<String>,
    #[schemars(
        description = format!(
            "Harvest ID base URL, for the OAuth token and accounts endpoints. Default: {DEFAULT_AUTH_URL}."
        ),
        extend("default" = DEFAULT_AUTH_URL)
    )]
    pub auth_url: Option<String>,
    #[schemars(
        description = format!(
            "Seconds before a request is abandoned and retried. Default {0} (0 or empty also mean {0}).",
            DEFAULT_REQUEST_TIMEOUT_SECONDS
        ),
        extend("default" = DEFAULT_REQUEST_TIMEOUT_SECONDS)
    )]
    pub request_timeout: Option<f64>,
    #[schemars(
        description = format!(
            "Read the child lists of every parent on every sync (every invoice's and estimate's messages and payments, every user's project assignments, rates and teammates), not only those changed or with a sign of change since the last sync. Default {DEFAULT_FULL_CHILD_SCAN}."
        ),
        extend("default" = DEFAULT_FULL_CHILD_SCAN)
    )]
    pub full_child_scan: Option<bool>,
    #[schemars(
        description = format!(
            "How many times a request that failed with a retryable error (5xx, timeout, reset, truncated body) is retried. Default {DEFAULT_MAX_RETRIES}."
        ),
        extend("default" = DEFAULT_MAX_RETRIES)
    )]
    pub max_retries: Option<u32>,
    #[schemars(
        description = format!(
            "First backoff delay in seconds before a retry; it doubles each time, with jitter, up to 60 s. Default {DEFAULT_BACKOFF_BASE_SECONDS}."
        ),
        extend("default" = DEFAULT_BACKOFF_BASE_SECONDS)
    )]
    pub backoff_base_seconds: Option<f64>,
    #[schemars(
        description = format!(
            "General request budget: at most this many requests per `rate_limit_window_seconds`. Default {DEFAULT_RATE_LIMIT_REQUESTS} (Harvest's limit)."
        ),
        extend("default" = DEFAULT_RATE_LIMIT_REQUESTS)
    )]
    pub rate_limit_requests: Option<u32>,
    #[schemars(
        description = format!(
            "Window of the general request budget, in seconds. Default {DEFAULT_RATE_LIMIT_WINDOW_SECONDS}."
        ),
        extend("default" = DEFAULT_RATE_LIMIT_WINDOW_SECONDS)
    )]
    pub rate_limit_window_seconds: Option<f64>,
    #[schemars(
        description = format!(
            "Reports API budget: at most this many requests per `reports_rate_limit_window_seconds`. Default {DEFAULT_REPORTS_RATE_LIMIT_REQUESTS}."
        ),
        extend("default" = DEFAULT_REPORTS_RATE_LIMIT_REQUESTS)
    )]
    pub reports_rate_limit_requests: Option<u32>,
    #[schemars(
        description = format!(
            "Window of the reports budget, in seconds. Default {DEFAULT_REPORTS_RATE_LIMIT_WINDOW_SECONDS}."
        ),
        extend("default" = DEFAULT_REPORTS_RATE_LIMIT_WINDOW_SECONDS)
    )]
    pub reports_rate_limit_window_seconds: Option<f64>,
    #[schemars(
        description = format!(
            "Maximum number of requests in flight at once. Default {DEFAULT_MAX_CONCURRENCY}."
        ),
        extend("default" = DEFAULT_MAX_CONCURRENCY)
    )]
    pub max_concurrency: Option<u32>,
    /// First day of the Reports API streams (a date). Default: the date of `start_date`.
    #[schemars(extend("format" = "date"))]
    pub reports_start_date: Option<String>,
    /// Sent as `include_fixed_fee` to the time and uninvoiced reports: whether fixed-fee projects' amounts count. Default: Harvest's own default (the parameter is not sent).
    pub include_fixed_fee: Option<bool>,
    #[schemars(
        description = format!(
            "Report records deleted in Harvest: a RECORD with the key and `_sdc_deleted_at` (see the README's Deletions section). Default {DEFAULT_DETECT_DELETIONS}."
        ),
        extend("default" = DEFAULT_DETECT_DELETIONS)
    )]
    pub detect_deletions: Option<bool>,
    #[schemars(
        description = format!(
            "Time entries and expenses whose spent_date lies in the last this many days are checked for deletions on every sync (0: only in full sweeps). Default {DEFAULT_DELETION_WINDOW_DAYS}."
        ),
        extend("default" = DEFAULT_DELETION_WINDOW_DAYS)
    )]
    pub deletion_window_days: Option<u32>,
    #[schemars(
        description = format!(
            "Every list is read in full to find deletions when the last full sweep is older than this many days (0: on every sync). Default {DEFAULT_DELETION_FULL_SCAN_DAYS}."
        ),
        extend("default" = DEFAULT_DELETION_FULL_SCAN_DAYS)
    )]
    pub deletion_full_scan_days: Option<u32>,
    #[schemars(
        description = format!(
            "A stream read in full in a sync (a small list, a sweep, a full-table stream) is sent as a new version: its RECORDs carry `version` and an ACTIVATE_VERSION follows them, so that a target that honours it (target-postgres with `hard_delete`) removes, or marks deleted, the rows not sent, keeping their last values. Default {DEFAULT_EMIT_ACTIVATE_VERSION_MESSAGES}."
        ),
        extend("default" = DEFAULT_EMIT_ACTIVATE_VERSION_MESSAGES)
    )]
    pub emit_activate_version_messages: Option<bool>,
    #[schemars(
        description = format!(
            "A single account's rows carry `account_id` too, first of their keys, as a sync of several accounts sends them: for a warehouse that will hold more accounts. Default {DEFAULT_INCLUDE_ACCOUNT_ID}."
        ),
        extend("default" = DEFAULT_INCLUDE_ACCOUNT_ID)
    )]
    pub include_account_id: Option<bool>,
    #[schemars(
        description = format!(
            "Each account of a several-account sync has rate budgets of its own; by default the accounts of one token share them (Harvest does not say whether its limit counts per token or per account). Default {DEFAULT_BUDGET_PER_ACCOUNT}."
        ),
        extend("default" = DEFAULT_BUDGET_PER_ACCOUNT)
    )]
    pub budget_per_account: Option<bool>,
    #[schemars(
        description = format!(
            "The largest response body the tap reads, in MB; a bigger one fails its request (Harvest's pages are a few MB). Default {DEFAULT_MAX_RESPONSE_MB}."
        ),
        extend("default" = DEFAULT_MAX_RESPONSE_MB)
    )]
    pub max_response_mb: Option<u32>,
    #[schemars(
        description = format!(
            "Seconds between two progress lines (records per stream, requests made and left, time waited on Harvest's budget, ETA); 0: none. Default {DEFAULT_PROGRESS_INTERVAL_SECONDS}."
        ),
        extend("default" = DEFAULT_PROGRESS_INTERVAL_SECONDS)
    )]
    pub progress_interval_seconds: Option<f64>,
    #[schemars(
        description = format!(
            "The level metric lines (METRIC: record_count, sync_duration, http_request_duration) are logged at: debug, info, warning. `debug` keeps the per-request timers out of an INFO log. Default {DEFAULT_METRICS_LOG_LEVEL}."
        ),
        extend("default" = DEFAULT_METRICS_LOG_LEVEL)
    )]
    pub metrics_log_level: Option<String>,
    /// Meltano SDK stream maps: per stream name (or glob), a map of properties to expressions (`null` removes one) with `__alias__`, `__filter__`, `__key_properties__`, `__else__: null` and `__source__`; a stream set to `null` is not sent, `__else__: null` at the top drops the streams not named. See the README.
    pub stream_maps: Option<std::collections::BTreeMap<String, Value>>,
    /// Values stream-map expressions read as `config['key']` (a hash seed, for instance).
    pub stream_map_config: Option<std::collections::BTreeMap<String, Value>>,
    /// Flatten nested objects into top-level properties (`parent__child`), as Meltano SDK taps do; needs `flattening_max_depth`. Default false.
    #[schemars(extend("default" = false))]
    pub flattening_enabled: Option<bool>,
    /// How many levels of nested objects flattening opens (what is deeper, and every array, becomes a JSON string).
    pub flattening_max_depth: Option<u32>,
    #[schemars(
        description = format!(
            "The longest flattened property name; longer ones have their parent names shortened. Default {DEFAULT_FLATTENING_MAX_KEY_LENGTH}."
        ),
        extend("default" = DEFAULT_FLATTENING_MAX_KEY_LENGTH)
    )]
    pub flattening_max_key_length: Option<u32>,
    #[schemars(
        description = format!(
            "What joins a parent's name and its child's in a flattened property name. Default `{DEFAULT_FLATTENING_SEPARATOR}`."
        ),
        extend("default" = DEFAULT_FLATTENING_SEPARATOR)
    )]
    pub flattening_separator: Option<String>,
}

/// The JSON Schema of the settings, for `--about`.
pub fn schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Settings)).unwrap_or(Value::Null);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (_, p) in props.iter_mut() {
            // schemars renders Option<T> as ["T","null"]; settings are simply optional.
            if let Some(Value::Array(types)) = p.get("type").cloned() {
                let first = types.into_iter().find(|t| t != "null");
                if let (Some(t), Some(o)) = (first, p.as_object_mut()) {
                    o.insert("type".into(), t);
                }
            }
        }
    }
    schema
}

/// How `--about` states a setting's required-ness: `True` (the schema's `required`), `With
/// <key>` (required when `<key>` is given, by `dependentRequired`), or `False`.
pub fn required_label(schema: &Value, name: &str) -> String {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    if names(&schema["required"]).iter().any(|n| n == name) {
        return "True".into();
    }
    let with: Vec<String> = schema["dependentRequired"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, needs)| names(needs).iter().any(|n| n == name))
        .map(|(given, _)| given.clone())
        .collect();
    if with.is_empty() {
        "False".into()
    } else {
        format!("With {}", with.join(" or "))
    }
}

/// A setting's default as `--about` text and Markdown show it: a string as it is, any other
/// value as JSON; `None` without a default.
pub fn default_label(property: &Value) -> String {
    match property.get("default") {
        None => "None".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::about;
    use crate::cli::AboutFormat;
    use crate::config::Config;
    use serde_json::json;

    /// What a parsed config holds for a setting with a fallback, in the JSON the schema
    /// states defaults in (`None`: the setting has no fallback). A setting given a fallback
    /// in `Config::from_value` must be added here, or the tests below fail.
    fn effective(c: &Config, key: &str) -> Option<Value> {
        Some(match key {
            "user_agent" => json!(c.client.user_agent),
            "base_url" => json!(c.client.base_url),
            "auth_url" => json!(c.client.auth_url),
            "request_timeout" => json!(c.client.request_timeout.as_secs_f64()),
            "full_child_scan" => json!(c.sync.full_child_scan),
            "max_retries" => json!(c.client.max_retries),
            "backoff_base_seconds" => json!(c.client.backoff_base.as_secs_f64()),
            "rate_limit_requests" => json!(c.client.budget.requests),
            "rate_limit_window_seconds" => json!(c.client.budget.window.as_secs_f64()),
            "reports_rate_limit_requests" => json!(c.client.reports_budget.requests),
            "reports_rate_limit_window_seconds" => {
                json!(c.client.reports_budget.window.as_secs_f64())
            }
            "max_concurrency" => json!(c.client.max_concurrency),
            "detect_deletions" => json!(c.sync.deletions.detect),
            "deletion_window_days" => json!(c.sync.deletions.window_days),
            "deletion_full_scan_days" => json!(c.sync.deletions.full_scan_days),
            "emit_activate_version_messages" => json!(c.sync.emit_activate_version_messages),
            "include_account_id" => json!(c.sync.include_account_id),
            "budget_per_account" => json!(c.client.budget_per_account),
            "max_response_mb" => json!(c.client.max_response_bytes >> 20),
            "progress_interval_seconds" => json!(c.sync.progress_interval.as_secs_f64()),
            "metrics_log_level" => json!(match c.sync.metrics_level {
                crate::log::Level::Debug => "debug",
                crate::log::Level::Info => "info",
                crate::log::Level::Warning => "warning",
                crate::log::Level::Error => "error",
                crate::log::Level::Critical => "critical",
            }),
            "flattening_enabled" => json!(flattening(c).is_some()),
            "flattening_max_key_length" => json!(flattening(c).unwrap_or_default().max_key_length),
            "flattening_separator" => json!(flattening(c).unwrap_or_default().separator),
            _ => return None,
        })
    }

    fn flattening(c: &Config) -> Option<stream_maps::Flattening> {
        c.sync
            .maps
            .compile()
            .ok()
            .flatten()
            .and_then(|m| m.flattening().cloned())
    }

    /// JSON values equal as values: `300` and `300.0` are the same number.
    fn same(a: &Value, b: &Value) -> bool {
        match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
    }

    fn minimal_configs() -> Vec<Value> {
        vec![
            json!({"access_token": "t", "account_id": "1", "start_date": "2024-01-01"}),
            json!({"client_id": "a", "client_secret": "b", "refresh_token": "c",
                "start_date": "2024-01-01"}),
        ]
    }

    fn about_settings() -> Value {
        about::about()["settings"].clone()
    }

    #[test]
    fn every_default_in_about_is_what_config_falls_back_on() {
        let schema = about_settings();
        let props = schema["properties"].as_object().unwrap();
        let mut with_default = 0;
        for base in minimal_configs() {
            let config = Config::from_value(&base).unwrap();
            for (key, p) in props {
                match (p.get("default"), effective(&config, key)) {
                    (Some(d), Some(got)) => {
                        with_default += 1;
                        assert!(same(d, &got), "{key}: --about says {d}, Config has {got}");
                        // The default is a valid value of its key, and means the same there.
                        let mut explicit = base.clone();
                        explicit[key] = d.clone();
                        let c = Config::from_value(&explicit)
                            .unwrap_or_else(|e| panic!("{key} = {d} is refused: {e}"));
                        assert!(same(&effective(&c, key).unwrap(), &got), "{key}");
                    }
                    (None, None) => {}
                    (Some(d), None) => panic!("{key}: --about states default {d}, but the test cannot read it from Config (add it to `effective`)"),
                    (None, Some(got)) => panic!("{key}: Config falls back on {got}, but --about states no default"),
                }
            }
        }
        assert_eq!(with_default, 2 * 24);
    }

    #[test]
    fn schema_states_requirements_and_secrets() {
        let schema = about_settings();
        assert_eq!(schema["required"], json!(["start_date"]));
        assert_eq!(
            schema["dependentRequired"],
            json!({"access_token": ["account_id"]})
        );
        let props = schema["properties"].as_object().unwrap();
        for (key, p) in props {
            let want = key == "access_token" || key == "client_secret" || key == "refresh_token";
            assert_eq!(p.get("secret") == Some(&json!(true)), want, "{key}");
            assert_eq!(p.get("writeOnly") == Some(&json!(true)), want, "{key}");
            assert!(p["type"].is_string(), "{key}: type {}", p["type"]);
        }
        assert_eq!(props["max_retries"]["default"], json!(DEFAULT_MAX_RETRIES));
        assert_eq!(props["user_agent"]["default"], json!(default_user_agent()));
        assert!(props["user_agent"]["description"]
            .as_str()
            .unwrap()
            .contains("`tap-harvest/<version> (https://github.com/tap-harvest/tap-harvest)`"));
        assert_eq!(
            props["request_timeout"]["description"],
            "Seconds before a request is abandoned and retried. Default 300 (0 or empty also mean 300)."
        );
        // A config without account_id but with access_token is refused, as the schema says.
        let e = Config::from_value(&json!({"access_token": "t", "start_date": "2024-01-01"}))
            .unwrap_err();
        assert!(e.to_string().contains("account_id"), "{e}");
    }

    #[test]
    fn markdown_and_text_show_defaults_and_requirements() {
        let schema = about_settings();
        let md = about::render(AboutFormat::Markdown);
        for (key, p) in schema["properties"].as_object().unwrap() {
            let row = format!(
                "| {key} | {} | {} | ",
                required_label(&schema, key),
                default_label(p)
            );
            assert!(md.contains(&row), "no row {row:?} in:\n{md}");
        }
        for row in [
            "| start_date | True | None | ",
            "| account_id | With access_token | None | ",
            "| access_token | False | None | ",
            "| max_retries | False | 6 | ",
            "| request_timeout | False | 300 | ",
            "| full_child_scan | False | false | ",
            "| base_url | False | https://api.harvestapp.com/v2 | ",
        ] {
            assert!(md.contains(row), "no row {row:?} in:\n{md}");
        }
        let text = about::render(AboutFormat::Text);
        assert!(
            text.contains(
                "  - Name: max_retries\n    Type: integer\n    Required: False\n    Default: 6\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  - Name: account_id\n    Type: string\n    Required: With access_token\n    Environment"),
            "{text}"
        );
    }
}
