//! Record shaping: from Harvest's JSON object to the flat row the stream's schema describes.

use serde_json::{Map, Value};

use super::StreamDef;

/// Reduces nested references to `<key>_id` and flattens the declared objects into prefixed
/// columns, as the stream declares. (A child's parent id is put on the record when it is read,
/// before its derived rows are made from it.) Fields the schema does not know are left for
/// [`crate::conform::Conformer`] to drop.
pub fn shape(def: &StreamDef, mut record: Map<String, Value>) -> Map<String, Value> {
    for (field, column) in def.refs {
        let id = match record.remove(*field) {
            Some(Value::Object(mut obj)) => obj.remove("id").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        record.insert((*column).to_string(), id);
    }
    for (field, prefix) in def.flatten {
        if let Some(Value::Object(obj)) = record.remove(*field) {
            for (k, v) in obj {
                record.insert(format!("{prefix}{k}"), v);
            }
        }
    }
    record
}

/// The `id` of a nested object (`record[field].id`), or null.
pub fn nested_id(record: &Map<String, Value>, field: &str) -> Value {
    record
        .get(field)
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn refs_become_ids_and_objects_flatten() {
        let def = crate::streams::find("expenses").unwrap();
        let out = shape(
            def,
            obj(
                json!({"id": 1, "client": {"id": 7, "name": "Globex"}, "invoice": null,
                       "receipt": {"url": "u", "file_size": 3}}),
            ),
        );
        assert_eq!(out["client_id"], json!(7));
        assert_eq!(out["invoice_id"], Value::Null);
        assert_eq!(out["project_id"], Value::Null);
        assert_eq!(out["receipt_url"], json!("u"));
        assert_eq!(out["receipt_file_size"], json!(3));
        assert!(!out.contains_key("client") && !out.contains_key("receipt"));
    }

    #[test]
    fn nested_objects_of_children_flatten() {
        let def = crate::streams::find("invoice_payments").unwrap();
        let out = shape(
            def,
            obj(
                json!({"id": 2, "invoice_id": 99, "payment_gateway": {"id": null, "name": "Stripe"}}),
            ),
        );
        assert_eq!(out["invoice_id"], json!(99));
        assert_eq!(out["payment_gateway_name"], json!("Stripe"));
        assert_eq!(out["payment_gateway_id"], Value::Null);
    }
}
