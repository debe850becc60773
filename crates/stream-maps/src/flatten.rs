//! Schema flattening as the Meltano SDK does it (`flattening_enabled`, `flattening_max_depth`,
//! `flattening_separator`, `flattening_max_key_length`): nested objects become top-level
//! properties named `parent__child` down to the depth asked; what is left nested at that depth,
//! and every array, becomes a JSON string.

use serde_json::{json, Map, Value};

use super::expr::dump;

/// The Meltano SDK's `flattening_separator` default.
pub const DEFAULT_SEPARATOR: &str = "__";
/// The Meltano SDK's `flattening_max_key_length` default.
pub const DEFAULT_MAX_KEY_LENGTH: usize = 255;

/// The flattening settings, when flattening is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Flattening {
    /// `flattening_max_depth`: how many levels of nested objects become top-level properties.
    pub max_level: usize,
    /// `flattening_separator`: what joins a parent's key and its child's.
    pub separator: String,
    /// `flattening_max_key_length`: keys this long or longer are shortened.
    pub max_key_length: usize,
}

impl Default for Flattening {
    fn default() -> Self {
        Flattening {
            max_level: 0,
            separator: DEFAULT_SEPARATOR.into(),
            max_key_length: DEFAULT_MAX_KEY_LENGTH,
        }
    }
}

/// `inflection.camelize`: the first letter and each letter after `_` in upper case, the `_`
/// dropped.
fn camelize(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if i == 0 {
            out.extend(chars[0].to_uppercase());
            i += 1;
        } else if chars[i] == '_' && i + 1 < chars.len() {
            out.extend(chars[i + 1].to_uppercase());
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

impl Flattening {
    /// The key of `key` under `parents`, its parts shortened from the first one (to their
    /// capitals, or their first three letters) while it is too long.
    pub(crate) fn key(&self, key: &str, parents: &[String]) -> String {
        let mut parts: Vec<String> = parents.to_vec();
        parts.push(key.to_string());
        let mut reducer = 0;
        while parts.join(&self.separator).chars().count() >= self.max_key_length
            && reducer < parts.len()
        {
            let reduced: String = camelize(&parts[reducer])
                .chars()
                .filter(|c| !c.is_ascii_lowercase())
                .collect();
            parts[reducer] = if reduced.chars().count() > 1 {
                reduced
            } else {
                parts[reducer].chars().take(3).collect()
            }
            .to_lowercase();
            reducer += 1;
        }
        parts.join(&self.separator)
    }

    /// The flattened schema, or the name of a property two paths would both make.
    pub(crate) fn schema(&self, schema: &Value) -> Result<Value, String> {
        let mut out = schema.clone();
        let mut items = Vec::new();
        self.schema_node(schema, &mut Vec::new(), 0, &mut items);
        let mut props = Map::new();
        for (k, v) in items {
            if props.insert(k.clone(), v).is_some() {
                return Err(format!(
                    "flattening makes two properties named '{k}' (set a different flattening_separator or flattening_max_depth)"
                ));
            }
        }
        out["properties"] = Value::Object(props);
        Ok(out)
    }

    /// Adds the flattened properties of the schema `node`, at `level` under `parents`, to
    /// `items`.
    fn schema_node(
        &self,
        node: &Value,
        parents: &mut Vec<String>,
        level: usize,
        items: &mut Vec<(String, Value)>,
    ) {
        let Some(Value::Object(props)) = node.get("properties") else {
            return;
        };
        for (name, field) in props {
            let key = self.key(name, parents);
            let types: Vec<&str> = match field.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.is_empty() {
                if types.contains(&"object")
                    && field.get("properties").is_some()
                    && level < self.max_level
                {
                    parents.push(name.clone());
                    self.schema_node(field, parents, level + 1, items);
                    parents.pop();
                } else if types.contains(&"array") || types.contains(&"object") {
                    let t = if types.contains(&"null") {
                        json!(["string", "null"])
                    } else {
                        json!("string")
                    };
                    items.push((key, json!({ "type": t })));
                } else {
                    items.push((key, field.clone()));
                }
            } else if let Some(first) = ["anyOf", "oneOf", "allOf"]
                .iter()
                .find_map(|k| field.get(*k).and_then(Value::as_array))
                .and_then(|alts| alts.first())
            {
                // As the SDK does: the first alternative decides.
                let t = first.get("type").and_then(Value::as_str).unwrap_or("");
                let mut s = first.clone();
                match t {
                    "array" | "object" => {
                        items.push((key, json!({"type": ["null", "string"]})));
                    }
                    _ => {
                        if let Some(obj) = s.as_object_mut() {
                            obj.insert("type".into(), json!(["null", t]));
                        }
                        items.push((key, s));
                    }
                }
            } else {
                items.push((key, json!({"type": ["null", "string"]})));
            }
        }
    }

    /// The flattened record, against the flattened schema.
    pub(crate) fn record(
        &self,
        record: Map<String, Value>,
        flat_schema: &Value,
    ) -> Map<String, Value> {
        let props = flat_schema.get("properties").and_then(Value::as_object);
        let mut out = Map::new();
        self.record_node(record, props, &mut Vec::new(), 0, &mut out);
        out
    }

    /// Adds the flattened values of the object `node`, at `level` under `parents`, to `out`.
    fn record_node(
        &self,
        node: Map<String, Value>,
        props: Option<&Map<String, Value>>,
        parents: &mut Vec<String>,
        level: usize,
        out: &mut Map<String, Value>,
    ) {
        for (k, v) in node {
            let key = self.key(&k, parents);
            match v {
                Value::Object(inner)
                    if level < self.max_level && !props.is_some_and(|p| p.contains_key(&key)) =>
                {
                    parents.push(k);
                    self.record_node(inner, props, parents, level + 1, out);
                    parents.pop();
                }
                // A null object whose properties the schema lists flat: they are all null.
                Value::Null
                    if level < self.max_level
                        && props.is_some_and(|p| {
                            !p.contains_key(&key)
                                && p.keys().any(|c| {
                                    c.strip_prefix(key.as_str())
                                        .is_some_and(|r| r.starts_with(&self.separator))
                                })
                        }) => {}
                v @ (Value::Object(_) | Value::Array(_)) => {
                    let mut s = String::new();
                    dump(&v, ",", ":", false, &mut s);
                    out.insert(key, Value::String(s));
                }
                v => {
                    out.insert(key, v);
                }
            }
        }
    }
}
