//! Stream maps and flattening through the real binary against the simulator: what a target
//! receives (names, schemas, keys, records, deletions), and that a dropped stream costs no
//! request.

use std::collections::BTreeSet;

use md5::Digest;
use serde_json::{json, Value};

use crate::util::*;

fn md5_hex(s: &str) -> String {
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small account with clients one may delete (nothing tracked to them).
fn account() -> Harness {
    let h = Harness::tiny();
    h.sim.mutate("clients", 0, 2);
    // One archived client, for the filter to drop.
    let first = h.sim.truth("clients")[0]["id"].as_i64().unwrap();
    h.sim.archive("clients", &[first]);
    h
}

#[test]
fn stream_maps_rename_hash_filter_drop_and_carry_deletions() {
    let h = account();
    let mut config = h.config();
    config["stream_maps"] = json!({
        "clients": {"__alias__": "customers", "name": null,
                    "name_hash": "md5(config['seed'] + name)", "__filter__": "is_active"},
        "users": {"__else__": null, "email_domain": "email.split('@')[-1]"},
        "__else__": null,
    });
    config["stream_map_config"] = json!({"seed": "pepper-"});
    let first = h.sync(&config, None, None);
    first.assert_ok();
    first.assert_valid_singer();
    assert_eq!(
        first.streams_with_records(),
        BTreeSet::from(["customers".to_string(), "users".to_string()])
    );
    // The streams `__else__: null` drops are not read at all.
    let stats = h.sim.requests();
    for route in [
        "GET /v2/time_entries",
        "GET /v2/invoices",
        "GET /v2/projects",
    ] {
        assert_eq!(stats.route(route), 0, "{route} was requested");
    }

    let schema = first.schema("customers");
    assert_eq!(schema["key_properties"], json!(["id"]));
    let props = schema["schema"]["properties"].as_object().unwrap();
    assert!(
        !props.contains_key("name"),
        "a removed property leaves the schema"
    );
    assert_eq!(props["name_hash"], json!({"type": ["string", "null"]}));
    assert!(props.contains_key("_sdc_deleted_at"));

    let truth = expected(&h.sim, "clients");
    let active: Vec<_> = truth.values().filter(|c| c["is_active"] == true).collect();
    let customers = first.records("customers");
    assert_eq!(customers.len(), active.len());
    assert!(active.len() < truth.len(), "the filter drops something");
    for c in nonempty(&customers, "customers") {
        let raw = &truth[&c["id"].to_string()];
        assert!(!c.contains_key("name"), "{c:?}");
        assert_eq!(
            c["name_hash"],
            json!(md5_hex(&format!(
                "pepper-{}",
                raw["name"].as_str().unwrap()
            )))
        );
    }
    for u in nonempty(&first.records("users"), "users") {
        let keys: Vec<&String> = u.keys().collect();
        assert_eq!(keys, ["id", "email_domain"], "{u:?}");
        assert!(!u["email_domain"].as_str().unwrap().contains('@'));
    }
    // Bookmarks stay under the stream read: the state is the tap's.
    let state = first.last_state();
    assert!(state["bookmarks"]["clients"]["updated_at"].is_string());
    assert!(state["bookmarks"].get("customers").is_none());

    // A client deleted in Harvest reaches `customers`: its key and `_sdc_deleted_at`.
    let gone = h.sim.deletable("clients", 1);
    h.sim.delete("clients", &gone);
    let second = h.sync(&config, None, Some(&state));
    second.assert_ok();
    second.assert_valid_singer();
    let deleted: Vec<_> = second
        .records("customers")
        .into_iter()
        .filter(|r| r.get("_sdc_deleted_at").is_some_and(|d| !d.is_null()))
        .collect();
    assert_eq!(deleted.len(), 1, "{:?}", second.records("customers"));
    assert_eq!(deleted[0]["id"], json!(gone[0]));
    assert!(second.records("clients").is_empty());
}

#[test]
fn a_stream_is_split_keyed_anew_and_flattened() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["stream_maps"] = json!({
        "users": {"__key_properties__": ["user_key"], "user_key": "md5(str(id))"},
        "users_emails": {"__source__": "users", "__else__": null, "email": "email.lower()"},
        "report_*": null,
    });
    config["flattening_enabled"] = json!(true);
    config["flattening_max_depth"] = json!(1);
    config["stream_maps"]["company"] = json!({"__alias__": "harvest_company"});
    config["emit_activate_version_messages"] = json!(true);
    let run = h.sync(&config, None, None);
    run.assert_ok();
    run.assert_valid_singer();
    // ACTIVATE_VERSION goes to every stream sent, under the name it is sent as.
    let named = |kind: &str| -> BTreeSet<String> {
        run.messages
            .iter()
            .filter(|m| m["type"] == kind)
            .map(|m| m["stream"].as_str().unwrap().to_string())
            .collect()
    };
    let activated = named("ACTIVATE_VERSION");
    assert!(activated.is_subset(&named("SCHEMA")), "{activated:?}");
    for s in ["users", "users_emails", "harvest_company"] {
        assert!(
            activated.contains(s),
            "no ACTIVATE_VERSION for {s}: {activated:?}"
        );
    }
    let names = run.streams_with_records();
    assert!(names.contains("users") && names.contains("users_emails"));
    assert!(!names.iter().any(|n| n.starts_with("report_")), "{names:?}");
    assert_eq!(h.sim.requests().route("GET /v2/reports/time/clients"), 0);

    let users = run.schema("users");
    assert_eq!(users["key_properties"], json!(["user_key"]));
    // Flattened: arrays become JSON strings, in the schema and in the records.
    assert_eq!(
        users["schema"]["properties"]["roles"]["type"],
        json!(["string", "null"])
    );
    let truth = expected(&h.sim, "users");
    let records = run.records("users");
    assert_eq!(records.len(), truth.len());
    for u in nonempty(&records, "users") {
        assert_eq!(u["user_key"], json!(md5_hex(&u["id"].to_string())));
        let roles: Value = serde_json::from_str(u["roles"].as_str().unwrap()).unwrap();
        assert_eq!(roles, truth[&u["id"].to_string()]["roles"]);
    }
    let emails = run.records("users_emails");
    assert_eq!(emails.len(), truth.len());
    assert_eq!(run.schema("users_emails")["key_properties"], json!(["id"]));
    for e in emails {
        assert_eq!(e.keys().collect::<Vec<_>>(), ["id", "email"]);
    }
}

#[test]
fn test_schema_shows_the_mapped_schemas_and_a_bad_map_stops_before_any_request() {
    let h = Harness::tiny();
    let mut config = h.config();
    config["stream_maps"] =
        json!({"clients": {"__alias__": "customers", "name": null}, "__else__": null});
    let path = h.write("config.json", &config);
    let run = run_tap(&[
        "--config".as_ref(),
        path.as_os_str(),
        "--test=schema".as_ref(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let streams: Vec<&str> = run
        .messages
        .iter()
        .map(|m| m["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["customers"]);
    assert!(run.messages[0]["schema"]["properties"]
        .get("name")
        .is_none());

    // A map naming a property the stream lacks: one line, before any request.
    config["stream_maps"] = json!({"clients": {"h": "md5(nmae)"}});
    h.sim.reset_requests();
    let run = h.sync(&config, None, None);
    assert_ne!(run.code, Some(0));
    let critical = run.critical_lines();
    assert_eq!(critical.len(), 1, "{}", run.stderr);
    assert!(
        critical[0].contains("stream_maps.clients.h: 'nmae' is not a property of stream 'clients' (or not selected in the catalog) (did you mean 'name'?)"),
        "{}",
        critical[0]
    );
    assert!(run.messages.is_empty());
    assert_eq!(h.sim.requests().total, 0);
}
