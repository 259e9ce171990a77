//! The OAuth 2.0 endpoints that clients call directly: the token endpoint (RFC 6749 §3.2,
//! grants of §4.1, §4.4 and §6), revocation (RFC 7009) and authorization server metadata
//! (RFC 8414). The authorization endpoint needs an admin's session and a consent page, so
//! it lives with the admin UI (`admin::oauth`).
//!
//! Clients are confidential: every call authenticates with the client secret, by HTTP
//! Basic or form fields. Failed client authentication is throttled per client id, the way
//! admin logins are. Answers carry `Cache-Control: no-store`; errors are RFC 6749 §5.2
//! JSON. Every grant, refresh, revocation and failure goes to the audit trail
//! (`db::oauth::audit`); no secret, code or token is ever logged.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Body, RequestBody, State};
use crate::auth::oauth::{self, ErrorCode, GrantType, TokenKind};
use crate::auth::tokens;
use crate::db::audit::{Action, Entry, Outcome};
use crate::db::oauth::Client;
use crate::db::{self, DbError, admins};
use crate::scim::datetime;

pub(super) const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub(super) const TOKEN_PATH: &str = "/oauth/token";
pub(super) const REVOKE_PATH: &str = "/oauth/revoke";
pub(crate) const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// Failed client authentications tolerated per client within the window.
const CLIENT_FAILURES: i64 = 10;
const THROTTLE_WINDOW_MINUTES: i64 = 15;
/// How long a throttled client stays locked.
const LOCK_MINUTES: i64 = 15;
/// Token requests are small; refuse big bodies early.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Whether `path` is one of this module's endpoints.
pub(super) fn serves(path: &str) -> bool {
    matches!(path, METADATA_PATH | TOKEN_PATH | REVOKE_PATH)
}

pub(super) async fn handle(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    tls: bool,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (path.as_str(), method) {
        (METADATA_PATH, m) if super::is_get(&m) => metadata(state, req.headers(), tls),
        (METADATA_PATH, _) => method_not_allowed("GET"),
        (TOKEN_PATH, Method::POST) => token(state, req, request_id).await,
        (REVOKE_PATH, Method::POST) => revoke(state, req, request_id).await,
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
#[derive(Debug)]
struct OAuthError {
    code: ErrorCode,
    description: String,
    status: StatusCode,
    /// Locked out by throttling: answered 429 with `Retry-After`.
    retry_after_secs: Option<i64>,
}

impl OAuthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError {
            code,
            description: description.into(),
            status,
            retry_after_secs: None,
        }
    }

    fn request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    fn grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    fn into_response(self) -> Response<Body> {
        let body = json!({"error": self.code.as_str(), "error_description": self.description});
        let mut r = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: say which scheme authenticates clients.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scimd\", charset=\"UTF-8\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// How a request can end besides success: an OAuth error for the client, or an internal
/// failure that is logged and answered with a bare 500.
enum Failure {
    OAuth(OAuthError),
    Internal(String),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Failure::OAuth(e)
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Internal(e.to_string())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
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
    let mut r = OAuthError::request(format!("method not allowed; use {allow}")).into_response();
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

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::request(format!("the {name} parameter is required")))
    }
}

/// Reads a token or revocation request: its headers and its form parameters.
async fn read_form(
    state: &State,
    req: Request<RequestBody>,
) -> Result<(HeaderMap, Option<String>, Params), OAuthError> {
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
        return Err(OAuthError::request(
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
        .map_err(|e| OAuthError::request(e.detail))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        if v.is_empty() {
            continue;
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(OAuthError::request(format!(
                "the {k} parameter is repeated"
            )));
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
fn presented_client(headers: &HeaderMap, params: &Params) -> Result<(String, String), OAuthError> {
    let invalid = |d: &str| OAuthError::new(ErrorCode::InvalidClient, d);
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
            return Err(OAuthError::request(
                "use one client authentication method: HTTP Basic or client_secret, not both",
            ));
        }
        if params.get("client_id").is_some_and(|form_id| form_id != id) {
            return Err(OAuthError::request(
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

/// What the audit trail says about a request's caller so far.
#[derive(Default)]
struct Caller {
    client_id: Option<String>,
    tenant_id: Option<i64>,
}

impl Caller {
    fn actor(&self) -> String {
        match &self.client_id {
            Some(id) => format!("oauth-client:{id}"),
            None => "anonymous".to_string(),
        }
    }
}

fn event(caller: &Caller, action: Action, request_id: &str, detail: Value) -> Entry {
    Entry {
        tenant_id: caller.tenant_id,
        actor: caller.actor(),
        action,
        target: caller
            .client_id
            .as_ref()
            .map(|id| format!("oauth-client:{id}")),
        outcome: Outcome::Success,
        status: None,
        request_id: Some(request_id.to_string()),
        detail: Some(detail),
    }
}

/// Authenticates the client (throttled): its registration, or `invalid_client`.
async fn authenticate_client(
    state: &State,
    id: &str,
    secret: String,
    caller: &mut Caller,
) -> Result<Client, Failure> {
    caller.client_id = Some(id.to_string());
    let key = format!("client:{id}");
    let now = datetime::now();
    let (locked, found) = {
        let (key, id) = (key.clone(), id.to_string());
        state
            .db
            .read(move |c| {
                Ok::<_, DbError>((
                    admins::locked_until(c, &key, &now)?,
                    db::oauth::client_by_client_id(c, &id)?,
                ))
            })
            .await?
    };
    if let Some(until) = locked {
        let secs = datetime::parse(&until)
            .map(|t| (t - OffsetDateTime::now_utc()).whole_seconds().max(1))
            .unwrap_or(60);
        return Err(OAuthError {
            retry_after_secs: Some(secs),
            ..OAuthError::new(
                ErrorCode::InvalidClient,
                format!(
                    "too many failed client authentications; try again after {} UTC",
                    until.get(11..19).unwrap_or(&until)
                ),
            )
        }
        .into());
    }
    let ok = match &found {
        Some((client, hash)) => client.revoked_at.is_none() && oauth::secret_matches(&secret, hash),
        None => {
            // The same hashing work for unknown clients.
            let _ = oauth::secret_matches(&secret, &[0u8; 32]);
            false
        }
    };
    match found {
        Some((client, _)) if ok => {
            caller.tenant_id = Some(client.tenant_id);
            Ok(client)
        }
        found => {
            // Only registered clients are counted: an unknown id can never succeed, and
            // counting it would let anyone fill the table.
            if let Some((client, _)) = found {
                caller.tenant_id = Some(client.tenant_id);
                let window = datetime::format(
                    OffsetDateTime::now_utc() - time::Duration::minutes(THROTTLE_WINDOW_MINUTES),
                );
                let lock = datetime::format(
                    OffsetDateTime::now_utc() + time::Duration::minutes(LOCK_MINUTES),
                );
                let now = datetime::now();
                state
                    .db
                    .write(move |tx| {
                        admins::record_failure(tx, &key, &now, &window, CLIENT_FAILURES, &lock)
                    })
                    .await?;
            }
            Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "unknown client, wrong secret, or revoked client",
            )
            .into())
        }
    }
}

/// Audits a failed request in a transaction of its own (the failed one rolled back).
async fn audit_failure(
    state: &State,
    caller: &Caller,
    action: Action,
    request_id: &str,
    failure: &Failure,
    grant_type: Option<&str>,
) {
    let detail = match failure {
        Failure::OAuth(e) => json!({
            "error": e.code.as_str(),
            "description": e.description,
            "grantType": grant_type,
        }),
        Failure::Internal(_) => json!({"error": "server_error", "grantType": grant_type}),
    };
    let status = match failure {
        Failure::OAuth(e) if e.retry_after_secs.is_some() => 429,
        Failure::OAuth(e) => e.status.as_u16(),
        Failure::Internal(_) => 500,
    };
    let e = Entry {
        outcome: Outcome::Failure,
        status: Some(status),
        ..event(caller, action, request_id, detail)
    };
    if let Err(err) = state.db.write(move |tx| db::oauth::audit(tx, &e)).await {
        tracing::error!(error = %err, "could not record an OAuth failure");
    }
}

fn failure_response(f: Failure, request_id: &str) -> Response<Body> {
    match f {
        Failure::OAuth(e) => e.into_response(),
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

/// Tokens issued by one successful token request.
struct Issued {
    access: String,
    refresh: Option<String>,
    scope: String,
}

impl Issued {
    fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access,
            "token_type": "Bearer",
            "expires_in": oauth::ACCESS_TOKEN_SECS,
            "scope": self.scope,
        });
        if let Some(r) = &self.refresh {
            body["refresh_token"] = json!(r);
        }
        body
    }
}

async fn token(state: &State, req: Request<RequestBody>, request_id: &str) -> Response<Body> {
    let mut caller = Caller::default();
    let mut grant_type = None;
    match token_inner(state, req, request_id, &mut caller, &mut grant_type).await {
        Ok(issued) => json_response(StatusCode::OK, &issued.to_json()),
        Err(f) => {
            audit_failure(
                state,
                &caller,
                Action::OAuthTokenRefused,
                request_id,
                &f,
                grant_type.as_deref(),
            )
            .await;
            failure_response(f, request_id)
        }
    }
}

async fn token_inner(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    caller: &mut Caller,
    grant_type_seen: &mut Option<String>,
) -> Result<Issued, Failure> {
    let (headers, query_scope, params) = read_form(state, req).await?;
    let grant_type = params.require("grant_type")?.to_string();
    *grant_type_seen = Some(grant_type.clone());
    let grant: GrantType = grant_type.parse().map_err(|_| {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "unsupported grant_type {grant_type:?}; use authorization_code, refresh_token or client_credentials"
            ),
        )
    })?;
    let (id, secret) = presented_client(&headers, &params)?;
    let client = authenticate_client(state, &id, secret, caller).await?;
    if !client.allows(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {grant} grant (it may use: {})",
                client.grant_types_text()
            ),
        )
        .into());
    }
    let scope = params.get("scope").map(str::to_string).or(query_scope);
    let outcome = match grant {
        GrantType::AuthorizationCode => {
            let code = params.require("code")?.to_string();
            let redirect_uri = params.get("redirect_uri").map(str::to_string);
            let verifier = params.get("code_verifier").map(str::to_string);
            let event = event(caller, Action::OAuthTokenIssued, request_id, Value::Null);
            state
                .db
                .write(move |tx| exchange_code(tx, &client, &code, redirect_uri, verifier, event))
                .await?
        }
        GrantType::RefreshToken => {
            let refresh = params.require("refresh_token")?.to_string();
            let event = event(caller, Action::OAuthTokenRefreshed, request_id, Value::Null);
            state
                .db
                .write(move |tx| refresh_grant(tx, &client, &refresh, scope, event))
                .await?
        }
        GrantType::ClientCredentials => {
            let scope = oauth::grant_scope(scope.as_deref())
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?;
            let event = event(caller, Action::OAuthTokenIssued, request_id, Value::Null);
            state
                .db
                .write(move |tx| {
                    let grant = db::oauth::create_grant(
                        tx,
                        client.id,
                        GrantType::ClientCredentials,
                        &scope,
                        None,
                    )?;
                    issue(
                        tx,
                        &client,
                        grant,
                        &scope,
                        false,
                        GrantType::ClientCredentials,
                        event,
                    )
                    .map(Ok)
                })
                .await?
        }
    };
    Ok(outcome?)
}

/// Issues an access token (and a refresh token) in `grant`, sweeps expired rows, clears
/// the client's failure count and audits the grant.
fn issue(
    tx: &rusqlite::Transaction,
    client: &Client,
    grant: i64,
    scope: &str,
    with_refresh: bool,
    grant_type: GrantType,
    mut event: Entry,
) -> Result<Issued, DbError> {
    db::oauth::sweep(tx)?;
    let now = OffsetDateTime::now_utc();
    let access = oauth::generate_token(TokenKind::Access);
    let access_expires = datetime::format(now + time::Duration::seconds(oauth::ACCESS_TOKEN_SECS));
    let access_id =
        db::oauth::insert_token(tx, grant, TokenKind::Access, &access, &access_expires)?;
    let refresh = if with_refresh {
        let t = oauth::generate_token(TokenKind::Refresh);
        let expires = datetime::format(now + time::Duration::days(oauth::REFRESH_TOKEN_DAYS));
        db::oauth::insert_token(tx, grant, TokenKind::Refresh, &t, &expires)?;
        Some(t.secret)
    } else {
        None
    };
    admins::clear_failures(tx, &format!("client:{}", client.client_id))?;
    event.detail = Some(json!({
        "grantType": grant_type.as_str(),
        "grant": grant,
        "accessToken": access_id,
        "refreshToken": refresh.is_some(),
    }));
    db::oauth::audit(tx, &event)?;
    Ok(Issued {
        access: access.secret,
        refresh,
        scope: scope.to_string(),
    })
}

/// The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.5). A refusal that must
/// be remembered (the code is burnt, a reused code's grant revoked) commits, so the
/// refusal is the inner `Err`.
fn exchange_code(
    tx: &rusqlite::Transaction,
    client: &Client,
    code: &str,
    redirect_uri: Option<String>,
    verifier: Option<String>,
    event: Entry,
) -> Result<Result<Issued, OAuthError>, DbError> {
    let hash = tokens::hash(code);
    let Some(stored) = db::oauth::code(tx, &hash)? else {
        return Ok(Err(OAuthError::grant("unknown authorization code")));
    };
    if stored.client != client.id {
        return Ok(Err(OAuthError::grant(
            "the authorization code was issued to another client",
        )));
    }
    if stored.used_at.is_some() {
        // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
        if let Some(grant) = stored.grant_id {
            db::oauth::revoke_grant(tx, grant)?;
            db::oauth::audit(
                tx,
                &Entry {
                    action: Action::OAuthGrantRevoked,
                    outcome: Outcome::Failure,
                    detail: Some(json!({"grant": grant, "reason": "authorization code reused"})),
                    ..event.clone()
                },
            )?;
        }
        return Ok(Err(OAuthError::grant(
            "the authorization code was already used; the tokens issued for it are revoked",
        )));
    }
    // From here on the code is spent whatever the outcome: one attempt per code.
    let refusal = if stored.expires_at <= datetime::now() {
        Some(OAuthError::grant("the authorization code expired"))
    } else if stored.redirect_uri_given && redirect_uri.is_none() {
        Some(OAuthError::request(
            "redirect_uri is required: the authorization request included it",
        ))
    } else if redirect_uri
        .as_deref()
        .is_some_and(|r| r != stored.redirect_uri)
    {
        Some(OAuthError::grant(
            "redirect_uri differs from the one in the authorization request",
        ))
    } else {
        match (&stored.code_challenge, &verifier) {
            (Some(challenge), Some(v)) if oauth::verify_pkce(v, challenge) => None,
            (Some(_), Some(_)) => Some(OAuthError::grant("PKCE verification failed")),
            (Some(_), None) => Some(OAuthError::grant(
                "code_verifier is required: the authorization request sent a code_challenge",
            )),
            (None, Some(_)) => Some(OAuthError::grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            )),
            (None, None) => None,
        }
    };
    if let Some(refusal) = refusal {
        db::oauth::use_code(tx, &hash, None)?;
        return Ok(Err(refusal));
    }
    let grant = db::oauth::create_grant(
        tx,
        client.id,
        GrantType::AuthorizationCode,
        &stored.scope,
        Some(&stored.approved_by),
    )?;
    db::oauth::use_code(tx, &hash, Some(grant))?;
    issue(
        tx,
        client,
        grant,
        &stored.scope,
        true,
        GrantType::AuthorizationCode,
        event,
    )
    .map(Ok)
}

/// The refresh-token grant (RFC 6749 §6) with rotation: each refresh token works once;
/// presenting a spent one revokes its whole family (OAuth 2.0 Security BCP §4.14).
fn refresh_grant(
    tx: &rusqlite::Transaction,
    client: &Client,
    refresh: &str,
    scope: Option<String>,
    event: Entry,
) -> Result<Result<Issued, OAuthError>, DbError> {
    let Some(token) = db::oauth::token_by_hash(tx, &tokens::hash(refresh))? else {
        return Ok(Err(OAuthError::grant("unknown refresh token")));
    };
    if token.kind != TokenKind::Refresh || token.client != client.id {
        return Ok(Err(OAuthError::grant(
            "unknown refresh token for this client",
        )));
    }
    if let Some(s) = scope {
        match oauth::grant_scope(Some(&s)) {
            Ok(s) if s == token.scope => {}
            _ => {
                return Ok(Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!(
                        "the scope may not exceed the original grant ({})",
                        token.scope
                    ),
                )));
            }
        }
    }
    let now = datetime::now();
    if token.used_at.is_some() && token.revoked_at.is_none() && !token.grant_revoked {
        db::oauth::revoke_grant(tx, token.grant_id)?;
        db::oauth::audit(
            tx,
            &Entry {
                action: Action::OAuthGrantRevoked,
                outcome: Outcome::Failure,
                detail: Some(json!({"grant": token.grant_id, "reason": "refresh token reused"})),
                ..event.clone()
            },
        )?;
        return Ok(Err(OAuthError::grant(
            "the refresh token was already used; every token of this grant is revoked",
        )));
    }
    if !token.live(&now) || token.used_at.is_some() {
        return Ok(Err(OAuthError::grant(
            "the refresh token expired or was revoked",
        )));
    }
    if !db::oauth::use_refresh_token(tx, token.id)? {
        return Ok(Err(OAuthError::grant("the refresh token was already used")));
    }
    issue(
        tx,
        client,
        token.grant_id,
        &token.scope,
        true,
        GrantType::RefreshToken,
        event,
    )
    .map(Ok)
}

// --- Revocation (RFC 7009) ------------------------------------------------------------------

async fn revoke(state: &State, req: Request<RequestBody>, request_id: &str) -> Response<Body> {
    let mut caller = Caller::default();
    match revoke_inner(state, req, request_id, &mut caller).await {
        Ok(()) => {
            let mut r = Response::new(Body::default());
            no_store(r.headers_mut());
            r
        }
        Err(f) => {
            audit_failure(
                state,
                &caller,
                Action::OAuthRevokeRefused,
                request_id,
                &f,
                None,
            )
            .await;
            failure_response(f, request_id)
        }
    }
}

async fn revoke_inner(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    caller: &mut Caller,
) -> Result<(), Failure> {
    let (headers, _, params) = read_form(state, req).await?;
    let (id, secret) = presented_client(&headers, &params)?;
    let client = authenticate_client(state, &id, secret, caller).await?;
    let token = params.require("token")?.to_string();
    // token_type_hint is optional and only a hint (§2.1): both kinds are looked up anyway.
    let event = event(caller, Action::OAuthTokenRevoked, request_id, Value::Null);
    state
        .db
        .write(move |tx| {
            let Some(found) = db::oauth::token_by_hash(tx, &tokens::hash(&token))? else {
                // §2.2: an invalid token is not an error.
                return Ok(());
            };
            if found.client != client.id {
                // Another client's token is invalid for this one: not revoked, not
                // revealed, but recorded.
                return db::oauth::audit(
                    tx,
                    &Entry {
                        outcome: Outcome::Failure,
                        detail: Some(
                            json!({"token": found.id, "reason": "token of another client"}),
                        ),
                        ..event
                    },
                );
            }
            db::oauth::revoke_token(tx, &found)?;
            db::oauth::audit(
                tx,
                &Entry {
                    target: Some(format!("oauth-token:{}", found.id)),
                    detail: Some(json!({
                        "kind": found.kind.as_str(),
                        "grant": found.grant_id,
                        "via": "revocation endpoint",
                    })),
                    ..event
                },
            )
        })
        .await?;
    Ok(())
}
