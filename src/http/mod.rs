//! HTTP: the only module that knows hyper. Routing, request and response helpers, and the
//! one place where errors become SCIM Error bodies.

mod admin;
mod api;
mod assets;
pub mod metrics;
mod oauth;
mod openapi;
mod scim;
mod shares;
pub mod webhooks;
mod workos;
mod write_timeout;

// For `crate::fuzzing`: the admin forms' parsing, which is pure.
pub(crate) use admin::{Form, roles_of, settings_update_of};

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::sync::watch;

use crate::config::HttpConfig;
use crate::db::{Db, DbError};
use crate::ops::inspector::{Recorder, RecorderTask};
use crate::scim::ScimError;

/// A response body: whole (almost every answer), or a stream of chunks sent as they come
/// (the events feed's `text/event-stream`), or chunks whose producer may fail half way (a
/// huge group's members, read from the database as the client takes them), or a big
/// answer holding its room in the backlog of answers waiting for their readers.
#[derive(Debug)]
pub enum Body {
    Full(Bytes),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
    /// An `Err` ends the connection without the body's last chunk, so the client sees a
    /// broken answer, never a short one that parses. A big list page whose producer holds
    /// it in memory ([`AnswerSize`]) holds its room in the backlog until the body goes.
    Chunks(
        tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
        Option<shares::Hold>,
    ),
    /// What is left to send of a big answer, handed over a copied chunk at a time, so that
    /// its room ([`shares::Hold`]) is given back only once hyper holds no more than its
    /// write buffer of it, and the answer's memory goes with the body.
    Held(Bytes, shares::Hold),
}

/// The size of a streamed answer whose producer holds it all in memory (a SCIM list page
/// past `scim::STREAMED_LIST_BYTES`), set on the response's extensions: what it holds
/// against the backlog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerSize(pub usize);

/// The most of a [`Body::Held`] answer handed to hyper at once.
const HELD_CHUNK: usize = 64 * 1024;

impl Default for Body {
    fn default() -> Body {
        Body::Full(Bytes::new())
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::from(Bytes::from(b))
    }
}

impl From<String> for Body {
    fn from(b: String) -> Body {
        Body::from(Bytes::from(b))
    }
}

impl From<&'static str> for Body {
    fn from(b: &'static str) -> Body {
        Body::from(Bytes::from_static(b.as_bytes()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) if b.is_empty() => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(b))))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
            Body::Chunks(rx, _) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
            Body::Held(rest, _) if rest.is_empty() => Poll::Ready(None),
            Body::Held(rest, _) => {
                let n = rest.len().min(HELD_CHUNK);
                let chunk = Bytes::copy_from_slice(&rest[..n]);
                bytes::Buf::advance(rest, n);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) | Body::Held(b, _) => b.is_empty(),
            Body::Stream(_) | Body::Chunks(..) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) | Body::Held(b, _) => SizeHint::with_exact(b.len() as u64),
            Body::Stream(_) | Body::Chunks(..) => SizeHint::default(),
        }
    }
}

/// A request body that records when it has been read to the end.
pub(crate) struct RequestBody {
    inner: Incoming,
    /// Set once the last frame has been read (from the start for a request without a body).
    finished: Arc<AtomicBool>,
}

impl RequestBody {
    fn new(inner: Incoming) -> RequestBody {
        let finished = Arc::new(AtomicBool::new(inner.is_end_stream()));
        RequestBody { inner, finished }
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.finished.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The HTTP service: cheap to clone, one clone per connection.
#[derive(Clone)]
pub struct App {
    state: Arc<State>,
    /// Serves `/metrics` only (the `--metrics-listen` listener), answering 404 elsewhere.
    metrics_only: bool,
}

/// The longest `Host` taken: a DNS name (253), a colon and a port. Every `$ref` and
/// `location` of an answer repeats it, so a long one would multiply the answer's size.
const MAX_HOST: usize = 253 + 6;

/// Whether `host` is a `Host` header's value as RFC 9112 §3.2 allows it: a host and an
/// optional port (RFC 3986 authority without userinfo), at most [`MAX_HOST`] bytes.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST
        && !host.contains('@')
        && host.parse::<hyper::http::uri::Authority>().is_ok()
}

/// Whether a request's `Host` is one a server must refuse with 400 (RFC 9112 §3.2): more
/// than one, or one that is not a host and port. A missing one (HTTP/1.0) is taken.
fn bad_host(headers: &hyper::HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => false,
        (Some(h), None) => !h.to_str().is_ok_and(valid_host),
        (Some(_), Some(_)) => true,
    }
}

/// The public root URL of this server (`https://scim.example.com`): `--base-url` when set,
/// else the Host the client used, with https when scimd serves TLS itself or a proxy says
/// the client used it (`X-Forwarded-Proto`).
pub(crate) fn public_root(config: &HttpConfig, headers: &hyper::HeaderMap, tls: bool) -> String {
    if let Some(root) = &config.base_url {
        return root.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h))
        .unwrap_or("localhost");
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if tls || forwarded_https {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The client a request comes from: its connection's peer, or, when that peer is a
/// trusted proxy (`--trusted-proxy`), the last address in `X-Forwarded-For` that is not one.
/// Read from the right because each proxy appends the address it got the request from:
/// only what trusted proxies appended can be believed, and whatever a client wrote at the
/// start of the header itself is never reached. An entry that is not an address (`unknown`)
/// ends the walk at the last one that was.
pub(crate) fn client_address(
    trusted: &[ipnet::IpNet],
    peer: Option<IpAddr>,
    headers: &hyper::HeaderMap,
) -> Option<IpAddr> {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut client = peer?.to_canonical();
    if !is_trusted(&client) {
        return Some(client);
    }
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(client);
        };
        for entry in value.rsplit(',') {
            let entry = entry.trim();
            let address = entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()));
            let Ok(address) = address else {
                return Some(client);
            };
            client = address.to_canonical();
            if !is_trusted(&client) {
                return Some(client);
            }
        }
    }
    Some(client)
}

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// The connection's other end.
    pub peer: Option<SocketAddr>,
    /// Who sent the request ([`client_address`]): the peer until the request's headers
    /// are read.
    pub client: Option<IpAddr>,
    /// Served over TLS by scimd itself.
    pub tls: bool,
    /// Set once an answer leaves part of its request body unread; the connection then
    /// ends with [`close`]'s lingering close.
    unread: Arc<AtomicBool>,
}

/// How long a connection that was answered before its body arrived keeps reading (and
/// discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(3);

/// Ends a connection hyper is done with: its answer is written, so send FIN (after TLS's
/// close_notify). When the client was answered mid-body (`lingering`), keep reading and
/// discarding for up to [`LINGER`] before closing, as nginx's lingering close does:
/// closing a socket with unread input sends a reset, which on many stacks makes a client
/// still writing its body fail with "connection reset" and lose the 413 it was sent.
/// Draining lets its write finish, then it reads the answer and the end of the stream.
async fn close<S>(mut io: S, lingering: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = io.shutdown().await;
    if lingering {
        let mut sink = vec![0u8; 64 * 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = io.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// What every request handler may use.
struct State {
    db: Db,
    config: HttpConfig,
    /// The last SCIM request and the last SCIM error per tenant, for the dashboard. Kept in
    /// memory: it is a live view, and writing it to disk would cost a commit per request.
    activity: std::sync::Mutex<std::collections::HashMap<i64, Activity>>,
    /// Distinguishes requests in logs, error bodies, the inspector, the audit log and
    /// events; starts from the boot time in microseconds, so ids do not repeat across
    /// restarts (the server would have to answer a million requests a second since its
    /// start to reach the next boot's first id).
    next_request_id: AtomicU64,
    /// CSV files uploaded for import, kept between the preview and the admin's confirmation.
    pending_imports: admin::PendingImports,
    /// The marks of the admin forms that made a secret ([`admin::SentForms`]).
    sent_forms: admin::SentForms,
    /// Where SCIM requests go for the request inspector (never blocks, may drop).
    recorder: Recorder,
    /// The recorder's writer, until [`App::recording`] takes it to stop it at shutdown.
    recording: std::sync::Mutex<Option<RecorderTask>>,
    /// One permit per request being answered ([`HttpConfig::max_requests`]).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The share of those permits each client address may hold.
    requests: shares::Shares,
    /// The share of the open connections each client address may hold.
    connections: shares::Shares,
    /// The memory big answers hold until their clients take them.
    backlog: shares::Backlog,
    /// What `/metrics` reports; the webhook sender records into it too.
    metrics: metrics::Metrics,
    /// Where the next `startIndex` page of each directory walk starts.
    resumes: Arc<crate::ops::lists::Resumes>,
    /// Each tenant's last whole-tenant sync plan, for the test mode & sync page.
    plans: crate::ops::reconcile::Plans,
    /// Failed authentications per client address (`ops::throttle::Floods`).
    floods: crate::ops::throttle::Floods,
    /// Set once the server begins to shut down ([`App::close_streams`]): event streams
    /// and long polls end then, instead of holding the drain to its timeout.
    closing: watch::Sender<bool>,
}

impl State {
    /// Completes once the server begins to shut down.
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|&closing| closing).await;
        }
    }

    /// Whether a request from `peer` presenting `secret` may try to authenticate:
    /// `Err(seconds)` while the address is throttled for failed authentications and
    /// `secret` has not worked from it.
    fn admit(&self, peer: Option<std::net::IpAddr>, secret: Option<&str>) -> Result<(), u64> {
        let Some(address) = peer else { return Ok(()) };
        let credential = secret.map(crate::auth::tokens::hash);
        self.floods
            .admit(address, credential.as_ref(), std::time::Instant::now())
    }

    /// Counts how an admitted authentication from `peer` went.
    fn authenticated(&self, peer: Option<std::net::IpAddr>, secret: Option<&str>, ok: bool) {
        let Some(address) = peer else { return };
        let now = std::time::Instant::now();
        match secret {
            Some(secret) if ok => {
                self.floods
                    .succeeded(address, &crate::auth::tokens::hash(secret), now)
            }
            _ => self.floods.failed(address, now),
        }
    }
}

/// `response` holding its room in `backlog` if it is big ([`shares::BIG_ANSWER`]), or
/// `Err` with its size when there is no room: the answer is let go (its memory with it),
/// and the client told to come back.
fn held(
    response: Response<Body>,
    backlog: &shares::Backlog,
    client: Option<IpAddr>,
) -> Result<Response<Body>, usize> {
    let (parts, body) = response.into_parts();
    let streamed = parts.extensions.get::<AnswerSize>().map(|s| s.0);
    let body = match body {
        Body::Full(b) if b.len() > shares::BIG_ANSWER => {
            let size = b.len();
            Body::Held(b, backlog.hold(client, size).ok_or(size)?)
        }
        Body::Chunks(rx, None) if streamed.is_some_and(|n| n > shares::BIG_ANSWER) => {
            let size = streamed.unwrap_or_default();
            Body::Chunks(rx, Some(backlog.hold(client, size).ok_or(size)?))
        }
        other => other,
    };
    Ok(Response::from_parts(parts, body))
}

/// The answer past a cap on requests in flight: 503, retry in a second, and close the
/// connection.
fn busy(detail: &str) -> Response<Body> {
    let mut r = error_response(&ScimError::new(503, None, detail));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The answer to a throttled address: 429 with `Retry-After` (RFC 6585 §4).
pub(crate) fn throttled(mut r: Response<Body>, seconds: u64) -> Response<Body> {
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// What a throttled address is told.
pub(crate) const THROTTLED: &str =
    "too many failed authentications from this address; retry after the Retry-After seconds";

impl App {
    /// The service over `db`. Starts the request inspector's writer on the current tokio
    /// runtime: call it from within one.
    pub fn new(db: Db, config: HttpConfig) -> App {
        let (recorder, recording) = Recorder::spawn(db.clone(), config.inspector);
        let plans = crate::ops::reconcile::Plans::default();
        plans.keep_current(db.clone());
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(0);
        App {
            state: Arc::new(State {
                db,
                activity: Default::default(),
                next_request_id: AtomicU64::new(boot),
                pending_imports: Default::default(),
                sent_forms: Default::default(),
                recorder,
                recording: std::sync::Mutex::new(Some(recording)),
                in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_requests.max(1))),
                requests: shares::Shares::new(shares::share_of(config.max_requests)),
                connections: shares::Shares::new(shares::share_of(config.max_connections)),
                backlog: shares::Backlog::new(config.answer_backlog),
                floods: crate::ops::throttle::Floods::new(config.auth_failure_burst),
                config,
                metrics: metrics::Metrics::new(),
                resumes: Default::default(),
                plans,
                closing: watch::Sender::new(false),
            }),
            metrics_only: false,
        }
    }

    /// The metrics this app records, to share with the webhook sender.
    pub fn metrics(&self) -> metrics::Metrics {
        self.state.metrics.clone()
    }

    /// The same server, answering only `GET /metrics`: what `--metrics-listen` serves.
    pub fn metrics_only(&self) -> App {
        App {
            state: self.state.clone(),
            metrics_only: true,
        }
    }

    /// How many connections the accept loop may keep open.
    pub fn max_connections(&self) -> usize {
        self.state.config.max_connections.max(1)
    }

    /// The server begins to shut down: event streams end and long polls answer now, so
    /// the connections they hold can drain.
    pub fn close_streams(&self) {
        self.state.closing.send_replace(true);
    }

    /// A connection of `peer`'s share, held until dropped; `None` when the address has as
    /// many connections open as it may.
    pub(crate) fn connection_share(&self, peer: SocketAddr) -> Option<shares::Held> {
        self.state.connections.take(peer.ip())
    }

    /// The request inspector's writer, once: stop it after the server has drained so the
    /// last requests are written.
    pub fn recording(&self) -> Option<RecorderTask> {
        self.state
            .recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Serves one HTTP/1.1 connection until it closes or `stop` fires, finishing the
    /// request in flight before closing on shutdown.
    pub async fn serve_connection<S>(
        self,
        stream: S,
        peer: Option<SocketAddr>,
        tls: bool,
        mut stop: watch::Receiver<()>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // Set when an answer went out before its request body was read to the end (a body
        // too large, a refused request): the connection then ends with a lingering close.
        let unread = Arc::new(AtomicBool::new(false));
        let write_limit = self.state.config.write_timeout;
        let conn = Conn {
            peer,
            client: peer.map(|p| p.ip()),
            tls,
            unread: unread.clone(),
        };
        let service = hyper::service::service_fn(move |req| {
            let app = self.clone();
            let conn = conn.clone();
            // Boxed: taking the socket back from hyper needs an `Unpin` future.
            Box::pin(async move { Ok::<_, Infallible>(app.handle(req, conn).await) })
        });
        let mut conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(
                TokioIo::new(write_timeout::WriteTimeout::new(stream, write_limit)),
                service,
            );
        // Polled without hyper's own shutdown, so the socket comes back for `close`.
        let ended = tokio::select! {
            res = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => res,
            _ = stop.changed() => {
                Pin::new(&mut conn).graceful_shutdown();
                std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
            }
        };
        match ended {
            Ok(()) => {
                close(
                    conn.into_parts().io.into_inner(),
                    unread.load(Ordering::Relaxed),
                )
                .await
            }
            Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
        }
    }

    async fn handle(self, req: Request<Incoming>, mut conn: Conn) -> Response<Body> {
        let id = format!(
            "{:x}",
            self.state.next_request_id.fetch_add(1, Ordering::Relaxed)
        );
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if bad_host(req.headers()) {
            return text(
                StatusCode::BAD_REQUEST,
                "the Host header must be one host and optional port (RFC 9112 §3.2)\n",
            );
        }
        let (parts, body) = req.into_parts();
        conn.client = client_address(
            &self.state.config.trusted_proxies,
            conn.peer.map(|p| p.ip()),
            &parts.headers,
        );
        let body = RequestBody::new(body);
        let finished = body.finished.clone();
        let started = std::time::Instant::now();
        let route = Route::of(&path).as_str();
        // Past the caps, an answer that costs nothing. Health checks and metrics always get
        // through: an overload is when they are wanted most.
        let watching = matches!(route, "health" | "metrics");
        let _share = match conn.client {
            Some(client) if !watching => match self.state.requests.take(client) {
                Some(held) => Some(held),
                None => {
                    tracing::warn!(request_id = %id, route, %client, "too many requests in flight from one address");
                    return busy(
                        "this address has as many requests in flight as it may; retry shortly",
                    );
                }
            },
            _ => None,
        };
        let _permit = match self.state.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if watching => None,
            Err(_) => {
                tracing::warn!(request_id = %id, route, "too many requests in flight");
                return busy("the server is answering as many requests as it may; retry shortly");
            }
        };
        let metrics = self.state.metrics.clone();
        let state = self.state.clone();
        let (mut response, tenant) = LOG_TENANT
            .scope(std::cell::Cell::new(None), async {
                let response = self
                    .route(Request::from_parts(parts, body), &id, conn.clone())
                    .await;
                (response, LOG_TENANT.with(std::cell::Cell::get))
            })
            .await;
        if matches!(route, "scim" | "api" | "workos") {
            response = match held(response, &state.backlog, conn.client) {
                Ok(r) => r,
                Err(size) => {
                    tracing::warn!(request_id = %id, route, size, "too many big answers wait for their readers");
                    busy(
                        "the server holds as many big answers for their readers as it may; retry shortly",
                    )
                }
            };
        }
        if !finished.load(Ordering::Relaxed) {
            // The request was answered without reading all of its body (refused for a bad
            // token, an unknown endpoint, a body too large or too slow…): hyper closes the
            // connection rather than read the rest, and this tells the client so, lest it
            // send its next request down a closed connection (RFC 9112 §9.6).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            conn.unread.store(true, Ordering::Relaxed);
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", v);
        }
        // An error's detail may echo what the client sent: no browser is to read a JSON
        // answer as a page.
        response
            .headers_mut()
            .entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        metrics.request(route, response.status().as_u16(), started.elapsed());
        // The path only: queries can carry codes and tokens (OAuth), bodies passwords.
        tracing::info!(
            request_id = %id,
            route,
            tenant,
            %method,
            path = %path,
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }

    async fn route(
        self,
        req: Request<RequestBody>,
        request_id: &str,
        conn: Conn,
    ) -> Response<Body> {
        let path = req.uri().path();
        let route = Route::of(path);
        if self.metrics_only && route != Route::Metrics {
            return text(
                StatusCode::NOT_FOUND,
                "not found: this listener serves /metrics only\n",
            );
        }
        match route {
            Route::Health if !is_get(req.method()) => {
                read_only(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"))
            }
            Route::Health => self.healthz().await,
            Route::Metrics => self.metrics_page(req.method()).await,
            Route::Scim(prefix) => {
                scim::handle(&self.state, req, prefix, request_id, conn.tls, conn.client).await
            }
            Route::OAuth => oauth::handle(&self.state, req, request_id, &conn).await,
            Route::Api => api::handle(&self.state, req, conn.client).await,
            Route::Workos => workos::handle(&self.state, req, conn.client).await,
            Route::Static => {
                let file = path
                    .strip_prefix("/static/")
                    .unwrap_or_default()
                    .to_string();
                assets::serve(&file, req.headers())
            }
            Route::Admin => admin::handle(&self.state, req, request_id, conn).await,
        }
    }

    /// `GET /metrics`, where this listener serves it: off the SCIM token, like `/healthz`
    /// (restrict it with `--metrics-listen` or the proxy).
    async fn metrics_page(&self, method: &Method) -> Response<Body> {
        if !self.metrics_only && !self.state.config.metrics_on_main {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if !is_get(method) {
            return read_only(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
        }
        match self.state.metrics.render(&self.state.db).await {
            Ok(body) => {
                let mut r = Response::new(Body::from(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "reading metrics failed");
                text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
            }
        }
    }

    /// `GET /healthz`: 200 while the database answers a read and its writes are stored;
    /// 503 with a one-line reason otherwise, so a supervisor or a load balancer notices a
    /// full disk, which fails every write while reads go on.
    async fn healthz(&self) -> Response<Body> {
        if let Err(e) = self.state.db.read(crate::db::ping).await {
            tracing::error!(error = %e, "health check failed");
            return text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
        }
        if self.state.metrics.damaged() {
            // A damaged database still answers most reads: only this says so to a
            // supervisor, where the log line is easily missed for weeks.
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "database damaged: run `scimd check`, and restore a backup if it confirms\n",
            );
        }
        match self.state.db.write_health() {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            // Logged once by the db layer when writes began to fail, not at every check.
            Err(failing) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database not writable: {failing}\n"),
            ),
        }
    }
}

/// Which part of the server answers a path: the request log's route class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    /// `/metrics`, the Prometheus scrape.
    Metrics,
    /// SCIM under its mount point (`/scim/v2` or `/scim`).
    Scim(&'static str),
    OAuth,
    Api,
    Workos,
    Static,
    Admin,
}

impl Route {
    fn of(path: &str) -> Route {
        let under = |p: &str| path == p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'));
        if path == "/healthz" {
            Route::Health
        } else if path == "/metrics" {
            Route::Metrics
        } else if under("/scim/v2") {
            Route::Scim("/scim/v2")
        } else if under("/scim") {
            Route::Scim("/scim")
        } else if oauth::serves(path) {
            Route::OAuth
        } else if api::serves(path) {
            Route::Api
        } else if workos::serves(path) {
            Route::Workos
        } else if path.starts_with("/static/") {
            Route::Static
        } else {
            Route::Admin
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Scim(_) => "scim",
            Route::OAuth => "oauth",
            Route::Api => "api",
            Route::Workos => "workos",
            Route::Static => "static",
            Route::Admin => "admin",
        }
    }
}

tokio::task_local! {
    /// The tenant a request turned out to be about, for its log line.
    static LOG_TENANT: std::cell::Cell<Option<i64>>;
}

/// Notes the tenant the current request is about (once its credentials or path say so).
pub(crate) fn note_tenant(tenant_id: i64) {
    let _ = LOG_TENANT.try_with(|t| t.set(Some(tenant_id)));
}

/// One SCIM request as the dashboard shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    /// The request id: the request inspector's entry.
    pub request_id: String,
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub user_agent: String,
    /// The SCIM Error detail, for failures.
    pub detail: Option<String>,
}

/// Recent SCIM traffic of one tenant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity {
    pub last: Option<Call>,
    pub last_error: Option<Call>,
    /// Requests since this process started.
    pub requests: u64,
}

impl State {
    fn record(&self, tenant_id: i64, call: Call) {
        let mut all = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        let a = all.entry(tenant_id).or_default();
        a.requests += 1;
        if call.status >= 400 {
            a.last_error = Some(call.clone());
        }
        a.last = Some(call);
    }

    fn activity(&self, tenant_id: i64) -> Activity {
        let all = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&tenant_id).cloned().unwrap_or_default()
    }
}

/// A failure while handling a request: a protocol error for the client, or an internal
/// one that is logged and answered with a bare 500.
#[derive(Debug)]
pub(crate) enum ApiError {
    Scim(ScimError),
    /// A bearer token was presented and is unknown, expired or revoked: a 401 whose
    /// challenge says `error="invalid_token"` (RFC 6750 §3.1), which tells an OAuth client
    /// to refresh its access token rather than give up.
    InvalidToken,
    /// The storage cannot take writes now (disk full, read-only): 503 with `Retry-After`;
    /// nothing of the request was written.
    Unavailable(String),
    /// The client's address made too many failed authentications: 429 with `Retry-After`.
    Throttled(u64),
    Internal(String),
}

/// What a request carrying more than one `Authorization` header is told (a single-value
/// field, RFC 9110 §11.6.2): which credential a server would take is a guess, and the
/// wrong guess reads another tenant's directory.
pub(crate) const AUTHORIZATION_REPEATED: &str =
    "Authorization is given more than once: send one credential";

/// Whether header `name` is given more than once.
pub(crate) fn repeated(headers: &hyper::HeaderMap, name: header::HeaderName) -> bool {
    headers.get_all(name).iter().nth(1).is_some()
}

/// `body` as JSON text, written on the blocking pool: a page of big records (the apps' and
/// WorkOS's lists) takes long enough to serialize to stall every request sharing the async
/// worker that would otherwise write it.
pub(crate) async fn serialized(body: serde_json::Value) -> Result<String, DbError> {
    tokio::task::spawn_blocking(move || body.to_string())
        .await
        .map_err(|e| DbError::Task(e.to_string()))
}

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError::Scim(e)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::Scim(ScimError::not_found("resource not found")),
            DbError::Conflict(detail) => ApiError::Scim(ScimError::uniqueness(detail)),
            // What the write's next request is told: its token went with the tenant.
            DbError::TenantDeleted => ApiError::InvalidToken,
            other if other.unavailable() => ApiError::Unavailable(other.to_string()),
            other if other.too_costly() => ApiError::Scim(ScimError::bad_request(
                crate::scim::ScimType::TooMany,
                format!(
                    "the request asks more than one answer may compute ({} s): narrow the filter, \
                     or use one an index answers (userName, externalId, emails.value, id eq)",
                    crate::db::LIST_BUDGET.as_secs()
                ),
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::ops::Error> for ApiError {
    fn from(e: crate::ops::Error) -> Self {
        match e {
            crate::ops::Error::Scim(e) => e.into(),
            crate::ops::Error::Db(e) => e.into(),
        }
    }
}

impl ApiError {
    fn into_response(self) -> Response<Body> {
        match self {
            ApiError::Scim(e) => error_response(&e),
            ApiError::InvalidToken => {
                let mut r = error_response(&ScimError::new(401, None, INVALID_TOKEN));
                let challenge = format!(
                    "Bearer realm=\"scimd\", error=\"invalid_token\", error_description=\"{INVALID_TOKEN}\""
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).expect("the challenge is visible ASCII"),
                );
                r
            }
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "storage unavailable");
                unavailable(error_response(&ScimError::new(
                    503,
                    None,
                    STORAGE_UNAVAILABLE,
                )))
            }
            ApiError::Throttled(seconds) => throttled(
                error_response(&ScimError::new(429, None, THROTTLED)),
                seconds,
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                error_response(&ScimError::new(500, None, "internal error"))
            }
        }
    }
}

/// What a request is told while the server cannot take it: no read connection or long-read
/// turn free in time, or storage that cannot take writes (full, read-only).
pub(crate) const STORAGE_UNAVAILABLE: &str = "the server cannot take this request now (busy, or its storage full or read-only); nothing was changed, retry later";

/// `r` with the `Retry-After` of a storage outage.
pub(crate) fn unavailable(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    r
}

/// The detail of [`ApiError::InvalidToken`].
pub(crate) const INVALID_TOKEN: &str = "invalid, expired or revoked token";

pub(crate) const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM JSON response.
pub(crate) fn scim_json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    r
}

/// The challenge of a 401 on an endpoint that takes a bearer credential (RFC 9110 §11.6.1).
const BEARER_CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer realm=\"scimd\"");

/// `r` with [`BEARER_CHALLENGE`] when it is a 401.
pub(crate) fn challenged(mut r: Response<Body>) -> Response<Body> {
    if r.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, BEARER_CHALLENGE);
    }
    r
}

/// The SCIM Error response for `e`.
pub(crate) fn error_response(e: &ScimError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    challenged(scim_json(status, &e.to_json()))
}

fn text(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Reads a request body of at most `limit` bytes: 413 beyond it, 408 if it has not all
/// arrived within `timeout`.
pub(crate) async fn read_body(
    body: RequestBody,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ScimError> {
    let too_large = || {
        ScimError::new(
            413,
            None,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await else {
        return Err(body_timed_out(timeout));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ScimError::invalid_syntax(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// The 408 of a body that did not arrive within `timeout`.
pub(crate) fn body_timed_out(timeout: Duration) -> ScimError {
    ScimError::new(
        408,
        None,
        format!("the request body did not arrive within {timeout:?}"),
    )
}

/// The declared `Content-Length`, if any.
pub(crate) fn content_length(req: &Request<RequestBody>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Parses a JSON request body; malformed JSON is `400 invalidSyntax` with the position.
/// A UTF-8 byte order mark before it is skipped, as .NET's and PowerShell's writers may
/// put one (RFC 8259 §8.1 lets a parser ignore it).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ScimError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax(
            "the request body is empty; a JSON object is required",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error_response(&ScimError::new(
        405,
        None,
        format!("method not allowed; allowed: {allow}"),
    ));
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

pub(crate) fn is_get(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// `r`, a 405 of a read-only route, with the `Allow` header RFC 9110 asks of a 405.
pub(crate) fn read_only(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(chain: &[&str]) -> hyper::HeaderMap {
        let mut headers = hyper::HeaderMap::new();
        for value in chain {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_last_address_no_trusted_proxy_added() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let client = |peer: &str, chain: &[&str]| {
            client_address(&trusted, Some(peer.parse().unwrap()), &forwarded(chain))
                .map(|a| a.to_string())
        };
        let some = |a: &str| Some(a.to_string());
        // Not a trusted proxy: the header is the client's own word, and ignored.
        assert_eq!(
            client("203.0.113.1", &["198.51.100.1"]),
            some("203.0.113.1")
        );
        // A trusted proxy: the address it appended, whatever the client wrote before it.
        assert_eq!(client("10.0.0.2", &["198.51.100.1"]), some("198.51.100.1"));
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4, 198.51.100.1"]),
            some("198.51.100.1")
        );
        // Through two proxies, each appending; header lines read as one list.
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4", "198.51.100.1, 10.9.9.9"]),
            some("198.51.100.1")
        );
        // Ports, brackets, IPv6, IPv4-mapped peers.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1:5555"]),
            some("198.51.100.1")
        );
        assert_eq!(
            client("2001:db8::1", &["[2001:db9::5]:443"]),
            some("2001:db9::5")
        );
        assert_eq!(
            client("::ffff:10.0.0.2", &["198.51.100.1"]),
            some("198.51.100.1")
        );
        // No header, or nothing believable in it: the nearest address known.
        assert_eq!(client("10.0.0.2", &[]), some("10.0.0.2"));
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, unknown"]),
            some("10.0.0.2")
        );
        assert_eq!(
            client("10.0.0.2", &["unknown, 198.51.100.1"]),
            some("198.51.100.1")
        );
        // Every entry a trusted proxy: the first of them.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.3, 10.0.0.4"]),
            some("10.0.0.3")
        );
        assert_eq!(
            client_address(&trusted, None, &forwarded(&["1.2.3.4"])),
            None
        );
    }
}
