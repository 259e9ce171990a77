//! The webhook sender: follows every enabled endpoint inside `scimd serve` and POSTs its
//! events with hyper's client, over rustls for https receivers.
//!
//! One task per endpoint, so a slow or dead receiver delays only itself, never a SCIM
//! write or another endpoint. Each task asks `ops::webhooks::next` what to send (a batch
//! of up to [`BATCH`] events after the endpoint's cursor), sends them in order, stops at
//! the first that is not accepted, and reports what it saw with `ops::webhooks::report`,
//! which moves the cursor, schedules the retry or disables the endpoint in one
//! transaction. A commit of this process wakes the tasks at once; they also look again
//! every [`RECHECK`] for writes of other processes (the CLI). Since the cursor moves only
//! after a 2xx, a kill at any point means some events are sent again, none is lost.
//!
//! No redirect is followed (a 3xx is a failure), each request has [`TIMEOUT`] to connect
//! and answer, and a host that resolves to a link-local or cloud metadata address is
//! refused at connect time (`auth::webhooks::forbidden_ip`), whatever DNS says.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{self, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::auth::webhooks::{forbidden_ip, shown_url, split_credentials};
use crate::db::Db;
use crate::ops::webhooks::{self as ops, Batch, Message, Next, Reported, Sent, Target};

/// How many events one read fetches for one endpoint.
pub const BATCH: u32 = 100;
/// The most time a batch is sent for before what was accepted is recorded.
const PROGRESS: Duration = Duration::from_secs(1);
/// How long a request may take to connect and answer: 15 s, the low end of what Standard
/// Webhooks recommends (a receiver that hangs holds back only its own endpoint).
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How often the sender looks again without a commit of this process to wake it.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How long after a commit the endpoints are read again: an endpoint an admin just added
/// starts this late at most.
const RELOOK: Duration = Duration::from_millis(200);
/// How long a woken endpoint lets further commits gather before it reads: events committed
/// together go out in one batch with one cursor update, so a burst of SCIM writes is not
/// slowed by one bookkeeping transaction per endpoint per event.
const GATHER: Duration = Duration::from_millis(10);
/// The longest pause before a batch whose delivery could not be recorded (a full disk) is
/// sent again: the pause doubles from [`RECHECK`] up to this, so the receiver does not get
/// the same events every second for as long as the disk stays full.
const UNRECORDED_PAUSE: Duration = Duration::from_secs(300);
/// The most of an answer read (its first [`ops::RESPONSE_KEPT`] bytes are kept).
const MAX_READ: usize = 64 * 1024;

/// Resolves names like the system does, refusing any that leads to a forbidden address.
#[derive(Clone, Default)]
struct GuardedResolver;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| forbidden_ip(a.ip())) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{name} resolves to {}, a link-local or cloud metadata address",
                        bad.ip()
                    ),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Connects as [`HttpConnector`] does, with connections that acknowledge what they
/// receive at once. Events go one at a time per endpoint over a kept-alive connection: a
/// receiver that answers in two writes (headers, then body) with Nagle's algorithm on, as
/// Python's `http.server` does, holds the body until its headers are acknowledged, and the
/// kernel delays that acknowledgement (about 40 ms) while it expects to send something
/// back. That was 25 events a second. Linux's `TCP_QUICKACK` turns the delay off, but only
/// until the kernel's next guess, so it is set again before every read.
#[derive(Clone)]
struct QuickAck(HttpConnector<GuardedResolver>);

impl tower_service::Service<hyper::Uri> for QuickAck {
    type Response = Acking;
    type Error = <HttpConnector<GuardedResolver> as tower_service::Service<hyper::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Acking, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(Acking) })
    }
}

/// A connection of [`QuickAck`].
struct Acking(TokioIo<tokio::net::TcpStream>);

impl hyper::rt::Read for Acking {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Best effort: a socket that refuses it is only slower.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Acking {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for Acking {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

/// The HTTP(S) client every delivery goes through; cheap to clone, keeps connections alive.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<QuickAck>, Full<Bytes>>,
}

impl Default for Sender {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender {
    /// A client trusting the Mozilla root certificates (webpki-roots), TLS 1.2 and 1.3.
    pub fn new() -> Sender {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver);
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        http.set_nodelay(true);
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAck(http));
        Sender {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(https),
        }
    }

    /// POSTs `m` to `target`, signed now, and says what happened.
    pub async fn send(&self, target: &Target, m: &Message) -> Sent {
        let at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let outcome = tokio::time::timeout(TIMEOUT, self.post(target, m, at)).await;
        let mut sent = Sent {
            at,
            status: None,
            duration: started.elapsed(),
            error: None,
            response: None,
            retry_after: None,
        };
        match outcome {
            Ok(Ok((status, retry_after, response))) => {
                sent.status = Some(status);
                sent.retry_after = retry_after;
                sent.response = Some(response);
            }
            Ok(Err(e)) => sent.error = Some(e),
            Err(_) => sent.error = Some(format!("no answer within {} s", TIMEOUT.as_secs())),
        }
        sent
    }

    async fn post(
        &self,
        target: &Target,
        m: &Message,
        at: OffsetDateTime,
    ) -> Result<(u16, Option<Duration>, String), String> {
        let (url, basic) = split_credentials(&target.url);
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        // A literal address never reaches the resolver: check it here.
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        if let Ok(ip) = host.parse()
            && forbidden_ip(ip)
        {
            return Err(format!("{ip} is a link-local or cloud metadata address"));
        }
        let mut req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("scimd/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(basic) = basic {
            req = req.header(header::AUTHORIZATION, basic);
        }
        for (name, value) in target.headers(m, at) {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(m.body.clone())))
            .map_err(|e| e.to_string())?;
        let res = self.client.request(req).await.map_err(|e| chain(&e))?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = res.into_body();
        let mut kept = Vec::new();
        while kept.len() < MAX_READ {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        kept.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        kept.truncate(ops::RESPONSE_KEPT);
        Ok((
            status,
            retry_after,
            String::from_utf8_lossy(&kept).into_owned(),
        ))
    }
}

/// An error with its causes, which hyper keeps apart (`client error (Connect)`: why?).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Sends one message out of order (a test, a resend), logs the attempt, returns it.
pub async fn send_once(db: &Db, target: &Target, m: &Message) -> Result<Sent, crate::db::DbError> {
    let sent = Sender::new().send(target, m).await;
    ops::log_attempt(db, target, m, &sent).await?;
    Ok(sent)
}

/// The running sender; [`Delivery::stop`] ends it.
pub struct Delivery {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Delivery {
    /// Starts following every enabled endpoint of `db`, retrying on `schedule`.
    pub fn spawn(db: Db, schedule: Vec<Duration>) -> Delivery {
        Delivery::spawn_recording(db, schedule, Metrics::new())
    }

    /// [`Delivery::spawn`], counting each attempt in `metrics` (the server's, from
    /// [`crate::http::App::metrics`]).
    pub fn spawn_recording(db: Db, schedule: Vec<Duration>, metrics: Metrics) -> Delivery {
        let (stop, stopped) = watch::channel(false);
        let sender = Sender::new();
        let task = tokio::spawn(supervise(db, sender, metrics, schedule, stopped));
        Delivery { stop, task }
    }

    /// Stops every endpoint's task after the request it is sending, recording what was
    /// delivered so far.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Keeps one task per enabled endpoint.
async fn supervise(
    db: Db,
    sender: Sender,
    metrics: Metrics,
    schedule: Vec<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let schedule: Arc<[Duration]> = schedule.into();
    let mut workers: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut commits = db.commits();
    loop {
        commits.borrow_and_update();
        workers.retain(|_, task| !task.is_finished());
        match ops::enabled_ids(&db).await {
            Ok(ids) => {
                for id in ids {
                    workers.entry(id).or_insert_with(|| {
                        let follow = follow(
                            db.clone(),
                            sender.clone(),
                            metrics.clone(),
                            id,
                            schedule.clone(),
                            stop.clone(),
                        );
                        tokio::spawn(follow)
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list webhook endpoints"),
        }
        tokio::select! {
            _ = commits.changed() => {
                // Under a busy IdP commits come thousands a second: the endpoints are read
                // again once for all of those of a short while, not once for each.
                tokio::select! {
                    _ = tokio::time::sleep(RELOOK) => {}
                    _ = stop.changed() => break,
                }
            }
            _ = tokio::time::sleep(RECHECK) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, task) in workers {
        let _ = task.await;
    }
}

/// Delivers endpoint `id`'s events until it is disabled or removed, or the sender stops.
async fn follow(
    db: Db,
    sender: Sender,
    metrics: Metrics,
    id: i64,
    schedule: Arc<[Duration]>,
    mut stop: watch::Receiver<bool>,
) {
    let mut commits = db.commits();
    // Batches in a row whose delivery could not be recorded.
    let mut unrecorded = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        commits.borrow_and_update();
        let nap = match ops::next(&db, id, BATCH).await {
            Ok(Next::Stop) => return,
            Ok(Next::Send(batch)) => {
                if deliver(&db, &sender, &metrics, batch, &schedule, &stop).await {
                    unrecorded = 0;
                    continue;
                }
                unrecorded += 1;
                RECHECK
                    .saturating_mul(1 << unrecorded.min(16))
                    .min(UNRECORDED_PAUSE)
            }
            Ok(Next::Idle) => RECHECK,
            Ok(Next::RetryAt(at)) => {
                let left = (at - OffsetDateTime::now_utc()).unsigned_abs();
                left.min(RECHECK)
            }
            Err(e) => {
                tracing::warn!(webhook = id, error = %e, "cannot read webhook events");
                RECHECK
            }
        };
        tokio::select! {
            _ = commits.changed() => tokio::time::sleep(GATHER).await,
            _ = tokio::time::sleep(nap) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Sends `batch` in order, stopping at the first failure (or when told to stop, or after
/// [`PROGRESS`] of sending), and reports what happened; `false` when that report could not
/// be recorded (the batch goes again).
async fn deliver(
    db: &Db,
    sender: &Sender,
    metrics: &Metrics,
    batch: Batch,
    schedule: &[Duration],
    stop: &watch::Receiver<bool>,
) -> bool {
    let id = batch.target.endpoint_id;
    let mut sent = Vec::with_capacity(batch.messages.len());
    let started = std::time::Instant::now();
    for m in &batch.messages {
        // Stopping, or a slow receiver: what was accepted is recorded now, so a crash sends
        // again at most a second's worth of events, not a whole batch.
        if *stop.borrow() || started.elapsed() >= PROGRESS {
            break;
        }
        let s = sender.send(&batch.target, m).await;
        let accepted = s.accepted();
        metrics.delivery(accepted);
        if !accepted {
            tracing::info!(webhook = id, seq = m.seq, outcome = %ops::describe(&s), "webhook delivery failed");
        }
        sent.push(s);
        if !accepted {
            break;
        }
    }
    match ops::report(db, &batch, sent, schedule).await {
        Ok(Reported::Disabled(reason)) => {
            tracing::warn!(webhook = id, url = %shown_url(&batch.target.url), %reason, "webhook endpoint disabled");
            true
        }
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(webhook = id, error = %e, "cannot record webhook deliveries");
            false
        }
    }
}
