//! Limits that protect a small VM: a cap on open connections and on requests being
//! answered, in all and per client address, each answered 503 with `Retry-After` beyond
//! it, and room again once freed.

mod common;

use std::time::Duration;

use common::*;
use scimd::config::HttpConfig;
use scimd::model::Actor;
use scimd::ops;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens an idle connection from loopback address `from`.
async fn idle_from(s: &TestServer, from: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(s.addr).await.unwrap()
}

/// One address may hold a quarter of the connections (here 2 of 8): a slowloris client
/// cannot take them all, and the server's cap still holds across addresses.
#[tokio::test]
async fn connections_past_the_caps_get_503_and_room_comes_back() {
    let s = TestServer::start_with(HttpConfig {
        max_connections: 8,
        ..HttpConfig::default()
    })
    .await;
    // Two idle connections hold the address's share.
    let mut held = vec![
        idle_from(&s, "127.0.0.41").await,
        idle_from(&s, "127.0.0.41").await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = answer_from(&s, "127.0.0.41", "/healthz", None).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Retry-After: 1"), "{refused}");
    assert!(
        refused.contains("X-Content-Type-Options: nosniff"),
        "{refused}"
    );
    assert!(refused.contains("urn:ietf:params:scim:api:messages:2.0:Error"));
    let ok = answer_from(&s, "127.0.0.42", "/healthz", None).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "another address: {ok}");
    // Three more addresses fill the server.
    for from in ["127.0.0.42", "127.0.0.43", "127.0.0.44"] {
        held.push(idle_from(&s, from).await);
        held.push(idle_from(&s, from).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = answer_from(&s, "127.0.0.45", "/healthz", None).await;
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "the server is full: {refused}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = answer_from(&s, "127.0.0.41", "/healthz", None).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    s.stop().await;
}

/// One address may hold a quarter of the request slots (here 1 of 4): slow requests from
/// one client leave room for the others, the server's cap still holds across addresses,
/// and health checks and metrics get through both.
#[tokio::test]
async fn requests_past_the_caps_get_503_while_health_checks_still_answer() {
    let s = TestServer::start_with(HttpConfig {
        max_requests: 4,
        ..HttpConfig::default()
    })
    .await;
    let key = ops::apikeys::issue(&s.db, &Actor::cli(), Some(1), "app".into(), None)
        .await
        .unwrap()
        .token
        .secret;
    // Long polls from four addresses hold every request slot.
    let auth = format!("Bearer {key}");
    let bearer = format!("Bearer {}", s.token);
    let poll =
        |from: &'static str| answer_from(&s, from, "/api/v1/events?after=0&wait=2", Some(&auth));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let same = answer_from(&s, "127.0.0.51", "/scim/v2/Users", Some(&bearer)).await;
        let other = answer_from(&s, "127.0.0.55", "/scim/v2/Users", Some(&bearer)).await;
        let health = answer_from(&s, "127.0.0.51", "/healthz", None).await;
        let metrics = answer_from(&s, "127.0.0.51", "/metrics", None).await;
        (same, other, (health, metrics))
    };
    let (p1, p2, p3, p4, (same, other, (health, metrics))) = tokio::join!(
        poll("127.0.0.51"),
        poll("127.0.0.52"),
        poll("127.0.0.53"),
        poll("127.0.0.54"),
        meanwhile
    );
    for polled in [p1, p2, p3, p4] {
        assert!(polled.starts_with("HTTP/1.1 200"), "{polled}");
    }
    for busy in [&same, &other] {
        assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
        assert!(
            busy.to_ascii_lowercase().contains("retry-after: 1"),
            "{busy}"
        );
    }
    assert!(same.contains("this address has as many requests"), "{same}");
    assert!(same.contains("x-content-type-options: nosniff"), "{same}");
    assert!(other.contains("the server is answering as many"), "{other}");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        metrics.starts_with("HTTP/1.1 200"),
        "an overload is seen: {metrics}"
    );
    // Once the polls are answered, there is room again.
    let ok = answer_from(&s, "127.0.0.51", "/scim/v2/Users", Some(&bearer)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    s.stop().await;
}

/// What the server answers on a fresh connection from the loopback address `from` to a
/// GET of `path`, with `authorization` when given.
async fn answer_from(
    s: &TestServer,
    from: &str,
    path: &str,
    authorization: Option<&str>,
) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut c = socket.connect(s.addr).await.unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: scimd\r\n{auth}Connection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn failed_authentications_throttle_their_address_not_a_token_that_works_there_nor_other_addresses()
 {
    let s = TestServer::start().await;
    let bearer = format!("Bearer {}", s.token);
    // The IdP's token has worked from 127.0.0.1 before the flood.
    let ok = answer_from(&s, "127.0.0.1", "/scim/v2/Users?count=1", Some(&bearer)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    let burst = scimd::ops::throttle::FLOOD_BURST;
    for i in 0..burst {
        let bad = format!("Bearer scimd_not_a_real_token_{i}");
        let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", Some(&bad)).await;
        assert!(r.starts_with("HTTP/1.1 401"), "failure {i}: {r}");
    }
    // Past the burst: 429 with Retry-After and a SCIM error, before any lookup.
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", Some("Bearer scimd_nope")).await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    assert!(
        r.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
        "{r}"
    );
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", None).await;
    assert!(r.starts_with("HTTP/1.1 429"), "no credentials at all: {r}");
    // The apps API and the WorkOS-compatible API share the throttle.
    let r = answer_from(&s, "127.0.0.1", "/api/v1/members", Some("Bearer nope")).await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    assert!(r.to_ascii_lowercase().contains("retry-after: 1"), "{r}");
    let r = answer_from(&s, "127.0.0.1", "/directory_users", Some("Bearer nope")).await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    // Discovery needs no credentials and is never throttled.
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/ServiceProviderConfig", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    // The token that worked from the flooded address keeps working there.
    let ok = answer_from(&s, "127.0.0.1", "/scim/v2/Users?count=1", Some(&bearer)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Another address is untouched: its failures are its own, a new token works from it.
    let r = answer_from(&s, "127.0.0.2", "/scim/v2/Users", Some("Bearer scimd_nope")).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let fresh = format!("Bearer {}", s.token_for("other"));
    let r = answer_from(&s, "127.0.0.2", "/scim/v2/Users?count=1", Some(&fresh)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A token that never worked from the flooded address waits like any other stranger.
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users?count=1", Some(&fresh)).await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");

    // A second later the address has earned one failure back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", Some("Bearer scimd_nope")).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", Some("Bearer scimd_nope")).await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    s.stop().await;
}

#[tokio::test]
async fn a_burst_of_zero_turns_the_throttle_off() {
    let s = TestServer::start_with(HttpConfig {
        auth_failure_burst: 0,
        ..HttpConfig::default()
    })
    .await;
    for _ in 0..scimd::ops::throttle::FLOOD_BURST + 10 {
        let r = answer_from(&s, "127.0.0.1", "/scim/v2/Users", Some("Bearer scimd_nope")).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    }
    s.stop().await;
}

/// Names are copied wherever a resource is named (a group's into every member's `groups`):
/// past 1 024 characters one is refused, by POST, PUT and PATCH alike, and nothing is
/// stored. 1 024 characters, of any script, are fine.
#[tokio::test]
async fn names_longer_than_1024_characters_are_refused() {
    let s = TestServer::start().await;
    let fits = "é".repeat(1024);
    let long = "a".repeat(1025);
    let r = s
        .post("/scim/v2/Groups", &serde_json::json!({"displayName": fits}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let group = format!("/scim/v2/Groups/{}", r.json["id"].as_str().unwrap());
    s.post("/scim/v2/Groups", &serde_json::json!({"displayName": long}))
        .await
        .assert_error(400, Some("invalidValue"));
    s.post(
        "/scim/v2/Users",
        &serde_json::json!({"userName": format!("{long}@example.com")}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    let user = s.create_user("u@example.com").await;
    let patch = |ops: serde_json::Value| serde_json::json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":ops});
    s.patch(
        &group,
        &patch(serde_json::json!([{"op":"replace","path":"displayName","value":long}])),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    s.patch(
        &group,
        &patch(serde_json::json!([{"op":"add","path":"members","value":[{"value":user,"display":long}]}])),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    s.put(
        &format!("/scim/v2/Users/{user}"),
        &serde_json::json!({"userName":"u@example.com","displayName":long}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    let r = s.get(&group).await;
    assert_eq!(r.json["displayName"], fits.as_str());
    assert_eq!(r.json["members"], serde_json::json!([]), "{}", r.text);
}

/// Every page that lists resources is built whole, so a resource's attributes are capped
/// (64 KiB as JSON): past it a POST, PUT or PATCH is refused and nothing is stored. A real
/// user, even with a long list of entitlements, fits.
#[tokio::test]
async fn a_resource_of_more_than_64_kib_is_refused() {
    let s = TestServer::start().await;
    let big = "t".repeat(70 * 1024);
    s.post(
        "/scim/v2/Users",
        &serde_json::json!({"userName": "big@example.com", "title": big}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    let entitlements: Vec<_> = (0..300)
        .map(|i| serde_json::json!({"value": format!("entitlement-{i:04}-of-the-finance-department"), "type": "role"}))
        .collect();
    let r = s
        .post(
            "/scim/v2/Users",
            &serde_json::json!({"userName": "fits@example.com", "entitlements": entitlements}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = format!("/scim/v2/Users/{}", r.json["id"].as_str().unwrap());
    let before = s.get(&user).await.json;
    let patch = serde_json::json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations":[{"op":"replace","path":"title","value":big}]});
    let r = s.patch(&user, &patch).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(
        r.json["detail"].as_str().unwrap().contains("64 KiB"),
        "{}",
        r.text
    );
    s.put(
        &user,
        &serde_json::json!({"userName": "fits@example.com", "title": big}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    assert_eq!(s.get(&user).await.json, before, "nothing stored");
}

/// A single-value field or parameter given twice has no one meaning: two `Authorization`
/// headers (which credential?) are refused on SCIM, the apps API and the WorkOS API alike,
/// and so is an RFC 7644 query parameter given twice, rather than one copy winning.
#[tokio::test]
async fn a_credential_or_a_list_parameter_given_twice_is_refused() {
    let s = TestServer::start().await;
    let key = s.api_key(Some(1)).await;
    let token = format!("Bearer {}", s.token);
    let key = format!("Bearer {key}");
    let twice = |a: &str, b: &str| {
        vec![
            ("authorization", a.to_string()),
            ("authorization", b.to_string()),
        ]
    };
    for (path, creds) in [
        ("/scim/v2/Users", twice(&token, &token)),
        ("/api/v1/members", twice(&key, &key)),
        ("/directory_users", twice(&key, &key)),
    ] {
        let headers: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = s.raw(hyper::Method::GET, path, &headers, "").await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.text.contains("more than once"), "{path}: {}", r.text);
    }
    s.get("/scim/v2/Users?count=1&count=1000")
        .await
        .assert_error(400, Some("invalidValue"));
    s.get("/scim/v2/Users?filter=userName%20eq%20%22a%22&FILTER=userName%20eq%20%22b%22")
        .await
        .assert_error(400, Some("invalidFilter"));
    s.get("/scim/v2/Users?cursor=&cursor=x&count=2")
        .await
        .assert_error(400, Some("invalidValue"));
    let r = s
        .raw(
            hyper::Method::GET,
            "/events?after=event_1&after=event_5",
            &[("authorization", &key)],
            "",
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.text.contains("after is given more than once"),
        "{}",
        r.text
    );
    assert_eq!(
        s.get("/scim/v2/Users?count=1&startIndex=1").await.status,
        200
    );
}

/// Opens a connection from loopback address `from` with a small receive window, sends a
/// GET of `path`, and reads only the status line and headers: a client that asks and
/// does not read on.
async fn asked_not_read(
    s: &TestServer,
    from: &str,
    path: &str,
    auth: &str,
) -> (String, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut c = socket.connect(s.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: scimd\r\nAuthorization: {auth}\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(
            n,
            1,
            "the connection closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), c)
}

/// Big answers wait in memory for clients that do not read them (what the kernel's
/// socket buffers do not take, up to 4 MiB a connection by default). They may hold the
/// backlog (here 32 MiB), a quarter of it per address: past either, the client is told to
/// come back (503, `Retry-After`) and the answer's memory is let go, while small answers
/// still flow, and room comes back when the slow clients go.
#[tokio::test]
async fn big_answers_that_clients_do_not_read_hold_at_most_the_backlog() {
    let s = TestServer::start_with(HttpConfig {
        answer_backlog: 32 * 1024 * 1024,
        ..HttpConfig::default()
    })
    .await;
    let title = "t".repeat(60 * 1024);
    for i in 0..100 {
        let r = s
            .post(
                "/scim/v2/Users",
                &serde_json::json!({"userName": format!("u{i}@example.com"), "title": title}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let key = s.api_key(Some(1)).await;
    let auth = format!("Bearer {key}");
    let page = "/api/v1/members?limit=100"; // ~6 MiB
    // One address holds most of its quarter (8 MiB) with one page it does not read.
    let (first, _held) = asked_not_read(&s, "127.0.0.61", page, &auth).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (second, _) = asked_not_read(&s, "127.0.0.61", page, &auth).await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    assert!(second.contains("retry-after: 1"), "{second}");
    let small = answer_from(&s, "127.0.0.61", "/api/v1/members?limit=1", Some(&auth)).await;
    assert!(
        small.starts_with("HTTP/1.1 200"),
        "small answers flow: {small}"
    );
    // Four more addresses fill the server's backlog; a reader elsewhere is told to wait.
    let mut held = Vec::new();
    for from in ["127.0.0.62", "127.0.0.63", "127.0.0.64", "127.0.0.65"] {
        let (answer, c) = asked_not_read(&s, from, page, &auth).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{from}: {answer}");
        held.push(c);
    }
    let refused = answer_from(&s, "127.0.0.66", page, Some(&auth)).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("as many big answers"), "{refused}");
    // A client that reads its answer gives its room back.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = answer_from(&s, "127.0.0.66", page, Some(&auth)).await;
    assert!(
        read.starts_with("HTTP/1.1 200"),
        "{}",
        &read[..200.min(read.len())]
    );
    assert!(
        read.len() > 100 * 60 * 1024,
        "the whole page: {} bytes",
        read.len()
    );
    // A SCIM list page that big goes out a resource at a time, but is held whole by what
    // sends it: it counts too.
    let bearer = format!("Bearer {}", s.token);
    let scim_page = "/scim/v2/Users?count=100";
    let (first, _held) = asked_not_read(&s, "127.0.0.67", scim_page, &bearer).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (second, _) = asked_not_read(&s, "127.0.0.67", scim_page, &bearer).await;
    assert!(second.starts_with("HTTP/1.1 503"), "{second}");
    s.stop().await;
}

/// An error's detail may echo what the client sent (`User <script> not found`): every
/// answer, SCIM, apps API and WorkOS alike, tells browsers not to read it as a page.
#[tokio::test]
async fn every_answer_forbids_sniffing_its_type() {
    let s = TestServer::start().await;
    for path in [
        "/scim/v2/Users/%3Cscript%3E",
        "/api/v1/members",
        "/directory_users",
        "/healthz",
    ] {
        let r = s.get(path).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}: {}",
            r.status
        );
    }
    s.stop().await;
}

/// Another process holding the database's write lock (a backup tool, `sqlite3` left in a
/// transaction) past the busy timeout: a write is answered 503 "try again" after that one
/// timeout, with nothing written, not after a second one spent auditing the refusal; once
/// the lock is free, writes go through, and the refusal is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_behind_a_lock_held_elsewhere_is_refused_after_one_timeout() {
    let s = TestServer::start().await;
    let other = rusqlite::Connection::open(s.db_path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let r = s
        .post(
            "/scim/v2/Users",
            &serde_json::json!({"schemas": [USER_URN], "userName": "held@example.com"}),
        )
        .await;
    let waited = started.elapsed();
    r.assert_error(503, None);
    assert!(r.header("retry-after").is_some());
    assert!(
        waited < Duration::from_secs(15),
        "answered after {waited:?}: the busy timeout is 10 s"
    );
    other.execute_batch("ROLLBACK").unwrap();
    let found = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22held@example.com%22")
        .await;
    assert_eq!(found.json["totalResults"], 0, "nothing was written");
    assert!(!s.create_user("after@example.com").await.is_empty());
    let refused = || {
        let conn = s.db.conn().unwrap();
        scimd::db::audit::list(&conn, &scimd::db::audit::Filter::default())
            .unwrap()
            .into_iter()
            .any(|r| r.entry.status == Some(503))
    };
    for _ in 0..100 {
        if refused() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the refused write was not audited");
}
