//! The config file: two auth modes, and validation that reports every problem. The settings'
//! types, defaults and required-ness are stated in [`crate::settings`], whose constants a key
//! the config omits falls back on.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::client::config::{Accounts, ClientConfig, Credentials, Rate, Secret};
use crate::engine::config::{DeletionConfig, MapSettings, SyncConfig};
use crate::settings::{self, default_user_agent};
use crate::util::{closest, parse_datetime, shown_link};

/// The largest number of seconds a config key accepts: a day.
const MAX_SECONDS: f64 = 86400.0;

/// The parsed config, in the parts each layer takes: the HTTP client its own, the engine its
/// own (with the deletion settings and the stream maps' settings).
#[derive(Debug, Clone)]
pub struct Config {
    pub client: ClientConfig,
    pub sync: SyncConfig,
}

/// Meltano SDK settings this tap does not implement: refused where they would take effect.
const SDK_ONLY_KEYS: [&str; 2] = ["batch_config", "faker_config"];

/// The config keys whose values are secrets.
pub const SECRET_KEYS: [&str; 3] = ["access_token", "refresh_token", "client_secret"];

/// A config value as an error line may show it: quoted, unless it looks like a token (long,
/// letters and digits with no spaces: a token pasted under the wrong key), which is only
/// described.
pub fn echo(s: &str) -> String {
    let tokenish = s.len() >= 16
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-~+/=".contains(c))
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars().any(|c| c.is_ascii_digit());
    if tokenish || s.chars().count() > 64 {
        format!(
            "a {}-character value (not shown: it may be a secret)",
            s.chars().count()
        )
    } else {
        format!("{s:?}")
    }
}

/// Tells the log's redactor every secret the config holds (also one under the wrong key is
/// not echoed: see [`echo`]), and the user information of its URLs.
fn register_secrets(obj: &Map<String, Value>) {
    for key in SECRET_KEYS {
        if let Some(Value::String(s)) = obj.get(key) {
            crate::log::add_secret(s);
        }
    }
    for key in ["base_url", "auth_url"] {
        if let Some(u) = obj
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| reqwest::Url::parse(s.trim()).ok())
        {
            if let Some(p) = u.password() {
                crate::log::add_secret(p);
            }
        }
    }
}

/// Every problem found in a config file, one line each.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

struct Reader<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn string(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) if s.trim().chars().any(char::is_control) => {
                // A line break pasted into a token would make an unsendable header.
                self.errors.push(format!(
                    "config key '{key}' holds a control character (a line break or tab inside the value?): remove it"
                ));
                None
            }
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                self.errors
                    .push(format!("config key '{key}' must be a string"));
                None
            }
        }
    }

    /// A string or an integer (account ids are both in the wild).
    fn id(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            Some(Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_)) => {
                self.errors.push(format!(
                    "config key '{key}' must be a positive integer or a string of digits"
                ));
                None
            }
            _ => {
                let s = self.string(key)?;
                if s.chars().all(|c| c.is_ascii_digit()) {
                    Some(s)
                } else {
                    self.errors.push(format!(
                        "config key '{key}' must be a string of digits, got {}",
                        echo(&s)
                    ));
                    None
                }
            }
        }
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let v = match self.obj.get(key) {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) if s.trim().is_empty() => return None,
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match v {
            Some(v) if v.is_finite() && v >= 0.0 => Some(v),
            _ => {
                self.errors
                    .push(format!("config key '{key}' must be a non-negative number"));
                None
            }
        }
    }

    /// A number of seconds: at most a day (more is a mistake, and may not fit a `Duration`).
    fn seconds(&mut self, key: &str) -> Option<Duration> {
        let v = self.number(key)?;
        if v <= MAX_SECONDS {
            Some(Duration::from_secs_f64(v))
        } else {
            self.errors.push(format!(
                "config key '{key}' must be a number of seconds from 0 to {MAX_SECONDS}"
            ));
            None
        }
    }

    fn positive_int(&mut self, key: &str) -> Option<u32> {
        let v = self.number(key)?;
        if v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
            Some(v as u32)
        } else {
            self.errors
                .push(format!("config key '{key}' must be a positive integer"));
            None
        }
    }

    /// A whole number of days, 0 to 3,650.
    fn days(&mut self, key: &str) -> Option<u32> {
        let v = self.number(key)?;
        if (0.0..=3650.0).contains(&v) && v.fract() == 0.0 {
            Some(v as u32)
        } else {
            self.errors.push(format!(
                "config key '{key}' must be a whole number of days from 0 to 3650"
            ));
            None
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => {
                self.errors
                    .push(format!("config key '{key}' must be true or false"));
                None
            }
        }
    }

    fn url(&mut self, key: &str, default: &str) -> String {
        let s = self.string(key).unwrap_or_else(|| default.to_string());
        let parsed = reqwest::Url::parse(&s).ok();
        match parsed {
            Some(u) if !u.username().is_empty() || u.password().is_some() => {
                self.errors.push(format!(
                    "config key '{key}' must not hold a user name or password (user:password@): Harvest takes the token in a header"
                ));
            }
            Some(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => self.errors.push(format!(
                "config key '{key}' must be an http(s) URL, got {}",
                echo(&shown_link(&s))
            )),
        }
        s.trim_end_matches('/').to_string()
    }

    /// `account_id`: one id, a list of ids (a JSON array, or a comma-separated string, as
    /// Meltano's string settings carry it), or `"*"` for every Harvest account of the token.
    fn accounts(&mut self) -> Option<Accounts> {
        let key = "account_id";
        let bad = |what: String| {
            format!("config key '{key}' must be an account id, a list of them or \"*\": {what}")
        };
        let ids: Vec<String> = match self.obj.get(key) {
            None | Some(Value::Null) => return Some(Accounts::First),
            Some(Value::String(s)) if s.trim().is_empty() => return Some(Accounts::First),
            Some(Value::String(s)) if s.trim() == "*" => return Some(Accounts::All),
            Some(Value::String(s)) if s.contains(',') => {
                s.split(',').map(|p| p.trim().to_string()).collect()
            }
            Some(Value::Array(items)) => {
                let mut ids = Vec::new();
                for item in items {
                    match item {
                        Value::Number(n) if n.is_u64() => ids.push(n.to_string()),
                        Value::String(s) => ids.push(s.trim().to_string()),
                        other => {
                            self.errors.push(bad(format!("{other} in the list")));
                            return None;
                        }
                    }
                }
                if ids.is_empty() {
                    self.errors.push(bad("the list is empty".into()));
                    return None;
                }
                ids
            }
            _ => {
                let before = self.errors.len();
                let one = self.id(key).map(Accounts::One);
                if one.is_none() && self.errors.len() == before {
                    self.errors.push(bad("not an id".into()));
                }
                return one;
            }
        };
        if let Some(wrong) = ids
            .iter()
            .find(|id| id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()))
        {
            self.errors
                .push(bad(format!("{} is not an id", echo(wrong))));
            return None;
        }
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        Some(Accounts::These(unique))
    }

    /// The credentials (one auth mode, complete) and the accounts.
    fn auth(&mut self) -> (Option<Credentials>, Option<Accounts>) {
        let obj = self.obj;
        let access_token = self.string("access_token");
        let account_id = self.accounts();
        let client_id = self.string("client_id");
        let client_secret = self.string("client_secret");
        let refresh_token = self.string("refresh_token");
        let oauth_given = [&client_id, &client_secret, &refresh_token]
            .iter()
            .filter(|v| v.is_some())
            .count();

        // A credential given with the wrong type is already reported: not "missing" as well.
        let mistyped = |k: &str| {
            obj.get(k).is_some_and(|v| {
                (!v.is_null() && !v.is_string())
                    || v.as_str()
                        .is_some_and(|s| s.trim().chars().any(char::is_control))
            })
        };
        let auth = match (access_token, oauth_given) {
            (Some(_), n) if n > 0 => {
                self.errors.push(
                        "config has both 'access_token' and OAuth keys (client_id, client_secret, refresh_token): keep one auth mode".into(),
                    );
                None
            }
            (Some(token), _) => {
                if matches!(account_id, Some(Accounts::First)) && !obj.contains_key("account_id") {
                    self.errors
                        .push("config key 'account_id' is required with 'access_token'".into());
                }
                Some(Credentials::Token {
                    access_token: Secret::from(token),
                })
            }
            (None, 3) => Some(Credentials::OAuth {
                client_id: client_id.unwrap(),
                client_secret: Secret::from(client_secret.unwrap()),
                refresh_token: Secret::from(refresh_token.unwrap()),
            }),
            (None, 0) => {
                if ![
                    "access_token",
                    "client_id",
                    "client_secret",
                    "refresh_token",
                ]
                .iter()
                .any(|k| mistyped(k))
                {
                    self.errors.push(
                            "config has no credentials: give 'access_token' and 'account_id', or 'client_id', 'client_secret' and 'refresh_token'".into(),
                        );
                }
                None
            }
            (None, _) => {
                let missing: Vec<&str> = [
                    ("client_id", &client_id),
                    ("client_secret", &client_secret),
                    ("refresh_token", &refresh_token),
                ]
                .iter()
                .filter(|(k, v)| v.is_none() && !mistyped(k))
                .map(|(k, _)| *k)
                .collect();
                if !missing.is_empty() {
                    self.errors.push(format!(
                        "OAuth config is missing {}",
                        missing
                            .iter()
                            .map(|k| format!("'{k}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                None
            }
        };
        (auth, account_id)
    }

    /// Keys that are not settings: the Meltano SDK's stream maps, flattening and batch keys are
    /// refused (this tap does not apply them, and a map meant to drop personal data must not be
    /// ignored); any other is warned about, with the closest setting when it looks like a typo.
    fn unknown_keys(&mut self) {
        let schema = settings::schema();
        let known: Vec<&str> = schema["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for key in self.obj.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            if SDK_ONLY_KEYS.contains(&key.as_str()) {
                // Refused only where it would take effect: `batch_config: null` or `{}`
                // changes nothing, and `faker_config` matters only to an expression using
                // `fake`, which is refused on its own.
                let v = &self.obj[key];
                let effective = match v {
                    Value::Null => false,
                    Value::Object(m) => !m.is_empty(),
                    _ => true,
                };
                if key == "batch_config" && effective {
                    self.errors.push(
                        "config key 'batch_config' (Meltano SDK BATCH messages) is not supported by tap-harvest: remove it; records are sent as RECORD messages".to_string(),
                    );
                } else {
                    crate::log::warn(&format!(
                        "config key '{key}' (a Meltano SDK feature) is not applied by tap-harvest; ignored"
                    ));
                }
                continue;
            }
            let hint = closest(key, &known)
                .map(|k| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            crate::log::warn(&format!(
                "config key '{}' is not a setting of tap-harvest; ignored{hint}",
                key.escape_debug()
            ));
        }
    }

    /// `start_date`, required: a date or a date-time.
    fn start_date(&mut self) -> Option<DateTime<Utc>> {
        match self.obj.get("start_date") {
            None | Some(Value::Null) => {
                self.errors
                    .push("config key 'start_date' is required".into());
                None
            }
            Some(Value::String(s)) => {
                let parsed = parse_datetime(s);
                if parsed.is_none() {
                    self.errors.push(format!(
                        "config key 'start_date' is not a date or date-time: {}",
                        echo(s)
                    ));
                }
                parsed
            }
            Some(_) => {
                self.errors
                    .push("config key 'start_date' must be a string".into());
                None
            }
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("config file {} is not valid JSON: {e}", path.display())
        })?;
        Ok(Config::from_value(&value)?)
    }

    /// Reads every key, in the order the settings are documented (each problem is one line,
    /// in that order), then makes the client's and the engine's parts of them.
    pub fn from_value(value: &Value) -> Result<Config, ConfigErrors> {
        let Some(obj) = value.as_object() else {
            return Err(ConfigErrors(vec!["config must be a JSON object".into()]));
        };
        register_secrets(obj);
        let mut r = Reader {
            obj,
            errors: Vec::new(),
        };
        r.unknown_keys();
        let (auth, accounts) = r.auth();
        let include_account_id = r
            .boolean("include_account_id")
            .unwrap_or(settings::DEFAULT_INCLUDE_ACCOUNT_ID);
        let budget_per_account = r
            .boolean("budget_per_account")
            .unwrap_or(settings::DEFAULT_BUDGET_PER_ACCOUNT);
        let start_date = r.start_date();
        let http = r.http();
        let full_child_scan = r
            .boolean("full_child_scan")
            .unwrap_or(settings::DEFAULT_FULL_CHILD_SCAN);
        let (max_retries, backoff_base) = r.retries();
        let limits = r.limits();
        let (reports_start_date, include_fixed_fee) = r.reports();
        let (deletions, emit_activate_version_messages) = r.deletions();
        let max_response_bytes = r.max_response_bytes();
        let progress_interval = r.progress_interval();
        let metrics_level = r.metrics_level();
        let maps = r.maps();
        let (Some(auth), Some(accounts), Some(start_date), true) =
            (auth, accounts, start_date, r.errors.is_empty())
        else {
            return Err(ConfigErrors(r.errors));
        };
        Ok(Config {
            client: ClientConfig {
                auth,
                accounts,
                budget_per_account,
                user_agent: http.user_agent,
                base_url: http.base_url,
                auth_url: http.auth_url,
                request_timeout: http.request_timeout,
                max_retries,
                backoff_base,
                budget: limits.budget,
                reports_budget: limits.reports_budget,
                max_concurrency: limits.max_concurrency,
                max_response_bytes,
            },
            sync: SyncConfig {
                start_date,
                full_child_scan,
                reports_start_date,
                include_fixed_fee,
                emit_activate_version_messages,
                max_concurrency: limits.max_concurrency,
                budget: limits.budget,
                reports_budget: limits.reports_budget,
                progress_interval,
                metrics_level,
                deletions,
                maps,
                account_column: None,
                include_account_id,
            },
        })
    }
}

/// Where and how the client speaks HTTP.
struct Http {
    user_agent: String,
    base_url: String,
    auth_url: String,
    request_timeout: Duration,
}

/// The settings both the client and the engine read: the budgets and the width.
struct Limits {
    budget: Rate,
    reports_budget: Rate,
    max_concurrency: usize,
}

impl Reader<'_> {
    fn http(&mut self) -> Http {
        let user_agent = self.string("user_agent").unwrap_or_else(default_user_agent);
        if !user_agent
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            self.errors.push(
                "config key 'user_agent' must be printable ASCII on one line (it is sent as an HTTP header)".into(),
            );
        }
        Http {
            user_agent,
            base_url: self.url("base_url", settings::DEFAULT_BASE_URL),
            auth_url: self.url("auth_url", settings::DEFAULT_AUTH_URL),
            request_timeout: self
                .seconds("request_timeout")
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs(
                    settings::DEFAULT_REQUEST_TIMEOUT_SECONDS,
                )),
        }
    }

    /// `max_retries` and `backoff_base_seconds`.
    fn retries(&mut self) -> (u32, Duration) {
        let max_retries = match self.number("max_retries") {
            Some(v) if v.fract() == 0.0 && v <= 100.0 => v as u32,
            Some(_) => {
                self.errors
                    .push("config key 'max_retries' must be an integer from 0 to 100".into());
                0
            }
            None => settings::DEFAULT_MAX_RETRIES,
        };
        let backoff_base = self
            .seconds("backoff_base_seconds")
            .unwrap_or(Duration::from_secs(settings::DEFAULT_BACKOFF_BASE_SECONDS));
        (max_retries, backoff_base)
    }

    fn limits(&mut self) -> Limits {
        Limits {
            budget: self.rate(
                "rate_limit",
                settings::DEFAULT_RATE_LIMIT_REQUESTS,
                settings::DEFAULT_RATE_LIMIT_WINDOW_SECONDS,
            ),
            reports_budget: self.rate(
                "reports_rate_limit",
                settings::DEFAULT_REPORTS_RATE_LIMIT_REQUESTS,
                settings::DEFAULT_REPORTS_RATE_LIMIT_WINDOW_SECONDS,
            ),
            max_concurrency: self
                .positive_int("max_concurrency")
                .unwrap_or(settings::DEFAULT_MAX_CONCURRENCY) as usize,
        }
    }

    fn max_response_bytes(&mut self) -> usize {
        let max_response_mb = self
            .positive_int("max_response_mb")
            .unwrap_or(settings::DEFAULT_MAX_RESPONSE_MB);
        if max_response_mb > 4096 {
            self.errors
                .push("config key 'max_response_mb' must be at most 4096".into());
        }
        (max_response_mb as usize) << 20
    }

    /// `<prefix>_requests` per `<prefix>_window_seconds`.
    fn rate(&mut self, prefix: &str, requests: u32, window_seconds: u64) -> Rate {
        Rate {
            requests: self
                .positive_int(&format!("{prefix}_requests"))
                .unwrap_or(requests),
            window: self
                .seconds(&format!("{prefix}_window_seconds"))
                .unwrap_or(Duration::from_secs(window_seconds)),
        }
    }

    /// `reports_start_date` and `include_fixed_fee`.
    fn reports(&mut self) -> (Option<NaiveDate>, Option<bool>) {
        let start = self
            .string("reports_start_date")
            .and_then(|s| match parse_datetime(&s) {
                Some(d) => Some(d.date_naive()),
                None => {
                    self.errors.push(format!(
                        "config key 'reports_start_date' is not a date: {}",
                        echo(&s)
                    ));
                    None
                }
            });
        (start, self.boolean("include_fixed_fee"))
    }

    /// How deletions are found, and `emit_activate_version_messages` (read between them).
    fn deletions(&mut self) -> (DeletionConfig, bool) {
        let detect = self
            .boolean("detect_deletions")
            .unwrap_or(settings::DEFAULT_DETECT_DELETIONS);
        let activate = self
            .boolean("emit_activate_version_messages")
            .unwrap_or(settings::DEFAULT_EMIT_ACTIVATE_VERSION_MESSAGES);
        let deletions = DeletionConfig {
            detect,
            window_days: self
                .days("deletion_window_days")
                .unwrap_or(settings::DEFAULT_DELETION_WINDOW_DAYS),
            full_scan_days: self
                .days("deletion_full_scan_days")
                .unwrap_or(settings::DEFAULT_DELETION_FULL_SCAN_DAYS),
        };
        (deletions, activate)
    }

    /// The stream maps' and flattening's settings, checked by compiling them once.
    fn maps(&mut self) -> MapSettings {
        let maps = MapSettings::from_config(self.obj);
        if let Err(problems) = maps.compile() {
            self.errors.extend(problems);
        }
        maps
    }

    /// At least a second between two lines (0: none).
    fn progress_interval(&mut self) -> Duration {
        self.seconds("progress_interval_seconds")
            .map(|d| {
                if d.is_zero() {
                    d
                } else {
                    d.max(Duration::from_secs(1))
                }
            })
            .unwrap_or(Duration::from_secs(
                settings::DEFAULT_PROGRESS_INTERVAL_SECONDS,
            ))
    }

    fn metrics_level(&mut self) -> crate::log::Level {
        match self.string("metrics_log_level") {
            None => crate::log::parse_level(settings::DEFAULT_METRICS_LOG_LEVEL)
                .unwrap_or(crate::log::Level::Info),
            Some(s) => crate::log::parse_level(&s).unwrap_or_else(|| {
                self.errors.push(format!(
                    "config key 'metrics_log_level' must be debug, info, warning, error or critical, got {}",
                    echo(&s)
                ));
                crate::log::Level::Info
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_date_forms() {
        for s in [
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-01-01 00:00:00",
            "2024-01-01T00:00:00.000000Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01 02:00:00+02:00",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.123",
        ] {
            assert_eq!(
                parse_datetime(s)
                    .map(|d| d.date_naive().to_string())
                    .as_deref(),
                Some("2024-01-01"),
                "{s}"
            );
        }
        assert!(parse_datetime("yesterday").is_none());
        assert!(parse_datetime("2024-13-01").is_none());
    }

    #[test]
    fn singer_io_config_works_unchanged() {
        let c = Config::from_value(
            &json!({"client_id": "a", "client_secret": "b", "refresh_token": "c",
            "start_date": "2020-01-01T00:00:00Z", "user_agent": "x (y@z)", "request_timeout": ""}),
        )
        .unwrap();
        assert!(matches!(c.client.auth, Credentials::OAuth { .. }));
        assert_eq!(
            c.client.request_timeout,
            Duration::from_secs(settings::DEFAULT_REQUEST_TIMEOUT_SECONDS)
        );
        assert!(!format!("{c:?}").contains("\"b\""));
    }

    #[test]
    fn unknown_keys_are_warned_about_with_the_closest_setting_and_batch_config_refused() {
        let known = ["start_date", "account_id", "max_retries"];
        assert_eq!(closest("start_dat", &known), Some("start_date"));
        assert_eq!(closest("Account-ID", &known), Some("account_id"));
        assert_eq!(closest("colour", &known), None);
        let base = json!({"access_token": "t", "account_id": "1", "start_date": "2024-01-01"});
        let mut with_map = base.clone();
        with_map["stream_maps"] = json!({"clients": {"name": null}});
        assert!(Config::from_value(&with_map)
            .unwrap()
            .sync
            .maps
            .compile()
            .unwrap()
            .is_some());
        with_map["batch_config"] = json!({"encoding": {"format": "jsonl"}});
        let e = Config::from_value(&with_map).unwrap_err();
        assert!(e.0[0].contains("'batch_config'"), "{e}");
        let mut typo = base.clone();
        typo["max_retry"] = json!(3);
        assert!(Config::from_value(&typo).is_ok());
        // What changes nothing is not refused.
        let mut harmless = base.clone();
        harmless["stream_maps"] = json!({});
        harmless["flattening_enabled"] = json!(false);
        harmless["batch_config"] = Value::Null;
        assert!(Config::from_value(&harmless).is_ok());
        let mut flatten = base.clone();
        flatten["flattening_enabled"] = json!(true);
        let e = Config::from_value(&flatten).unwrap_err();
        assert!(e.0[0].contains("'flattening_max_depth' is required"), "{e}");
        flatten["flattening_max_depth"] = json!(1);
        assert!(Config::from_value(&flatten)
            .unwrap()
            .sync
            .maps
            .compile()
            .unwrap()
            .is_some());
    }

    #[test]
    fn every_problem_is_reported() {
        let three_problems = json!({"access_token": "t", "refresh_token": "r",
            "start_date": "nope", "request_timeout": "x"});
        let e = Config::from_value(&three_problems).unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        let e = Config::from_value(&json!({})).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        let e = Config::from_value(&json!({"access_token": "t", "start_date": "2020-01-01"}))
            .unwrap_err();
        assert!(e.0[0].contains("account_id"));
        let e = Config::from_value(&json!([1])).unwrap_err();
        assert_eq!(e.0.len(), 1);
    }
}
