//! The OAuth 2.0 endpoints that clients call directly: the token endpoint (RFC 6749 §3.2,
//! grants of §4.1, §4.4 and §6), revocation (RFC 7009) and authorization server metadata
//! (RFC 8414). The authorization endpoint needs an admin's session and a consent page, so
//! it lives with the admin UI (`admin::oauth`).
//!
//! Clients are confidential: every call authenticates with the client secret, by HTTP
//! Basic or form fields. Failed client authentication is throttled per client id, the way
//! admin logins are. Answers carry `Cache-Control: no-store`; errors are RFC 6749 §5.2
//! JSON. Every grant, refresh, revocation and failure goes to the audit trail
//! (`ops::oauth::record`); no secret, code or token is ever logged.

use std::net::IpAddr;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, RequestBody, State};
use crate::auth::oauth::{self, ErrorCode};
use crate::db::audit::Action;
use crate::ops;
use crate::ops::oauth::{Failure, Issued, Refusal, RevocationRequest, TokenRequest};

pub(super) const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub(super) const TOKEN_PATH: &str = "/oauth/token";
pub(super) const REVOKE_PATH: &str = "/oauth/revoke";
pub(crate) const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// Token requests are small; refuse big bodies early.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Whether `path` is one of this module's endpoints.
pub(super) fn serves(path: &str) -> bool {
    matches!(path, METADATA_PATH | TOKEN_PATH | REVOKE_PATH) || metadata_suffix(path).is_some()
}

/// The issuer path after the metadata's well-known path (`/scimd` in
/// `/.well-known/oauth-authorization-server/scimd`): where RFC 8414 §3.1 puts the metadata
/// of an issuer with a path (a `--base-url` with one).
fn metadata_suffix(path: &str) -> Option<&str> {
    path.strip_prefix(METADATA_PATH)
        .filter(|rest| rest.starts_with('/') && rest.len() > 1)
}

pub(super) async fn handle(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    conn: &super::Conn,
) -> Response<Body> {
    let tls = conn.tls;
    let peer = conn.client;
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(suffix) = metadata_suffix(&path) {
        let root = public_root(state, req.headers(), tls);
        let issuer_path = url::Url::parse(&root)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        return match method {
            _ if suffix != issuer_path => super::text(
                StatusCode::NOT_FOUND,
                "not found: no issuer has this path\n",
            ),
            m if super::is_get(&m) => metadata(state, req.headers(), tls),
            _ => method_not_allowed("GET"),
        };
    }
    match (path.as_str(), method) {
        (METADATA_PATH, m) if super::is_get(&m) => metadata(state, req.headers(), tls),
        (METADATA_PATH, _) => method_not_allowed("GET"),
        (TOKEN_PATH, Method::POST) => token(state, req, request_id, peer).await,
        (REVOKE_PATH, Method::POST) => revoke(state, req, request_id, peer).await,
        _ => method_not_allowed("POST"),
    }
}

/// The public root of this server.
pub(super) fn public_root(state: &State, headers: &HeaderMap, tls: bool) -> String {
    super::public_root(&state.config, headers, tls)
}

/// RFC 8414 metadata; the issuer is the public base URL.
fn metadata(state: &State, headers: &HeaderMap, tls: bool) -> Response<Body> {
    let root = public_root(state, headers, tls);
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let body = json!({
        "issuer": root,
        "authorization_endpoint": format!("{root}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{root}{TOKEN_PATH}"),
        "revocation_endpoint": format!("{root}{REVOKE_PATH}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [oauth::SCOPE],
    });
    json_response(StatusCode::OK, &body)
}

// --- Errors ---------------------------------------------------------------------------------

/// An RFC 6749 §5.2 error answer.
fn refusal_response(refusal: &Refusal) -> Response<Body> {
    let body = json!({"error": refusal.code.as_str(), "error_description": refusal.description});
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_response(status, &body);
    if refusal.code == ErrorCode::InvalidClient {
        // RFC 6749 §5.2: say which scheme authenticates clients.
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"scimd\", charset=\"UTF-8\""),
        );
    }
    if let Some(v) = refusal
        .retry_after_secs
        .and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    no_store(r.headers_mut());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = refusal_response(&Refusal::request(format!(
        "method not allowed; use {allow}"
    )));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

// --- Requests -------------------------------------------------------------------------------

/// The parameters of a form-encoded request (RFC 6749 §3.2: empty values count as absent,
/// and no parameter may appear twice).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn take(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

/// Reads a token or revocation request: its headers and its form parameters.
async fn read_form(
    state: &State,
    req: Request<RequestBody>,
) -> Result<(HeaderMap, Option<String>, Params), Refusal> {
    let (parts, body) = req.into_parts();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Refusal::request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let limit = MAX_FORM_BYTES.min(state.config.max_body_bytes);
    let bytes = super::read_body(body, declared, limit, state.config.body_read_timeout)
        .await
        .map_err(|e| Refusal::request(e.detail))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        if v.is_empty() {
            continue;
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(Refusal::request(format!("the {k} parameter is repeated")));
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    // Okta documents custom scopes for client credentials as a query parameter of the
    // token URL; accept `scope` from there when the body has none.
    let query_scope = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, v)| k == "scope" && !v.is_empty())
        .map(|(_, v)| v.into_owned());
    Ok((parts.headers, query_scope, Params(pairs)))
}

/// The client id and secret a request presents, by HTTP Basic or form fields (never both).
fn presented_client(headers: &HeaderMap, params: &Params) -> Result<(String, String), Refusal> {
    let invalid = |d: &str| Refusal::new(ErrorCode::InvalidClient, d);
    if super::repeated(headers, header::AUTHORIZATION) {
        return Err(Refusal::request(super::AUTHORIZATION_REPEATED));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| invalid("malformed Authorization header"))?;
        let (id, secret) = match oauth::parse_basic(value) {
            Some(Ok(pair)) => pair,
            Some(Err(())) => return Err(invalid("malformed HTTP Basic credentials")),
            None => {
                return Err(invalid(
                    "authenticate the client with HTTP Basic or the client_id and client_secret parameters",
                ));
            }
        };
        if params.get("client_secret").is_some() {
            return Err(Refusal::request(
                "use one client authentication method: HTTP Basic or client_secret, not both",
            ));
        }
        if params.get("client_id").is_some_and(|form_id| form_id != id) {
            return Err(Refusal::request(
                "client_id differs from the HTTP Basic user name",
            ));
        }
        return Ok((id, secret));
    }
    let id = params
        .get("client_id")
        .ok_or_else(|| invalid("client authentication is required"))?;
    let secret = params
        .get("client_secret")
        .ok_or_else(|| invalid("client_secret is required: scimd's clients are confidential"))?;
    Ok((id.to_string(), secret.to_string()))
}

fn failure_response(f: Failure, request_id: &str) -> Response<Body> {
    match f {
        Failure::Refused(e) => refusal_response(&e),
        Failure::Internal(cause) => {
            tracing::error!(request_id, %cause, "OAuth endpoint failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": "server_error", "error_description": "internal error"}),
            )
        }
    }
}

// --- The token endpoint ---------------------------------------------------------------------

fn issued_json(issued: &Issued) -> Value {
    let mut body = json!({
        "access_token": issued.access,
        "token_type": "Bearer",
        "expires_in": oauth::ACCESS_TOKEN_SECS,
        "scope": issued.scope,
    });
    if let Some(r) = &issued.refresh {
        body["refresh_token"] = json!(r);
    }
    body
}

async fn token(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    peer: Option<IpAddr>,
) -> Response<Body> {
    let address = peer.map(|p| p.to_string()).unwrap_or_default();
    let outcome = match read_form(state, req).await {
        Ok((headers, query_scope, params)) => {
            let client = presented_client(&headers, &params);
            let secret = client.as_ref().ok().map(|(_, secret)| secret.clone());
            let request = TokenRequest {
                grant_type: params.take("grant_type"),
                client,
                code: params.take("code"),
                redirect_uri: params.take("redirect_uri"),
                code_verifier: params.take("code_verifier"),
                refresh_token: params.take("refresh_token"),
                scope: params.take("scope").or(query_scope),
                address,
            };
            guarded(state, peer, secret.as_deref(), || {
                ops::oauth::token(&state.db, request_id, request)
            })
            .await
        }
        Err(refusal) => {
            guarded(state, peer, None, || {
                unreadable(state, request_id, Action::OAuthTokenRefused, refusal)
            })
            .await
        }
    };
    match outcome {
        Ok(issued) => json_response(StatusCode::OK, &issued_json(&issued)),
        Err(f) => failure_response(f, request_id),
    }
}

/// Runs a token or revocation request through its address's flood throttle (the one
/// SCIM's token checks use, `ops::throttle::Floods`): a request that fails counts
/// against the address, and an address that has failed too often is answered 429 at once,
/// recording nothing, unless it presents a client `secret` that has worked from there.
/// Every refusal writes an audit entry, so without this one client could grow the
/// database without bound.
async fn guarded<T, F>(
    state: &State,
    peer: Option<IpAddr>,
    secret: Option<&str>,
    run: impl FnOnce() -> F,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    if let Err(seconds) = state.admit(peer, secret) {
        return Err(Failure::Refused(Refusal {
            retry_after_secs: Some(i64::try_from(seconds).unwrap_or(i64::MAX)),
            ..Refusal::new(ErrorCode::InvalidClient, super::THROTTLED)
        }));
    }
    let outcome = run().await;
    state.authenticated(peer, secret, outcome.is_ok());
    outcome
}

/// Records a request refused before it could be read, and refuses it.
async fn unreadable<T>(
    state: &State,
    request_id: &str,
    action: Action,
    refusal: Refusal,
) -> Result<T, Failure> {
    ops::oauth::unreadable(&state.db, request_id, action, &refusal).await;
    Err(Failure::Refused(refusal))
}

// --- Revocation (RFC 7009) ------------------------------------------------------------------

async fn revoke(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    peer: Option<IpAddr>,
) -> Response<Body> {
    let address = peer.map(|p| p.to_string()).unwrap_or_default();
    let outcome = match read_form(state, req).await {
        Ok((headers, _, params)) => {
            let client = presented_client(&headers, &params);
            let secret = client.as_ref().ok().map(|(_, secret)| secret.clone());
            let request = RevocationRequest {
                client,
                token: params.take("token"),
                address,
            };
            guarded(state, peer, secret.as_deref(), || {
                ops::oauth::revoke(&state.db, request_id, request)
            })
            .await
        }
        Err(refusal) => {
            guarded(state, peer, None, || {
                unreadable(state, request_id, Action::OAuthRevokeRefused, refusal)
            })
            .await
        }
    };
    match outcome {
        Ok(()) => {
            let mut r = Response::new(Body::default());
            no_store(r.headers_mut());
            r
        }
        Err(f) => failure_response(f, request_id),
    }
}
