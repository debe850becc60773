//! Several Harvest accounts in one run (issue 24): rows that say their account, the state in
//! per-account partitions, and an account the token does not have named as such.

use std::collections::BTreeSet;

use harvest_sim::{harvest_account_id, RateLimit, Revocation, SimConfig, Size};
use serde_json::{json, Map, Value};

use crate::util::*;

fn with(config: &Value, extra: Value) -> Value {
    let mut c = config.clone();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn every_account_of_the_token_rows_keys_and_state_say_their_account() {
    let h = Harness::tiny();
    let config = with(&h.config(), json!({"account_id": "*"}));
    let first = h.sync(&config, Some(&no_reports()), None);
    first.assert_ok();
    first.assert_valid_singer();
    assert!(
        first
            .stderr
            .contains("syncing 1 Harvest account: 1234567 ("),
        "{}",
        first.stderr
    );
    let mut checked = 0;
    for stream in api_streams() {
        let message = first.schema(stream);
        assert_eq!(
            message["schema"]["properties"]["account_id"],
            json!({"type": "integer"}),
            "{stream}"
        );
        assert_eq!(
            message["key_properties"][0],
            json!("account_id"),
            "{stream}"
        );
        for r in first.records(stream) {
            assert_eq!(r["account_id"], json!(1234567), "{stream}");
            checked += 1;
        }
    }
    assert_checked(checked, "records carrying account_id");
    assert_count_matches_truth(&first, &h.sim, "clients");
    // The bookmarks are in the account's partition, and the next sync resumes from them.
    let state = first.last_state();
    let parts = &state["bookmarks"]["clients"]["partitions"];
    assert_eq!(parts[0]["context"], json!({"account_id": 1234567}));
    assert!(state["bookmarks"]["clients"].get("updated_at").is_none());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = h.sync(&config, Some(&no_reports()), Some(&state));
    second.assert_ok();
    assert!(
        second.records("clients").is_empty(),
        "nothing changed, nothing sent"
    );
}

#[test]
fn a_single_accounts_state_is_taken_over_and_include_account_id_gives_its_shape() {
    let h = Harness::tiny();
    let single = h.sync(&h.config(), Some(&no_reports()), None);
    single.assert_ok();
    assert!(single.records("clients")[0].get("account_id").is_none());
    let config = with(&h.config(), json!({"include_account_id": true}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let grown = h.sync(&config, Some(&no_reports()), Some(&single.last_state()));
    grown.assert_ok();
    assert!(
        grown.stderr.contains("taken over by account 1234567"),
        "{}",
        grown.stderr
    );
    assert!(
        grown.records("clients").is_empty(),
        "the single account's bookmarks were taken over: nothing re-sent"
    );
    let state = grown.last_state();
    assert_eq!(
        state["bookmarks"]["clients"]["partitions"][0]["context"],
        json!({"account_id": 1234567})
    );
}

#[test]
fn an_account_the_token_does_not_have_is_named_with_the_tokens_accounts() {
    let h = Harness::tiny();
    let config = with(&h.config(), json!({"account_id": ["1234567", "999"]}));
    let run = h.sync(&config, Some(&no_reports()), None);
    assert_eq!(run.code, Some(1));
    let last = run.critical_lines();
    assert_eq!(last.len(), 1, "{}", run.stderr);
    assert!(
        last[0].contains("999 is not one of this token's accounts")
            && last[0].contains("1234567 ("),
        "{}",
        last[0]
    );
    assert!(
        run.messages.is_empty(),
        "nothing on stdout before the accounts are known"
    );
}

/// The tombstones a run sent for `stream`.
fn tombstones_of<'a>(run: &'a Run, stream: &str) -> Vec<&'a Map<String, Value>> {
    run.records(stream)
        .into_iter()
        .filter(|r| r.get("_sdc_deleted_at").is_some_and(|v| !v.is_null()))
        .collect()
}

/// The ids a run sent for `stream` in `account` (tombstones excluded).
fn ids_in(run: &Run, stream: &str, account: i64) -> BTreeSet<i64> {
    run.records(stream)
        .iter()
        .filter(|r| r["account_id"] == json!(account))
        .filter(|r| r.get("_sdc_deleted_at").is_none_or(Value::is_null))
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

fn truth_ids(h: &Harness, account: i64, resource: &str) -> BTreeSet<i64> {
    h.sim
        .account(account)
        .truth(resource)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

#[test]
fn two_accounts_with_overlapping_ids_stay_apart_and_a_revoked_third_fails_alone() {
    let h = Harness::new(SimConfig::fast(Size::Tiny).with_accounts(3));
    let (one, two, three) = (
        harvest_account_id(1),
        harvest_account_id(2),
        harvest_account_id(3),
    );
    h.sim.account(three).revoke(Revocation::Forbidden);
    // A client with nothing tracked to it, which Harvest lets one delete.
    h.sim.account(two).mutate("clients", 0, 1);
    let config = with(&h.config(), json!({"account_id": "*"}));
    let first = h.sync(&config, Some(&no_reports()), None);
    assert_eq!(first.code, Some(1), "a failed account fails the run");
    first.assert_valid_singer();
    let critical = first.critical_lines();
    assert_eq!(critical.len(), 1, "{}", first.stderr);
    assert!(
        critical[0].contains(&format!("account {three}")) && critical[0].contains("1 of 3"),
        "{}",
        critical[0]
    );
    // Each account's rows are its own, and some ids are in both.
    let mut shared = 0;
    let mut compared = 0;
    for stream in [
        "clients",
        "projects",
        "tasks",
        "users",
        "time_entries",
        "invoices",
    ] {
        let resource = resource_of(stream).unwrap();
        let (a, b) = (ids_in(&first, stream, one), ids_in(&first, stream, two));
        assert_eq!(a, truth_ids(&h, one, resource), "{stream} of account {one}");
        assert_eq!(b, truth_ids(&h, two, resource), "{stream} of account {two}");
        assert!(
            ids_in(&first, stream, three).is_empty(),
            "{stream}: the revoked account"
        );
        shared += a.intersection(&b).count();
        compared += a.len() + b.len();
    }
    assert_checked(compared, "rows of both accounts");
    assert_checked(
        shared,
        "ids both accounts have (the account keeps them apart)",
    );
    // Both accounts' bookmarks are kept, the revoked one has none.
    let state = first.last_state();
    let parts = state["bookmarks"]["clients"]["partitions"]
        .as_array()
        .unwrap();
    let accounts: BTreeSet<i64> = parts
        .iter()
        .filter_map(|p| p["context"]["account_id"].as_i64())
        .collect();
    assert_eq!(accounts, BTreeSet::from([one, two]));

    // A client deleted in account two: its tombstone says account two; account one's client
    // of the same id stays.
    h.sim.account(three).restore();
    let gone = h.sim.account(two).deletable("clients", 1);
    assert_eq!(gone.len(), 1, "a client account two may delete");
    h.sim.account(two).delete("clients", &gone);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = h.sync(&config, Some(&no_reports()), Some(&state));
    second.assert_ok();
    let tombstones = tombstones_of(&second, "clients");
    assert_eq!(tombstones.len(), 1, "one client deleted");
    assert_eq!(tombstones[0]["account_id"], json!(two));
    assert_eq!(tombstones[0]["id"], json!(gone[0]));
    // The restored account is read from its start; the others resume.
    assert_eq!(
        ids_in(&second, "clients", three),
        truth_ids(&h, three, "clients")
    );
    assert!(
        ids_in(&second, "clients", one).is_empty(),
        "account one resumed at its bookmark"
    );
}

#[test]
fn a_run_of_several_accounts_stopped_by_sigterm_resumes_every_account() {
    let h = Harness::new(SimConfig::fast(Size::Small).with_accounts(2));
    let (one, two) = (harvest_account_id(1), harvest_account_id(2));
    h.sim.set_latency(
        std::time::Duration::from_millis(5),
        std::time::Duration::from_millis(5),
        None,
    );
    let config = with(
        &h.config(),
        json!({"account_id": [one.to_string(), two.to_string()]}),
    );
    let stopped = interrupted(
        &h,
        &config,
        None,
        "TERM",
        std::time::Duration::from_millis(700),
    );
    assert_eq!(stopped.code, Some(1), "{}", stopped.stderr);
    stopped.assert_valid_singer();
    let state = stopped.last_state();
    let resumed: BTreeSet<i64> = state["bookmarks"]
        .as_object()
        .into_iter()
        .flat_map(|all| all.values())
        .filter_map(|e| e["partitions"].as_array())
        .flatten()
        .filter_map(|p| p["context"]["account_id"].as_i64())
        .collect();
    assert!(
        !resumed.is_empty(),
        "the stopped run's STATE has no account's bookmark: {state}"
    );
    h.sim.clear_latency();
    let rest = h.sync(&config, Some(&no_reports()), Some(&state));
    rest.assert_ok();
    let (mut checked, mut resent) = (0, 0);
    for account in [one, two] {
        for stream in [
            "clients",
            "contacts",
            "projects",
            "time_entries",
            "invoices",
        ] {
            let resource = resource_of(stream).unwrap();
            let mut got = ids_in(&stopped, stream, account);
            resent += ids_in(&rest, stream, account).len();
            got.extend(ids_in(&rest, stream, account));
            assert_eq!(
                got,
                truth_ids(&h, account, resource),
                "{stream} of account {account}: the two runs together"
            );
            checked += got.len();
        }
    }
    assert_checked(checked, "rows of both accounts over the two runs");
    assert!(
        resent < checked,
        "the second run sent every row again ({resent} of {checked}): nothing was resumed"
    );
}

#[test]
fn the_accounts_of_a_token_share_its_budget_and_get_no_429() {
    // Harvest's limit counted per token, as the simulator counts it: 40 requests a second.
    let h = Harness::new(SimConfig {
        rate_limit: Some(RateLimit::new(40, std::time::Duration::from_secs(1))),
        ..SimConfig::fast(Size::Tiny).with_accounts(2)
    });
    let config = with(
        &h.config(),
        json!({"account_id": "*", "rate_limit_requests": 40, "rate_limit_window_seconds": 1}),
    );
    let run = h.sync(&config, Some(&no_reports()), None);
    run.assert_ok();
    let stats = h.sim.requests();
    assert!(
        stats.total > 60,
        "{} requests: fewer than the budget allows in the run, the check proves nothing",
        stats.total
    );
    assert_eq!(
        stats.throttled, 0,
        "a 429 with one budget for both accounts"
    );
    for k in [1, 2] {
        let account = harvest_account_id(k);
        assert_eq!(
            ids_in(&run, "clients", account),
            truth_ids(&h, account, "clients"),
            "account {account}"
        );
    }
}

#[test]
fn stream_maps_keep_the_account_on_records_and_tombstones() {
    let h = Harness::tiny();
    h.sim.mutate("clients", 0, 1);
    let config = with(
        &h.config(),
        json!({"include_account_id": true,
               "stream_maps": {"clients": {"account_id": "'not the account'", "code": "name"}}}),
    );
    let first = h.sync(&config, Some(&no_reports()), None);
    first.assert_ok();
    first.assert_valid_singer();
    let clients = first.records("clients");
    assert_checked(clients.len(), "mapped clients");
    for r in &clients {
        assert_eq!(
            r["account_id"],
            json!(1234567),
            "the map's account_id does not win"
        );
        assert!(r.get("code").is_some());
    }
    let gone = h.sim.deletable("clients", 1);
    assert_eq!(gone.len(), 1);
    h.sim.delete("clients", &gone);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = h.sync(&config, Some(&no_reports()), Some(&first.last_state()));
    second.assert_ok();
    let tombstones = tombstones_of(&second, "clients");
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0]["account_id"], json!(1234567));
    assert_eq!(tombstones[0]["id"], json!(gone[0]));
}
