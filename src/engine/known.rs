//! What the tap remembers of each stream to tell what disappeared: the keys it sent that
//! still exist in Harvest as far as it knows, each with its owner (the parent record it hangs
//! on, or the project a time entry belongs to) and, for time entries and expenses, its
//! `spent_date`. It lives in the STATE under `deletions.<stream>`.
//!
//! Size. Keys are kept sorted. Integer keys are written as the differences between
//! consecutive keys, owners and days as the differences from the row before, each as a
//! variable-length integer (7 bits a byte), the whole in URL-safe base64; Harvest ids grow
//! with time, so a time entry costs about five bytes of STATE. Keys that are not a single
//! integer are written as JSON arrays (`keys`), after the integer ones.
//!
//! Memory. The STATE's form is decoded row by row when it is compared ([`Known::rows`]), never
//! held decoded; the keys read during a sync are appended to a [`Seen`] buffer in the same
//! varint form (about five bytes a key), and decoded, sorted and merged one stream at a time.

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::util::parse_datetime;

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

/// What a row is remembered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs {
    /// The owner's id, if the stream has one.
    pub owner: Option<i64>,
    /// Days since 1970-01-01 of the row's date (`spent_date`), if the stream is windowed.
    pub day: Option<i32>,
}

/// The id a shaped or raw record gives for `column` (`project_id`, or `project.id`).
pub fn owner_id(record: &Map<String, Value>, column: &str) -> Option<i64> {
    if let Some(n) = record.get(column).and_then(Value::as_i64) {
        return Some(n);
    }
    record.get(column.strip_suffix("_id")?)?.get("id")?.as_i64()
}

pub fn day_of(date: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
    Some(day_from(d))
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

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A column of integers written as differences from the one before. `None` (no owner, no
/// day) is written as a difference of 0 plus a flag in the lowest bit.
#[derive(Default)]
struct DeltaColumn {
    bytes: Vec<u8>,
    prev: i64,
}

impl DeltaColumn {
    fn push(&mut self, v: Option<i64>) {
        match v {
            None => put_varint(&mut self.bytes, 1),
            Some(v) => {
                put_varint(&mut self.bytes, zigzag(v.wrapping_sub(self.prev)) << 1);
                self.prev = v;
            }
        }
    }
}

struct DeltaReader<'a> {
    bytes: &'a [u8],
    at: usize,
    prev: i64,
}

impl DeltaReader<'_> {
    fn next(&mut self) -> Option<Option<i64>> {
        let v = get_varint(self.bytes, &mut self.at)?;
        if v & 1 == 1 {
            return Some(None);
        }
        self.prev = self.prev.wrapping_add(unzigzag(v >> 1));
        Some(Some(self.prev))
    }
}

/// A stream's memory as the STATE holds it, read row by row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    /// How many rows it holds.
    pub count: usize,
    /// When the stream was last read in full (a sweep); `None` for streams only read under
    /// their parents, and when the memory was never completed.
    pub swept_at: Option<DateTime<Utc>>,
    ids: Vec<u8>,
    texts: Vec<Box<str>>,
    owners: Option<Vec<u8>>,
    days: Option<Vec<u8>>,
}

impl Known {
    /// The rows, sorted by key.
    pub fn rows(&self) -> impl Iterator<Item = (Key, Attrs)> + '_ {
        let mut at = 0;
        let mut prev = 0i64;
        let ids = std::iter::from_fn(move || {
            let d = get_varint(&self.ids, &mut at)?;
            prev = prev.wrapping_add(unzigzag(d));
            Some(Key::Int(prev))
        });
        let keys = ids.chain(self.texts.iter().map(|t| Key::Text(t.clone())));
        fn column(c: &Option<Vec<u8>>) -> Option<DeltaReader<'_>> {
            c.as_ref().map(|bytes| DeltaReader {
                bytes: bytes.as_slice(),
                at: 0,
                prev: 0,
            })
        }
        let (mut owners, mut days) = (column(&self.owners), column(&self.days));
        keys.take(self.count).map(move |k| {
            let owner = owners.as_mut().and_then(|r| r.next()).flatten();
            let day = days
                .as_mut()
                .and_then(|r| r.next())
                .flatten()
                .and_then(|d| i32::try_from(d).ok());
            (k, Attrs { owner, day })
        })
    }

    /// The STATE form.
    pub fn to_value(&self) -> Value {
        let mut v = Map::new();
        if let Some(at) = self.swept_at {
            v.insert("swept_at".into(), crate::state::format_bookmark(at));
        }
        v.insert("count".into(), json!(self.count));
        v.insert("ids".into(), json!(b64().encode(&self.ids)));
        if !self.texts.is_empty() {
            v.insert("keys".into(), encode_texts(&self.texts));
        }
        for (name, c) in [("owners", &self.owners), ("days", &self.days)] {
            if let Some(bytes) = c {
                v.insert(name.into(), json!(b64().encode(bytes)));
            }
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
        let bytes = |name: &str| -> Result<Option<Vec<u8>>, String> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => b64()
                    .decode(s)
                    .map(Some)
                    .map_err(|_| format!("{name} is not what this tap writes")),
                Some(_) => Err(format!("{name} is not a string")),
            }
        };
        let ids = bytes("ids")?.unwrap_or_default();
        let texts: Vec<Box<str>> = match o.get("keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(keys) => decode_texts(keys)?,
        };
        let known = Known {
            count: 0,
            swept_at,
            ids,
            texts,
            owners: bytes("owners")?,
            days: bytes("days")?,
        };
        // Checked once, here: every column has a value for every key.
        let mut at = 0;
        let mut n_ids = 0;
        while at < known.ids.len() {
            get_varint(&known.ids, &mut at).ok_or("ids is cut short")?;
            n_ids += 1;
        }
        let count = n_ids + known.texts.len();
        for (name, c) in [("owners", &known.owners), ("days", &known.days)] {
            if let Some(bytes) = c {
                let mut r = DeltaReader {
                    bytes,
                    at: 0,
                    prev: 0,
                };
                let mut n = 0;
                while r.at < bytes.len() {
                    r.next().ok_or(format!("{name} is cut short"))?;
                    n += 1;
                }
                if n != count {
                    return Err(format!("{name} and the keys differ in length"));
                }
            }
        }
        if o.get("count")
            .and_then(Value::as_u64)
            .is_some_and(|c| c as usize != count)
        {
            return Err("count does not match the keys".into());
        }
        Ok(Known { count, ..known })
    }
}

/// Keys that are not one integer, column by column (as many values a key as key properties):
/// a column of integers as deltas like `ids`, any other column as one JSON value a line. One
/// string a column, not one JSON value a key: 100,000 keys would take 20 MB as values.
fn encode_texts(texts: &[Box<str>]) -> Value {
    // Column by column, each key parsed again for each column, so that no parsed copy of
    // all the keys is held.
    let cell = |t: &str, j: usize| -> Value {
        match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(mut parts)) if j < parts.len() => parts.swap_remove(j),
            _ => Value::Null,
        }
    };
    let width = texts
        .iter()
        .map(|t| match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(parts)) => parts.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let columns: Vec<Value> = (0..width)
        .map(|j| {
            if texts.iter().all(|t| cell(t, j).is_i64()) {
                let mut c = Vec::new();
                let mut prev = 0i64;
                for t in texts {
                    let n = cell(t, j).as_i64().unwrap_or(0);
                    put_varint(&mut c, zigzag(n.wrapping_sub(prev)));
                    prev = n;
                }
                json!({"ints": b64().encode(c)})
            } else {
                let mut lines = String::new();
                for (i, t) in texts.iter().enumerate() {
                    if i > 0 {
                        lines.push('\n');
                    }
                    lines.push_str(&cell(t, j).to_string());
                }
                json!({"lines": lines})
            }
        })
        .collect();
    json!({"count": texts.len(), "columns": columns})
}

fn decode_texts(v: &Value) -> Result<Vec<Box<str>>, String> {
    let n = v["count"].as_u64().ok_or("keys has no count")? as usize;
    let columns = v["columns"].as_array().ok_or("keys has no columns")?;
    let mut cells: Vec<Vec<Value>> = vec![Vec::with_capacity(columns.len()); n];
    for c in columns {
        if let Some(ints) = c["ints"].as_str() {
            let bytes = b64()
                .decode(ints)
                .map_err(|_| "a key column is unreadable")?;
            let (mut at, mut prev) = (0usize, 0i64);
            for row in cells.iter_mut() {
                prev = prev.wrapping_add(unzigzag(
                    get_varint(&bytes, &mut at).ok_or("a key column is cut short")?,
                ));
                row.push(json!(prev));
            }
        } else if let Some(lines) = c["lines"].as_str() {
            let mut it = lines.split('\n');
            for row in cells.iter_mut() {
                let line = it.next().ok_or("a key column is cut short")?;
                row.push(serde_json::from_str(line).map_err(|_| "a key column is unreadable")?);
            }
        } else {
            return Err("a key column is neither ints nor lines".into());
        }
    }
    Ok(cells
        .into_iter()
        .map(|r| Value::Array(r).to_string().into())
        .collect())
}

/// Builds a [`Known`] from rows given in key order.
#[derive(Default)]
pub struct KnownWriter {
    ids: Vec<u8>,
    prev: i64,
    texts: Vec<Box<str>>,
    owners: DeltaColumn,
    days: DeltaColumn,
    any_owner: bool,
    any_day: bool,
    count: usize,
}

impl KnownWriter {
    pub fn push(&mut self, key: Key, attrs: Attrs) {
        match key {
            Key::Int(n) => {
                put_varint(&mut self.ids, zigzag(n.wrapping_sub(self.prev)));
                self.prev = n;
            }
            Key::Text(t) => self.texts.push(t),
        }
        self.any_owner |= attrs.owner.is_some();
        self.any_day |= attrs.day.is_some();
        self.owners.push(attrs.owner);
        self.days.push(attrs.day.map(i64::from));
        self.count += 1;
    }

    pub fn finish(self, swept_at: Option<DateTime<Utc>>) -> Known {
        Known {
            count: self.count,
            swept_at,
            ids: self.ids,
            texts: self.texts,
            owners: self.any_owner.then_some(self.owners.bytes),
            days: self.any_day.then_some(self.days.bytes),
        }
    }
}

/// The keys read during a sync, in the order they came, about five bytes each.
#[derive(Debug, Default)]
pub struct Seen {
    bytes: Vec<u8>,
    /// The keys that are not one integer, one after the other, and where each ends.
    text: String,
    text_ends: Vec<u32>,
    at: Cursor,
}

/// Where a [`Seen`] buffer stands: what the next row's differences are taken from.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    key: i64,
    owner: i64,
    day: i64,
    count: usize,
}

/// A place in a [`Seen`] buffer, to go back to ([`Seen::mark`], [`Seen::truncate`]).
#[derive(Debug, Clone, Copy)]
pub struct SeenMark {
    bytes: usize,
    texts: usize,
    at: Cursor,
}

const TEXT: u64 = 1;
const OWNER: u64 = 2;
const DAY: u64 = 4;

impl Seen {
    pub fn push(&mut self, key: Key, attrs: Attrs) {
        let flags = |text: bool| {
            (if text { TEXT } else { 0 })
                | (if attrs.owner.is_some() { OWNER } else { 0 })
                | (if attrs.day.is_some() { DAY } else { 0 })
        };
        match key {
            Key::Int(n) => {
                put_varint(
                    &mut self.bytes,
                    (zigzag(n.wrapping_sub(self.at.key)) << 3) | flags(false),
                );
                self.at.key = n;
            }
            Key::Text(t) => {
                put_varint(&mut self.bytes, flags(true));
                self.text.push_str(&t);
                self.text_ends.push(self.text.len() as u32);
            }
        }
        if let Some(o) = attrs.owner {
            put_varint(&mut self.bytes, zigzag(o.wrapping_sub(self.at.owner)));
            self.at.owner = o;
        }
        if let Some(d) = attrs.day {
            let d = i64::from(d);
            put_varint(&mut self.bytes, zigzag(d.wrapping_sub(self.at.day)));
            self.at.day = d;
        }
        self.at.count += 1;
    }

    /// The rows in key order, each key once (read twice, it was read the same, or changed
    /// while the sync ran and the next sync reads it again).
    pub fn into_sorted(self) -> SortedRows {
        // Integer keys (nearly all) as 16 bytes a row, sorted in place; owners by their
        // place in a list of the distinct ones.
        let n_texts = self.text_ends.len();
        let count = self.at.count;
        let mut ints: Vec<(i64, u32, i32)> = Vec::with_capacity(count - n_texts);
        let mut texts: Vec<(Box<str>, Attrs)> = Vec::with_capacity(n_texts);
        let mut owners: Vec<i64> = Vec::new();
        let mut place: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
        let (mut at, mut key, mut owner, mut day) = (0usize, 0i64, 0i64, 0i64);
        let mut text_start = 0usize;
        let mut ends = self.text_ends.iter();
        for _ in 0..count {
            let Some(head) = get_varint(&self.bytes, &mut at) else {
                break;
            };
            if head & TEXT == 0 {
                key = key.wrapping_add(unzigzag(head >> 3));
            }
            let mut attrs = Attrs::default();
            if head & OWNER != 0 {
                owner = owner.wrapping_add(unzigzag(get_varint(&self.bytes, &mut at).unwrap_or(0)));
                attrs.owner = Some(owner);
            }
            if head & DAY != 0 {
                day = day.wrapping_add(unzigzag(get_varint(&self.bytes, &mut at).unwrap_or(0)));
                attrs.day = i32::try_from(day).ok();
            }
            if head & TEXT != 0 {
                let end = ends.next().map_or(self.text.len(), |e| *e as usize);
                texts.push((self.text.get(text_start..end).unwrap_or("").into(), attrs));
                text_start = end;
            } else {
                let o = match attrs.owner {
                    None => u32::MAX,
                    Some(o) => *place.entry(o).or_insert_with(|| {
                        owners.push(o);
                        owners.len() as u32 - 1
                    }),
                };
                ints.push((key, o, attrs.day.unwrap_or(i32::MIN)));
            }
        }
        drop(self.bytes);
        ints.sort_unstable_by_key(|r| r.0);
        ints.dedup_by_key(|r| r.0);
        texts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        texts.dedup_by(|later, earlier| later.0 == earlier.0);
        SortedRows {
            ints,
            owners,
            texts,
        }
    }

    /// Where the buffer stands, to go back to with [`Seen::truncate`].
    pub fn mark(&self) -> SeenMark {
        SeenMark {
            bytes: self.bytes.len(),
            texts: self.text_ends.len(),
            at: self.at,
        }
    }

    pub fn truncate(&mut self, m: SeenMark) {
        self.bytes.truncate(m.bytes);
        self.text_ends.truncate(m.texts);
        self.text
            .truncate(self.text_ends.last().map_or(0, |e| *e as usize));
        self.at = m.at;
    }
}

/// The keys read during a sync, sorted by key (integers first), each once.
#[derive(Debug, Default)]
pub struct SortedRows {
    ints: Vec<(i64, u32, i32)>,
    owners: Vec<i64>,
    texts: Vec<(Box<str>, Attrs)>,
}

impl SortedRows {
    /// The rows in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, Attrs)> + '_ {
        let ints = self.ints.iter().map(|&(k, owner, day)| {
            (
                Key::Int(k),
                Attrs {
                    owner: self.owners.get(owner as usize).copied(),
                    day: (day != i32::MIN).then_some(day),
                },
            )
        });
        ints.chain(self.texts.iter().map(|(t, a)| (Key::Text(t.clone()), *a)))
    }
}

/// The memory of every stream, as read from the input STATE.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub streams: std::collections::BTreeMap<String, Known>,
}

impl Memory {
    /// Reads `deletions` of a STATE; a stream whose memory cannot be read is forgotten, with a
    /// warning (its next full read rebuilds it; nothing is reported deleted meanwhile).
    pub fn from_state(v: Option<&Value>) -> Memory {
        let mut streams = std::collections::BTreeMap::new();
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
        let mut seen = Seen::default();
        let mut id = 2_000_000_000i64;
        let mut want = Vec::new();
        for i in 0..100_000i64 {
            id += 1 + (i * 7919) % 40;
            let attrs = Attrs {
                owner: Some(30_000_000 + (i * 31) % 400),
                day: Some(19_000 + (i / 300) as i32),
            };
            want.push((Key::Int(id), attrs));
        }
        // Read newest first, one of them twice.
        for (k, a) in want.iter().rev() {
            seen.push(k.clone(), *a);
        }
        seen.push(want[5].0.clone(), want[5].1);
        assert!(
            seen.bytes.len() < 100_000 * 6,
            "{} bytes in memory",
            seen.bytes.len()
        );
        let rows = seen.into_sorted();
        assert_eq!(rows.iter().collect::<Vec<_>>(), want);
        let mut w = KnownWriter::default();
        for (k, a) in rows.iter() {
            w.push(k, a);
        }
        let k = w.finish(parse_datetime("2026-01-01T00:00:00Z"));
        let v = k.to_value();
        let bytes = serde_json::to_string(&v).unwrap().len();
        assert!(
            bytes < 100_000 * 7,
            "{bytes} bytes of STATE for 100,000 keys"
        );
        let back = Known::from_value(&v).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.rows().collect::<Vec<_>>(), want);

        let ext = json!({"time_entry_id": 9, "external_reference_id": "ab\"c"});
        let ext_key = Key::of(
            ext.as_object().unwrap(),
            &["time_entry_id", "external_reference_id"],
        )
        .unwrap();
        let mut w = KnownWriter::default();
        w.push(ext_key.clone(), Attrs::default());
        let back = Known::from_value(&w.finish(None).to_value()).unwrap();
        assert_eq!(back.rows().next().unwrap().0, ext_key);
        let row = json!({"role_id": 5, "user_id": 7})
            .as_object()
            .unwrap()
            .clone();
        let key = Key::of(&row, &["role_id", "user_id"]).unwrap();
        let mut w = KnownWriter::default();
        w.push(Key::Int(3), Attrs::default());
        w.push(
            key.clone(),
            Attrs {
                owner: Some(5),
                day: None,
            },
        );
        let t = w.finish(None);
        let back = Known::from_value(&t.to_value()).unwrap();
        assert_eq!(
            back.rows().collect::<Vec<_>>(),
            t.rows().collect::<Vec<_>>()
        );
        assert_eq!(back.rows().nth(1).unwrap().0, key);
        assert_eq!(key.fields(&["role_id", "user_id"]), row);
        assert!(Known::from_value(&json!({"ids": "!!"})).is_err());
        assert!(Known::from_value(&json!({"ids": "AQ", "days": "AQID"})).is_err());
        assert!(Known::from_value(&json!({"ids": "gA"})).is_err());
    }
}
