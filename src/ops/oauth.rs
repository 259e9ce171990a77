//! OAuth 2.0, scimd as the authorization server of its own SCIM API: clients (created,
//! rotated, revoked by admins), the authorization endpoint's decision, the token endpoint's
//! grants (RFC 6749 §4.1, §4.4, §6 with PKCE and refresh rotation) and revocation (RFC
//! 7009). Every grant, refresh, revocation and refusal is recorded by [`record`], in the
//! audit log and the service log; no secret, code, token or verifier is ever logged.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::throttle::{self, Key};
use crate::auth::oauth::{self, ErrorCode, GrantType, TokenKind};
use crate::auth::tokens;
use crate::db::audit::{self, Action, Entry, Outcome};
use crate::db::oauth::{Client, Code, NewClient};
use crate::db::{Conn, Db, DbError};
use crate::model::{Actor, Who};
use crate::scim::datetime;

/// Records an OAuth event in the audit log and the service log: the one place every OAuth
/// action reaches them. Successes go in the transaction of the change, refusals in a small
/// transaction of their own (after the refused one rolled back).
pub fn record(conn: &Conn, entry: &Entry) -> Result<(), DbError> {
    audit::append(conn, entry)?;
    let detail = entry
        .detail
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_default();
    let target = entry.target.as_deref().unwrap_or("");
    let request_id = entry.request_id.as_deref().unwrap_or("");
    if entry.outcome == Outcome::Success {
        tracing::info!(
            tenant_id = entry.tenant_id,
            actor = %entry.actor,
            action = entry.action.as_str(),
            target = %target,
            request_id = %request_id,
            detail = %detail,
            "oauth"
        );
    } else {
        tracing::warn!(
            tenant_id = entry.tenant_id,
            actor = %entry.actor,
            action = entry.action.as_str(),
            target = %target,
            request_id = %request_id,
            detail = %detail,
            "oauth failure"
        );
    }
    Ok(())
}

/// [`record`] in a transaction of its own, for a refusal; a failure to record is logged,
/// never answered.
async fn record_refusal(db: &Db, entry: Entry) {
    if let Err(err) = db.write(move |tx| record(tx, &entry)).await {
        tracing::error!(error = %err, "could not record an OAuth failure");
    }
}

/// The most bytes of a refusal's description its audit entry keeps: descriptions quote
/// what the caller sent (a client id, a redirect URI, a parameter's name).
const DESCRIPTION_MAX: usize = 500;

fn client_target(client_id: &str) -> Option<String> {
    Some(format!("oauth-client:{client_id}"))
}

// --- Clients ---------------------------------------------------------------------------------

/// A client registration as an admin submits it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
}

/// A client and its secret, shown once.
pub struct WithSecret {
    pub client: Client,
    pub secret: String,
}

/// Registers a client for the tenant (`Conflict` says what is wrong with the registration).
pub async fn create_client(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    registration: Registration,
) -> Result<WithSecret, DbError> {
    let Registration {
        name,
        mut grant_types,
        redirect_uris,
    } = registration;
    grant_types.dedup();
    let uris = oauth::check_registration(&name, &grant_types, &redirect_uris)
        .map_err(DbError::Conflict)?;
    let secret = oauth::generate_client_secret();
    let client_id = oauth::generate_client_id();
    let actor = actor.clone();
    let hash = secret.hash;
    let client = db
        .write(move |tx| {
            let client = crate::db::oauth::create_client(
                tx,
                &NewClient {
                    tenant_id,
                    client_id: &client_id,
                    name: name.trim(),
                    secret_hash: &hash,
                    grant_types: &grant_types,
                    redirect_uris: &uris,
                },
            )?;
            let entry = Entry::new(
                &actor,
                Some(tenant_id),
                Action::OAuthClientCreated,
                client_target(&client.client_id),
            )
            .with_detail(json!({
                "name": client.name,
                "grantTypes": client.grant_types_text(),
                "redirectUris": client.redirect_uris,
            }));
            record(tx, &entry)?;
            Ok::<_, DbError>(client)
        })
        .await?;
    Ok(WithSecret {
        client,
        secret: secret.secret,
    })
}

/// Replaces the secret of client `id` (of `tenant_id`, when given); the old one stops
/// working at once.
pub async fn rotate_secret(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<WithSecret, DbError> {
    let secret = oauth::generate_client_secret();
    let (actor, hash) = (actor.clone(), secret.hash);
    let client = db
        .write(move |tx| {
            let client = crate::db::oauth::set_secret(tx, tenant_id, id, &hash)?;
            let entry = Entry::new(
                &actor,
                Some(client.tenant_id),
                Action::OAuthClientSecretRotated,
                client_target(&client.client_id),
            );
            record(tx, &entry)?;
            Ok::<_, DbError>(client)
        })
        .await?;
    Ok(WithSecret {
        client,
        secret: secret.secret,
    })
}

/// Revokes client `id` (of `tenant_id`, when given) and everything it was issued.
pub async fn revoke_client(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    id: i64,
) -> Result<Client, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let client = crate::db::oauth::revoke_client(tx, tenant_id, id)?;
        let entry = Entry::new(
            &actor,
            Some(client.tenant_id),
            Action::OAuthClientRevoked,
            client_target(&client.client_id),
        );
        record(tx, &entry)?;
        Ok(client)
    })
    .await
}

/// Revokes one of the tenant's tokens from the admin UI: an access token alone, a refresh
/// token with its whole grant. Returns its kind.
pub async fn revoke_token(
    db: &Db,
    actor: &Actor,
    tenant_id: i64,
    id: i64,
) -> Result<TokenKind, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let token = crate::db::oauth::token(tx, tenant_id, id)?;
        crate::db::oauth::revoke_token(tx, &token)?;
        let entry = Entry::new(
            &actor,
            Some(tenant_id),
            Action::OAuthTokenRevoked,
            Some(format!("oauth-token:{id}")),
        )
        .with_detail(json!({
            "kind": token.kind.as_str(),
            "grant": token.grant_id,
            "via": "admin UI",
        }));
        record(tx, &entry)?;
        Ok(token.kind)
    })
    .await
}

// --- The authorization endpoint ----------------------------------------------------------------

/// An authorization request the authorization endpoint validated, awaiting the admin.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client: Client,
    pub redirect_uri: String,
    /// Whether the request named its redirect URI (then the token request must repeat it).
    pub redirect_uri_given: bool,
    pub code_challenge: Option<String>,
    pub scope: String,
}

/// The admin approved `request`: a single-use code bound to the client, redirect URI and
/// PKCE challenge, valid for [`oauth::CODE_SECS`]. Returns the code, to send once.
pub async fn approve(db: &Db, actor: &Actor, request: &Authorization) -> Result<String, DbError> {
    let code = oauth::generate_code();
    let approved_by = match &actor.who {
        Who::Admin(name) => name.clone(),
        other => Actor::new(other.clone(), None).label(),
    };
    let stored = Code {
        client: request.client.id,
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_given: request.redirect_uri_given,
        code_challenge: request.code_challenge.clone(),
        scope: request.scope.clone(),
        approved_by,
        expires_at: datetime::format(
            OffsetDateTime::now_utc() + time::Duration::seconds(oauth::CODE_SECS),
        ),
        used_at: None,
        grant_id: None,
    };
    let entry = Entry::new(
        actor,
        Some(request.client.tenant_id),
        Action::OAuthAuthorizationApproved,
        client_target(&request.client.client_id),
    )
    .with_detail(json!({
        "redirectUri": request.redirect_uri,
        "pkce": request.code_challenge.is_some(),
        "scope": request.scope,
    }));
    let hash = code.hash;
    db.write(move |tx| {
        crate::db::oauth::insert_code(tx, &hash, &stored)?;
        record(tx, &entry)
    })
    .await?;
    Ok(code.secret)
}

/// The admin denied `request`.
pub async fn deny(db: &Db, actor: &Actor, request: &Authorization) -> Result<(), DbError> {
    let entry = Entry::new(
        actor,
        Some(request.client.tenant_id),
        Action::OAuthAuthorizationDenied,
        client_target(&request.client.client_id),
    )
    .with_detail(json!({"redirectUri": request.redirect_uri}));
    db.write(move |tx| record(tx, &entry)).await
}

/// Records an authorization request the endpoint refused (answered on a page, or sent back
/// to the client's redirect URI with `error`).
pub async fn authorization_refused(
    db: &Db,
    actor: &Actor,
    tenant_id: Option<i64>,
    client_id: Option<&str>,
    status: u16,
    error: &str,
    description: &str,
) {
    let entry = Entry::new(
        actor,
        tenant_id,
        Action::OAuthAuthorizationRefused,
        client_id.and_then(client_target),
    )
    .with_status(status)
    .with_detail(json!({"error": error, "description": audit::clip(description, DESCRIPTION_MAX)}));
    record_refusal(db, entry).await;
}

// --- Refusals --------------------------------------------------------------------------------

/// Why the token or revocation endpoint refuses a request (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub description: String,
    /// Locked out by throttling: how long until the client may try again.
    pub retry_after_secs: Option<i64>,
}

impl Refusal {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Refusal {
        Refusal {
            code,
            description: description.into(),
            retry_after_secs: None,
        }
    }

    /// `invalid_request`: the request is malformed.
    pub fn request(description: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidRequest, description)
    }

    fn grant(description: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidGrant, description)
    }

    /// The HTTP status RFC 6749 §5.2 gives it (429 for a throttled client).
    pub fn status(&self) -> u16 {
        match (self.retry_after_secs, self.code) {
            (Some(_), _) => 429,
            (None, ErrorCode::InvalidClient) => 401,
            _ => 400,
        }
    }
}

/// A required parameter is missing.
fn required(name: &str) -> Refusal {
    Refusal::request(format!("the {name} parameter is required"))
}

/// Records a token or revocation request refused before it could be read (not a form, a
/// repeated parameter): nobody is identified yet.
pub async fn unreadable(db: &Db, request_id: &str, action: Action, refusal: &Refusal) {
    let caller = Caller {
        client_id: None,
        tenant_id: None,
        request_id: request_id.to_string(),
        address: String::new(),
    };
    let failure = Failure::Refused(refusal.clone());
    caller.refused(db, action, &failure, None).await;
}

/// How a token or revocation request ends besides success.
#[derive(Debug)]
pub enum Failure {
    Refused(Refusal),
    /// Logged and answered with a bare 500.
    Internal(DbError),
}

impl From<Refusal> for Failure {
    fn from(e: Refusal) -> Self {
        Failure::Refused(e)
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Internal(e)
    }
}

/// Who a token-endpoint request turned out to be, as far as it got: the actor of its audit
/// entries.
struct Caller {
    client_id: Option<String>,
    tenant_id: Option<i64>,
    request_id: String,
    /// The client's network address: failed authentications are counted per client and
    /// address.
    address: String,
}

impl Caller {
    /// The throttle of this caller's client authentications.
    fn throttle(&self, client_id: &str) -> Key {
        Key::client(client_id, &self.address)
    }
}

impl Caller {
    fn actor(&self) -> Actor {
        let who = match &self.client_id {
            Some(id) => Who::OAuthClient(id.clone()),
            None => Who::Anonymous,
        };
        Actor::new(who, Some(&self.request_id))
    }

    fn entry(&self, action: Action) -> Entry {
        let target = self.client_id.as_deref().and_then(client_target);
        Entry::new(&self.actor(), self.tenant_id, action, target)
    }

    /// Records a refused request in a transaction of its own.
    async fn refused(&self, db: &Db, action: Action, failure: &Failure, grant_type: Option<&str>) {
        let (detail, status) = match failure {
            Failure::Refused(e) => (
                json!({
                    "error": e.code.as_str(),
                    "description": audit::clip(&e.description, DESCRIPTION_MAX),
                    "grantType": grant_type.map(|g| audit::clip(g, DESCRIPTION_MAX)),
                }),
                e.status(),
            ),
            Failure::Internal(_) => (
                json!({"error": "server_error", "grantType": grant_type}),
                500,
            ),
        };
        let entry = self
            .entry(action)
            .with_status(status)
            .with_detail(detail)
            .failed();
        record_refusal(db, entry).await;
    }
}

/// Authenticates the client (throttled per client): its registration, or `invalid_client`.
async fn authenticate_client(
    db: &Db,
    id: &str,
    secret: String,
    caller: &mut Caller,
) -> Result<Client, Failure> {
    caller.client_id = Some(id.to_string());
    let key = caller.throttle(id);
    let (locked, found) = {
        let (key, id) = (key.clone(), id.to_string());
        db.read(move |c| {
            Ok::<_, DbError>((
                throttle::locked_until(c, &[&key])?,
                crate::db::oauth::client_by_client_id(c, &id)?,
            ))
        })
        .await?
    };
    if let Some(until) = locked {
        return Err(Refusal {
            retry_after_secs: Some(throttle::seconds_until(&until)),
            ..Refusal::new(
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
                db.write(move |tx| throttle::fail(tx, &key)).await?;
            }
            Err(Refusal::new(
                ErrorCode::InvalidClient,
                "unknown client, wrong secret, or revoked client",
            )
            .into())
        }
    }
}

// --- The token endpoint ------------------------------------------------------------------------

/// The client id and secret a request presented, or why they could not be read.
pub type Presented = Result<(String, String), Refusal>;

/// A token request as the client sent it (RFC 6749 §4.1.3, §4.4.2, §6); absent parameters
/// are `None`.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client: Presented,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// The client's network address (failed authentications are counted per address).
    pub address: String,
}

/// Tokens issued by one successful token request.
pub struct Issued {
    pub access: String,
    pub refresh: Option<String>,
    pub scope: String,
}

/// The token endpoint: authenticates the client and runs its grant. A refusal is recorded
/// before it is returned.
pub async fn token(db: &Db, request_id: &str, req: TokenRequest) -> Result<Issued, Failure> {
    let mut caller = Caller {
        client_id: None,
        tenant_id: None,
        request_id: request_id.to_string(),
        address: req.address.clone(),
    };
    let grant_type = req.grant_type.clone();
    let outcome = token_inner(db, &mut caller, req).await;
    if let Err(f) = &outcome {
        let seen = grant_type.as_deref();
        caller.refused(db, Action::OAuthTokenRefused, f, seen).await;
    }
    outcome
}

async fn token_inner(db: &Db, caller: &mut Caller, req: TokenRequest) -> Result<Issued, Failure> {
    let grant_type = req.grant_type.ok_or_else(|| required("grant_type"))?;
    let grant: GrantType = grant_type.parse().map_err(|_| {
        Refusal::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "unsupported grant_type {grant_type:?}; use authorization_code, refresh_token or client_credentials"
            ),
        )
    })?;
    let (id, secret) = req.client?;
    let client = authenticate_client(db, &id, secret, caller).await?;
    let key = caller.throttle(&id);
    if !client.allows(grant) {
        return Err(Refusal::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {grant} grant (it may use: {})",
                client.grant_types_text()
            ),
        )
        .into());
    }
    let outcome = match grant {
        GrantType::AuthorizationCode => {
            let code = req.code.ok_or_else(|| required("code"))?;
            let event = caller.entry(Action::OAuthTokenIssued);
            let (redirect_uri, verifier) = (req.redirect_uri, req.code_verifier);
            db.write(move |tx| {
                exchange_code(tx, &client, &key, &code, redirect_uri, verifier, event)
            })
            .await?
        }
        GrantType::RefreshToken => {
            let refresh = req.refresh_token.ok_or_else(|| required("refresh_token"))?;
            let event = caller.entry(Action::OAuthTokenRefreshed);
            // A requested scope is ignored as on every grant ([`oauth::grant_scope`]): a
            // refresh gives the scope of the original grant, never more.
            db.write(move |tx| refresh_grant(tx, &client, &key, &refresh, event))
                .await?
        }
        GrantType::ClientCredentials => {
            let scope = oauth::grant_scope(req.scope.as_deref());
            let event = caller.entry(Action::OAuthTokenIssued);
            db.write(move |tx| {
                let grant = crate::db::oauth::create_grant(
                    tx,
                    client.id,
                    GrantType::ClientCredentials,
                    &scope,
                    None,
                )?;
                let grant_type = GrantType::ClientCredentials;
                issue(tx, &key, grant, &scope, false, grant_type, event).map(Ok)
            })
            .await?
        }
    };
    Ok(outcome?)
}

/// Issues an access token (and a refresh token) in `grant`, sweeps expired rows, clears
/// the client's failure count and records the grant.
fn issue(
    tx: &Conn,
    throttle_key: &Key,
    grant: i64,
    scope: &str,
    with_refresh: bool,
    grant_type: GrantType,
    event: Entry,
) -> Result<Issued, DbError> {
    crate::db::oauth::sweep(tx)?;
    let now = OffsetDateTime::now_utc();
    let access = oauth::generate_token(TokenKind::Access);
    let access_expires = datetime::format(now + time::Duration::seconds(oauth::ACCESS_TOKEN_SECS));
    let access_id =
        crate::db::oauth::insert_token(tx, grant, TokenKind::Access, &access, &access_expires)?;
    let refresh = if with_refresh {
        let t = oauth::generate_token(TokenKind::Refresh);
        let expires = datetime::format(now + time::Duration::days(oauth::REFRESH_TOKEN_DAYS));
        crate::db::oauth::insert_token(tx, grant, TokenKind::Refresh, &t, &expires)?;
        Some(t.secret)
    } else {
        None
    };
    throttle::clear(tx, throttle_key)?;
    let event = event.with_detail(json!({
        "grantType": grant_type.as_str(),
        "grant": grant,
        "accessToken": access_id,
        "refreshToken": refresh.is_some(),
    }));
    record(tx, &event)?;
    Ok(Issued {
        access: access.secret,
        refresh,
        scope: scope.to_string(),
    })
}

/// A whole grant revoked because a spent code or refresh token was presented again.
fn revoke_reused(tx: &Conn, grant: i64, reason: &str, event: &Entry) -> Result<(), DbError> {
    crate::db::oauth::revoke_grant(tx, grant)?;
    let mut entry = event
        .clone()
        .with_detail(json!({"grant": grant, "reason": reason}))
        .failed();
    entry.action = Action::OAuthGrantRevoked;
    record(tx, &entry)
}

/// The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.5). A refusal that must
/// be remembered (the code is burnt, a reused code's grant revoked) commits, so the
/// refusal is the inner `Err`.
fn exchange_code(
    tx: &Conn,
    client: &Client,
    key: &Key,
    code: &str,
    redirect_uri: Option<String>,
    verifier: Option<String>,
    event: Entry,
) -> Result<Result<Issued, Refusal>, DbError> {
    let hash = tokens::hash(code);
    let Some(stored) = crate::db::oauth::code(tx, &hash)? else {
        return Ok(Err(Refusal::grant("unknown authorization code")));
    };
    if stored.client != client.id {
        return Ok(Err(Refusal::grant(
            "the authorization code was issued to another client",
        )));
    }
    if stored.used_at.is_some() {
        // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
        if let Some(grant) = stored.grant_id {
            revoke_reused(tx, grant, "authorization code reused", &event)?;
        }
        return Ok(Err(Refusal::grant(
            "the authorization code was already used; the tokens issued for it are revoked",
        )));
    }
    // From here on the code is spent whatever the outcome: one attempt per code.
    let refusal = if stored.expires_at <= datetime::now() {
        Some(Refusal::grant("the authorization code expired"))
    } else if stored.redirect_uri_given && redirect_uri.is_none() {
        Some(Refusal::request(
            "redirect_uri is required: the authorization request included it",
        ))
    } else if redirect_uri
        .as_deref()
        .is_some_and(|r| r != stored.redirect_uri)
    {
        Some(Refusal::grant(
            "redirect_uri differs from the one in the authorization request",
        ))
    } else {
        match (&stored.code_challenge, &verifier) {
            (Some(challenge), Some(v)) if oauth::verify_pkce(v, challenge) => None,
            (Some(_), Some(_)) => Some(Refusal::grant("PKCE verification failed")),
            (Some(_), None) => Some(Refusal::grant(
                "code_verifier is required: the authorization request sent a code_challenge",
            )),
            (None, Some(_)) => Some(Refusal::grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            )),
            (None, None) => None,
        }
    };
    if let Some(refusal) = refusal {
        crate::db::oauth::use_code(tx, &hash, None)?;
        return Ok(Err(refusal));
    }
    let grant = crate::db::oauth::create_grant(
        tx,
        client.id,
        GrantType::AuthorizationCode,
        &stored.scope,
        Some(&stored.approved_by),
    )?;
    crate::db::oauth::use_code(tx, &hash, Some(grant))?;
    let grant_type = GrantType::AuthorizationCode;
    issue(tx, key, grant, &stored.scope, true, grant_type, event).map(Ok)
}

/// The refresh-token grant (RFC 6749 §6) with rotation: each refresh token works once;
/// presenting a spent one revokes its whole family (OAuth 2.0 Security BCP §4.14).
fn refresh_grant(
    tx: &Conn,
    client: &Client,
    key: &Key,
    refresh: &str,
    event: Entry,
) -> Result<Result<Issued, Refusal>, DbError> {
    let Some(token) = crate::db::oauth::token_by_hash(tx, &tokens::hash(refresh))? else {
        return Ok(Err(Refusal::grant("unknown refresh token")));
    };
    if token.kind != TokenKind::Refresh || token.client != client.id {
        return Ok(Err(Refusal::grant("unknown refresh token for this client")));
    }
    let now = datetime::now();
    if let (Some(used_at), None, false) = (&token.used_at, &token.revoked_at, token.grant_revoked) {
        // A retry after a lost answer: once, soon after, and only if nothing issued by the
        // rotation was used. The spent token is revoked, so a third try revokes the grant.
        let grace = datetime::format(
            OffsetDateTime::now_utc() - time::Duration::seconds(oauth::REFRESH_RETRY_GRACE_SECS),
        );
        if *used_at >= grace
            && let Some(lost) = crate::db::oauth::unused_successors(tx, token.grant_id, token.id)?
        {
            crate::db::oauth::revoke_tokens(tx, &lost)?;
            crate::db::oauth::revoke_tokens(tx, &[token.id])?;
            let grant_type = GrantType::RefreshToken;
            return issue(
                tx,
                key,
                token.grant_id,
                &token.scope,
                true,
                grant_type,
                event,
            )
            .map(Ok);
        }
    }
    if token.used_at.is_some() && !token.grant_revoked {
        revoke_reused(tx, token.grant_id, "refresh token reused", &event)?;
        return Ok(Err(Refusal::grant(
            "the refresh token was already used; every token of this grant is revoked",
        )));
    }
    if !token.live(&now) || token.used_at.is_some() {
        return Ok(Err(Refusal::grant(
            "the refresh token expired or was revoked",
        )));
    }
    if !crate::db::oauth::use_refresh_token(tx, token.id)? {
        return Ok(Err(Refusal::grant("the refresh token was already used")));
    }
    let grant_type = GrantType::RefreshToken;
    issue(
        tx,
        key,
        token.grant_id,
        &token.scope,
        true,
        grant_type,
        event,
    )
    .map(Ok)
}

// --- Revocation (RFC 7009) ---------------------------------------------------------------------

/// A revocation request as the client sent it.
#[derive(Debug, Clone)]
pub struct RevocationRequest {
    pub client: Presented,
    pub token: Option<String>,
    /// The client's network address.
    pub address: String,
}

/// The revocation endpoint: a client revokes one of its own tokens (a refresh token with
/// its grant). An unknown token is not an error (§2.2). A refusal is recorded.
pub async fn revoke(db: &Db, request_id: &str, req: RevocationRequest) -> Result<(), Failure> {
    let mut caller = Caller {
        client_id: None,
        tenant_id: None,
        request_id: request_id.to_string(),
        address: req.address.clone(),
    };
    let outcome = revoke_inner(db, &mut caller, req).await;
    if let Err(f) = &outcome {
        caller
            .refused(db, Action::OAuthRevokeRefused, f, None)
            .await;
    }
    outcome
}

async fn revoke_inner(db: &Db, caller: &mut Caller, req: RevocationRequest) -> Result<(), Failure> {
    let (id, secret) = req.client?;
    let client = authenticate_client(db, &id, secret, caller).await?;
    let token = req.token.ok_or_else(|| required("token"))?;
    // token_type_hint is optional and only a hint (§2.1): both kinds are looked up anyway.
    let event = caller.entry(Action::OAuthTokenRevoked);
    db.write(move |tx| {
        let Some(found) = crate::db::oauth::token_by_hash(tx, &tokens::hash(&token))? else {
            return Ok(());
        };
        if found.client != client.id {
            // Another client's token is invalid for this one: not revoked, not revealed,
            // but recorded.
            let entry = event
                .with_detail(json!({"token": found.id, "reason": "token of another client"}))
                .failed();
            return record(tx, &entry);
        }
        crate::db::oauth::revoke_token(tx, &found)?;
        let mut entry = event.with_detail(json!({
            "kind": found.kind.as_str(),
            "grant": found.grant_id,
            "via": "revocation endpoint",
        }));
        entry.target = Some(format!("oauth-token:{}", found.id));
        record(tx, &entry)
    })
    .await?;
    Ok(())
}
