//! Limits that protect a small VM: a cap on open connections and on requests being
//! answered, each answered 503 with `Retry-After` beyond it, and room again once freed.

mod common;

use std::time::Duration;

use common::*;
use hyper::Method;
use scimd::config::HttpConfig;
use scimd::model::Actor;
use scimd::ops;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server answers on a fresh connection to a plain GET of `path`.
async fn answer(s: &TestServer, path: &str) -> String {
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: scimd\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_room_comes_back() {
    let s = TestServer::start_with(HttpConfig {
        max_connections: 2,
        ..HttpConfig::default()
    })
    .await;
    // Two idle connections hold both slots.
    let a = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = answer(&s, "/healthz").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("Retry-After: 1"), "{refused}");
    assert!(refused.contains("urn:ietf:params:scim:api:messages:2.0:Error"));
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = answer(&s, "/healthz").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    s.stop().await;
}

#[tokio::test]
async fn requests_past_the_cap_get_503_while_health_checks_still_answer() {
    let s = TestServer::start_with(HttpConfig {
        max_requests: 1,
        ..HttpConfig::default()
    })
    .await;
    let key = ops::apikeys::issue(&s.db, &Actor::cli(), Some(1), "app".into(), None)
        .await
        .unwrap()
        .token
        .secret;
    // A long poll holds the one request slot.
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    let poll = s.raw(Method::GET, "/api/v1/events?after=0&wait=2", &headers, "");
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let busy = s.get("/scim/v2/Users").await;
        let health = answer(&s, "/healthz").await;
        (busy, health)
    };
    let (polled, (busy, health)) = tokio::join!(poll, meanwhile);
    assert_eq!(polled.status, 200, "{}", polled.text);
    busy.assert_error(503, None);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // Once the poll is answered, there is room again.
    assert_eq!(s.get("/scim/v2/Users").await.status, 200);
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
