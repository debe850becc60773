//! Stream maps and flattening against the Meltano SDK's own expectations: the cases of its
//! `tests/core/test_mapper.py` (the `mystream` stream and its snapshots, the `repositories`
//! transform, filter, clone and wildcard cases), with the SCHEMA properties, keys and RECORDs
//! the SDK emits for them, written out here.

// The SDK's sample numbers, not constants.
#![allow(clippy::approx_constant)]

use serde_json::{json, Map, Value};

use crate::expr::{self, Env};
use crate::{Mapped, Maps};

fn mystream_schema() -> Value {
    json!({"type": "object", "required": ["email"], "properties": {
        "email": {"type": ["string"]},
        "count": {"type": ["integer", "null"]},
        "user": {"type": ["object", "null"], "additionalProperties": true, "properties": {
            "id": {"type": ["integer", "null"]},
            "sub": {"type": ["object", "null"], "additionalProperties": true, "properties": {
                "num": {"type": ["integer", "null"]},
                "custom_obj": {"type": ["string", "null"]},
            }},
            "some_numbers": {"type": ["array", "null"], "items": {"type": ["number"]}},
        }},
        "joined_at": {"type": ["string", "null"], "format": "date-time"},
    }})
}

fn mystream_records() -> Vec<Map<String, Value>> {
    [
        ("alice", 21, 1, "hello", json!([3.14, 2.718])),
        ("bob", 13, 2, "world", json!([10.32, 1.618])),
        ("charlie", 19, 3, "hello", json!([1.414, 1.732])),
    ]
    .into_iter()
    .map(|(who, count, id, obj, numbers)| {
        json!({
            "email": format!("{who}@example.com"),
            "count": count,
            "user": {"id": id, "sub": {"num": id, "custom_obj": format!("obj-{obj}")},
                     "some_numbers": numbers},
            "joined_at": "2022-01-01T00:00:00Z",
        })
        .as_object()
        .unwrap()
        .clone()
    })
    .collect()
}

/// What the maps send for `stream`: per stream sent, its name, keys, schema properties and
/// records.
type Sent = Vec<(String, Vec<String>, Value, Vec<Value>)>;

fn run(
    config: Value,
    stream: &'static str,
    schema: &Value,
    keys: &[&str],
    records: &[Map<String, Value>],
) -> Sent {
    let maps = Maps::from_config(config.as_object().unwrap(), &[stream], "tap-harvest")
        .unwrap_or_else(|e| panic!("{e:?}"))
        .unwrap_or_default();
    let outputs = maps.outputs(stream, schema, keys).unwrap();
    outputs
        .iter()
        .map(|m| {
            let sent = records
                .iter()
                .filter_map(|r| match m.apply(r) {
                    Mapped::Record(r) => Some(Value::Object(r)),
                    Mapped::Filtered | Mapped::Failed => None,
                })
                .collect();
            (
                m.name.clone(),
                m.key_properties.clone(),
                m.schema["properties"].clone(),
                sent,
            )
        })
        .collect()
}

fn mystream(config: Value) -> Sent {
    run(
        config,
        "mystream",
        &mystream_schema(),
        &[],
        &mystream_records(),
    )
}

fn alice() -> Value {
    Value::Object(mystream_records()[0].clone())
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn keep_all_fields_adds_a_hash() {
    let sent = mystream(json!({"stream_maps": {"mystream": {"email_hash": "md5(email)"}}}));
    let (name, keys, props, records) = &sent[0];
    assert_eq!((name.as_str(), keys.len()), ("mystream", 0));
    assert_eq!(props["email_hash"], json!({"type": ["string", "null"]}));
    assert_eq!(props["user"], mystream_schema()["properties"]["user"]);
    assert_eq!(
        records[0],
        with(
            alice(),
            json!({"email_hash": "c160f8cc69a4f0bf2b0362752353d060"})
        )
    );
}

#[test]
fn only_mapped_fields_with_else_null() {
    for else_ in [Value::Null, json!("__NULL__")] {
        let sent = mystream(json!({"stream_maps": {"mystream": {
            "email_hash": "md5(email)", "email_hash_sha256": "sha256(email)",
            "fixed_count": "int(count-1)", "__else__": else_}}}));
        let (_, _, props, records) = &sent[0];
        assert_eq!(
            props,
            &json!({"email_hash": {"type": ["string", "null"]},
                    "email_hash_sha256": {"type": ["string", "null"]},
                    "fixed_count": {"type": ["integer", "null"]}})
        );
        assert_eq!(
            records[0],
            json!({"email_hash": "c160f8cc69a4f0bf2b0362752353d060",
                   "email_hash_sha256": "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976",
                   "fixed_count": 20})
        );
    }
}

#[test]
fn changed_key_properties() {
    let sent = mystream(json!({"stream_maps": {"mystream": {
        "email_hash": "md5(email)", "__key_properties__": ["email_hash"], "__else__": null}}}));
    let (_, keys, props, records) = &sent[0];
    assert_eq!(keys, &["email_hash"]);
    assert_eq!(props, &json!({"email_hash": {"type": ["string", "null"]}}));
    assert_eq!(
        records[0],
        json!({"email_hash": "c160f8cc69a4f0bf2b0362752353d060"})
    );
}

#[test]
fn sourced_streams_and_removed_streams() {
    for removed in [Value::Null, json!("__NULL__")] {
        let sent = mystream(json!({"stream_maps": {"mystream": removed,
            "sourced_stream_1": {"__source__": "mystream"}}}));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "sourced_stream_1");
        assert_eq!(sent[0].2, mystream_schema()["properties"]);
        assert_eq!(sent[0].3[0], alice());
    }
    let sent = mystream(
        json!({"stream_maps": {"sourced_stream_2": {"__source__": "mystream"},
        "__else__": null}}),
    );
    assert_eq!(
        sent.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["sourced_stream_2"]
    );
    assert!(mystream(json!({"stream_maps": {"mystream": null}})).is_empty());
    let maps = Maps::from_config(
        json!({"stream_maps": {"mystream": null}})
            .as_object()
            .unwrap(),
        &["mystream"],
        "tap-harvest",
    )
    .unwrap()
    .unwrap();
    assert!(maps.drops("mystream"));
}

#[test]
fn aliases_are_names_or_expressions_over_the_stream_name() {
    for (alias, want) in [
        ("aliased_stream", "aliased_stream"),
        ("aliased.stream", "aliased.stream"),
        ("'__stream_name__'", "__stream_name__"),
        ("'aliased_' + __stream_name__", "aliased_mystream"),
        ("__stream_name__.upper()", "MYSTREAM"),
    ] {
        let sent = mystream(json!({"stream_maps": {"mystream": {"__alias__": alias}}}));
        assert_eq!(sent[0].0, want, "{alias}");
        assert_eq!(sent[0].3[0], alice());
    }
    let sent = mystream(
        json!({"stream_maps": {"mystream": {"__alias__": "'aliased'",
        "stream_name": "__stream_name__", "original_stream_name": "__original_stream_name__"}}}),
    );
    assert_eq!(sent[0].0, "aliased");
    assert_eq!(
        sent[0].2["stream_name"],
        json!({"type": ["string", "null"]})
    );
    assert_eq!(
        sent[0].3[0],
        with(
            alice(),
            json!({"stream_name": "aliased", "original_stream_name": "mystream"})
        )
    );
}

#[test]
fn self_underscore_record_and_passthrough() {
    for e in [
        "self.upper()",
        "_['email'].upper()",
        "record['email'].upper()",
    ] {
        let sent = mystream(json!({"stream_maps": {"mystream": {"email": e, "__else__": null}}}));
        assert_eq!(
            sent[0].2,
            json!({"email": {"type": ["string", "null"]}}),
            "{e}"
        );
        assert_eq!(sent[0].3[0], json!({"email": "ALICE@EXAMPLE.COM"}), "{e}");
    }
    let sent = mystream(json!({"stream_maps": {"mystream": {"count": "count", "__else__": null}}}));
    assert_eq!(sent[0].2, json!({"count": {"type": ["integer", "null"]}}));
    assert_eq!(sent[0].3[0], json!({"count": 21}));
    let sent =
        mystream(json!({"stream_maps": {"mystream": {"_data": "record", "__else__": null}}}));
    assert_eq!(sent[0].2["_data"]["type"], json!(["object", "null"]));
    assert_eq!(
        sent[0].2["_data"]["properties"],
        mystream_schema()["properties"]
    );
    assert_eq!(sent[0].3[0], json!({"_data": alice()}));
}

#[test]
fn drop_property() {
    for removed in [Value::Null, json!("__NULL__")] {
        let sent = mystream(json!({"stream_maps": {"mystream": {"email": removed}}}));
        let mut want = mystream_schema()["properties"].clone();
        want.as_object_mut().unwrap().remove("email");
        assert_eq!(sent[0].2, want);
        let mut rec = alice();
        rec.as_object_mut().unwrap().remove("email");
        assert_eq!(sent[0].3[0], rec);
    }
}

#[test]
fn filter_records() {
    for f in ["count < 20", "bool(count < 20)"] {
        let sent = mystream(json!({"stream_maps": {"mystream": {"__filter__": f}}}));
        let emails: Vec<&str> = sent[0]
            .3
            .iter()
            .map(|r| r["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, ["bob@example.com", "charlie@example.com"], "{f}");
    }
}

#[test]
fn json_dumps_writes_as_python_does() {
    let sent =
        mystream(json!({"stream_maps": {"mystream": {"user": "json.dumps(user, default=str)"}}}));
    assert_eq!(sent[0].2["user"], json!({"type": ["string", "null"]}));
    // The SDK's Decimals become strings through `default=str`; JSON numbers stay numbers.
    assert_eq!(
        sent[0].3[0]["user"],
        json!("{\"id\": 1, \"sub\": {\"num\": 1, \"custom_obj\": \"obj-hello\"}, \"some_numbers\": [3.14, 2.718]}")
    );
}

#[test]
fn flattening_at_each_depth() {
    // Depth 0: no flattening, as in the SDK.
    let sent = mystream(json!({"flattening_enabled": true, "flattening_max_depth": 0}));
    assert_eq!(sent[0].2, mystream_schema()["properties"]);
    assert_eq!(sent[0].3[0], alice());

    let sent = mystream(json!({"flattening_enabled": true, "flattening_max_depth": 1}));
    assert_eq!(
        sent[0].2,
        json!({"email": {"type": ["string"]}, "count": {"type": ["integer", "null"]},
               "user__id": {"type": ["integer", "null"]}, "user__sub": {"type": ["string", "null"]},
               "user__some_numbers": {"type": ["string", "null"]},
               "joined_at": {"format": "date-time", "type": ["string", "null"]}})
    );
    assert_eq!(
        sent[0].3[0],
        json!({"email": "alice@example.com", "count": 21, "user__id": 1,
               "user__sub": "{\"num\":1,\"custom_obj\":\"obj-hello\"}",
               "user__some_numbers": "[3.14,2.718]", "joined_at": "2022-01-01T00:00:00Z"})
    );

    let sent = mystream(json!({"flattening_enabled": true, "flattening_max_depth": 2}));
    let keys: Vec<&String> = sent[0].2.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "email",
            "count",
            "user__id",
            "user__sub__num",
            "user__sub__custom_obj",
            "user__some_numbers",
            "joined_at"
        ]
    );
    assert_eq!(sent[0].3[0]["user__sub__custom_obj"], "obj-hello");

    let sent = mystream(
        json!({"flattening_enabled": true, "flattening_max_depth": 2,
                               "flattening_separator": "."}),
    );
    assert_eq!(sent[0].3[0]["user.sub.num"], 1);
    assert!(sent[0].2.get("user.sub.custom_obj").is_some());
}

#[test]
fn map_and_flatten() {
    let sent = mystream(
        json!({"stream_maps": {"mystream": {"email_hash": "md5(email)",
        "__key_properties__": ["email_hash"]}}, "flattening_enabled": true, "flattening_max_depth": 10}),
    );
    let (_, keys, props, records) = &sent[0];
    assert_eq!(keys, &["email_hash"]);
    assert_eq!(props["email_hash"], json!({"type": ["string", "null"]}));
    assert_eq!(
        records[0],
        json!({"email": "alice@example.com", "count": 21, "user__id": 1, "user__sub__num": 1,
               "user__sub__custom_obj": "obj-hello", "user__some_numbers": "[3.14,2.718]",
               "joined_at": "2022-01-01T00:00:00Z", "email_hash": "c160f8cc69a4f0bf2b0362752353d060"})
    );
}

#[test]
fn flattened_keys_are_shortened_as_the_sdk_does() {
    let f = super::Flattening {
        max_level: 3,
        separator: "__".into(),
        max_key_length: 20,
    };
    assert_eq!(f.key("foo", &["bar".into(), "baz".into()]), "bar__baz__foo");
    // Too long: the parents are cut to their capitals (or three letters) from the first.
    assert_eq!(
        f.key(
            "last_name",
            &["customer_record".into(), "contact_info".into()]
        ),
        "cr__ci__last_name"
    );
}

fn repositories_schema() -> Value {
    json!({"type": "object", "properties": {
        "name": {"type": ["string", "null"]}, "owner_email": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]}, "create_date": {"type": ["string", "null"]}}})
}

fn repositories() -> Vec<Map<String, Value>> {
    [
        ("tap-something", 1, "A", 2019),
        ("my-tap-something", 2, "B", 2020),
        ("target-something", 3, "C", 2021),
        ("not-atap", 4, "D", 2022),
    ]
    .into_iter()
    .map(|(name, n, c, year)| {
        json!({"name": name, "owner_email": format!("sample{n}@example.com"),
               "description": format!("Comment {c}"), "create_date": format!("{year}-01-01")})
        .as_object()
        .unwrap()
        .clone()
    })
    .collect()
}

#[test]
fn the_sdk_transform_case() {
    let config = json!({"stream_map_config": {"hash_seed": "super_secret_hash_seed"},
        "stream_maps": {"repositories": {
            "repo_name": "_['name']",
            "email_domain": "owner_email.split('@')[1]",
            "email_hash": "md5(config['hash_seed'] + owner_email)",
            "description": "'[masked]'",
            "description2": "str('[masked]')",
            "int_test": "int('0')",
            "__else__": null}}});
    let sent = run(
        config,
        "repositories",
        &repositories_schema(),
        &[],
        &repositories(),
    );
    let (_, _, props, records) = &sent[0];
    let s = json!({"type": ["string", "null"]});
    assert_eq!(
        props,
        &json!({"repo_name": s, "email_domain": s, "email_hash": s, "description": s,
                "description2": s, "int_test": {"type": ["integer", "null"]}})
    );
    let hash = |e: &str| {
        let env_record = Map::new();
        let env = Env {
            record: &env_record,
            config: &Value::Null,
            stream: "",
            original_stream: "",
            property: None,
        };
        expr::eval(
            &expr::parse(&format!("md5('super_secret_hash_seed' + '{e}')")).unwrap(),
            &env,
        )
        .unwrap()
    };
    assert_eq!(
        records[0],
        json!({"repo_name": "tap-something", "email_domain": "example.com",
               "email_hash": hash("sample1@example.com"), "description": "[masked]",
               "description2": "[masked]", "int_test": 0})
    );
    assert_eq!(records.len(), 4);
}

#[test]
fn the_sdk_filter_clone_and_wildcard_cases() {
    let config = json!({"stream_maps": {"repositories": {
        "__filter__": "'tap-' in name or 'target-' in name", "name": "_['name']", "__else__": null},
        "__else__": null}});
    let sent = run(
        config,
        "repositories",
        &repositories_schema(),
        &[],
        &repositories(),
    );
    assert_eq!(sent[0].2, json!({"name": {"type": ["string", "null"]}}));
    assert_eq!(
        sent[0].3,
        [
            json!({"name": "tap-something"}),
            json!({"name": "my-tap-something"}),
            json!({"name": "target-something"})
        ]
    );

    let config = json!({"stream_maps": {"repositories": {"__alias__": "repositories_aliased"},
        "repositories_clone_1": {"__source__": "repositories"},
        "repositories_clone_2": {"__source__": "repositories"}, "__else__": null}});
    let sent = run(
        config,
        "repositories",
        &repositories_schema(),
        &[],
        &repositories(),
    );
    let names: Vec<&str> = sent.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "repositories_aliased",
            "repositories_clone_1",
            "repositories_clone_2"
        ]
    );
    for s in &sent {
        assert_eq!(s.3.len(), 4);
        assert_eq!(s.2, repositories_schema()["properties"]);
    }

    // `*s` reaches every stream whose name ends in s, each under its own name.
    let config = json!({"stream_maps": {"*s": {"db_name": "'database'"}}});
    let sent = run(
        config.clone(),
        "repositories",
        &repositories_schema(),
        &[],
        &repositories(),
    );
    assert_eq!(sent[0].0, "repositories");
    assert_eq!(sent[0].3[0]["db_name"], "database");
    let maps = Maps::from_config(
        config.as_object().unwrap(),
        &["repositories", "singular"],
        "tap-harvest",
    )
    .unwrap()
    .unwrap();
    let single = maps
        .outputs(
            "singular",
            &json!({"properties": {"foo": {"type": ["string"]}}}),
            &[],
        )
        .unwrap();
    assert!(single[0].is_identity());
}

fn refused(config: Value, streams: &[&str]) -> String {
    Maps::from_config(config.as_object().unwrap(), streams, "tap-harvest")
        .map(|_| String::new())
        .unwrap_or_else(|e| e.join("\n"))
}

fn refused_for(config: Value) -> String {
    let maps = match Maps::from_config(config.as_object().unwrap(), &["mystream"], "tap-harvest") {
        Err(e) => return e.join("\n"),
        Ok(m) => m.unwrap(),
    };
    maps.outputs("mystream", &mystream_schema(), &["email"])
        .map(|_| String::new())
        .unwrap_or_else(|e| e)
}

#[test]
fn what_cannot_be_applied_is_refused_with_one_line_naming_it() {
    for (config, want) in [
        (json!({"stream_maps": {"mystreem": {"email": null}}}), "stream_maps key 'mystreem' names no stream of tap-harvest (did you mean 'mystream'?)"),
        (json!({"stream_maps": {"x": {"__source__": "nope"}}}), "stream_maps.x.__source__ 'nope' names no stream"),
        (json!({"stream_maps": {"mystream": {"h": "fake.email()"}}}), "stream_maps.mystream.h: cannot read \"fake.email()\": 'fake.email' is not supported: Faker is not available"),
        (json!({"stream_maps": {"mystream": {"h": "datetime.datetime.now()"}}}), "'datetime.datetime' is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "email.casefold()"}}}), "method '.casefold()' is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "sha1(email)"}}}), "function 'sha1()' is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "[c for c in email]"}}}), "comprehensions are not supported"),
        (json!({"stream_maps": {"mystream": {"h": "lambda: 1"}}}), "'lambda' is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "email +"}}}), "cannot read \"email +\": unexpected the end"),
        (json!({"stream_maps": {"mystream": {"h": "count & 1"}}}), "operator '&' is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "email[::2]"}}}), "a slice with a step is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "'%s-%s' % (email, count)"}}}), "string formatting with % is not supported"),
        (json!({"stream_maps": {"mystream": {"h": "str((email, count))"}}}), "tuples are supported only after 'in'"),
        (json!({"stream_maps": {"mystream": {"h": "'\\N{DASH}'"}}}), "escape \\N{...} is not supported"),
        (json!({"stream_maps": {"mystream": {"h": format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000))}}}), "longer than 10,000 characters"),
        (json!({"stream_maps": {"mystream": {"h": format!("{}1{}", "(".repeat(4000), ")".repeat(4000))}}}), "nests more than 64 levels deep"),
        (json!({"stream_maps": {"mystream": {"h": format!("{}count", "not ".repeat(2000))}}}), "nests more than 64 levels deep"),
        (json!({"stream_maps": {"mystream": {"h": format!("{}1", "-".repeat(5000))}}}), "nests more than 64 levels deep"),
        (json!({"stream_maps": {"mystream": {"h": format!("count{}", " + 1".repeat(2000))}}}), "nests more than 64 levels deep"),
        (json!({"stream_maps": {"mystream": {"h": "md5(config['salt'] + email)"}}}), "stream_maps.mystream.h: stream_map_config has no key 'salt'"),
        (json!({"stream_maps": {"mystream": {"h": 5}}}), "stream_maps.mystream.h must be an expression (a string) or null"),
        (json!({"stream_maps": {"mystream": {"__else__": "x"}}}), "stream_maps.mystream.__else__: only null is supported"),
        (json!({"stream_maps": {"mystream": {"__alias__": "a", "__source__": "mystream"}}}), "'__source__' and '__alias__' together"),
        (json!({"stream_maps": {"mystream": {"__foo__": "a"}}}), "'__foo__' is not a stream map option"),
        (json!({"stream_maps": {"__else__": {}}}), "stream_maps.__else__ must be null"),
        (json!({"stream_maps": {"__x__": null}}), "option '__x__' is not expected"),
        (json!({"stream_maps": "clients"}), "config key 'stream_maps' must be an object"),
        (json!({"flattening_enabled": true}), "config key 'flattening_max_depth' is required when flattening_enabled is true"),
        (json!({"flattening_enabled": "yes"}), "config key 'flattening_enabled' must be true or false"),
    ] {
        let got = refused(config.clone(), &["mystream"]);
        assert!(got.contains(want), "{config}: {got}");
        assert_eq!(got.lines().count(), 1, "{got}");
    }
    for (config, want) in [
        (json!({"stream_maps": {"mystream": {"h": "md5(emial)"}}}), "stream_maps.mystream.h: 'emial' is not a property of stream 'mystream' (or not selected in the catalog) (did you mean 'email'?)"),
        (json!({"stream_maps": {"mystream": {"__filter__": "cnt > 1"}}}), "stream_maps.mystream.__filter__: 'cnt' is not a property"),
        (json!({"stream_maps": {"mystream": {"email": null}}}), "stream_maps.mystream.email: removing the key property 'email' is not permitted"),
        (json!({"stream_maps": {"mystream": {"__key_properties__": ["nope"]}}}), "stream_maps.mystream.__key_properties__: 'nope' is not a property"),
        (json!({"stream_maps": {"mystream": {"__alias__": "b"}, "b": {"__source__": "mystream"}}}), "stream 'mystream' is sent twice as 'b'"),
        (json!({"stream_maps": {"mystream": {"user__id": "1"}}, "flattening_enabled": true, "flattening_max_depth": 1}), "flattening: stream 'mystream': flattening makes two properties named 'user__id'"),
    ] {
        let got = refused_for(config.clone());
        assert!(got.contains(want), "{config}: {got}");
    }
    // Nothing that changes nothing is refused.
    assert_eq!(
        refused(
            json!({"stream_maps": {}, "flattening_enabled": false}),
            &["mystream"]
        ),
        ""
    );
    assert!(Maps::from_config(
        json!({"stream_maps": {}}).as_object().unwrap(),
        &["x"],
        "tap-harvest"
    )
    .unwrap()
    .is_none());
}

#[test]
fn an_expression_that_fails_on_a_record_gives_null_and_a_failing_filter_drops_it() {
    let mut records = mystream_records();
    records[1].insert("email".into(), Value::Null);
    let sent = run(
        json!({"stream_maps": {"mystream": {"h": "md5(email)", "__filter__": "email.endswith('.com')"}}}),
        "mystream",
        &mystream_schema(),
        &[],
        &records,
    );
    assert_eq!(
        sent[0].3.len(),
        2,
        "bob's filter cannot be evaluated: not sent"
    );
    let sent = run(
        json!({"stream_maps": {"mystream": {"h": "md5(email)"}}}),
        "mystream",
        &mystream_schema(),
        &[],
        &records,
    );
    assert_eq!(sent[0].3[1]["h"], Value::Null);
    assert_eq!(sent[0].3[0]["h"], "c160f8cc69a4f0bf2b0362752353d060");
    // A key that cannot be computed (or is null): the record is not sent, never a null key.
    let sent = run(
        json!({"stream_maps": {"mystream": {"h": "md5(email)", "__key_properties__": ["h"]}}}),
        "mystream",
        &mystream_schema(),
        &[],
        &records,
    );
    assert_eq!(sent[0].3.len(), 2);
    assert!(sent[0].3.iter().all(|r| r["h"].is_string()));
}

#[test]
fn deletions_carry_the_mapped_keys() {
    let mut schema = mystream_schema();
    schema["properties"]["_sdc_deleted_at"] =
        json!({"type": ["null", "string"], "format": "date-time"});
    let deletion = json!({"email": "alice@example.com", "_sdc_deleted_at": "2026-01-01T00:00:00Z"});
    let deleted = |map: Value| {
        let config = json!({"stream_maps": {"mystream": map}});
        let maps = Maps::from_config(config.as_object().unwrap(), &["mystream"], "tap-harvest")
            .unwrap()
            .unwrap();
        let out = maps.outputs("mystream", &schema, &["email"]).unwrap();
        assert!(out[0].schema["properties"].get("_sdc_deleted_at").is_some());
        (
            out[0].name.clone(),
            out[0]
                .deletion(deletion.as_object().unwrap())
                .map(Value::Object),
        )
    };
    // A filter on other properties cannot decide for a deletion: the key may be in the target.
    let (name, sent) = deleted(json!({"__alias__": "people", "key": "md5(email)",
        "__key_properties__": ["key"], "__filter__": "count > 100", "__else__": null}));
    assert_eq!(name, "people");
    assert_eq!(
        sent,
        Some(
            json!({"key": "c160f8cc69a4f0bf2b0362752353d060", "_sdc_deleted_at": "2026-01-01T00:00:00Z"})
        )
    );
    // A filter on the keys alone decides for deletions too.
    assert_eq!(
        deleted(json!({"__filter__": "email.endswith('.org')"})).1,
        None
    );
    // A key computed from what a deletion does not carry: no deletion can be sent.
    assert_eq!(
        deleted(json!({"key": "md5(str(count))", "__key_properties__": ["key"]})).1,
        None
    );
}

fn eval(src: &str) -> Result<Value, String> {
    let record = json!({"s": "Hello World", "n": 7, "f": 2.5, "none": null, "l": [1, 2, 3],
                        "o": {"a": {"b": 1}}})
    .as_object()
    .unwrap()
    .clone();
    let config = json!({"seed": "x"});
    let env = Env {
        record: &record,
        config: &config,
        stream: "st",
        original_stream: "st",
        property: None,
    };
    expr::eval(&expr::parse(src)?, &env)
}

/// Each expression evaluates over the sample record of [`eval`] to what Python gives.
fn assert_evals(cases: &[(&str, Value)]) {
    for (src, want) in cases {
        assert_eq!(eval(src), Ok(want.clone()), "{src}");
    }
}

/// Arithmetic with Python's int/float rules, chained comparisons, `and`/`or`/`not`, `is`, `in`.
#[test]
fn arithmetic_logic_and_comparisons_follow_python() {
    assert_evals(&[
        ("7 // 2", json!(3)),
        ("-7 // 2", json!(-4)),
        ("-7 % 3", json!(2)),
        ("7 / 2", json!(3.5)),
        ("2 ** 10", json!(1024)),
        ("-2 ** 2", json!(-4)),
        ("n * f", json!(17.5)),
        ("1 < n <= 7", json!(true)),
        ("1 < n < 7", json!(false)),
        ("none is None", json!(true)),
        ("none is not None", json!(false)),
        ("none or 'default'", json!("default")),
        ("s and n", json!(7)),
        ("not l", json!(false)),
        ("'World' in s", json!(true)),
        ("4 not in l", json!(true)),
        ("'a' in o", json!(true)),
    ]);
}

/// The str methods, indexing and slices, `dict.get`, the record, `config` and the stream's
/// names.
#[test]
fn str_methods_indexing_and_names_follow_python() {
    assert_evals(&[
        ("s.lower()", json!("hello world")),
        ("s.split()", json!(["Hello", "World"])),
        ("s.split('o', 1)", json!(["Hell", " World"])),
        ("s.replace('l', 'L')", json!("HeLLo WorLd")),
        ("'  x '.strip()", json!("x")),
        ("'xxhixx'.strip('x')", json!("hi")),
        ("'hello world'.title()", json!("Hello World")),
        ("'hELLO'.capitalize()", json!("Hello")),
        ("'-'.join(['a', 'b'])", json!("a-b")),
        ("s.find('o')", json!(4)),
        ("s[0] + s[-1]", json!("Hd")),
        ("s[:5]", json!("Hello")),
        ("s[-5:]", json!("World")),
        ("l[1:]", json!([2, 3])),
        ("o['a']['b']", json!(1)),
        ("o.a.b", json!(1)),
        ("o.get('z', 'none')", json!("none")),
        ("record['n'] + _['n']", json!(14)),
        ("config['seed'] + s", json!("xHello World")),
        ("__stream_name__", json!("st")),
    ]);
}

/// `str`, `int`, `float`, `bool`, `md5`, `sha256`, `json.*`, string literals and conditionals.
#[test]
fn functions_and_literals_follow_python() {
    assert_evals(&[
        (
            "str(n) + str(f) + str(none) + str(True)",
            json!("72.5NoneTrue"),
        ),
        (
            "str(1e20) + ' ' + str(0.0001) + ' ' + str(1e-5) + ' ' + str(3.0)",
            json!("1e+20 0.0001 1e-05 3.0"),
        ),
        ("str(l)", json!("[1, 2, 3]")),
        ("str(o)", json!("{'a': {'b': 1}}")),
        ("int('42') + int(2.9) + int(-2.9)", json!(42)),
        ("float('1.5') + float(n)", json!(8.5)),
        ("bool('') or bool([])", json!(false)),
        ("'a' 'b'", json!("ab")),
        ("'ab' * 2", json!("abab")),
        ("'x' if n > 5 else 'y'", json!("x")),
        ("md5('')", json!("d41d8cd98f00b204e9800998ecf8427e")),
        (
            "sha256('abc')",
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        (
            "json.dumps({'b': 1, 'a': [1.5, None, True, 'é']})",
            json!("{\"b\": 1, \"a\": [1.5, null, true, \"\\u00e9\"]}"),
        ),
        (
            "json.dumps({'b': 1, 'a': 2}, sort_keys=True)",
            json!("{\"a\": 2, \"b\": 1}"),
        ),
        ("json.loads('[1, 2]')", json!([1, 2])),
        ("'\\u00e9\\n'", json!("é\n")),
    ]);
}

/// CPython's corner cases: tuples after `in`, `split(None, n)`, `str.isspace`, float `//` and
/// `%`, escapes, underscores in numbers, dict displays.
#[test]
fn python_corner_cases_hold() {
    assert_evals(&[
        ("n in (1, 7)", json!(true)),
        ("n not in ()", json!(true)),
        ("'  a  b  c  '.split(None, 1)", json!(["a", "b  c  "])),
        ("'\u{1c}a\u{1f}'.strip()", json!("a")),
        ("1 // 0.1", json!(9.0)),
        ("str(4.0 % -2.0)", json!("-0.0")),
        ("-7.5 % 2", json!(0.5)),
        ("7.5 // -2", json!(-4.0)),
        (
            "'\\a\\b\\f\\v\\012\\1\\U0001F600'",
            json!("\u{7}\u{8}\u{c}\u{b}\n\u{1}😀"),
        ),
        ("int(' 1_000 ')", json!(1000)),
        ("float('1_000.5')", json!(1000.5)),
        ("{'k': n}", json!({"k": 7})),
    ]);
}

/// What cannot be evaluated fails with Python's reason.
#[test]
fn failures_say_what_python_says() {
    for (src, want) in [
        ("1 / 0", "division by zero"),
        ("none.lower()", "'NoneType' object has no attribute 'lower'"),
        ("s + n", "unsupported operand types for +: 'str' and 'int'"),
        ("l[5]", "index out of range"),
        ("o['zz']", "not in the dict"),
        ("int('x')", "invalid literal for int()"),
        ("md5(n)", "md5() needs a str, not int"),
        (
            "s < n",
            "not supported between instances of 'str' and 'int'",
        ),
        ("9223372036854775807 + 1", "integer overflow"),
        ("missing", "name 'missing' is not defined"),
        ("int('_1')", "invalid literal for int()"),
        ("int('1__0')", "invalid literal for int()"),
    ] {
        let got = eval(src).unwrap_err();
        assert!(got.contains(want), "{src}: {got}");
    }
}

#[test]
fn computed_properties_are_typed_from_the_schema() {
    let schema = json!({"properties": {
        "id": {"type": "integer"}, "name": {"type": ["null", "string"]},
        "hours": {"type": ["null", "number"]}, "updated_at": {"type": ["null", "string"], "format": "date-time"},
        "is_active": {"type": ["null", "boolean"]}, "tags": {"type": ["null", "array"], "items": {"type": "string"}}}});
    let config = json!({"stream_maps": {"s": {
        "a": "updated_at", "b": "hours * 2", "c": "id // 2", "d": "id / 2", "e": "is_active and name",
        "f": "name if is_active else None", "g": "tags[0]", "h": "name.split(' ')", "i": "id > 3",
        "j": "config['n'] + 1", "k": "json.loads(name)", "l": "str(id) + name",
        "m": "updated_at[:10]"}}, "stream_map_config": {"n": 2}});
    let maps = Maps::from_config(config.as_object().unwrap(), &["s"], "tap-harvest")
        .unwrap()
        .unwrap();
    let out = maps.outputs("s", &schema, &["id"]).unwrap();
    let p = &out[0].schema["properties"];
    let types = |k: &str| p[k]["type"].clone();
    assert_eq!(
        p["a"],
        json!({"type": ["null", "string"], "format": "date-time"})
    );
    assert_eq!(types("b"), json!(["number", "null"]));
    assert_eq!(types("c"), json!(["integer", "null"]));
    assert_eq!(types("d"), json!(["number", "null"]));
    assert_eq!(types("e"), json!(["boolean", "string", "null"]));
    assert_eq!(p["f"], json!({"type": ["null", "string"]}));
    assert_eq!(types("g"), json!(["string", "null"]));
    assert_eq!(
        p["h"],
        json!({"type": ["array", "null"], "items": {"type": "string"}})
    );
    assert_eq!(types("i"), json!(["boolean", "null"]));
    assert_eq!(types("j"), json!(["integer", "null"]));
    // Unknown (json.loads): any value (the SDK says a string, which may not hold).
    assert_eq!(p["k"], json!({}));
    assert_eq!(types("l"), json!(["string", "null"]));
    assert_eq!(types("m"), json!(["string", "null"]));
}

#[test]
fn globs_match_as_fnmatch() {
    use super::glob;
    assert!(glob("*s", "clients"));
    assert!(!glob("*s", "company"));
    assert!(glob("report_*", "report_time_clients"));
    assert!(glob("user_?oles", "user_roles"));
    assert!(glob("[ct]*", "tasks"));
    assert!(!glob("[!ct]*", "tasks"));
    assert!(glob("clients", "clients"));
    assert!(glob("*", ""));
    assert!(!glob("?", ""));
    assert!(glob("a*b*c", "axxbyyc"));
    assert!(!glob("a*b*c", "axxbyy"));
    // No exponential backtracking.
    let many = format!("{}b", "*a".repeat(40));
    assert!(!glob(&many, &"a".repeat(60)));
}
