//! The conformer that makes every emitted record valid against its stream's schema: values
//! Harvest sends in another JSON type are converted, or nulled with a warning; a record whose
//! key cannot be made valid is refused.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Timelike};
use serde_json::{Map, Number, Value};

use crate::streams::{self, StreamDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    None,
    Date,
    DateTime,
}

/// What a property accepts, compiled from its schema.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    /// `"name":`, ready to write.
    key: Vec<u8>,
    nullable: bool,
    kinds: Vec<String>,
    format: Format,
    items: Option<Box<Field>>,
    properties: Option<Vec<Field>>,
}

impl Field {
    fn compile(name: &str, schema: &Value) -> Field {
        let kinds: Vec<String> = match &schema["type"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let format = match schema["format"].as_str() {
            Some("date") => Format::Date,
            Some("date-time") => Format::DateTime,
            _ => Format::None,
        };
        let mut key = serde_json::to_vec(name).unwrap_or_default();
        key.push(b':');
        Field {
            name: name.to_string(),
            key,
            nullable: kinds.is_empty() || kinds.iter().any(|k| k == "null"),
            kinds,
            format,
            items: schema
                .get("items")
                .map(|s| Box::new(Field::compile("items", s))),
            properties: schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| props.iter().map(|(k, s)| Field::compile(k, s)).collect()),
        }
    }

    fn accepts(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }

    /// Whether [`Field::conform`] would return `v` as it is: the common case, checked without
    /// copying the value. `false` only means "take the slow path".
    fn keeps(&self, v: &Value) -> bool {
        match v {
            Value::Null => self.nullable,
            Value::Bool(_) => self.accepts("boolean"),
            Value::Number(n) if self.accepts("integer") => n.is_i64() || n.is_u64(),
            Value::Number(_) => self.accepts("number"),
            Value::String(s) if self.accepts("string") => match self.format {
                Format::None => true,
                Format::Date => is_full_date(s),
                Format::DateTime => {
                    s.as_bytes().get(10) == Some(&b'T')
                        && DateTime::parse_from_rfc3339(s)
                            .is_ok_and(|d| d.nanosecond() < 1_000_000_000)
                }
            },
            _ => false,
        }
    }

    /// Makes `value` valid for this field: returns the value to emit, or `Err` with what was
    /// wrong when nothing valid can be made of it.
    fn conform(&self, value: Value) -> Result<Value, String> {
        let value = match value {
            Value::Null if self.nullable => return Ok(Value::Null),
            Value::Null => return Err("null in a non-nullable field".into()),
            v => v,
        };
        match value {
            Value::String(s) if self.accepts("string") => self.conform_string(s),
            Value::Number(n) if self.accepts("integer") && integral(&n).is_some() => {
                Ok(Value::Number(integral(&n).unwrap()))
            }
            Value::Number(n) if self.accepts("number") => Ok(Value::Number(n)),
            Value::Bool(b) if self.accepts("boolean") => Ok(Value::Bool(b)),
            Value::Array(a) if self.accepts("array") => match &self.items {
                Some(items) => a
                    .into_iter()
                    .map(|v| items.conform(v))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                None => Ok(Value::Array(a)),
            },
            Value::Object(o) if self.accepts("object") => match &self.properties {
                Some(fields) => conform_object(fields, o).map(Value::Object),
                None => Ok(Value::Object(o)),
            },
            // Coercions of values Harvest sends in another JSON type than documented.
            Value::String(s) if self.accepts("integer") || self.accepts("number") => {
                // Integers first: through f64 they would lose digits beyond 2^53.
                if self.accepts("integer") {
                    if let Ok(n) = s.trim().parse::<i64>() {
                        return Ok(Value::Number(n.into()));
                    }
                    if let Ok(n) = s.trim().parse::<u64>() {
                        return Ok(Value::Number(n.into()));
                    }
                }
                match s.trim().parse::<f64>().ok().and_then(Number::from_f64) {
                    Some(n) if self.accepts("integer") && integral(&n).is_some() => {
                        Ok(Value::Number(integral(&n).unwrap()))
                    }
                    Some(n) if self.accepts("number") => Ok(Value::Number(n)),
                    _ if s.trim().is_empty() && self.nullable => Ok(Value::Null),
                    _ => Err(format!("{s:?} is not a number")),
                }
            }
            Value::String(s) if self.accepts("boolean") => match s.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("{s:?} is not a boolean")),
            },
            Value::Number(n) if self.accepts("string") && self.format == Format::None => {
                Ok(Value::String(n.to_string()))
            }
            Value::Bool(b) if self.accepts("string") && self.format == Format::None => {
                Ok(Value::String(b.to_string()))
            }
            other => Err(format!(
                "a {} where the schema wants {}",
                json_kind(&other),
                self.kinds.join("/")
            )),
        }
    }

    fn conform_string(&self, s: String) -> Result<Value, String> {
        match self.format {
            Format::None => Ok(Value::String(s)),
            Format::Date => {
                let day = s.get(..10).unwrap_or(&s);
                if is_full_date(day) && (s.len() == 10 || DateTime::parse_from_rfc3339(&s).is_ok())
                {
                    Ok(Value::String(day.to_string()))
                } else if s.is_empty() && self.nullable {
                    Ok(Value::Null)
                } else {
                    Err(format!("{s:?} is not a date"))
                }
            }
            Format::DateTime => {
                let parsed = DateTime::parse_from_rfc3339(&s).ok().filter(|d| {
                    // chrono takes a leap second in any minute; RFC 3339 only at 23:59:60 UTC.
                    let utc = d.naive_utc();
                    d.nanosecond() < 1_000_000_000 || (utc.hour(), utc.minute()) == (23, 59)
                });
                if parsed.is_some() {
                    // chrono also takes a space for the `T`, which JSON Schema does not.
                    if s.as_bytes().get(10) == Some(&b' ') {
                        Ok(Value::String(format!("{}T{}", &s[..10], &s[11..])))
                    } else {
                        Ok(Value::String(s))
                    }
                } else if is_full_date(&s) {
                    Ok(Value::String(format!("{s}T00:00:00Z")))
                } else if s.is_empty() && self.nullable {
                    Ok(Value::Null)
                } else {
                    Err(format!("{s:?} is not an RFC 3339 date-time"))
                }
            }
        }
    }
}

/// `YYYY-MM-DD`, a day that exists (RFC 3339's full-date, which JSON Schema's `date` is).
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn integral(n: &Number) -> Option<Number> {
    if n.is_i64() || n.is_u64() {
        return Some(n.clone());
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Number::from(f as i64))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn conform_object(
    fields: &[Field],
    mut obj: Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(fields.len());
    for f in fields {
        let v = obj.remove(&f.name).unwrap_or(Value::Null);
        out.insert(
            f.name.clone(),
            f.conform(v).map_err(|e| format!("{}: {e}", f.name))?,
        );
    }
    Ok(out)
}

/// Conforms the records of one stream to its schema, restricted to the selected properties.
pub struct Conformer {
    stream: &'static str,
    fields: Vec<Field>,
    known: BTreeSet<String>,
    warned: Mutex<BTreeSet<String>>,
}

/// The outcome of conforming one record.
pub enum Conformed {
    Record(Map<String, Value>),
    /// The record cannot be made valid (a key is missing or of the wrong type): skipped.
    Rejected(String),
}

impl Conformer {
    /// `selected` says which properties to emit; `None` means all of them.
    pub fn new(def: &StreamDef, selected: Option<&BTreeSet<String>>) -> Conformer {
        let stream = def.name;
        let props = def.schema()["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // Fields the schema does not list but that are expected: those derived streams are
        // made from (line_items, task_assignments...).
        let known = props
            .keys()
            .cloned()
            .chain(streams::consumed_fields(stream).map(str::to_string))
            .collect();
        // `_sdc_deleted_at` is set on tombstones only (see `engine::deletions`).
        let fields = props
            .iter()
            .filter(|(name, _)| *name != streams::DELETED_AT)
            .filter(|(name, _)| selected.is_none_or(|s| s.contains(*name)))
            .map(|(name, s)| Field::compile(name, s))
            .collect();
        Conformer {
            stream,
            fields,
            known,
            warned: Mutex::new(BTreeSet::new()),
        }
    }

    /// The names of the properties this conformer emits.
    pub fn columns(&self) -> BTreeSet<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Writes `record`, conformed, to `out` as a JSON object (the body of a RECORD message,
    /// which [`crate::output::RecordFrame`] frames). On `Err` (the record cannot be made valid)
    /// nothing is written. Same result as [`Conformer::conform`], without building the
    /// conformed record.
    pub fn write(&self, record: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.push(b'{');
        let mut found = 0;
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&f.key);
            let v = match record.get(&f.name) {
                Some(v) => {
                    found += 1;
                    v
                }
                None => &Value::Null,
            };
            let written = if f.keeps(v) {
                serde_json::to_writer(&mut *out, v)
            } else {
                match self.conform_field(f, v.clone()) {
                    Ok(c) => serde_json::to_writer(&mut *out, &c),
                    Err(e) => {
                        out.truncate(start);
                        return Err(e);
                    }
                }
            };
            if written.is_err() {
                out.truncate(start);
                return Err(format!("{}: not serializable", f.name));
            }
        }
        if record.len() > found {
            self.check_extras(record);
        }
        out.push(b'}');
        Ok(())
    }

    /// One field the slow way: converted, or nulled with a warning, or an error for a key.
    fn conform_field(&self, f: &Field, v: Value) -> Result<Value, String> {
        let sent = json_kind(&v);
        match f.conform(v) {
            Ok(v) => {
                if sent != "null" && sent != json_kind(&v) {
                    self.warn_once(
                        &format!("~{}", f.name),
                        &format!(
                            "field {}: Harvest sent a {sent}, emitted as a {}",
                            f.name,
                            json_kind(&v)
                        ),
                    );
                }
                Ok(v)
            }
            Err(e) if f.nullable => {
                self.warn_once(&f.name, &format!("field {} set to null: {e}", f.name));
                Ok(Value::Null)
            }
            Err(e) => Err(format!("{}: {e}", f.name)),
        }
    }

    fn check_extras(&self, record: &Map<String, Value>) {
        for extra in record.keys() {
            if !self.known.contains(extra) {
                self.note_extra(extra);
            }
        }
    }

    /// The conformed record as a value (for stream maps, which read it); the reference
    /// [`Conformer::write`] is tested against.
    pub fn conform(&self, mut record: Map<String, Value>) -> Conformed {
        let mut out = Map::with_capacity(self.fields.len());
        for f in &self.fields {
            let v = record.remove(&f.name).unwrap_or(Value::Null);
            match self.conform_field(f, v) {
                Ok(v) => {
                    out.insert(f.name.clone(), v);
                }
                Err(e) => return Conformed::Rejected(e),
            }
        }
        self.check_extras(&record);
        Conformed::Record(out)
    }

    fn warn_once(&self, key: &str, message: &str) {
        if self
            .warned
            .lock()
            .map(|mut w| w.insert(key.to_string()))
            .unwrap_or(false)
        {
            crate::log::warn(&format!(
                "{}: {message} (reported once per field)",
                self.stream
            ));
        }
    }

    fn note_extra(&self, field: &str) {
        if self
            .warned
            .lock()
            .map(|mut w| w.insert(format!("+{field}")))
            .unwrap_or(false)
        {
            crate::log::warn(&format!(
                "{}: Harvest sent a field this tap does not know, {field:?}: it is not emitted (reported once)",
                self.stream
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conformer(stream: &str) -> Conformer {
        Conformer::new(crate::streams::find(stream).unwrap(), None)
    }

    fn conform(stream: &'static str, v: Value) -> Map<String, Value> {
        match conformer(stream).conform(v.as_object().unwrap().clone()) {
            Conformed::Record(r) => r,
            Conformed::Rejected(e) => panic!("rejected: {e}"),
        }
    }

    #[test]
    fn writing_a_record_equals_conforming_it() {
        let samples = [
            (
                "time_entries",
                json!({"id": 1, "hours": "2.5", "spent_date": "2024-01-05T00:00:00Z", "updated_at": "2024-01-05 10:00:00Z",
                "started_time": "3:00pm", "is_locked": "true", "user_id": 7.0, "unknown": [1], "rounded_hours": 2}),
            ),
            (
                "invoice_messages",
                json!({"id": 2, "recipients": [{"name": "A", "email": "a@x", "extra": 1}], "send_reminder_on": "2024-02-30"}),
            ),
            (
                "clients",
                json!({"id": 3, "name": "Ünïcødé ✓", "is_active": true, "created_at": null, "updated_at": "2024-01-01T00:00:00Z"}),
            ),
            (
                "users",
                json!({"id": 4, "roles": ["a"], "weekly_capacity": 126000.0, "cost_rate": 50}),
            ),
        ];
        for (stream, v) in samples {
            let c = conformer(stream);
            let record = v.as_object().unwrap().clone();
            let mut out = Vec::new();
            c.write(&record, &mut out).unwrap();
            let written: Value = serde_json::from_slice(&out).unwrap();
            let Conformed::Record(want) = c.conform(record) else {
                panic!("{stream} rejected")
            };
            assert_eq!(written, Value::Object(want), "{stream}");
        }
        let mut out = b"keep".to_vec();
        let c = conformer("clients");
        assert!(c
            .write(json!({"name": "no key"}).as_object().unwrap(), &mut out)
            .is_err());
        assert_eq!(out, b"keep");
    }

    #[test]
    fn coerces_what_harvest_sends_loosely() {
        let r = conform(
            "invoice_line_items",
            json!({"id": 1.0, "quantity": "1.5", "unit_price": 100, "extra": 1}),
        );
        assert_eq!(r["id"], json!(1));
        assert_eq!(r["quantity"], json!(1.5));
        assert_eq!(r["unit_price"], json!(100));
        assert!(!r.contains_key("extra"));
        assert_eq!(r["description"], Value::Null);
        let r = conform(
            "time_entries",
            json!({"id": 1, "spent_date": "2024-01-05", "updated_at": "2024-01-05T10:00:00Z", "started_time": "3:00pm"}),
        );
        assert_eq!(r["spent_date"], json!("2024-01-05"));
        assert_eq!(r["started_time"], json!("3:00pm"));
    }

    #[test]
    fn rejects_records_without_keys_and_nulls_bad_fields() {
        let c = conformer("clients");
        assert!(matches!(
            c.conform(json!({"name": "x"}).as_object().unwrap().clone()),
            Conformed::Rejected(_)
        ));
        let r = conform("clients", json!({"id": 2, "updated_at": "yesterday"}));
        assert_eq!(r["updated_at"], Value::Null);
    }
}
