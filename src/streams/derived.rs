//! Derived tables: pure functions from one parent record (as Harvest serves it, before shaping)
//! to the rows of the derived stream. The rules are the singer-io tap's, so warehouses built
//! with it keep working.

use serde_json::{json, Map, Value};

use super::shape::nested_id;

type Row = Map<String, Value>;

fn items<'a>(record: &'a Row, field: &str) -> impl Iterator<Item = Row> + 'a {
    record
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_object().cloned())
}

/// `invoice.line_items[]`, each with `invoice_id` and `project_id`.
pub fn invoice_line_items(invoice: &Row) -> Vec<Row> {
    let invoice_id = invoice.get("id").cloned().unwrap_or(Value::Null);
    items(invoice, "line_items")
        .map(|mut item| {
            let project_id = nested_id(&item, "project");
            item.remove("project");
            item.insert("invoice_id".into(), invoice_id.clone());
            item.insert("project_id".into(), project_id);
            item
        })
        .collect()
}

/// `estimate.line_items[]`, each with `estimate_id`.
pub fn estimate_line_items(estimate: &Row) -> Vec<Row> {
    let estimate_id = estimate.get("id").cloned().unwrap_or(Value::Null);
    items(estimate, "line_items")
        .map(|mut item| {
            item.insert("estimate_id".into(), estimate_id.clone());
            item
        })
        .collect()
}

/// One `{role_id, user_id}` row per id in `role.user_ids`.
pub fn user_roles(role: &Row) -> Vec<Row> {
    let role_id = role.get("id").cloned().unwrap_or(Value::Null);
    role.get("user_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|id| !id.is_null())
        .map(|user_id| row(json!({"role_id": role_id, "user_id": user_id})))
        .collect()
}

/// The time entry's external reference, when it has one.
pub fn external_reference(entry: &Row) -> Vec<Row> {
    match entry.get("external_reference") {
        Some(Value::Object(reference)) if has_id(reference) => vec![reference.clone()],
        _ => Vec::new(),
    }
}

/// The pivot `{time_entry_id, external_reference_id}`, when the entry has a reference.
pub fn time_entry_external_reference(entry: &Row) -> Vec<Row> {
    match entry.get("external_reference") {
        Some(Value::Object(reference)) if has_id(reference) => vec![row(json!({
            "time_entry_id": entry.get("id").cloned().unwrap_or(Value::Null),
            "external_reference_id": reference["id"],
        }))],
        _ => Vec::new(),
    }
}

/// One row per task assignment nested in a user's project assignment. `project_task_id` is the
/// task assignment's id (it joins `project_tasks.id`); `user_id` is the user the assignment was
/// read for, which the engine puts on every child record before deriving from it.
pub fn user_project_tasks(assignment: &Row) -> Vec<Row> {
    let user_id = assignment.get("user_id").cloned().unwrap_or(Value::Null);
    let project_id = match assignment.get("project_id") {
        Some(v) => v.clone(),
        None => nested_id(assignment, "project"),
    };
    items(assignment, "task_assignments")
        .map(|ta| {
            let mut out = row(json!({
                "user_id": user_id,
                "project_task_id": ta.get("id").cloned().unwrap_or(Value::Null),
                "project_id": project_id,
                "task_id": nested_id(&ta, "task"),
            }));
            for field in [
                "billable",
                "is_active",
                "hourly_rate",
                "budget",
                "created_at",
                "updated_at",
            ] {
                out.insert(field.into(), ta.get(field).cloned().unwrap_or(Value::Null));
            }
            out
        })
        .collect()
}

fn has_id(obj: &Row) -> bool {
    obj.get("id").is_some_and(|id| !id.is_null())
}

fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn line_items_carry_parent_and_project() {
        let rows = invoice_line_items(&obj(json!({"id": 5, "line_items": [
            {"id": 1, "quantity": 1.5, "project": {"id": 9, "name": "x"}},
            {"id": 2, "quantity": 2, "project": null}]})));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["invoice_id"], json!(5));
        assert_eq!(rows[0]["project_id"], json!(9));
        assert_eq!(rows[0]["quantity"], json!(1.5));
        assert_eq!(rows[1]["project_id"], Value::Null);
        assert!(!rows[0].contains_key("project"));
        assert_eq!(
            estimate_line_items(&obj(json!({"id": 3, "line_items": [{"id": 4}]})))[0]
                ["estimate_id"],
            json!(3)
        );
    }

    #[test]
    fn roles_pivot_and_references() {
        let rows = user_roles(&obj(json!({"id": 7, "user_ids": [1, 2]})));
        assert_eq!(
            rows,
            vec![
                obj(json!({"role_id": 7, "user_id": 1})),
                obj(json!({"role_id": 7, "user_id": 2}))
            ]
        );
        assert!(user_roles(&obj(json!({"id": 7, "user_ids": []}))).is_empty());
        let entry = obj(json!({"id": 11, "external_reference": {"id": "ext-1", "group_id": "g"}}));
        assert_eq!(external_reference(&entry)[0]["id"], json!("ext-1"));
        assert_eq!(
            time_entry_external_reference(&entry),
            vec![obj(
                json!({"time_entry_id": 11, "external_reference_id": "ext-1"})
            )]
        );
        assert!(external_reference(&obj(json!({"id": 1, "external_reference": null}))).is_empty());
    }

    #[test]
    fn project_tasks_per_nested_assignment() {
        let rows = user_project_tasks(&obj(json!({"id": 1, "user_id": 8, "project_id": 3,
            "task_assignments": [{"id": 21, "task": {"id": 4}, "billable": true, "updated_at": "2024-01-01T00:00:00Z"}]})));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["user_id"], json!(8));
        assert_eq!(rows[0]["project_task_id"], json!(21));
        assert_eq!(rows[0]["task_id"], json!(4));
        assert_eq!(rows[0]["project_id"], json!(3));
    }
}
