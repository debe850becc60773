//! Several Harvest accounts in one run (issue 24): rows that say their account, the state in
//! per-account partitions, and an account the token does not have named as such.

use serde_json::{json, Value};

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
