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
