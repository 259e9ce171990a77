//! OAuth in the admin UI: a tenant's OAuth apps (register, rotate the secret, revoke, see
//! and revoke their tokens), and the authorization endpoint (RFC 6749 §4.1.1), where a
//! logged-in admin approves or denies an IdP's connection on a consent page.
//!
//! Authorization errors go back to the client only once its redirect URI is known to be
//! registered (§4.1.2.1); before that they are shown on the page, so scimd never redirects
//! a browser to an address nobody registered.

use askama::Template;
use hyper::StatusCode;
use hyper::header::HeaderValue;

use super::filters;
use super::{
    Layout, PageResult, Req, UiError, html, layout, page_status, redirect, redirect_with_flash,
};
use crate::auth::oauth::{self, ErrorCode, GrantType};
use crate::db::oauth::Client;
use crate::db::{self, tenants::Tenant};
use crate::http::State;
use crate::http::oauth::{AUTHORIZE_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH, public_root};
use crate::ops;
use crate::ops::oauth::{Authorization, Registration, WithSecret};
use crate::scim::datetime;

// --- A tenant's OAuth apps ------------------------------------------------------------------

/// A client secret shown once, right after it was made.
pub(super) struct NewSecret {
    pub name: String,
    pub client_id: String,
    pub secret: String,
    /// A rotation rather than a new app.
    pub rotated: bool,
}

/// What the create form showed, kept when it is shown again with an error.
pub(super) struct CreateForm {
    pub name: String,
    pub redirect_uris: String,
    pub authorization_code: bool,
    pub client_credentials: bool,
}

impl Default for CreateForm {
    fn default() -> Self {
        CreateForm {
            name: String::new(),
            redirect_uris: String::new(),
            authorization_code: true,
            client_credentials: false,
        }
    }
}

#[derive(Template)]
#[template(path = "oauth_apps.html")]
struct AppsPage {
    layout: Layout,
    csrf: String,
    clients: Vec<Client>,
    tokens: Vec<db::oauth::LiveToken>,
    new_secret: Option<NewSecret>,
    error: Option<String>,
    form: CreateForm,
    authorize_url: String,
    token_url: String,
    revoke_url: String,
    metadata_url: String,
    scim_url: String,
}

async fn render(
    state: &State,
    req: &Req,
    tenant: &Tenant,
    new_secret: Option<NewSecret>,
    error: Option<String>,
    form: CreateForm,
) -> PageResult {
    let s = req.session()?;
    let id = tenant.id;
    let now = datetime::now();
    let (clients, tokens) = state
        .db
        .read(move |c| {
            Ok::<_, db::DbError>((
                db::oauth::list_clients(c, Some(id))?,
                db::oauth::live_tokens(c, Some(id), &now)?,
            ))
        })
        .await?;
    let root = public_root(state, &req.headers, req.tls);
    let status = page_status(error.is_some());
    let page = AppsPage {
        layout: layout(state, req, Some(tenant), "oauth").await?,
        csrf: s.session.csrf.clone(),
        clients,
        tokens,
        new_secret,
        error,
        form,
        authorize_url: format!("{root}{AUTHORIZE_PATH}"),
        token_url: format!("{root}{TOKEN_PATH}"),
        revoke_url: format!("{root}{REVOKE_PATH}"),
        metadata_url: format!("{root}{METADATA_PATH}"),
        scim_url: format!("{root}/scim/v2"),
    };
    html(status, &page)
}

pub(super) async fn page(state: &State, req: &Req, tenant: &Tenant) -> PageResult {
    render(state, req, tenant, None, None, CreateForm::default()).await
}

/// Registers a client and shows its secret once, in this response only.
pub(super) async fn create(state: &State, req: &mut Req, tenant: &Tenant) -> PageResult {
    let form = req.form_once(state).await?;
    let shown = CreateForm {
        name: form.trimmed("name").to_string(),
        redirect_uris: form.get("redirect_uris").to_string(),
        authorization_code: !form.get("authorization_code").is_empty(),
        client_credentials: !form.get("client_credentials").is_empty(),
    };
    let mut grants = Vec::new();
    if shown.authorization_code {
        grants.push(GrantType::AuthorizationCode);
    }
    if shown.client_credentials {
        grants.push(GrantType::ClientCredentials);
    }
    let uris: Vec<String> = shown
        .redirect_uris
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let registration = Registration {
        name: shown.name.clone(),
        grant_types: grants,
        redirect_uris: uris,
    };
    let actor = req.actor()?;
    let created = ops::oauth::create_client(&state.db, &actor, tenant.id, registration);
    let WithSecret { client, secret } = match created.await {
        Ok(c) => c,
        Err(db::DbError::Conflict(e)) => {
            let message = format!("{}{}.", e[..1].to_uppercase(), &e[1..]);
            return render(state, req, tenant, None, Some(message), shown).await;
        }
        Err(e) => return Err(e.into()),
    };
    let new = NewSecret {
        name: client.name,
        client_id: client.client_id,
        secret,
        rotated: false,
    };
    render(state, req, tenant, Some(new), None, CreateForm::default()).await
}

/// Replaces a client's secret and shows the new one once.
pub(super) async fn rotate(state: &State, req: &mut Req, tenant: &Tenant, id: &str) -> PageResult {
    req.form_once(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let WithSecret { client, secret } =
        ops::oauth::rotate_secret(&state.db, &req.actor()?, Some(tenant.id), id).await?;
    let new = NewSecret {
        name: client.name,
        client_id: client.client_id,
        secret,
        rotated: true,
    };
    render(state, req, tenant, Some(new), None, CreateForm::default()).await
}

/// Revokes a client and everything it was issued.
pub(super) async fn revoke(state: &State, req: &mut Req, tenant: &Tenant, id: &str) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let client = ops::oauth::revoke_client(&state.db, &req.actor()?, Some(tenant.id), id).await?;
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/oauth", tenant.slug),
        &format!(
            "OAuth app {} revoked. Its secret and every token it was issued stopped working.",
            client.name
        ),
    ))
}

/// Revokes one token: an access token alone, a refresh token with its whole grant.
pub(super) async fn revoke_token(
    state: &State,
    req: &mut Req,
    tenant: &Tenant,
    id: &str,
) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let kind = ops::oauth::revoke_token(&state.db, &req.actor()?, tenant.id, id).await?;
    let message = match kind {
        oauth::TokenKind::Access => "Access token revoked. It stopped working immediately.",
        oauth::TokenKind::Refresh => {
            "Refresh token revoked, with every token of the same approval. The IdP must be authorized again."
        }
    };
    Ok(redirect_with_flash(
        req,
        &format!("/t/{}/oauth", tenant.slug),
        message,
    ))
}

// --- The authorization endpoint -------------------------------------------------------------

/// The parameters of an authorization request that the consent form carries through.
const AUTHORIZE_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
];

/// A valid authorization request.
struct AuthRequest {
    client: Client,
    redirect_uri: String,
    redirect_uri_given: bool,
    state: Option<String>,
    code_challenge: Option<String>,
    scope: String,
    /// The request's own parameters, for the consent form's hidden fields.
    params: Vec<(String, String)>,
}

/// Why an authorization request cannot go on.
enum Refusal {
    /// Shown on the page: the client or its redirect URI is unknown (§4.1.2.1).
    Page(String),
    /// Sent back to the client's registered redirect URI.
    Redirect {
        /// The client's tenant.
        tenant_id: i64,
        redirect_uri: String,
        state: Option<String>,
        code: ErrorCode,
        description: String,
    },
}

/// The authorization request's parameters: known ones only, empty ones dropped; a repeated
/// parameter is remembered so it can be refused.
fn request_params(query: &[(String, String)]) -> (Vec<(String, String)>, Option<String>) {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut repeated = None;
    for (k, v) in query {
        if v.is_empty() || !AUTHORIZE_PARAMS.contains(&k.as_str()) {
            continue;
        }
        if params.iter().any(|(seen, _)| seen == k) {
            repeated.get_or_insert_with(|| k.clone());
            continue;
        }
        params.push((k.clone(), v.clone()));
    }
    (params, repeated)
}

/// Validates an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
async fn check(
    state: &State,
    query: &[(String, String)],
) -> Result<Result<AuthRequest, Refusal>, UiError> {
    let (params, repeated) = request_params(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if matches!(repeated.as_deref(), Some("client_id" | "redirect_uri")) {
        return Ok(Err(Refusal::Page(format!(
            "The authorization request repeats the {} parameter.",
            repeated.unwrap_or_default()
        ))));
    }
    let Some(client_id) = get("client_id") else {
        return Ok(Err(Refusal::Page(
            "The authorization request has no client_id. Start the connection again from your identity provider.".into(),
        )));
    };
    let found = {
        let client_id = client_id.clone();
        state
            .db
            .read(move |c| db::oauth::client_by_client_id(c, &client_id))
            .await?
    };
    let client = match found {
        Some((c, _)) if c.revoked_at.is_none() => c,
        Some(_) => {
            return Ok(Err(Refusal::Page(format!(
                "The OAuth app {client_id} was revoked. Register a new app in scimd and update the identity provider."
            ))));
        }
        None => {
            return Ok(Err(Refusal::Page(format!(
                "There is no OAuth app with client ID {client_id}. Check the client ID entered in your identity provider."
            ))));
        }
    };
    let requested = get("redirect_uri");
    let Some(redirect_uri) =
        oauth::resolve_redirect_uri(&client.redirect_uris, requested.as_deref()).cloned()
    else {
        let message = match &requested {
            Some(r) => format!(
                "The redirect URI {r} is not registered for the OAuth app “{}”. Add it, exactly as the identity provider sends it, to the app in scimd.",
                client.name
            ),
            None => format!(
                "The authorization request names no redirect URI, and the OAuth app “{}” does not have exactly one registered.",
                client.name
            ),
        };
        return Ok(Err(Refusal::Page(message)));
    };
    let client_state = get("state");
    let refuse = |code: ErrorCode, description: String| Refusal::Redirect {
        tenant_id: client.tenant_id,
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
        code,
        description,
    };
    if let Some(name) = repeated {
        return Ok(Err(refuse(
            ErrorCode::InvalidRequest,
            format!("the {name} parameter is repeated"),
        )));
    }
    match get("response_type").as_deref() {
        Some("code") => {}
        None => {
            return Ok(Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required".into(),
            )));
        }
        Some(other) => {
            return Ok(Err(refuse(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use code"),
            )));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Ok(Err(refuse(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization-code grant".into(),
        )));
    }
    let challenge = get("code_challenge");
    if let Err(e) = oauth::check_challenge(
        challenge.as_deref(),
        get("code_challenge_method").as_deref(),
    ) {
        return Ok(Err(refuse(ErrorCode::InvalidRequest, e)));
    }
    let scope = oauth::grant_scope(get("scope").as_deref());
    Ok(Ok(AuthRequest {
        client,
        redirect_uri,
        redirect_uri_given: requested.is_some(),
        state: client_state,
        code_challenge: challenge,
        scope,
        params,
    }))
}

/// Where a refusal goes: the error page, or a redirect back to the client.
fn refusal_response(req: &Req, refusal: Refusal) -> PageResult {
    match refusal {
        Refusal::Page(message) => Err(UiError::BadRequest(message)),
        Refusal::Redirect {
            redirect_uri,
            state,
            code,
            description,
            ..
        } => {
            let mut params = vec![
                ("error", code.as_str()),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                params.push(("state", s));
            }
            tracing::info!(request_id = %req.request_id, error = code.as_str(), "authorization request refused");
            Ok(redirect(&oauth::with_params(&redirect_uri, &params)))
        }
    }
}

/// Audits a refused authorization request (the refusal is still answered).
async fn audit_refusal(state: &State, req: &Req, client_id: Option<&str>, refusal: &Refusal) {
    let (tenant_id, status, error, description) = match refusal {
        Refusal::Page(m) => (None, 400, "invalid_request", m.clone()),
        Refusal::Redirect {
            tenant_id,
            code,
            description,
            ..
        } => (Some(*tenant_id), 303, code.as_str(), description.clone()),
    };
    let actor = req.actor_as(None);
    ops::oauth::authorization_refused(
        &state.db,
        &actor,
        tenant_id,
        client_id,
        status,
        error,
        &description,
    )
    .await;
}

#[derive(Template)]
#[template(path = "oauth_consent.html")]
struct ConsentPage {
    layout: Layout,
    csrf: String,
    client: Client,
    redirect_uri: String,
    redirect_host: String,
    username: String,
    params: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "oauth_continue.html")]
struct ContinuePage {
    layout: Layout,
    url: String,
}

/// The request's own URL (path and query), for coming back after a login.
fn authorize_url(req: &Req) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &req.query {
        q.append_pair(k, v);
    }
    format!("{AUTHORIZE_PATH}?{}", q.finish())
}

/// `GET /oauth/authorize`: the consent page for a logged-in admin.
pub(super) async fn authorize_page(state: &State, req: &Req) -> PageResult {
    // The client and its redirect URI are checked before anything else (RFC 6749
    // §4.1.2.1): an unknown client or an unregistered redirect gets its error page at once,
    // never a login page that would carry the bad URI along.
    // Refusals are audited, and anyone may ask: an address whose requests keep being
    // refused is throttled like failed SCIM authentications, so it cannot grow the audit
    // log without bound. A logged-in admin is not.
    let peer = req.client.filter(|_| req.session.is_none());
    if let Err(seconds) = state.admit(peer, None) {
        return Err(UiError::Throttled(seconds));
    }
    let request = match check(state, &req.query).await? {
        Ok(r) => r,
        Err(refusal) => {
            state.authenticated(peer, None, false);
            audit_refusal(state, req, req.query("client_id"), &refusal).await;
            return refusal_response(req, refusal);
        }
    };
    if req.session.is_none() {
        // The IdP sends the admin here from its own site, and the SameSite=Strict session
        // cookie does not come along on a cross-site navigation. Reload once from this
        // site (a same-site navigation carries the cookie) before asking for a login.
        let cross_site = req
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if cross_site {
            let page = ContinuePage {
                layout: layout(state, req, None, "").await?,
                url: authorize_url(req),
            };
            return html(StatusCode::OK, &page);
        }
        return Err(UiError::Login);
    }
    let s = req.session()?;
    let origin = oauth::origin(&request.redirect_uri).unwrap_or_default();
    // The tenant is named in the header, without its section tabs: nothing to wander off to.
    let mut layout = layout(state, req, None, "").await?;
    layout.tenant_name = request.client.tenant_name.clone();
    let page = ConsentPage {
        layout,
        csrf: s.session.csrf.clone(),
        redirect_host: url_host(&request.redirect_uri),
        redirect_uri: request.redirect_uri,
        username: s.session.username.clone(),
        client: request.client,
        params: request.params,
    };
    let mut r = html(StatusCode::OK, &page)?;
    // The admin UI's policy allows forms to post only to this site, and Chrome applies
    // form-action to the redirect that answers the post too: allow the client's origin,
    // where approving (or denying) sends the browser.
    if let Ok(v) = HeaderValue::from_str(&super::content_security_policy(Some(&origin))) {
        r.headers_mut().insert("content-security-policy", v);
    }
    Ok(r)
}

fn url_host(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// `POST /oauth/authorize`: the admin's decision. The request is validated again (the
/// app may have been revoked meanwhile, and hidden fields can be edited).
pub(super) async fn authorize_decision(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let approve = match form.get("decision") {
        "approve" => true,
        "deny" => false,
        _ => return Err(UiError::BadRequest("Choose Approve or Deny.".into())),
    };
    let pairs: Vec<(String, String)> = AUTHORIZE_PARAMS
        .iter()
        .map(|k| (k.to_string(), form.get(k).to_string()))
        .collect();
    let request = match check(state, &pairs).await? {
        Ok(r) => r,
        Err(refusal) => {
            audit_refusal(state, req, Some(form.get("client_id")), &refusal).await;
            return refusal_response(req, refusal);
        }
    };
    let actor = req.actor()?;
    let authorization = Authorization {
        client: request.client.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_given: request.redirect_uri_given,
        code_challenge: request.code_challenge.clone(),
        scope: request.scope.clone(),
    };
    if !approve {
        let mut params = vec![
            ("error", ErrorCode::AccessDenied.as_str()),
            ("error_description", "the administrator denied the request"),
        ];
        if let Some(s) = &request.state {
            params.push(("state", s));
        }
        let location = oauth::with_params(&request.redirect_uri, &params);
        ops::oauth::deny(&state.db, &actor, &authorization).await?;
        return Ok(redirect(&location));
    }
    let code = ops::oauth::approve(&state.db, &actor, &authorization).await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    Ok(redirect(&oauth::with_params(
        &request.redirect_uri,
        &params,
    )))
}
