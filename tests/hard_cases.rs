//! idp-behaviour.md §9, "Known hard cases: the 20 most test-worthy", one test per item
//! (`hcNN_…`), every sub-point of each. Each replays the request shapes the item lists
//! (bodies verbatim from the doc where it gives them) against the real server over HTTP
//! and asserts what the IdP would observe: status, SCIM error `scimType`, and the
//! resulting resource and memberships read back by GET.

mod common;

use common::*;
use hyper::Method;
use serde_json::{Value, json};

const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const MS_GROUP_URN: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

fn patch_op(ops: Value) -> Value {
    json!({"schemas":[PATCH_URN],"Operations":ops})
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /Users?filter=…` with the filter form-encoded (spaces as `+`).
async fn find_users(s: &TestServer, filter: &str) -> Resp {
    s.get_owned(format!("/scim/v2/Users?filter={}", urlencode(filter)))
        .await
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn create_group(s: &TestServer, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":name,"members":members}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// A user with a display name, for the tests that read names back.
async fn create_named(s: &TestServer, user_name: &str, display: &str) -> String {
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":user_name,"displayName":display,
                    "emails":[{"value":user_name,"type":"work","primary":true}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

// --- 1 ----------------------------------------------------------------------------------

/// §9.1: `Add`/`Replace`/`Remove` (Entra), lowercase (Okta, Entra with the flag), any case;
/// an unknown op is 400 invalidSyntax and nothing of its PatchOp is applied.
#[tokio::test]
async fn hc01_case_insensitive_op() {
    let s = TestServer::start().await;
    let id = s.create_user("ops@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    for (add, replace, remove) in [
        ("Add", "Replace", "Remove"),
        ("add", "replace", "remove"),
        ("ADD", "REPLACE", "REMOVE"),
    ] {
        let r = s
            .patch(
                &path,
                &patch_op(json!([
                    {"op":add,"path":"nickName","value":format!("n-{add}")},
                    {"op":replace,"path":"title","value":format!("t-{replace}")},
                    {"op":add,"path":"locale","value":"en-US"},
                    {"op":remove,"path":"locale"}
                ])),
            )
            .await;
        assert_eq!(r.status, 200, "{add}: {}", r.text);
        let u = s.get(&path).await.json;
        assert_eq!(u["nickName"], format!("n-{add}"));
        assert_eq!(u["title"], format!("t-{replace}"));
        assert!(u.get("locale").is_none(), "{remove} removed it");
    }

    // Groups take the same verbs.
    let gid = create_group(&s, "Ops", &[]).await;
    let gpath = format!("/scim/v2/Groups/{gid}");
    let r = s
        .patch(
            &gpath,
            &patch_op(json!([{"op":"Add","path":"members","value":[{"value":id}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, vec![id.clone()]);
    let r = s
        .patch(
            &gpath,
            &patch_op(json!([{"op":"Remove","path":"members","value":[{"value":id}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(s.members_of(&gid).await.is_empty());

    // Unknown ops: 400 invalidSyntax, and the valid op before them is not applied.
    let before = s.get(&path).await.json;
    for bad in [
        json!("move"),
        json!("copy"),
        json!("Test"),
        json!(""),
        json!(7),
    ] {
        let r = s
            .patch(
                &path,
                &patch_op(json!([
                    {"op":"replace","path":"nickName","value":"half-applied"},
                    {"op":bad,"path":"title","value":"x"}
                ])),
            )
            .await;
        r.assert_error(400, Some("invalidSyntax"));
    }
    s.patch(
        &gpath,
        &patch_op(json!([{"op":"merge","path":"members","value":[{"value":id}]}])),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    assert_eq!(s.get(&path).await.json, before);
    assert!(s.members_of(&gid).await.is_empty());
}

// --- 2 ----------------------------------------------------------------------------------

/// §9.2: `active` as `"False"`, `"True"`, `"false"` in PATCH values (with and without a
/// path) and in POST and PUT bodies; coerced wherever the schema says boolean, and only
/// there. A string that is no boolean stays a 400.
#[tokio::test]
async fn hc02_string_booleans() {
    let s = TestServer::start().await;
    // Entra's Postman: POST "active": "True" → 201 with active === true.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"strbool@example.com","active":"True",
                    "emails":[{"value":"strbool@example.com","type":"work","primary":"true"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(
        r.json["emails"][0]["primary"], true,
        "every boolean attribute"
    );
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");

    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"strbool2@example.com","active":"false"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["active"], false);

    for (value, expected) in [
        (json!("False"), false),
        (json!("True"), true),
        (json!("false"), false),
        (json!("true"), true),
        (json!("FALSE"), false),
        (json!(true), true),
    ] {
        let r = s
            .patch(
                &path,
                &patch_op(json!([{"op":"Replace","path":"active","value":value}])),
            )
            .await;
        assert_eq!(r.status, 200, "{value}: {}", r.text);
        assert_eq!(r.json["active"], expected, "{value}");
        assert_eq!(s.get(&path).await.json["active"], expected, "{value}");
    }
    // In a pathless value, and as a sub-attribute through a filter.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"active":"False"}}])),
        )
        .await;
    assert_eq!(r.json["active"], false, "{}", r.text);
    let r = s
        .patch(
            &path,
            &patch_op(
                json!([{"op":"Replace","path":"emails[type eq \"work\"].primary","value":"False"}]),
            ),
        )
        .await;
    assert_eq!(r.json["emails"][0]["primary"], false, "{}", r.text);

    // PUT with a string boolean.
    let mut user = s.get(&path).await.json;
    user["active"] = json!("True");
    let r = s.put(&path, &user).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);

    // A string attribute keeps a boolean-looking string as a string.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"title","value":"True"}])),
        )
        .await;
    assert_eq!(r.json["title"], "True");

    // Filters compare string booleans as booleans too.
    let r = find_users(
        &s,
        "active eq \"True\" and userName eq \"strbool@example.com\"",
    )
    .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);

    // Not a boolean at all: refused, nothing changed.
    for bad in [json!("yes"), json!("0"), json!(1)] {
        s.patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"active","value":bad}])),
        )
        .await
        .assert_error(400, Some("invalidValue"));
    }
    s.post(
        "/scim/v2/Users",
        &json!({"userName":"strbool3@example.com","active":"maybe"}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    assert_eq!(s.get(&path).await.json["active"], true);
}

// --- 3 ----------------------------------------------------------------------------------

/// §9.3: Entra's default removal (`path: "members"` plus a value array) removes only the
/// listed ids; the RFC's `remove` of `members` without a value clears the group. Both in
/// one suite, on the same group.
#[tokio::test]
async fn hc03_entra_default_member_removal() {
    let s = TestServer::start().await;
    let a = s.create_user("a@contoso.com").await;
    let b = s.create_user("b@contoso.com").await;
    let c = s.create_user("c@contoso.com").await;
    let d = s.create_user("d@contoso.com").await;
    let gid = create_group(&s, "Removals", &[]).await;
    let path = format!("/scim/v2/Groups/{gid}");
    // Entra's add, verbatim shape.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Add","path":"members","value":[
                {"$ref":null,"value":a},{"$ref":null,"value":b},{"$ref":null,"value":c},{"$ref":null,"value":d}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // Tutorial form: `$ref: null`.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":a}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, sorted(&[&b, &c, &d]));
    // Compat-doc form: `value` only.
    s.patch(
        &path,
        &patch_op(json!([{"op":"Remove","path":"members","value":[{"value":b}]}])),
    )
    .await;
    assert_eq!(s.members_of(&gid).await, sorted(&[&c, &d]));
    // Removing someone who is no longer a member is a harmless no-op (Entra retries).
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":a}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, sorted(&[&c, &d]));
    // The removed users no longer list the group; the others still do.
    assert!(
        s.get(&format!("/scim/v2/Users/{a}"))
            .await
            .json
            .get("groups")
            .is_none()
    );
    assert_eq!(
        s.get(&format!("/scim/v2/Users/{c}")).await.json["groups"][0]["value"],
        gid.as_str()
    );

    // RFC 7644 §3.5.2.2 (and Microsoft's Postman "remove all users"): no value clears.
    let r = s
        .patch(&path, &patch_op(json!([{"op":"remove","path":"members"}])))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(s.members_of(&gid).await.is_empty());
    // The group itself and the users survive.
    assert_eq!(s.get(&path).await.json["displayName"], "Removals");
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 4);
}

// --- 4 ----------------------------------------------------------------------------------

/// §9.4: `members[value eq "id"]` removal (Okta, Entra with the flag), alone and mixed with
/// an `add` in one PatchOp, applied in request order.
#[tokio::test]
async fn hc04_filtered_member_removal() {
    let s = TestServer::start().await;
    let u1 = s.create_user("u1@okta.local").await;
    let u2 = s.create_user("u2@okta.local").await;
    let u3 = s.create_user("u3@okta.local").await;
    let gid = create_group(&s, "Filtered", &[&u1, &u2]).await;
    let path = format!("/scim/v2/Groups/{gid}");

    // Entra with the flag, alone.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("members[value eq \"{u2}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, vec![u1.clone()]);

    // Okta, verbatim shape: remove one, add another (no `type`, `display` = userName).
    let r = s
        .patch(
            &path,
            &patch_op(json!([
                {"op":"remove","path":format!("members[value eq \"{u1}\"]")},
                {"op":"add","path":"members","value":[{"value":u3,"display":"u3@okta.local"}]}
            ])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, vec![u3.clone()]);

    // In order: add then remove the same id leaves it out; remove then add puts it back.
    s.patch(
        &path,
        &patch_op(json!([
            {"op":"add","path":"members","value":[{"value":u1}]},
            {"op":"remove","path":format!("members[value eq \"{u1}\"]")}
        ])),
    )
    .await;
    assert_eq!(s.members_of(&gid).await, vec![u3.clone()]);
    s.patch(
        &path,
        &patch_op(json!([
            {"op":"remove","path":format!("members[value eq \"{u3}\"]")},
            {"op":"add","path":"members","value":[{"value":u3}]}
        ])),
    )
    .await;
    assert_eq!(s.members_of(&gid).await, vec![u3.clone()]);

    // Several ids joined by `or`, and a filter on a member id that is not there.
    s.patch(
        &path,
        &patch_op(json!([{"op":"add","path":"members","value":[{"value":u1},{"value":u2}]}])),
    )
    .await;
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("members[value eq \"{u1}\" or value eq \"{u2}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, vec![u3.clone()]);
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":"members[value eq \"not-a-member\"]"}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, vec![u3.clone()]);
}

// --- 5 ----------------------------------------------------------------------------------

/// §9.5: Okta's pathless `replace` of `active`, both ways, verbatim; 200 with the resource,
/// nothing else touched.
#[tokio::test]
async fn hc05_okta_pathless_user_replace() {
    let s = TestServer::start().await;
    let id = s.create_user("okta.pathless@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let before = s.get(&path).await.json;
    let r = s
        .patch(
            &path,
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(
        (r.json["id"].as_str(), &r.json["active"]),
        (Some(id.as_str()), &json!(false))
    );
    let after = s.get(&path).await.json;
    assert_eq!(after["active"], false);
    for key in ["userName", "name", "emails", "schemas"] {
        assert_eq!(after[key], before[key], "{key} untouched");
    }
    let r = s
        .patch(
            &path,
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);
    let after = s.get(&path).await.json;
    assert_eq!(after["active"], true);
    assert_eq!(after["meta"]["created"], before["meta"]["created"]);
}

// --- 6 ----------------------------------------------------------------------------------

/// §9.6: Okta's pathless group `replace` carrying the read-only `id`: no 400, `id`
/// unchanged, `members` untouched; the rename it carries is applied.
#[tokio::test]
async fn hc06_okta_pathless_group_replace_with_id() {
    let s = TestServer::start().await;
    let u1 = s.create_user("m1@okta.local").await;
    let u2 = s.create_user("m2@okta.local").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Test SCIMv2","members":[]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Groups/{gid}");

    // Straight after create, on an empty group.
    let r = s
        .patch(
            &path,
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations":[{"op":"replace","value":{"id":gid,"displayName":"Test SCIMv2"}}]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.get(&path).await.json["displayName"], "Test SCIMv2");

    // With members: the rename Okta sends on every membership update leaves them alone.
    s.patch(
        &path,
        &patch_op(json!([{"op":"add","path":"members","value":[{"value":u1,"display":"m1@okta.local"},{"value":u2,"display":"m2@okta.local"}]}])),
    )
    .await;
    let version = s.get(&path).await.json["meta"]["version"].clone();
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"id":gid,"displayName":"Test SCIMv2"}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.header("etag"), version.as_str(), "nothing changed");
    let r = s.get(&path).await;
    assert_eq!(member_ids(&r.json), sorted(&[&u1, &u2]));
    assert_eq!(r.json["meta"]["version"], version, "nothing changed");
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"id":gid,"displayName":"Renamed SCIMv2"}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let g = s.get(&path).await.json;
    assert_eq!(g["id"], gid.as_str());
    assert_eq!(g["displayName"], "Renamed SCIMv2");
    assert_eq!(member_ids(&g), sorted(&[&u1, &u2]));
    // `"members": null` echoed in such a value is not a request to empty the group.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"id":gid,"displayName":"Renamed SCIMv2","members":null}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, sorted(&[&u1, &u2]));
    // The same group is still at the same URL; a lookup finds it by the new name.
    let r = s
        .get("/scim/v2/Groups?filter=displayName%20eq%20%22Renamed%20SCIMv2%22&excludedAttributes=members")
        .await;
    assert_eq!(ids(&r.json), vec![gid.clone()]);

    // Another `id` in the value (a replayed or copied body) is ignored like any read-only
    // value (RFC 7644 §3.5.1), never a 400: the rename applies and the id stays.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"id":"abf4dd94-a4c0-4f67-89c9-76b03340cb9b","displayName":"X"}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let after = s.get(&path).await;
    assert_eq!(
        (
            after.json["id"].as_str(),
            after.json["displayName"].as_str()
        ),
        (Some(gid.as_str()), Some("X"))
    );
    assert_eq!(s.members_of(&gid).await, sorted(&[&u1, &u2]));
}

// --- 7 ----------------------------------------------------------------------------------

/// §9.7: Entra (with the flag)'s pathless replace whose keys are dotted sub-attribute paths
/// and URN-qualified names: applied as paths, never stored as literal keys.
#[tokio::test]
async fn hc07_entra_pathless_dotted_and_urn_keys() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"dotted@contoso.com","name":{"givenName":"Old","familyName":"Name","middleName":"Keep"},
                    "emails":[{"type":"work","value":"old@contoso.com","primary":true}]}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    // Verbatim from the compat doc.
    let r = s
        .patch(
            &format!("{path}?aadOptscim062020"),
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
                {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
                {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(u["displayName"], "Bjfe");
    assert_eq!(
        u["name"],
        json!({"givenName":"Kkom","familyName":"Unua","middleName":"Keep"}),
        "sub-attributes not named are kept"
    );
    assert_eq!(u[ENTERPRISE_URN], json!({"employeeNumber":"Aklq"}));
    assert!(
        u["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE_URN))
    );
    assert_eq!(
        u["emails"],
        json!([{"type":"work","value":"TestMhvaes@test.microsoft.com","primary":true}])
    );
    let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| *k == ENTERPRISE_URN || !(k.contains('.') || k.starts_with("urn:"))),
        "no literal dotted or URN-attribute keys: {keys:?}"
    );

    // The same with `add`, with a dotted URN sub-attribute, in any case.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"add","value":{"NAME.HONORIFICPREFIX":"Dr.",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"R&D",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value":"boss-1"}}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(u["name"]["honorificPrefix"], "Dr.");
    assert_eq!(u["name"]["givenName"], "Kkom");
    assert_eq!(u[ENTERPRISE_URN]["department"], "R&D");
    assert_eq!(u[ENTERPRISE_URN]["employeeNumber"], "Aklq");
    assert_eq!(u[ENTERPRISE_URN]["manager"]["value"], "boss-1");
    // An unknown dotted key is refused, not stored.
    s.patch(
        &path,
        &patch_op(json!([{"op":"replace","value":{"name.shoeSize":"43"}}])),
    )
    .await
    .assert_error(400, Some("invalidPath"));
}

// --- 8 ----------------------------------------------------------------------------------

/// §9.8: filtered value paths. `Replace`/`Add` through a filter that matches nothing
/// creates the element the filter describes; it never duplicates the "work" type.
#[tokio::test]
async fn hc08_filtered_value_paths() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"paths@contoso.com","emails":[{"type":"home","value":"me@home.org"}]}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    let count_type = |u: &Value, attr: &str, ty: &str| {
        u[attr]
            .as_array()
            .map_or(0, |a| a.iter().filter(|e| e["type"] == ty).count())
    };

    // Replace with no "work" email yet: created, the home one kept.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"emails[type eq \"work\"].value","value":"work1@contoso.com"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(
        u["emails"],
        json!([{"type":"home","value":"me@home.org"},{"type":"work","value":"work1@contoso.com"}])
    );
    // Replace and Add again: the one "work" email changes, none is added.
    for (op, v) in [
        ("Replace", "work2@contoso.com"),
        ("Add", "work3@contoso.com"),
        ("add", "work4@contoso.com"),
    ] {
        let r = s
            .patch(
                &path,
                &patch_op(json!([{"op":op,"path":"emails[type eq \"work\"].value","value":v}])),
            )
            .await;
        assert_eq!(r.status, 200, "{op}: {}", r.text);
        let u = s.get(&path).await.json;
        assert_eq!(count_type(&u, "emails", "work"), 1, "{op}: {u}");
        assert_eq!(count_type(&u, "emails", "home"), 1, "{op}: {u}");
        let work = u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "work")
            .unwrap();
        assert_eq!(work["value"], v);
    }

    // addresses: Add with no addresses at all, then a second sub-attribute merges into
    // the same element; Replace then changes it in place.
    let r = s
        .patch(
            &path,
            &patch_op(json!([
                {"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"},
                {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Springfield"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.get(&path).await.json["addresses"],
        json!([{"type":"work","streetAddress":"1 Main St","locality":"Springfield"}])
    );
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"addresses[type eq \"work\"].streetAddress","value":"2 Side St"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(
        u["addresses"],
        json!([{"type":"work","streetAddress":"2 Side St","locality":"Springfield"}])
    );
    assert_eq!(count_type(&u, "addresses", "work"), 1);
    // Replace on a fresh user's addresses (no element of any type): created too.
    let other = s.create_user("paths2@contoso.com").await;
    let r = s
        .patch(
            &format!("/scim/v2/Users/{other}"),
            &patch_op(json!([{"op":"Replace","path":"addresses[type eq \"work\"].streetAddress","value":"3 New St"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["addresses"],
        json!([{"type":"work","streetAddress":"3 New St"}])
    );

    // The lookup Entra makes next finds the new value.
    let r = find_users(
        &s,
        "emails[type eq \"work\"].value eq \"work4@contoso.com\"",
    )
    .await;
    assert_eq!(ids(&r.json), vec![id.clone()]);
    // A filter that cannot describe an element (not an `eq`) and matches nothing: noTarget.
    s.patch(
        &path,
        &patch_op(
            json!([{"op":"Replace","path":"phoneNumbers[type ne \"work\"].value","value":"1"}]),
        ),
    )
    .await
    .assert_error(400, Some("noTarget"));
}

// --- 9 ----------------------------------------------------------------------------------

fn manager_of(u: &Value) -> &Value {
    &u[ENTERPRISE_URN]["manager"]
}

/// §9.9: every way Entra sets and removes a manager; GET returns it as
/// an object (`{value, $ref}`) under the enterprise extension key, never at the top level
/// and never as a bare string. When the manager is a user of this directory, `$ref` is its
/// location (computed on read); `displayName` is not filled in (see `resource::show_manager`:
/// the public conformance checker compares PATCH answers with what it sent); a manager the
/// directory does not hold keeps only what was sent.
#[tokio::test]
async fn hc09_manager_variants() {
    let s = TestServer::start().await;
    let boss = create_named(&s, "boss@contoso.com", "The Boss").await;
    let boss2 = create_named(&s, "boss2@contoso.com", "Second Boss").await;
    let id = s.create_user("report@contoso.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let expect = |mid: &str, _display: &str| json!({"value": mid, "$ref": s.url(&format!("/scim/v2/Users/{mid}"))});
    let assert_shape = |u: &Value| {
        assert!(u.get("manager").is_none(), "never at the top level: {u}");
        assert!(
            u["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(ENTERPRISE_URN)),
            "{u}"
        );
        assert!(
            manager_of(u).is_object(),
            "an object, never a bare string: {u}"
        );
    };

    // 1. Add, bare `manager` path, array value with `$ref` and `value` (tutorial).
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Add","path":"manager","value":[
                {"$ref":format!("http://.../scim/Users/{boss}"),"value":boss}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        manager_of(&r.json),
        &expect(&boss, "The Boss"),
        "the PATCH answer too"
    );
    let u = s.get(&path).await.json;
    assert_shape(&u);
    assert_eq!(manager_of(&u), &expect(&boss, "The Boss"));
    // The same GET in a list.
    let r = find_users(&s, &format!("id eq \"{id}\"")).await;
    assert_eq!(
        manager_of(&r.json["Resources"][0]),
        &expect(&boss, "The Boss")
    );

    // Entra's manager check: `id` and `manager`, as the doc parses it.
    let r = find_users(&s, &format!("id eq \"{id}\" and manager eq \"{boss}\"")).await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);

    // 2. Replace with a plain string under the extension (scimple #1242).
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":boss2}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_shape(&u);
    assert_eq!(manager_of(&u), &expect(&boss2, "Second Boss"));
    // 3. Remove with a filter on the single-valued attribute.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("manager[value eq \"{boss2}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert!(u.get(ENTERPRISE_URN).is_none(), "{u}");
    assert_eq!(u["schemas"], json!([USER_URN]));
    // ... which is a no-op when that manager is no longer set.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("manager[value eq \"{boss2}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // 4. A string in a create body, under the extension.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN, ENTERPRISE_URN],"userName":"report2@contoso.com",
                    ENTERPRISE_URN:{"manager":boss}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(manager_of(&r.json), &expect(&boss, "The Boss"));

    // 5. Replace with an empty value clears it (the validator's "remove"), in each shape.
    for empty in [json!(""), json!({"value":""}), json!([]), json!(null)] {
        s.patch(
            &path,
            &patch_op(json!([{"op":"Add","path":"manager","value":[{"value":boss}]}])),
        )
        .await;
        assert_eq!(manager_of(&s.get(&path).await.json)["value"], boss.as_str());
        let r = s
            .patch(
                &path,
                &patch_op(json!([{"op":"Replace","path":"manager","value":empty}])),
            )
            .await;
        assert_eq!(r.status, 200, "{empty}: {}", r.text);
        assert!(
            s.get(&path).await.json.get(ENTERPRISE_URN).is_none(),
            "{empty}"
        );
    }

    // Remove with a value (Entra's habit for references): only the manager it names. A
    // change of manager that adds the new one first, then removes the old one by value,
    // keeps the new one; a value naming someone else removes nothing.
    s.patch(
        &path,
        &patch_op(json!([{"op":"Add","path":"manager","value":[{"value":boss}]}])),
    )
    .await;
    let r = s
        .patch(
            &path,
            &patch_op(json!([
                {"op":"Add","path":"manager","value":[{"value":boss2}]},
                {"op":"Remove","path":"manager","value":[{"$ref":null,"value":boss}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        manager_of(&s.get(&path).await.json)["value"],
        boss2.as_str()
    );
    for other in [
        json!({"op":"Remove","path":"manager","value":{"value":boss}}),
        json!({"op":"Remove","path":"manager","value":[]}),
        json!({"op":"remove","path":"manager.value","value":boss}),
    ] {
        let r = s.patch(&path, &patch_op(json!([other]))).await;
        assert_eq!(r.status, 200, "{other}: {}", r.text);
        assert_eq!(
            manager_of(&s.get(&path).await.json)["value"],
            boss2.as_str(),
            "{other}"
        );
    }
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Remove","path":"manager","value":[{"value":boss2}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(s.get(&path).await.json.get(ENTERPRISE_URN).is_none());

    // A client-sent `displayName` is read-only: ignored.
    s.patch(
        &path,
        &patch_op(
            json!([{"op":"Add","path":"manager","value":{"value":boss,"displayName":"Forged"}}]),
        ),
    )
    .await;
    assert_eq!(
        manager_of(&s.get(&path).await.json),
        &expect(&boss, "The Boss")
    );

    // A manager this directory does not hold: returned as sent, nothing invented.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"manager","value":"not-provisioned-yet"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        manager_of(&s.get(&path).await.json),
        &json!({"value":"not-provisioned-yet"})
    );
    // Projection reaches the computed `$ref` like any other sub-attribute.
    s.patch(
        &path,
        &patch_op(json!([{"op":"Replace","path":"manager","value":{"value":boss}}])),
    )
    .await;
    let r = s
        .get(&format!(
            "{path}?attributes=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.$ref"
        ))
        .await;
    assert_eq!(
        r.json[ENTERPRISE_URN],
        json!({"manager":{"$ref": s.url(&format!("/scim/v2/Users/{boss}"))}}),
        "{}",
        r.text
    );
}

/// A manager's `$ref` is rendered from the request's host while the manager is a user here.
/// Okta's read-modify-write PUT sends it back: it is not stored, so it neither moves the
/// version nor outlives the manager with a host the server was once reached by.
#[tokio::test]
async fn hc09_a_manager_put_back_as_read_keeps_no_rendered_ref() {
    let s = TestServer::start().await;
    let boss = create_named(&s, "boss@okta.local", "Boss").await;
    let id = s.create_user("report@okta.local").await;
    let path = format!("/scim/v2/Users/{id}");
    s.patch(
        &path,
        &patch_op(json!([{"op":"add","path":"manager","value":{"value":boss}}])),
    )
    .await;
    let got = s.get(&path).await.json;
    assert!(manager_of(&got)["$ref"].is_string(), "{got}");
    let r = s.put(&path, &got).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["meta"]["version"], got["meta"]["version"]);
    let r = s.delete(&format!("/scim/v2/Users/{boss}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        manager_of(&s.get(&path).await.json),
        &json!({"value": boss}),
        "a manager no longer held shows only what the IdP sent"
    );
    // A `$ref` the IdP itself sent with a new manager is its own, and kept.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","path":"manager","value":{"value":"elsewhere","$ref":"https://hr.example/Users/elsewhere"}}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        manager_of(&s.get(&path).await.json)["$ref"],
        "https://hr.example/Users/elsewhere"
    );
}

// --- 10 ---------------------------------------------------------------------------------

/// §9.10: Okta's read-modify-write PUT: the echoed `id`, `meta`, `groups`, `password` and
/// an empty `middleName` are fine; read-only fields are ignored; an omitted `active` is not
/// false; everything the server returns round-trips unchanged.
#[tokio::test]
async fn hc10_okta_put_read_modify_write() {
    let s = TestServer::start().await;
    let boss = create_named(&s, "boss@okta.local", "Boss").await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"test.user@okta.local",
                "name":{"givenName":"Test","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
                "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
                "groups":[],"password":"1mz050nq","active":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    let gid = create_group(&s, "Okta Group", &[&id]).await;
    s.patch(
        &path,
        &patch_op(json!([{"op":"add","path":"manager","value":{"value":boss}}])),
    )
    .await;

    // 1. GET, then PUT it back verbatim: nothing changes but meta.
    let got = s.get(&path).await.json;
    assert_eq!(got["groups"][0]["value"], gid.as_str());
    let r = s.put(&path, &got).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let strip = |mut v: Value| {
        v["meta"] = Value::Null;
        v
    };
    assert_eq!(
        strip(r.json.clone()),
        strip(got.clone()),
        "every returned attribute round-trips"
    );
    assert_eq!(
        r.json["meta"]["version"], got["meta"]["version"],
        "a PUT of what was read changes nothing, the manager's rendered `$ref` included"
    );
    assert_eq!(
        s.members_of(&gid).await,
        vec![id.clone()],
        "groups is read-only"
    );

    // 2. The doc's verbatim PUT (id, empty groups, meta), plus password and an empty
    //    middleName, without `active`.
    let r = s
        .put(
            &path,
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":id,
                "userName":"test.user@okta.local","name":{"givenName":"Another","middleName":"Excited","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work","display":"test.user@okta.local"}],
                "active":true,"groups":[],"meta":{"resourceType":"User"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"]["middleName"], "Excited");
    assert_eq!(r.json["id"], id.as_str());
    let r = s
        .put(
            &path,
            &json!({"schemas":[USER_URN],"id":id,"userName":"test.user@okta.local",
                "name":{"givenName":"Another","middleName":"","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
                "groups":[{"value":"someone-elses-group"}],"password":"n3wPassw0rd",
                "meta":{"resourceType":"User","created":"2001-01-01T00:00:00Z","version":"W/\"1\""}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true, "an omitted active is not false");
    assert_eq!(r.json["name"]["middleName"], "", "stored as sent");
    assert!(r.json.get("password").is_none());
    assert_eq!(r.json["meta"]["created"], got["meta"]["created"]);
    assert_eq!(r.json["groups"][0]["value"], gid.as_str());
    assert_eq!(s.members_of(&gid).await, vec![id.clone()]);

    // 3. An inactive user stays inactive when a PUT omits active.
    s.patch(
        &path,
        &patch_op(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    let mut body = s.get(&path).await.json;
    body.as_object_mut().unwrap().remove("active");
    body["name"]["givenName"] = json!("Third");
    let r = s.put(&path, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    assert_eq!(r.json["name"]["givenName"], "Third");

    // 4. An id in the body naming another resource is ignored (read-only), not followed.
    let other = s.create_user("other@okta.local").await;
    body["id"] = json!(other);
    let r = s.put(&path, &body).await;
    assert_eq!(r.json["id"], id.as_str());
    assert_eq!(
        s.get(&format!("/scim/v2/Users/{other}")).await.json["userName"],
        "other@okta.local"
    );
}

// --- 11 ---------------------------------------------------------------------------------

/// §9.11: create bodies with client-sent extras, verbatim where the doc gives them.
///
/// Decisions:
/// - `schemas` is not enforced, so unknown URIs in it (Entra's second Group schema, and
///   the old doc's `…:enterprise:2.0User` typo) are accepted and ignored; responses list
///   only the schemas the stored resource uses. Rejecting them would fail real IdPs over a
///   list the server recomputes anyway.
/// - Attribute *data* under a URN that misspells one this server defines (the old doc's
///   `…:enterprise:2.0User`) or sits in SCIM's own namespaces is still 400 invalidSyntax:
///   that would be data silently misplaced. Under any other URN it is the client's own
///   extension (an IdP's custom attributes), kept as sent (`users.rs`).
/// - Enterprise attributes sent unqualified at the top level (the old Entra example's
///   `"department":null,"manager":null`) resolve into the extension, as they do in PATCH
///   paths and filters.
#[tokio::test]
async fn hc11_create_bodies_with_client_sent_extras() {
    let s = TestServer::start().await;
    // Okta: password and groups: [].
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
             "name":{"givenName":"Test","familyName":"User"},
             "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
             "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
             "groups":[],"password":"1mz050nq","active":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("password").is_none() && r.json.get("groups").is_none());
    assert_eq!(r.json["schemas"], json!([USER_URN]));

    // Entra, current doc: meta and roles: [].
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
             "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee","active":true,
             "emails":[{"primary":true,"type":"work","value":"Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],
             "meta":{"resourceType":"User"},
             "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("roles").is_none());
    assert_eq!(r.json["meta"]["resourceType"], "User");
    assert!(
        r.json["meta"]["created"].is_string(),
        "meta is the server's"
    );
    assert_eq!(
        r.json["schemas"],
        json!([USER_URN]),
        "no extension data, no extension URN"
    );

    // Entra, older doc, verbatim: the schema-URN typo and explicit top-level nulls,
    // including two enterprise attributes sent unqualified.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
             "externalId":"jyoung","userName":"jyoung@testuser.com","active":true,"addresses":null,"displayName":"Joy Young",
             "emails":[{"type":"work","value":"jyoung@Contoso.com","primary":true}],"meta":{"resourceType":"User"},
             "name":{"familyName":"Young","givenName":"Joy"},"phoneNumbers":null,"preferredLanguage":null,"title":null,
             "department":null,"manager":null}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["schemas"], json!([USER_URN]));
    for key in [
        "addresses",
        "phoneNumbers",
        "preferredLanguage",
        "title",
        "department",
        "manager",
    ] {
        assert!(r.json.get(key).is_none(), "{key} null means unassigned");
    }
    assert_eq!(
        r.json["emails"][0]["value"], "jyoung@Contoso.com",
        "stored as sent"
    );
    // Unqualified enterprise attributes with values land under the extension.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"flat@testuser.com","department":"Sales","employeeNumber":"42"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json[ENTERPRISE_URN],
        json!({"department":"Sales","employeeNumber":"42"})
    );
    assert!(r.json.get("department").is_none());
    assert_eq!(r.json["schemas"], json!([USER_URN, ENTERPRISE_URN]));

    // The enterprise URN listed before core, explicit nulls inside the extension.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[ENTERPRISE_URN, USER_URN],"userName":"ent.first@testuser.com",
                    ENTERPRISE_URN:{"department":"Ops","manager":null,"costCenter":null}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["schemas"], json!([USER_URN, ENTERPRISE_URN]));
    assert_eq!(r.json[ENTERPRISE_URN], json!({"department":"Ops"}));

    // Entra's group create, verbatim, with the unknown second schema URI.
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
             "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName","meta":{"resourceType":"Group"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["schemas"], json!([GROUP_URN]));
    assert_eq!(r.json["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    let gid = r.json["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/scim/v2/Groups/{gid}")).await.status, 200);
    // The same with `members: []` (some traces).
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN, MS_GROUP_URN],"displayName":"with members","members":[],"meta":{"resourceType":"Group"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Data under a URN that misspells the enterprise one is refused, not misplaced.
    s.post(
        "/scim/v2/Users",
        &json!({"schemas":[USER_URN],"userName":"typo@testuser.com",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0User":{"department":"Lost?"}}),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
}

// --- 12 ---------------------------------------------------------------------------------

/// §9.12: every lookup shape IdPs send before creating.
#[tokio::test]
async fn hc12_lookup_variants() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"Test_User@contoso.com","externalId":"jyoung","displayName":"BobIsAmazing",
                    "emails":[{"type":"work","value":"user@contoso.com"},{"type":"home","value":"home@contoso.com"}]}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    s.post(
        "/scim/v2/Users",
        &json!({"userName":"johnwong@contoso.com","externalId":"johnwong"}),
    )
    .await;
    let one = |r: &Resp| {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["totalResults"], 1, "{}", r.text);
        r.json["Resources"][0]["id"].as_str().unwrap().to_string()
    };

    // userName, URL-encoded with %20/%22, with `+`, and raw as Okta's engine sends it.
    for q in [
        "/scim/v2/Users?filter=userName%20eq%20%22Test_User%40contoso.com%22&startIndex=1&count=100",
        "/scim/v2/Users?filter=userName+eq+%22Test_User%40contoso.com%22",
        "/scim/v2/Users?filter=userName+eq+%22test_user%40CONTOSO.com%22",
    ] {
        assert_eq!(one(&s.get(q).await), id, "{q}");
    }
    // externalId, quoted, unquoted (older Entra doc), and `+`-encoded (in the wild).
    assert_eq!(
        one(&s
            .get("/scim/v2/Users?filter=externalId%20eq%20%22jyoung%22")
            .await),
        id
    );
    assert_eq!(
        one(&s
            .get("/scim/v2/Users?filter=externalId%20eq%20jyoung")
            .await),
        id
    );
    assert_eq!(
        one(&s.get("/scim/v2/Users?filter=externalId+eq+jyoung").await),
        id
    );
    let john = one(&s
        .get("/scim/v2/Users?filter=externalId+eq+%22johnwong%22")
        .await);
    assert_ne!(john, id);
    // externalId is caseExact (RFC 7643 §3.1): another case is another id.
    assert_eq!(
        s.get("/scim/v2/Users?filter=externalId%20eq%20%22JYOUNG%22")
            .await
            .json["totalResults"],
        0
    );
    // emails by type.
    assert_eq!(
        one(&find_users(&s, "emails[type eq \"work\"].value eq \"user@contoso.com\"").await),
        id
    );
    assert_eq!(
        find_users(&s, "emails[type eq \"work\"].value eq \"home@contoso.com\"")
            .await
            .json["totalResults"],
        0,
        "the home address is not a work address"
    );
    // Attribute names in any case (Microsoft's Postman), operators in any case.
    assert_eq!(
        one(&s
            .get("/scim/v2/Users/?filter=DisplayName+eq+%22BobIsAmazing%22")
            .await),
        id
    );
    assert_eq!(
        one(&find_users(&s, "USERNAME EQ \"test_user@contoso.com\"").await),
        id
    );
    assert_eq!(one(&find_users(&s, "ExternalID eq \"jyoung\"").await), id);
    // `and`, the only combinator Entra uses.
    assert_eq!(
        one(&find_users(
            &s,
            "userName eq \"Test_User@contoso.com\" and externalId eq \"jyoung\""
        )
        .await),
        id
    );
    assert_eq!(
        find_users(
            &s,
            "userName eq \"Test_User@contoso.com\" and externalId eq \"johnwong\""
        )
        .await
        .json["totalResults"],
        0
    );

    // Groups: displayName with excludedAttributes=members, in any case.
    let gid = create_group(&s, "Sales Team", &[&id]).await;
    for q in [
        "/scim/v2/Groups?excludedAttributes=members&filter=displayName%20eq%20%22Sales%20Team%22",
        "/scim/v2/Groups?filter=displayName+eq+%22sales+team%22&excludedAttributes=members",
        "/scim/v2/Groups?filter=DisplayName+eq+%22SALES+TEAM%22&excludedattributes=members",
    ] {
        let r = s.get(q).await;
        assert_eq!(ids(&r.json), vec![gid.clone()], "{q}: {}", r.text);
        assert!(r.json["Resources"][0].get("members").is_none(), "{q}");
        assert_eq!(r.json["Resources"][0]["displayName"], "Sales Team");
    }
    let r = s
        .get(&format!("/scim/v2/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(r.json.get("members").is_none());
    let r = s
        .get("/scim/v2/Groups?filter=displayName%20eq%20%22Sales%20Team%22%20and%20externalId%20pr")
        .await;
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);
}

// --- 13 ---------------------------------------------------------------------------------

fn assert_empty_list(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.json["schemas"], json!([LIST_URN]));
    assert!(r.json["totalResults"].is_u64(), "a number: {}", r.text);
    assert_eq!(r.json["totalResults"], 0);
    assert_eq!(
        r.json["Resources"],
        json!([]),
        "present and empty: {}",
        r.text
    );
    assert_eq!(r.json["startIndex"], 1);
    assert_eq!(r.json["itemsPerPage"], 0);
}

/// §9.13: an empty result is 200 with a ListResponse, `totalResults` the number 0 and
/// `Resources` `[]`: Entra's random-GUID test connection and Okta's invalid-user check,
/// on an empty and on a non-empty directory.
#[tokio::test]
async fn hc13_empty_results() {
    let s = TestServer::start().await;
    let entra = "/scim/v2/Users?filter=userName+eq+%2200aa00aa-bb11-cc22-dd33-44ee44ee44ee%22";
    let okta =
        "/scim/v2/Users?filter=userName%20eq%20%22abcdefgh%40example.com%22&startIndex=1&count=100";
    let groups =
        "/scim/v2/Groups?excludedAttributes=members&filter=displayName+eq+%2200aa00aa-bb11%22";
    for q in [entra, okta, groups, "/scim/v2/Users", "/scim/v2/Groups"] {
        assert_empty_list(&s.get(q).await);
    }
    s.create_user("someone@example.com").await;
    create_group(&s, "Someone's group", &[]).await;
    for q in [entra, okta, groups] {
        assert_empty_list(&s.get(q).await);
    }
    // POST /.search answers the same way.
    let r = s
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter":"userName eq \"nobody@example.com\""}),
        )
        .await;
    assert_empty_list(&r);
}

// --- 14 ---------------------------------------------------------------------------------

/// §9.14: both Okta suite variants. The 2016 copy's bare value is a malformed filter:
/// 400 invalidFilter. The later `userName eq "UPPERCASE"` is 200 and matches, because
/// `userName` is `caseExact: false`.
#[tokio::test]
async fn hc14_malformed_filter() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"Runscope300Hfluaklab151@example.com",
                    "name":{"givenName":"G","familyName":"F"},
                    "emails":[{"primary":true,"value":"Runscope300Hfluaklab151@example.com","type":"work"}],
                    "displayName":"G F","active":true}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    // 2016: `filter={{randomUsernameCaps}}`, raw and percent-encoded.
    for q in [
        "/scim/v2/Users?filter=RUNSCOPE300HFLUAKLAB151@EXAMPLE.COM",
        "/scim/v2/Users?filter=RUNSCOPE300HFLUAKLAB151%40EXAMPLE.COM",
    ] {
        s.get(q).await.assert_error(400, Some("invalidFilter"));
    }
    // Other malformed filters the same way.
    for f in [
        "userName eq",
        "userName \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\" and",
        "userName zz \"x\"",
    ] {
        find_users(&s, f)
            .await
            .assert_error(400, Some("invalidFilter"));
    }
    // Later ports: the uppercase userName, 200 and matching.
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22RUNSCOPE300HFLUAKLAB151%40EXAMPLE.COM%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.json), vec![id]);
}

// --- 15 ---------------------------------------------------------------------------------

/// §9.15: duplicate POSTs, an identical one and one differing only in `userName` case, get
/// 409 `uniqueness` with a full Error body (`status` a string), and create nothing.
#[tokio::test]
async fn hc15_uniqueness() {
    let s = TestServer::start().await;
    let body = json!({"schemas":[USER_URN],"userName":"Runscope300Hfluaklab151@example.com",
        "name":{"givenName":"G","familyName":"F"},
        "emails":[{"primary":true,"value":"Runscope300Hfluaklab151@example.com","type":"work"}],
        "displayName":"G F","active":true});
    let first = s.post("/scim/v2/Users", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let dup = s.post("/scim/v2/Users", &body).await;
    dup.assert_error(409, Some("uniqueness"));
    assert_eq!(dup.json["status"], "409", "a string, per RFC 7644 §3.12");
    let mut upper = body.clone();
    upper["userName"] = json!("RUNSCOPE300HFLUAKLAB151@EXAMPLE.COM");
    s.post("/scim/v2/Users", &upper)
        .await
        .assert_error(409, Some("uniqueness"));
    let mut lower = body.clone();
    lower["userName"] = json!("runscope300hfluaklab151@example.com");
    lower["externalId"] = json!("different");
    s.post("/scim/v2/Users", &lower)
        .await
        .assert_error(409, Some("uniqueness"));
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 1);

    // The same rule on a PATCH or PUT that renames onto a taken userName.
    let other = s.create_user("other@example.com").await;
    s.patch(
        &format!("/scim/v2/Users/{other}"),
        &patch_op(json!([{"op":"Replace","path":"userName","value":"RUNSCOPE300Hfluaklab151@example.com"}])),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    let mut put = upper.clone();
    put["userName"] = json!("runscope300HFLUAKLAB151@example.com");
    s.put(&format!("/scim/v2/Users/{other}"), &put)
        .await
        .assert_error(409, Some("uniqueness"));
    assert_eq!(
        s.get(&format!("/scim/v2/Users/{other}")).await.json["userName"],
        "other@example.com"
    );
    // Renaming a user to its own userName in another case is not a conflict.
    let r = s
        .patch(
            &format!("/scim/v2/Users/{other}"),
            &patch_op(json!([{"op":"Replace","path":"userName","value":"OTHER@example.com"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// --- 16 ---------------------------------------------------------------------------------

/// §9.16: 404 with the Error schema and a non-empty detail; 401 for a bad or missing token,
/// with the Error schema; 400 for malformed JSON on every write.
#[tokio::test]
async fn hc16_not_found_auth_and_malformed_json() {
    let s = TestServer::start().await;
    for p in [
        "/scim/v2/Users/010101001010101011001010101011",
        "/scim/v2/Groups/010101001010101011001010101011",
    ] {
        let r = s.get(p).await;
        r.assert_error(404, None);
        assert!(
            r.json["detail"]
                .as_str()
                .unwrap()
                .contains("010101001010101011001010101011")
        );
    }
    let put = json!({"schemas":[USER_URN],"userName":"x"});
    let patch = patch_op(json!([{"op":"replace","value":{"active":false}}]));
    for (m, body) in [
        (Method::PUT, Some(&put)),
        (Method::PATCH, Some(&patch)),
        (Method::DELETE, None),
    ] {
        s.call(
            m,
            "/scim/v2/Users/010101001010101011001010101011",
            &s.token,
            body,
        )
        .await
        .assert_error(404, None);
    }

    // Authentication: bad token, missing token, wrong scheme; discovery stays public.
    for token in [
        "not-a-token",
        "scimd_0000000000000000000000000000000000000000",
    ] {
        let r = s.call(Method::GET, "/scim/v2/Users", token, None).await;
        r.assert_error(401, None);
    }
    s.raw(Method::GET, "/scim/v2/Users?count=1", &[], "")
        .await
        .assert_error(401, None);
    s.raw(
        Method::POST,
        "/scim/v2/Users",
        &[
            ("authorization", "Bearer wrong"),
            ("content-type", "application/scim+json"),
        ],
        "{\"userName\":\"x\"}",
    )
    .await
    .assert_error(401, None);
    assert_eq!(
        s.get("/scim/v2/Users").await.json["totalResults"],
        0,
        "nothing written"
    );

    // Malformed JSON (Microsoft's Postman "junk" POST) on every write.
    let id = s.create_user("json@example.com").await;
    let auth = format!("Bearer {}", s.token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/scim+json"),
    ];
    for (m, p) in [
        (Method::POST, "/scim/v2/Users".to_string()),
        (Method::POST, "/scim/v2/Groups".to_string()),
        (Method::PUT, format!("/scim/v2/Users/{id}")),
        (Method::PATCH, format!("/scim/v2/Users/{id}")),
        (Method::POST, "/scim/v2/Users/.search".to_string()),
    ] {
        for junk in [
            "{\"userName\": \"x\",",
            "junk",
            "{'single': 'quotes'}",
            "{\"a\":1}}",
        ] {
            s.raw(m.clone(), &p, &headers, junk)
                .await
                .assert_error(400, Some("invalidSyntax"));
        }
    }
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 1);
}

// --- 17 ---------------------------------------------------------------------------------

/// §9.17: every pagination shape: Okta's `count=1&startIndex=1` and its 100-page import
/// walk to `startIndex=101`, the Entra validator's `count=5` walk echoing `startIndex`,
/// Microsoft's `startIndex=1&count=2`, RFC 7644's `count=0`; integers only, stable order,
/// on Users and on Groups (PingFederate walks `/Groups`).
#[tokio::test]
async fn hc17_pagination() {
    let s = TestServer::start().await;
    let mut users = Vec::new();
    for i in 0..103 {
        users.push(s.create_user(&format!("page{i:03}@example.com")).await);
    }
    let mut groups = Vec::new();
    for i in 0..12 {
        groups.push(create_group(&s, &format!("Group {i:02}"), &[]).await);
    }
    let integers = |r: &Resp| {
        for k in ["totalResults", "startIndex", "itemsPerPage"] {
            assert!(r.json[k].is_u64(), "{k} must be an integer: {}", r.text);
        }
    };

    // Okta step 7.
    let r = s.get("/scim/v2/Users?count=1&startIndex=1").await;
    integers(&r);
    assert_eq!(
        (
            r.json["totalResults"].as_u64(),
            r.json["itemsPerPage"].as_u64()
        ),
        (Some(103), Some(1))
    );
    assert_eq!(ids(&r.json), vec![users[0].clone()]);

    // Okta import: 100 per page until totalResults.
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let r = s
            .get_owned(format!("/scim/v2/Users?startIndex={start}&count=100"))
            .await;
        integers(&r);
        assert_eq!(r.json["startIndex"], start);
        assert_eq!(r.json["totalResults"], 103);
        let page = ids(&r.json);
        assert_eq!(r.json["itemsPerPage"].as_u64(), Some(page.len() as u64));
        seen.extend(page);
        start += 100;
        if start > 103 {
            break;
        }
    }
    assert_eq!(seen, users, "every user once, in a stable order");
    let r = s.get("/scim/v2/Users?startIndex=101&count=100").await;
    assert_eq!(ids(&r.json), users[100..].to_vec());

    // Entra validator: count=5, startIndex = page*5+1 echoed back; a write between pages
    // does not reorder.
    let mut seen = Vec::new();
    for page in 0..21 {
        let start = page * 5 + 1;
        let r = s
            .get_owned(format!("/scim/v2/Users?startIndex={start}&count=5"))
            .await;
        integers(&r);
        assert_eq!(r.json["startIndex"], start);
        seen.extend(ids(&r.json));
        if page == 3 {
            s.patch(
                &format!("/scim/v2/Users/{}", users[1]),
                &patch_op(json!([{"op":"Replace","path":"displayName","value":"Aaaa first"}])),
            )
            .await;
        }
    }
    assert_eq!(seen, users);

    // Microsoft Postman "Paginate".
    let r = s.get("/scim/v2/Users?startIndex=1&count=2").await;
    integers(&r);
    assert_eq!(r.json["itemsPerPage"], 2);
    assert_eq!(ids(&r.json), users[..2].to_vec());

    // count=0: only totalResults (RFC 7644 §3.4.2.4).
    let r = s.get("/scim/v2/Users?count=0").await;
    integers(&r);
    assert_eq!(r.json["totalResults"], 103);
    assert_eq!(r.json["itemsPerPage"], 0);
    assert!(r.json["Resources"].as_array().is_none_or(Vec::is_empty));

    // Past the end, and startIndex below 1 (treated as 1).
    let r = s.get("/scim/v2/Users?startIndex=500&count=10").await;
    assert_eq!(
        (
            r.json["totalResults"].as_u64(),
            r.json["itemsPerPage"].as_u64()
        ),
        (Some(103), Some(0))
    );
    assert_eq!(r.json["Resources"], json!([]));
    let r = s.get("/scim/v2/Users?startIndex=0&count=1").await;
    assert_eq!(r.json["startIndex"], 1);
    assert_eq!(ids(&r.json), vec![users[0].clone()]);

    // Groups, walked 5 at a time with members excluded, in a stable order.
    let mut seen = Vec::new();
    for start in [1, 6, 11] {
        let r = s
            .get_owned(format!(
                "/scim/v2/Groups?startIndex={start}&count=5&excludedAttributes=members"
            ))
            .await;
        integers(&r);
        assert_eq!(r.json["startIndex"], start);
        assert_eq!(r.json["totalResults"], 12);
        seen.extend(ids(&r.json));
    }
    assert_eq!(seen, groups);
    // A filtered list pages over the matches only.
    let r = s
        .get("/scim/v2/Users?filter=userName%20sw%20%22page10%22&startIndex=2&count=2")
        .await;
    assert_eq!(r.json["totalResults"], 3, "{}", r.text);
    assert_eq!(ids(&r.json), users[101..103].to_vec());
}

// --- 18 ---------------------------------------------------------------------------------

/// §9.18: `/ServiceProviderConfig` with every sub-object filled (bulk limits included,
/// though bulk is not offered); POST to any discovery endpoint is 405; `/Schemas` lists the
/// Group schema; `/ResourceTypes` and `/Schemas` carry what Okta's steps 3 and 5 read.
#[tokio::test]
async fn hc18_discovery_endpoints() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", s.token);
    for headers in [vec![], vec![("authorization", auth.as_str())]] {
        let r = s
            .raw(Method::GET, "/scim/v2/ServiceProviderConfig", &headers, "")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("application/scim+json"));
        let j = &r.json;
        assert!(j["schemas"].as_array().unwrap().contains(&json!(
            "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
        )));
        for key in ["patch", "bulk", "filter", "changePassword", "sort", "etag"] {
            let o = j[key].as_object().unwrap_or_else(|| panic!("{key}"));
            assert!(!o.is_empty() && o["supported"].is_boolean(), "{key}");
        }
        assert_eq!(j["patch"]["supported"], true);
        assert_eq!(j["filter"]["supported"], true);
        assert!(j["filter"]["maxResults"].as_u64().unwrap() > 0);
        assert!(j["bulk"]["maxOperations"].as_u64().is_some());
        assert!(j["bulk"]["maxPayloadSize"].as_u64().is_some());
        let scheme = &j["authenticationSchemes"][0];
        for key in ["type", "name", "description"] {
            assert!(scheme[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
        }
    }

    // Okta steps 2, 4, 6: POST with a junk body is 405, with or without a token.
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/Schemas",
    ] {
        for body in ["test\r\n\r\n", "test"] {
            for headers in [vec![], vec![("authorization", auth.as_str())]] {
                let r = s.raw(Method::POST, path, &headers, body).await;
                r.assert_error(405, None);
                assert_eq!(r.header("allow"), Some("GET"), "{path}");
            }
        }
    }

    // Okta step 3.
    let r = s.raw(Method::GET, "/scim/v2/ResourceTypes", &[], "").await;
    assert_eq!(r.json["schemas"], json!([LIST_URN]));
    for rt in r.json["Resources"].as_array().unwrap() {
        for key in ["name", "endpoint", "schema"] {
            assert!(rt[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
        }
    }
    let names: Vec<&str> = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rt| rt["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["User", "Group"]);

    // Okta step 5 and the Entra gallery: the Group schema is listed, with attributes.
    let r = s.raw(Method::GET, "/scim/v2/Schemas", &[], "").await;
    assert_eq!(r.json["schemas"], json!([LIST_URN]));
    let resources = r.json["Resources"].as_array().unwrap();
    for schema in resources {
        assert!(schema["id"].is_string());
        assert!(!schema["attributes"].as_array().unwrap().is_empty());
    }
    let group = resources
        .iter()
        .find(|s| s["id"] == GROUP_URN)
        .expect("the Group schema");
    let attrs: Vec<&str> = group["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        attrs.contains(&"displayName") && attrs.contains(&"members"),
        "{attrs:?}"
    );
    let r = s
        .raw(
            Method::GET,
            &format!("/scim/v2/Schemas/{GROUP_URN}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.json["id"], GROUP_URN);
    // The enterprise manager's displayName is advertised read-only.
    let ent = resources
        .iter()
        .find(|s| s["id"] == ENTERPRISE_URN)
        .unwrap();
    let manager = ent["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "manager")
        .unwrap();
    let display = manager["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "displayName")
        .unwrap();
    assert_eq!(display["mutability"], "readOnly");
}

// --- 19 ---------------------------------------------------------------------------------

/// §9.19: idempotence and the lifecycle. Decisions on re-creation:
/// - A POST for a user that still exists (deactivated on unassign) is 409 `uniqueness`,
///   as RFC 7644 §3.3 requires; Entra then finds it by filter and PATCHes it active, and it
///   keeps its id.
/// - A POST for a user that was DELETEd creates a new resource with a new id: RFC 7643
///   §3.1 ids are never reassigned, so the old id stays 404.
#[tokio::test]
async fn hc19_idempotence_and_lifecycle() {
    let s = TestServer::start().await;
    let body = json!({"schemas":[USER_URN],"userName":"life@contoso.com","externalId":"life",
        "name":{"givenName":"Life","familyName":"Cycle"},
        "emails":[{"primary":true,"type":"work","value":"life@contoso.com"}],"active":true});
    let r = s.post("/scim/v2/Users", &body).await;
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    let gid = create_group(&s, "Life", &[&id]).await;

    // Repeated active=true PATCHes (Entra's sync cycles): 200, same version every time.
    let mut versions = Vec::new();
    for value in [json!("True"), json!(true), json!("true")] {
        let r = s
            .patch(
                &path,
                &patch_op(json!([{"op":"Replace","path":"active","value":value}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["active"], true);
        versions.push(r.json["meta"]["version"].clone());
    }
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"active":true}}])),
        )
        .await;
    versions.push(r.json["meta"]["version"].clone());
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");

    // Deactivate → reactivate, in each IdP's shape: same id, memberships kept.
    for (off, on) in [
        (
            json!([{"op":"replace","value":{"active":false}}]),
            json!([{"op":"replace","value":{"active":true}}]),
        ),
        (
            json!([{"op":"Replace","path":"active","value":"False"}]),
            json!([{"op":"Replace","path":"active","value":"True"}]),
        ),
        (
            json!([{"op":"replace","path":"active","value":false}]),
            json!([{"op":"replace","path":"active","value":true}]),
        ),
    ] {
        let r = s.patch(&path, &patch_op(off)).await;
        assert_eq!(
            (r.json["id"].as_str(), &r.json["active"]),
            (Some(id.as_str()), &json!(false))
        );
        let r = s.patch(&path, &patch_op(on)).await;
        assert_eq!(
            (r.json["id"].as_str(), &r.json["active"]),
            (Some(id.as_str()), &json!(true))
        );
    }
    // Okta AIW: by PUT.
    let mut user = s.get(&path).await.json;
    user["active"] = json!(false);
    assert_eq!(s.put(&path, &user).await.json["active"], false);
    user["active"] = json!(true);
    assert_eq!(s.put(&path, &user).await.json["id"], id.as_str());
    assert_eq!(s.members_of(&gid).await, vec![id.clone()]);

    // Unassign (Entra deactivates) → reassign by POST: 409, then lookup and PATCH.
    s.patch(
        &path,
        &patch_op(json!([{"op":"Replace","path":"active","value":"False"}])),
    )
    .await;
    s.post("/scim/v2/Users", &body)
        .await
        .assert_error(409, Some("uniqueness"));
    let r = s
        .get("/scim/v2/Users?filter=userName+eq+%22life%40contoso.com%22")
        .await;
    assert_eq!(ids(&r.json), vec![id.clone()]);
    assert_eq!(
        r.json["Resources"][0]["active"], false,
        "inactive users are still listed"
    );
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"active","value":"True"}])),
        )
        .await;
    assert_eq!(
        (r.json["id"].as_str(), &r.json["active"]),
        (Some(id.as_str()), &json!(true))
    );
    assert_eq!(s.members_of(&gid).await, vec![id.clone()]);

    // Hard delete → DELETE again is 404 → the IdP re-creates: a new id, the old one gone.
    assert_eq!(s.delete(&path).await.status, 204);
    s.delete(&path).await.assert_error(404, None);
    s.get(&path).await.assert_error(404, None);
    s.patch(
        &path,
        &patch_op(json!([{"op":"Replace","path":"active","value":"True"}])),
    )
    .await
    .assert_error(404, None);
    assert!(s.members_of(&gid).await.is_empty());
    let r = s.post("/scim/v2/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_id = r.json["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(r.json["active"], true);
    let r = s
        .get("/scim/v2/Users?filter=externalId+eq+%22life%22")
        .await;
    assert_eq!(ids(&r.json), vec![new_id.clone()]);
    s.get(&path).await.assert_error(404, None);

    // Groups: DELETE twice is 404 too.
    let gpath = format!("/scim/v2/Groups/{gid}");
    assert_eq!(s.delete(&gpath).await.status, 204);
    s.delete(&gpath).await.assert_error(404, None);

    // JumpCloud activation: a throwaway test user and group, created then deleted.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"jc.test@example.com","emails":[{"value":"jc.test@example.com"}],"active":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let jc_user = r.json["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":"JumpCloud Test Group","members":[{"value":jc_user}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let jc_group = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{jc_user}")).await.status,
        204
    );
    assert_eq!(
        s.delete(&format!("/scim/v2/Groups/{jc_group}"))
            .await
            .status,
        204
    );
    s.get(&format!("/scim/v2/Users/{jc_user}"))
        .await
        .assert_error(404, None);
    s.get(&format!("/scim/v2/Groups/{jc_group}"))
        .await
        .assert_error(404, None);
    assert_eq!(ids(&s.get("/scim/v2/Users").await.json), vec![new_id]);
    assert_eq!(s.get("/scim/v2/Groups").await.json["totalResults"], 0);
    // The same test user can be created again at the next activation.
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"jc.test@example.com","active":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

// --- 20 ---------------------------------------------------------------------------------

/// §9.20: every request content type IdPs send (and none) on every write; every answer is
/// `application/scim+json`; 201s always carry the resource; group PATCH answers 200 with
/// the group (Okta accepts it, Entra accepts 200 as well as 204).
#[tokio::test]
async fn hc20_content_types_and_response_bodies() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", s.token);
    let scim_json = Some("application/scim+json");
    let types = [
        Some("application/scim+json"),
        Some("application/scim+json; charset=utf-8"),
        Some("application/scim+json;charset=UTF-8"),
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        None,
    ];
    let mut group_ids = Vec::new();
    for (i, ct) in types.iter().enumerate() {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        // The Runscope POST: only Authorization and Accept.
        if ct.is_none() {
            headers.push(("accept", "application/scim+json; charset=utf-8"));
        }
        let user = json!({"schemas":[USER_URN],"userName":format!("ct{i}@example.com"),
            "name":{"givenName":"C","familyName":"T"},"active":true});
        let r = s
            .raw(Method::POST, "/scim/v2/Users", &headers, user.to_string())
            .await;
        assert_eq!(r.status, 201, "{ct:?}: {}", r.text);
        assert_eq!(r.header("content-type"), scim_json, "{ct:?}");
        assert!(!r.text.is_empty(), "never an empty 201");
        assert_eq!(r.json["userName"], format!("ct{i}@example.com"));
        let id = r.json["id"].as_str().unwrap().to_string();
        assert!(
            r.header("location")
                .unwrap()
                .ends_with(&format!("/Users/{id}"))
        );
        let upath = format!("/scim/v2/Users/{id}");

        let r = s
            .raw(
                Method::PATCH,
                &upath,
                &headers,
                patch_op(json!([{"op":"replace","value":{"active":false}}])).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{ct:?}: {}", r.text);
        assert_eq!(r.header("content-type"), scim_json);
        assert_eq!(r.json["active"], false);
        let mut put = user.clone();
        put["displayName"] = json!("Put");
        let r = s.raw(Method::PUT, &upath, &headers, put.to_string()).await;
        assert_eq!(r.status, 200, "{ct:?}: {}", r.text);
        assert_eq!(r.header("content-type"), scim_json);
        assert_eq!(r.json["displayName"], "Put");

        let group = json!({"schemas":[GROUP_URN],"displayName":format!("CT {i}"),"members":[]});
        let r = s
            .raw(Method::POST, "/scim/v2/Groups", &headers, group.to_string())
            .await;
        assert_eq!(r.status, 201, "{ct:?}: {}", r.text);
        assert_eq!(r.header("content-type"), scim_json);
        assert_eq!(r.json["displayName"], format!("CT {i}"));
        let gid = r.json["id"].as_str().unwrap().to_string();
        let r = s
            .raw(
                Method::PATCH,
                &format!("/scim/v2/Groups/{gid}"),
                &headers,
                patch_op(json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":id}]}]))
                    .to_string(),
            )
            .await;
        assert_eq!(r.status, 204, "{ct:?}: {}", r.text);
        assert!(r.text.is_empty(), "{ct:?}: a 204 has no body");
        let r = s.get(&format!("/scim/v2/Groups/{gid}")).await;
        assert_eq!(member_ids(&r.json), vec![id.clone()]);
        group_ids.push(gid);
    }

    // Entra's rename and its members-less reads.
    let gpath = format!("/scim/v2/Groups/{}", group_ids[0]);
    let r = s
        .patch(
            &gpath,
            &patch_op(json!([{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get(&format!("{gpath}?excludedAttributes=members")).await;
    assert_eq!(
        r.json["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    let r = s
        .patch(
            &format!("{gpath}?excludedAttributes=members"),
            &patch_op(json!([{"op":"Remove","path":"members","value":[{"value":"ghost-never-a-member"}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("members").is_none());

    // Every other answer: lists, errors, discovery, 405.
    for r in [
        s.get("/scim/v2/Users").await,
        s.get("/scim/v2/Users/nope").await,
        s.raw(Method::GET, "/scim/v2/Users", &[], "").await,
        s.raw(Method::GET, "/scim/v2/Schemas", &[], "").await,
        s.raw(Method::POST, "/scim/v2/Schemas", &[], "test").await,
        s.get("/scim/v2/Users?filter=bogus").await,
    ] {
        assert_eq!(r.header("content-type"), scim_json, "{}", r.text);
        assert!(r.json.is_object(), "{}", r.text);
    }
    // DELETE: 204 and no body.
    let r = s.delete(&gpath).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
}
