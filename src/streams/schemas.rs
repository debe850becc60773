//! The streams' JSON Schemas, embedded from `schemas/` at build time (see `build.rs`): adding a
//! stream's schema is adding a file.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/schemas.rs"));

/// The parsed schema of a stream. Panics only if the binary was built with a broken schema
/// file or a stream without one, which the unit tests rule out.
pub fn schema(stream: &str) -> &'static Value {
    static PARSED: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        SCHEMA_FILES
            .iter()
            .map(|(name, text)| {
                let mut schema: Value =
                    serde_json::from_str(text).expect("embedded schema is JSON");
                // A stream that reports deletions declares the tombstone's column.
                if super::find(name).is_some_and(|d| d.reports_deletions()) {
                    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut)
                    {
                        props.insert(
                            super::DELETED_AT.to_string(),
                            serde_json::json!({"type": ["null", "string"], "format": "date-time"}),
                        );
                    }
                }
                (*name, schema)
            })
            .collect()
    });
    all.get(stream)
        .unwrap_or_else(|| panic!("no schema embedded for stream {stream}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_a_schema_and_every_schema_a_stream() {
        let files: Vec<&str> = SCHEMA_FILES.iter().map(|(n, _)| *n).collect();
        for s in super::super::STREAMS {
            assert!(files.contains(&s.name), "no schemas/{}.json", s.name);
            assert!(schema(s.name)["properties"].is_object());
        }
        for f in files {
            assert!(
                super::super::find(f).is_some(),
                "schemas/{f}.json has no stream"
            );
        }
    }
}
