//! `GET /metrics` over HTTP: what Prometheus scrapes after SCIM writes that succeed and
//! fail, a force sync and webhook deliveries to a live and a dead receiver; the scrape is
//! parsed by PyPI `prometheus-client` too (`.ci/verify_metrics.py`: skipped locally
//! without it, failed under CI). Also `--metrics off` and `--metrics-listen`.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::{Value, json};

use scimd::config::HttpConfig;
use scimd::db::{self, Db, Durability};
use scimd::http::webhooks::Delivery;
use scimd::model::Actor;
use scimd::ops;

const PASSWORD: &str = "correct horse battery";

/// A scrape: each sample line's `name{labels}` and its value.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').expect("a sample line");
                (key.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Scrape { text, samples }
    }

    /// The value of sample `key` (`name{label="v",…}` in the order scimd writes labels).
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in\n{}", self.text))
    }

    fn find(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }
}

async fn scrape(s: &TestServer) -> Scrape {
    let r = s.raw(Method::GET, "/metrics", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    Scrape::parse(r.text)
}

/// Scrapes until `cond` holds (deliveries happen on the sender's own schedule).
async fn scrape_until(s: &TestServer, what: &str, cond: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = scrape(s).await;
        if cond(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook receiver on 127.0.0.1 that accepts everything.
async fn receiver() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An address nothing listens on (bound, then released).
async fn dead_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn add_hook(db: &Db, addr: SocketAddr) -> i64 {
    let tenant = db::tenants::by_slug(&db.conn().unwrap(), "default")
        .unwrap()
        .id;
    ops::webhooks::add(
        db,
        &Actor::cli(),
        tenant,
        format!("http://{addr}/hook"),
        Vec::new(),
        ops::webhooks::Format::Standard,
    )
    .await
    .unwrap()
    .id
}

/// Parses `text` with .ci/verify_metrics.py (PyPI prometheus-client); `None` when the
/// library is missing locally, a failure when it is missing under CI.
fn python_parse(text: &str) -> Option<Value> {
    let have = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the metrics test needs the prometheus-client Python library (pip install -r .ci/metrics-requirements.txt)"
            );
        }
        eprintln!(
            "SKIPPED: parsing with prometheus-client needs `pip install -r .ci/metrics-requirements.txt`"
        );
        return None;
    }
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/verify_metrics.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus-client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = families.as_object().map_or(0, |f| f.len());
    eprintln!("prometheus-client parsed {n} metric families");
    Some(families)
}

/// The value of the sample `name` with `labels` in a family parsed by Python.
fn python_sample(families: &Value, family: &str, name: &str, labels: Value) -> f64 {
    families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"))
        .iter()
        .find(|s| s["name"] == name && s["labels"] == labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels} in {family}"))["value"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn a_scrape_reports_requests_writes_syncs_webhooks_storage_and_tokens() {
    let s = TestServer::start().await;
    // Before anything happened, every counter an alert reads is there, at 0.
    let m = scrape(&s).await;
    for zero in [
        r#"scimd_scim_writes_total{resource="Users",outcome="failure"}"#,
        r#"scimd_scim_writes_total{resource="Groups",outcome="success"}"#,
        r#"scimd_sync_runs_total{scope="full"}"#,
        r#"scimd_sync_changes_applied_total{scope="roles"}"#,
        r#"scimd_webhook_deliveries_total{outcome="failure"}"#,
    ] {
        assert_eq!(m.find(zero), Some(0.0), "{zero}");
    }
    let good = add_hook(&s.db, receiver().await).await;
    let dead = add_hook(&s.db, dead_address().await).await;
    let delivery = Delivery::spawn_recording(
        s.db.clone(),
        vec![Duration::from_secs(3600)],
        s.metrics.clone(),
    );

    // SCIM writes: two that work, two refused.
    s.create_user("ada@example.com").await;
    let dup = s
        .post(
            "/scim/v2/Users",
            &json!({"schemas": [USER_URN], "userName": "ada@example.com"}),
        )
        .await;
    assert_eq!(dup.status, 409, "{}", dup.text);
    let g = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Eng"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let missing = s
        .patch(
            "/scim/v2/Groups/no-such-group",
            &json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    // A search is a POST but not a write.
    let search = s
        .post(
            "/scim/v2/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}),
        )
        .await;
    assert_eq!(search.status, 200, "{}", search.text);

    // A force sync that applies a change: made in test mode, applied once it is off.
    s.create_admin("alice", PASSWORD);
    let admin = Admin::login(&s, "alice", PASSWORD).await;
    let r = admin
        .post(&s, "/t/default/sync/test-mode", "test_mode=on")
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    s.create_user("grace@example.com").await;
    let r = admin
        .post(&s, "/t/default/sync/test-mode", "test_mode=off")
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = admin.post(&s, "/t/default/sync/run", "").await;
    assert_eq!(r.status, 303, "{}", r.text);

    // The live receiver has everything; the dead one is behind and failing.
    let good_lag = format!(r#"scimd_webhook_lag_events{{endpoint="{good}"}}"#);
    let dead_failures = format!(r#"scimd_webhook_failures{{endpoint="{dead}"}}"#);
    let m = scrape_until(&s, "deliveries to both receivers", |m| {
        m.find(&good_lag) == Some(0.0) && m.find(&dead_failures).is_some_and(|n| n >= 1.0)
    })
    .await;
    delivery.stop().await;

    // Requests by route class and status, with their latency.
    assert!(m.get(r#"scimd_http_requests_total{route="scim",status="201"}"#) >= 3.0);
    assert_eq!(
        m.get(r#"scimd_http_requests_total{route="scim",status="409"}"#),
        1.0
    );
    assert_eq!(
        m.get(r#"scimd_http_requests_total{route="scim",status="404"}"#),
        1.0
    );
    assert!(m.get(r#"scimd_http_requests_total{route="admin",status="303"}"#) >= 3.0);
    let scim_requests: f64 = m
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with(r#"scimd_http_requests_total{route="scim","#))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        m.get(r#"scimd_http_request_duration_seconds_count{route="scim"}"#),
        scim_requests
    );
    assert_eq!(
        m.get(r#"scimd_http_request_duration_seconds_bucket{le="+Inf",route="scim"}"#),
        scim_requests
    );

    // SCIM writes by resource and outcome (the search is not one).
    assert_eq!(
        m.get(r#"scimd_scim_writes_total{resource="Users",outcome="success"}"#),
        2.0
    );
    assert_eq!(
        m.get(r#"scimd_scim_writes_total{resource="Users",outcome="failure"}"#),
        1.0
    );
    assert_eq!(
        m.get(r#"scimd_scim_writes_total{resource="Groups",outcome="success"}"#),
        1.0
    );
    assert_eq!(
        m.get(r#"scimd_scim_writes_total{resource="Groups",outcome="failure"}"#),
        1.0
    );

    // The force sync created grace's member.
    assert_eq!(m.get(r#"scimd_sync_runs_total{scope="full"}"#), 1.0);
    assert_eq!(
        m.get(r#"scimd_sync_changes_applied_total{scope="full"}"#),
        1.0
    );

    // Webhooks: the dead endpoint lags by every event (two users and a group), the live
    // one by none, each delivered once.
    let dead_lag = m.get(&format!(r#"scimd_webhook_lag_events{{endpoint="{dead}"}}"#));
    assert!(dead_lag >= 3.0, "{}", m.text);
    assert!(m.get(r#"scimd_webhook_deliveries_total{outcome="failure"}"#) >= 1.0);
    assert_eq!(
        m.get(&format!(r#"scimd_webhook_failures{{endpoint="{good}"}}"#)),
        0.0
    );
    assert_eq!(
        m.get(r#"scimd_webhook_deliveries_total{outcome="success"}"#),
        dead_lag
    );

    // Storage, token last use and the version.
    assert!(m.get(r#"scimd_sqlite_file_size_bytes{file="db"}"#) > 0.0);
    assert!(
        m.find(r#"scimd_sqlite_file_size_bytes{file="wal"}"#)
            .is_some()
    );
    let token_id = db::tokens::list(&s.db.conn().unwrap(), None).unwrap()[0].id;
    let idle = m.get(&format!(
        r#"scimd_token_last_use_age_seconds{{token="{token_id}"}}"#
    ));
    assert!((0.0..60.0).contains(&idle), "{idle}");
    assert_eq!(
        m.get(&format!(
            r#"scimd_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(m.text.ends_with("# EOF\n"));
    assert!(!m.text.contains(&s.token), "a token secret in the metrics");

    // What Prometheus' own client library reads from it.
    if let Some(families) = python_parse(&m.text) {
        assert_eq!(families["scimd_http_requests"]["type"], "counter");
        assert_eq!(
            families["scimd_http_request_duration_seconds"]["type"],
            "histogram"
        );
        assert_eq!(families["scimd_build_info"]["type"], "gauge");
        assert_eq!(
            python_sample(
                &families,
                "scimd_scim_writes",
                "scimd_scim_writes_total",
                json!({"resource": "Groups", "outcome": "failure"})
            ),
            1.0
        );
        assert_eq!(
            python_sample(
                &families,
                "scimd_sync_runs",
                "scimd_sync_runs_total",
                json!({"scope": "full"})
            ),
            1.0
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn metrics_need_no_token_and_take_only_get() {
    let s = TestServer::start().await;
    let m = scrape(&s).await;
    // The scrape itself is counted from the next one on.
    assert!(
        m.find(r#"scimd_http_requests_total{route="metrics",status="200"}"#)
            .is_none()
    );
    let m = scrape(&s).await;
    assert_eq!(
        m.get(r#"scimd_http_requests_total{route="metrics",status="200"}"#),
        1.0
    );
    let r = s.raw(Method::POST, "/metrics", &[], "").await;
    assert_eq!(r.status, 405);
    s.stop().await;
}

/// A server as `scimd serve --metrics-listen` runs it: the main listener's /metrics is a
/// 404, the metrics listener answers /metrics only.
#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_main_listener() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("scimd.db"), Durability::Normal).unwrap();
    let config = HttpConfig {
        metrics_on_main: false,
        ..HttpConfig::default()
    };
    let app = scimd::http::App::new(db, config);
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let side = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (main_addr, side_addr) = (main.local_addr().unwrap(), side.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(());
    let until = |mut rx: tokio::sync::watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    let metrics = tokio::spawn(scimd::server::run(
        side,
        app.metrics_only(),
        until(stopped.clone()),
    ));
    let server = tokio::spawn(scimd::server::run(main, app, until(stopped)));
    let get = |addr: SocketAddr, path: &'static str| async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let res = client
            .get(format!("http://{addr}{path}").parse().unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(get(main_addr, "/metrics").await.0, 404);
    assert_eq!(get(main_addr, "/healthz").await.0, 200);
    let (status, body) = get(side_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("scimd_build_info"), "{body}");
    assert_eq!(get(side_addr, "/healthz").await.0, 404);
    assert_eq!(
        get(side_addr, "/scim/v2/ServiceProviderConfig").await.0,
        404
    );
    let _ = stop.send(());
    let _ = metrics.await;
    let _ = server.await;
}
