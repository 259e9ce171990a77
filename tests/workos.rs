//! The WorkOS Directory Sync drop-in, checked with the official SDKs: real SCIM traffic
//! (an Okta-style push of more than 250 users and a group, a deactivation, a delete) goes
//! into the real server, then `tests/workos/sdk_test.py` (PyPI `workos`) and
//! `tests/workos/sdk_test.mjs` (npm `@workos-inc/node`) read it back through the SDKs and
//! verify a WorkOS-format webhook scimd sent. Without an SDK the test skips locally and
//! fails under CI, which installs both (see `.ci/run`).

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use scimd::model::Actor;
use scimd::ops;
use serde_json::{Value, json};

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USERS: usize = 260;

/// An app's key for every tenant, as a WorkOS environment key reads every directory.
async fn all_tenants_key(s: &TestServer, name: &str) -> String {
    ops::apikeys::issue(&s.db, &Actor::cli(), None, name.into(), None)
        .await
        .unwrap()
        .token
        .secret
}

/// A GET of `path` with the `authorization` header `auth`, as an SDK sends it.
async fn read(s: &TestServer, auth: &str, path: &str) -> Resp {
    s.raw(Method::GET, path, &[("authorization", auth)], "")
        .await
}

/// Sets what the default tenant does when the IdP deletes a user.
fn on_delete(s: &TestServer, policy: scimd::model::DeletePolicy) {
    let conn = s.db.conn().unwrap();
    let mut settings = scimd::db::settings::get(&conn, 1).unwrap();
    settings.on_delete = policy;
    scimd::db::settings::save(&conn, 1, &settings).unwrap();
}

/// Where each SDK is, or why it is not.
fn python() -> Option<String> {
    let candidates = [
        std::env::var("WORKOS_PYTHON").ok(),
        Some(".venv-workos/bin/python".into()),
        Some("python3".into()),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import workos"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn node_ready() -> bool {
    Path::new("tests/workos/node_modules/@workos-inc/node").exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// What the receiver kept: each request's `WorkOS-Signature` and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A receiver that keeps every request's body and `WorkOS-Signature`.
async fn receiver() -> (std::net::SocketAddr, Received) {
    let got: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let sig = req
                                .headers()
                                .get("workos-signature")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                            keep.lock().unwrap().push((sig, body));
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, got)
}

#[tokio::test]
async fn apps_written_for_workos_directory_sync_run_unchanged_against_scimd() {
    let python = python();
    let node = node_ready();
    if python.is_none() || !node {
        let missing = format!("python workos SDK: {}, node SDK: {node}", python.is_some());
        assert!(
            std::env::var_os("CI").is_none(),
            "the WorkOS SDKs are missing under CI ({missing}); .ci/run installs them"
        );
        eprintln!("skipping: WorkOS SDKs not installed ({missing}); see tests/workos/README.md");
        return;
    }
    let s = TestServer::start().await;
    let (hook_addr, hooks) = receiver().await;
    let hook = ops::webhooks::add(
        &s.db,
        &Actor::cli(),
        1,
        format!("http://{hook_addr}/workos"),
        vec![],
        ops::webhooks::Format::Workos,
    )
    .await
    .unwrap();
    let delivery =
        scimd::http::webhooks::Delivery::spawn(s.db.clone(), vec![Duration::from_millis(200)]);

    // An Okta-style push: users, an admin group, a team group, a deactivation, a delete.
    let mut ids = HashMap::new();
    for i in 0..USERS {
        let email = format!("user{i:03}@example.com");
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"schemas":[USER_URN],"userName": email, "externalId": format!("00u{i:05}"),
                        "name":{"givenName":"User","familyName":format!("N{i}")},
                        "emails":[{"value": email, "primary": true, "type": "work"}], "active": true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.insert(email, r.json["id"].as_str().unwrap().to_string());
    }
    let member = |e: &str| json!({"value": ids[e]});
    let admins = ["user000@example.com", "user001@example.com"];
    let team = [
        "user002@example.com",
        "user003@example.com",
        "user004@example.com",
    ];
    for (name, people) in [
        ("scimd-role-admin", &admins[..]),
        ("Engineering", &team[..]),
    ] {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name,
                        "members": people.iter().map(|e| member(e)).collect::<Vec<_>>()}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let suspended = "user010@example.com";
    let r = s
        .patch(
            &format!("/scim/v2/Users/{}", ids[suspended]),
            &json!({"schemas":[PATCH_URN],"Operations":[{"op":"replace","path":"active","value":false}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deleted = "user011@example.com";
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{}", ids[deleted]))
            .await
            .status,
        204
    );

    // A directory deleted since: the key of every tenant below reads its `dsync.deleted`.
    s.token_for("gone");
    scimd::ops::admins::delete_tenant(&s.db, &scimd::model::Actor::cli(), "gone".into())
        .await
        .unwrap();

    // An app's key for every tenant, as a WorkOS environment key reads every directory.
    let key = all_tenants_key(&s, "workos app").await;
    // The raw REST surface, the way the SDKs see it.
    let auth = format!("Bearer {key}");
    let r = s
        .raw(
            Method::GET,
            "/directory_users?directory=directory_default&limit=5",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json["data"].as_array().unwrap().len(), 5);
    assert!(r.json["list_metadata"]["after"].is_string());
    let r = s.raw(Method::GET, "/directory_users", &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["code"], "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"scimd\""));
    let r = s
        .raw(
            Method::GET,
            "/directory_users/directory_user_nope",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.json["message"].is_string());

    // Wait for the WorkOS-format webhooks of the push.
    let mut captured = None;
    for _ in 0..100 {
        if let Some(first) = hooks.lock().unwrap().first().cloned() {
            captured = Some(first);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (signature, body) = captured.expect("a WorkOS webhook arrives");
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        parsed["event"].as_str().unwrap().starts_with("dsync."),
        "{parsed}"
    );

    let dir = tempfile::tempdir().unwrap();
    let users: Vec<Value> = (0..USERS)
        .map(|i| format!("user{i:03}@example.com"))
        .filter(|e| e != deleted)
        .map(|e| {
            let state = if e == suspended { "inactive" } else { "active" };
            let mut u = json!({"email": e, "state": state});
            if admins.contains(&e.as_str()) {
                u["role"] = json!("admin");
            }
            u
        })
        .collect();
    let expect = json!({
        "organization_id": "org_default",
        "total_users": USERS - 1,
        "users": users,
        "deleted_emails": [deleted],
        "deleted_directories": ["directory_gone"],
        "groups": [
            {"name": "scimd-role-admin", "members": admins},
            {"name": "Engineering", "members": team},
        ],
    });
    let expect_path = dir.path().join("expect.json");
    std::fs::write(&expect_path, expect.to_string()).unwrap();
    let body_path = dir.path().join("webhook.json");
    std::fs::write(&body_path, &body).unwrap();
    let url = format!("http://{}", s.addr);
    let run = |program: String, args: Vec<String>, cwd: Option<&'static str>| {
        let mut c = Command::new(program);
        c.args(args)
            .env("SCIMD_URL", &url)
            .env("WORKOS_API_KEY", &key)
            .env("DIRECTORY_ID", "directory_default")
            .env("EXPECT_JSON", &expect_path)
            .env("WEBHOOK_BODY_FILE", &body_path)
            .env("WEBHOOK_SIGNATURE", &signature)
            .env("WEBHOOK_SECRET", &hook.secret);
        if let Some(dir) = cwd {
            c.current_dir(dir);
        }
        tokio::task::spawn_blocking(move || c.output().unwrap())
    };
    let py = run(
        python.unwrap(),
        vec!["tests/workos/sdk_test.py".into()],
        None,
    )
    .await
    .unwrap();
    let py_out =
        String::from_utf8_lossy(&py.stdout).to_string() + &String::from_utf8_lossy(&py.stderr);
    assert!(py.status.success(), "Python SDK:\n{py_out}");
    let js = run(
        "node".into(),
        vec!["sdk_test.mjs".into()],
        Some("tests/workos"),
    )
    .await
    .unwrap();
    let js_out =
        String::from_utf8_lossy(&js.stdout).to_string() + &String::from_utf8_lossy(&js.stderr);
    assert!(js.status.success(), "Node SDK:\n{js_out}");
    println!("{py_out}\n{js_out}");
    delivery.stop().await;
    s.stop().await;
}

/// Each `order` walks every directory user once, following the cursor `list_metadata`
/// gives: `after` for `asc` and `desc`, `before` for `normal` (descending, its cursors
/// reversed), and back up again the other way. No SDK needed.
#[tokio::test]
async fn every_order_walks_the_whole_list_once_each_way() {
    let s = TestServer::start().await;
    for i in 0..7 {
        s.create_user(&format!("walk{i}@example.com")).await;
    }
    let key = all_tenants_key(&s, "walker").await;
    let auth = format!("Bearer {key}");
    let page = |query: String| {
        let auth = auth.clone();
        let s = &s;
        async move {
            let path = format!("/directory_users?directory=directory_default&limit=3&{query}");
            let r = s
                .raw(Method::GET, &path, &[("authorization", &auth)], "")
                .await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let names: Vec<String> = r.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["emails"][0]["value"].as_str().unwrap().to_string())
                .collect();
            let cursor = |k: &str| r.json["list_metadata"][k].as_str().map(str::to_string);
            (names, cursor("before"), cursor("after"))
        }
    };
    let ascending: Vec<String> = (0..7).map(|i| format!("walk{i}@example.com")).collect();
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    for (order, on, back, expected) in [
        ("asc", "after", "before", &ascending),
        ("desc", "after", "before", &descending),
        ("normal", "before", "after", &descending),
    ] {
        let mut seen = Vec::new();
        let mut query = format!("order={order}");
        // The last page's cursor back up.
        let up = loop {
            let first = seen.is_empty();
            let (names, before, after) = page(query).await;
            seen.extend(names);
            let (next, prev) = if on == "after" {
                (after, before)
            } else {
                (before, after)
            };
            if first {
                assert!(
                    prev.is_none(),
                    "{order}: the first page has nothing {back} it"
                );
            }
            match next {
                Some(id) => query = format!("order={order}&{on}={id}"),
                None => break prev,
            }
        };
        assert_eq!(&seen, expected, "{order}: every user once, in order");
        // From the last page, the other cursor walks back up to the first.
        let mut back_seen = Vec::new();
        let mut cursor = up;
        while let Some(id) = cursor {
            let (names, before, after) = page(format!("order={order}&{back}={id}")).await;
            back_seen.splice(0..0, names);
            cursor = if back == "before" { before } else { after };
        }
        assert_eq!(&back_seen, &expected[..back_seen.len()], "{order}: back up");
        assert_eq!(back_seen.len(), 6, "{order}: back up to the first page");
    }
    // A cursor that is no id at all is a mistake, answered as one.
    for (list, cursor) in [
        ("directory_users?directory=directory_default", "after=zzz"),
        (
            "directory_users?directory=directory_default",
            "before=directory_user_0",
        ),
        (
            "directory_groups?directory=directory_default",
            "after=not_a_cursor",
        ),
    ] {
        let path = format!("/{list}&{cursor}");
        let r = s
            .raw(Method::GET, &path, &[("authorization", &auth)], "")
            .await;
        assert_eq!(r.status, 422, "{path}: {}", r.text);
        assert_eq!(r.json["code"], "invalid_request_parameters", "{}", r.text);
    }
    s.stop().await;
}

/// `/events` pages forward with `after` and back with `before`, in either order, like the
/// other lists (the SDK sends both): every event once each way.
#[tokio::test]
async fn the_events_walk_forward_and_back() {
    let s = TestServer::start().await;
    for i in 0..7 {
        s.create_user(&format!("ev{i}@example.com")).await;
    }
    let key = all_tenants_key(&s, "events").await;
    let auth = format!("Bearer {key}");
    let page = |query: String| {
        let auth = auth.clone();
        let s = &s;
        async move {
            // Pages of 3 unless the query names its own limit (a parameter given twice is
            // refused).
            let limit = if query.contains("limit=") {
                ""
            } else {
                "limit=3&"
            };
            let path = format!("/events?events=dsync.user.created&{limit}{query}");
            let r = s
                .raw(Method::GET, &path, &[("authorization", &auth)], "")
                .await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let ids: Vec<String> = r.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect();
            let cursor = |k: &str| r.json["list_metadata"][k].as_str().map(str::to_string);
            (ids, cursor("before"), cursor("after"))
        }
    };
    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let (ids, before, mut after) = page(format!("order={order}")).await;
        assert_eq!(before, None, "{order}: nothing before the first page");
        seen.extend(ids);
        let mut up = None;
        while let Some(id) = after {
            let (ids, before, next) = page(format!("order={order}&after={id}")).await;
            assert_eq!(before.as_deref(), ids.first().map(String::as_str));
            seen.extend(ids);
            (after, up) = (next, before);
        }
        assert_eq!(seen.len(), 7, "{order}: {seen:?}");
        let mut sorted = seen.clone();
        sorted.sort_by_key(|id| id["event_".len()..].parse::<i64>().unwrap());
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order}: each event once, in order");
        let mut back = Vec::new();
        while let Some(id) = up {
            let (ids, before, after) = page(format!("order={order}&before={id}")).await;
            assert_eq!(after.as_deref(), ids.last().map(String::as_str));
            back.splice(0..0, ids);
            up = before;
        }
        assert_eq!(back, seen[..6], "{order}: back up to the first page");
    }
    // Both cursors: `after` wins, as on the other lists.
    let (all, _, _) = page("limit=7".into()).await;
    let (ids, _, _) = page(format!("after={}&before={}", all[1], all[5])).await;
    assert_eq!(ids, all[2..5]);
    s.stop().await;
}

/// An app resuming `/events` from a cursor whose followers are no longer kept (retention)
/// is told so, as `/api/v1/events` tells it, rather than carrying on past what it missed; a
/// cursor past the newest event is refused.
#[tokio::test]
async fn resuming_events_past_what_is_kept_is_an_error_not_a_silent_gap() {
    let s = TestServer::start().await;
    for i in 0..3 {
        s.create_user(&format!("gone{i}@example.com")).await;
    }
    let key = all_tenants_key(&s, "events").await;
    let auth = format!("Bearer {key}");
    let get = |query: &str| {
        let (s, auth, path) = (&s, auth.clone(), format!("/events?{query}"));
        async move {
            s.raw(Method::GET, &path, &[("authorization", &auth)], "")
                .await
        }
    };
    let r = get("order=asc&limit=10").await;
    let ids: Vec<String> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(get(&format!("after={}", ids[0])).await.status, 200);
    let newest: i64 = ids.last().unwrap()["event_".len()..].parse().unwrap();
    let r = get(&format!("after=event_{}", newest + 100)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("past the newest")
    );

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
    assert!(done.events_purged >= 3);
    s.create_user("kept@example.com").await;
    let r = get(&format!("after={}", ids[0])).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.json["code"], "cursor_expired");
    assert!(r.json["message"].as_str().unwrap().contains("list"));
    // Without a cursor, or from the newest, the feed reads on.
    assert_eq!(get("order=asc").await.status, 200);

    // Across tenants: one tenant's events purged between two of another's kept ones. A key
    // of every tenant resuming before them hears 410; a key of the purged tenant resuming
    // from its last purged event has missed nothing.
    let other = s.token_for("other");
    let other_id = scimd::db::tenants::by_slug(&s.db.conn().unwrap(), "other")
        .unwrap()
        .id;
    let r = get("order=desc&limit=1").await;
    let before_other = r.json["data"][0]["id"].as_str().unwrap().to_string();
    let mut last_other = String::new();
    for i in 0..3 {
        let user = json!({"schemas":[USER_URN],"userName":format!("o{i}@example.com")});
        let r = s
            .call(Method::POST, "/scim/v2/Users", &other, Some(&user))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = get("order=desc&limit=1").await;
    last_other.push_str(r.json["data"][0]["id"].as_str().unwrap());
    s.create_user("kept2@example.com").await;
    s.db.conn()
        .unwrap()
        .execute(
            "UPDATE events SET created_at = '2000-01-01T00:00:00.000000Z' WHERE tenant_id = ?1",
            [other_id],
        )
        .unwrap();
    let done = ops::retention::daily(&s.db, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(done.events_purged >= 3);
    let r = get(&format!("after={before_other}")).await;
    assert_eq!(r.status, 410, "every tenant's key: {}", r.text);
    let others = s.api_key(Some(other_id)).await;
    let r = s
        .raw(
            Method::GET,
            &format!("/events?after={last_other}"),
            &[("authorization", &format!("Bearer {others}"))],
            "",
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the purged tenant's key, from its last purged event: {}",
        r.text
    );
    s.stop().await;
}

/// `/events` takes its type filter repeated, comma-separated, or in the bracket form
/// query-string libraries write for arrays; an unknown type is refused.
#[tokio::test]
async fn the_events_filter_takes_every_array_form() {
    let s = TestServer::start().await;
    let user = s.create_user("ada@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Team", "members": [{"value": user}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = all_tenants_key(&s, "events").await;
    let auth = format!("Bearer {key}");
    for query in [
        "events=dsync.group.created",
        "events%5B%5D=dsync.group.created",
        "events[]=dsync.group.created",
        "events[0]=dsync.group.created",
        "events=dsync.group.created,dsync.group.deleted",
    ] {
        let r = s
            .raw(
                Method::GET,
                &format!("/events?{query}"),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        let kinds: Vec<&str> = r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["dsync.group.created"], "{query}");
    }
    // An app reading several WorkOS products' events from one stream asks for theirs too.
    let r = read(
        &s,
        &auth,
        "/events?events=user.created,connection.activated,dsync.activated,dsync.group.created",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1, "{}", r.text);
    for bogus in [
        "events[]=Bogus%20Event",
        "events=dsync",
        "events=dsync..user",
        "events=dsync.user.bogus",
    ] {
        let r = read(&s, &auth, &format!("/events?{bogus}")).await;
        assert_eq!(r.status, 422, "{bogus}: {}", r.text);
    }
    s.stop().await;
}

/// WorkOS's routes under a directory (`/directories/{id}/users`, `…/groups`, and one of
/// each), which the Node SDK's current methods call: the same users and groups as the
/// older routes, users without their `groups`, and what belongs to another directory is
/// not found there.
#[tokio::test]
async fn the_routes_under_a_directory_answer_what_the_older_routes_do() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", all_tenants_key(&s, "scoped").await);
    let ada = s.create_user("ada@example.com").await;
    let bob = s.create_user("bob@example.com").await;
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Team", "externalId": "okta-team", "members": [{"value": ada}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let team = format!("directory_group_{}", r.json["id"].as_str().unwrap());
    let other = s.token_for("other");
    let r = s
        .call(
            Method::POST,
            "/scim/v2/Users",
            &other,
            Some(&json!({"userName": "eve@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let eve = format!("directory_user_{}", r.json["id"].as_str().unwrap());

    let old = read(
        &s,
        &auth,
        "/directory_users?directory=directory_default&limit=100",
    )
    .await;
    let new = read(&s, &auth, "/directories/directory_default/users?limit=100").await;
    assert_eq!(new.status, 200, "{}", new.text);
    let ids = |r: &Resp| -> Vec<Value> {
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].clone())
            .collect()
    };
    assert_eq!(ids(&new), ids(&old));
    assert_eq!(ids(&new).len(), 2);
    assert!(old.json["data"][0].get("groups").is_some());
    assert!(new.json["data"][0].get("groups").is_none(), "{}", new.text);
    let r = read(
        &s,
        &auth,
        &format!("/directories/directory_default/users?group={team}"),
    )
    .await;
    assert_eq!(ids(&r), [json!(format!("directory_user_{ada}"))]);

    let r = read(
        &s,
        &auth,
        &format!("/directories/directory_default/users/directory_user_{bob}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["email"], "bob@example.com");
    assert!(r.json.get("groups").is_none());
    let r = read(
        &s,
        &auth,
        &format!("/directories/directory_default/users/{eve}"),
    )
    .await;
    assert_eq!(r.status, 404, "another directory's user: {}", r.text);
    assert_eq!(
        read(
            &s,
            &auth,
            &format!("/directories/directory_other/users/{eve}")
        )
        .await
        .status,
        200
    );

    let r = read(&s, &auth, "/directories/directory_default/groups").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), [json!(team)]);
    let r = read(
        &s,
        &auth,
        &format!("/directories/directory_default/groups?user=directory_user_{bob}"),
    )
    .await;
    assert_eq!(ids(&r), Vec::<Value>::new());
    let r = read(
        &s,
        &auth,
        &format!("/directories/directory_default/groups/{team}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["idp_id"], "okta-team");
    assert_eq!(
        read(
            &s,
            &auth,
            &format!("/directories/directory_other/groups/{team}")
        )
        .await
        .status,
        404
    );
    for unknown in [
        "/directories/directory_nope/users",
        "/directories/directory_nope/groups",
    ] {
        assert_eq!(read(&s, &auth, unknown).await.status, 404, "{unknown}");
    }
    s.stop().await;
}

/// A group's events name it as the API does (`idp_id` its externalId, its attributes as
/// the IdP sent them), and a person who had no directory user when they joined a group
/// (created inactive) is not said to have joined it: no app could read that user.
#[tokio::test]
async fn group_events_name_the_group_as_the_api_does_and_only_readable_users() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", all_tenants_key(&s, "events").await);
    let ada = s.create_user("ada@example.com").await;
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"userName": "later@example.com", "active": false}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let later = r.json["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Team", "externalId": "okta-team",
                    "members": [{"value": ada}, {"value": later}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let r = read(
        &s,
        &auth,
        &format!("/directory_groups/directory_group_{gid}"),
    )
    .await;
    let group = r.json;
    let r = read(
        &s,
        &auth,
        "/events?events=dsync.group.created,dsync.group.user_added&limit=100",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.json["data"].as_array().unwrap();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "dsync.group.created")
        .collect();
    assert_eq!(created.len(), 1, "{}", r.text);
    assert_eq!(created[0]["data"]["idp_id"], "okta-team");
    assert_eq!(created[0]["data"]["idp_id"], group["idp_id"]);
    assert_eq!(
        created[0]["data"]["raw_attributes"],
        group["raw_attributes"]
    );
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "dsync.group.user_added")
        .collect();
    assert_eq!(
        added.len(),
        1,
        "only Ada joined as a user apps can read: {}",
        r.text
    );
    assert_eq!(added[0]["data"]["user"]["email"], "ada@example.com");
    assert_eq!(added[0]["data"]["group"]["idp_id"], "okta-team");
    let r = read(
        &s,
        &auth,
        &format!("/directory_users/directory_user_{later}"),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // An app reading the feed after the group is gone still finds it by its IdP's id.
    let r = s.delete(&format!("/scim/v2/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = read(&s, &auth, "/events?events=dsync.group.user_added&limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"][0]["data"]["group"]["idp_id"], "okta-team",
        "{}",
        r.text
    );
    s.stop().await;
}

/// A person the IdP deletes leaves their groups first: `dsync.group.user_removed` names
/// them as `dsync.user.deleted` does (the same `idp_id`, the externalId), whether their
/// member is archived or deleted with them, and never with a role whose slug is null.
#[tokio::test]
async fn a_deleted_user_leaves_their_groups_under_the_same_idp_id() {
    use scimd::model::DeletePolicy;
    let s = TestServer::start().await;
    let key = all_tenants_key(&s, "events").await;
    let auth = format!("Bearer {key}");
    for (policy, email) in [
        (DeletePolicy::Archive, "kept@example.com"),
        (DeletePolicy::Delete, "gone@example.com"),
    ] {
        on_delete(&s, policy);
        let external = format!("ext-{email}");
        let r = s
            .post(
                "/scim/v2/Users",
                &json!({"schemas":[USER_URN],"userName": email, "externalId": external,
                        "name":{"givenName":"Gone","familyName":"Soon"},
                        "emails":[{"value": email, "primary": true}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": format!("team of {email}"), "members": [{"value": id}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let gid = r.json["id"].as_str().unwrap().to_string();
        // The event's group says when the group was created, not when the event was.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let r = s
            .call(
                Method::DELETE,
                &format!("/scim/v2/Users/{id}"),
                &s.token,
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let query = "/events?events=dsync.group.user_removed,dsync.user.deleted&limit=100";
        let r = s
            .raw(Method::GET, query, &[("authorization", &auth)], "")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mine: Vec<&Value> = r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                let user = if e["event"] == "dsync.user.deleted" {
                    &e["data"]
                } else {
                    &e["data"]["user"]
                };
                user["id"] == format!("directory_user_{id}")
            })
            .collect();
        let kinds: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["dsync.group.user_removed", "dsync.user.deleted"],
            "{policy:?}"
        );
        // The member the deletion archived (or deleted) is in no group any more.
        let last: String =
            s.db.conn()
                .unwrap()
                .query_row(
                    "SELECT payload FROM events WHERE type IN ('member.archived', 'member.deleted')
                 ORDER BY cursor DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
        let last: Value = serde_json::from_str(&last).unwrap();
        if policy == DeletePolicy::Archive {
            assert_eq!(last["member"]["groups"], json!([]), "{last}");
        }
        let removed = &mine[0]["data"]["user"];
        let group = s
            .raw(
                Method::GET,
                &format!("/directory_groups/directory_group_{gid}"),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(group.status, 200, "{}", group.text);
        assert_eq!(
            mine[0]["data"]["group"]["created_at"],
            group.json["created_at"]
        );
        assert_ne!(
            mine[0]["data"]["group"]["created_at"],
            mine[0]["created_at"]
        );
        assert_eq!(removed["idp_id"], external, "{policy:?}: {removed}");
        assert_eq!(mine[1]["data"]["idp_id"], external, "{policy:?}");
        assert_eq!(removed["state"], "inactive", "{policy:?}: {removed}");
        assert_ne!(
            removed["role"],
            json!({"slug": null}),
            "{policy:?}: {removed}"
        );
        for role in removed["roles"].as_array().unwrap() {
            assert!(role["slug"].is_string(), "{policy:?}: {removed}");
        }
    }
    s.stop().await;
}

/// An SDK walking the users or groups goes on when the object its cursor names is deleted
/// between two pages (the IdP at work): the next page starts where that object stood.
#[tokio::test]
async fn a_walk_goes_on_past_a_cursor_whose_object_was_deleted() {
    use scimd::model::DeletePolicy;
    let s = TestServer::start().await;
    on_delete(&s, DeletePolicy::Delete);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(s.create_user(&format!("gone{i}@example.com")).await);
    }
    let mut groups = Vec::new();
    for i in 0..3 {
        let r = s
            .post(
                "/scim/v2/Groups",
                &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": format!("g{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        groups.push(r.json["id"].as_str().unwrap().to_string());
    }
    let key = all_tenants_key(&s, "walker").await;
    let auth = format!("Bearer {key}");
    let names = |r: &Resp, field: &str| -> Vec<String> {
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[field].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let get = |path: String| {
        let auth = auth.clone();
        let s = &s;
        async move {
            let r = s
                .raw(Method::GET, &path, &[("authorization", &auth)], "")
                .await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r
        }
    };
    let users = "/directory_users?directory=directory_default&limit=2";
    let first = get(format!("{users}&order=asc")).await;
    assert_eq!(
        names(&first, "username"),
        ["gone0@example.com", "gone1@example.com"]
    );
    let after = first.json["list_metadata"]["after"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(after, format!("directory_user_{}", ids[1]));
    let r = s.delete(&format!("/scim/v2/Users/{}", ids[1])).await;
    assert_eq!(r.status, 204);
    let next = get(format!("{users}&order=asc&after={after}")).await;
    assert_eq!(
        names(&next, "username"),
        ["gone2@example.com", "gone3@example.com"]
    );
    // Backward from it, and descending past it, likewise.
    let back = get(format!("{users}&order=asc&before={after}")).await;
    assert_eq!(names(&back, "username"), ["gone0@example.com"]);
    let down = get(format!("{users}&order=desc&after={after}")).await;
    assert_eq!(names(&down, "username"), ["gone0@example.com"]);

    let r = s.delete(&format!("/scim/v2/Groups/{}", groups[0])).await;
    assert_eq!(r.status, 204);
    let cursor = format!("directory_group_{}", groups[0]);
    let next = get(format!(
        "/directory_groups?directory=directory_default&limit=5&order=asc&after={cursor}"
    ))
    .await;
    let mine: Vec<String> = names(&next, "name")
        .into_iter()
        .filter(|n| n.starts_with('g'))
        .collect();
    assert_eq!(mine, ["g1", "g2"]);
    s.stop().await;
}

/// WorkOS stopped filling `raw_attributes` and points apps at the predefined custom
/// attributes; an app reading `custom_attributes.department_name` or `manager_email` from
/// a directory user, or from its `dsync.user.created` event, finds what an Entra-style
/// push sent.
#[tokio::test]
async fn directory_users_carry_workos_predefined_custom_attributes() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", all_tenants_key(&s, "attrs").await);
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN],"userName":"boss@example.com",
                    "name":{"givenName":"The","familyName":"Boss"},
                    "emails":[{"value":"boss.work@example.com","type":"work","primary":true}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let boss = r.json["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas":[USER_URN, enterprise],"userName":"ada@example.com",
                    "externalId":"e-1","title":"Engineer","userType":"Employee",
                    "displayName":"Ada Lovelace",
                    "emails":[{"value":"ada@example.com","type":"work","primary":true}],
                    "addresses":[{"type":"work","streetAddress":"1 Main St","locality":"Leeds",
                                  "postalCode":"LS1","country":"GB","formatted":"1 Main St, Leeds","primary":true}],
                    enterprise: {"employeeNumber":"42","department":"R&D","division":"Labs",
                                 "costCenter":"CC-7","organization":"Acme",
                                 "manager":{"value": boss}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let expected = json!({
        "username": "ada@example.com",
        "display_name": "Ada Lovelace",
        "job_title": "Engineer",
        "employee_type": "Employee",
        "employee_number": "42",
        "organization": "Acme",
        "division_name": "Labs",
        "department_name": "R&D",
        "cost_center_name": "CC-7",
        "manager_name": "The Boss",
        "manager_email": "boss.work@example.com",
        "emails": [{"type": "work", "value": "ada@example.com", "primary": true}],
        "addresses": [{"type": "work", "street_address": "1 Main St", "locality": "Leeds",
                       "region": null, "postal_code": "LS1", "country": "GB",
                       "raw_address": "1 Main St, Leeds", "primary": true}],
    });
    let path = format!("/directory_users/directory_user_{id}");
    let r = s
        .raw(Method::GET, &path, &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["custom_attributes"], expected);
    // The SDKs' own fields for the full name and the title (the latter deprecated there).
    assert_eq!(r.json["name"], "Ada Lovelace");
    assert_eq!(r.json["job_title"], "Engineer");
    let r = s
        .raw(
            Method::GET,
            "/events?events=dsync.user.created&limit=10",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let created = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["id"] == json!(format!("directory_user_{id}")))
        .unwrap_or_else(|| panic!("no dsync.user.created for Ada: {}", r.text));
    assert_eq!(created["data"]["custom_attributes"], expected);
    // A user the IdP sent nothing extra for has the attributes it has.
    let path = format!("/directory_users/directory_user_{boss}");
    let r = s
        .raw(Method::GET, &path, &[("authorization", &auth)], "")
        .await;
    assert_eq!(
        r.json["custom_attributes"],
        json!({"username": "boss@example.com",
               "emails": [{"type": "work", "value": "boss.work@example.com", "primary": true}]})
    );
}

/// A person the IdP deletes and creates anew (a new SCIM id, the same email) is matched to
/// their archived member again; a WorkOS app, which keys people by directory user id, sees
/// the old id deleted and the new one created, and nothing about the old one after that.
#[tokio::test]
async fn a_person_pushed_again_after_a_deletion_is_a_new_directory_user() {
    let s = TestServer::start().await;
    let key = all_tenants_key(&s, "events").await;
    let auth = format!("Bearer {key}");
    let body = |external: &str| {
        json!({"schemas":[USER_URN],"userName":"ada@example.com","externalId": external,
               "emails":[{"value":"ada@example.com","primary":true}]})
    };
    let r = s.post("/scim/v2/Users", &body("ext-old")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let old = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Users/{old}");
    let r = s.call(Method::DELETE, &path, &s.token, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.post("/scim/v2/Users", &body("ext-new")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new = r.json["id"].as_str().unwrap().to_string();
    let r = s
        .raw(
            Method::GET,
            "/events?limit=100",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen: Vec<(String, String, String)> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = e["data"]["id"].as_str().unwrap_or_default();
            let state = e["data"]["state"].as_str().unwrap_or_default();
            (e["event"].as_str().unwrap().into(), id.into(), state.into())
        })
        .collect();
    let (old, new) = (
        format!("directory_user_{old}"),
        format!("directory_user_{new}"),
    );
    let deleted = seen
        .iter()
        .position(|(e, id, _)| e == "dsync.user.deleted" && *id == old)
        .expect("the old user deleted");
    assert!(
        seen[deleted + 1..].iter().all(|(_, id, _)| *id != old),
        "{seen:?}"
    );
    let created = seen[deleted..]
        .iter()
        .find(|(e, id, _)| e == "dsync.user.created" && *id == new);
    assert_eq!(
        created.map(|(_, _, state)| state.as_str()),
        Some("active"),
        "created as the IdP created it: {seen:?}"
    );
    let (_, _, state) = seen.iter().rev().find(|(_, id, _)| *id == new).unwrap();
    assert_eq!(state, "active", "{seen:?}");
    // Asking for created events finds it.
    let r = s
        .raw(
            Method::GET,
            "/events?events=dsync.user.created&limit=100",
            &[("authorization", &auth)],
            "",
        )
        .await;
    let ids: Vec<&str> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&new.as_str()), "{ids:?}");
    assert!(
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event"] == "dsync.user.created")
    );
    s.stop().await;
}
