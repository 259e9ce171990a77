//! PATCH engine tests: the RFC 7644 §3.5.2 rules, then every IdP dialect of
//! idp-behaviour.md with the bodies as the IdPs send them.

use serde_json::{Map, Value, json};

use super::*;
use crate::scim::schema::{ENTERPRISE_URN, GROUP_RESOURCE, USER_RESOURCE};

const USER_ID: &str = "23a35c27-23d3-4c03-b4c5-6443c09e7173";
const GROUP_ID: &str = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b";

/// A stored user, in canonical form.
fn alice() -> Value {
    json!({
        "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [
            {"value": "alice@example.com", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "active": true
    })
}

fn group() -> Value {
    json!({"displayName": "Engineering", "externalId": "8aa1"})
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Applies a full PatchOp body (or a bare array of operations) to `data`.
fn run(rt: &'static ResourceType, data: Value, body: Value) -> Result<(Value, Outcome), ScimError> {
    let body = match body {
        Value::Array(ops) => {
            json!({"schemas": [crate::scim::schema::PATCH_OP_URN], "Operations": ops})
        }
        other => other,
    };
    let ops = parse(body)?;
    let mut data = object(data);
    let outcome = apply(rt, &mut data, &ops)?;
    Ok((Value::Object(data), outcome))
}

fn patch_user(data: Value, body: Value) -> Value {
    match run(&USER_RESOURCE, data, body.clone()) {
        Ok((data, outcome)) => {
            assert!(outcome.members.is_empty());
            data
        }
        Err(e) => panic!("{body}: {e}"),
    }
}

fn patch_group(data: Value, body: Value) -> (Value, Vec<MemberOp>) {
    match run(&GROUP_RESOURCE, data, body.clone()) {
        Ok((data, outcome)) => (data, outcome.members),
        Err(e) => panic!("{body}: {e}"),
    }
}

/// The `scimType` of the error a user PATCH fails with.
fn user_error(data: Value, body: Value) -> &'static str {
    match run(&USER_RESOURCE, data, body.clone()) {
        Ok((data, _)) => panic!("{body} succeeded: {data}"),
        Err(e) => {
            assert_eq!(e.status, 400, "{body}");
            e.scim_type.expect("a scimType").as_str()
        }
    }
}

fn group_error(body: Value) -> &'static str {
    match run(&GROUP_RESOURCE, group(), body.clone()) {
        Ok((data, outcome)) => panic!("{body} succeeded: {data} {:?}", outcome.members),
        Err(e) => e.scim_type.expect("a scimType").as_str(),
    }
}

fn member(id: &str) -> MemberValue {
    MemberValue {
        value: id.into(),
        display: None,
        kind: MemberKind::User,
    }
}

// ---------------------------------------------------------------------------------------
// Parsing the PatchOp message

#[test]
fn parse_accepts_any_case_of_op_and_keys_and_a_missing_schemas() {
    let ops = parse(json!({"operations": [
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"OP": "REPLACE", "Path": "active", "Value": false},
        {"op": "remove", "path": "title"},
        {"op": "Remove", "path": "members", "value": [{"value": "x"}]},
        {"op": "replace", "path": "", "value": {"active": true}}
    ]}))
    .unwrap();
    let got: Vec<(Op, Option<&str>, bool)> = ops
        .iter()
        .map(|o| (o.op, o.path.as_deref(), o.value.is_some()))
        .collect();
    assert_eq!(
        got,
        [
            (Op::Add, Some("nickName"), true),
            (Op::Replace, Some("active"), true),
            (Op::Remove, Some("title"), false),
            (Op::Remove, Some("members"), true),
            (Op::Replace, None, true),
        ]
    );
    // An explicit null is kept apart from an absent value: replace-with-null unassigns.
    let ops =
        parse(json!({"Operations": [{"op": "replace", "path": "title", "value": null}]})).unwrap();
    assert_eq!(ops[0].value, Some(Value::Null));
}

#[test]
fn parse_rejects_malformed_messages() {
    let cases = [
        (json!([]), "invalidSyntax"),
        (
            json!({"schemas": [crate::scim::schema::PATCH_OP_URN]}),
            "invalidSyntax",
        ),
        (json!({"Operations": []}), "invalidSyntax"),
        (json!({"Operations": {"op": "add"}}), "invalidSyntax"),
        (json!({"Operations": ["add"]}), "invalidSyntax"),
        (
            json!({"Operations": [{"path": "title", "value": "x"}]}),
            "invalidSyntax",
        ),
        (
            json!({"Operations": [{"op": "delete", "path": "title"}]}),
            "invalidSyntax",
        ),
        (
            json!({"Operations": [{"op": "merge", "value": {}}]}),
            "invalidSyntax",
        ),
        (
            json!({"Operations": [{"op": 1, "value": {}}]}),
            "invalidSyntax",
        ),
        (
            json!({"Operations": [{"op": "add", "path": "title"}]}),
            "invalidSyntax",
        ),
        (json!({"Operations": [{"op": "replace"}]}), "invalidSyntax"),
        (
            json!({"Operations": [{"op": "add", "path": 7, "value": "x"}]}),
            "invalidPath",
        ),
    ];
    for (body, scim_type) in cases {
        let err = parse(body.clone()).unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert_eq!(
            err.scim_type.unwrap().as_str(),
            scim_type,
            "{body}: {}",
            err.detail
        );
    }
    let err =
        parse(json!({"Operations": [{"op": "add", "path": "a", "value": 1}, {"op": "nope"}]}))
            .unwrap_err();
    assert!(err.detail.starts_with("Operations[1]:"), "{}", err.detail);
}

// ---------------------------------------------------------------------------------------
// RFC 7644 §3.5.2.1 add

#[test]
fn add_without_path_merges_attributes() {
    let data = patch_user(
        alice(),
        json!([{"op": "add", "value": {
            "emails": [{"value": "alice@example.com", "type": "work"}, {"value": "a@other.example", "type": "other"}],
            "name": {"middleName": "Pleasance"},
            "nickName": "Al",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        }}]),
    );
    assert_eq!(
        data["emails"],
        json!([
            {"value": "alice@example.com", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"},
            {"value": "a@other.example", "type": "other"}
        ])
    );
    assert_eq!(
        data["name"],
        json!({"givenName": "Alice", "familyName": "Liddell", "middleName": "Pleasance"})
    );
    assert_eq!(data["nickName"], "Al");
    assert_eq!(data[ENTERPRISE_URN], json!({"department": "R&D"}));
}

#[test]
fn add_with_path_appends_sets_and_merges() {
    let cases = [
        (
            json!({"op": "add", "path": "phoneNumbers", "value": [{"value": "555-0100", "type": "work"}]}),
            "phoneNumbers",
            json!([{"value": "555-0100", "type": "work"}]),
        ),
        (
            json!({"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "other"}]}),
            "emails",
            json!([
                {"value": "alice@example.com", "type": "work", "primary": true},
                {"value": "alice@home.example", "type": "home"},
                {"value": "new@example.com", "type": "other"}
            ]),
        ),
        (
            json!({"op": "add", "path": "title", "value": "Queen"}),
            "title",
            json!("Queen"),
        ),
        (
            json!({"op": "add", "path": "userName", "value": "alice2@example.com"}),
            "userName",
            json!("alice2@example.com"),
        ),
        (
            json!({"op": "add", "path": "name", "value": {"givenName": "Alicia"}}),
            "name",
            json!({"givenName": "Alicia", "familyName": "Liddell"}),
        ),
        (
            json!({"op": "add", "path": "name.honorificPrefix", "value": "Dr."}),
            "name",
            json!({"givenName": "Alice", "familyName": "Liddell", "honorificPrefix": "Dr."}),
        ),
    ];
    for (op, key, want) in cases {
        let data = patch_user(alice(), json!([op.clone()]));
        assert_eq!(data[key], want, "{op}");
    }
}

#[test]
fn add_of_an_existing_email_does_not_duplicate_it() {
    let body = json!([{"op": "add", "path": "emails", "value": [{"value": "ALICE@example.com", "type": "work"}]}]);
    let mut data = alice();
    for _ in 0..3 {
        data = patch_user(data, body.clone());
    }
    assert_eq!(data["emails"], alice()["emails"]);
    let (_, outcome) = run(&USER_RESOURCE, alice(), body).unwrap();
    assert!(
        !outcome.data_changed,
        "an add of a value already present changes nothing"
    );
}

#[test]
fn add_of_a_sub_attribute_creates_the_complex_value() {
    let data = patch_user(
        json!({"userName": "bob"}),
        json!([{"op": "add", "path": "name.givenName", "value": "Bob"}]),
    );
    assert_eq!(
        data,
        json!({"userName": "bob", "name": {"givenName": "Bob"}})
    );
}

#[test]
fn add_through_a_filter_with_no_match_creates_exactly_one_element() {
    // Entra (idp-behaviour.md §2.4, hard case 8): never a second "work" element.
    let body = json!([
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
    ]);
    let data = patch_user(alice(), body.clone());
    assert_eq!(
        data["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
    );
    let data = patch_user(data, body);
    assert_eq!(data["addresses"].as_array().unwrap().len(), 1);
}

/// Entra does not promise to send `.value` before `.primary`: an element one operation
/// starts and a later one of the same request completes is whole, in either order. Left
/// incomplete, it is still noTarget, named by the operation that started it.
#[test]
fn an_element_a_later_operation_completes_is_whole_in_either_order() {
    let primary =
        json!({"op": "Replace", "path": "emails[type eq \"other\"].primary", "value": "True"});
    let value = json!({"op": "Replace", "path": "emails[type eq \"other\"].value", "value": "a@other.example"});
    for ops in [json!([primary, value]), json!([value, primary])] {
        let data = patch_user(alice(), ops.clone());
        let other: Vec<&Value> = data["emails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "other")
            .collect();
        assert_eq!(other.len(), 1, "{ops}: {data}");
        assert_eq!(other[0]["value"], "a@other.example");
        assert_eq!(other[0]["primary"], true);
    }
    let body = json!([primary, {"op": "replace", "path": "name.givenName", "value": "Al"}]);
    let err = run(&USER_RESOURCE, alice(), body).unwrap_err();
    assert_eq!(err.scim_type.unwrap().as_str(), "noTarget");
    assert!(err.detail.starts_with("Operations[0]: "), "{}", err.detail);
}

#[test]
fn a_write_that_cannot_stand_as_a_new_element_is_no_target() {
    // RFC 7644 §3.5.2.3: a filter that matches nothing is noTarget; the server creates the
    // element only when the write gives it a value of its own (Entra's `.value`).
    for path in [
        "emails[type eq \"other\"].primary",
        "emails[type eq \"other\"].display",
        "phoneNumbers[type eq \"fax\"].type",
        "addresses[type eq \"home\"].primary",
    ] {
        for op in ["add", "replace"] {
            let value = if path.ends_with("primary") {
                json!(true)
            } else {
                json!("x")
            };
            let body = json!([{"op": op, "path": path, "value": value}]);
            assert_eq!(user_error(alice(), body), "noTarget", "{op} {path}");
        }
    }
    // A whole element without a value is no element either.
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "replace", "path": "emails[type eq \"other\"]", "value": {"primary": true}}])
        ),
        "noTarget"
    );
    // A sub-attribute path into an empty list is held to the same rule.
    assert_eq!(
        user_error(
            json!({"userName": "bob"}),
            json!([{"op": "replace", "path": "emails.primary", "value": true}])
        ),
        "noTarget"
    );
    let data = patch_user(
        json!({"userName": "bob"}),
        json!([{"op": "replace", "path": "emails.value", "value": "bob@example.com"}]),
    );
    assert_eq!(data["emails"], json!([{"value": "bob@example.com"}]));
    // Clearing what is not there stays a no-op (Entra's SCIM_Null_Update_Test sends `""`,
    // then `null`), and a matched element takes any write.
    let data = patch_user(
        alice(),
        json!([
            {"op": "replace", "path": "emails[type eq \"other\"].value", "value": ""},
            {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": ""},
            {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": null},
            {"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": ""},
            {"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": null},
            {"op": "replace", "path": "emails[type eq \"other\"]", "value": null},
            {"op": "replace", "value": {"phoneNumbers[type eq \"fax\"].value": null}},
            {"op": "replace", "path": "emails[type eq \"home\"].display", "value": "Home"},
        ]),
    );
    assert_eq!(data["emails"][1]["display"], "Home");
    assert_eq!(data["emails"].as_array().unwrap().len(), 2);
    assert!(
        data.get("phoneNumbers").is_none() && data.get("addresses").is_none(),
        "{data}"
    );
}

#[test]
fn primary_through_an_unfiltered_path_needs_a_single_element() {
    // `emails.primary` names both of Alice's emails, and only one may be primary.
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "replace", "path": "emails.primary", "value": "True"}])
        ),
        "invalidValue"
    );
    // Clearing it on every element is fine, and so is one element.
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "path": "emails.primary", "value": false}]),
    );
    assert_eq!(data["emails"][0]["primary"], false);
    let data = patch_user(
        json!({"userName": "bob", "emails": [{"value": "b@example.com"}]}),
        json!([{"op": "replace", "path": "emails.primary", "value": true}]),
    );
    assert_eq!(
        data["emails"],
        json!([{"value": "b@example.com", "primary": true}])
    );
}

// ---------------------------------------------------------------------------------------
// RFC 7644 §3.5.2.3 replace

#[test]
fn replace_with_path() {
    let cases = [
        (
            json!({"op": "replace", "path": "emails", "value": [{"value": "only@example.com"}]}),
            "emails",
            json!([{"value": "only@example.com"}]),
        ),
        (
            json!({"op": "replace", "path": "emails[type eq \"home\"].value", "value": "alice@new.example"}),
            "emails",
            json!([
                {"value": "alice@example.com", "type": "work", "primary": true},
                {"value": "alice@new.example", "type": "home"}
            ]),
        ),
        (
            // A whole matching element is replaced, keeping the `type` the filter pinned.
            json!({"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w@example.com"}}),
            "emails",
            json!([
                {"type": "work", "value": "w@example.com"},
                {"value": "alice@home.example", "type": "home"}
            ]),
        ),
        (
            // Sub-attributes not given are left unchanged.
            json!({"op": "replace", "path": "name", "value": {"familyName": "Hargreaves"}}),
            "name",
            json!({"givenName": "Alice", "familyName": "Hargreaves"}),
        ),
        (
            json!({"op": "replace", "path": "name.givenName", "value": "Ally"}),
            "name",
            json!({"givenName": "Ally", "familyName": "Liddell"}),
        ),
        (
            json!({"op": "replace", "path": "emails.type", "value": "other"}),
            "emails",
            json!([
                {"value": "alice@example.com", "type": "other", "primary": true},
                {"value": "alice@home.example", "type": "other"}
            ]),
        ),
    ];
    for (op, key, want) in cases {
        let data = patch_user(alice(), json!([op.clone()]));
        assert_eq!(data[key], want, "{op}");
    }
}

#[test]
fn replace_without_path_replaces_each_attribute() {
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "value": {
            "emails": [{"value": "x@example.com", "type": "work"}],
            "displayName": "Alice L.",
            "name": {"givenName": "Al"}
        }}]),
    );
    assert_eq!(
        data["emails"],
        json!([{"value": "x@example.com", "type": "work"}])
    );
    assert_eq!(data["displayName"], "Alice L.");
    assert_eq!(
        data["name"],
        json!({"givenName": "Al", "familyName": "Liddell"})
    );
    assert_eq!(data["userName"], "alice@example.com");
}

#[test]
fn replace_through_a_filter_that_cannot_describe_an_element_is_no_target() {
    let body = json!([{"op": "replace", "path": "emails[value ew \"@nowhere.example\"].value", "value": "x@y"}]);
    assert_eq!(user_error(alice(), body), "noTarget");
    let body = json!([{"op": "replace", "path": "emails[type eq \"a\" or type eq \"b\"].value", "value": "x@y"}]);
    assert_eq!(user_error(alice(), body), "noTarget");
}

#[test]
fn setting_one_primary_clears_the_others() {
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    );
    assert_eq!(
        data["emails"],
        json!([
            {"value": "alice@example.com", "type": "work", "primary": false},
            {"value": "alice@home.example", "type": "home", "primary": true}
        ])
    );
    let data = patch_user(
        alice(),
        json!([{"op": "add", "path": "emails", "value": [{"value": "n@example.com", "primary": "True"}]}]),
    );
    let primaries: Vec<&Value> = data["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .collect();
    assert_eq!(
        primaries,
        [&json!({"value": "n@example.com", "primary": true})]
    );
    // A replacement list with two primaries is the client's error.
    let body = json!([{"op": "replace", "path": "emails", "value": [
        {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}]);
    assert_eq!(user_error(alice(), body), "invalidValue");
}

// ---------------------------------------------------------------------------------------
// RFC 7644 §3.5.2.2 remove

#[test]
fn remove_attribute_sub_attribute_and_elements() {
    let cases = [
        (json!({"op": "remove", "path": "name"}), "name", None),
        (
            json!({"op": "remove", "path": "name.givenName"}),
            "name",
            Some(json!({"familyName": "Liddell"})),
        ),
        (json!({"op": "remove", "path": "emails"}), "emails", None),
        (
            json!({"op": "remove", "path": "emails[type eq \"home\"]"}),
            "emails",
            Some(json!([{"value": "alice@example.com", "type": "work", "primary": true}])),
        ),
        (
            json!({"op": "remove", "path": "emails[type eq \"work\"].primary"}),
            "emails",
            Some(json!([
                {"value": "alice@example.com", "type": "work"},
                {"value": "alice@home.example", "type": "home"}
            ])),
        ),
        (
            json!({"op": "remove", "path": "emails[value co \"alice\"]"}),
            "emails",
            None,
        ),
        (
            json!({"op": "remove", "path": "emails", "value": [{"value": "alice@home.example"}]}),
            "emails",
            Some(json!([{"value": "alice@example.com", "type": "work", "primary": true}])),
        ),
        (
            json!({"op": "remove", "path": "nickName"}),
            "nickName",
            None,
        ),
        (
            json!({"op": "remove", "path": "password"}),
            "password",
            None,
        ),
    ];
    for (op, key, want) in cases {
        let data = patch_user(alice(), json!([op.clone()]));
        assert_eq!(data.get(key).cloned(), want, "{op}");
    }
}

#[test]
fn remove_needs_a_path_and_a_matching_filter() {
    assert_eq!(user_error(alice(), json!([{"op": "remove"}])), "noTarget");
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "remove", "value": {"nickName": "x"}}])
        ),
        "noTarget"
    );
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}])
        ),
        "noTarget"
    );
}

#[test]
fn required_attributes_cannot_be_removed_or_emptied() {
    let cases = [
        (json!({"op": "remove", "path": "userName"}), "mutability"),
        (
            json!({"op": "replace", "path": "userName", "value": null}),
            "mutability",
        ),
        (
            json!({"op": "replace", "value": {"userName": null}}),
            "mutability",
        ),
        (
            json!({"op": "replace", "path": "userName", "value": ""}),
            "invalidValue",
        ),
        (
            json!({"op": "replace", "path": "userName", "value": "  "}),
            "invalidValue",
        ),
    ];
    for (op, scim_type) in cases {
        assert_eq!(user_error(alice(), json!([op.clone()])), scim_type, "{op}");
    }
    assert_eq!(
        group_error(json!([{"op": "remove", "path": "displayName"}])),
        "mutability"
    );
    assert_eq!(
        group_error(json!([{"op": "Replace", "path": "displayName", "value": null}])),
        "mutability"
    );
}

// ---------------------------------------------------------------------------------------
// Mutability, types, errors, atomicity

#[test]
fn read_only_targets_are_mutability_errors() {
    let cases = [
        json!({"op": "replace", "path": "id", "value": "x"}),
        json!({"op": "add", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}),
        json!({"op": "remove", "path": "meta"}),
        json!({"op": "add", "path": "groups", "value": [{"value": "g1"}]}),
        json!({"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName", "value": "Boss"}),
        json!({"op": "replace", "path": "schemas", "value": ["urn:x"]}),
    ];
    for op in cases {
        assert_eq!(
            user_error(alice(), json!([op.clone()])),
            "mutability",
            "{op}"
        );
    }
}

#[test]
fn read_only_attributes_in_a_value_object_are_ignored() {
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "value": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": USER_ID,
            "meta": {"resourceType": "User"},
            "groups": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m1", "displayName": "Boss"}},
            "title": "Queen"
        }}]),
    );
    let mut want = alice();
    want["title"] = json!("Queen");
    want[ENTERPRISE_URN] = json!({"manager": {"value": "m1"}});
    assert_eq!(data, want);
}

#[test]
fn password_is_validated_and_dropped() {
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "path": "password", "value": "t0p-secret"},
               {"op": "add", "value": {"password": "again"}}]),
    );
    assert_eq!(data, alice());
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "replace", "path": "password", "value": 42}])
        ),
        "invalidValue"
    );
}

#[test]
fn schemas_in_a_client_extension_is_ignored_as_a_put_ignores_it() {
    // The fuzzer's find: a path `urn:x:schemas` kept a `schemas` a PUT of the same
    // object drops, so the stored data was not what the resource's own PUT would store.
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "path": "urn:example:custom:schemas", "value": "1"},
               {"op": "add", "path": "urn:example:custom:schemas", "value": ["urn:x"]},
               {"op": "replace", "path": "urn:example:custom:colour", "value": "blue"}]),
    );
    let mut want = alice();
    want["urn:example:custom"] = json!({"colour": "blue"});
    assert_eq!(data, want);
}

#[test]
fn values_of_the_wrong_type_are_invalid_value() {
    let cases = [
        json!({"op": "replace", "path": "active", "value": "yes"}),
        json!({"op": "replace", "path": "userName", "value": 42}),
        json!({"op": "replace", "path": "name", "value": "Alice Liddell"}),
        json!({"op": "replace", "path": "name.givenName", "value": ["A"]}),
        json!({"op": "add", "path": "emails", "value": [{"value": 7}]}),
        json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "maybe"}),
        json!({"op": "replace", "value": {"active": 1}}),
        json!({"op": "replace", "value": "active"}),
        json!({"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "value": "x"}),
    ];
    for op in cases {
        assert_eq!(
            user_error(alice(), json!([op.clone()])),
            "invalidValue",
            "{op}"
        );
    }
}

#[test]
fn bad_paths_are_invalid_path_and_bad_filters_invalid_filter() {
    let cases = [
        (
            json!({"op": "replace", "path": "favouriteColour", "value": "blue"}),
            "invalidPath",
        ),
        (
            json!({"op": "replace", "value": {"favouriteColour": "blue"}}),
            "invalidPath",
        ),
        (
            json!({"op": "remove", "path": "name.nickName"}),
            "invalidPath",
        ),
        (
            json!({"op": "add", "path": "urn:example:custom:x[value eq 1]", "value": 1}),
            "invalidPath",
        ),
        (
            json!({"op": "remove", "path": "emails[type eq \"work\""}),
            "invalidPath",
        ),
        (
            json!({"op": "remove", "path": "emails[type equals \"work\"]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "remove", "path": "emails[nope eq \"work\"]"}),
            "invalidFilter",
        ),
    ];
    for (op, scim_type) in cases {
        assert_eq!(user_error(alice(), json!([op.clone()])), scim_type, "{op}");
    }
}

#[test]
fn a_failing_operation_applies_nothing() {
    let ops = parse(json!({"Operations": [
        {"op": "replace", "path": "title", "value": "Queen"},
        {"op": "remove", "path": "userName"}
    ]}))
    .unwrap();
    let mut data = object(alice());
    let err = apply(&USER_RESOURCE, &mut data, &ops).unwrap_err();
    assert_eq!(err.scim_type, Some(crate::scim::ScimType::Mutability));
    assert!(err.detail.starts_with("Operations[1]:"), "{}", err.detail);
    assert_eq!(Value::Object(data), alice());

    let ops = parse(json!({"Operations": [
        {"op": "add", "path": "members", "value": [{"value": "u1"}]},
        {"op": "replace", "path": "id", "value": "x"}
    ]}))
    .unwrap();
    let mut data = object(group());
    assert!(apply(&GROUP_RESOURCE, &mut data, &ops).is_err());
    assert_eq!(Value::Object(data), group());
}

#[test]
fn operations_apply_in_order() {
    let data = patch_user(
        alice(),
        json!([
            {"op": "remove", "path": "emails"},
            {"op": "add", "path": "emails", "value": {"value": "first@example.com"}},
            {"op": "replace", "path": "emails[value eq \"first@example.com\"].type", "value": "work"},
            {"op": "remove", "path": "name.givenName"},
            {"op": "add", "path": "name.givenName", "value": "Second"}
        ]),
    );
    assert_eq!(
        data["emails"],
        json!([{"value": "first@example.com", "type": "work"}])
    );
    assert_eq!(
        data["name"],
        json!({"familyName": "Liddell", "givenName": "Second"})
    );
}

#[test]
fn the_enterprise_extension_as_a_whole_and_by_attribute() {
    let data = patch_user(
        alice(),
        json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "value": {"employeeNumber": "42", "department": "R&D"}}]),
    );
    assert_eq!(
        data[ENTERPRISE_URN],
        json!({"employeeNumber": "42", "department": "R&D"})
    );
    let data = patch_user(
        data,
        json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "43"},
               {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]),
    );
    assert_eq!(data[ENTERPRISE_URN], json!({"employeeNumber": "43"}));
    // Removing the last extension attribute removes the extension key altogether.
    let data = patch_user(
        data,
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"}]),
    );
    assert!(data.get(ENTERPRISE_URN).is_none(), "{data}");
    let data = patch_user(
        json!({"userName": "a", ENTERPRISE_URN: {"costCenter": "7"}}),
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]),
    );
    assert_eq!(data, json!({"userName": "a"}));
}

/// scim2-models serialises an extension object with its own `schemas` inside; like the
/// top-level `schemas` it is server-owned and ignored, not an unknown attribute.
#[test]
fn a_whole_extension_value_may_repeat_its_schemas() {
    for op in ["add", "replace"] {
        let data = patch_user(
            alice(),
            json!([{"op": op, "path": ENTERPRISE_URN,
                    "value": {"schemas": [ENTERPRISE_URN], "employeeNumber": "42",
                              "manager": {"value": "m1"}}}]),
        );
        assert_eq!(
            data[ENTERPRISE_URN],
            json!({"employeeNumber": "42", "manager": {"value": "m1"}}),
            "{op}"
        );
        let data = patch_user(
            alice(),
            json!([{"op": op, "value": {ENTERPRISE_URN: {"schemas": [ENTERPRISE_URN], "division": "X"}}}]),
        );
        assert_eq!(data[ENTERPRISE_URN], json!({"division": "X"}), "{op}");
    }
}

// ---------------------------------------------------------------------------------------
// IdP dialects, with the bodies the IdPs send (idp-behaviour.md)

#[test]
fn okta_pathless_deactivate_and_reactivate() {
    // §1.5, hard case 5.
    let data = patch_user(
        alice(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}),
    );
    assert_eq!(data["active"], false);
    let data = patch_user(
        data,
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}),
    );
    assert_eq!(data, alice());
}

#[test]
fn entra_active_as_strings_and_booleans_in_any_case_of_op() {
    // §2.5, hard cases 1 and 2.
    let cases = [
        (
            json!({"op": "Replace", "path": "active", "value": "False"}),
            false,
        ),
        (
            json!({"op": "replace", "path": "active", "value": false}),
            false,
        ),
        (
            json!({"op": "Replace", "path": "active", "value": "false"}),
            false,
        ),
        (
            json!({"op": "Replace", "path": "active", "value": "True"}),
            true,
        ),
        (
            json!({"op": "REPLACE", "path": "Active", "value": "TRUE"}),
            true,
        ),
        (
            json!({"op": "Add", "path": "active", "value": "False"}),
            false,
        ),
    ];
    for (op, want) in cases {
        let data = patch_user(
            alice(),
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[op.clone()]}),
        );
        assert_eq!(data["active"], want, "{op}");
    }
}

#[test]
fn repeated_active_true_patches_are_idempotent() {
    // Entra's periodic `Replace active true` (§2.5, hard case 19).
    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"True"}]});
    let mut data = alice();
    for _ in 0..3 {
        let (after, outcome) = run(&USER_RESOURCE, data.clone(), body.clone()).unwrap();
        assert!(!outcome.data_changed);
        assert_eq!(after, data);
        data = after;
    }
}

#[test]
fn entra_multi_valued_and_single_valued_replaces() {
    // §2.4, current doc: the work email exists, and then does not.
    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
        {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]});
    let data = patch_user(alice(), body.clone());
    assert_eq!(
        data["emails"],
        json!([
            {"value": "updatedEmail@microsoft.com", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ])
    );
    assert_eq!(data["name"]["familyName"], "updatedFamilyName");

    let data = patch_user(json!({"userName": "bob"}), body.clone());
    assert_eq!(
        data["emails"],
        json!([{"type": "work", "value": "updatedEmail@microsoft.com"}])
    );
    // Sent again: still one work email.
    let data = patch_user(data, body);
    assert_eq!(data["emails"].as_array().unwrap().len(), 1);

    let data = patch_user(
        alice(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
            {"op":"Replace","path":"userName","value":"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"},
            {"op":"Add","path":"nickName","value":"Babs"}]}),
    );
    assert_eq!(
        data["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
    assert_eq!(data["nickName"], "Babs");
}

#[test]
fn entra_add_through_a_filter_on_a_non_empty_attribute_creates_the_element() {
    // thomaspoignant/scim-patch #176: Add to emails[type eq "work"] when only "home" exists.
    let data = patch_user(
        json!({"userName": "bob", "emails": [{"value": "b@home.example", "type": "home"}]}),
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "b@work.example"}]),
    );
    assert_eq!(
        data["emails"],
        json!([{"value": "b@home.example", "type": "home"}, {"type": "work", "value": "b@work.example"}])
    );
}

#[test]
fn entra_flag_pathless_replace_with_dotted_and_urn_keys() {
    // §2.4 with aadOptscim062020, hard case 7: keys are paths, never literal keys.
    let data = patch_user(
        alice(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
            {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
            {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}),
    );
    assert_eq!(
        data,
        json!({
            "userName": "alice@example.com",
            "name": {"givenName": "Kkom", "familyName": "Unua"},
            "emails": [
                {"value": "TestMhvaes@test.microsoft.com", "type": "work", "primary": true},
                {"value": "alice@home.example", "type": "home"}
            ],
            "active": true,
            "displayName": "Bjfe",
            ENTERPRISE_URN: {"employeeNumber": "Aklq"}
        })
    );
}

#[test]
fn pathless_value_with_an_extension_object() {
    for op in ["add", "replace"] {
        let data = patch_user(
            alice(),
            json!([{"op": op, "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7", "manager": {"value": "m1"}},
                "urn:ietf:params:scim:schemas:core:2.0:User": {"title": "Queen"}
            }}]),
        );
        assert_eq!(
            data[ENTERPRISE_URN],
            json!({"employeeNumber": "7", "manager": {"value": "m1"}}),
            "{op}"
        );
        assert_eq!(data["title"], "Queen", "{op}");
    }
    let data = patch_user(
        alice(),
        json!([{"op": "replace", "value": {
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager.value": "m2"}}}]),
    );
    assert_eq!(data[ENTERPRISE_URN], json!({"manager": {"value": "m2"}}));
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "add", "value": {
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"shoeSize": 9}}}])
        ),
        "invalidPath"
    );
}

#[test]
fn entra_null_and_empty_updates() {
    // SCIM_Null_Update_Test (§2.4): "" is stored as sent, null unassigns.
    let data = patch_user(
        json!({"userName": "bob", "title": "Boss", "nickName": "B", ENTERPRISE_URN: {"department": "R&D"}}),
        json!([{"op": "Replace", "path": "title", "value": ""},
               {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": ""},
               {"op": "Replace", "path": "nickName", "value": null}]),
    );
    assert_eq!(
        data,
        json!({"userName": "bob", "title": "", ENTERPRISE_URN: {"department": ""}})
    );
    let data = patch_user(
        data,
        json!([{"op": "Replace", "path": "title", "value": null},
               {"op": "Replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": null}}]),
    );
    assert_eq!(data, json!({"userName": "bob"}));
}

#[test]
fn an_address_whose_every_field_is_cleared_goes_as_an_email_does() {
    let work = |field: &str, value: Value| json!({"op": "Replace", "path": format!("addresses[type eq \"work\"].{field}"), "value": value});
    let data = patch_user(
        json!({"userName": "bob",
               "addresses": [{"type": "work", "primary": true, "streetAddress": "1 Main St", "locality": "Leeds"},
                             {"type": "home", "locality": "York"}],
               "emails": [{"type": "work", "primary": true, "value": "bob@example.com"}]}),
        json!([work("streetAddress", json!("")), work("locality", json!("")),
               {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": ""}]),
    );
    assert_eq!(
        data["addresses"][0]["streetAddress"], "",
        "\"\" is stored as sent"
    );
    let data = patch_user(
        data,
        json!([
            work("streetAddress", Value::Null),
            work("locality", Value::Null)
        ]),
    );
    assert_eq!(
        data["addresses"],
        json!([{"type": "home", "locality": "York"}])
    );
    assert!(data.get("emails").is_none());
    // Removed field by field, the same.
    let data = patch_user(
        data,
        json!([{"op": "remove", "path": "addresses[type eq \"home\"].locality"}]),
    );
    assert!(data.get("addresses").is_none(), "{data}");
}

#[test]
fn entra_manager_variants() {
    // §2.6, hard case 9.
    let set_by_array = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"Add","path":"manager","value":[{"$ref":"http://example.com/scim/Users/00aa00aa","value":"00aa00aa"}]}]});
    let data = patch_user(alice(), set_by_array);
    assert_eq!(
        data[ENTERPRISE_URN],
        json!({"manager": {"$ref": "http://example.com/scim/Users/00aa00aa", "value": "00aa00aa"}})
    );

    // Changed by Replace, sent as a bare string, under the URN or bare; the old manager's
    // `$ref` does not survive the change.
    let moved = patch_user(
        data.clone(),
        json!([{"op": "Replace", "path": "manager", "value": {"value": "33dd"}}]),
    );
    assert_eq!(moved[ENTERPRISE_URN], json!({"manager": {"value": "33dd"}}));
    let moved = patch_user(
        data.clone(),
        json!([{"op": "Replace", "path": "manager.value", "value": "33dd"}]),
    );
    assert_eq!(moved[ENTERPRISE_URN], json!({"manager": {"value": "33dd"}}));
    let same = patch_user(
        data.clone(),
        json!([{"op": "Replace", "path": "manager.value", "value": "00aa00aa"}]),
    );
    assert_eq!(same, data);
    let data = patch_user(
        data,
        json!([{"op": "Replace", "path": "manager", "value": "11bb11bb"}]),
    );
    assert_eq!(data[ENTERPRISE_URN]["manager"]["value"], "11bb11bb");
    let data = patch_user(
        data,
        json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "22cc"}}}]),
    );
    assert_eq!(data[ENTERPRISE_URN]["manager"]["value"], "22cc");

    // Removed through a filter on the single-valued attribute…
    let remove = json!([{"op": "remove", "path": "manager[value eq \"22cc\"]"}]);
    let cleared = patch_user(data.clone(), remove.clone());
    assert!(cleared.get(ENTERPRISE_URN).is_none(), "{cleared}");
    // …which is a no-op, not an error, when that manager is no longer set.
    assert_eq!(patch_user(cleared.clone(), remove), cleared);
    let other = json!([{"op": "remove", "path": "manager[value eq \"someone-else\"]"}]);
    assert_eq!(patch_user(data.clone(), other), data);

    // …or by a Replace with an empty value.
    for empty in [json!(""), json!(null), json!({"value": ""}), json!([])] {
        let body = json!([{"op": "Replace", "path": "manager", "value": empty}]);
        let cleared = patch_user(data.clone(), body.clone());
        assert!(cleared.get(ENTERPRISE_URN).is_none(), "{body}: {cleared}");
    }
    let body = json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": ""}]);
    assert!(patch_user(data, body).get(ENTERPRISE_URN).is_none());
}

#[test]
fn onelogin_single_email_object() {
    for op in ["add", "replace"] {
        let data = patch_user(
            json!({"userName": "carol"}),
            json!([{"op": op, "value": {"emails": {"value": "carol@example.com", "type": "work"}}}]),
        );
        assert_eq!(
            data["emails"],
            json!([{"value": "carol@example.com", "type": "work"}]),
            "{op}"
        );
        let data = patch_user(
            json!({"userName": "carol"}),
            json!([{"op": op, "path": "emails", "value": {"value": "carol@example.com"}}]),
        );
        assert_eq!(
            data["emails"],
            json!([{"value": "carol@example.com"}]),
            "{op}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Groups and members

#[test]
fn okta_pathless_group_replace_with_id_leaves_members_alone() {
    // §1.7, hard case 6.
    let (data, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations":[{"op":"replace","value":{"id":"abf4dd94-a4c0-4f67-89c9-76b03340cb9b","displayName":"Test SCIMv2"}}]}),
    );
    assert_eq!(
        data,
        json!({"displayName": "Test SCIMv2", "externalId": "8aa1"})
    );
    assert!(members.is_empty());
    // With `schemas` and `meta` echoed too.
    let (data, members) = patch_group(
        group(),
        json!([{"op": "replace", "value": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": GROUP_ID, "meta": {"resourceType": "Group"}, "displayName": "Renamed"}}]),
    );
    assert_eq!(data["displayName"], "Renamed");
    assert!(members.is_empty());
    // An echoed `"members": null` does not empty the group; an explicit path does.
    let (_, members) = patch_group(
        group(),
        json!([{"op": "replace", "value": {"id": GROUP_ID, "displayName": "Eng", "members": null}}]),
    );
    assert!(members.is_empty());
    let (_, members) = patch_group(
        group(),
        json!([{"op": "replace", "path": "members", "value": null}]),
    );
    assert_eq!(members, [MemberOp::Clear]);
    // Another id is ignored like any read-only value (RFC 7644 §3.5.1): the rename applies
    // and the id stays, since the id is not part of the data.
    let (data, members) = patch_group(
        group(),
        json!([{"op": "replace", "value": {"id": "not-this-group", "displayName": "Renamed"}}]),
    );
    assert_eq!(data["displayName"], "Renamed");
    assert!(data.get("id").is_none());
    assert!(members.is_empty());
}

#[test]
fn entra_group_rename_with_a_plain_string() {
    let (data, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}),
    );
    assert_eq!(
        data["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert!(members.is_empty());
}

#[test]
fn okta_membership_remove_by_filter_then_add_in_order() {
    // §1.7, hard case 4.
    let (data, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations":[{"op":"remove","path":"members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
            {"op":"add","path":"members","value":[{"value":"23a35c27-23d3-4c03-b4c5-6443c09e7173","display":"test.user@okta.local"}]}]}),
    );
    assert_eq!(data, group());
    assert_eq!(
        members,
        [
            MemberOp::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()]),
            MemberOp::Add(vec![MemberValue {
                value: "23a35c27-23d3-4c03-b4c5-6443c09e7173".into(),
                display: Some("test.user@okta.local".into()),
                kind: MemberKind::User,
            }]),
        ]
    );
}

#[test]
fn okta_full_membership_push_replaces_members() {
    let (_, members) = patch_group(
        group(),
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "a"}, {"value": "u2", "display": null}]}]),
    );
    assert_eq!(
        members,
        [MemberOp::Replace(vec![
            MemberValue {
                value: "u1".into(),
                display: Some("a".into()),
                kind: MemberKind::User
            },
            member("u2"),
        ])]
    );
    let (_, members) = patch_group(
        group(),
        json!([{"op": "replace", "path": "members", "value": []}]),
    );
    assert_eq!(members, [MemberOp::Clear]);
    let (_, members) = patch_group(
        group(),
        json!([{"op": "replace", "value": {"displayName": "Eng", "members": [{"value": "u3"}]}}]),
    );
    assert_eq!(members, [MemberOp::Replace(vec![member("u3")])]);
}

#[test]
fn entra_member_add_and_value_array_removal() {
    // §2.7, hard case 3: remove with a value removes only those; without one, clears.
    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}),
    );
    assert_eq!(
        members,
        [MemberOp::Add(vec![member("f648f8d5ea4e4cd38e9c")])]
    );

    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}),
    );
    assert_eq!(
        members,
        [MemberOp::Remove(vec!["f648f8d5ea4e4cd38e9c".into()])]
    );

    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"value":"u1091"}, {"value":"u1092"}]}]}),
    );
    assert_eq!(
        members,
        [MemberOp::Remove(vec!["u1091".into(), "u1092".into()])]
    );

    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}]}),
    );
    assert_eq!(members, [MemberOp::Clear]);

    // An empty value array removes nobody; it never clears the group.
    let (_, members) = patch_group(
        group(),
        json!([{"op": "Remove", "path": "members", "value": []}]),
    );
    assert!(members.is_empty());

    // With the flag: a filter path.
    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]}),
    );
    assert_eq!(
        members,
        [MemberOp::Remove(vec![
            "7f4bc1a3-285e-48ae-8202-5accb43efb0e".into()
        ])]
    );
}

#[test]
fn member_filters_become_removals_by_id_or_by_filter() {
    let (_, members) = patch_group(
        group(),
        json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}]),
    );
    assert_eq!(members, [MemberOp::Remove(vec!["a".into(), "b".into()])]);
    let (_, members) = patch_group(
        group(),
        json!([{"op": "remove", "path": "members[type eq \"Group\"]"}]),
    );
    assert!(matches!(
        members.as_slice(),
        [MemberOp::RemoveMatching(Filter::Compare { .. })]
    ));
}

#[test]
fn microsoft_postman_member_shapes() {
    // §2.10: `displayName` for `display`, a junk "name" key, no `type`.
    let (_, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"name":"addMember","op":"add","path":"members",
            "value":[{"displayName":"new User","value":"u1"}, {"value":"g2","type":"Group","display":null}]}]}),
    );
    assert_eq!(
        members,
        [MemberOp::Add(vec![
            MemberValue {
                value: "u1".into(),
                display: Some("new User".into()),
                kind: MemberKind::User
            },
            MemberValue {
                value: "g2".into(),
                display: None,
                kind: MemberKind::Group
            },
        ])]
    );
    // A bare string is taken as the member's id; storage checks it exists.
    let (data, members) = patch_group(
        group(),
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"id":GROUP_ID,"Operations":[{"op":"add","path":"members","value":"string id 1"}]}),
    );
    assert_eq!(data, group());
    assert_eq!(members, [MemberOp::Add(vec![member("string id 1")])]);
    // Pathless add of members.
    let (_, members) = patch_group(
        group(),
        json!([{"op": "add", "value": {"members": [{"value": "u9"}]}}]),
    );
    assert_eq!(members, [MemberOp::Add(vec![member("u9")])]);
}

#[test]
fn malformed_members_are_rejected() {
    let cases = [
        (
            json!({"op": "add", "path": "members", "value": [{"display": "no id"}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": ""}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": 42}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [7]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": "u", "type": "Device"}]}),
            "invalidValue",
        ),
        // MemberValue sub-attributes are immutable: whole members are added and removed.
        (
            json!({"op": "replace", "path": "members[value eq \"u\"].display", "value": "x"}),
            "mutability",
        ),
        (
            json!({"op": "remove", "path": "members.value"}),
            "mutability",
        ),
        (
            json!({"op": "replace", "path": "members[value eq \"u\"]", "value": {"value": "v"}}),
            "mutability",
        ),
        (
            json!({"op": "remove", "path": "members[value eq \"u\""}),
            "invalidPath",
        ),
    ];
    for (op, scim_type) in cases {
        assert_eq!(group_error(json!([op.clone()])), scim_type, "{op}");
    }
}

#[test]
fn users_have_no_members() {
    assert_eq!(
        user_error(
            alice(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u"}]}])
        ),
        "invalidPath"
    );
}

#[test]
fn a_patch_carries_at_most_max_operations() {
    let op = serde_json::json!({"op": "add", "path": "emails", "value": [{"value": "a@x.io"}]});
    let body = |n: usize| {
        serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                           "Operations": vec![op.clone(); n]})
    };
    assert_eq!(parse(body(MAX_OPERATIONS)).unwrap().len(), MAX_OPERATIONS);
    let e = parse(body(MAX_OPERATIONS + 1)).unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(
        e.scim_type,
        Some(crate::scim::error::ScimType::InvalidValue)
    );
    assert!(e.detail.contains("at most 1000"), "{}", e.detail);
}

#[test]
fn a_run_of_adds_merges_equal_elements_whatever_ran_between_them() {
    // The adds after the first find equal elements through the index kept between them;
    // a replace or remove in between changes the list, and the next add must see that.
    let data = patch_user(
        alice(),
        json!([
            {"op": "add", "path": "emails", "value": [{"value": "a@x.example", "type": "other"}]},
            {"op": "add", "path": "emails", "value": [{"value": "A@X.example", "type": "OTHER", "display": "A"}]},
            {"op": "replace", "path": "emails[value eq \"a@x.example\"].value", "value": "b@x.example"},
            {"op": "add", "path": "emails", "value": [{"value": "a@x.example", "type": "other"}]},
            {"op": "add", "path": "emails", "value": [{"value": "b@x.example", "type": "other", "primary": true}]},
            {"op": "remove", "path": "emails[value eq \"alice@home.example\"]"},
            {"op": "add", "path": "emails", "value": [{"value": "alice@home.example", "type": "home"}]},
            {"op": "add", "path": "emails", "value": [{"value": "ALICE@home.example", "type": "Home"}]},
        ]),
    );
    assert_eq!(
        data["emails"],
        json!([
            {"value": "alice@example.com", "type": "work", "primary": false},
            {"value": "b@x.example", "type": "other", "display": "A", "primary": true},
            {"value": "a@x.example", "type": "other"},
            {"value": "alice@home.example", "type": "home"}
        ])
    );
}

/// Value filters cost a write what they compare: elements × comparisons, summed over the
/// request. One that would compare too much (a user with 30 000 emails and ten filters of
/// 150 comparisons each) is refused as `tooMany` before it holds every other write back;
/// a plain filter over the same list runs.
#[test]
fn value_filters_are_held_to_a_budget() {
    let emails: Vec<Value> = (0..30_000)
        .map(|i| json!({"value": format!("e{i}@example.com"), "type": "other"}))
        .collect();
    let data = json!({"userName": "many", "emails": emails});
    let terms: Vec<String> = (0..150).map(|i| format!("value co \"zq{i}\"")).collect();
    let heavy = format!("emails[{}].type", terms.join(" or "));
    let ops: Vec<Value> = (0..10)
        .map(|_| json!({"op": "replace", "path": heavy, "value": "work"}))
        .collect();
    assert_eq!(user_error(data, json!(ops)), "tooMany");
    // As many emails as a user's 64 KiB hold: a filter that names one is cheap.
    let emails: Vec<Value> = (0..1_000)
        .map(|i| json!({"value": format!("e{i}@example.com"), "type": "other"}))
        .collect();
    let data = json!({"userName": "many", "emails": emails});
    let light = json!([{"op": "replace", "path": "emails[value eq \"e7@example.com\"].type", "value": "work"}]);
    let patched = patch_user(data, light);
    assert_eq!(patched["emails"][7]["type"], "work");
}
