//! Logging to stderr (stdout belongs to Singer messages) and Singer metric lines.
//!
//! The level comes from `TAP_HARVEST_LOGLEVEL`, `LOGLEVEL` or `RUST_LOG` (first one set), one
//! of debug, info, warning, error, critical; the default is info. Lines look like the Singer
//! SDK's: `2026-01-01 10:00:00,123 | INFO     | tap-harvest | message`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Critical = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// The level metric lines are logged at (`metrics_log_level`).
static METRICS_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the level of metric lines: `debug` keeps the per-request timers out of INFO.
pub fn set_metrics_level(level: Level) {
    METRICS_LEVEL.store(level as u8, Ordering::Relaxed);
}

fn metrics_level() -> Level {
    match METRICS_LEVEL.load(Ordering::Relaxed) {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Warning,
        3 => Level::Error,
        _ => Level::Critical,
    }
}

/// A line that closes a run (the sync's summary): shown at the INFO label whenever warnings
/// are, so that `TAP_HARVEST_LOGLEVEL=warning` keeps it.
pub fn summary(message: &str) {
    if enabled(Level::Warning) {
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let line = format!("{now} | INFO     | tap-harvest | {}\n", redact(message));
        write_line(&line);
    }
}

/// Reads the level from the environment. An unknown value keeps info and says so.
pub fn init_from_env() {
    let raw = ["TAP_HARVEST_LOGLEVEL", "LOGLEVEL", "RUST_LOG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
    let Some(raw) = raw else { return };
    // RUST_LOG may carry directives such as `tap_harvest=debug,info`: take the most verbose level named.
    let level = raw
        .split([',', '='])
        .filter_map(|part| parse_level(part.trim()))
        .min();
    match level {
        Some(l) => LEVEL.store(l as u8, Ordering::Relaxed),
        None => warn(&format!("unknown log level {raw:?}; using info")),
    }
}

pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" | "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" | "warning" => Level::Warning,
        "error" => Level::Error,
        "critical" | "fatal" | "off" => Level::Critical,
        _ => return None,
    })
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

pub fn log(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let name = match level {
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warning => "WARNING",
        Level::Error => "ERROR",
        Level::Critical => "CRITICAL",
    };
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S,%3f");
    let message = redact(message);
    let line = format!("{now} | {name:<8} | tap-harvest | {message}\n");
    write_line(&line);
}

/// One line to stderr. A closed stderr is no reason to stop a sync: write errors are ignored.
#[cfg(not(test))]
fn write_line(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// In the unit tests, through the test harness, which shows a test's lines only when it fails.
#[cfg(test)]
fn write_line(line: &str) {
    eprint!("{line}");
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warning, message)
}

pub fn error(message: &str) {
    log(Level::Error, message)
}

/// A Singer metric line, in singer-python's format (`METRIC: {...}`), which Meltano reads.
pub fn metric(kind: &str, metric: &str, value: Value, tags: Value) {
    let level = metrics_level();
    if enabled(level) {
        log(
            level,
            &format!(
                "METRIC: {}",
                json!({"type": kind, "metric": metric, "value": value, "tags": tags})
            ),
        );
    }
}

/// The secrets every log line is scrubbed of: the configured ones and the access tokens
/// issued during the run, each as written and URL-encoded.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not searched for by value (they would blot out ordinary
/// words); the patterns of [`redact`] still hide them where they appear as credentials.
pub const MIN_SECRET_LEN: usize = 6;

/// What a secret becomes in a log line.
pub const REDACTED: &str = "***";

/// Adds a secret that no log line may show, in the forms it may be echoed in.
pub fn add_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let encoded = [percent_encode(secret, false), percent_encode(secret, true)];
    // As other encoders write them too: `~` escaped, `*` not, escapes in lower case.
    let variants = encoded.iter().flat_map(|e| {
        let tilde = e.replace('~', "%7E").replace("%2A", "*");
        let lower = lower_escapes(&tilde);
        [e.clone(), tilde, lower]
    });
    for form in std::iter::once(secret.to_string()).chain(variants) {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    // Longest first, so that a secret containing another is hidden whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `s` with its `%XX` escapes in lower case.
fn lower_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// `s` percent-encoded as a URL component (`form`: as an HTML form encodes it, spaces as `+`).
fn percent_encode(s: &str, form: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if form => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `text` with every known secret replaced by `***`, and whatever stands where credentials go
/// (`Bearer …`, `access_token=…`, `refresh_token=…`, `client_secret=…`, a URL's
/// `user:password@`) hidden too, known or not.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    // A URL's password first: a secret hidden inside the URL could hide its `://`.
    if out.contains("://") && out.contains('@') {
        out = Cow::Owned(hide_userinfo(&out));
    }
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
    }
    for marker in [
        "Bearer ",
        "bearer ",
        "access_token=",
        "refresh_token=",
        "client_secret=",
        "\"access_token\":\"",
        "\"refresh_token\":\"",
        "\"client_secret\":\"",
        "\"access_token\": \"",
        "\"refresh_token\": \"",
        "\"client_secret\": \"",
        "\\\"access_token\\\":\\\"",
        "\\\"refresh_token\\\":\\\"",
    ] {
        if out.contains(marker) {
            out = Cow::Owned(hide_after(&out, marker));
        }
    }
    out
}

/// Replaces what follows each `marker` (up to a space, `&`, quote or line end) by `***`.
fn hide_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ',' | ';'))
            .unwrap_or(tail.len());
        if end > 0 && &tail[..end] != REDACTED {
            out.push_str(REDACTED);
        } else {
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Hides the `user:password` of every `scheme://user:password@host` in `text`.
fn hide_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str(REDACTED);
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_in_every_form() {
        add_secret("s3cr3t/token+x");
        add_secret("abc"); // too short to search for
        let line = redact(
            "form refresh_token=abc&client_secret=zzz&x=1 echo s3cr3t/token+x and s3cr3t%2Ftoken%2Bx, \
             Bearer 9999.pt.QQQ at https://bob:hunter22@example.com/v2 {\"access_token\":\"tok\"}",
        );
        assert!(!line.contains("s3cr3t"), "{line}");
        assert!(!line.contains("zzz") && !line.contains("=abc"), "{line}");
        assert!(
            !line.contains("9999.pt.QQQ") && !line.contains("hunter22"),
            "{line}"
        );
        assert!(!line.contains("\"tok\""), "{line}");
        assert!(
            line.contains("***@example.com/v2") && line.contains("&x=1"),
            "{line}"
        );
        assert_eq!(redact("no secret here: abc"), "no secret here: abc");
    }
}
