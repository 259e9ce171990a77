//! SCIM Groups over real HTTP: memberships, User.groups, projections, ETags.

mod common;

use common::*;
use hyper::Method;
use serde_json::{Value, json};

async fn create_group(s: &TestServer, name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":[GROUP_URN],"displayName":name,"members":members}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

#[tokio::test]
async fn create_read_and_user_groups_are_computed() {
    let s = TestServer::start().await;
    let alice = s.create_user("alice@example.com").await;
    let bob = s.create_user("bob@example.com").await;
    let g = create_group(&s, "Engineering", &[&alice, &bob]).await;
    let gid = g["id"].as_str().unwrap();
    assert_eq!(g["schemas"], json!([GROUP_URN]));
    assert_eq!(g["meta"]["resourceType"], "Group");
    assert_eq!(member_ids(&g), sorted(&[&alice, &bob]));
    let m = &g["members"][0];
    assert_eq!(m["type"], "User", "type defaults to User");
    assert_eq!(
        m["$ref"],
        s.url(&format!("/scim/v2/Users/{}", m["value"].as_str().unwrap()))
    );
    assert!(
        m["display"].is_string(),
        "display falls back to the user's name"
    );

    let u = s.get(&format!("/scim/v2/Users/{alice}")).await.json;
    assert_eq!(
        u["groups"],
        json!([{"value": gid, "$ref": s.url(&format!("/scim/v2/Groups/{gid}")), "display": "Engineering", "type": "direct"}])
    );

    // Entra reads groups without members; the lookup by displayName works in any case.
    let r = s
        .get(&format!("/scim/v2/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(r.json.get("members").is_none());
    assert_eq!(r.json["displayName"], "Engineering");
    let r = s.get("/scim/v2/Groups?excludedAttributes=members&filter=displayName%20eq%20%22engineering%22").await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    assert!(r.json["Resources"][0].get("members").is_none());
    let r = s
        .get(&format!(
            "/scim/v2/Groups?filter=members.value%20eq%20%22{bob}%22"
        ))
        .await;
    assert_eq!(r.json["Resources"][0]["id"], gid);

    // Unknown members are refused and nothing is created.
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"displayName":"Ghosts","members":[{"value":"nobody"}]}),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(s.get("/scim/v2/Groups").await.json["totalResults"], 1);
    s.post("/scim/v2/Groups", &json!({"members":[]}))
        .await
        .assert_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn deleting_a_user_removes_its_memberships_and_deleting_a_group_keeps_users() {
    let s = TestServer::start().await;
    let alice = s.create_user("alice@example.com").await;
    let bob = s.create_user("bob@example.com").await;
    let g = create_group(&s, "Team", &[&alice, &bob]).await;
    let gid = g["id"].as_str().unwrap();
    let version = g["meta"]["version"].clone();
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{alice}")).await.status,
        204
    );
    let g = s.get(&format!("/scim/v2/Groups/{gid}")).await.json;
    assert_eq!(member_ids(&g), vec![bob.clone()]);
    assert_ne!(
        g["meta"]["version"], version,
        "the group changed, so its version moved"
    );
    assert_eq!(
        s.delete(&format!("/scim/v2/Groups/{gid}")).await.status,
        204
    );
    s.get(&format!("/scim/v2/Groups/{gid}"))
        .await
        .assert_error(404, None);
    let u = s.get(&format!("/scim/v2/Users/{bob}")).await;
    assert_eq!(u.status, 200);
    assert!(u.json.get("groups").is_none());
}

#[tokio::test]
async fn put_replaces_members_only_when_sent() {
    let s = TestServer::start().await;
    let a = s.create_user("a@example.com").await;
    let b = s.create_user("b@example.com").await;
    let g = create_group(&s, "G", &[&a]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    // Okta AIW: the full list, with display null.
    let r = s.put(&path, &json!({"schemas":[GROUP_URN],"displayName":"G","members":[{"value":b,"display":null}]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.json), vec![b.clone()]);
    // A rename without members keeps them.
    let r = s.put(&path, &json!({"displayName":"Renamed"})).await;
    assert_eq!(r.json["displayName"], "Renamed");
    assert_eq!(member_ids(&r.json), vec![b.clone()]);
    // So does one with `"members": null` (RFC 7643 §2.5: null is unassigned), as a client
    // that writes every key sends it.
    let r = s
        .put(
            &path,
            &json!({"displayName":"Renamed again","members":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.json), vec![b.clone()]);
    // An explicit empty list empties the group.
    let r = s
        .put(&path, &json!({"displayName":"Renamed","members":[]}))
        .await;
    assert_eq!(r.json["members"], json!([]), "{}", r.text);
}

/// The events of the default tenant after `cursor`: their types.
fn events_after(s: &TestServer, cursor: i64) -> Vec<String> {
    let conn = s.db.conn().unwrap();
    scimd::db::events::after(&conn, 1, cursor, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_string())
        .collect()
}

fn newest_event(s: &TestServer) -> i64 {
    let conn = s.db.conn().unwrap();
    let all = scimd::db::events::after(&conn, 1, 0, 10_000).unwrap();
    all.last().map_or(0, |e| e.cursor)
}

/// Okta's AIW apps PUT on every push, whole membership included. A PUT that changes
/// nothing keeps the ETag and tells the apps nothing; a PUT that changes one member moves
/// the version once and reports that member alone, and keeps the other members' displays.
#[tokio::test]
async fn a_put_that_changes_nothing_keeps_the_version_and_tells_nobody() {
    let s = TestServer::start().await;
    let a = s.create_user("a@example.com").await;
    let b = s.create_user("b@example.com").await;
    let c = s.create_user("c@example.com").await;
    let user_path = format!("/scim/v2/Users/{a}");
    let g = create_group(&s, "G", &[&a, &b]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    let group = s.get(&path).await.json;
    let user = s.get(&user_path).await.json;
    let cursor = newest_event(&s);

    for _ in 0..2 {
        let r = s.put(&user_path, &user).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["meta"]["version"], user["meta"]["version"]);
        let r = s.put(&path, &group).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["meta"]["version"], group["meta"]["version"]);
        let r = s
            .put(&path, &json!({"schemas":[GROUP_URN],"displayName":"G"}))
            .await;
        assert_eq!(r.json["meta"]["version"], group["meta"]["version"]);
        assert_eq!(
            r.json["meta"]["lastModified"],
            group["meta"]["lastModified"]
        );
    }
    assert_eq!(events_after(&s, cursor), Vec::<String>::new());

    // One member swapped for another, in Okta's shape (display null).
    let r = s
        .put(
            &path,
            &json!({"schemas":[GROUP_URN],"displayName":"G",
                    "members":[{"value":a,"display":null},{"value":c,"display":null}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.json["meta"]["version"], group["meta"]["version"]);
    assert_eq!(sorted(&member_ids(&r.json)), sorted(&[&a, &c]));
    assert_eq!(
        events_after(&s, cursor),
        ["group.member_added", "group.member_removed"]
    );
    // The member that stayed is still a member, and its own ETag did not move.
    assert_eq!(
        s.get(&user_path).await.json["meta"]["version"],
        user["meta"]["version"]
    );
}

#[tokio::test]
async fn nested_groups_are_members_too() {
    let s = TestServer::start().await;
    let a = s.create_user("a@example.com").await;
    let inner = create_group(&s, "Inner", &[&a]).await;
    let inner_id = inner["id"].as_str().unwrap();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"displayName":"Outer","members":[{"value":inner_id,"type":"Group"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["members"][0]["type"], "Group");
    assert_eq!(r.json["members"][0]["display"], "Inner");
    assert!(
        r.json["members"][0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Groups/{inner_id}"))
    );
    // `type` says where to look first, not what the member must be: a user sent as a
    // Group is that user, not "no user or group with id".
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"displayName":"Typed","members":[{"value":a,"type":"Group"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["members"][0]["type"], "User");
    assert_eq!(r.json["members"][0]["value"], a.as_str());
}

/// A group PATCH answers 204 with the group's new ETag, as Entra prefers and Okta accepts;
/// one that names `attributes` or `excludedAttributes` answers 200 with the group so
/// projected, members and all when they are asked for.
#[tokio::test]
async fn patch_answers_no_content_with_its_etag_unless_attributes_are_asked_for() {
    let s = TestServer::start().await;
    let a = s.create_user("a@example.com").await;
    let g = create_group(&s, "G", &[]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    let etag = g["meta"]["version"].as_str().unwrap().to_string();
    let auth = format!("Bearer {}", s.token);
    let add = json!({"schemas":[PATCH_URN],"Operations":[{"op":"add","path":"members","value":[{"value":a}]}]}).to_string();
    let r = s
        .raw(
            Method::PATCH,
            &path,
            &[("authorization", &auth), ("if-match", "W/\"41\"")],
            add.clone(),
        )
        .await;
    r.assert_error(412, None);
    let r = s
        .raw(
            Method::PATCH,
            &path,
            &[("authorization", &auth), ("if-match", &etag)],
            add.clone(),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let etag_after = r
        .header("etag")
        .expect("a 204 carries the new ETag")
        .to_string();
    assert_ne!(etag_after, etag);
    let read = s.get(&path).await;
    assert_eq!(member_ids(&read.json), vec![a.clone()]);
    assert_eq!(read.header("etag"), Some(etag_after.as_str()));
    // Adding the same member again changes nothing, not even the version.
    let again = s
        .raw(Method::PATCH, &path, &[("authorization", &auth)], add)
        .await;
    assert_eq!(again.status, 204, "{}", again.text);
    assert_eq!(again.header("etag"), Some(etag_after.as_str()));
    // attributes= on a PATCH response: 200 with what was asked for.
    let r = s
        .patch(
            &format!("{path}?attributes=displayName"),
            &json!({"Operations":[{"op":"replace","path":"displayName","value":"H"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["displayName"], "H");
    assert!(r.json.get("members").is_none());
    let r = s
        .patch(
            &format!("{path}?attributes=members"),
            &json!({"Operations":[{"op":"replace","path":"displayName","value":"I"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(member_ids(&r.json), vec![a.clone()]);
    let r = s
        .patch(
            &format!("{path}?excludedAttributes=members"),
            &json!({"Operations":[{"op":"replace","path":"displayName","value":"J"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["displayName"], "J");
    assert!(r.json.get("members").is_none());
    // Bad PATCH bodies.
    s.patch(
        &path,
        &json!({"Operations":[{"op":"jump","path":"displayName","value":"x"}]}),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    s.patch(
        &path,
        &json!({"Operations":[{"op":"add","path":"members","value":[{"value":"ghost"}]}]}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    s.patch(
        &path,
        &json!({"Operations":[{"op":"replace","path":"nope","value":"x"}]}),
    )
    .await
    .assert_error(400, Some("invalidPath"));
    s.patch(&path, &json!({"Operations":[{"op":"remove"}]}))
        .await
        .assert_error(400, Some("noTarget"));
    s.patch(&path, &json!({"Operations":[]}))
        .await
        .assert_error(400, Some("invalidSyntax"));
    // A failed PATCH applies none of its operations.
    let r = s
        .patch(&path, &json!({"Operations":[{"op":"replace","path":"displayName","value":"Half"},{"op":"add","path":"members","value":[{"value":"ghost"}]}]}))
        .await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(s.get(&path).await.json["displayName"], "J");
}

#[tokio::test]
async fn a_tenant_never_sees_or_touches_another_tenants_groups() {
    let s = TestServer::start().await;
    let other = s.token_for("acme");
    let a = s.create_user("a@example.com").await;
    let g = create_group(&s, "Mine", &[&a]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    s.call(Method::GET, &path, &other, None)
        .await
        .assert_error(404, None);
    s.call(
        Method::PATCH,
        &path,
        &other,
        Some(&json!({"Operations":[{"op":"remove","path":"members"}]})),
    )
    .await
    .assert_error(404, None);
    s.call(Method::DELETE, &path, &other, None)
        .await
        .assert_error(404, None);
    assert_eq!(
        s.call(Method::GET, "/scim/v2/Groups", &other, None)
            .await
            .json["totalResults"],
        0
    );
    // Nor can it add this tenant's user to its own group.
    let r = s
        .call(
            Method::POST,
            "/scim/v2/Groups",
            &other,
            Some(&json!({"displayName":"Theirs","members":[{"value":a}]})),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(member_ids(&s.get(&path).await.json), vec![a]);
}

/// Group displayName is unique per tenant, case-insensitively (Entra requires it; authentik
/// adopts an existing group only on this 409): POST, PUT and PATCH onto a taken name get
/// 409 `uniqueness` and change nothing; keeping one's own name, in any case, is fine.
#[tokio::test]
async fn group_names_are_unique_per_tenant_case_insensitively() {
    let s = TestServer::start().await;
    let alice = s.create_user("alice@example.com").await;
    let bob = s.create_user("bob@example.com").await;
    let eng = create_group(&s, "Engineering", &[&alice]).await;
    let ops = create_group(&s, "Ops", &[]).await;
    let (eng_id, ops_id) = (eng["id"].as_str().unwrap(), ops["id"].as_str().unwrap());

    for name in ["Engineering", "ENGINEERING", "engineering"] {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":[GROUP_URN],"displayName":name,"members":[{"value":bob}]}),
            )
            .await;
        r.assert_error(409, Some("uniqueness"));
        assert!(
            r.json["detail"].as_str().unwrap().contains(eng_id),
            "{}",
            r.text
        );
    }
    // authentik's adoption after the 409: look the group up by displayName.
    let r = s
        .get_owned(format!(
            "/scim/v2/Groups?filter={}",
            form_urlencoded::byte_serialize(br#"displayName eq "engineering""#).collect::<String>()
        ))
        .await;
    assert_eq!(r.json["totalResults"], 1);
    assert_eq!(r.json["Resources"][0]["id"], eng_id);

    // A rename by PUT or PATCH onto the taken name: 409, and nothing of the write lands
    // (not even the membership change carried in the same PATCH).
    let before = s.get(&format!("/scim/v2/Groups/{ops_id}")).await;
    s.put(
        &format!("/scim/v2/Groups/{ops_id}"),
        &json!({"schemas":[GROUP_URN],"displayName":"engineering","members":[{"value":bob}]}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    for patch in [
        json!({"schemas":[PATCH_URN],"Operations":[
            {"op":"add","path":"members","value":[{"value":bob}]},
            {"op":"replace","path":"displayName","value":"Engineering"}]}),
        // Okta's pathless rename, carrying the read-only id.
        json!({"schemas":[PATCH_URN],"Operations":[
            {"op":"replace","value":{"id":ops_id,"displayName":"ENGINEERING"}}]}),
    ] {
        s.patch(&format!("/scim/v2/Groups/{ops_id}"), &patch)
            .await
            .assert_error(409, Some("uniqueness"));
    }
    let after = s.get(&format!("/scim/v2/Groups/{ops_id}")).await;
    assert_eq!(after.json, before.json, "a refused rename changes nothing");
    assert_eq!(after.header("etag"), before.header("etag"));

    // Keeping its own name, in another case, is no conflict; Okta's rename PATCH with the
    // same name on every membership push neither.
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{eng_id}"),
            &json!({"schemas":[PATCH_URN],"Operations":[
                {"op":"replace","value":{"id":eng_id,"displayName":"ENGINEERING"}},
                {"op":"add","path":"members","value":[{"value":bob,"display":"bob@example.com"}]}]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get(&format!("/scim/v2/Groups/{eng_id}")).await;
    assert_eq!(r.json["displayName"], "ENGINEERING");
    let r = s
        .put(
            &format!("/scim/v2/Groups/{eng_id}"),
            &json!({"schemas":[GROUP_URN],"displayName":"Engineering"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.members_of(eng_id).await, sorted(&[&alice, &bob]));

    // A freed name can be taken again; other tenants have names of their own.
    assert_eq!(
        s.delete(&format!("/scim/v2/Groups/{ops_id}")).await.status,
        204
    );
    create_group(&s, "ops", &[]).await;
    let other = s.token_for("other");
    let r = s
        .call(
            Method::POST,
            "/scim/v2/Groups",
            &other,
            Some(&json!({"schemas":[GROUP_URN],"displayName":"Engineering"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Groups may hold groups, but never themselves: directly, or through a group they hold.
/// The refused change leaves the group as it was.
#[tokio::test]
async fn a_group_cannot_hold_itself_directly_or_through_another() {
    let s = TestServer::start().await;
    let a = create_group(&s, "A", &[]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = create_group(&s, "B", &[&a]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = create_group(&s, "C", &[&b]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = |to: &str, member: &str| {
        let (to, member) = (to.to_string(), member.to_string());
        let s = &s;
        async move {
            s.patch(
                &format!("/scim/v2/Groups/{to}"),
                &json!({"schemas":[PATCH_URN],"Operations":[{"op":"add","path":"members","value":[{"value":member,"type":"Group"}]}]}),
            )
            .await
        }
    };
    add(&a, &a).await.assert_error(400, Some("invalidValue"));
    // C holds B holds A: A holding C would be a loop two groups deep.
    add(&a, &c).await.assert_error(400, Some("invalidValue"));
    let r = s
        .put(
            &format!("/scim/v2/Groups/{a}"),
            &json!({"schemas":[GROUP_URN],"displayName":"A","members":[{"value":c}]}),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    let r = s.get(&format!("/scim/v2/Groups/{a}")).await;
    assert_eq!(r.json["members"], json!([]), "{}", r.text);
    // Nesting without a loop is fine.
    let d = create_group(&s, "D", &[]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(add(&a, &d).await.status, 204);
    assert_eq!(add(&c, &d).await.status, 204, "D in A and in C is no loop");
}

/// Removing members by a filter on something other than `value` reads the group: a
/// request whose filters would compare too much (many operations, many terms, a big
/// group) is refused as `tooMany` with nothing removed, rather than hold back every
/// other write while it runs; one such operation runs.
#[tokio::test]
async fn member_filters_are_held_to_a_budget() {
    let s = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(s.create_user(&format!("m{i}@example.com")).await);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let g = create_group(&s, "Everyone", &refs).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    let terms: Vec<String> = (0..150).map(|i| format!("display co \"q{i}\"")).collect();
    let remove = json!({"op": "remove", "path": format!("members[{}]", terms.join(" or "))});
    let body = |n: usize| json!({"schemas":[PATCH_URN],"Operations": vec![remove.clone(); n]});
    let r = s.patch(&path, &body(100)).await;
    r.assert_error(400, Some("tooMany"));
    let r = s.patch(&path, &body(1)).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = s.get(&format!("{path}?attributes=members")).await;
    assert_eq!(r.json["members"].as_array().unwrap().len(), 200);
}

/// A member removed and added back in one PATCH, or added and removed, is where it was: the
/// version stays and no event tells apps of a change that did not happen. One that moves
/// for good still counts, beside the pair.
#[tokio::test]
async fn members_moved_and_moved_back_in_one_patch_change_nothing() {
    let s = TestServer::start().await;
    let a = s.create_user("a@example.com").await;
    let b = s.create_user("b@example.com").await;
    let c = s.create_user("c@example.com").await;
    let g = create_group(&s, "G", &[a.as_str()]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    let version = g["meta"]["version"].clone();
    let events = |s: &TestServer| {
        let conn = s.db.conn().unwrap();
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let before = events(&s);
    let ops = |ops: Value| json!({"schemas":[PATCH_URN],"Operations":ops});
    for pair in [
        json!([{"op":"remove","path":format!("members[value eq \"{a}\"]")},
               {"op":"add","path":"members","value":[{"value":a}]}]),
        json!([{"op":"add","path":"members","value":[{"value":b}]},
               {"op":"remove","path":"members","value":[{"value":b}]}]),
    ] {
        let r = s.patch(&path, &ops(pair.clone())).await;
        assert_eq!(r.status, 204, "{pair}: {}", r.text);
        let r = s.get(&path).await;
        assert_eq!(r.json["meta"]["version"], version, "{pair}");
        assert_eq!(member_ids(&r.json), vec![a.clone()], "{pair}");
        assert_eq!(events(&s), before, "{pair}: no event");
    }
    // A pair and a real move: the move alone is heard of.
    let r = s
        .patch(
            &path,
            &ops(
                json!([{"op":"remove","path":"members","value":[{"value":a}]},
                        {"op":"add","path":"members","value":[{"value":a},{"value":c}]}]),
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_ne!(r.header("etag"), version.as_str());
    assert!(r.header("etag").is_some());
    let conn = s.db.conn().unwrap();
    let kinds: Vec<String> = conn
        .prepare("SELECT type FROM events WHERE seq > ?1 ORDER BY seq")
        .unwrap()
        .query_map([before], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("group.member"))
            .collect::<Vec<_>>(),
        ["group.member_added"],
        "{kinds:?}"
    );
}

/// A new externalId is a change apps can read (`/api/v1/groups/{id}`): its event says what
/// it was, and every group event carries the group's externalId.
#[tokio::test]
async fn a_groups_new_external_id_is_an_event_that_says_what_it_was() {
    let s = TestServer::start().await;
    let g = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"G","externalId":"g-1"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let path = format!("/scim/v2/Groups/{}", g.json["id"].as_str().unwrap());
    let r = s
        .patch(
            &path,
            &json!({"schemas":[PATCH_URN],"Operations":[{"op":"replace","path":"externalId","value":"g-2"}]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let conn = s.db.conn().unwrap();
    let events = scimd::db::events::after(&conn, 1, 0, 100).unwrap();
    let shown: Vec<Value> = events
        .iter()
        .map(|e| {
            let o = scimd::ops::events::object(e);
            json!([o["type"], o["data"]["external_id"], o["previous"]])
        })
        .collect();
    assert_eq!(
        shown,
        [
            json!(["group.created", "g-1", {}]),
            json!(["group.updated", "g-2", {"external_id": "g-1"}]),
        ]
    );
}

/// Okta batches a flapping group rule's changes: one PATCH may touch a user three times.
/// What counts is where the user ends up, for the events and for the role alike.
#[tokio::test]
async fn a_user_touched_thrice_in_one_patch_ends_where_the_last_touch_puts_it() {
    let s = TestServer::start().await;
    let u = s.create_user("u@example.com").await;
    let g = create_group(&s, "scimd-role-admin", &[u.as_str()]).await;
    let path = format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap());
    let role = |s: &TestServer| {
        let conn = s.db.conn().unwrap();
        conn.query_row("SELECT role FROM members", [], |r| r.get::<_, String>(0))
            .unwrap()
    };
    assert_eq!(role(&s), "admin");
    let touch = |op: &str| json!({"op": op, "path": "members", "value": [{"value": u}]});
    let r = s
        .patch(
            &path,
            &json!({"schemas":[PATCH_URN],"Operations":[touch("Remove"), touch("Add"), touch("Remove")]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        role(&s),
        "viewer",
        "out of the admin group, out of the role"
    );
    let r = s
        .patch(
            &path,
            &json!({"schemas":[PATCH_URN],"Operations":[touch("Add"), touch("Remove"), touch("Add")]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(&s), "admin");
    let conn = s.db.conn().unwrap();
    let kinds: Vec<String> = conn
        .prepare("SELECT type FROM events WHERE type LIKE 'group.member%' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds,
        [
            "group.member_added",
            "group.member_removed",
            "group.member_added"
        ]
    );
    // Emptying a group that is already empty changes nothing.
    let e = create_group(&s, "Empty", &[]).await;
    let path = format!("/scim/v2/Groups/{}", e["id"].as_str().unwrap());
    for empty in [
        json!([{"op":"remove","path":"members"}]),
        json!([{"op":"replace","path":"members","value":[]}]),
        json!([{"op":"replace","value":{"members":[]}}]),
    ] {
        let r = s
            .patch(&path, &json!({"schemas":[PATCH_URN],"Operations":empty}))
            .await;
        assert_eq!(r.status, 204, "{empty}: {}", r.text);
        assert_eq!(r.header("etag"), e["meta"]["version"].as_str(), "{empty}");
    }
}

/// A group without members shows `"members": []` wherever its members are read (RFC 7643
/// §2.5 holds it equal to no key; Microsoft's reference SCIM tests read the key of a group
/// just created empty, posted as `application/json`), and no key when they are excluded.
#[tokio::test]
async fn an_empty_group_shows_an_empty_member_list() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", s.token);
    let r = s
        .raw(
            hyper::Method::POST,
            "/scim/v2/Groups",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            json!({"externalId": "8c9f2c1e-0d4b-4c3e-9f55-0f1a2b3c4d5e",
                   "schemas": [GROUP_URN], "displayName": "Group1DisplayName", "members": []})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["members"], json!([]), "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let r = s.get(&format!("/scim/v2/Groups/{id}")).await;
    assert_eq!(r.json["members"], json!([]), "{}", r.text);
    let r = s.get("/scim/v2/Groups").await;
    assert_eq!(r.json["Resources"][0]["members"], json!([]), "{}", r.text);
    let r = s
        .get(&format!("/scim/v2/Groups/{id}?excludedAttributes=members"))
        .await;
    assert!(r.json.get("members").is_none(), "{}", r.text);
    let r = s
        .get(&format!("/scim/v2/Groups/{id}?attributes=displayName"))
        .await;
    assert!(r.json.get("members").is_none(), "{}", r.text);
}
