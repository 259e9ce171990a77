//! `/api/v1`: what the organisation's apps read, with an app API key as
//! `Authorization: Bearer <key>` (a SCIM token never works here, and a key never works on
//! `/scim`). Lists page with opaque cursors in `{"object":"list","data":[…],
//! "list_metadata":{"before","after","events_cursor"}}`; the events feed pages by `seq`,
//! long-polls with `wait`, and streams with `Accept: text/event-stream`. Errors are
//! `{"code","message"}` with the matching status.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, RequestBody, State, is_get, read_only};
use crate::db::events::EventType;
use crate::db::members::ListFilter;
use crate::db::paging::Cursor;
use crate::db::{DbError, tenants};
use crate::ops::apikeys;
use crate::ops::apps::{self, ListPage};
use crate::ops::events::{self as feed, FeedError};
use crate::scim::datetime;

/// Where the API is mounted.
pub(super) const PREFIX: &str = "/api/v1";
/// Items per page unless `limit` says otherwise, and the most a page holds.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;
/// How often an idle event stream sends a comment, so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Whether `path` is below the API's mount point.
pub(super) fn serves(path: &str) -> bool {
    path == PREFIX || path.starts_with("/api/v1/")
}

/// An error answer: `{"code", "message"}`.
#[derive(Debug)]
pub(super) struct ApiFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `Retry-After` seconds of a 429.
    retry_after: Option<u64>,
}

impl ApiFailure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn not_found(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn response(self) -> Response<Body> {
        let r = super::challenged(json_response(
            self.status,
            &json!({"code": self.code, "message": self.message}),
        ));
        match self.retry_after {
            Some(seconds) => super::throttled(r, seconds),
            None => r,
        }
    }

    /// 429: the client's address made too many failed authentications.
    fn throttled(seconds: u64) -> ApiFailure {
        ApiFailure {
            retry_after: Some(seconds),
            ..ApiFailure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                super::THROTTLED,
            )
        }
    }
}

impl From<DbError> for ApiFailure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiFailure::not_found("not found"),
            other if other.unavailable() => {
                tracing::error!(cause = %other, "storage unavailable");
                ApiFailure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    super::STORAGE_UNAVAILABLE,
                )
            }
            other => {
                tracing::error!(cause = %other, "API request failed");
                ApiFailure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                )
            }
        }
    }
}

impl From<FeedError> for ApiFailure {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Expired { .. } => {
                ApiFailure::new(StatusCode::GONE, "cursor_expired", e.to_string())
            }
            FeedError::Ahead { .. } => {
                ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_cursor", e.to_string())
            }
            FeedError::Db(e) => e.into(),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    text_response(status, body.to_string())
}

/// A page of records, serialized on the blocking pool ([`super::serialized`]).
async fn page_response(body: Value) -> Result<Response<Body>, ApiFailure> {
    let text = super::serialized(body).await?;
    Ok(text_response(StatusCode::OK, text))
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) async fn handle(
    state: &State,
    req: Request<RequestBody>,
    peer: Option<std::net::IpAddr>,
) -> Response<Body> {
    match route(state, req, peer).await {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

/// The query parameters, by name (the last of a repeated one wins).
struct Query(Vec<(String, String)>);

impl Query {
    /// The query's parameters; a parameter given twice with different values is refused
    /// rather than one of them silently winning (`?status=active&status=suspended` would
    /// otherwise read as one status).
    fn of(req: &Request<RequestBody>) -> Result<Query, ApiFailure> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut seen = std::collections::HashMap::with_capacity(pairs.len());
        for (name, value) in &pairs {
            if seen.insert(name, value).is_some_and(|v| v != value) {
                return Err(ApiFailure::bad(format!(
                    "{name} is given more than once; give it once"
                )));
            }
        }
        Ok(Query(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiFailure> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiFailure::bad(format!("{name} must be a whole number")))
            })
            .transpose()
    }

    fn limit(&self) -> Result<usize, ApiFailure> {
        match self.number::<usize>("limit")? {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiFailure::bad(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            ))),
        }
    }

    /// The page cursor of `after` / `before` for a list of `kind`.
    fn cursor(&self, kind: &str) -> Result<Cursor, ApiFailure> {
        let decode = |v: &str| decode_cursor(kind, v);
        match (self.get("after"), self.get("before")) {
            (Some(_), Some(_)) => Err(ApiFailure::bad("give after or before, not both")),
            (Some(a), None) => Ok(Cursor::After(decode(a)?)),
            (None, Some(b)) => Ok(Cursor::Before(decode(b)?)),
            (None, None) => Ok(Cursor::First),
        }
    }
}

/// An opaque page cursor: the list it belongs to and a row key.
fn encode_cursor(kind: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{key}"))
}

fn decode_cursor(kind: &str, cursor: &str) -> Result<i64, ApiFailure> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix(kind)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|k| k.parse().ok())
        })
        .ok_or_else(|| {
            ApiFailure::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                format!("{cursor:?} is not a cursor of this list"),
            )
        })
}

async fn list_response(kind: &str, page: ListPage) -> Result<Response<Body>, ApiFailure> {
    let cursor = |k: Option<i64>| k.map(|k| encode_cursor(kind, k));
    page_response(json!({
        "object": "list",
        "data": page.data,
        "list_metadata": {
            "before": cursor(page.before),
            "after": cursor(page.after),
            "events_cursor": page.events_cursor,
        },
    }))
    .await
}

/// Who reads: the tenant, and the key it reads with (checked again while an event stream
/// or a long poll runs, so a revoked key stops reading at once).
#[derive(Debug, Clone, Copy)]
struct Reader {
    tenant: i64,
    key_id: i64,
}

/// The tenant a key reads: its own, or for a key of every tenant the one `tenant` names.
/// Throttled per client address like SCIM's tokens (`ops::throttle::Floods`).
async fn authenticate(
    state: &State,
    headers: &HeaderMap,
    q: &Query,
    peer: Option<std::net::IpAddr>,
) -> Result<Reader, ApiFailure> {
    let unauthorized = |m: &str| ApiFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    if super::repeated(headers, header::AUTHORIZATION) {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            super::AUTHORIZATION_REPEATED,
        ));
    }
    let key = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split_once(' '))
    {
        Some(Some((scheme, key))) if scheme.eq_ignore_ascii_case("bearer") => Ok(key.trim()),
        Some(_) => Err(unauthorized("use the Bearer scheme with an app API key")),
        None => Err(unauthorized(
            "send an app API key as Authorization: Bearer <key>",
        )),
    };
    let presented = key.as_ref().ok().copied();
    state
        .admit(peer, presented)
        .map_err(ApiFailure::throttled)?;
    let grant = match key {
        Ok(key) => apikeys::authenticate(&state.db, key)
            .await?
            .ok_or_else(|| unauthorized("invalid, expired or revoked API key")),
        Err(e) => Err(e),
    };
    state.authenticated(peer, presented, grant.is_ok());
    let grant = grant?;
    let named = match q.get("tenant") {
        Some(slug) => {
            let slug = slug.to_string();
            match state.db.read(move |c| tenants::by_slug(c, &slug)).await {
                Ok(t) => Some(t.id),
                Err(DbError::NotFound) => return Err(ApiFailure::not_found("no such tenant")),
                Err(e) => return Err(e.into()),
            }
        }
        None => None,
    };
    let tenant = match (grant.tenant_id, named) {
        (Some(own), Some(other)) if own != other => {
            return Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this key reads one tenant, not the one the tenant parameter names",
            ));
        }
        (Some(own), _) => own,
        (None, Some(id)) => id,
        (None, None) => {
            return Err(ApiFailure::bad(
                "this key reads every tenant: name one with the tenant parameter",
            ));
        }
    };
    Ok(Reader {
        tenant,
        key_id: grant.key_id,
    })
}

/// What a long poll or a stream whose key was revoked or expired under it ends with.
const KEY_WITHDRAWN: &str = "the API key was revoked or expired";

async fn route(
    state: &State,
    req: Request<RequestBody>,
    peer: Option<std::net::IpAddr>,
) -> Result<Response<Body>, ApiFailure> {
    let path = req.uri().path().to_string();
    let rest = path[PREFIX.len()..].trim_matches('/').to_string();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if !is_get(req.method()) {
        let r = ApiFailure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the API is read-only: use GET",
        );
        return Ok(read_only(r.response()));
    }
    if segments == ["openapi.json"] {
        return Ok(json_response(StatusCode::OK, &super::openapi::document()));
    }
    let q = Query::of(&req)?;
    let reader = authenticate(state, req.headers(), &q, peer).await?;
    let tenant = reader.tenant;
    super::note_tenant(tenant);
    let db = &state.db;
    match segments.as_slice() {
        ["members"] => {
            let filter = member_filter(&q)?;
            let page = apps::members(db, tenant, filter, q.cursor("member")?, q.limit()?).await?;
            list_response("member", page).await
        }
        ["members", id] => match apps::member(db, tenant, id.to_string()).await? {
            Some(m) => Ok(json_response(StatusCode::OK, &m)),
            None => Err(ApiFailure::not_found(format!("no member {id}"))),
        },
        ["groups"] => {
            let page = apps::groups(db, tenant, q.cursor("group")?, q.limit()?).await?;
            list_response("group", page).await
        }
        ["groups", id] => match apps::group(db, tenant, id.to_string()).await? {
            Some(g) => Ok(json_response(StatusCode::OK, &g)),
            None => Err(ApiFailure::not_found(format!("no group {id}"))),
        },
        ["groups", id, "members"] => {
            let (cursor, limit) = (q.cursor("group_member")?, q.limit()?);
            match apps::group_members(db, tenant, id.to_string(), cursor, limit).await? {
                Some(page) => list_response("group_member", page).await,
                None => Err(ApiFailure::not_found(format!("no group {id}"))),
            }
        }
        ["roles"] => Ok(json_response(
            StatusCode::OK,
            &apps::roles(db, tenant).await?,
        )),
        ["events"] => events(state, req.headers(), &q, reader).await,
        _ => Err(ApiFailure::not_found(format!("no API endpoint at {path}"))),
    }
}

/// The parsed query parameter `name`, if given.
fn parsed<T: std::str::FromStr>(q: &Query, name: &str) -> Result<Option<T>, ApiFailure>
where
    T::Err: std::fmt::Display,
{
    q.get(name)
        .map(|v| {
            v.parse()
                .map_err(|e| ApiFailure::bad(format!("{name}: {e}")))
        })
        .transpose()
}

fn member_filter(q: &Query) -> Result<ListFilter, ApiFailure> {
    let updated_since = q
        .get("updated_since")
        .map(|v| {
            datetime::canonical(v)
                .ok_or_else(|| ApiFailure::bad("updated_since must be an RFC 3339 date-time"))
        })
        .transpose()?;
    Ok(ListFilter {
        status: parsed(q, "status")?,
        role: parsed(q, "role")?,
        email: q.get("email").map(str::to_string),
        group: q.get("group").map(str::to_string),
        updated_since,
        ..ListFilter::default()
    })
}

/// `GET /api/v1/events`: the tenant's events after `Last-Event-ID` (what a reconnecting
/// stream sends, to the same URL) or else `after`, oldest first; `wait` long-polls;
/// `Accept: text/event-stream` streams.
async fn events(
    state: &State,
    headers: &HeaderMap,
    q: &Query,
    reader: Reader,
) -> Result<Response<Body>, ApiFailure> {
    let tenant = reader.tenant;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiFailure::bad("Last-Event-ID must be an event seq"))
        })
        .transpose()?;
    let after = match (last_event_id, q.number::<i64>("after")?) {
        (Some(seen), _) => seen,
        (None, Some(after)) => after,
        // No cursor claims nothing was missed: from the oldest event kept.
        (None, None) => feed::oldest_kept_after(&state.db, tenant).await?,
    };
    if after < 0 {
        return Err(ApiFailure::bad("after must not be negative"));
    }
    let limit = match q.number::<u32>("limit")? {
        None => 100,
        Some(n) if (1..=feed::MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(ApiFailure::bad(format!(
                "limit must be between 1 and {}",
                feed::MAX_PAGE
            )));
        }
    };
    let types = match q.get("types") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<EventType>()
                    .map_err(|e| ApiFailure::bad(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let wait = match q.number::<u64>("wait")? {
        None => Duration::ZERO,
        Some(s) if s <= feed::MAX_WAIT.as_secs() => Duration::from_secs(s),
        Some(_) => {
            return Err(ApiFailure::bad(format!(
                "wait is at most {} seconds",
                feed::MAX_WAIT.as_secs()
            )));
        }
    };
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_event_stream);
    if streaming {
        // Refuse an expired cursor with a plain error before the stream starts.
        feed::page(&state.db, tenant, after, 1, types.clone()).await?;
        return Ok(stream(state, reader, after, types));
    }
    // A shutdown answers a waiting poll with what there is, so it does not hold the drain.
    let waited = tokio::select! {
        page = feed::wait(&state.db, tenant, after, limit, types.clone(), wait) => page,
        () = state.closing() => feed::wait(&state.db, tenant, after, limit, types, Duration::ZERO).await,
    };
    // A key withdrawn while it waited (revoked, expired, its tenant deleted: whose events
    // are then gone, and the cursor with them) is told so before anything else.
    if !wait.is_zero() && !apikeys::in_force(&state.db, reader.key_id).await? {
        return Err(ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            KEY_WITHDRAWN,
        ));
    }
    let page = waited?;
    let latest = feed::latest(&state.db, tenant).await?;
    page_response(json!({
        "object": "list",
        "data": page.events.iter().map(feed::object).collect::<Vec<_>>(),
        "list_metadata": {
            "after": page.next_after,
            "events_cursor": latest,
        },
    }))
    .await
}

/// Whether an `Accept` header asks for `text/event-stream` (RFC 9110 §12.5.1): named as a
/// media range of its own, not refused with `q=0`. A wildcard (`*/*`) gets the JSON page.
fn accepts_event_stream(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("text/event-stream")
            && parts.all(|param| match param.split_once('=') {
                Some((name, q)) if name.trim().eq_ignore_ascii_case("q") => {
                    q.trim().parse::<f32>().map_or(true, |q| q > 0.0)
                }
                _ => true,
            })
    })
}

/// One Server-Sent Event (the WHATWG event-stream format): `id` is the `seq`, so a client
/// that reconnects sends it back as `Last-Event-ID`. Every line of the data gets its own
/// `data:` field. The data is JSON: the characters that some line readers take for line
/// ends though SSE does not (NEL, LINE and PARAGRAPH SEPARATOR: Python's `splitlines`,
/// which `requests.iter_lines(decode_unicode=True)` uses) go as `\u` escapes, which
/// read back as the same JSON.
fn sse_frame(seq: i64, kind: &str, data: &str) -> Bytes {
    let mut out = format!("id: {seq}\nevent: {kind}\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        for c in line.chars() {
            match c {
                '\u{85}' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Streams the tenant's events after `after` as they commit, until the client goes away,
/// its key is revoked or expires (checked before each page of events and keepalive), or
/// the server shuts down.
fn stream(state: &State, reader: Reader, mut after: i64, types: Vec<EventType>) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let db = state.db.clone();
    let tenant = reader.tenant;
    let closing = state.closing();
    tokio::spawn(async move {
        tokio::pin!(closing);
        loop {
            // A shutdown ends the stream (the client reconnects with `Last-Event-ID`).
            let waited = tokio::select! {
                waited = feed::wait(&db, tenant, after, 100, types.clone(), KEEPALIVE) => waited,
                () = &mut closing => return,
            };
            let page = match apikeys::in_force(&db, reader.key_id).await {
                Ok(false) => Err(("unauthorized", KEY_WITHDRAWN.to_string())),
                Ok(true) => waited.map_err(|e| ("stream_ended", e.to_string())),
                Err(e) => Err(("stream_ended", e.to_string())),
            };
            let page = match page {
                Ok(p) => p,
                Err((code, message)) => {
                    let message = json!({"code": code, "message": message});
                    let _ = tx
                        .send(sse_frame(after, "error", &message.to_string()))
                        .await;
                    return;
                }
            };
            if page.events.is_empty()
                && tx
                    .send(Bytes::from_static(b": keepalive\n\n"))
                    .await
                    .is_err()
            {
                return;
            }
            for e in &page.events {
                let frame = sse_frame(e.seq, e.kind.as_str(), &feed::object(e).to_string());
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
            after = page.next_after;
        }
    });
    let mut r = Response::new(Body::Stream(rx));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_opaque_and_belong_to_one_list() {
        let c = encode_cursor("member", 42);
        assert!(!c.contains("42"));
        assert_eq!(decode_cursor("member", &c).unwrap(), 42);
        assert!(decode_cursor("group", &c).is_err());
        assert!(decode_cursor("member", "nonsense!").is_err());
    }

    #[test]
    fn only_an_event_stream_asked_for_streams() {
        for yes in [
            "text/event-stream",
            "Text/Event-Stream; charset=utf-8",
            "application/json;q=0.9, text/event-stream",
            "text/event-stream;q=0.1",
        ] {
            assert!(accepts_event_stream(yes), "{yes}");
        }
        for no in [
            "application/json",
            "*/*",
            "text/*",
            "text/event-stream;q=0",
            "text/event-stream; q=0.000, application/json",
            "application/x-text/event-stream-ish",
        ] {
            assert!(!accepts_event_stream(no), "{no}");
        }
    }

    #[test]
    fn events_are_framed_one_data_line_per_line() {
        let f = sse_frame(7, "member.created", "{\"a\":1}\nsecond");
        assert_eq!(
            &f[..],
            b"id: 7\nevent: member.created\ndata: {\"a\":1}\ndata: second\n\n"
        );
        // Names an IdP sent with the separators Python's `splitlines` splits on: one line,
        // the same JSON.
        let object = json!({"display_name": "a\u{2028}b\u{2029}c\u{85}d"});
        let f = sse_frame(8, "member.updated", &object.to_string());
        let text = std::str::from_utf8(&f).unwrap();
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 3, "{text}");
        let data = text.lines().nth(2).unwrap().strip_prefix("data: ").unwrap();
        assert_eq!(serde_json::from_str::<Value>(data).unwrap(), object);
        assert_eq!(data.split(['\u{85}', '\u{2028}', '\u{2029}']).count(), 1);
    }
}
