//! The stream table the ecosystem checks count rows by (`tests/ecosystem/check.py`): where the
//! simulator keeps each stream's ground truth, taken from the tap's own declarations, so that a
//! new stream needs no edit there. `--discover` shows neither a stream's path nor what a
//! derived stream is made of; this test writes them to `stream-table.json` in Cargo's
//! temporary directory for integration tests (`target/tmp/`), where `tests/ecosystem/run`
//! has it written and check.py reads it. Before writing it, the test holds the row counts the
//! table gives (by the rules check.py applies) equal to the independent ground truth of
//! [`expected`], stream by stream.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::util::*;

/// Where the table is written (`target/tmp/stream-table.json`).
pub const TABLE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/stream-table.json");

/// How to count `def`'s rows in the simulator, one of:
/// - `{"resource": R}`: the rows of resource R (`GET /__control/truth/R`);
/// - `{"report": P, "windowed": W}`: the rows of report P (`GET /__control/report/P`), summed
///   over the tap's 365-day windows from the reports' start date when W;
/// - `{"rows_of": R, "consumes": F, "distinct": D, "key_properties": K}`: for each row of
///   resource R, the elements of its field F (a list), or F itself (an object); when D, those
///   of distinct key K only.
fn counting(def: &StreamDef) -> Value {
    let resource = |stream: &str| {
        resource_of(stream)
            .unwrap_or_else(|| panic!("{}: {stream} has no resource of its own", def.name))
    };
    match def.source {
        Source::Single { .. } | Source::List { .. } | Source::Child { .. } => {
            json!({"resource": resource(def.name)})
        }
        Source::Report { path, windowed, .. } => {
            json!({"report": path.trim_start_matches("/reports/"), "windowed": windowed})
        }
        Source::Derived {
            parent,
            consumes,
            distinct,
            ..
        } => json!({"rows_of": resource(parent), "consumes": consumes, "distinct": distinct,
                     "key_properties": def.key_properties}),
    }
}

/// The row count of one stream by its [`counting`] entry, as check.py computes it.
fn count(sim: &Sim, how: &Value) -> usize {
    if let Some(resource) = how["resource"].as_str() {
        return sim.truth(resource).len();
    }
    if let Some(path) = how["report"].as_str() {
        if how["windowed"] == true {
            return report_windows(REPORTS_START)
                .into_iter()
                .map(|(from, to)| sim.report(path, from, to, true).len())
                .sum();
        }
        let today = chrono::Utc::now().date_naive();
        return sim.report(path, today, today, true).len();
    }
    let consumes = how["consumes"].as_str().unwrap();
    let made: Vec<Value> = sim
        .truth(how["rows_of"].as_str().unwrap())
        .iter()
        .flat_map(|row| match &row[consumes] {
            Value::Array(items) => items.clone(),
            item @ Value::Object(_) => vec![item.clone()],
            _ => Vec::new(),
        })
        .collect();
    if how["distinct"] != true {
        return made.len();
    }
    let keys = how["key_properties"].as_array().unwrap();
    made.iter()
        .map(|item| keys.iter().map(|k| item[k.as_str().unwrap()].to_string()))
        .map(|key| key.collect::<Vec<_>>())
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn the_stream_table_counts_every_stream_as_the_ground_truth_does() {
    let h = Harness::tiny();
    let mut table = Map::new();
    for def in nonempty(STREAMS, "streams") {
        let how = counting(def);
        let want = expected(&h.sim, def.name).len();
        assert_checked(want, &format!("{}: rows in the simulator", def.name));
        assert_eq!(count(&h.sim, &how), want, "{}: counted by {how}", def.name);
        let mut how = how;
        // Whether its deletions reach the target (not a report's sums, not the company).
        how["deletions"] = json!(def.reports_deletions());
        table.insert(def.name.to_string(), how);
    }
    let text = serde_json::to_string_pretty(&json!({"streams": table})).unwrap();
    std::fs::write(TABLE, text).unwrap_or_else(|e| panic!("{TABLE}: {e}"));
}
