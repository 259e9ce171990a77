//! Large groups over real HTTP: a one-member PATCH that asks for members in its answer
//! gets them all, listed by the write while the group is small, read back after the
//! commit past that (the writer, which every write waits on, never reads a large one).

mod common;

use common::*;
use scimd::db::groups::{self, MemberKind, ResolvedMember};
use scimd::db::{self, DbError};
use scimd::scim::resource::normalize;
use scimd::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::{Value, json};

/// The most members a PATCH answer lists (`PATCH_RESPONSE_MEMBER_LIMIT` in the server).
const LISTED: usize = 1000;

/// A group of `n` users, written straight through the db layer (n POSTs would be slow).
fn seed_group(s: &TestServer, n: usize) -> String {
    let mut conn = s.db.conn().unwrap();
    let tenant = db::tenants::by_slug(&conn, db::tenants::DEFAULT_SLUG)
        .unwrap()
        .id;
    db::write_sync(&mut conn, |tx| {
        let mut members = Vec::new();
        for i in 0..n {
            let data = normalize(
                &USER_RESOURCE,
                json!({"userName": format!("m{i}@example.com")}),
            )
            .unwrap();
            let pk = db::users::create(tx, tenant, &data)?.pk;
            members.push(ResolvedMember {
                kind: MemberKind::User,
                pk,
                display: None,
            });
        }
        let data = normalize(&GROUP_RESOURCE, json!({"displayName": "Everyone"})).unwrap();
        let group = groups::create(tx, tenant, &data)?;
        groups::add_members(tx, group.pk, &members)?;
        Ok::<_, DbError>(group.id)
    })
    .unwrap()
}

fn member_patch(op: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": [op]})
}

fn listed(r: &Resp) -> Option<usize> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
        .get("members")
        .and_then(Value::as_array)
        .map(Vec::len)
}

/// A PATCH answers 204 unless it names attributes (as IdPs never do); one that asks for
/// the members gets every one, past the limit too (then read back after the commit).
#[tokio::test]
async fn patch_answers_with_every_member_when_asked_for_them() {
    let s = TestServer::start().await;
    let group = seed_group(&s, LISTED - 1);
    let path = format!("/scim/v2/Groups/{group}");
    let asking = format!("{path}?attributes=displayName,members");
    let (a, b) = (
        s.create_user("a@example.com").await,
        s.create_user("b@example.com").await,
    );

    let add =
        |id: &str| member_patch(json!({"op": "add", "path": "members", "value": [{"value": id}]}));
    let remove = |id: &str| {
        member_patch(json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
    };

    assert_eq!(listed(&s.patch(&asking, &add(&a)).await), Some(LISTED));
    let past = s.patch(&asking, &add(&b)).await;
    assert_eq!(listed(&past), Some(LISTED + 1));
    assert_eq!(past.json["displayName"], "Everyone");
    assert_eq!(
        past.header("etag"),
        Some("W/\"3\""),
        "the version the write made"
    );
    assert_eq!(listed(&s.patch(&asking, &remove(&a)).await), Some(LISTED));

    // A PATCH that asks for nothing answers 204; a GET returns every member.
    let r = s.patch(&path, &add(&a)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(listed(&s.get(&path).await), Some(LISTED + 1));
    let r = s.get(&format!("{path}?excludedAttributes=members")).await;
    assert_eq!(listed(&r), None);
}

/// A full GET of a group larger than the server reads at a time (1000 members) is sent as
/// it is read: it must still be one valid JSON document holding every member exactly once,
/// in insertion order, with the group's ETag, and answer If-None-Match with 304; the
/// projections that leave members out or keep them whole agree with it.
#[tokio::test]
async fn streamed_full_reads_of_large_groups_hold_every_member_once() {
    for n in [2000, 2345] {
        let s = TestServer::start().await;
        let group = seed_group(&s, n);
        let r = s.get(&format!("/scim/v2/Groups/{group}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let parsed: Value = serde_json::from_str(&r.text).expect("one valid JSON document");
        let members = parsed["members"].as_array().unwrap();
        assert_eq!(members.len(), n);
        let ids: Vec<&str> = members
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), n, "each member once");
        // Insertion order: the seeded userNames m0, m1, … as displays.
        for (i, m) in members.iter().enumerate().step_by(97) {
            assert_eq!(m["display"], json!(format!("m{i}@example.com")));
            assert_eq!(m["type"], "User");
            let href = m["$ref"].as_str().unwrap();
            assert!(href.ends_with(&format!("/Users/{}", ids[i])), "{href}");
        }
        assert_eq!(parsed["displayName"], "Everyone");
        assert_eq!(parsed["meta"]["resourceType"], "Group");
        let etag = r.header("etag").expect("an ETag").to_string();
        assert_eq!(parsed["meta"]["version"], json!(etag));
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/scim+json")
        );

        let again = s
            .raw(
                hyper::Method::GET,
                &format!("/scim/v2/Groups/{group}"),
                &[
                    ("authorization", &format!("Bearer {}", s.token)),
                    ("if-none-match", &etag),
                ],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(again.status, 304);

        let whole = s
            .get(&format!("/scim/v2/Groups/{group}?attributes=members"))
            .await;
        assert_eq!(whole.json["members"], parsed["members"]);
        assert!(whole.json.get("displayName").is_none());
        let without = s
            .get(&format!(
                "/scim/v2/Groups/{group}?excludedAttributes=members"
            ))
            .await;
        assert!(without.json.get("members").is_none());
        assert_eq!(without.json["id"], parsed["id"]);
        let values = s
            .get(&format!("/scim/v2/Groups/{group}?attributes=members.value"))
            .await;
        let listed: Vec<&str> = values.json["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ids);
        // Deleting the group's members one by one keeps the answer whole and consistent.
        let gone = s.delete(&format!("/scim/v2/Users/{}", ids[0])).await;
        assert_eq!(gone.status, 204);
        let after = s.get(&format!("/scim/v2/Groups/{group}")).await;
        assert_eq!(after.json["members"].as_array().unwrap().len(), n - 1);
    }
}

/// A list page past a megabyte (a page of big groups, as Okta's and Ping's imports walk
/// them) goes out a resource at a time: the same document, with every member, as a GET of
/// the group and as the root search.
#[tokio::test]
async fn a_list_page_of_big_groups_is_one_document_with_every_member() {
    let s = TestServer::start().await;
    let group = seed_group(&s, 12_000);
    let one = s.get(&format!("/scim/v2/Groups/{group}")).await;
    assert_eq!(one.status, 200);
    let r = s.get("/scim/v2/Groups?startIndex=1&count=100").await;
    assert_eq!(r.status, 200, "{}", &r.text[..200.min(r.text.len())]);
    assert!(r.text.len() > 1 << 20, "past the streaming threshold");
    let listed: Value = serde_json::from_str(&r.text).expect("one valid JSON document");
    assert_eq!(listed["totalResults"], 1);
    assert_eq!(listed["itemsPerPage"], 1);
    assert_eq!(listed["Resources"][0], one.json, "as a GET of the group");
    assert_eq!(
        listed["Resources"][0]["members"].as_array().unwrap().len(),
        12_000
    );
    let r = s
        .post(
            "/scim/v2/.search",
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter":"displayName eq \"Everyone\""}),
        )
        .await;
    assert_eq!(r.status, 200);
    let searched: Value = serde_json::from_str(&r.text).expect("one valid JSON document");
    assert_eq!(searched["Resources"][0], one.json);
}
