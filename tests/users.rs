//! SCIM Users over real HTTP against a real SQLite file: what an IdP observes.

mod common;

use common::*;
use hyper::Method;
use serde_json::{Value, json};

fn okta_user() -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
        "name":{"givenName":"Test","familyName":"User"},
        "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
        "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
        "groups":[],"password":"1mz050nq","active":true})
}

/// idp-behaviour.md §1.3: lookup, create, then the duplicate checks of Okta's suite.
#[tokio::test]
async fn okta_create_flow() {
    let s = TestServer::start().await;
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(
        r.json,
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]})
    );

    let r = s.post("/scim/v2/Users", &okta_user()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location").unwrap(),
        s.url(&format!("/scim/v2/Users/{id}"))
    );
    assert_eq!(r.header("etag"), r.json["meta"]["version"].as_str());
    assert_eq!(r.json["schemas"], json!([USER_URN]));
    assert_eq!(r.json["userName"], "test.user@okta.local");
    assert_eq!(
        r.json["name"],
        json!({"givenName":"Test","familyName":"User"})
    );
    assert_eq!(r.json["emails"], okta_user()["emails"]);
    assert_eq!(r.json["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(r.json["active"], true);
    assert!(
        r.json.get("password").is_none(),
        "password must never be returned"
    );
    assert!(r.json.get("groups").is_none());
    let meta = &r.json["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], s.url(&format!("/scim/v2/Users/{id}")));
    assert!(meta["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["created"], meta["lastModified"]);
    assert!(meta["version"].as_str().unwrap().starts_with("W/\""));

    let got = s.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json, r.json);

    // Okta now finds the user by the same lookup, in any case.
    let r = s
        .get("/scim/v2/Users?filter=userName+eq+%22TEST.USER%40OKTA.LOCAL%22")
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    assert_eq!(r.json["Resources"][0]["id"], id.as_str());

    // The same POST again, and one differing only in case: 409 uniqueness.
    s.post("/scim/v2/Users", &okta_user())
        .await
        .assert_error(409, Some("uniqueness"));
    let mut upper = okta_user();
    upper["userName"] = json!("TEST.User@Okta.Local");
    s.post("/scim/v2/Users", &upper)
        .await
        .assert_error(409, Some("uniqueness"));
    s.stop().await;
}

/// idp-behaviour.md §2.3 and §9 items 2 and 11: Entra's create bodies.
#[tokio::test]
async fn entra_create_bodies_with_extras_are_accepted() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","urn:ietf:params:scim:schemas:core:2.0:User"],
             "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee","active":"True",
             "emails":[{"Primary":true,"type":"work","value":"Test_User_11bb11bb@testuser.com"}],
             "meta":{"resourceType":"User"},"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[],
             "addresses":null,"phoneNumbers":null,"preferredLanguage":null,"title":null,
             "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":null,"Manager":{"Value":"SuzzyQ"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["emails"][0]["primary"], true);
    assert!(r.json.get("roles").is_none() && r.json.get("title").is_none());
    assert_eq!(
        r.json[ENTERPRISE_URN],
        json!({"manager":{"value":"SuzzyQ"}})
    );
    assert_eq!(r.json["schemas"], json!([USER_URN, ENTERPRISE_URN]));
}

/// An IdP admin who maps custom attributes sends them in an extension of their own
/// (Entra's `CustomExtensionName`, an Okta namespace): kept as sent, listed in `schemas`,
/// changed by PATCH paths into it (pathless keys too), replaced whole by PUT, and read by
/// apps in the WorkOS `raw_attributes`. A misspelt core attribute is still refused.
#[tokio::test]
async fn a_clients_own_schema_extension_is_kept_and_patched_by_path() {
    let s = TestServer::start().await;
    let x = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN, x], "userName":"cx@example.com",
                    x: {"CustomAttribute":"abc","tags":["a"],"password":"hunter2"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["schemas"], json!([USER_URN, x]));
    assert_eq!(r.json[x], json!({"CustomAttribute":"abc","tags":["a"]}));
    let user = format!("/scim/v2/Users/{}", r.json["id"].as_str().unwrap());
    let patch = |ops: Value| json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations": ops});
    let r = s
        .patch(
            &user,
            &patch(json!([
                {"op":"Add","path": format!("{x}:CustomAttribute"),"value":"def"},
                {"op":"add","path": format!("{x}:tags"),"value":["b","a"]},
                {"op":"replace","value":{format!("{x}:costCode"): "C-7"}},
                {"op":"add","path": format!("{x}:office.city"),"value":"Leeds"},
                {"op":"remove","path": format!("{x}:tags"),"value":["a"]},
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let want =
        json!({"CustomAttribute":"def","tags":["b"],"costCode":"C-7","office":{"city":"Leeds"}});
    assert_eq!(r.json[x], want);
    assert_eq!(s.get(&user).await.json[x], want, "as stored");
    // Okta's read-modify-write PUT echoes it, and a PUT without it takes it away.
    let mut echoed = s.get(&user).await.json;
    let version = echoed["meta"]["version"].clone();
    let r = s.put(&user, &echoed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["meta"]["version"], version, "nothing changed");
    echoed.as_object_mut().unwrap().remove(x);
    let r = s.put(&user, &echoed).await;
    assert_eq!(r.json["schemas"], json!([USER_URN]), "{}", r.text);
    assert!(r.json.get(x).is_none());
    let r = s
        .patch(
            &user,
            &patch(json!([{"op":"add","path": x,"value":{"CustomAttribute":"again"}}])),
        )
        .await;
    assert_eq!(r.json[x], json!({"CustomAttribute":"again"}), "{}", r.text);
    let key = s.api_key(None).await;
    let id = r.json["id"].as_str().unwrap();
    let r = s
        .raw(
            hyper::Method::GET,
            &format!("/directory_users/directory_user_{id}"),
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
        .await;
    assert_eq!(
        r.json["raw_attributes"][x],
        json!({"CustomAttribute":"again"}),
        "{}",
        r.text
    );
    // Asked for or left out by name, whole or an attribute of it; `schemas` follows.
    let r = s
        .patch(
            &user,
            &patch(json!([{"op":"add","path": format!("{x}:other"),"value":"o"}])),
        )
        .await;
    assert_eq!(r.json[x], json!({"CustomAttribute":"again","other":"o"}));
    for (query, shown) in [
        (
            format!("attributes={x}"),
            Some(json!({"CustomAttribute":"again","other":"o"})),
        ),
        (
            format!("attributes=userName,{x}:other"),
            Some(json!({"other":"o"})),
        ),
        ("attributes=userName".to_string(), None),
        (format!("excludedAttributes={x}"), None),
        (
            format!("excludedAttributes={x}:CustomAttribute"),
            Some(json!({"other":"o"})),
        ),
    ] {
        let got = s.get(&format!("{user}?{query}")).await.json;
        assert_eq!(got.get(x), shown.as_ref(), "{query}: {got}");
        let listed = got["schemas"].as_array().unwrap().contains(&json!(x));
        assert_eq!(listed, shown.is_some(), "{query}: {got}");
    }
    let r = s
        .patch(&user, &patch(json!([{"op":"remove","path": x}])))
        .await;
    assert!(r.json.get(x).is_none(), "{}", r.text);
    // Refused, and nothing stored: a misspelt core attribute, a filter into the extension.
    let before = s.get(&user).await.json;
    s.patch(
        &user,
        &patch(json!([
            {"op":"add","path": format!("{x}:CustomAttribute"),"value":"lost"},
            {"op":"add","path": format!("{x}:tags[value eq \"b\"]"),"value":"c"},
        ])),
    )
    .await
    .assert_error(400, Some("invalidPath"));
    s.put(&user, &json!({"userName":"cx@example.com","adreses":[]}))
        .await
        .assert_error(400, Some("invalidSyntax"));
    // A key with a colon under the enterprise URN is no extension of the client's.
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    s.patch(
        &user,
        &patch(json!([{"op":"add","value":{enterprise: {"a:b":"x"}}}])),
    )
    .await
    .assert_error(400, Some("invalidPath"));
    assert_eq!(s.get(&user).await.json, before);
    // Misspellings of SCIM's own URNs, and an attribute path under one, are refused, not
    // kept where the member never reads them; so is the URN of an extension given a value
    // that is not an object.
    for (key, value, scim_type) in [
        (
            format!("{enterprise}:manager"),
            json!({"value":"m"}),
            "invalidSyntax",
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0User".into(),
            json!({"department":"x"}),
            "invalidSyntax",
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0.User".into(),
            json!({"department":"x"}),
            "invalidSyntax",
        ),
        (
            "urn:ietf:params:scim:schemas:extensions:enterprise:2.0:User".into(),
            json!({"department":"x"}),
            "invalidSyntax",
        ),
        (
            "urn:ietf:params:scim:schemas:core-2.0:User".into(),
            json!({"title":"x"}),
            "invalidSyntax",
        ),
        (x.to_string(), json!("x"), "invalidValue"),
        // A character cut where `urn:` would end.
        ("urn\u{e9}xt:a:b".into(), json!({"a":1}), "invalidSyntax"),
        (
            "urn:ietf:params:scim:schemas:extension\u{e9}:a".into(),
            json!({"a":1}),
            "invalidSyntax",
        ),
    ] {
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"userName":"typo@example.com", key.clone(): value}),
            )
            .await;
        assert_eq!(r.status, 400, "{key}: {}", r.text);
        assert_eq!(r.json["scimType"], scim_type, "{key}: {}", r.text);
    }
}

/// A client's extension whose URN does not end with the resource type's name (an Okta
/// namespace such as `urn:okta:custom:Space`, `…:custom:1.0`, or one under IETF's
/// `…:schemas:` as Okta's support pages show) is addressed whole by its URN: a PATCH path
/// or pathless key naming it replaces or removes that extension (not an attribute of a
/// shorter URN), and `attributes` asks for it.
#[tokio::test]
async fn a_clients_extension_is_addressed_whole_by_its_urn_whatever_it_ends_with() {
    let s = TestServer::start().await;
    let patch = |ops: Value| json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations": ops});
    for (n, x) in [
        "urn:okta:custom:Space",
        "urn:okta:myapp_1:1.0:profile:custom",
        "urn:scim:schemas:extension:custom:1.0",
        "urn:ietf:params:scim:schemas:extension:Space",
        "urn:ietf:params:scim:schemas:custom:Space",
    ]
    .into_iter()
    .enumerate()
    {
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"schemas":[USER_URN, x], "userName": format!("space{n}@example.com"),
                        x: {"a":"1","b":"2"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{x}: {}", r.text);
        let user = format!("/scim/v2/Users/{}", r.json["id"].as_str().unwrap());
        let shown = |r: &common::Resp| {
            let keys: Vec<String> = r.json.as_object().unwrap().keys().cloned().collect();
            (r.json[x].clone(), r.json["schemas"].clone(), keys.len())
        };
        let before = shown(&s.get(&user).await);

        let r = s
            .patch(
                &user,
                &patch(json!([{"op":"replace","value":{x: {"a":"9"}}}])),
            )
            .await;
        assert_eq!(r.status, 200, "{x}: {}", r.text);
        assert_eq!(r.json[x], json!({"a":"9","b":"2"}), "{x}: {}", r.text);
        assert_eq!(
            r.json["schemas"],
            json!([USER_URN, x]),
            "{x}: no stray extension"
        );
        assert_eq!(shown(&r).2, before.2, "{x}: {}", r.text);

        let r = s
            .patch(
                &user,
                &patch(json!([{"op":"replace","path": x,"value":{"b":"3"}}])),
            )
            .await;
        assert_eq!(r.json[x], json!({"a":"9","b":"3"}), "{x}: {}", r.text);
        let got = s.get(&format!("{user}?attributes={x}")).await.json;
        assert_eq!(got[x], json!({"a":"9","b":"3"}), "{x}: {got}");
        let got = s.get(&format!("{user}?excludedAttributes={x}")).await.json;
        assert!(got.get(x).is_none(), "{x}: {got}");

        let r = s
            .patch(&user, &patch(json!([{"op":"remove","path": x}])))
            .await;
        assert_eq!(r.status, 200, "{x}: {}", r.text);
        assert!(r.json.get(x).is_none(), "{x}: {}", r.text);
        assert_eq!(r.json["schemas"], json!([USER_URN]), "{x}: {}", r.text);

        // Added again by a path naming it, to a user who holds none: whole, as a POST or
        // a pathless key reads it.
        let r = s
            .patch(
                &user,
                &patch(json!([{"op":"add","path": x,"value":{"k":"v"}}])),
            )
            .await;
        assert_eq!(r.json[x], json!({"k":"v"}), "{x}: {}", r.text);
        assert_eq!(r.json["schemas"], json!([USER_URN, x]), "{x}: {}", r.text);
    }
}

/// Every attribute of the core and enterprise schemas comes back exactly as sent.
#[tokio::test]
async fn every_attribute_round_trips() {
    let s = TestServer::start().await;
    let body = json!({
        "schemas":[USER_URN, ENTERPRISE_URN],
        "userName":"bjensen@example.com","externalId":"bjensen",
        "name":{"formatted":"Ms. Barbara J Jensen, III","familyName":"Jensen","givenName":"Barbara","middleName":"Jane","honorificPrefix":"Ms.","honorificSuffix":"III"},
        "displayName":"Babs Jensen","nickName":"Babs","profileUrl":"https://login.example.com/bjensen","title":"Tour Guide",
        "userType":"Employee","preferredLanguage":"en-US","locale":"en-US","timezone":"America/Los_Angeles","active":true,
        "emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],
        "phoneNumbers":[{"value":"555-555-5555","type":"work"},{"value":"555-555-4444","type":"mobile"}],
        "ims":[{"value":"someaimhandle","type":"aim"}],
        "photos":[{"value":"https://photos.example.com/profilephoto/72930000000Ccne/F","type":"photo"}],
        "addresses":[{"type":"work","streetAddress":"100 Universal City Plaza","locality":"Hollywood","region":"CA","postalCode":"91608","country":"USA","formatted":"100 Universal City Plaza\nHollywood, CA 91608 USA","primary":true}],
        "entitlements":[{"value":"Hydraulic lift","display":"Lift"}],
        "roles":[{"value":"Tour guide","primary":false}],
        "x509Certificates":[{"value":"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        ENTERPRISE_URN:{"employeeNumber":"701984","costCenter":"4130","organization":"Universal Studios","division":"Theme Park","department":"Tour Operations",
            "manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d","$ref":"../Users/26118915-6090-4610-87e4-49d8ca9f808d"}}
    });
    let r = s.post("/scim/v2/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = s
        .get(&format!(
            "/scim/v2/Users/{}",
            r.json["id"].as_str().unwrap()
        ))
        .await;
    for (k, v) in body.as_object().unwrap() {
        assert_eq!(&got.json[k], v, "attribute {k}");
    }
}

#[tokio::test]
async fn lists_page_with_integers_and_a_stable_order() {
    let s = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.create_user(&format!("user{i}@example.com")).await);
    }
    let r = s.get("/scim/v2/Users?startIndex=1&count=2").await;
    assert_eq!(
        (
            r.json["totalResults"].as_u64(),
            r.json["itemsPerPage"].as_u64(),
            r.json["startIndex"].as_u64()
        ),
        (Some(5), Some(2), Some(1))
    );
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let r = s
            .get(&format!("/scim/v2/Users?startIndex={start}&count=2"))
            .await;
        assert_eq!(r.json["startIndex"], start);
        for u in r.json["Resources"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids);
    let r = s.get("/scim/v2/Users?count=0").await;
    assert_eq!(r.json["totalResults"], 5);
    assert_eq!(r.json["Resources"], json!([]));
    let r = s.get("/scim/v2/Users?startIndex=101&count=100").await;
    assert_eq!(
        (
            r.json["totalResults"].as_u64(),
            r.json["itemsPerPage"].as_u64()
        ),
        (Some(5), Some(0))
    );
    s.get("/scim/v2/Users?count=lots")
        .await
        .assert_error(400, Some("invalidValue"));
}

/// idp-behaviour.md §1.4: Okta's read-modify-write PUT.
#[tokio::test]
async fn put_replaces_ignoring_read_only_and_keeps_omitted_active() {
    let s = TestServer::start().await;
    let created = s.post("/scim/v2/Users", &okta_user()).await.json;
    let id = created["id"].as_str().unwrap();
    let r = s
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({"schemas":[USER_URN],"id":"someone-else","userName":"test.user@okta.local",
                "name":{"givenName":"Another","middleName":"Excited","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work","display":"test.user@okta.local"}],
                "groups":[],"password":"x","meta":{"resourceType":"User","version":"W/\"99\""}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], id, "id is immutable");
    assert_eq!(r.json["name"]["middleName"], "Excited");
    assert_eq!(r.json["active"], true, "an omitted active is not false");
    assert!(
        r.json.get("locale").is_none(),
        "PUT replaces: omitted attributes are cleared"
    );
    assert!(r.json.get("password").is_none());
    assert_ne!(r.json["meta"]["version"], created["meta"]["version"]);
    assert_eq!(r.json["meta"]["created"], created["meta"]["created"]);
    assert_eq!(s.get(&format!("/scim/v2/Users/{id}")).await.json, r.json);

    // Deactivation by PUT (Okta AIW apps).
    let mut body = r.json.clone();
    body["active"] = json!(false);
    let r = s.put(&format!("/scim/v2/Users/{id}"), &body).await;
    assert_eq!(r.json["active"], false);

    // Renaming onto another user's userName is a conflict.
    s.create_user("other@example.com").await;
    body["userName"] = json!("OTHER@example.com");
    s.put(&format!("/scim/v2/Users/{id}"), &body)
        .await
        .assert_error(409, Some("uniqueness"));
    s.put("/scim/v2/Users/nope", &body)
        .await
        .assert_error(404, None);
}

#[tokio::test]
async fn delete_then_404() {
    let s = TestServer::start().await;
    let id = s.create_user("gone@example.com").await;
    let r = s.delete(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    s.get(&format!("/scim/v2/Users/{id}"))
        .await
        .assert_error(404, None);
    s.delete(&format!("/scim/v2/Users/{id}"))
        .await
        .assert_error(404, None);
    // The userName is free again.
    s.create_user("gone@example.com").await;
}

#[tokio::test]
async fn etags_guard_writes_and_save_reads() {
    let s = TestServer::start().await;
    let created = s.post("/scim/v2/Users", &okta_user()).await;
    let id = created.json["id"].as_str().unwrap();
    let etag = created.header("etag").unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    let auth = format!("Bearer {}", s.token);

    assert_eq!(get_if(&s, &path, "if-none-match", &etag).await.status, 304);
    let r = get_if(&s, &path, "if-none-match", "W/\"999\"").await;
    assert_eq!(r.status, 200);
    // A read whose If-Match names another version is refused, as a write is (RFC 9110 §13.1.1).
    let r = get_if(&s, &path, "if-match", "W/\"999\"").await;
    r.assert_error(412, None);

    let mut changed = okta_user();
    changed["title"] = json!("Changed by the PUT");
    let body = changed.to_string();
    // A write whose If-None-Match names the current version (or `*`) writes nothing: 412,
    // never 304, for anything but a read (RFC 9110 §13.1.2).
    for (method, inm) in [
        (Method::PUT, etag.as_str()),
        (Method::PATCH, "*"),
        (Method::DELETE, etag.as_str()),
    ] {
        let body = match method {
            Method::PUT => body.clone(),
            Method::PATCH => json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Patched"}]})
            .to_string(),
            _ => String::new(),
        };
        let r = s
            .raw(
                method.clone(),
                &path,
                &[("authorization", &auth), ("if-none-match", inm)],
                body,
            )
            .await;
        r.assert_error(412, None);
    }
    let r = s
        .raw(Method::GET, &path, &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.header("etag"), Some(etag.as_str()), "nothing was written");
    assert_ne!(r.json["title"], "Patched");
    let r = s
        .raw(
            Method::PUT,
            &path,
            &[("authorization", &auth), ("if-match", "W/\"999\"")],
            body.clone(),
        )
        .await;
    r.assert_error(412, None);
    let r = s
        .raw(
            Method::PUT,
            &path,
            &[("authorization", &auth), ("if-match", &etag)],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let newer = r.header("etag").unwrap().to_string();
    assert_ne!(newer, etag);
    let r = s
        .raw(
            Method::DELETE,
            &path,
            &[("authorization", &auth), ("if-match", &etag)],
            "",
        )
        .await;
    r.assert_error(412, None);
    let r = s
        .raw(
            Method::DELETE,
            &path,
            &[("authorization", &auth), ("if-match", &newer)],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
}

/// What a GET shows moves the ETag, even when the change came through another resource: a
/// user's `groups`, a group member's `display` when the IdP sent none. A client holding the
/// old ETag must never get 304 for a representation that changed.
#[tokio::test]
async fn etags_move_with_what_a_get_shows() {
    let s = TestServer::start().await;
    let uid = s.create_user("ann@example.com").await;
    let user = format!("/scim/v2/Users/{uid}");
    // The id with every character percent-encoded names the same user.
    let encoded: String = uid.chars().map(|c| format!("%{:02X}", c as u32)).collect();
    let r = s.get(&format!("/scim/v2/Users/{encoded}")).await;
    assert_eq!(
        (r.status.as_u16(), r.json["id"].as_str()),
        (200, Some(uid.as_str()))
    );
    let g = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Eng"}),
        )
        .await;
    let gid = g.json["id"].as_str().unwrap().to_string();
    let group = format!("/scim/v2/Groups/{gid}");
    let auth = format!("Bearer {}", s.token);
    // The ETag and `meta.lastModified` of a representation.
    let etag = |r: &common::Resp| {
        let modified = r.json["meta"]["lastModified"].as_str().unwrap().to_string();
        (r.header("etag").unwrap().to_string(), modified)
    };
    // 200 with the new representation, where the old ETag would have given 304, and dated
    // after the old one: `meta.lastModified gt` finds what the ETag says changed.
    let changed = async |path: &str, (old, old_modified): &(String, String)| {
        let r = s
            .raw(
                Method::GET,
                path,
                &[("authorization", &auth), ("if-none-match", old)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{path} kept its ETag {old}");
        let (new, modified) = etag(&r);
        assert_eq!(r.json["meta"]["version"], new.as_str());
        assert!(
            modified > *old_modified,
            "{path}: {modified} after {old_modified}"
        );
        r
    };
    let patch = |ops: Value| json!({"schemas": [PATCH_URN], "Operations": ops});

    let before = etag(&s.get(&user).await);
    let r = s
        .patch(
            &group,
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = changed(&user, &before).await;
    assert_eq!(r.json["groups"][0]["display"], "Eng");
    let since = s
        .get(&format!(
            "/scim/v2/Users?filter=meta.lastModified%20gt%20%22{}%22",
            before.1
        ))
        .await;
    assert_eq!(since.json["totalResults"], 1, "{}", since.text);

    // The user's rename shows in the group, which got no display from the IdP.
    let before = etag(&s.get(&group).await);
    let r = s
        .patch(
            &user,
            &patch(json!([{"op": "replace", "path": "displayName", "value": "Ann A."}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = changed(&group, &before).await;
    assert_eq!(r.json["members"][0]["display"], "Ann A.");

    // The group's rename shows in the user.
    let before = etag(&s.get(&user).await);
    let r = s
        .patch(
            &group,
            &patch(json!([{"op": "replace", "path": "displayName", "value": "Engineering"}])),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = changed(&user, &before).await;
    assert_eq!(r.json["groups"][0]["display"], "Engineering");

    // Leaving, and the group's deletion, too.
    for step in [
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}])),
        patch(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])),
    ] {
        let before = etag(&s.get(&user).await);
        assert!(s.patch(&group, &step).await.status.is_success());
        changed(&user, &before).await;
    }
    // A group joining or leaving the group moves the group's ETag, as a user does.
    let child = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Child"}),
        )
        .await;
    let child_id = child.json["id"].as_str().unwrap().to_string();
    for step in [
        patch(json!([{"op": "add", "path": "members", "value": [{"value": child_id}]}])),
        patch(json!([{"op": "Remove", "path": "members", "value": [{"value": child_id}]}])),
    ] {
        let before = etag(&s.get(&group).await);
        assert!(s.patch(&group, &step).await.status.is_success());
        changed(&group, &before).await;
    }

    let before = etag(&s.get(&user).await);
    assert_eq!(s.delete(&group).await.status, 204);
    let r = changed(&user, &before).await;
    assert!(
        r.json.get("groups").is_none_or(|g| g == &json!([])),
        "{}",
        r.json
    );
}

#[tokio::test]
async fn bad_requests_get_precise_scim_errors() {
    let s = TestServer::start_with(scimd::config::HttpConfig {
        max_body_bytes: 2048,
        ..Default::default()
    })
    .await;
    // Authentication.
    let r = s.raw(Method::GET, "/scim/v2/Users", &[], "").await;
    r.assert_error(401, None);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    s.call(
        Method::GET,
        "/scim/v2/Users",
        "scimd_not-a-real-token",
        None,
    )
    .await
    .assert_error(401, None);
    s.raw(
        Method::GET,
        "/scim/v2/Users",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        "",
    )
    .await
    .assert_error(401, None);

    let auth = format!("Bearer {}", s.token);
    let headers = [("authorization", auth.as_str())];
    let post = |body: &'static str| s.raw(Method::POST, "/scim/v2/Users", &headers, body);
    post("{\"userName\": ")
        .await
        .assert_error(400, Some("invalidSyntax"));
    post("").await.assert_error(400, Some("invalidSyntax"));
    post("[]").await.assert_error(400, Some("invalidSyntax"));
    post("{\"userName\": 7}")
        .await
        .assert_error(400, Some("invalidValue"));
    post("{\"userName\": \"a\", \"active\": \"maybe\"}")
        .await
        .assert_error(400, Some("invalidValue"));
    post("{\"userName\": \"a\", \"emails\": 42}")
        .await
        .assert_error(400, Some("invalidValue"));
    post("{\"displayName\": \"no userName\"}")
        .await
        .assert_error(400, Some("invalidValue"));
    post("{\"userName\": \"a\", \"shoeSize\": 43}")
        .await
        .assert_error(400, Some("invalidSyntax"));

    s.get("/scim/v2/Users/010101001010101011001010101011")
        .await
        .assert_error(404, None);
    s.get("/scim/v2/Nope").await.assert_error(404, None);
    s.get("/scim/Users/a/b").await.assert_error(404, None);
    // Outside the SCIM mount points, unknown URLs get the admin UI's friendly 404 page.
    assert_eq!(s.raw(Method::GET, "/elsewhere", &[], "").await.status, 404);
    s.post("/scim/v2/Bulk", &json!({}))
        .await
        .assert_error(501, None);

    let big = format!(
        "{{\"userName\":\"big\",\"displayName\":\"{}\"}}",
        "x".repeat(4096)
    );
    let r = s
        .raw(
            Method::POST,
            "/scim/v2/Users",
            &[("authorization", &auth)],
            big,
        )
        .await;
    r.assert_error(413, None);
    // Nothing was half-written by any of the above.
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 0);
}

/// idp-behaviour.md §9 item 20.
#[tokio::test]
async fn any_json_content_type_or_none_is_accepted() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", s.token);
    for (i, ct) in [
        "application/scim+json",
        "application/scim+json; charset=utf-8",
        "application/json",
        "",
    ]
    .iter()
    .enumerate()
    {
        let mut headers = vec![("authorization", auth.as_str())];
        if !ct.is_empty() {
            headers.push(("content-type", ct));
        }
        let body = json!({"userName": format!("ct{i}@example.com")}).to_string();
        let r = s.raw(Method::POST, "/scim/v2/Users", &headers, body).await;
        assert_eq!(r.status, 201, "{ct}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/scim+json"));
        assert_eq!(r.json["active"], true, "active defaults to true");
    }
    // A byte order mark before the JSON, as .NET and PowerShell writers may send.
    let body = format!("\u{feff}{}", json!({"userName": "bom@example.com"}));
    let headers = [("authorization", auth.as_str())];
    let r = s.raw(Method::POST, "/scim/v2/Users", &headers, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A compressed body is not read as malformed JSON: 415 says what is wrong.
    let body = json!({"userName": "zipped@example.com"}).to_string();
    for coding in ["gzip", "br"] {
        let headers = [
            ("authorization", auth.as_str()),
            ("content-encoding", coding),
        ];
        let r = s
            .raw(Method::POST, "/scim/v2/Users", &headers, body.clone())
            .await;
        r.assert_error(415, None);
        assert!(r.text.contains(coding), "{}", r.text);
    }
    let headers = [
        ("authorization", auth.as_str()),
        ("content-encoding", "identity"),
    ];
    let r = s.raw(Method::POST, "/scim/v2/Users", &headers, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn both_mount_points_serve_the_same_directory() {
    let s = TestServer::start().await;
    let id = s.create_user("mounted@example.com").await;
    let r = s.get(&format!("/scim/Users/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json["meta"]["location"],
        s.url(&format!("/scim/Users/{id}"))
    );
    let r = s.get("/scim/v2/Users/").await;
    assert_eq!(r.json["totalResults"], 1);
}

#[tokio::test]
async fn a_token_never_reaches_another_tenants_data() {
    let s = TestServer::start().await;
    let other = s.token_for("acme");
    let id = s.create_user("shared@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    s.call(Method::GET, &path, &other, None)
        .await
        .assert_error(404, None);
    s.call(
        Method::PUT,
        &path,
        &other,
        Some(&json!({"userName":"stolen"})),
    )
    .await
    .assert_error(404, None);
    s.call(Method::DELETE, &path, &other, None)
        .await
        .assert_error(404, None);
    let r = s.call(Method::GET, "/scim/v2/Users", &other, None).await;
    assert_eq!(r.json["totalResults"], 0);
    let r = s
        .call(
            Method::GET,
            "/scim/v2/Users?filter=userName%20eq%20%22shared%40example.com%22",
            &other,
            None,
        )
        .await;
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);
    // The same userName is free in the other tenant, and both users stay separate.
    let r = s
        .call(
            Method::POST,
            "/scim/v2/Users",
            &other,
            Some(&json!({"userName":"shared@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.json["id"], id.as_str());
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 1);
    assert_eq!(s.get(&path).await.status, 200);
}

/// Okta's "Basic Auth" mode: any username, the token as the password.
#[tokio::test]
async fn basic_auth_takes_the_token_as_the_password() {
    use base64::Engine;
    let s = TestServer::start().await;
    let basic = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let good = basic(&format!("okta:{}", s.token));
    let r = s
        .raw(
            Method::GET,
            "/scim/v2/Users",
            &[("authorization", &good)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wrong = basic("okta:not-a-token");
    s.raw(
        Method::GET,
        "/scim/v2/Users",
        &[("authorization", &wrong)],
        "",
    )
    .await
    .assert_error(401, None);
    s.raw(
        Method::GET,
        "/scim/v2/Users",
        &[("authorization", "Basic %%%")],
        "",
    )
    .await
    .assert_error(401, None);
    // RFC 7617: the token alone, without "user:", is not Basic credentials.
    let bare = basic(&s.token);
    let r = s
        .raw(
            Method::GET,
            "/scim/v2/Users",
            &[("authorization", &bare)],
            "",
        )
        .await;
    r.assert_error(401, None);
    assert!(r.json["detail"].as_str().unwrap().contains("user:password"));
}

/// The server answers from the tokens it remembers, so the revocation (as the admin UI
/// makes it) must reach that memory before it is acknowledged.
#[tokio::test]
async fn revoked_tokens_stop_working_at_once() {
    let s = TestServer::start().await;
    for _ in 0..3 {
        assert_eq!(s.get("/scim/v2/Users").await.status, 200);
    }
    let conn = s.db.conn().unwrap();
    let tokens = scimd::db::tokens::list(&conn, None).unwrap();
    assert!(tokens[0].last_used_at.is_some(), "last use is recorded");
    let actor = scimd::model::Actor::admin("alice", "req-1");
    scimd::ops::tokens::revoke(&s.db, &actor, 1, tokens[0].id)
        .await
        .unwrap();
    s.get("/scim/v2/Users").await.assert_error(401, None);
}

#[tokio::test]
async fn discovery_is_public_complete_and_read_only() {
    let s = TestServer::start().await;
    let get = |p: &'static str| s.raw(Method::GET, p, &[], "");
    let spc = get("/scim/v2/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200);
    let j = &spc.json;
    assert_eq!(
        j["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    for key in ["patch", "bulk", "filter", "changePassword", "sort", "etag"] {
        assert!(j[key]["supported"].is_boolean(), "{key}");
    }
    assert_eq!(j["bulk"]["supported"], false);
    assert_eq!(j["changePassword"]["supported"], false);
    assert!(
        j["bulk"]["maxOperations"].as_u64().unwrap() > 0
            && j["bulk"]["maxPayloadSize"].as_u64().unwrap() > 0
    );
    assert!(j["filter"]["maxResults"].as_u64().unwrap() > 0);
    assert_eq!(j["etag"]["supported"], true);
    assert!(
        !j["authenticationSchemes"][0]["type"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        !j["authenticationSchemes"][0]["description"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let schemes: Vec<&str> = j["authenticationSchemes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(schemes, ["oauthbearertoken", "oauth2", "httpbasic"]);

    for alias in [
        "/scim/v2/ServiceProviderConfigs",
        "/scim/serviceConfiguration",
    ] {
        assert_eq!(get(alias).await.json["schemas"], j["schemas"], "{alias}");
    }

    // RFC 7644 §4: a filter on discovery SHOULD get 403, never the whole list as if it
    // had matched.
    for path in [
        "/scim/v2/Schemas?filter=id+eq+%22x%22",
        "/scim/v2/ResourceTypes?FILTER=name+eq+%22User%22",
        "/scim/v2/ServiceProviderConfig?filter=x",
    ] {
        get(path).await.assert_error(403, None);
    }

    let rts = get("/scim/v2/ResourceTypes").await;
    assert_eq!(rts.json["totalResults"], 2);
    assert_eq!(rts.json["Resources"][0]["endpoint"], "/Users");
    assert_eq!(
        rts.json["Resources"][0]["schemaExtensions"][0]["schema"],
        ENTERPRISE_URN
    );
    assert_eq!(
        get("/scim/v2/ResourceTypes/Group").await.json["schema"],
        GROUP_URN
    );

    let schemas = get("/scim/v2/Schemas").await;
    let ids: Vec<&str> = schemas.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER_URN, ENTERPRISE_URN, GROUP_URN]);
    let user = get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    assert_eq!(user.json["attributes"][0]["name"], "userName");
    assert_eq!(user.json["attributes"][0]["uniqueness"], "server");
    // A second group with the same displayName gets 409, and the schema says so.
    // Percent-encoded, as clients that encode every path segment send it (RFC 3986 §6.2.2.2).
    let group =
        get("/scim/v2/Schemas/urn%3Aietf%3Aparams%3Ascim%3Aschemas%3Acore%3A2.0%3AGroup").await;
    assert_eq!(group.json["attributes"][0]["name"], "displayName");
    assert_eq!(group.json["attributes"][0]["uniqueness"], "server");
    get("/scim/v2/Schemas/urn:nope")
        .await
        .assert_error(404, None);

    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/Schemas",
        "/scim/ServiceProviderConfig",
    ] {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = s.raw(m.clone(), path, &[], "test\r\n\r\n").await;
            r.assert_error(405, None);
            assert!(r.header("allow").is_some());
        }
    }
}

#[tokio::test]
async fn healthz_answers_and_shutdown_drains() {
    let s = TestServer::start().await;
    let r = s.raw(Method::GET, "/healthz", &[], "").await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (200, "ok\n"));
    s.stop().await;
}

/// While writes cannot be stored (here the log's flush fails: it was renamed away, so the
/// flusher finds nothing to flush), `/healthz` answers 503 with the reason, though reads
/// work, and `/metrics` says so too. A write that succeeds right after does not clear it:
/// on a full disk a small write still fits while the IdP's are refused.
#[tokio::test]
async fn healthz_fails_while_writes_cannot_be_stored() {
    let s = TestServer::start().await;
    let health = || s.raw(Method::GET, "/healthz", &[], "");
    let writable = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("scimd_database_writable "))
            .map(str::to_string)
    };
    let metrics = || s.raw(Method::GET, "/metrics", &[], "");
    assert_eq!(writable(&metrics().await.text).as_deref(), Some("1"));

    let log = s.db_path().with_file_name("scimd.db-wal");
    let away = s.db_path().with_file_name("away");
    std::fs::rename(&log, &away).unwrap();
    let user = |name: &str| json!({"schemas": [USER_URN], "userName": name});
    let r = s.post("/scim/v2/Users", &user("lost@example.com")).await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.text);
    let failing = health().await;
    assert_eq!(failing.status.as_u16(), 503, "{}", failing.text);
    assert_eq!(
        failing.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let (reason, since) = failing
        .text
        .strip_prefix("database not writable: could not flush the log to disk: ")
        .and_then(|t| t.strip_suffix("Z\n"))
        .and_then(|t| t.rsplit_once(" since "))
        .unwrap_or_else(|| panic!("{:?}", failing.text));
    assert!(
        !reason.is_empty() && !failing.text.contains(".db"),
        "{:?}",
        failing.text
    );
    assert_eq!(
        since.len(),
        "2026-01-02T03:04:05".len(),
        "{:?}",
        failing.text
    );
    assert_eq!(writable(&metrics().await.text).as_deref(), Some("0"));
    // Reads still work.
    assert_eq!(s.get("/scim/v2/Users").await.status.as_u16(), 200);

    std::fs::rename(&away, &log).unwrap();
    let r = s.post("/scim/v2/Users", &user("kept@example.com")).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let r = health().await;
    assert_eq!((r.status.as_u16(), &r.text), (503, &failing.text));
    s.stop().await;
}

/// RFC 7644 §3.9: `attributes` and `excludedAttributes` apply to every answer that returns
/// a resource: POST, PUT and PATCH as well as GET.
#[tokio::test]
async fn writes_answer_with_the_attributes_asked_for() {
    let s = TestServer::start().await;
    let body = json!({"schemas":[USER_URN],"userName":"ada@example.com",
        "name":{"givenName":"Ada","familyName":"Lovelace"},
        "emails":[{"value":"ada@example.com","primary":true}]});
    let r = s.post("/scim/v2/Users?attributes=userName", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["userName"], "ada@example.com");
    assert!(r.json["id"].is_string(), "id is always returned");
    assert!(
        r.json.get("name").is_none() && r.json.get("emails").is_none(),
        "{}",
        r.text
    );
    let id = r.json["id"].as_str().unwrap().to_string();
    assert!(r.json.get("meta").is_none(), "{}", r.text);
    // RFC 7644 §3.3: the created resource's URI is in `Location` whatever the body shows.
    assert_eq!(
        r.header("location").unwrap(),
        s.url(&format!("/scim/v2/Users/{id}"))
    );
    let r = s
        .post(
            "/scim/v2/Groups?excludedAttributes=meta",
            &json!({"schemas":[GROUP_URN],"displayName":"Analysts"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("meta").is_none(), "{}", r.text);
    let group = r.json["id"].as_str().unwrap();
    assert_eq!(
        r.header("location").unwrap(),
        s.url(&format!("/scim/v2/Groups/{group}"))
    );
    let r = s
        .put(
            &format!("/scim/v2/Users/{id}?excludedAttributes=emails"),
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json.get("emails").is_none() && r.json["name"].is_object(),
        "{}",
        r.text
    );
    let r = s
        .patch(
            &format!("/scim/v2/Users/{id}?attributes=name.givenName"),
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations":[{"op":"replace","path":"name.givenName","value":"Augusta"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"]["givenName"], "Augusta");
    assert!(
        r.json["name"].get("familyName").is_none() && r.json.get("userName").is_none(),
        "{}",
        r.text
    );
    let r = s
        .post(
            "/scim/v2/Groups?excludedAttributes=members",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName":"Team","members":[{"value": id}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.json.get("members").is_none() && r.json["displayName"] == "Team",
        "{}",
        r.text
    );
}

/// A list page shows each user exactly as GET of that user does: with its groups, its
/// enterprise extension, a manager of this directory completed and one from elsewhere left
/// as sent (list pages write most users out as stored, without parsing them).
#[tokio::test]
async fn list_pages_show_users_as_get_does() {
    let s = TestServer::start().await;
    let user = |name: &str, manager: Option<&str>| {
        let mut u = json!({"schemas":[USER_URN, ENTERPRISE_URN],"userName":name,
            "name":{"givenName":"Zoë","familyName":"O\"Brien \\ Ünïcode"},
            "emails":[{"value":name,"type":"work","primary":true}],"active":true,
            (ENTERPRISE_URN):{"employeeNumber":"7","department":"R&D"}});
        if let Some(m) = manager {
            u[ENTERPRISE_URN]["manager"] = json!({"value": m});
        }
        u
    };
    let boss = s
        .post("/scim/v2/Users", &user("boss@example.com", None))
        .await;
    assert_eq!(boss.status, 201, "{}", boss.text);
    let boss_id = boss.json["id"].as_str().unwrap().to_string();
    for (name, manager) in [
        ("staff@example.com", Some(boss_id.as_str())),
        ("contractor@example.com", Some("elsewhere-42")),
        ("plain@example.com", None),
    ] {
        let r = s.post("/scim/v2/Users", &user(name, manager)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"bare"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName":"Ops","members":[{"value": boss_id}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let list = s.get("/scim/v2/Users?count=100").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed = list.json["Resources"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    for u in listed {
        let path = format!("/scim/v2/Users/{}", u["id"].as_str().unwrap());
        let one = s.get_owned(path.clone()).await;
        assert_eq!(&one.json, u);
        // A PATCH answer is rendered from the parsed user: the same user, one version on.
        let op = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations":[{"op":"replace","path":"active","value":true}]});
        let patched = s.patch(&path, &op).await;
        assert_eq!(patched.status, 200, "{}", patched.text);
        let again = s.get_owned(path).await;
        assert_eq!(again.text, patched.text);
    }
    let staff = listed.iter().find(|u| u["userName"] == "staff@example.com");
    assert!(staff.unwrap()[ENTERPRISE_URN]["manager"]["$ref"].is_string());
    assert_eq!(listed[0]["groups"][0]["display"], "Ops");
}

/// Creates arriving together share the writer's transactions, and a create that fails
/// with 409 there rolls back and runs again the creates before it: each userName is
/// created by exactly one of the two POSTs racing for it, the other hears 409 uniqueness,
/// and the directory holds the winners, each once, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_user_name_leave_exactly_one_user_each() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let names = 24;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..names * 2 {
        let s = s.clone();
        tasks.spawn(async move {
            let name = format!("racer{}@example.com", i % names);
            let body = json!({"schemas": [USER_URN], "userName": name, "active": true,
                "emails": [{"value": name, "primary": true}]});
            (name, s.post("/scim/v2/Users", &body).await)
        });
    }
    let mut created = std::collections::BTreeMap::new();
    let mut refused = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (name, r) = done.unwrap();
        match r.status.as_u16() {
            201 => {
                let id = r.json["id"].as_str().unwrap().to_string();
                assert!(
                    created.insert(name, id).is_none(),
                    "two creates of one name"
                );
            }
            _ => {
                r.assert_error(409, Some("uniqueness"));
                refused.push(name);
            }
        }
    }
    assert_eq!(created.len(), names, "one create per name: {created:?}");
    refused.sort();
    assert_eq!(refused, created.keys().cloned().collect::<Vec<_>>());
    let list = s.get("/scim/v2/Users?count=100").await;
    assert_eq!(list.json["totalResults"], names);
    for (name, id) in &created {
        let r = s.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["userName"], name.as_str());
    }
}

/// Canonically equivalent spellings of a name are one name: a userName typed with a
/// combining accent (NFD, as macOS writes) is found by its precomposed spelling (NFC), and
/// creating that spelling again is a uniqueness conflict, for users, emails and groups.
#[tokio::test]
async fn canonically_equivalent_names_are_one_name() {
    let s = TestServer::start().await;
    let nfd = "jose\u{301}.garcia@example.com";
    let nfc = "JOS\u{c9}.garcia@example.com";
    let id = s.create_user(nfd).await;
    let r = s
        .get(&format!(
            "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
            percent_encoding::utf8_percent_encode(nfc, percent_encoding::NON_ALPHANUMERIC)
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    assert_eq!(r.json["Resources"][0]["id"], id.as_str());
    assert_eq!(r.json["Resources"][0]["userName"], nfd, "returned as sent");
    let r = s
        .get(&format!(
            "/scim/v2/Users?filter=emails.value%20eq%20%22{}%22",
            percent_encoding::utf8_percent_encode(nfc, percent_encoding::NON_ALPHANUMERIC)
        ))
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    s.post(
        "/scim/v2/Users",
        &json!({"schemas":[USER_URN],"userName":nfc}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    let group = |name: &str| json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":name});
    assert_eq!(
        s.post("/scim/v2/Groups", &group("E\u{301}quipe"))
            .await
            .status,
        201
    );
    s.post("/scim/v2/Groups", &group("\u{c9}QUIPE"))
        .await
        .assert_error(409, Some("uniqueness"));
}

/// Unassigning `active` (a `remove`, a `null`, Entra's null-update test) unassigns it, as
/// RFC 7644 §3.5.2.2 says (the public checker tests it), but it is no `true`: the person
/// stays deactivated until the IdP says `active: true`, also through a PUT that omits it.
#[tokio::test]
async fn unassigning_active_never_gives_access_back() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName":"bob@example.com","emails":[{"value":"bob@example.com"}],"active":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/scim/v2/Users/{}", r.json["id"].as_str().unwrap());
    let ops = |ops: Value| json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":ops});
    let status = |s: &TestServer| {
        let conn = s.db.conn().unwrap();
        conn.query_row("SELECT status FROM members", [], |r| r.get::<_, String>(0))
            .unwrap()
    };
    for unassign in [
        json!([{"op":"remove","path":"active"}]),
        json!([{"op":"replace","path":"active","value":null}]),
        json!([{"op":"replace","value":{"active":null}}]),
    ] {
        let r = s
            .patch(
                &path,
                &ops(json!([{"op":"Replace","path":"active","value":"False"}])),
            )
            .await;
        assert_eq!(r.json["active"], false, "{}", r.text);
        assert_eq!(status(&s), "suspended");
        let r = s.patch(&path, &ops(unassign.clone())).await;
        assert_eq!(r.status, 200, "{unassign}: {}", r.text);
        assert!(r.json.get("active").is_none(), "{unassign}: {}", r.text);
        assert_eq!(status(&s), "suspended", "{unassign}");
        // Okta's read-modify-write PUT without `active` keeps it unassigned.
        let r = s
            .put(
                &path,
                &json!({"userName":"bob@example.com","emails":[{"value":"bob@example.com"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json.get("active").is_none(), "{}", r.text);
        assert_eq!(status(&s), "suspended", "{unassign}: after a PUT");
    }
    // Only `true` gives access back.
    let r = s
        .patch(
            &path,
            &ops(json!([{"op":"replace","path":"active","value":true}])),
        )
        .await;
    assert_eq!(r.json["active"], true, "{}", r.text);
    assert_eq!(status(&s), "active");
}

/// A user's `manager` shows its `$ref` while the manager exists; deleting the manager
/// changes what the user shows, so its version and `lastModified` move too, and a client
/// that cached it under the old ETag reads it again.
#[tokio::test]
async fn deleting_a_manager_moves_the_etag_of_the_users_it_manages() {
    let s = TestServer::start().await;
    let boss = s.create_user("boss@example.com").await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER_URN, ENTERPRISE_URN], "userName": "worker@example.com",
                    ENTERPRISE_URN: {"manager": {"value": boss}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let worker = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{worker}");
    let before = s.get(&path).await;
    assert!(before.json[ENTERPRISE_URN]["manager"]["$ref"].is_string());
    let etag = before.header("etag").unwrap().to_string();

    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{boss}")).await.status,
        204
    );
    let after = s.get(&path).await;
    assert_eq!(
        after.json[ENTERPRISE_URN]["manager"],
        json!({"value": boss}),
        "no `$ref` to a user that is gone"
    );
    assert_ne!(after.header("etag"), Some(etag.as_str()));
    assert!(
        after.json["meta"]["lastModified"].as_str() > before.json["meta"]["lastModified"].as_str()
    );
    let r = get_if(&s, &path, "if-none-match", &etag).await;
    assert_eq!(r.status, 200, "the cached copy is stale");
}

/// GET `path` with one precondition `header` naming `etag`.
async fn get_if(s: &TestServer, path: &str, header: &str, etag: &str) -> Resp {
    let auth = format!("Bearer {}", s.token);
    s.raw(
        Method::GET,
        path,
        &[("authorization", &auth), (header, etag)],
        "",
    )
    .await
}

/// A `manager` sent as `""` or `{"value": ""}` in a POST or PUT is no manager, as a PATCH
/// replacing it with an empty value clears it (idp-behaviour §9.9; found by a black-box
/// probe storing `{"value": ""}`).
#[tokio::test]
async fn an_empty_manager_in_a_post_or_put_is_no_manager() {
    let s = TestServer::start().await;
    let boss = s.create_user("boss@example.com").await;
    for (n, empty) in [json!(""), json!({"value": ""}), json!([{"value": ""}])]
        .into_iter()
        .enumerate()
    {
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"schemas":[USER_URN, ENTERPRISE_URN], "userName": format!("em{n}@example.com"),
                        ENTERPRISE_URN: {"manager": empty.clone(), "department": "Ops"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{empty}: {}", r.text);
        assert_eq!(
            r.json[ENTERPRISE_URN],
            json!({"department":"Ops"}),
            "{empty}"
        );
        let user = format!("/scim/v2/Users/{}", r.json["id"].as_str().unwrap());
        let mut body = r.json.clone();
        body[ENTERPRISE_URN]["manager"] = json!({"value": boss});
        let r = s.put(&user, &body).await;
        assert_eq!(
            r.json[ENTERPRISE_URN]["manager"]["value"],
            json!(boss),
            "{}",
            r.text
        );
        body[ENTERPRISE_URN]["manager"] = empty.clone();
        let r = s.put(&user, &body).await;
        assert_eq!(r.status, 200, "{empty}: {}", r.text);
        assert_eq!(
            r.json[ENTERPRISE_URN],
            json!({"department":"Ops"}),
            "{empty}"
        );
    }
}
