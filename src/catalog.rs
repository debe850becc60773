//! The catalog: discovery (static, no API call) and the selection read from an input catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::streams::{self, StreamDef};

/// The catalog entry of one stream, as `--discover` prints it.
pub fn entry(def: &StreamDef) -> Result<Value> {
    let replication = def
        .replication()
        .map_err(|e| anyhow!("stream {}: {e}", def.name))?;
    let replication_key = replication.key;
    let method = replication.method();
    let schema = def.schema();
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let automatic: BTreeSet<&str> = def.automatic_columns().collect();
    let mut root = Map::new();
    root.insert("inclusion".into(), json!("available"));
    root.insert("selected-by-default".into(), json!(true));
    root.insert("table-key-properties".into(), json!(def.key_properties));
    root.insert(
        "valid-replication-keys".into(),
        json!(replication_key.into_iter().collect::<Vec<_>>()),
    );
    root.insert("forced-replication-method".into(), json!(method));
    if let Some(rk) = replication_key {
        root.insert("replication-key".into(), json!(rk));
    }
    if let Some(parent) = def.parent() {
        root.insert("parent-tap-stream-id".into(), json!(parent));
    }
    let mut metadata = vec![json!({"breadcrumb": [], "metadata": root})];
    for name in props.keys() {
        let inclusion = if automatic.contains(name.as_str()) {
            "automatic"
        } else {
            "available"
        };
        metadata.push(json!({"breadcrumb": ["properties", name], "metadata": {"inclusion": inclusion, "selected-by-default": true}}));
    }
    let mut e = Map::new();
    e.insert("tap_stream_id".into(), json!(def.name));
    e.insert("stream".into(), json!(def.name));
    e.insert("key_properties".into(), json!(def.key_properties));
    e.insert("replication_method".into(), json!(method));
    if let Some(rk) = replication_key {
        e.insert("replication_key".into(), json!(rk));
    }
    e.insert("schema".into(), schema.clone());
    e.insert("metadata".into(), Value::Array(metadata));
    Ok(Value::Object(e))
}

/// The whole catalog, streams sorted by name.
pub fn discover() -> Result<Value> {
    let mut defs: Vec<&StreamDef> = streams::STREAMS.iter().collect();
    defs.sort_by_key(|d| d.name);
    let entries = defs.into_iter().map(entry).collect::<Result<Vec<_>>>()?;
    Ok(json!({"streams": entries}))
}

/// The catalog of a sync whose rows say their account: every stream's schema, keys and
/// metadata with `account_id`, an integer, first of the keys and always selected.
pub fn with_account_column(catalog: &mut Value) {
    let column = streams::ACCOUNT_ID;
    for stream in catalog["streams"].as_array_mut().into_iter().flatten() {
        if let Some(props) = stream["schema"]["properties"].as_object_mut() {
            if let Some(own) = props.remove(column) {
                props.insert(streams::OWN_ACCOUNT_ID.into(), own);
            }
            props.insert(column.into(), json!({"type": "integer"}));
        }
        if let Some(keys) = stream["key_properties"].as_array_mut() {
            keys.insert(0, json!(column));
        }
        if let Some(metadata) = stream["metadata"].as_array_mut() {
            for m in metadata.iter_mut() {
                if m["breadcrumb"] == json!(["properties", column]) {
                    m["breadcrumb"] = json!(["properties", streams::OWN_ACCOUNT_ID]);
                }
                if m["breadcrumb"] == json!([]) {
                    if let Some(keys) = m["metadata"]["table-key-properties"].as_array_mut() {
                        keys.insert(0, json!(column));
                    }
                }
            }
            metadata.push(json!({"breadcrumb": ["properties", column],
                "metadata": {"inclusion": "automatic", "selected-by-default": true}}));
        }
    }
}

/// What the input catalog asks for: the selected streams and, for each, the properties to emit
/// (`None`: all of them).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub streams: BTreeMap<&'static str, Option<BTreeSet<String>>>,
    /// Incremental streams the catalog asks to read as `FULL_TABLE` (`replication-method`):
    /// read in full from `start_date` every sync, with no bookmark.
    pub full_table: BTreeSet<&'static str>,
}

impl Selection {
    /// No catalog: every stream, every property.
    pub fn all() -> Selection {
        Selection {
            streams: streams::STREAMS.iter().map(|s| (s.name, None)).collect(),
            full_table: BTreeSet::new(),
        }
    }

    /// Whether the catalog asks for `stream` to be read as `FULL_TABLE`.
    pub fn is_full_table(&self, stream: &str) -> bool {
        self.full_table.contains(stream)
    }

    pub fn is_selected(&self, stream: &str) -> bool {
        self.streams.contains_key(stream)
    }

    pub fn properties(&self, stream: &str) -> Option<&BTreeSet<String>> {
        self.streams.get(stream).and_then(Option::as_ref)
    }

    pub fn load(path: &Path) -> Result<Selection> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read catalog file {}: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("catalog file {} is not valid JSON: {e}", path.display()))?;
        Selection::from_value(&value).map_err(|e| anyhow!("catalog file {}: {e}", path.display()))
    }

    pub fn from_value(value: &Value) -> Result<Selection> {
        let Some(entries) = value.get("streams").and_then(Value::as_array) else {
            bail!("a catalog must be an object with a 'streams' array");
        };
        let mut selection = Selection::default();
        for (i, e) in entries.iter().enumerate() {
            let Some(e) = e.as_object() else {
                bail!("streams[{i}] must be an object");
            };
            let name = e
                .get("tap_stream_id")
                .or_else(|| e.get("stream"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("streams[{i}] has no 'tap_stream_id'"))?;
            let def = streams::find(name).ok_or_else(|| {
                anyhow!("unknown stream {name:?} (see --discover for the stream names)")
            })?;
            let metadata = parse_metadata(name, e.get("metadata"))?;
            let root = metadata.get(&Vec::new());
            let selected = root
                .and_then(|m| flag(m.get("selected")))
                .or_else(|| e.get("schema").and_then(|s| flag(s.get("selected"))))
                .or_else(|| flag(e.get("selected")))
                .or_else(|| root.and_then(|m| flag(m.get("selected-by-default"))))
                .unwrap_or(false);
            if !selected {
                continue;
            }
            replication_asked(def, root, e, &mut selection)?;
            let known = def.schema()["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let automatic: BTreeSet<&str> = def.automatic_columns().collect();
            let mut props = BTreeSet::new();
            for prop in known.keys() {
                let md = metadata.get(&vec!["properties".to_string(), prop.clone()]);
                let schema_flag = e
                    .get("schema")
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get(prop))
                    .and_then(|p| flag(p.get("selected")));
                let on = md
                    .and_then(|m| flag(m.get("selected")))
                    .or(schema_flag)
                    .or_else(|| md.and_then(|m| flag(m.get("selected-by-default"))))
                    .unwrap_or(true);
                let excluded = md.and_then(|m| m.get("inclusion")).and_then(Value::as_str)
                    == Some("unsupported");
                if automatic.contains(prop.as_str()) || (on && !excluded) {
                    props.insert(prop.clone());
                }
            }
            for crumb in metadata.keys() {
                if let [p, prop] = crumb.as_slice() {
                    if p == "properties" && !known.contains_key(prop) && prop != streams::ACCOUNT_ID
                    {
                        // A catalog made by another tap (singer-io's has columns this one
                        // does not): the property is ignored, once, with a word.
                        crate::log::warn(&format!(
                            "catalog: stream {name:?} has no property {prop:?}; ignored (see --discover for its properties)"
                        ));
                    }
                }
            }
            let all = props.len() == known.len();
            selection
                .streams
                .insert(def.name, if all { None } else { Some(props) });
        }
        Ok(selection)
    }
}

/// What the catalog's stream metadata asks of replication: `replication-method` (top-level
/// `replication_method` too) and `replication-key`. `FULL_TABLE` for an incremental stream is
/// honoured; `INCREMENTAL` for a stream that has no replication key, or a replication key
/// the stream does not offer, is warned about and the stream's own is used.
fn replication_asked(
    def: &'static StreamDef,
    root: Option<&Map<String, Value>>,
    entry: &Map<String, Value>,
    selection: &mut Selection,
) -> Result<()> {
    let name = def.name;
    let replication = def
        .replication()
        .map_err(|e| anyhow!("stream {name}: {e}"))?;
    let ours = replication.method();
    let asked = root
        .and_then(|m| m.get("replication-method"))
        .or_else(|| entry.get("replication_method"))
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    match asked.as_deref() {
        None => {}
        Some(m) if m == ours => {}
        Some("FULL_TABLE") => {
            selection.full_table.insert(name);
        }
        Some("INCREMENTAL") => crate::log::warn(&format!(
            "catalog: stream {name:?} has no replication key, so it is read FULL_TABLE, not INCREMENTAL"
        )),
        Some("LOG_BASED") | Some(_) => bail!(
            "stream {name:?}: replication-method {:?} is not supported (use INCREMENTAL or FULL_TABLE)",
            asked.unwrap_or_default()
        ),
    }
    let key = root
        .and_then(|m| m.get("replication-key"))
        .or_else(|| entry.get("replication_key"))
        .and_then(Value::as_str);
    if let Some(k) = key {
        if replication.key != Some(k) && !selection.full_table.contains(name) {
            crate::log::warn(&format!(
                "catalog: stream {name:?} does not offer replication key {k:?}; its own ({}) is used",
                replication.key.unwrap_or("none: it is read in full")
            ));
        }
    }
    Ok(())
}

/// A selection flag: a boolean or the strings "true" / "false".
fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn parse_metadata(
    stream: &str,
    v: Option<&Value>,
) -> Result<BTreeMap<Vec<String>, Map<String, Value>>> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    let Some(items) = v.as_array() else {
        bail!("stream {stream:?}: 'metadata' must be an array");
    };
    for item in items {
        let crumb = item
            .get("breadcrumb")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                anyhow!("stream {stream:?}: a metadata entry has no 'breadcrumb' array")
            })?;
        let crumb: Vec<String> = crumb
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("stream {stream:?}: a breadcrumb holds a non-string"))?;
        let md = item
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                anyhow!("stream {stream:?}: a metadata entry has no 'metadata' object")
            })?;
        out.insert(crumb, md.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_with(name: &str, root: Value, props: Vec<(&str, Value)>) -> Value {
        let mut md = vec![json!({"breadcrumb": [], "metadata": root})];
        for (p, m) in props {
            md.push(json!({"breadcrumb": ["properties", p], "metadata": m}));
        }
        json!({"streams": [{"tap_stream_id": name, "stream": name, "schema": {}, "metadata": md}]})
    }

    #[test]
    fn discovered_catalog_selects_everything() {
        let s = Selection::from_value(&discover().unwrap()).unwrap();
        assert_eq!(s.streams.len(), streams::STREAMS.len());
        assert!(s.streams.values().all(Option::is_none));
    }

    #[test]
    fn selection_forms() {
        let s = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected": "true"}),
            vec![
                ("name", json!({"selected": false})),
                ("id", json!({"selected": false})),
            ],
        ))
        .unwrap();
        let props = s.properties("clients").unwrap();
        assert!(props.contains("id") && props.contains("updated_at") && !props.contains("name"));
        let s = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected": "false"}),
            vec![],
        ))
        .unwrap();
        assert!(!s.is_selected("clients"));
        let legacy = json!({"streams": [{"tap_stream_id": "tasks", "schema": {"selected": true}}]});
        assert!(Selection::from_value(&legacy).unwrap().is_selected("tasks"));
        let top = json!({"streams": [{"tap_stream_id": "tasks", "selected": true, "schema": {}}]});
        assert!(Selection::from_value(&top).unwrap().is_selected("tasks"));
        let none = json!({"streams": [{"tap_stream_id": "tasks", "schema": {}}]});
        assert!(!Selection::from_value(&none).unwrap().is_selected("tasks"));
    }

    #[test]
    fn bad_catalogs_are_named() {
        assert!(
            Selection::from_value(&json!({"streams": [{"tap_stream_id": "nope"}]}))
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
        assert!(Selection::from_value(&json!([])).is_err());
        // A property the stream does not have (a singer-io catalog's) is ignored.
        let s = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected": true}),
            vec![("bogus", json!({"selected": true}))],
        ))
        .unwrap();
        assert!(s.is_selected("clients") && s.properties("clients").is_none());
        let e = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected": true, "replication-method": "LOG_BASED"}),
            vec![],
        ))
        .unwrap_err();
        assert!(e.to_string().contains("LOG_BASED"), "{e}");
    }

    #[test]
    fn full_table_is_honoured_for_incremental_streams() {
        let s = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected": true, "replication-method": "FULL_TABLE"}),
            vec![],
        ))
        .unwrap();
        assert!(s.is_full_table("clients"));
        let s = Selection::from_value(&catalog_with(
            "company",
            json!({"selected": true, "replication-method": "FULL_TABLE"}),
            vec![],
        ))
        .unwrap();
        assert!(!s.is_full_table("company"), "already full table");
        // selected-by-default stands in for an absent `selected`.
        let s = Selection::from_value(&catalog_with(
            "clients",
            json!({"selected-by-default": true, "replication-key": "created_at"}),
            vec![("address", json!({"selected-by-default": false}))],
        ))
        .unwrap();
        assert!(s.is_selected("clients") && !s.properties("clients").unwrap().contains("address"));
        assert!(!s.is_full_table("clients"));
    }
}
