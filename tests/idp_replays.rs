//! Replays of the request sequences real IdPs send (idp-behaviour.md §1, §2, §5, §9),
//! asserting the resulting state by GET, as the IdP would see it.

mod common;

use common::*;
use hyper::Method;
use serde_json::{Value, json};

fn patch_op(ops: Value) -> Value {
    json!({"schemas":[PATCH_URN],"Operations":ops})
}

/// §1.5: Okta deactivates and reactivates with a pathless replace; the id never changes.
#[tokio::test]
async fn okta_deactivate_and_reactivate() {
    let s = TestServer::start().await;
    let id = s.create_user("okta.user@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"active":false}}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    assert_eq!(s.get(&path).await.json["active"], false);
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"active":true}}])),
        )
        .await;
    assert_eq!(
        (r.json["active"].clone(), r.json["id"].clone()),
        (json!(true), json!(id))
    );
    // Okta's profile update by PUT after a GET (§1.4).
    let mut user = s.get(&path).await.json;
    user["name"]["givenName"] = json!("Renamed");
    let r = s.put(&path, &user).await;
    assert_eq!(r.json["name"]["givenName"], "Renamed");
    assert_eq!(r.json["active"], true);
}

/// §1.7: Okta Group Push: create, the pathless replace carrying `id`, mixed membership
/// PATCHes, a full push, rename, delete.
#[tokio::test]
async fn okta_group_push() {
    let s = TestServer::start().await;
    let u1 = s.create_user("u1@example.com").await;
    let u2 = s.create_user("u2@example.com").await;
    let u3 = s.create_user("u3@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":"Test SCIMv2","members":[]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Groups/{gid}");

    let r = s
        .patch(&path, &patch_op(json!([{"op":"add","path":"members","value":[{"value":u1,"display":"u1@example.com"},{"value":u2,"display":"u2@example.com"}]}])))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Right after, Okta's pathless replace with the read-only id: accepted, members untouched.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","value":{"id":gid,"displayName":"Test SCIMv2"}}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.get(&path).await.json["id"], gid.as_str());
    assert_eq!(s.members_of(&gid).await, sorted(&[&u1, &u2]));

    // One PatchOp mixing a filtered remove and an add, applied in order.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("members[value eq \"{u1}\"]")},
                             {"op":"add","path":"members","value":[{"value":u3,"display":"u3@example.com"}]}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(s.members_of(&gid).await, sorted(&[&u2, &u3]));
    // The stored display is the one Okta sent.
    let g = s.get(&path).await.json;
    let m3 = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["value"] == u3.as_str())
        .unwrap();
    assert_eq!(m3["display"], "u3@example.com");

    // Full membership push.
    let r = s
        .patch(
            &path,
            &patch_op(
                json!([{"op":"replace","path":"members","value":[{"value":u1},{"value":u3}]}]),
            ),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.members_of(&gid).await, sorted(&[&u1, &u3]));

    // Rename, then the import walk that links existing groups (§1.7, §1.2).
    s.patch(
        &path,
        &patch_op(json!([{"op":"replace","value":{"id":gid,"displayName":"Renamed"}}])),
    )
    .await;
    let r = s.get("/scim/v2/Groups?startIndex=1&count=100").await;
    assert_eq!(r.json["Resources"][0]["displayName"], "Renamed");
    assert_eq!(s.delete(&path).await.status, 204);
    assert_eq!(s.get("/scim/v2/Groups").await.json["totalResults"], 0);
}

/// §2.4–2.5 without the compatibility flag: capitalised ops, string booleans,
/// one Replace per attribute with filtered and URN paths.
#[tokio::test]
async fn entra_default_dialect_user_updates() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN, ENTERPRISE_URN],"externalId":"0a21f0f2","userName":"Test_User_00aa@contoso.com","active":true,
                    "emails":[{"primary":true,"type":"work","value":"Test_User_11bb@testuser.com"}],"meta":{"resourceType":"User"},
                    "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{id}");
    // Entra's lookup sequence: by userName, then by externalId (unquoted in older docs).
    let r = s
        .get("/scim/v2/Users?filter=userName+eq+%22Test_User_00aa%40contoso.com%22")
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    let r = s
        .get("/scim/v2/Users?filter=externalId%20eq%200a21f0f2")
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    let r = s.get("/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22test_user_11bb%40testuser.com%22").await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);

    let r = s
        .patch(
            &path,
            &patch_op(json!([
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
                {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
                {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"701984"},
                {"op":"Add","path":"nickName","value":"Babs"},
                {"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0100"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(
        u["emails"],
        json!([{"primary":true,"type":"work","value":"updatedEmail@microsoft.com"}])
    );
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(u[ENTERPRISE_URN]["employeeNumber"], "701984");
    assert_eq!(u["nickName"], "Babs");
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type":"mobile","value":"+1 555 0100"}])
    );
    // The new email is what lookups find now.
    let r = s
        .get("/scim/v2/Users?filter=emails.value%20eq%20%22updatedemail%40microsoft.com%22")
        .await;
    assert_eq!(r.json["totalResults"], 1);

    // Disable with a string boolean, then Entra's periodic active=true twice.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"active","value":"False"}])),
        )
        .await;
    assert_eq!(r.json["active"], false, "{}", r.text);
    let v1 = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"active","value":"True"}])),
        )
        .await;
    let v2 = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"active","value":true}])),
        )
        .await;
    assert_eq!(v1.json["active"], true);
    assert_eq!(
        v1.json["meta"]["version"], v2.json["meta"]["version"],
        "an idempotent PATCH keeps the version"
    );
    // userName change by PATCH.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"userName","value":"renamed@contoso.com"}])),
        )
        .await;
    assert_eq!(r.json["userName"], "renamed@contoso.com");
    // DELETE (hard delete in Entra), then 404.
    assert_eq!(s.delete(&path).await.status, 204);
    s.delete(&path).await.assert_error(404, None);
}

/// §2.4 with `?aadOptscim062020`: pathless replace with dotted and URN keys.
#[tokio::test]
async fn entra_flag_dialect_pathless_replace_with_dotted_keys() {
    let s = TestServer::start().await;
    let id = s.create_user("flag@contoso.com").await;
    let path = format!("/scim/v2/Users/{id}?aadOptscim062020");
    let r = s
        .patch(
            &path,
            &patch_op(json!([
                {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
                {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&format!("/scim/v2/Users/{id}")).await.json;
    assert_eq!(u["displayName"], "Bjfe");
    assert_eq!(u["name"]["givenName"], "Kkom");
    assert_eq!(u["name"]["familyName"], "Unua");
    assert_eq!(u[ENTERPRISE_URN]["employeeNumber"], "Aklq");
    assert!(
        u.get("name.givenName").is_none(),
        "dotted keys are paths, never literal keys"
    );
    assert_eq!(u["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"replace","path":"active","value":false}])),
        )
        .await;
    assert_eq!(r.json["active"], false);
}

/// §2.6: every manager shape Entra sends, and GET returns it under the extension.
#[tokio::test]
async fn entra_manager_variants() {
    let s = TestServer::start().await;
    let boss = s.create_user("boss@contoso.com").await;
    let id = s.create_user("report@contoso.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let r = s
        .patch(&path, &patch_op(json!([{"op":"Add","path":"manager","value":[{"$ref":format!("http://x/scim/Users/{boss}"),"value":boss}]}])))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = s.get(&path).await.json;
    assert_eq!(u[ENTERPRISE_URN]["manager"]["value"], boss.as_str());
    assert!(
        u.get("manager").is_none(),
        "manager lives under the enterprise extension"
    );
    assert!(
        u["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE_URN))
    );
    // Entra looks the manager up by id.
    let r = s.get(&format!("/scim/v2/Users?filter=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value%20eq%20%22{boss}%22")).await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    // Remove by filter, then set as a plain string, then clear with an empty Replace.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"remove","path":format!("manager[value eq \"{boss}\"]")}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(s.get(&path).await.json.get(ENTERPRISE_URN).is_none());
    s.patch(&path, &patch_op(json!([{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":boss}]))).await;
    assert_eq!(
        s.get(&path).await.json[ENTERPRISE_URN]["manager"]["value"],
        boss.as_str()
    );
    s.patch(
        &path,
        &patch_op(json!([{"op":"Replace","path":"manager","value":""}])),
    )
    .await;
    assert!(s.get(&path).await.json.get(ENTERPRISE_URN).is_none());
}

/// §2.7 and §9 item 3: Entra groups, both member-removal forms in one suite.
#[tokio::test]
async fn entra_groups_and_both_member_removals() {
    let s = TestServer::start().await;
    let a = s.create_user("a@contoso.com").await;
    let b = s.create_user("b@contoso.com").await;
    let c = s.create_user("c@contoso.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN,"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                    "externalId":"8aa1a0c0","displayName":"displayName","meta":{"resourceType":"Group"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Groups/{gid}");
    let r = s.get("/scim/v2/Groups?excludedAttributes=members&filter=displayName%20eq%20%22displayName%22").await;
    assert_eq!(r.json["totalResults"], 1);

    let r = s
        .patch(&path, &patch_op(json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":a},{"$ref":null,"value":b},{"$ref":null,"value":c}]}])))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Default dialect: remove with a value array removes only those.
    s.patch(
        &path,
        &patch_op(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":a}]}])),
    )
    .await;
    assert_eq!(s.members_of(&gid).await, sorted(&[&b, &c]));
    // Flag dialect: filtered remove.
    s.patch(
        &path,
        &patch_op(json!([{"op":"remove","path":format!("members[value eq \"{b}\"]")}])),
    )
    .await;
    assert_eq!(s.members_of(&gid).await, vec![c.clone()]);
    // Rename with a plain string value.
    let r = s
        .patch(
            &path,
            &patch_op(json!([{"op":"Replace","path":"displayName","value":"updatedDisplayName"}])),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get(&format!("{path}?excludedAttributes=members")).await;
    assert_eq!(r.json["displayName"], "updatedDisplayName");
    // RFC: remove members with no value empties the group.
    s.patch(&path, &patch_op(json!([{"op":"remove","path":"members"}])))
        .await;
    assert!(s.members_of(&gid).await.is_empty());
    assert_eq!(s.delete(&path).await.status, 204);
}

/// §5: JumpCloud's activation creates a real test user and group and deletes them.
#[tokio::test]
async fn jumpcloud_activation_creates_and_deletes_test_resources() {
    let s = TestServer::start().await;
    let r = s.post("/scim/v2/Users", &json!({"userName":"jctest@example.com","emails":[{"value":"jctest@example.com"}],"active":true})).await;
    let uid = r.json["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"displayName":"JC Test Group","members":[{"value":uid}]}),
        )
        .await;
    let gid = r.json["id"].as_str().unwrap().to_string();
    // One replace per attribute, real booleans, value-only members.
    let r = s.patch(&format!("/scim/v2/Users/{uid}"), &patch_op(json!([{"op":"replace","path":"name.givenName","value":"JC"},{"op":"replace","path":"active","value":false}]))).await;
    assert_eq!(
        (
            r.json["name"]["givenName"].clone(),
            r.json["active"].clone()
        ),
        (json!("JC"), json!(false))
    );
    s.patch(
        &format!("/scim/v2/Groups/{gid}"),
        &patch_op(json!([{"op":"remove","path":"members","value":[{"value":uid}]}])),
    )
    .await;
    assert_eq!(
        s.delete(&format!("/scim/v2/Groups/{gid}")).await.status,
        204
    );
    assert_eq!(s.delete(&format!("/scim/v2/Users/{uid}")).await.status, 204);
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 0);
}

/// §1.8: the Okta SCIM 2.0 SPEC test steps that need a server answer.
#[tokio::test]
async fn okta_spec_test_suite() {
    let s = TestServer::start().await;
    s.create_user("existing@example.com").await;
    let r = s.get("/scim/v2/Users?count=1&startIndex=1").await;
    let first = &r.json["Resources"][0];
    for key in ["id", "userName", "active"] {
        assert!(!first[key].is_null(), "{key}");
    }
    assert!(first["name"]["familyName"].is_string() && first["emails"][0]["value"].is_string());
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22abcdefgh%40example.com%22")
        .await;
    assert_eq!(r.json["totalResults"], 0);
    let r = s.get("/scim/v2/Users/010101001010101011001010101011").await;
    r.assert_error(404, None);
    // 2016 copy: a malformed filter (a bare value) is 400 invalidFilter.
    let r = s
        .get("/scim/v2/Users?filter=RUNSCOPE300HFLUAKLAB151%40EXAMPLE.COM")
        .await;
    r.assert_error(400, Some("invalidFilter"));
    // Later copies: the uppercase userName matches case-insensitively.
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22EXISTING%40EXAMPLE.COM%22")
        .await;
    assert_eq!(r.json["totalResults"], 1);
    let body = json!({"schemas":[USER_URN],"userName":"Runscope300Hfluaklab151@example.com","name":{"givenName":"G","familyName":"F"},
        "emails":[{"primary":true,"value":"Runscope300Hfluaklab151@example.com","type":"work"}],"displayName":"G F","active":true});
    let r = s
        .call(Method::POST, "/scim/v2/Users", &s.token, Some(&body))
        .await;
    assert_eq!(r.status, 201);
    s.post("/scim/v2/Users", &body)
        .await
        .assert_error(409, Some("uniqueness"));
}

/// Filters, sorting, projections, .search and cursors on a small directory.
#[tokio::test]
async fn filters_sorting_projection_search_and_cursors() {
    let s = TestServer::start().await;
    let people = [
        ("carol", "Zeta", true),
        ("alice", "Young", false),
        ("bob", "Xu", true),
        ("dave", "Wolf", true),
    ];
    for (user, family, active) in people {
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"userName":format!("{user}@example.com"),"name":{"familyName":family,"givenName":user},"active":active,
                        "title": if user == "bob" { json!("Boss") } else { Value::Null },
                        "emails":[{"value":format!("{user}@example.com"),"type":"work"},{"value":format!("{user}@home.org"),"type":"home"}]}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let names = |r: &Value| -> Vec<String> {
        r["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"]["givenName"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |f: &str| {
        s.get_owned(format!(
            "/scim/v2/Users?filter={}&sortBy=userName",
            urlencode(f)
        ))
    };
    assert_eq!(
        names(
            &q("active eq true and (name.familyName sw \"z\" or title pr)")
                .await
                .json
        ),
        ["bob", "carol"]
    );
    assert_eq!(names(&q("not (active eq true)").await.json), ["alice"]);
    assert_eq!(
        names(
            &q("emails[type eq \"home\" and value ew \"@home.org\"]")
                .await
                .json
        )
        .len(),
        4
    );
    assert_eq!(names(&q("emails.value co \"DAVE\"").await.json), ["dave"]);
    assert_eq!(
        names(
            &q("meta.created gt \"2000-01-01T00:00:00Z\" and userName ne \"dave@example.com\"")
                .await
                .json
        )
        .len(),
        3
    );
    assert_eq!(
        names(
            &q("DisplayName pr or USERNAME Eq \"alice@example.com\"")
                .await
                .json
        ),
        ["alice"]
    );
    let bad = q("userName eq").await;
    bad.assert_error(400, Some("invalidFilter"));
    q("shoeSize eq 3")
        .await
        .assert_error(400, Some("invalidFilter"));

    let r = s
        .get("/scim/v2/Users?sortBy=name.familyName&sortOrder=descending&attributes=name.givenName")
        .await;
    assert_eq!(names(&r.json), ["carol", "alice", "bob", "dave"]);
    assert_eq!(
        r.json["Resources"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["schemas", "id", "name"]
    );
    let r = s
        .get("/scim/v2/Users?excludedAttributes=emails,meta&count=1")
        .await;
    assert!(
        r.json["Resources"][0].get("emails").is_none()
            && r.json["Resources"][0].get("meta").is_none()
    );

    let r = s
        .post("/scim/v2/Users/.search", &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter":"name.familyName lt \"Y\"","sortBy":"name.familyName","attributes":["userName"],"startIndex":1,"count":10}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let users: Vec<&str> = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["dave@example.com", "bob@example.com"]);

    // Root search spans Users and Groups.
    s.post("/scim/v2/Groups", &json!({"displayName":"Admins"}))
        .await;
    let r = s
        .post("/scim/v2/.search", &json!({"filter":"id pr","count":100}))
        .await;
    assert_eq!(r.json["totalResults"], 5, "{}", r.text);
    let r = s
        .post("/scim/v2/.search", &json!({"startIndex":5,"count":1}))
        .await;
    assert_eq!(r.json["Resources"][0]["displayName"], "Admins");
    // A GET of the server root is the same query (RFC 7644 §3.4.2.1), its parameters in
    // the query string; other methods there are not allowed.
    let r = s.get("/scim/v2/?startIndex=5&count=1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 5, "{}", r.text);
    assert_eq!(r.json["Resources"][0]["displayName"], "Admins");
    let r = s
        .get("/scim/v2?filter=displayName%20eq%20%22Admins%22")
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    let r = s
        .raw(
            hyper::Method::DELETE,
            "/scim/v2",
            &[("authorization", &format!("Bearer {}", s.token))],
            "",
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.header("allow"), Some("GET"));
    // Sorted by an attribute groups do not have: the group has no value for it, so it
    // comes last ascending and first descending (RFC 7644 §3.4.2.3), never left out.
    for (order, group_at) in [("ascending", 4), ("descending", 0)] {
        let r = s
            .post(
                "/scim/v2/.search",
                &json!({"sortBy":"userName","sortOrder":order,"count":100}),
            )
            .await;
        assert_eq!(r.json["totalResults"], 5, "{}", r.text);
        assert_eq!(
            r.json["Resources"][group_at]["displayName"], "Admins",
            "{order}"
        );
    }

    // RFC 9865 cursors: no row is lost when rows before the cursor are deleted meanwhile.
    let r = s.get("/scim/v2/Users?cursor=&count=2").await;
    assert_eq!(r.json["Resources"].as_array().unwrap().len(), 2);
    let first_page: Vec<String> = r.json["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let next = r.json["nextCursor"].as_str().unwrap().to_string();
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{}", first_page[0]))
            .await
            .status,
        204
    );
    let r = s
        .get_owned(format!("/scim/v2/Users?cursor={next}&count=2"))
        .await;
    assert_eq!(
        names(&r.json),
        ["bob", "dave"],
        "the page after the cursor is intact"
    );
    assert!(r.json.get("nextCursor").is_none(), "last page");
    s.get("/scim/v2/Users?cursor=bogus")
        .await
        .assert_error(400, Some("invalidCursor"));
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
