//! Webhooks as a receiver and an admin observe them: real HTTP to a receiver on
//! 127.0.0.1, the real SQLite file, signatures checked by our verifier and by the
//! Standard Webhooks reference library.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use scimd::auth::webhooks as signing;
use scimd::db::{self, Db};
use scimd::http::webhooks::Delivery;
use scimd::model::Actor;
use scimd::ops;
use scimd::ops::webhooks::Format;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Captured {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Captured {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn seq(&self) -> i64 {
        self.json()["seq"].as_i64().unwrap()
    }
}

/// A webhook receiver on 127.0.0.1 that records every request and answers from a script
/// (then 200s).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Captured>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Answer this to everything once the script is done (200 when unset).
    otherwise: Arc<Mutex<Option<u16>>>,
    /// How long each answer takes.
    delay: Arc<Mutex<Duration>>,
    /// The `Retry-After` of every answer, when set.
    retry_after: Arc<Mutex<Option<&'static str>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver::default();
        r.clone().serve(listener);
        (r, addr)
    }

    /// Starts answering on `addr` (a port reserved earlier, to simulate an outage).
    async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let r = Receiver::default();
        r.clone().serve(listener);
        r
    }

    fn serve(self, listener: tokio::net::TcpListener) {
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let me = me.clone();
                        async move {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                                .collect();
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            let delay = *me.delay.lock().unwrap();
                            tokio::time::sleep(delay).await;
                            let answer = me.script.lock().unwrap().pop_front();
                            let answer = answer.or(*me.otherwise.lock().unwrap()).unwrap_or(200);
                            me.got.lock().unwrap().push(Captured {
                                headers,
                                body,
                                answered: answer,
                            });
                            let mut response = Response::builder().status(answer);
                            if let Some(after) = *me.retry_after.lock().unwrap() {
                                response = response.header("retry-after", after);
                            }
                            Ok::<_, hyper::Error>(
                                response.body(Full::new(Bytes::from("thanks"))).unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }

    fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    fn always(&self, status: Option<u16>) {
        *self.otherwise.lock().unwrap() = status;
    }

    fn all(&self) -> Vec<Captured> {
        self.got.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx.
    fn accepted(&self) -> Vec<Captured> {
        self.all()
            .into_iter()
            .filter(|c| (200..300).contains(&c.answered))
            .collect()
    }
}

/// Waits up to `secs` for `cond`.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn default_tenant(db: &Db) -> i64 {
    db::tenants::by_slug(&db.conn().unwrap(), "default")
        .unwrap()
        .id
}

/// The seqs of the tenant's events of `types` (all when empty).
fn event_seqs(db: &Db, types: &[&str]) -> Vec<i64> {
    let tenant = default_tenant(db);
    db::events::after(&db.conn().unwrap(), tenant, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| types.is_empty() || types.contains(&e.kind.as_str()))
        .map(|e| e.seq)
        .collect()
}

/// The tenant's disabled endpoints, as the dashboard's banner lists them.
fn disabled(db: &Db, tenant: i64) -> Vec<db::webhooks::Endpoint> {
    db::webhooks::list(&db.conn().unwrap(), Some(tenant))
        .unwrap()
        .into_iter()
        .filter(|e| !e.enabled)
        .collect()
}

fn schedule(s: &str) -> Vec<Duration> {
    scimd::config::parse_schedule(s).unwrap().0
}

async fn add(db: &Db, addr: SocketAddr, types: &[&str]) -> ops::webhooks::Created {
    let types = types.iter().map(|t| t.to_string()).collect();
    add_url(db, format!("http://{addr}/hook"), types, Format::Standard).await
}

/// Adds an endpoint of the default tenant for `url`, receiving `types` (all when empty).
async fn add_url(
    db: &Db,
    url: String,
    types: Vec<String>,
    format: Format,
) -> ops::webhooks::Created {
    ops::webhooks::add(db, &Actor::cli(), default_tenant(db), url, types, format)
        .await
        .unwrap()
}

/// Checks `c` against our verifier with any of `secrets`.
fn verifies(c: &Captured, secret: &str) -> bool {
    let ts: i64 = c.header("webhook-timestamp").parse().unwrap();
    signing::verify(
        secret,
        c.header("webhook-id"),
        ts,
        &c.body,
        c.header("webhook-signature"),
    )
}

/// Runs .ci/verify_webhooks.py (the Standard Webhooks reference library) over `captured`;
/// skips without the library locally, fails without it under CI.
fn reference_library_verifies(secret: &str, captured: &[Captured]) {
    let have = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the webhook tests need the standardwebhooks Python library (pip install -r .ci/webhooks-requirements.txt)"
            );
        }
        eprintln!(
            "SKIPPED: reference signature check needs `pip install -r .ci/webhooks-requirements.txt`"
        );
        return;
    }
    let input: Vec<Value> = captured
        .iter()
        .map(|c| {
            let headers: serde_json::Map<String, Value> =
                c.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({"secret": secret, "headers": headers, "body": String::from_utf8(c.body.clone()).unwrap()})
        })
        .collect();
    let mut child = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/verify_webhooks.py"
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
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_the_feeds_event_object() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    let hook = add(&server.db, addr, &[]).await;
    assert!(hook.secret.starts_with("whsec_"));
    server.create_user("ada@example.com").await;
    server.create_user("bob@example.com").await;
    let want = event_seqs(&server.db, &[]);
    eventually(10, "both users' events", || {
        rx.accepted().len() >= want.len()
    })
    .await;

    let got = rx.all();
    let tenant = default_tenant(&server.db);
    for c in &got {
        assert_eq!(c.header("content-type"), "application/json");
        assert!(verifies(c, &hook.secret), "{:?}", c.headers);
        assert!(
            !c.header("webhook-signature").contains(' '),
            "one secret, one signature"
        );
        let ts: i64 = c.header("webhook-timestamp").parse().unwrap();
        assert!((ts - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 60);
        let event = db::events::get(&server.db.conn().unwrap(), tenant, c.seq())
            .unwrap()
            .unwrap();
        assert_eq!(
            c.body,
            serde_json::to_vec(&ops::events::object(&event)).unwrap()
        );
        assert_eq!(c.header("webhook-id"), ops::events::event_id(&event));
    }
    assert_eq!(got.iter().map(Captured::seq).collect::<Vec<_>>(), want);
    reference_library_verifies(&hook.secret, &got);
    let log = ops::webhooks::attempts(&server.db, hook.id, 100)
        .await
        .unwrap();
    assert_eq!(log.len(), want.len());
    assert!(
        log.iter()
            .all(|a| a.status == Some(200) && a.response.as_deref() == Some("thanks"))
    );
    delivery.stop().await;
}

/// A receiver behind basic auth is configured by its URL: the credentials go out as an
/// `Authorization` header, never in the request line, and no page, log line or audit
/// entry shows the password.
#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth_and_never_shown() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    let url = format!("http://hook:s3cr%40t@{addr}/hook");
    let hook = add_url(&server.db, url, Vec::new(), Format::Standard).await;
    server.create_user("ada@example.com").await;
    eventually(10, "the user's event", || !rx.accepted().is_empty()).await;
    let c = &rx.all()[0];
    // base64("hook:s3cr@t")
    assert_eq!(c.header("authorization"), "Basic aG9vazpzM2NyQHQ=");
    assert_eq!(c.header("host"), addr.to_string());
    assert!(verifies(c, &hook.secret));

    let audit = db::audit::list(&server.db.conn().unwrap(), &db::audit::Filter::default()).unwrap();
    let created = audit
        .iter()
        .find(|r| r.entry.action.as_str() == "webhook.created")
        .expect("audited");
    assert_eq!(
        created.entry.detail.as_ref().unwrap()["url"],
        format!("http://hook:****@{addr}/hook")
    );
    assert!(
        audit
            .iter()
            .all(|r| !format!("{:?}", r.entry).contains("s3cr"))
    );
    delivery.stop().await;
}

#[tokio::test]
async fn every_event_arrives_once_and_in_order_through_an_outage() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s,1s,1s,1s,1s,1s,1s,1s"));
    // Reserve a port and close it: the receiver is down.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hook = add(&server.db, addr, &[]).await;
    for i in 0..5 {
        server.create_user(&format!("u{i}@example.com")).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rx = Receiver::start_on(addr).await;
    rx.answer(&[500, 503]);
    for i in 5..8 {
        server.create_user(&format!("u{i}@example.com")).await;
    }
    let want = event_seqs(&server.db, &[]);
    eventually(30, "every event", || rx.accepted().len() >= want.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted: Vec<i64> = rx.accepted().iter().map(Captured::seq).collect();
    assert_eq!(accepted, want, "each event accepted once, in seq order");
    let refused = rx.all().iter().filter(|c| c.answered >= 500).count();
    assert_eq!(refused, 2);
    // The retried event kept its webhook-id.
    let all = rx.all();
    assert_eq!(all[0].header("webhook-id"), all[2].header("webhook-id"));
    let e = ops::webhooks::get(&server.db, None, hook.id).await.unwrap();
    assert!(e.enabled && e.failures == 0 && e.cursor == *want.last().unwrap());
    let log = ops::webhooks::attempts(&server.db, hook.id, 100)
        .await
        .unwrap();
    assert!(
        log.iter().any(|a| a.status.is_none() && a.error.is_some()),
        "the outage is logged"
    );
    delivery.stop().await;
}

/// A WorkOS endpoint takes WorkOS event names as its types, as a WorkOS app names them,
/// and receives only those; a name scimd never sends is refused.
#[tokio::test]
async fn a_workos_endpoint_filters_by_workos_names() {
    let server = TestServer::start().await;
    let (rx, addr) = Receiver::start().await;
    let url = format!("http://{addr}/hook");
    let types = vec!["dsync.user.deleted".to_string()];
    add_url(&server.db, url.clone(), types, Format::Workos).await;
    let unknown = ops::webhooks::add(
        &server.db,
        &Actor::cli(),
        default_tenant(&server.db),
        url.clone(),
        vec!["dsync.user.teleported".to_string()],
        Format::Workos,
    )
    .await;
    assert!(unknown.is_err());
    let standard = ops::webhooks::add(
        &server.db,
        &Actor::cli(),
        default_tenant(&server.db),
        url,
        vec!["dsync.user.deleted".to_string()],
        Format::Standard,
    )
    .await;
    assert!(
        standard.is_err(),
        "a Standard Webhooks endpoint takes scimd's names"
    );
    // A tenant's deletion is never sent to its own endpoints, which go with it.
    for (name, format) in [
        ("dsync.deleted", Format::Workos),
        ("tenant.deleted", Format::Standard),
    ] {
        let never = ops::webhooks::add(
            &server.db,
            &Actor::cli(),
            default_tenant(&server.db),
            format!("http://{addr}/hook"),
            vec![name.to_string()],
            format,
        )
        .await;
        assert!(
            matches!(never, Err(ops::webhooks::Error::NotOfATenant(_))),
            "{name}: {never:?}"
        );
    }
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let id = server.create_user("gone@example.com").await;
    server.create_user("stays@example.com").await;
    let r = server
        .call(
            hyper::Method::DELETE,
            &format!("/scim/v2/Users/{id}"),
            &server.token,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    eventually(10, "the deletion", || !rx.accepted().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = rx
        .accepted()
        .iter()
        .map(|c| {
            let body: Value = serde_json::from_slice(&c.body).unwrap();
            body["event"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(names, ["dsync.user.deleted"]);
    delivery.stop().await;
}

/// A slow receiver's progress is recorded as it goes, not once per batch of 100: a crash
/// sends again at most about a second's worth of events.
#[tokio::test]
async fn a_slow_receivers_progress_is_recorded_within_a_batch() {
    let server = TestServer::start().await;
    let (rx, addr) = Receiver::start().await;
    *rx.delay.lock().unwrap() = Duration::from_millis(150);
    let hook = add(&server.db, addr, &[]).await;
    for i in 0..20 {
        server.create_user(&format!("slow{i}@example.com")).await;
    }
    let want = event_seqs(&server.db, &[]);
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    eventually(10, "a second's deliveries", || rx.accepted().len() >= 10).await;
    let e = ops::webhooks::get(&server.db, None, hook.id).await.unwrap();
    assert!(
        e.cursor >= want[0] && e.cursor < *want.last().unwrap(),
        "recorded within the batch: cursor {} of {want:?}",
        e.cursor
    );
    eventually(20, "every event", || rx.accepted().len() >= want.len()).await;
    let accepted: Vec<i64> = rx.accepted().iter().map(Captured::seq).collect();
    assert_eq!(accepted, want, "each event once, in order");
    delivery.stop().await;
}

#[tokio::test]
async fn type_filters_send_only_the_chosen_types() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    // A SCIM delete archives the member (the default deletion policy).
    let hook = add(&server.db, addr, &["member.archived", "member.suspended"]).await;
    let id = server.create_user("gone@example.com").await;
    server.create_user("stays@example.com").await;
    assert_eq!(
        server.delete(&format!("/scim/v2/Users/{id}")).await.status,
        204
    );
    let want = event_seqs(&server.db, &["member.archived", "member.suspended"]);
    assert_eq!(want.len(), 1);
    eventually(10, "the archival", || !rx.accepted().is_empty()).await;
    let last = *event_seqs(&server.db, &[]).last().unwrap();
    eventually(10, "the cursor past skipped events", || {
        db::webhooks::get(&server.db.conn().unwrap(), None, hook.id)
            .unwrap()
            .cursor
            == last
    })
    .await;
    let got = rx.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "member.archived");
    assert_eq!(got[0].seq(), want[0]);
    let bad = ops::webhooks::add(
        &server.db,
        &Actor::cli(),
        1,
        format!("http://{addr}/"),
        vec!["member.nope".into()],
        Format::Standard,
    )
    .await;
    assert!(bad.is_err());
    delivery.stop().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_at_once() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s,1s,1s"));
    let (rx, addr) = Receiver::start().await;
    rx.always(Some(410));
    let hook = add(&server.db, addr, &[]).await;
    server.create_user("ada@example.com").await;
    let tenant = default_tenant(&server.db);
    eventually(10, "the endpoint disabled", || {
        !disabled(&server.db, tenant).is_empty()
    })
    .await;
    let off = disabled(&server.db, tenant);
    assert_eq!(off[0].id, hook.id);
    assert!(off[0].disabled_reason.as_deref().unwrap().contains("410"));
    assert!(off[0].disabled_at.is_some());
    server.create_user("bob@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.all().len(), 1, "no retry after a 410");
    let filter = db::audit::Filter {
        action: Some(db::audit::Action::WebhookDisabled),
        ..Default::default()
    };
    let audit = db::audit::list(&server.db.conn().unwrap(), &filter).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, Actor::system().label());
    delivery.stop().await;
}

/// A receiver's `Retry-After` may ask for longer than the schedule's step, never less: a
/// proxy answering `503 Retry-After: 0` through a deploy does not spend the schedule (and
/// disable the endpoint) in milliseconds.
#[tokio::test]
async fn a_retry_after_shorter_than_the_schedules_step_waits_the_step() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s,1s"));
    let (rx, addr) = Receiver::start().await;
    rx.always(Some(503));
    *rx.retry_after.lock().unwrap() = Some("0");
    add(&server.db, addr, &[]).await;
    server.create_user("a@example.com").await;
    eventually(5, "the first attempt", || !rx.all().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rx.all().len(), 1, "no retry before the schedule's step");
    assert!(disabled(&server.db, default_tenant(&server.db)).is_empty());
    eventually(5, "the retry at the step", || rx.all().len() >= 2).await;
    delivery.stop().await;
}

#[tokio::test]
async fn failing_past_the_schedule_disables_and_enable_resumes_losing_nothing() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("200ms,200ms"));
    let (rx, addr) = Receiver::start().await;
    rx.always(Some(500));
    let hook = add(&server.db, addr, &[]).await;
    server.create_user("a@example.com").await;
    server.create_user("b@example.com").await;
    let tenant = default_tenant(&server.db);
    eventually(10, "the endpoint disabled", || {
        !disabled(&server.db, tenant).is_empty()
    })
    .await;
    assert_eq!(rx.all().len(), 3, "the first attempt and two retries");
    let off = disabled(&server.db, tenant);
    assert!(
        off[0]
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("HTTP 500"),
        "{:?}",
        off[0]
    );
    // Events keep coming while it is disabled; none is lost.
    server.create_user("c@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.all().len(), 3);
    rx.always(None);
    ops::webhooks::enable(&server.db, &Actor::cli(), Some(tenant), hook.id)
        .await
        .unwrap();
    let want = event_seqs(&server.db, &[]);
    eventually(10, "every event after enable", || {
        rx.accepted().len() >= want.len()
    })
    .await;
    let accepted: Vec<i64> = rx.accepted().iter().map(Captured::seq).collect();
    assert_eq!(accepted, want);
    assert!(disabled(&server.db, tenant).is_empty());
    delivery.stop().await;
}

/// An enabled endpoint still trying to deliver keeps its events past their retention; a
/// disabled one does not, and enabling it names what it lost. A replay never skips events
/// an endpoint has not received.
#[tokio::test]
async fn undelivered_events_outlive_retention_while_their_endpoint_is_enabled() {
    let server = TestServer::start().await;
    let tenant = default_tenant(&server.db);
    // No sender runs: the endpoints' cursors stay where they start, before every event.
    let waiting = add_url(
        &server.db,
        "http://127.0.0.1:9/a".into(),
        vec![],
        Format::Standard,
    )
    .await;
    let off = add_url(
        &server.db,
        "http://127.0.0.1:9/b".into(),
        vec![],
        Format::Standard,
    )
    .await;
    ops::webhooks::disable(&server.db, &Actor::cli(), None, off.id)
        .await
        .unwrap();
    for i in 0..3 {
        server.create_user(&format!("u{i}@example.com")).await;
    }
    let seqs = event_seqs(&server.db, &[]);
    let age_every_event = || {
        server
            .db
            .conn()
            .unwrap()
            .execute(
                "UPDATE events SET created_at = '2000-01-01T00:00:00.000000Z'",
                [],
            )
            .unwrap();
    };
    age_every_event();
    let now = time::OffsetDateTime::now_utc();
    let done = ops::retention::daily(&server.db, now).await.unwrap();
    assert_eq!(
        done.events_purged, 0,
        "the enabled endpoint has not received them"
    );
    assert_eq!(event_seqs(&server.db, &[]), seqs);

    // Once no enabled endpoint waits for them, retention takes them.
    ops::webhooks::disable(&server.db, &Actor::cli(), None, waiting.id)
        .await
        .unwrap();
    let done = ops::retention::daily(&server.db, now).await.unwrap();
    assert_eq!(done.events_purged, seqs.len());
    let last = *seqs.last().unwrap();
    let lost = ops::webhooks::enable(&server.db, &Actor::cli(), Some(tenant), waiting.id)
        .await
        .unwrap()
        .expect("enabling names the events it lost");
    assert_eq!((lost.from, lost.through), (seqs[0], last));
    assert!(lost.note().contains("no longer kept"), "{}", lost.note());
    let entry = scimd::db::audit::list(&server.db.conn().unwrap(), &Default::default())
        .unwrap()
        .into_iter()
        .rfind(|r| r.entry.action.as_str() == "webhook.enabled")
        .unwrap();
    assert_eq!(entry.entry.detail.unwrap()["not_kept"]["through_seq"], last);

    // Replays: from the first event not received at most; none past the newest.
    server.create_user("later@example.com").await;
    server.create_user("later2@example.com").await;
    let cli = Actor::cli();
    let replay = |from: i64| ops::webhooks::replay(&server.db, &cli, None, off.id, from);
    let e = replay(last + 2).await.unwrap_err();
    assert!(e.to_string().contains("does not skip"), "{e}");
    assert!(
        e.to_string().contains(&format!("event {}", last + 1)),
        "{e}"
    );
    let e = replay(last + 9).await.unwrap_err();
    assert!(e.to_string().contains("no event"), "{e}");
    let e = replay(last).await.unwrap_err();
    assert!(e.to_string().contains("not kept"), "{e}");
    replay(last + 1).await.unwrap();
}

#[tokio::test]
async fn replay_delivers_again_from_a_seq_in_order() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    let hook = add(&server.db, addr, &[]).await;
    for i in 0..3 {
        server.create_user(&format!("u{i}@example.com")).await;
    }
    let want = event_seqs(&server.db, &[]);
    eventually(10, "the first round", || rx.accepted().len() >= want.len()).await;
    let from = want[1];
    ops::webhooks::replay(&server.db, &Actor::cli(), None, hook.id, from)
        .await
        .unwrap();
    let again: Vec<i64> = want.iter().copied().filter(|s| *s >= from).collect();
    eventually(10, "the replay", || {
        rx.accepted().len() >= want.len() + again.len()
    })
    .await;
    let seqs: Vec<i64> = rx.accepted().iter().map(Captured::seq).collect();
    assert_eq!(seqs[want.len()..], again[..]);
    assert!(
        ops::webhooks::replay(&server.db, &Actor::cli(), None, hook.id, 9999)
            .await
            .is_err()
    );
    // One event sent again on its own, out of order; the cursor does not move.
    let (target, m) = ops::webhooks::resend(&server.db, &Actor::cli(), None, hook.id, want[0])
        .await
        .unwrap();
    let sent = scimd::http::webhooks::send_once(&server.db, &target, &m)
        .await
        .unwrap();
    assert!(sent.accepted());
    assert_eq!(rx.all().last().unwrap().seq(), want[0]);
    delivery.stop().await;
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_for_a_day() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    let hook = add(&server.db, addr, &[]).await;
    let rotated = ops::webhooks::rotate_secret(&server.db, &Actor::cli(), None, hook.id)
        .await
        .unwrap();
    assert!(rotated.overlap);
    let new = rotated.secret;
    assert_ne!(new, hook.secret);
    server.create_user("ada@example.com").await;
    eventually(10, "a delivery", || !rx.accepted().is_empty()).await;
    let c = &rx.all()[0];
    assert_eq!(c.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(c, &new) && verifies(c, &hook.secret));
    reference_library_verifies(&new, std::slice::from_ref(c));
    reference_library_verifies(&hook.secret, std::slice::from_ref(c));
    let e = ops::webhooks::get(&server.db, None, hook.id).await.unwrap();
    assert!(e.previous_until.unwrap() > scimd::scim::datetime::now());
    delivery.stop().await;
}

/// Whether `c` carries the `WorkOS-Signature` that `secret` makes for its body and time.
fn signed_workos(c: &Captured, secret: &str) -> bool {
    let header = c.header("workos-signature");
    let t: i64 = header
        .split(", ")
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    header == signing::sign_workos(secret, t, &c.body)
}

/// A WorkOS signature holds one secret (the SDKs read the first `v1`): a rotation switches
/// a WorkOS endpoint to the new secret at once, and says so rather than promising a day.
#[tokio::test]
async fn a_workos_endpoint_signs_with_the_new_secret_at_once() {
    let server = TestServer::start().await;
    let delivery = Delivery::spawn(server.db.clone(), schedule("1s"));
    let (rx, addr) = Receiver::start().await;
    let hook = add_url(
        &server.db,
        format!("http://{addr}/hook"),
        vec![],
        Format::Workos,
    )
    .await;
    let rotated = ops::webhooks::rotate_secret(&server.db, &Actor::cli(), None, hook.id)
        .await
        .unwrap();
    assert!(!rotated.overlap);
    assert!(rotated.note().contains("at once") || rotated.note().contains("from now on"));
    server.create_user("ada@example.com").await;
    eventually(10, "a delivery", || !rx.accepted().is_empty()).await;
    let c = &rx.all()[0];
    assert!(signed_workos(c, &rotated.secret));
    assert!(!signed_workos(c, &hook.secret));

    // A test event comes in the WorkOS shape too, signed the same way.
    let (target, m) = ops::webhooks::test(&server.db, &Actor::cli(), None, hook.id)
        .await
        .unwrap();
    let sent = scimd::http::webhooks::send_once(&server.db, &target, &m)
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200));
    let c = rx
        .all()
        .into_iter()
        .find(|c| c.json()["event"] == "webhook.test")
        .expect("the test event arrived");
    let body = c.json();
    assert!(body["id"].as_str().unwrap().starts_with("event_test_"));
    assert!(body["created_at"].is_string() && body.get("type").is_none());
    assert!(signed_workos(&c, &rotated.secret));
    delivery.stop().await;
}

#[tokio::test]
async fn link_local_and_metadata_receivers_are_refused() {
    let server = TestServer::start().await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let standard = Format::Standard;
        let r =
            ops::webhooks::add(&server.db, &Actor::cli(), 1, url.into(), vec![], standard).await;
        assert!(
            matches!(r, Err(ops::webhooks::Error::Url(_))),
            "{url}: {r:?}"
        );
    }
    assert!(
        ops::webhooks::list(&server.db, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The real binary with its own database file, as an operator runs it.
struct Binary {
    dir: tempfile::TempDir,
}

impl Binary {
    fn command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"));
        c.current_dir(self.dir.path())
            .env_remove("SCIMD_DB")
            .env_remove("SCIMD_LISTEN")
            .env_remove("SCIMD_WEBHOOK_RETRY_SCHEDULE");
        c
    }

    /// Runs a command to completion; returns stdout, panicking on failure.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "scimd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn serve(&self, listen: &str) -> std::process::Child {
        let mut child = self
            .command()
            .args([
                "serve",
                "--listen",
                listen,
                "--webhook-retry-schedule",
                "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            let ok = self
                .command()
                .args(["healthcheck", "--listen", listen])
                .output()
                .unwrap()
                .status
                .success();
            if ok {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("scimd serve did not come up on {listen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_kill_9_and_resume_where_they_stopped() {
    let bin = Binary {
        dir: tempfile::tempdir().unwrap(),
    };
    let (rx, addr) = Receiver::start().await;
    *rx.delay.lock().unwrap() = Duration::from_millis(40);
    let token = bin.run(&["token", "create"]).trim().to_string();

    // The CLI: add prints id= and secret= on their own lines; test sends a test event now.
    let added = bin.run(&["webhook", "add", &format!("http://{addr}/hook")]);
    let field = |name: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name}= in {added}"))
            .to_string()
    };
    let (id, secret) = (field("id"), field("secret"));
    assert!(secret.starts_with("whsec_"));
    let tested = bin.run(&["webhook", "test", &id]);
    assert!(tested.starts_with("delivered: HTTP 200"), "{tested}");
    let test_request = rx.all().pop().unwrap();
    assert_eq!(test_request.json()["type"], "webhook.test");
    assert!(verifies(&test_request, &secret));
    assert!(
        bin.run(&["webhook", "list"])
            .contains(&format!("http://{addr}/hook"))
    );
    rx.got.lock().unwrap().clear();

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut server = bin.serve(&listen);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for i in 0..30 {
        let body = json!({"schemas":[common::USER_URN],"userName":format!("u{i}@example.com"),"active":true});
        let req = Request::post(format!("http://{listen}/scim/v2/Users"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/scim+json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 201);
    }
    eventually(20, "some deliveries before the kill", || {
        rx.accepted().len() >= 3
    })
    .await;
    server.kill().unwrap(); // SIGKILL: no drain, no last report
    server.wait().unwrap();
    let before = rx.accepted().len();
    assert!(
        before < 30,
        "deliveries were still pending at the kill ({before})"
    );

    let mut server = bin.serve(&listen);
    let want: Vec<i64> = {
        let db = Db::open(&bin.dir.path().join("scimd.db"), db::Durability::Normal).unwrap();
        event_seqs(&db, &[])
    };
    assert!(want.len() >= 30);
    eventually(30, "every event after the restart", || {
        let mut seen: Vec<i64> = rx.accepted().iter().map(Captured::seq).collect();
        seen.sort();
        seen.dedup();
        seen == want
    })
    .await;
    // Order: in arrival order, each event first arrives after every earlier one.
    let mut first_seen = Vec::new();
    for c in rx.accepted() {
        let seq = c.seq();
        if !first_seen.contains(&seq) {
            first_seen.push(seq);
        }
        assert!(verifies(&c, &secret));
    }
    assert_eq!(first_seen, want, "first arrivals in seq order");
    // Redelivered ones keep their webhook-id (receivers dedupe by it).
    let ids: std::collections::HashSet<String> = rx
        .accepted()
        .iter()
        .map(|c| c.header("webhook-id").to_string())
        .collect();
    assert_eq!(ids.len(), want.len());
    server.kill().unwrap();
    server.wait().unwrap();
}
