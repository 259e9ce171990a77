//! Large groups over real HTTP: a one-member PATCH answers with the member list only while
//! the group is small enough to list in a response, and never reads a large one.

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

#[tokio::test]
async fn patch_lists_members_up_to_the_limit_and_leaves_them_out_past_it() {
    let s = TestServer::start().await;
    let group = seed_group(&s, LISTED - 1);
    let path = format!("/scim/v2/Groups/{group}");
    let (a, b) = (
        s.create_user("a@example.com").await,
        s.create_user("b@example.com").await,
    );

    let add =
        |id: &str| member_patch(json!({"op": "add", "path": "members", "value": [{"value": id}]}));
    let remove = |id: &str| {
        member_patch(json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
    };

    assert_eq!(listed(&s.patch(&path, &add(&a)).await), Some(LISTED));
    assert_eq!(listed(&s.patch(&path, &add(&b)).await), None);
    assert_eq!(listed(&s.patch(&path, &remove(&a)).await), Some(LISTED));

    // Left out of the PATCH answer, never lost: a GET returns them all.
    assert_eq!(listed(&s.patch(&path, &add(&a)).await), None);
    assert_eq!(listed(&s.get(&path).await), Some(LISTED + 1));
    let r = s.get(&format!("{path}?excludedAttributes=members")).await;
    assert_eq!(listed(&r), None);
}
