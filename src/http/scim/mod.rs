//! The SCIM endpoints (RFC 7644 §3), mounted at `/scim/v2` and `/scim`.
//!
//! Each handler parses the request into `scim` types, runs its storage work in one
//! `db` call (one transaction for writes) and renders the answer. Discovery is public;
//! everything else needs a bearer token, and the token alone decides the tenant.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;

use super::{
    ApiError, Body, Call, RequestBody, State, error_response, is_get, method_not_allowed, scim_json,
};
use crate::auth::tokens::TOKEN_PREFIX;
use crate::db::{ListQuery, filter_sql};
use crate::model::Actor;
use crate::ops::inspector::{self, Capture};
use crate::ops::resource::{self as writes, Write};
use crate::ops::tokens::{self, Grant};
use crate::scim::list::{self, ListParams};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Precondition, Preconditions};
use crate::scim::schema::{ALL_RESOURCE_TYPES, GROUP_RESOURCE, ResourceType, USER_RESOURCE};
use crate::scim::{ScimError, datetime, discovery, patch};

mod groups;
mod users;

/// Who is calling, and how to spell URLs back to them.
struct Ctx {
    tenant_id: i64,
    /// The SCIM base URL as the client reached it, e.g. `https://host/scim/v2`.
    base: String,
    /// The caller as the sync hooks, audit log and events record it.
    actor: Actor,
}

pub(in crate::http) async fn handle(
    state: &State,
    mut req: Request<RequestBody>,
    prefix: &str,
    request_id: &str,
    tls: bool,
    peer: Option<std::net::IpAddr>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let at = datetime::now();
    let seen = BodySeen::default();
    req.extensions_mut().insert(seen.clone());
    let method = req.method().to_string();
    let path_and_query = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let user_agent = user_agent(req.headers());
    let mut caller = None;
    let response = match dispatch(state, req, prefix, request_id, (tls, peer), &mut caller).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    // Discovery and refused credentials name no tenant: nothing to record them under.
    let Some((tenant_id, actor)) = caller.filter(|_| state.recorder.enabled()) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let request_id = request_id.to_string();
    let capture = move |kept: Bytes, status: u16| Capture {
        tenant_id,
        request_id,
        at,
        method,
        path_and_query,
        status,
        duration: started.elapsed(),
        actor,
        user_agent,
        request_body: seen.take(),
        response_body: Some(kept).filter(|b| !b.is_empty()),
    };
    let bytes = match body {
        Body::Full(bytes) => bytes,
        Body::Chunks(chunks, held) => {
            // A streamed answer (a huge group) is recorded when it has been sent, with its
            // start kept as a whole answer's would be.
            let status = parts.status.as_u16();
            let recorder = state.recorder.clone();
            let limit = inspector::answer_limit(status) + 1;
            let teed = tee(chunks, limit, move |kept| {
                recorder.record(capture(kept, status))
            });
            return Response::from_parts(parts, Body::Chunks(teed, held));
        }
        other @ (Body::Stream(_) | Body::Held(..)) => return Response::from_parts(parts, other),
    };
    // Only the start of a long answer is kept (a byte past the limit says it was cut);
    // copying it lets the rest go with the response.
    let status = parts.status.as_u16();
    let limit = inspector::answer_limit(status) + 1;
    let kept = if bytes.len() > limit {
        Bytes::copy_from_slice(&bytes[..limit])
    } else {
        bytes.clone()
    };
    state.recorder.record(capture(kept, status));
    Response::from_parts(parts, Body::from(bytes))
}

/// Passes `chunks` on unchanged, keeping their first `limit` bytes for `done`, which runs
/// once the last chunk is passed on (or the client went away).
fn tee(
    mut chunks: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    limit: usize,
    done: impl FnOnce(Bytes) + Send + 'static,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, out) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            if let Ok(b) = &chunk {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&b[..room.min(b.len())]);
            }
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        done(Bytes::from(kept));
    });
    out
}

/// The request body as `read_json` read it, for the request inspector: the handlers read
/// the body deep down, and this slot in the request's extensions carries it back up.
#[derive(Clone, Default)]
struct BodySeen(Arc<Mutex<Option<Bytes>>>);

impl BodySeen {
    fn set(&self, body: &Bytes) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(body.clone());
    }

    fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The User-Agent, as the dashboard and the inspector keep it (200 characters at most).
fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

async fn dispatch(
    state: &State,
    req: Request<RequestBody>,
    prefix: &str,
    request_id: &str,
    (tls, peer): (bool, Option<std::net::IpAddr>),
    caller: &mut Option<(i64, String)>,
) -> Result<Response<Body>, ApiError> {
    let base = base_url(state, &req, prefix, tls);
    let rest = req.uri().path()[prefix.len()..]
        .trim_matches('/')
        .to_string();
    // A percent-encoded octet is the character it encodes (RFC 3986 §6.2.2.2): clients that
    // encode every segment send `/Schemas/urn%3Aietf%3A…`. Borrowed when nothing is encoded.
    let decoded: Vec<std::borrow::Cow<str>> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segments: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    let method = req.method().clone();

    // Discovery: public, read-only.
    let query = req.uri().query();
    match segments.as_slice() {
        // Also under SCIM 1.1's plural name and the path Microsoft's reference Postman
        // collection uses, which some validators replay.
        [s] if [
            "ServiceProviderConfig",
            "ServiceProviderConfigs",
            "serviceConfiguration",
        ]
        .iter()
        .any(|n| s.eq_ignore_ascii_case(n)) =>
        {
            return Ok(discovery_get(&method, query, || {
                Ok(discovery::service_provider_config(
                    &base,
                    state.config.max_body_bytes,
                ))
            }));
        }
        [s] if s.eq_ignore_ascii_case("ResourceTypes") => {
            return Ok(discovery_get(&method, query, || {
                Ok(discovery::resource_types(&base))
            }));
        }
        [s, name] if s.eq_ignore_ascii_case("ResourceTypes") => {
            return Ok(discovery_get(&method, query, || {
                discovery::resource_type(&base, name)
            }));
        }
        [s] if s.eq_ignore_ascii_case("Schemas") => {
            return Ok(discovery_get(&method, query, || {
                Ok(discovery::schemas(&base))
            }));
        }
        [s, id] if s.eq_ignore_ascii_case("Schemas") => {
            return Ok(discovery_get(&method, query, || {
                discovery::schema(&base, id)
            }));
        }
        _ => {}
    }

    let grant = authenticate(state, req.headers(), peer).await?;
    super::note_tenant(grant.tenant_id);
    let actor = Actor::new(grant.who.clone(), Some(request_id));
    *caller = Some((grant.tenant_id, actor.label()));
    let call = Call {
        request_id: request_id.to_string(),
        at: datetime::now(),
        method: method.to_string(),
        path: req.uri().path().to_string(),
        status: 0,
        user_agent: user_agent(req.headers()),
        detail: None,
    };
    let tenant_id = grant.tenant_id;
    let written = match segments.first() {
        Some(s) if s.eq_ignore_ascii_case("Users") => Some("Users"),
        Some(s) if s.eq_ignore_ascii_case("Groups") => Some("Groups"),
        _ => None,
    };
    let outcome = authenticated(state, req, grant, actor.clone(), base, segments, method).await;
    let (status, detail) = match &outcome {
        Ok(r) => (r.status().as_u16(), None),
        Err(ApiError::Scim(e)) => (e.status, Some(e.detail.clone())),
        Err(ApiError::InvalidToken) => (401, Some(super::INVALID_TOKEN.to_string())),
        Err(ApiError::Unavailable(_)) => (503, Some(super::STORAGE_UNAVAILABLE.to_string())),
        Err(ApiError::Throttled(_)) => (429, Some(super::THROTTLED.to_string())),
        Err(ApiError::Internal(_)) => (500, Some("internal error".to_string())),
    };
    // A failed write rolled back with everything it did; its audit entry gets a small
    // transaction of its own. (Successful writes are audited inside their transaction.)
    let searching = call.path.ends_with("/.search");
    if let (Some(resource), Some(_), false) = (written, Write::of_method(&call.method), searching) {
        state.metrics.scim_write(resource, detail.is_none());
    }
    if let (Some(write), Some(error), false) = (Write::of_method(&call.method), &detail, searching)
    {
        let (db, actor, error) = (state.db.clone(), actor.clone(), error.clone());
        let resource = scim_resource(&call.path).to_string();
        let refused = async move {
            let refused =
                writes::audit_refused(&db, &actor, tenant_id, write, &resource, status, &error);
            if let Err(e) = refused.await {
                tracing::error!(error = %e, "could not audit a failed SCIM write");
            }
        };
        if status == 503 {
            // The storage could not take the write: its audit entry may wait as long (a
            // lock held elsewhere, the whole busy timeout), and the client has waited
            // enough. It is written when it can be, after the answer.
            tokio::spawn(refused);
        } else {
            refused.await;
        }
    }
    state.record(
        tenant_id,
        Call {
            status,
            detail,
            ..call
        },
    );
    outcome
}

/// The resource part of a SCIM request path: `/scim/v2/Users/42` → `Users/42`.
fn scim_resource(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    ["/Users", "/Groups"]
        .iter()
        .find_map(|r| path.find(r).map(|i| &path[i + 1..]))
        .unwrap_or(path)
}

/// Everything past authentication.
async fn authenticated(
    state: &State,
    req: Request<RequestBody>,
    grant: Grant,
    actor: Actor,
    base: String,
    segments: Vec<&str>,
    method: Method,
) -> Result<Response<Body>, ApiError> {
    let ctx = Ctx {
        tenant_id: grant.tenant_id,
        base,
        actor,
    };

    let rt = segments.first().and_then(|s| {
        ALL_RESOURCE_TYPES
            .iter()
            .copied()
            .find(|rt| rt.endpoint[1..].eq_ignore_ascii_case(s))
    });
    match (rt, segments.as_slice()) {
        (Some(rt), [_, rest @ ..]) if rt.name == USER_RESOURCE.name => {
            endpoint::<users::Users>(state, &ctx, req, method, rest).await
        }
        (Some(_), [_, rest @ ..]) => endpoint::<groups::Groups>(state, &ctx, req, method, rest).await,
        // A query of the server root (RFC 7644 §3.4.2.1): the root `.search` with its
        // parameters in the query.
        (None, []) => {
            if !is_get(&method) {
                return Ok(method_not_allowed("GET"));
            }
            let params = query_pairs(&req)?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            root_search(state, &ctx, &Value::Object(params)).await
        }
        (None, [s]) if *s == ".search" => {
            if method != Method::POST {
                return Ok(method_not_allowed("POST"));
            }
            let body = read_search(state, req).await?;
            root_search(state, &ctx, &body).await
        }
        (None, [s, ..]) if s.eq_ignore_ascii_case("Bulk") => Err(ScimError::new(
            501,
            None,
            "bulk operations are not supported by this server (see /ServiceProviderConfig)",
        )
        .into()),
        (None, [s, ..]) if s.eq_ignore_ascii_case("Me") => Err(ScimError::new(
            501,
            None,
            "the /Me endpoint is not supported: SCIM tokens belong to an IdP connection, not a user",
        )
        .into()),
        _ => Err(ScimError::not_found(format!("no SCIM endpoint at /{}", segments.join("/"))).into()),
    }
}

/// What `/Users` and `/Groups` each offer, one implementation per endpoint, so that the
/// routing and the lists below are written once.
trait Endpoint {
    const RT: &'static ResourceType;

    /// POST: the new resource, projected by `attributes` / `excludedAttributes` like any
    /// answer that returns a resource (RFC 7644 §3.9).
    async fn create(
        state: &State,
        ctx: &Ctx,
        body: Value,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError>;

    async fn get(
        state: &State,
        ctx: &Ctx,
        id: String,
        projection: &Projection,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError>;

    async fn replace(
        state: &State,
        ctx: &Ctx,
        id: String,
        body: Value,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError>;

    async fn patch(
        state: &State,
        ctx: &Ctx,
        id: String,
        ops: Vec<patch::Operation>,
        pre: Preconditions,
        projection: &Projection,
    ) -> Result<Response<Body>, ApiError>;

    async fn delete(
        state: &State,
        ctx: &Ctx,
        id: String,
        pre: Preconditions,
    ) -> Result<Response<Body>, ApiError>;

    /// One page, rendered, projected and serialised one resource at a time: (total,
    /// resources, where the next page resumes).
    async fn list(
        state: &State,
        ctx: &Ctx,
        query: ListQuery,
        projection: &Projection,
    ) -> Result<(u64, Vec<Vec<u8>>, Option<list::Position>), ApiError>;
}

/// A request below `/Users` or `/Groups`; `rest` is the path after the endpoint.
async fn endpoint<E: Endpoint>(
    state: &State,
    ctx: &Ctx,
    req: Request<RequestBody>,
    method: Method,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    let rt = E::RT;
    match rest {
        [] => match method {
            m if is_get(&m) => {
                let pairs = query_pairs(&req)?;
                let params = ListParams::from_query(
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    rt,
                )?;
                search::<E>(state, ctx, params).await
            }
            Method::POST => {
                let projection = projection_of(&req, rt)?;
                E::create(state, ctx, read_json(state, req).await?, &projection).await
            }
            _ => Ok(method_not_allowed("GET, POST")),
        },
        [".search"] => {
            if method != Method::POST {
                return Ok(method_not_allowed("POST"));
            }
            let body = read_search(state, req).await?;
            search::<E>(state, ctx, ListParams::from_search(&body, rt)?).await
        }
        [id] => {
            let id = id.to_string();
            let projection = projection_of(&req, rt)?;
            let pre = preconditions(req.headers());
            match method {
                m if is_get(&m) => E::get(state, ctx, id, &projection, req.headers()).await,
                Method::PUT => {
                    let body = read_json(state, req).await?;
                    E::replace(state, ctx, id, body, pre, &projection).await
                }
                Method::PATCH => {
                    let ops = patch::parse(read_json(state, req).await?)?;
                    E::patch(state, ctx, id, ops, pre, &projection).await
                }
                Method::DELETE => E::delete(state, ctx, id, pre).await,
                _ => Ok(method_not_allowed("GET, PUT, PATCH, DELETE")),
            }
        }
        _ => Err(ScimError::not_found(format!(
            "no SCIM endpoint at {}/{}",
            rt.endpoint,
            rest.join("/")
        ))
        .into()),
    }
}

fn discovery_get(
    method: &Method,
    query: Option<&str>,
    render: impl FnOnce() -> Result<Value, ScimError>,
) -> Response<Body> {
    if !is_get(method) {
        return method_not_allowed("GET");
    }
    // RFC 7644 §4: a filter here SHOULD get 403, so no client takes the whole answer for
    // one that matched it.
    let filtered = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, _)| k.eq_ignore_ascii_case("filter"));
    if filtered {
        return error_response(&ScimError::new(
            403,
            None,
            "the discovery endpoints take no filter (RFC 7644 §4)",
        ));
    }
    match render() {
        Ok(v) => scim_json(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

/// The SCIM base URL for responses: the public root and the mount point the client used.
fn base_url(state: &State, req: &Request<RequestBody>, prefix: &str, tls: bool) -> String {
    format!(
        "{}{prefix}",
        super::public_root(&state.config, req.headers(), tls)
    )
}

/// The grant of the presented bearer token (a SCIM token or an OAuth access token), or 401:
/// without an error code when no token was presented (RFC 6750 §3.1), `invalid_token` when
/// one was and it is not live; 429 while `peer` is throttled for failed authentications
/// (`ops::throttle::Floods`) and the token has not worked from there.
async fn authenticate(
    state: &State,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> Result<Grant, ApiError> {
    match presented_token(headers) {
        Ok(secret) => {
            state
                .admit(peer, Some(&secret))
                .map_err(ApiError::Throttled)?;
            let grant = tokens::authenticate(&state.db, &secret).await?;
            state.authenticated(peer, Some(&secret), grant.is_some());
            grant.ok_or(ApiError::InvalidToken)
        }
        Err(e) => {
            state.admit(peer, None).map_err(ApiError::Throttled)?;
            state.authenticated(peer, None, false);
            Err(e)
        }
    }
}

/// The token of the `Authorization` header (Bearer, Basic with the token as the password,
/// or bare), or the 401 that says what is wrong with the header.
fn presented_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthorized = |detail: &str| ApiError::Scim(ScimError::new(401, None, detail));
    if super::repeated(headers, header::AUTHORIZATION) {
        return Err(ApiError::Scim(ScimError::new(
            400,
            None,
            super::AUTHORIZATION_REPEATED,
        )));
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("authentication required: send Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?
        .trim();
    let secret = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        // Okta's "Basic Auth" mode: any username, a scimd token as the password.
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
            // RFC 7617: user-id ":" password. A bare token is no credential.
            let basic_password = decoded
                .split_once(':')
                .map(|(_, p)| p.to_string())
                .ok_or_else(|| {
                    unauthorized(
                        "Basic credentials are user:password, with a scimd token as the password",
                    )
                })?;
            return Ok(basic_password);
        }
        // Some IdP forms take "the header value" and send the bare token.
        None if value.starts_with(TOKEN_PREFIX) => value,
        None if value.eq_ignore_ascii_case("bearer") => {
            return Err(unauthorized("the Bearer token is missing"));
        }
        _ => {
            return Err(unauthorized(
                "unsupported authorization scheme: use Bearer (or Basic with a token as the password)",
            ));
        }
    };
    Ok(secret.to_string())
}

/// The query's parameters, decoded; 400 when one does not decode to UTF-8 (`%ff` in a
/// filter would otherwise be searched for as U+FFFD and match nothing, silently).
fn query_pairs(req: &Request<RequestBody>) -> Result<Vec<(String, String)>, ScimError> {
    let raw = req.uri().query().unwrap_or("");
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .is_err()
        {
            let name: String = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            let detail = format!("the query parameter {name:?} is not UTF-8 once percent-decoded");
            return Err(if name.eq_ignore_ascii_case("filter") {
                ScimError::invalid_filter(detail)
            } else {
                ScimError::invalid_value(detail)
            });
        }
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    // A parameter of RFC 7644 given twice (`count=1&count=1000`) has no one meaning: which
    // copy a server reads is its own guess, and a client's mistake goes unseen.
    const PARAMETERS: [&str; 8] = [
        "filter",
        "count",
        "startIndex",
        "cursor",
        "attributes",
        "excludedAttributes",
        "sortBy",
        "sortOrder",
    ];
    for name in PARAMETERS {
        if pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .nth(1)
            .is_some()
        {
            let detail = format!("the query parameter {name:?} is given more than once");
            return Err(if name == "filter" {
                ScimError::invalid_filter(detail)
            } else {
                ScimError::invalid_value(detail)
            });
        }
    }
    Ok(pairs)
}

fn projection_of(req: &Request<RequestBody>, rt: &ResourceType) -> Result<Projection, ScimError> {
    let pairs = query_pairs(req)?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(get("attributes"), get("excludedAttributes"), rt)
}

async fn read_json(state: &State, req: Request<RequestBody>) -> Result<Value, ApiError> {
    read_json_or(state, req, None).await
}

/// A `POST /.search` body: every parameter of a SearchRequest is optional (RFC 7644
/// §3.4.3), and clients that have none to give (scim2-client's `search()`) send no body
/// at all, which searches for everything as `{}` does.
async fn read_search(state: &State, req: Request<RequestBody>) -> Result<Value, ApiError> {
    read_json_or(state, req, Some(Value::Object(Default::default()))).await
}

/// [`read_json`], with what an empty body stands for, if anything.
async fn read_json_or(
    state: &State,
    req: Request<RequestBody>,
    empty: Option<Value>,
) -> Result<Value, ApiError> {
    // A compressed body would read as malformed JSON: say what is wrong with it instead
    // (RFC 9110 §15.5.16, with the codings accepted).
    let coding = req.headers().get(header::CONTENT_ENCODING);
    if let Some(coding) = coding.filter(|c| !c.as_bytes().eq_ignore_ascii_case(b"identity")) {
        return Err(ScimError::new(
            415,
            None,
            format!(
                "request bodies are read as sent: Content-Encoding {} is not supported (send it uncompressed)",
                String::from_utf8_lossy(coding.as_bytes())
            ),
        )
        .into());
    }
    let declared = super::content_length(&req);
    let (limit, timeout) = (state.config.max_body_bytes, state.config.body_read_timeout);
    let seen = req.extensions().get::<BodySeen>().cloned();
    let bytes = super::read_body(req.into_body(), declared, limit, timeout).await?;
    if let Some(seen) = seen {
        seen.set(&bytes);
    }
    if let Some(empty) = empty.filter(|_| bytes.iter().all(u8::is_ascii_whitespace)) {
        return Ok(empty);
    }
    Ok(super::parse_json(&bytes)?)
}

// --- ETags (RFC 7644 §3.14) ------------------------------------------------------------

/// The request's `If-Match` and `If-None-Match` (several fields of one are one list).
fn preconditions(headers: &HeaderMap) -> Preconditions {
    let list = |name| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    Preconditions {
        if_match: list(header::IF_MATCH),
        if_none_match: list(header::IF_NONE_MATCH),
    }
}

/// What a read answers instead of the resource at `version`, when its preconditions say
/// so: 304 when `If-None-Match` names the version, 412 when `If-Match` names another.
fn conditional_answer(headers: &HeaderMap, version: i64) -> Option<Response<Body>> {
    match preconditions(headers).evaluate(version) {
        Ok(Precondition::Holds) => None,
        Ok(Precondition::Unchanged) => {
            let mut r = Response::new(Body::default());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            Some(with_etag(r, version))
        }
        Err(e) => Some(error_response(&e)),
    }
}

fn with_etag(mut r: Response<Body>, version: i64) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&resource::etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// A resource response with its ETag, and `Location` on 201.
fn resource_response(
    status: StatusCode,
    body: &Value,
    location: &str,
    version: i64,
) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
    resource_bytes_response(status, bytes, Some(location), version)
}

/// [`resource_response`] for a body serialised by the caller.
fn resource_bytes_response(
    status: StatusCode,
    body: Vec<u8>,
    location: Option<&str>,
    version: i64,
) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::SCIM_CONTENT_TYPE),
    );
    let mut r = with_etag(r, version);
    if status == StatusCode::CREATED
        && let Some(v) = location.and_then(|l| HeaderValue::from_str(l).ok())
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A precise 404 detail naming the resource the client asked for.
fn not_found_as(e: ApiError, kind: &str, id: &str) -> ApiError {
    match e {
        ApiError::Scim(s) if s.status == 404 => {
            ApiError::Scim(ScimError::not_found(format!("{kind} {id} not found")))
        }
        other => other,
    }
}

// --- Lists and searches ------------------------------------------------------------------

/// The storage query for validated list parameters.
fn list_query(params: &ListParams, rt: &ResourceType) -> Result<ListQuery, ScimError> {
    let filter = params
        .filter
        .as_ref()
        .map(|f| filter_sql::compile(f, rt))
        .transpose()?;
    // A cursor was checked against this request's order when it was parsed; cursor paging
    // ignores startIndex (RFC 9865 §2).
    let (after, start_index) = match &params.cursor {
        None => (None, params.start_index),
        Some(list::Cursor::First) => (None, 1),
        Some(list::Cursor::After(pos)) => (Some(pos.clone()), 1),
    };
    Ok(ListQuery {
        filter,
        sort_by: params.sort_by,
        descending: params.descending,
        start_index,
        count: params.count,
        after,
    })
}

/// A list or search over one resource type.
async fn search<E: Endpoint>(
    state: &State,
    ctx: &Ctx,
    params: ListParams,
) -> Result<Response<Body>, ApiError> {
    let rt = E::RT;
    let projection = Projection::parse(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
        rt,
    )?;
    let query = list_query(&params, rt)?;
    let (total, resources, next) = E::list(state, ctx, query, &projection).await?;
    let start = if params.cursor.is_some() {
        1
    } else {
        params.start_index
    };
    let next = params
        .cursor
        .as_ref()
        .and(next)
        .map(|pos| list::encode_cursor(params.sort_by.as_ref(), params.descending, &pos));
    Ok(list_answer(total, start, resources, next))
}

/// Past this size a list answer goes out resource by resource ([`list_answer`]).
const STREAMED_LIST_BYTES: usize = 1 << 20;

/// A list answer. One past [`STREAMED_LIST_BYTES`] (a page of big groups, 50 MB for a
/// hundred groups of 15 000) goes out a resource at a time, each let go of once sent, so
/// the server holds the page once, not twice (its resources and their concatenation).
fn list_answer(
    total: u64,
    start: u64,
    resources: Vec<Vec<u8>>,
    next: Option<String>,
) -> Response<Body> {
    let size = resources.iter().map(Vec::len).sum::<usize>();
    if size <= STREAMED_LIST_BYTES {
        return scim_bytes(list::write_list_response(total, start, &resources, next));
    }
    let head = list::list_response_head(total, start, resources.len(), next.as_deref());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let pieces = std::iter::once(head)
            .chain(resources.into_iter().enumerate().flat_map(|(i, r)| {
                let comma = (i > 0).then(|| b",".to_vec());
                comma.into_iter().chain(std::iter::once(r))
            }))
            .chain(std::iter::once(list::LIST_RESPONSE_TAIL.to_vec()));
        for piece in pieces {
            if tx.send(Ok(Bytes::from(piece))).await.is_err() {
                return; // the client went away
            }
        }
    });
    let mut r = scim_answer(Body::Chunks(rx, None));
    r.extensions_mut().insert(super::AnswerSize(size));
    r
}

/// A 200 SCIM answer serialised by the caller.
fn scim_bytes(body: Vec<u8>) -> Response<Body> {
    scim_answer(Body::from(body))
}

/// A 200 SCIM answer of `body`.
fn scim_answer(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::SCIM_CONTENT_TYPE),
    );
    r
}

/// `POST /.search` (RFC 7644 §3.4.3), and `GET` of the root: Users then Groups, paged as
/// one list. A filter that only makes sense for one resource type searches that type alone.
async fn root_search(state: &State, ctx: &Ctx, body: &Value) -> Result<Response<Body>, ApiError> {
    let users_params = ListParams::from_search(body, &USER_RESOURCE);
    let groups_params = ListParams::from_search(body, &GROUP_RESOURCE);
    let (users_params, groups_params) = match (users_params, groups_params) {
        (Err(e), Err(_)) => return Err(e.into()),
        (u, g) => (u.ok(), g.ok()),
    };
    // A type without the `sortBy` attribute still answers, unsorted: its resources have no
    // value for it, so they come last ascending and first descending (RFC 7644 §3.4.2.3).
    let mut unsorted = body.clone();
    if let Value::Object(fields) = &mut unsorted {
        fields.retain(|k, _| {
            !k.eq_ignore_ascii_case("sortBy") && !k.eq_ignore_ascii_case("sortOrder")
        });
    }
    let descending = body.as_object().is_some_and(|f| {
        f.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("sortOrder")
                && v.as_str()
                    .is_some_and(|o| o.eq_ignore_ascii_case("descending"))
        })
    });
    let without_sort = |params: &Option<ListParams>, rt: &'static ResourceType| match params {
        Some(_) => None,
        None => ListParams::from_search(&unsorted, rt).ok(),
    };
    let mut users_unsorted = without_sort(&users_params, &USER_RESOURCE);
    let mut groups_unsorted = without_sort(&groups_params, &GROUP_RESOURCE);
    let params = users_params
        .clone()
        .or(groups_params.clone())
        .or(users_unsorted.clone())
        .or(groups_unsorted.clone())
        .expect("one parsed");
    if params.cursor.is_some() {
        return Err(ScimError::invalid_value(
            "cursor pagination is offered per resource type, not on /.search",
        )
        .into());
    }
    let (start, count) = (params.start_index, params.count);
    // Skip `start - 1` results across the concatenation, then take `count`.
    let mut page = RootPage {
        skip: start - 1,
        count,
        total: 0,
        resources: Vec::new(),
    };
    if descending {
        page.add::<users::Users>(state, ctx, users_unsorted.take())
            .await?;
        page.add::<groups::Groups>(state, ctx, groups_unsorted.take())
            .await?;
    }
    page.add::<users::Users>(state, ctx, users_params).await?;
    page.add::<groups::Groups>(state, ctx, groups_params)
        .await?;
    if !descending {
        page.add::<users::Users>(state, ctx, users_unsorted.take())
            .await?;
        page.add::<groups::Groups>(state, ctx, groups_unsorted.take())
            .await?;
    }
    let RootPage {
        total, resources, ..
    } = page;
    Ok(list_answer(total, start, resources, None))
}

/// `POST /.search`'s results so far: what is still to skip, what the page holds.
struct RootPage {
    skip: u64,
    count: u64,
    total: u64,
    resources: Vec<Vec<u8>>,
}

impl RootPage {
    /// Adds `E`'s part of the concatenation (nothing if the search does not apply to it).
    async fn add<E: Endpoint>(
        &mut self,
        state: &State,
        ctx: &Ctx,
        params: Option<ListParams>,
    ) -> Result<(), ApiError> {
        let Some(mut p) = params else { return Ok(()) };
        let projection = Projection::parse(
            p.attributes.as_deref(),
            p.excluded_attributes.as_deref(),
            E::RT,
        )?;
        p.start_index = self.skip + 1;
        p.count = self.count - self.resources.len() as u64;
        let query = list_query(&p, E::RT)?;
        let (n, page, _) = E::list(state, ctx, query, &projection).await?;
        self.total += n;
        self.skip = self.skip.saturating_sub(n);
        self.resources.extend(page);
        Ok(())
    }
}
