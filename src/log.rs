//! Logging to stderr (stdout belongs to Singer messages) and Singer metric lines.
//!
//! The level comes from `TAP_HARVEST_LOGLEVEL`, `LOGLEVEL` or `RUST_LOG` (first one set), one
//! of debug, info, warning, error, critical; the default is info. Lines look like the Singer
//! SDK's: `2026-01-01 10:00:00,123 | INFO     | tap-harvest | message`.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

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

fn parse_level(s: &str) -> Option<Level> {
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
    let line = format!("{now} | {name:<8} | tap-harvest | {message}\n");
    // A closed stderr is no reason to stop a sync: ignore write errors.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    if enabled(Level::Info) {
        info(&format!(
            "METRIC: {}",
            json!({"type": kind, "metric": metric, "value": value, "tags": tags})
        ));
    }
}
