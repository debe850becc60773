//! What the tap remembers of each stream to tell what disappeared: the keys it sent that
//! still exist in Harvest as far as it knows, each with its owner (the parent record it hangs
//! on, or the project a time entry belongs to) and, for time entries and expenses, its
//! `spent_date`. It lives in the STATE under `deletions.<stream>`.
//!
//! Size. Keys are kept sorted; an integer key column is written as the differences between
//! consecutive keys, an owner as its place in a list of the distinct owners and a day as the
//! difference from the day before, each as a variable-length integer (7 bits a byte) and the
//! whole in URL-safe base64. Harvest ids grow with time, so a time entry costs about four
//! bytes of STATE; a million of them about 4 MB (measured in the README's Deletions section).
//! Keys that are not a single integer (a role's users, an external reference) are written as
//! JSON arrays, which only small streams have.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::config::parse_datetime;

/// A stream's key: one integer, or the JSON array of the key properties' values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Text(Box<str>),
}

impl Key {
    /// The key of a record with these key properties; `None` when a part is missing.
    pub fn of(row: &Map<String, Value>, props: &[&str]) -> Option<Key> {
        if let [one] = props {
            if let Some(n) = row.get(*one).and_then(Value::as_i64) {
                return Some(Key::Int(n));
            }
        }
        let parts: Vec<&Value> = props
            .iter()
            .map(|p| row.get(*p).filter(|v| !v.is_null()))
            .collect::<Option<_>>()?;
        Some(Key::Text(serde_json::to_string(&parts).ok()?.into()))
    }

    /// The key properties with their values, as a tombstone carries them.
    pub fn fields(&self, props: &[&str]) -> Map<String, Value> {
        let values: Vec<Value> = match self {
            Key::Int(n) => vec![json!(n)],
            Key::Text(t) => serde_json::from_str(t).unwrap_or_default(),
        };
        props
            .iter()
            .zip(values)
            .map(|(p, v)| (p.to_string(), v))
            .collect()
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(n) => write!(f, "{n}"),
            Key::Text(t) => f.write_str(t),
        }
    }
}

/// One remembered row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    /// The owner's id, if the stream has one.
    pub owner: Option<i64>,
    /// Days since 1970-01-01 of the row's date (`spent_date`), if the stream is windowed.
    pub day: Option<i32>,
}

/// The remembered rows of one stream, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub rows: BTreeMap<Key, Attrs>,
    /// When the stream was last read in full (a sweep); `None` for streams that are only read
    /// under their parents, and when the memory was never completed.
    pub swept_at: Option<DateTime<Utc>>,
}

pub fn day_of(date: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
    Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

pub fn day_from(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// Integers as deltas, zigzagged varints, base64.
fn encode_deltas(values: impl Iterator<Item = i64>) -> String {
    let mut out = Vec::new();
    let mut prev = 0i64;
    for v in values {
        put_varint(&mut out, zigzag(v.wrapping_sub(prev)));
        prev = v;
    }
    b64().encode(out)
}

fn decode_deltas(text: &str) -> Option<Vec<i64>> {
    let bytes = b64().decode(text).ok()?;
    let mut r = Reader {
        bytes: &bytes,
        at: 0,
    };
    let mut out = Vec::new();
    let mut prev = 0i64;
    while !r.done() {
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        out.push(prev);
    }
    Some(out)
}

impl Known {
    /// The STATE form.
    pub fn to_value(&self) -> Value {
        let mut v = Map::new();
        if let Some(at) = self.swept_at {
            v.insert("swept_at".into(), crate::state::format_bookmark(at));
        }
        v.insert("count".into(), json!(self.rows.len()));
        let ints = self.rows.keys().all(|k| matches!(k, Key::Int(_)));
        if ints {
            v.insert(
                "ids".into(),
                json!(encode_deltas(self.rows.keys().map(|k| match k {
                    Key::Int(n) => *n,
                    Key::Text(_) => 0,
                }))),
            );
        } else {
            let keys: Vec<Value> = self
                .rows
                .keys()
                .map(|k| match k {
                    Key::Int(n) => json!([n]),
                    Key::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
                })
                .collect();
            v.insert("keys".into(), Value::Array(keys));
        }
        if self.rows.values().any(|a| a.owner.is_some()) {
            let mut owners: Vec<i64> = self.rows.values().filter_map(|a| a.owner).collect();
            owners.sort_unstable();
            owners.dedup();
            let place: HashMap<i64, i64> = owners
                .iter()
                .enumerate()
                .map(|(i, o)| (*o, i as i64 + 1))
                .collect();
            v.insert("owner_ids".into(), json!(encode_deltas(owners.into_iter())));
            // 0 = no owner; otherwise the owner's place + 1, written plainly (not as a delta).
            let mut out = Vec::new();
            for a in self.rows.values() {
                put_varint(&mut out, a.owner.map_or(0, |o| place[&o]) as u64);
            }
            v.insert("owners".into(), json!(b64().encode(out)));
        }
        if self.rows.values().any(|a| a.day.is_some()) {
            // i32::MIN = no day.
            v.insert(
                "days".into(),
                json!(encode_deltas(
                    self.rows
                        .values()
                        .map(|a| i64::from(a.day.unwrap_or(i32::MIN)))
                )),
            );
        }
        Value::Object(v)
    }

    /// Reads the STATE form; `Err` says what is wrong with it.
    pub fn from_value(v: &Value) -> Result<Known, String> {
        let o = v.as_object().ok_or("not an object")?;
        let swept_at = match o.get("swept_at") {
            None | Some(Value::Null) => None,
            Some(s) => Some(
                s.as_str()
                    .and_then(parse_datetime)
                    .ok_or("swept_at is not a date-time")?,
            ),
        };
        let keys: Vec<Key> = match (o.get("ids"), o.get("keys")) {
            (Some(ids), _) => decode_deltas(ids.as_str().ok_or("ids is not a string")?)
                .ok_or("ids is not a key list this tap wrote")?
                .into_iter()
                .map(Key::Int)
                .collect(),
            (None, Some(Value::Array(keys))) => keys
                .iter()
                .map(|k| match k.as_array().map(Vec::as_slice) {
                    Some([one]) if one.is_i64() => Ok(Key::Int(one.as_i64().unwrap_or(0))),
                    Some(_) => Ok(Key::Text(k.to_string().into())),
                    None => Err("a key is not an array"),
                })
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let n = keys.len();
        let owners: Vec<Option<i64>> = match (o.get("owner_ids"), o.get("owners")) {
            (Some(ids), Some(places)) => {
                let ids = decode_deltas(ids.as_str().ok_or("owner_ids is not a string")?)
                    .ok_or("owner_ids is unreadable")?;
                let bytes = b64()
                    .decode(places.as_str().ok_or("owners is not a string")?)
                    .map_err(|_| "owners is unreadable")?;
                let mut r = Reader {
                    bytes: &bytes,
                    at: 0,
                };
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let p = r.varint().ok_or("owners is short")? as usize;
                    out.push(match p {
                        0 => None,
                        p => Some(*ids.get(p - 1).ok_or("an owner is out of range")?),
                    });
                }
                out
            }
            _ => vec![None; n],
        };
        let days: Vec<Option<i32>> = match o.get("days") {
            Some(d) => {
                let d = decode_deltas(d.as_str().ok_or("days is not a string")?)
                    .ok_or("days is unreadable")?;
                if d.len() != n {
                    return Err("days and keys differ in length".into());
                }
                d.into_iter()
                    .map(|x| i32::try_from(x).ok().filter(|x| *x != i32::MIN))
                    .collect()
            }
            None => vec![None; n],
        };
        if owners.len() != n {
            return Err("owners and keys differ in length".into());
        }
        let rows = keys
            .into_iter()
            .zip(owners.into_iter().zip(days))
            .map(|(k, (owner, day))| (k, Attrs { owner, day }))
            .collect();
        Ok(Known { rows, swept_at })
    }
}

/// The memory of every stream, as read from the input STATE.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub streams: BTreeMap<String, Known>,
}

impl Memory {
    /// Reads `deletions` of a STATE; a stream whose memory cannot be read is forgotten, with a
    /// warning (its next full read rebuilds it; nothing is reported deleted meanwhile).
    pub fn from_state(v: Option<&Value>) -> Memory {
        let mut streams = BTreeMap::new();
        if let Some(Value::Object(all)) = v {
            for (name, m) in all {
                match Known::from_value(m) {
                    Ok(k) => {
                        streams.insert(name.clone(), k);
                    }
                    Err(why) => crate::log::warn(&format!(
                        "state: deletions.{name} cannot be read ({why}); it is rebuilt by the stream's next full read, and no deletion is reported for it until then"
                    )),
                }
            }
        }
        Memory { streams }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trips_and_is_small() {
        let mut k = Known {
            swept_at: parse_datetime("2026-01-01T00:00:00Z"),
            ..Known::default()
        };
        let mut id = 2_000_000_000i64;
        for i in 0..100_000i64 {
            id += 1 + (i * 7919) % 40;
            k.rows.insert(
                Key::Int(id),
                Attrs {
                    owner: Some(30_000_000 + (i * 31) % 400),
                    day: Some(19_000 + (i / 300) as i32),
                },
            );
        }
        let v = k.to_value();
        let bytes = serde_json::to_string(&v).unwrap().len();
        assert!(bytes < 100_000 * 6, "{bytes} bytes for 100,000 keys");
        assert_eq!(Known::from_value(&v).unwrap(), k);

        let mut t = Known::default();
        let row = json!({"role_id": 5, "user_id": 7})
            .as_object()
            .unwrap()
            .clone();
        let key = Key::of(&row, &["role_id", "user_id"]).unwrap();
        t.rows.insert(
            key.clone(),
            Attrs {
                owner: Some(5),
                day: None,
            },
        );
        let back = Known::from_value(&t.to_value()).unwrap();
        assert_eq!(back, t);
        assert_eq!(key.fields(&["role_id", "user_id"]), row);
        assert!(Known::from_value(&json!({"ids": "!!"})).is_err());
        assert!(Known::from_value(&json!({"ids": "AQ", "days": "AQID"})).is_err());
    }
}
