//! What the engine is configured with: where each stream starts, how children and reports are
//! read, how deletions are found, what progress and metrics say, and the stream maps' settings
//! (compiled with the plan). [`crate::config`] parses it from the config file.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use stream_maps::Maps;

use crate::client::config::Rate;

/// The engine's part of the config.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub start_date: DateTime<Utc>,
    /// Every parent's children on every sync, not only the changed parents'.
    pub full_child_scan: bool,
    pub reports_start_date: Option<NaiveDate>,
    pub include_fixed_fee: Option<bool>,
    pub emit_activate_version_messages: bool,
    /// The most child requests (and deletion checks) in flight at once.
    pub max_concurrency: usize,
    /// The client's budgets, for the ETA and the reports' announcement.
    pub budget: Rate,
    pub reports_budget: Rate,
    /// Between two progress lines; zero: none.
    pub progress_interval: Duration,
    /// The level metric lines are logged at.
    pub metrics_level: crate::log::Level,
    pub deletions: DeletionConfig,
    pub maps: MapSettings,
    /// The account a sync of several accounts (or with `include_account_id`) reads: each
    /// record, key and SCHEMA carries it as `account_id`. `None`: today's columns and keys.
    pub account_column: Option<i64>,
    /// `include_account_id`: a single account's rows say their account too.
    pub include_account_id: bool,
}

/// How deletions are found.
#[derive(Debug, Clone, Copy)]
pub struct DeletionConfig {
    pub detect: bool,
    /// Records dated within this many days are checked on every sync.
    pub window_days: u32,
    /// Days between two full sweeps.
    pub full_scan_days: u32,
}

/// The settings of the stream maps and flattening, as the config gives them: compiled against
/// the stream table by [`MapSettings::compile`] (once to check the config, once with the plan).
#[derive(Debug, Clone, Default)]
pub struct MapSettings(Map<String, Value>);

impl MapSettings {
    /// The stream maps' and flattening's keys of a config object.
    pub fn from_config(obj: &Map<String, Value>) -> MapSettings {
        MapSettings(
            obj.iter()
                .filter(|(k, _)| k.starts_with("stream_map") || k.starts_with("flattening_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// The maps (`None`: every stream is sent as it is read), or every problem, one line each.
    pub fn compile(&self) -> Result<Option<Maps>, Vec<String>> {
        let names: Vec<&str> = crate::streams::STREAMS.iter().map(|s| s.name).collect();
        Ok(Maps::from_config(&self.0, &names, "tap-harvest")?
            .map(|m| m.with_warnings(crate::log::warn)))
    }
}
