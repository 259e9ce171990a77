//! The apps side over real HTTP: an app that holds only an API key lists a tenant's members
//! with their roles, then follows every change after that point, in order, from the events
//! feed (paged, long-polled, streamed).

mod common;

use std::time::Duration;

use common::*;
use hyper::Method;
use scimd::db;
use scimd::model::Actor;
use scimd::ops;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn api_key(s: &TestServer, tenant: i64) -> String {
    ops::apikeys::issue(&s.db, &Actor::cli(), Some(tenant), "app".into(), None)
        .await
        .unwrap()
        .token
        .secret
}

async fn get(s: &TestServer, key: &str, path: &str) -> Resp {
    let auth = format!("Bearer {key}");
    s.raw(Method::GET, path, &[("authorization", &auth)], "")
        .await
}

/// An Okta-style push: a user, then a group holding it.
async fn push(s: &TestServer, email: &str, group: Option<&str>) -> String {
    let id = s.create_user(email).await;
    if let Some(name) = group {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": name, "members": [{"value": id}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    id
}

async fn deactivate(s: &TestServer, user_id: &str) -> Resp {
    s.patch(
        &format!("/scim/v2/Users/{user_id}"),
        &json!({"schemas":[PATCH_URN],"Operations":[{"op":"replace","path":"active","value":false}]}),
    )
    .await
}

#[tokio::test]
async fn keys_open_the_api_and_nothing_else() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    assert!(key.starts_with("scimd_key_"));
    assert_eq!(get(&s, &key, "/api/v1/members").await.status, 200);
    // A SCIM token never works on the API, a key never on /scim.
    let r = get(&s, &s.token, "/api/v1/members").await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json["code"], "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = s.call(Method::GET, "/scim/v2/Users", &key, None).await;
    r.assert_error(401, None);
    assert_eq!(
        s.raw(Method::GET, "/api/v1/members", &[], "").await.status,
        401
    );
    // The API is read-only.
    let auth = format!("Bearer {key}");
    let r = s
        .raw(
            Method::POST,
            "/api/v1/members",
            &[("authorization", &auth)],
            "{}",
        )
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // So are the WorkOS-compatible API and the health check.
    for (method, path) in [
        (Method::POST, "/directory_users"),
        (Method::DELETE, "/events"),
        (Method::PUT, "/healthz"),
        (Method::POST, "/healthz"),
    ] {
        let r = s
            .raw(method.clone(), path, &[("authorization", &auth)], "{}")
            .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
    }
    // Revoked: at once.
    let id = db::api_keys::list(&s.db.conn().unwrap(), Some(1)).unwrap()[0].id;
    ops::apikeys::revoke(&s.db, &Actor::cli(), Some(1), id)
        .await
        .unwrap();
    assert_eq!(get(&s, &key, "/api/v1/members").await.status, 401);
    // Another tenant's key reads its own tenant only.
    s.token_for("other");
    let other = db::tenants::by_slug(&s.db.conn().unwrap(), "other")
        .unwrap()
        .id;
    let other_key = api_key(&s, other).await;
    push(&s, "ada@example.com", None).await;
    let mine = api_key(&s, 1).await;
    let ada = get(&s, &mine, "/api/v1/members").await.json["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(&s, &other_key, &format!("/api/v1/members/{ada}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        get(&s, &other_key, "/api/v1/members").await.json["data"],
        json!([])
    );
    // Naming another tenant is refused, not ignored.
    let r = get(&s, &other_key, "/api/v1/members?tenant=default").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        get(&s, &other_key, "/api/v1/members?tenant=other")
            .await
            .status,
        200
    );
    s.stop().await;
}

/// A key revoked while it long-polls or streams reads nothing after the revocation: the
/// poll answers 401, the stream ends with an error event instead of the next change.
#[tokio::test]
async fn a_revoked_key_stops_reading_on_a_long_poll_and_a_stream_it_opened() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let id = db::api_keys::list(&s.db.conn().unwrap(), Some(1)).unwrap()[0].id;
    let poll = get(&s, &key, "/api/v1/events?wait=30");
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let revoke_then_write = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ops::apikeys::revoke(&s.db, &Actor::cli(), Some(1), id)
            .await
            .unwrap();
        push(&s, "after-revoke@example.com", None).await
    };
    let (r, _) = tokio::join!(poll, revoke_then_write);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(!r.text.contains("after-revoke"), "{}", r.text);
    // Read up to the end of the chunked body (the connection itself stays open).
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.ends_with("\r\n0\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the stream ends")
            .unwrap();
        assert!(read > 0, "{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..read]));
    }
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("revoked"), "{text}");
    assert!(!text.contains("after-revoke"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn an_app_lists_members_with_roles_then_follows_every_change_in_order() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let ada = push(&s, "ada@example.com", Some("scimd-role-admin")).await;
    push(&s, "bob@example.com", None).await;
    for i in 0..3 {
        push(&s, &format!("p{i}@example.com"), None).await;
    }

    // List everything, two at a time; every member once, with its role and why.
    let mut seen = Vec::new();
    let mut path = "/api/v1/members?limit=2".to_string();
    let mut cursor = None;
    loop {
        let r = get(&s, &key, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["object"], "list");
        assert_eq!(r.header("content-type"), Some("application/json"));
        cursor.get_or_insert(r.json["list_metadata"]["events_cursor"].as_i64().unwrap());
        for m in r.json["data"].as_array().unwrap() {
            seen.push(m.clone());
        }
        match r.json["list_metadata"]["after"].as_str() {
            Some(after) => path = format!("/api/v1/members?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let ada_member = seen
        .iter()
        .find(|m| m["email"] == "ada@example.com")
        .unwrap();
    assert_eq!(ada_member["role"], "admin");
    assert_eq!(
        ada_member["role_reason"],
        "admin, from reserved group scimd-role-admin"
    );
    assert_eq!(ada_member["status"], "active");
    assert_eq!(ada_member["directory_user_id"], ada.as_str());
    assert_eq!(ada_member["groups"][0]["display_name"], "scimd-role-admin");
    let bob = seen
        .iter()
        .find(|m| m["email"] == "bob@example.com")
        .unwrap();
    assert_eq!(bob["role"], "viewer");

    // Filters.
    let r = get(&s, &key, "/api/v1/members?role=admin").await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    let r = get(&s, &key, "/api/v1/members?email=BOB%40example.com").await;
    assert_eq!(r.json["data"][0]["email"], "bob@example.com");
    let group_id = ada_member["groups"][0]["id"].as_str().unwrap();
    let r = get(&s, &key, &format!("/api/v1/members?group={group_id}")).await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&s, &key, "/api/v1/members?status=nope").await.status,
        400
    );
    assert_eq!(get(&s, &key, "/api/v1/members?limit=0").await.status, 400);
    // Two statuses do not quietly become one; the same one twice is harmless.
    let r = get(&s, &key, "/api/v1/members?status=active&status=suspended").await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("status is given more than once"),
        "{}",
        r.text
    );
    let r = get(&s, &key, "/api/v1/members?role=admin&role=admin").await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&s, &key, "/api/v1/members?after=garbage").await.json["code"],
        "invalid_cursor"
    );

    // Changes after the list: a suspension and a deletion, each with the full member, the
    // values it replaced, and who caused it in which request.
    let events_cursor = cursor.unwrap();
    let r = deactivate(&s, &ada).await;
    let request_id = r.header("x-request-id").unwrap().to_string();
    let r = s
        .delete(&format!(
            "/scim/v2/Users/{}",
            bob["directory_user_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 204);
    let r = get(&s, &key, &format!("/api/v1/events?after={events_cursor}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.json["data"].as_array().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"member.suspended"), "{types:?}");
    assert!(types.contains(&"member.archived"), "{types:?}");
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (events_cursor + 1..=events_cursor + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "gap-free and in order");
    let suspended = events
        .iter()
        .find(|e| e["type"] == "member.suspended")
        .unwrap();
    assert_eq!(suspended["data"]["id"], ada_member["id"]);
    assert_eq!(suspended["data"]["status"], "suspended");
    assert_eq!(suspended["data"]["email"], "ada@example.com");
    assert_eq!(suspended["previous"]["status"], "active");
    assert_eq!(suspended["context"]["request_id"], request_id.as_str());
    assert!(
        suspended["context"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    assert_eq!(suspended["context"]["via"], "scim");
    assert!(suspended["id"].as_str().unwrap().starts_with("evt_"));
    let next = r.json["list_metadata"]["after"].as_i64().unwrap();
    assert_eq!(next, *seqs.last().unwrap());
    // Nothing more; a type filter narrows.
    let r = get(&s, &key, &format!("/api/v1/events?after={next}")).await;
    assert_eq!(r.json["data"], json!([]));
    let r = get(
        &s,
        &key,
        &format!("/api/v1/events?after={events_cursor}&types=member.archived"),
    )
    .await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&s, &key, "/api/v1/events?types=member.exploded")
            .await
            .status,
        400
    );
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_wakes_when_an_event_commits() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let after = get(&s, &key, "/api/v1/members").await.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/events?after={after}&wait=30");
    let poll = get(&s, &key, &path);
    let write = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&s, "late@example.com", None).await
    };
    let (r, _) = tokio::join!(poll, write);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"][0]["type"], "member.created", "{}", r.text);
    assert_eq!(r.json["data"][0]["data"]["email"], "late@example.com");
    s.stop().await;
}

/// An app that follows one rare type must not read the feed's other events again on every
/// poll: a page short of its limit moves the cursor past everything it looked at.
#[tokio::test]
async fn a_type_filter_moves_the_cursor_past_the_events_it_skipped() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let cursor = |r: &Resp| r.json["list_metadata"]["after"].as_i64().unwrap();
    let start = get(&s, &key, "/api/v1/members").await.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    let ada = push(&s, "ada@example.com", None).await;
    push(&s, "bob@example.com", None).await;
    let newest = get(&s, &key, "/api/v1/members").await.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    assert!(newest > start);

    // Nothing of the type asked for: no events, and the cursor past every one looked at.
    let r = get(
        &s,
        &key,
        &format!("/api/v1/events?after={start}&types=member.archived"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"], json!([]));
    assert_eq!(cursor(&r), newest);
    // A cursor beyond the feed is refused (it would skip the events numbered up to it).
    let r = get(&s, &key, &format!("/api/v1/events?after={}", newest + 5)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // A full page stops at its last event, whatever follows it.
    let r = get(&s, &key, &format!("/api/v1/events?after={start}&limit=1")).await;
    assert_eq!(cursor(&r), r.json["data"][0]["seq"].as_i64().unwrap());
    assert_eq!(cursor(&r), start + 1);

    // A long poll for the type wakes on other events, reads only what is new each time,
    // and answers with the one that matches.
    let path = format!("/api/v1/events?after={newest}&types=member.archived&wait=30");
    let poll = get(&s, &key, &path);
    let writes = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&s, "cy@example.com", None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = s.delete(&format!("/scim/v2/Users/{ada}")).await;
        assert_eq!(r.status, 204);
    };
    let (r, _) = tokio::join!(poll, writes);
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", r.text);
    assert_eq!(data[0]["type"], "member.archived");
    assert_eq!(data[0]["data"]["email"], "ada@example.com");
    let latest = r.json["list_metadata"]["events_cursor"].as_i64().unwrap();
    assert_eq!(cursor(&r), latest, "the archive is the newest event");
    assert!(
        data[0]["seq"].as_i64().unwrap() > newest + 1,
        "cy's event came first"
    );
    s.stop().await;
}

/// Reads `n` events from an event stream opened with `headers`.
async fn stream_events(
    s: &TestServer,
    key: &str,
    query: &str,
    last_id: Option<i64>,
    n: usize,
) -> Vec<(i64, Value)> {
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let last = last_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /api/v1/events{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n{last}\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let frames = |text: &str| -> Vec<(i64, Value)> {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.split("\n\n")
            .filter_map(|frame| {
                let id = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))?
                    .trim()
                    .parse()
                    .ok()?;
                let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((id, serde_json::from_str(data).ok()?))
            })
            .collect()
    };
    while frames(&text).len() < n {
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the stream sends the events")
            .unwrap();
        assert!(read > 0, "the stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..read]));
    }
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    frames(&text)
}

#[tokio::test]
async fn events_stream_as_server_sent_events_and_resume_from_last_event_id() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    push(&s, "ada@example.com", None).await;
    push(&s, "bob@example.com", None).await;
    let all = stream_events(&s, &key, "", None, 2).await;
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(all[0].1["seq"], 1);
    assert_eq!(all[1].1["data"]["email"], "bob@example.com");
    // Resuming after 1 sends 2, then a new event as it commits.
    let resumed = stream_events(&s, &key, "", Some(1), 1).await;
    assert_eq!(resumed[0].0, 2);
    // A browser reconnects to the URL it first opened, with the last id it saw.
    let reconnected = stream_events(&s, &key, "?after=0", Some(1), 1).await;
    assert_eq!(reconnected[0].0, 2);
    let (live, _) = tokio::join!(stream_events(&s, &key, "?after=2", None, 1), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&s, "cy@example.com", None).await
    });
    assert_eq!(live[0].0, 3);
    assert_eq!(live[0].1["data"]["email"], "cy@example.com");
    s.stop().await;
}

/// A cursor past the newest event was never handed out (a typo, a restored backup):
/// following it would skip the events that take those numbers next, so it is refused.
#[tokio::test]
async fn a_cursor_past_the_newest_event_is_refused() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    push(&s, "ada@example.com", None).await;
    let newest = get(&s, &key, "/api/v1/members").await.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    let r = get(&s, &key, &format!("/api/v1/events?after={newest}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for path in [
        format!("/api/v1/events?after={}", newest + 1),
        format!("/api/v1/events?after={}&wait=5", newest + 50),
    ] {
        let r = get(&s, &key, &path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.json["code"], "invalid_cursor", "{}", r.text);
    }
    let auth = format!("Bearer {key}");
    let last = (newest + 1).to_string();
    let r = s
        .raw(
            Method::GET,
            "/api/v1/events",
            &[
                ("authorization", &auth),
                ("accept", "text/event-stream"),
                ("last-event-id", &last),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn a_cursor_older_than_the_events_kept_says_to_list_again() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    push(&s, "ada@example.com", None).await;
    push(&s, "bob@example.com", None).await;
    // Move the clock: the retention job runs as if every event were a year old.
    s.db.conn()
        .unwrap()
        .execute(
            "UPDATE events SET created_at = '2000-01-01T00:00:00.000000Z'",
            [],
        )
        .unwrap();
    let done = ops::retention::daily(&s.db, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(done.events_purged, 2);
    let r = get(&s, &key, "/api/v1/events?after=0").await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.json["code"], "cursor_expired");
    assert!(r.json["message"].as_str().unwrap().contains("list"));
    // No cursor claims nothing: it reads from the oldest event kept (none), and a stream
    // opened without one starts there too.
    let r = get(&s, &key, "/api/v1/events").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"], json!([]));
    assert_eq!(r.json["list_metadata"]["after"], 2);
    // Listing again gives a cursor that works, and numbering goes on without reuse.
    let cursor = get(&s, &key, "/api/v1/members").await.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    assert_eq!(cursor, 2);
    push(&s, "cy@example.com", None).await;
    let r = get(&s, &key, &format!("/api/v1/events?after={cursor}")).await;
    assert_eq!(r.json["data"][0]["seq"], 3, "{}", r.text);
    s.stop().await;
}

/// A user's new externalId changes what apps read of its member (`external_id`), and a new
/// title or department what they read of the person: they hear of it in a `member.updated`,
/// the one the sync records of the same write when it records one (one write, one update),
/// `updated_since` finds the member, and test mode (which moves no member) does not hold
/// it back, as apps read the value live.
#[tokio::test]
async fn a_new_external_id_is_a_member_update_apps_hear_of() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"gus@example.com",
                    "externalId":"ext-1","emails":[{"value":"gus@example.com","primary":true}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let listed = get(&s, &key, "/api/v1/members").await;
    let mut cursor = listed.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    let before = listed.json["data"][0]["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(listed.json["data"][0]["external_id"], "ext-1");
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Each write, and the events it gives: (type, previous).
    let path = format!("/scim/v2/Users/{id}");
    let replace =
        |value: Value| json!({"schemas":[PATCH_URN],"Operations":[{"op":"replace","value":value}]});
    let steps: Vec<(Value, Vec<(&str, Value)>)> = vec![
        (
            replace(json!({"externalId": "ext-2"})),
            vec![("member.updated", json!({"external_id": "ext-1"}))],
        ),
        (
            replace(json!({"externalId": "ext-3", "name.givenName": "Gus"})),
            vec![(
                "member.updated",
                json!({"given_name": null, "external_id": "ext-2"}),
            )],
        ),
        (
            replace(json!({"externalId": "ext-4", "active": false})),
            vec![
                ("member.suspended", json!({"status": "active"})),
                ("member.updated", json!({"external_id": "ext-3"})),
            ],
        ),
        // Title, department, manager: what apps read of the person besides the member.
        (
            replace(json!({"title": "Engineer",
                           "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D"})),
            vec![(
                "member.updated",
                json!({"attributes": {"title": null, "department": null}}),
            )],
        ),
        (
            replace(json!({"title": "Lead"})),
            vec![(
                "member.updated",
                json!({"attributes": {"title": "Engineer"}}),
            )],
        ),
        (replace(json!({"title": "Lead"})), vec![]),
        (
            replace(json!({"name.familyName": "Grimm", "title": "Head"})),
            vec![(
                "member.updated",
                json!({"family_name": null, "attributes": {"title": "Lead"}}),
            )],
        ),
        (
            replace(json!({"title": "Lead"})),
            vec![("member.updated", json!({"attributes": {"title": "Head"}}))],
        ),
    ];
    for (body, want) in steps {
        let r = s.patch(&path, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = get(&s, &key, &format!("/api/v1/events?after={cursor}")).await;
        let got: Vec<(&str, Value)> = r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["previous"].clone()))
            .collect();
        assert_eq!(got, want, "{body}");
        cursor = r.json["list_metadata"]["after"].as_i64().unwrap();
    }
    // The audit log tells an admin of the write that changed a name and a title in one
    // entry with both.
    let detail: String =
        s.db.conn()
            .unwrap()
            .query_row(
                "SELECT detail FROM audit_log WHERE action = 'member.updated' \
             AND detail LIKE '%attributes.title%' AND detail LIKE '%familyName%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    let fields: Vec<&Value> = detail["fields"].as_array().unwrap().iter().collect();
    assert!(
        fields.contains(&&json!({"field": "attributes.title", "before": "Lead", "after": "Head"})),
        "{detail}"
    );
    let since = get(&s, &key, &format!("/api/v1/members?updated_since={before}")).await;
    assert_eq!(since.json["data"][0]["external_id"], "ext-4");
    // The member shows the attributes the events name, and so did each event's member.
    assert_eq!(
        since.json["data"][0]["attributes"],
        json!({"title": "Lead", "department": "R&D"})
    );
    let all = get(&s, &key, "/api/v1/events?types=member.updated&limit=100").await;
    let shown: Vec<&Value> = all.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["data"]["attributes"])
        .collect();
    assert!(
        shown.contains(&&json!({"title": "Lead", "department": "R&D"})),
        "{shown:?}"
    );
    let after = since.json["data"][0]["updated_at"].as_str().unwrap();
    assert!(after > before.as_str(), "{after} after {before}");
    // Test mode moves no member, but apps read the externalId live: they still hear of it.
    {
        let conn = s.db.conn().unwrap();
        let mut settings = scimd::db::settings::get(&conn, 1).unwrap();
        settings.test_mode = true;
        scimd::db::settings::save(&conn, 1, &settings).unwrap();
    }
    let r = s
        .patch(&path, &replace(json!({"externalId": "ext-5"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&s, &key, &format!("/api/v1/events?after={cursor}")).await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(
        r.json["data"][0]["previous"],
        json!({"external_id": "ext-4"})
    );
    assert_eq!(r.json["data"][0]["data"]["external_id"], "ext-5");
    // A WorkOS app hears of the title as a dsync.user.updated with its custom attribute.
    let r = get(&s, &key, "/events?events=dsync.user.updated&limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let titled: Vec<&Value> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["data"]["previous_attributes"]["custom_attributes"]["job_title"] == "Engineer"
        })
        .collect();
    assert_eq!(titled.len(), 1, "{}", r.text);
    assert_eq!(titled[0]["data"]["custom_attributes"]["job_title"], "Lead");
    // A title removed: `previous` names it, and the member shows it no more.
    let remove = json!({"schemas":[PATCH_URN],"Operations":[{"op":"remove","path":"title"}]});
    let r = s.patch(&path, &remove).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&s, &key, &format!("/api/v1/events?after={cursor}")).await;
    let last = r.json["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "member.updated", "{}", r.text);
    assert_eq!(last["previous"], json!({"attributes": {"title": "Lead"}}));
    assert_eq!(last["data"]["attributes"], json!({"department": "R&D"}));
    s.stop().await;
}

/// A member archived because the IdP deleted its user reads as its `member.archived` event
/// showed it, externalId and attributes included: a list page and the feed agree. A user
/// created anew for the person relinks the member, and `previous` names the old values.
#[tokio::test]
async fn an_archived_member_keeps_what_its_deleted_user_last_said() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let body = |external: &str| {
        json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"gus@example.com",
               "externalId": external, "title": "Engineer",
               "emails":[{"value":"gus@example.com","primary":true}]})
    };
    let r = s.post("/scim/v2/Users", &body("ext-old")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let r = s.delete(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let events = get(&s, &key, "/api/v1/events?types=member.archived").await;
    let archived = events.json["data"][0]["data"].clone();
    assert_eq!(archived["external_id"], "ext-old", "{}", events.text);
    assert_eq!(archived["attributes"], json!({"title": "Engineer"}));
    let member = get(
        &s,
        &key,
        &format!("/api/v1/members/{}", archived["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(member.json, archived, "read as the event showed it");
    let cursor = events.json["list_metadata"]["after"].as_i64().unwrap();

    let r = s.post("/scim/v2/Users", &body("ext-new")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = get(&s, &key, &format!("/api/v1/events?after={cursor}")).await;
    let relinked = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["previous"].get("directory_user_id").is_some())
        .unwrap_or_else(|| panic!("no relink: {}", r.text))
        .clone();
    assert_eq!(relinked["previous"]["external_id"], "ext-old", "{relinked}");
    assert_eq!(relinked["data"]["external_id"], "ext-new", "{relinked}");
    s.stop().await;
}

/// An app polling with `list_metadata.after` while an IdP writes sees every event once, in
/// order: the cursor a page hands out is never behind an event on that page.
#[tokio::test]
async fn polls_under_concurrent_writes_see_every_event_once_in_order() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    const PER_WRITER: usize = 150;
    let writer = |w: usize| {
        let s = &s;
        async move {
            for i in 0..PER_WRITER {
                s.create_user(&format!("w{w}-{i}@example.com")).await;
            }
        }
    };
    let reader = async {
        let mut after = 0;
        let mut seen: Vec<i64> = Vec::new();
        while seen.len() < 3 * PER_WRITER {
            let r = get(&s, &key, &format!("/api/v1/events?after={after}&limit=7")).await;
            assert_eq!(r.status, 200, "{}", r.text);
            for e in r.json["data"].as_array().unwrap() {
                seen.push(e["seq"].as_i64().unwrap());
            }
            after = r.json["list_metadata"]["after"].as_i64().unwrap();
        }
        seen
    };
    let reader = tokio::time::timeout(Duration::from_secs(120), reader);
    let (_, _, _, seen) = tokio::join!(writer(0), writer(1), writer(2), reader);
    let seen = seen.expect("the reader saw every event");
    let expected: Vec<i64> = (1..=(3 * PER_WRITER) as i64).collect();
    assert_eq!(seen, expected, "each event once, in order");
    s.stop().await;
}

/// A list read while an IdP writes hands out the cursor of exactly what it shows: every
/// member it lists was created at or before its `events_cursor`, and every member created
/// by then is listed. A page can show a change committed a moment before the flush that
/// makes it durable; its cursor then waits for that flush rather than stop short, which
/// would have the app see the change again in the feed.
#[tokio::test]
async fn a_list_read_under_writes_names_the_cursor_of_what_it_shows() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    const PER_WRITER: usize = 40;
    let writer = |w: usize| {
        let s = &s;
        async move {
            for i in 0..PER_WRITER {
                s.create_user(&format!("w{w}-{i}@example.com")).await;
            }
        }
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let reader = || {
        let (s, key, done) = (&s, &key, &done);
        async move {
            let mut seen = Vec::new();
            while done.load(std::sync::atomic::Ordering::Relaxed) < 2 {
                let r = get(s, key, "/api/v1/members?limit=100").await;
                assert_eq!(r.status, 200, "{}", r.text);
                let ids: std::collections::BTreeSet<String> = r.json["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_str().unwrap().to_string())
                    .collect();
                let cursor = r.json["list_metadata"]["events_cursor"].as_i64().unwrap();
                seen.push((cursor, ids));
            }
            seen
        }
    };
    let writers = async {
        tokio::join!(
            async {
                writer(0).await;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            async {
                writer(1).await;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        )
    };
    let (_, a, b) = tokio::join!(writers, reader(), reader());
    let r = get(&s, &key, "/api/v1/events?after=0&limit=1000").await;
    let created: Vec<(i64, String)> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "member.created")
        .map(|e| {
            let id = e["data"]["id"].as_str().unwrap().to_string();
            (e["seq"].as_i64().unwrap(), id)
        })
        .collect();
    assert_eq!(created.len(), 2 * PER_WRITER);
    let snapshots = a.len() + b.len();
    assert!(snapshots >= 10, "the readers read while the writers wrote");
    for (cursor, ids) in a.into_iter().chain(b) {
        let by_then: std::collections::BTreeSet<String> = created
            .iter()
            .filter(|(seq, _)| *seq <= cursor)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(
            ids, by_then,
            "the page is what its cursor says (cursor {cursor})"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn groups_their_members_roles_and_the_openapi_document() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(s.create_user(&format!("g{i}@example.com")).await);
        }
        v
    };
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Engineering", "externalId": "eng-1", "members": members}),
        )
        .await;
    let gid = r.json["id"].as_str().unwrap().to_string();
    let r = get(&s, &key, "/api/v1/groups").await;
    assert_eq!(r.json["data"][0]["display_name"], "Engineering");
    assert_eq!(r.json["data"][0]["members_count"], 5);
    assert_eq!(
        r.json["data"][0]["external_id"], "eng-1",
        "as the group reads"
    );
    let r = get(&s, &key, &format!("/api/v1/groups/{gid}")).await;
    assert_eq!(r.json["id"], gid.as_str());
    assert_eq!(r.json["external_id"], "eng-1");
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/groups/{gid}/members?limit=2");
    loop {
        let r = get(&s, &key, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(
            r.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match r.json["list_metadata"]["after"].as_str() {
            Some(a) => path = format!("/api/v1/groups/{gid}/members?limit=2&after={a}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every member once, in the order added");
    // The feed names the group as /api/v1/groups does, and each joiner by the member id
    // /api/v1/members takes.
    let r = get(
        &s,
        &key,
        "/api/v1/events?types=group.created,group.member_added",
    )
    .await;
    let events = r.json["data"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{}", r.text);
    assert_eq!(
        events[0]["data"],
        json!({"object": "group", "id": gid, "display_name": "Engineering", "external_id": "eng-1"})
    );
    for (e, id) in events[1..].iter().zip(&ids) {
        assert_eq!(e["data"]["group"]["display_name"], "Engineering");
        assert_eq!(e["data"]["user"]["id"], id.as_str());
        let member_id = e["data"]["user"]["member_id"].as_str().unwrap();
        let m = get(&s, &key, &format!("/api/v1/members/{member_id}")).await;
        assert_eq!(m.json["directory_user_id"], id.as_str(), "{}", m.text);
        assert_eq!(m.json["user_name"], e["data"]["user"]["user_name"]);
    }
    assert_eq!(
        get(&s, &key, "/api/v1/groups/nope/members").await.status,
        404
    );
    let r = get(&s, &key, "/api/v1/roles").await;
    assert_eq!(r.json["default_role"], "viewer");
    assert_eq!(r.json["roles"][0]["slug"], "owner");
    assert_eq!(r.json["roles"][0]["reserved_group"], "scimd-role-owner");
    let doc = s.raw(Method::GET, "/api/v1/openapi.json", &[], "").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json["openapi"], "3.1.0");
    assert!(doc.json["paths"]["/api/v1/events"].is_object());
    assert!(doc.json["webhooks"]["event"].is_object());
    s.stop().await;
}

#[tokio::test]
async fn admins_create_show_once_and_revoke_keys_and_browse_events_in_the_apps_area() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let page = s
        .raw(Method::GET, "/t/default/apps", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    // Without the CSRF token nothing is created.
    let r = s
        .raw(Method::POST, "/t/default/apikeys", &form, "name=billing")
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .raw(
            Method::POST,
            "/t/default/apikeys",
            &form,
            format!("csrf={csrf}&name=billing&expires_in_days=never"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r
        .text
        .split("value=\"")
        .filter_map(|v| v.split('"').next())
        .find(|v| v.starts_with("scimd_key_"))
        .unwrap()
        .to_string();
    assert_eq!(get(&s, &key, "/api/v1/members").await.status, 200);
    let again = s
        .raw(Method::GET, "/t/default/apps", &[("cookie", &cookie)], "")
        .await;
    assert!(again.text.contains("billing"));
    assert!(!again.text.contains(&key), "shown only once");
    let id = db::api_keys::list(&s.db.conn().unwrap(), Some(1)).unwrap()[0].id;
    let r = s
        .raw(
            Method::POST,
            &format!("/t/default/apikeys/{id}/revoke"),
            &form,
            format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(get(&s, &key, "/api/v1/members").await.status, 401);
    let log = db::audit::list(&s.db.conn().unwrap(), &db::audit::Filter::default()).unwrap();
    let actions: Vec<&str> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert!(actions.contains(&"apikey.created") && actions.contains(&"apikey.revoked"));
    assert!(!log.iter().any(|r| {
        r.entry
            .detail
            .as_ref()
            .is_some_and(|d| d.to_string().contains(&key))
    }));

    // The events page lists what the feed carries, filtered by type.
    push(&s, "ada@example.com", None).await;
    let r = s
        .raw(
            Method::GET,
            "/t/default/events?type=member.created",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("member.created") && r.text.contains("ada@example.com"));
    let r = s
        .raw(
            Method::GET,
            "/t/default/events?type=group.deleted",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert!(!r.text.contains("ada@example.com"));
    s.stop().await;
}

/// Filtering the events page by a member reads a bounded window of the feed per page, and
/// leads on to the older events until it finds theirs.
#[tokio::test]
async fn the_events_page_searches_a_big_feed_a_window_at_a_time() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let key = api_key(&s, 1).await;
    push(&s, "ada@example.com", None).await;
    let r = get(&s, &key, "/api/v1/events?after=0&types=member.created").await;
    let ada = r.json["data"][0]["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Then more events about someone else than one page searches.
    {
        let mut conn = s.db.conn().unwrap();
        // Immediate: the server may write meanwhile (a token's last use, the inspector),
        // and a deferred transaction that read first cannot wait its turn to write.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let mut numbering = db::events::Numbering::new(1);
        for n in 0..db::events::SEARCHED_PER_PAGE {
            numbering
                .append(
                    &tx,
                    &Actor::cli(),
                    db::events::EventType::MemberUpdated,
                    "someone",
                    &n,
                )
                .unwrap();
        }
        numbering.finish(&tx).unwrap();
        tx.commit().unwrap();
    }
    let page = |path: String| {
        let cookie = cookie.clone();
        let s = &s;
        async move {
            let r = s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.text
        }
    };
    let first = page(format!("/t/default/events?subject={ada}")).await;
    let row = "<td><code>member.created</code></td>";
    assert!(!first.contains(row), "not in the newest window");
    assert!(!first.contains("ada@example.com"));
    assert!(first.contains(r#"id="searched""#), "{first}");
    let older = first
        .split("before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to search on")
        .to_string();
    assert!(first.contains("Search older events"));
    let next = page(format!("/t/default/events?subject={ada}&before={older}")).await;
    assert!(next.contains(row), "{next}");
    assert!(next.contains("ada@example.com"));
    assert!(
        !next.contains(r#"id="searched""#),
        "nothing older to search"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_event_retention_is_an_admin_setting() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = s.login_cookie("alice", "correct horse battery").await;
    let page = s
        .raw(
            Method::GET,
            "/t/default/settings",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert!(
        page.text
            .contains("name=\"event_retention_days\" value=\"90\"")
    );
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let body = |days: &str| {
        format!(
            "csrf={csrf}&name=Default&on_deactivate=suspend&on_delete=archive&absent=retain&match_by=email&event_retention_days={days}"
        )
    };
    let r = s
        .raw(Method::POST, "/t/default/settings", &form, body("0"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .raw(Method::POST, "/t/default/settings", &form, body("30"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let settings = db::settings::get(&s.db.conn().unwrap(), 1).unwrap();
    assert_eq!(settings.event_retention_days, 30);
    s.stop().await;
}

/// A key's last use is recorded behind the read that made it (a read never waits in the
/// writer's queue for it), and the admin pages and `apikey list` see it soon after.
#[tokio::test]
async fn a_keys_last_use_is_written_behind_its_read() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let last_used = || {
        scimd::db::api_keys::list(&s.db.conn().unwrap(), None).unwrap()[0]
            .last_used_at
            .clone()
    };
    assert_eq!(last_used(), None);
    assert_eq!(get(&s, &key, "/api/v1/members").await.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while last_used().is_none() {
        assert!(std::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A member's `groups` are part of what apps read of it: joining or leaving a group moves
/// its `updated_at`, so that an app reading the members changed since its last look finds
/// it.
#[tokio::test]
async fn joining_or_leaving_a_group_is_a_change_updated_since_finds() {
    let s = TestServer::start().await;
    let key = api_key(&s, 1).await;
    let ada = s.create_user("ada@example.com").await;
    let bob = s.create_user("bob@example.com").await;
    let gid = s.create_group("Team", &[&bob]).await;
    // The last change before the app's look: Carol's creation, after Bob joined.
    s.create_user("carol@example.com").await;
    let since = |r: &Resp| -> Vec<String> {
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = get(&s, &key, "/api/v1/members").await;
    let last = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["updated_at"].as_str())
        .max()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = s
        .patch(
            &format!("/scim/v2/Groups/{gid}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": ada}]},
                                   {"op": "remove", "path": format!("members[value eq \"{bob}\"]")}]}),
        )
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let after = since(&get(&s, &key, &format!("/api/v1/members?updated_since={last}")).await);
    assert_eq!(
        after,
        ["ada@example.com", "bob@example.com", "carol@example.com"],
        "Ada joined, Bob left; Carol was changed at that time"
    );
    s.stop().await;
}
