//! Singer state: `{"bookmarks": {"<stream>": {"updated_at": "..."}}}`, the singer-io layout.
//! Every bookmark of the input state is carried forward; the older singer-io flat layout
//! `{"<stream>": "<timestamp>"}` is migrated on read.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::util::parse_datetime;

/// A date-time bookmark as written to the state: RFC 3339, `Z`, second precision (Harvest's form).
pub fn format_bookmark(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A stream's deletion memory larger than this (about 5,000 keys) is written in the last
/// STATE of a sync only, not repeated in every STATE message.
pub const INLINE_MEMORY_BYTES: usize = 16 * 1024;

/// The top-level key of the deletion memory.
pub const DELETIONS: &str = "deletions";

/// A stream's per-account parts, the Meltano SDK's partitioned state: a list of objects, each
/// with its `context` (`{"account_id": <id>}`) and that account's keys.
pub const PARTITIONS: &str = "partitions";

/// `account`'s partition of a stream's entry.
fn partition(entry: &Value, account: i64) -> Option<&Map<String, Value>> {
    entry
        .get(PARTITIONS)?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|p| context_account(p) == Some(account))
}

fn context_account(p: &Map<String, Value>) -> Option<i64> {
    match p.get("context")?.get("account_id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `account`'s partition of a stream's entry, made when missing.
fn partition_mut(entry: &mut Value, account: i64) -> &mut Map<String, Value> {
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let fields = entry.as_object_mut().expect("an object");
    let list = fields
        .entry(PARTITIONS)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let list = list.as_array_mut().expect("an array");
    let at = list
        .iter()
        .position(|p| p.as_object().and_then(context_account) == Some(account));
    let at = at.unwrap_or_else(|| {
        list.push(json!({"context": {"account_id": account}}));
        list.len() - 1
    });
    if !list[at].is_object() {
        list[at] = json!({"context": {"account_id": account}});
    }
    list[at].as_object_mut().expect("an object")
}

/// `value[top][stream]`, made an object when missing.
fn stream_entry<'a>(value: &'a mut Map<String, Value>, top: &str, stream: &str) -> &'a mut Value {
    let all = value
        .entry(top)
        .or_insert_with(|| Value::Object(Map::new()));
    if !all.is_object() {
        *all = Value::Object(Map::new());
    }
    let entry = all
        .as_object_mut()
        .expect("an object")
        .entry(stream)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry
}

/// About the bytes of `v` as JSON, without writing it.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(approx_size).sum::<usize>() + a.len() + 1,
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + 4 + approx_size(v)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The whole state document, kept as given so unknown keys survive.
    value: Map<String, Value>,
    /// The streams whose memory is larger than [`INLINE_MEMORY_BYTES`].
    large: std::collections::BTreeSet<String>,
    /// How many times the state changed since it was loaded.
    pub changes: u64,
}

impl State {
    pub fn load(path: &Path) -> Result<State> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read state file {}: {e}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(State::default());
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("state file {} is not valid JSON: {e}", path.display()))?;
        State::from_value(value).map_err(|e| anyhow!("state file {}: {e}", path.display()))
    }

    pub fn from_value(value: Value) -> Result<State> {
        let Value::Object(mut value) = value else {
            bail!("state must be a JSON object");
        };
        // Meltano and some runners wrap the state as {"value": {...}} (a STATE message's body).
        if value.len() == 1 && value.get("value").is_some_and(Value::is_object) {
            return State::from_value(value.remove("value").unwrap());
        }
        match value.get("bookmarks") {
            Some(Value::Object(bookmarks)) => {
                for (stream, b) in bookmarks {
                    let Value::Object(b) = b else {
                        bail!(
                            "bookmarks.{} must be an object like {{\"updated_at\": \"...\"}}",
                            stream.escape_debug()
                        );
                    };
                    for (key, v) in b {
                        if key.ends_with("updated_at") {
                            let ok = v.is_null()
                                || v.as_str().is_some_and(|s| parse_datetime(s).is_some());
                            if !ok {
                                bail!(
                                    "bookmarks.{}.{} is not a date-time: {v}",
                                    stream.escape_debug(),
                                    key.escape_debug()
                                );
                            }
                        }
                    }
                }
                let mut state = State {
                    value,
                    large: Default::default(),
                    changes: 0,
                };
                state.measure_memory();
                Ok(state)
            }
            Some(_) => bail!("'bookmarks' must be an object"),
            None => {
                // The singer-io 2.x flat layout: {"clients": "2021-05-07T18:06:00.000000Z", ...}.
                let mut bookmarks = Map::new();
                let mut rest = Map::new();
                for (k, v) in value {
                    match &v {
                        Value::String(s) if parse_datetime(s).is_some() => {
                            bookmarks.insert(k, json!({"updated_at": s}));
                        }
                        Value::String(_) if k == "currently_syncing" => {
                            rest.insert(k, v);
                        }
                        Value::Null => {
                            rest.insert(k, v);
                        }
                        _ => bail!(
                            "state key {k:?} is neither 'bookmarks' nor a legacy stream timestamp"
                        ),
                    }
                }
                if !bookmarks.is_empty() {
                    crate::log::info(&format!(
                        "migrated a legacy flat state with {} bookmarks",
                        bookmarks.len()
                    ));
                }
                rest.insert("bookmarks".into(), Value::Object(bookmarks));
                Ok(State {
                    value: rest,
                    large: Default::default(),
                    changes: 0,
                })
            }
        }
    }

    /// The state of one account of a run reading several (or carrying the account column):
    /// each stream's bookmarks and deletion memory from its partition `{"context":
    /// {"account_id": <id>}, ...}`, in the unpartitioned layout the engine plans from.
    pub fn account_view(&self, account: i64) -> State {
        let mut value = Map::new();
        for top in ["bookmarks", DELETIONS] {
            let mut streams = Map::new();
            if let Some(Value::Object(all)) = self.value.get(top) {
                for (stream, entry) in all {
                    if let Some(p) = partition(entry, account) {
                        let mut p = p.clone();
                        p.remove("context");
                        streams.insert(stream.clone(), Value::Object(p));
                    }
                }
            }
            value.insert(top.into(), Value::Object(streams));
        }
        let mut view = State {
            value,
            large: Default::default(),
            changes: 0,
        };
        view.measure_memory();
        view
    }

    /// Moves what a single-account sync left unpartitioned (each stream's bookmarks and
    /// memory) into `account`'s partition, where it has none: a warehouse that grows from one
    /// account to several resumes that account where it was.
    pub fn partition_for(&mut self, account: i64) -> usize {
        let mut moved = 0;
        for top in ["bookmarks", DELETIONS] {
            let Some(Value::Object(all)) = self.value.get_mut(top) else {
                continue;
            };
            for entry in all.values_mut() {
                let Value::Object(fields) = entry else {
                    continue;
                };
                let loose: Map<String, Value> = fields
                    .iter()
                    .filter(|(k, _)| k.as_str() != PARTITIONS)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                // An account that has its partition keeps it; the loose keys stay as they are.
                if loose.is_empty() || partition(entry, account).is_some() {
                    continue;
                }
                if let Value::Object(fields) = entry {
                    fields.retain(|k, _| k == PARTITIONS);
                }
                partition_mut(entry, account).extend(loose);
                moved += 1;
            }
        }
        if moved > 0 {
            self.changes += 1;
            self.measure_memory();
        }
        moved
    }

    /// Whether a stream's bookmarks are unpartitioned (a single-account sync's).
    pub fn has_loose_bookmarks(&self) -> bool {
        self.value
            .get("bookmarks")
            .and_then(Value::as_object)
            .is_some_and(|all| {
                all.values().any(|e| {
                    e.as_object()
                        .is_some_and(|f| f.keys().any(|k| k != PARTITIONS))
                })
            })
    }

    /// Sets a bookmark of `account`'s partition (`None`: the unpartitioned layout).
    pub fn set_bookmark_in(&mut self, account: Option<i64>, stream: &str, key: &str, value: Value) {
        let Some(account) = account else {
            return self.set_bookmark(stream, key, value);
        };
        let entry = stream_entry(&mut self.value, "bookmarks", stream);
        let p = partition_mut(entry, account);
        if p.get(key) != Some(&value) {
            p.insert(key.into(), value);
            self.changes += 1;
        }
    }

    /// Sets the deletion memory of `account`'s partition (`None`: the unpartitioned layout).
    pub fn set_memory_in(&mut self, account: Option<i64>, stream: &str, value: Value) {
        let Some(account) = account else {
            return self.set_memory(stream, value);
        };
        let Value::Object(fields) = value else {
            return;
        };
        let entry = stream_entry(&mut self.value, DELETIONS, stream);
        let p = partition_mut(entry, account);
        let context = p.remove("context");
        let changed = *p != fields;
        *p = fields;
        if let Some(c) = context {
            p.insert("context".into(), c);
        }
        if changed {
            self.changes += 1;
        }
        let large = self
            .value
            .get(DELETIONS)
            .and_then(|d| d.get(stream))
            .is_some_and(|v| approx_size(v) > INLINE_MEMORY_BYTES);
        if large {
            self.large.insert(stream.to_string());
        }
    }

    /// A stream's bookmark under `key`, parsed.
    pub fn bookmark(&self, stream: &str, key: &str) -> Option<DateTime<Utc>> {
        self.value
            .get("bookmarks")?
            .get(stream)?
            .get(key)?
            .as_str()
            .and_then(parse_datetime)
    }

    /// Sets a bookmark value (a date-time written by [`format_bookmark`], or a report date).
    pub fn set_bookmark(&mut self, stream: &str, key: &str, value: Value) {
        let bookmarks = self
            .value
            .entry("bookmarks")
            .or_insert_with(|| Value::Object(Map::new()));
        if !bookmarks.is_object() {
            *bookmarks = Value::Object(Map::new());
        }
        let entry = bookmarks
            .as_object_mut()
            .unwrap()
            .entry(stream)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let entry = entry.as_object_mut().unwrap();
        if entry.get(key) != Some(&value) {
            entry.insert(key.into(), value);
            self.changes += 1;
        }
    }

    /// The deletion memory, as the state holds it.
    pub fn memory(&self) -> Option<&Value> {
        self.value.get(DELETIONS)
    }

    fn measure_memory(&mut self) {
        self.large.clear();
        if let Some(Value::Object(m)) = self.value.get(DELETIONS) {
            for (stream, v) in m {
                if approx_size(v) > INLINE_MEMORY_BYTES {
                    self.large.insert(stream.clone());
                }
            }
        }
    }

    /// Sets a stream's deletion memory (the partitions of a several-account sync stay).
    pub fn set_memory(&mut self, stream: &str, mut value: Value) {
        let kept = self
            .value
            .get(DELETIONS)
            .and_then(|d| d.get(stream))
            .and_then(|m| m.get(PARTITIONS))
            .cloned();
        if let (Some(parts), Value::Object(fields)) = (kept, &mut value) {
            fields.insert(PARTITIONS.into(), parts);
        }
        let large = approx_size(&value) > INLINE_MEMORY_BYTES;
        let all = self
            .value
            .entry(DELETIONS)
            .or_insert_with(|| Value::Object(Map::new()));
        if !all.is_object() {
            *all = Value::Object(Map::new());
        }
        let all = all.as_object_mut().unwrap();
        if all.get(stream) != Some(&value) {
            all.insert(stream.to_string(), value);
            self.changes += 1;
        }
        if large {
            self.large.insert(stream.to_string());
        } else {
            self.large.remove(stream);
        }
    }

    /// Writes the state as a STATE message in the middle of a sync carries it, without
    /// copying it: without the large memories (the last STATE has them).
    pub fn write_json_without_large_memory(
        &mut self,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        self.value
            .entry("bookmarks")
            .or_insert_with(|| Value::Object(Map::new()));
        let e = std::io::Error::other;
        out.write_all(b"{")?;
        for (i, (k, v)) in self.value.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, k).map_err(e)?;
            out.write_all(b":")?;
            match v {
                Value::Object(m) if k == DELETIONS && !self.large.is_empty() => {
                    out.write_all(b"{")?;
                    let small = m.iter().filter(|(s, _)| !self.large.contains(*s));
                    for (j, (s, x)) in small.enumerate() {
                        if j > 0 {
                            out.write_all(b",")?;
                        }
                        serde_json::to_writer(&mut *out, s).map_err(e)?;
                        out.write_all(b":")?;
                        serde_json::to_writer(&mut *out, x).map_err(e)?;
                    }
                    out.write_all(b"}")?;
                }
                _ => serde_json::to_writer(&mut *out, v).map_err(e)?,
            }
        }
        out.write_all(b"}")
    }

    /// Whether some memory is left out of [`State::write_json_without_large_memory`].
    pub fn has_large_memory(&self) -> bool {
        !self.large.is_empty()
    }

    /// Writes the whole state as JSON, without copying it (the last STATE of a large account
    /// holds megabytes of memory).
    pub fn write_json(&mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.value
            .entry("bookmarks")
            .or_insert_with(|| Value::Object(Map::new()));
        serde_json::to_writer(out, &self.value).map_err(std::io::Error::other)
    }

    pub fn to_value(&self) -> Value {
        let mut v = self.value.clone();
        v.entry("bookmarks")
            .or_insert_with(|| Value::Object(Map::new()));
        Value::Object(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_unknown_bookmarks_forward() {
        let given = json!({"bookmarks": {"old_stream": {"updated_at": "2020-01-01T00:00:00Z", "x": 1}},
            "currently_syncing": null});
        let mut s = State::from_value(given).unwrap();
        s.set_bookmark(
            "clients",
            "updated_at",
            format_bookmark(parse_datetime("2024-01-01T00:00:00.5Z").unwrap()),
        );
        let v = s.to_value();
        assert_eq!(v["bookmarks"]["old_stream"]["x"], json!(1));
        assert_eq!(
            v["bookmarks"]["clients"]["updated_at"],
            json!("2024-01-01T00:00:00Z")
        );
        assert!(v.get("currently_syncing").is_some());
    }

    #[test]
    fn accounts_keep_their_own_partitions_and_take_over_a_single_accounts_state() {
        let given = json!({"bookmarks": {
            "clients": {"updated_at": "2024-01-01T00:00:00Z"},
            "tasks": {"partitions": [{"context": {"account_id": 9}, "updated_at": "2023-01-01T00:00:00Z"}]}},
            "deletions": {"clients": {"count": 1, "ids": "Ag"}}});
        let mut s = State::from_value(given).unwrap();
        assert_eq!(s.partition_for(5), 2, "the loose bookmark and memory");
        let five = s.account_view(5);
        assert_eq!(
            five.bookmark("clients", "updated_at"),
            parse_datetime("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            five.memory().unwrap()["clients"],
            json!({"count": 1, "ids": "Ag"})
        );
        assert_eq!(five.bookmark("tasks", "updated_at"), None);
        // An account dropped from the config keeps its partition.
        assert_eq!(
            s.account_view(9).bookmark("tasks", "updated_at"),
            parse_datetime("2023-01-01T00:00:00Z")
        );
        s.set_bookmark_in(
            Some(7),
            "clients",
            "updated_at",
            json!("2025-01-01T00:00:00Z"),
        );
        s.set_memory_in(Some(7), "clients", json!({"count": 0, "ids": ""}));
        let v = s.to_value();
        let parts = v["bookmarks"]["clients"]["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1]["context"], json!({"account_id": 7}));
        assert!(
            v["bookmarks"]["clients"].get("updated_at").is_none(),
            "moved, not copied"
        );
        assert_eq!(
            s.account_view(7).memory().unwrap()["clients"],
            json!({"count": 0, "ids": ""})
        );
        assert_eq!(s.partition_for(7), 0, "nothing loose is left");
        // The state a multi-account sync wrote is read back.
        let again = State::from_value(v).unwrap();
        assert_eq!(
            again.account_view(7).bookmark("clients", "updated_at"),
            parse_datetime("2025-01-01T00:00:00Z")
        );
    }

    #[test]
    fn migrates_the_flat_layout() {
        let s = State::from_value(
            json!({"clients": "2021-05-07T18:06:00.000000Z", "currently_syncing": "clients"}),
        )
        .unwrap();
        assert_eq!(
            s.bookmark("clients", "updated_at"),
            parse_datetime("2021-05-07T18:06:00Z")
        );
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(State::from_value(json!([])).is_err());
        assert!(State::from_value(json!({"bookmarks": []})).is_err());
        assert!(State::from_value(json!({"bookmarks": {"clients": "2020"}})).is_err());
        assert!(
            State::from_value(json!({"bookmarks": {"clients": {"updated_at": "soon"}}})).is_err()
        );
        assert!(State::from_value(json!({"clients": 5})).is_err());
    }
}
