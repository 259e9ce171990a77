//! The admin web UI: small server-rendered pages (askama templates compiled into the
//! binary), working without JavaScript.
//!
//! Security: a session cookie (random, stored hashed, HttpOnly, SameSite=Strict, Secure
//! behind TLS), a per-session CSRF token checked in constant time on every POST (every
//! state change is a POST), login throttling, and a strict Content-Security-Policy with the
//! usual headers on every page.

mod access;
mod apps;
mod audit;
mod connection;
mod dashboard;
mod form;
mod groups;
mod guard;
mod oauth;
mod people;
mod requests;
mod roles;
mod settings;
mod sync;
mod tenants;

pub(crate) use form::Form;
pub(super) use form::SentForms;
pub(super) use people::PendingImports;
pub(crate) use roles::roles_of;
pub(crate) use settings::update_of as settings_update_of;

use std::net::IpAddr;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};

use super::{Body, RequestBody, State};
use crate::auth;
use crate::db::admins::Session;
use crate::db::tenants::Tenant;
use crate::db::{self, DbError};
use crate::model::{Actor, Who};
use crate::scim::datetime;

const SESSION_COOKIE: &str = "scimd_session";
const FLASH_COOKIE: &str = "scimd_flash";
/// Double-submit cookie protecting the login and setup forms, which have no session yet.
const LOGIN_CSRF_COOKIE: &str = "scimd_login_csrf";

/// The request as the admin pages see it.
pub(super) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Option<RequestBody>,
    pub request_id: String,
    /// Who sent it (`http::client_address`).
    pub client: Option<IpAddr>,
    /// Served over TLS by scimd itself.
    pub tls: bool,
    /// Served over TLS (directly or behind a proxy that says so): cookies get `Secure`.
    pub secure: bool,
    pub session: Option<LiveSession>,
    pub flash: Option<String>,
}

/// A logged-in admin.
#[derive(Clone)]
pub(super) struct LiveSession {
    pub session: Session,
    pub id_hash: [u8; 32],
}

impl Req {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// The submitted form fields; a form without a valid CSRF token is refused.
    pub async fn form(&mut self, state: &State) -> Result<Form, UiError> {
        let config = &state.config;
        self.form_limited(config.max_body_bytes, config.body_read_timeout)
            .await
    }

    /// [`Req::form`] for a form that makes a secret ([`sent_once`]).
    pub async fn form_once(&mut self, state: &State) -> Result<Form, UiError> {
        let form = self.form(state).await?;
        sent_once(state, &form)?;
        Ok(form)
    }

    /// [`Req::form`] for a form that may carry more than the usual body limit (an uploaded
    /// file), as `application/x-www-form-urlencoded` or `multipart/form-data`, arriving
    /// within `timeout`.
    pub async fn form_limited(&mut self, limit: usize, timeout: Duration) -> Result<Form, UiError> {
        let form = self.read_form(limit, timeout).await?;
        let expected = self
            .session
            .as_ref()
            .map(|s| s.session.csrf.clone())
            .ok_or(UiError::Login)?;
        if !auth::constant_time_eq(form.get("csrf"), &expected) {
            return Err(UiError::Forbidden(
                "the form expired or did not come from this site; reload the page and try again"
                    .into(),
            ));
        }
        Ok(form)
    }

    async fn form_unchecked(&mut self, state: &State) -> Result<Form, UiError> {
        let config = &state.config;
        self.read_form(config.max_body_bytes, config.body_read_timeout)
            .await
    }

    async fn read_form(&mut self, limit: usize, timeout: Duration) -> Result<Form, UiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Ok(boundary) = multer::parse_boundary(content_type) {
            let body = self
                .body
                .take()
                .ok_or_else(|| UiError::BadRequest("no form body".into()))?;
            let read = tokio::time::timeout(timeout, people::read_multipart(body, boundary, limit));
            return read
                .await
                .map_err(|_| UiError::BadRequest(super::body_timed_out(timeout).detail))?;
        }
        let body = self
            .body
            .take()
            .ok_or_else(|| UiError::BadRequest("no form body".into()))?;
        let declared = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = super::read_body(body, declared, limit, timeout)
            .await
            .map_err(|e| UiError::BadRequest(e.detail))?;
        Form::urlencoded(&bytes).map_err(UiError::BadRequest)
    }

    pub fn session(&self) -> Result<&LiveSession, UiError> {
        self.session.as_ref().ok_or(UiError::Login)
    }

    /// Who acts in this request: `who` when given (a login names the admin it is about to
    /// log in), else the logged-in admin, else nobody known yet.
    pub fn actor_as(&self, who: Option<Who>) -> Actor {
        let who = who.unwrap_or_else(|| match &self.session {
            Some(s) => Who::Admin(s.session.username.clone()),
            None => Who::Anonymous,
        });
        Actor::new(who, Some(&self.request_id))
    }

    /// The logged-in admin, acting in this request: the actor of the changes it makes.
    pub fn actor(&self) -> Result<Actor, UiError> {
        let s = self.session()?;
        Ok(Actor::admin(&s.session.username, &self.request_id))
    }
}

/// The expiry an "Expires" select of a create form chose: `never` (or nothing), or a
/// number of days up to ten years; `Err` for anything else.
pub(super) fn expiry(value: &str) -> Result<Option<String>, String> {
    match value.trim() {
        "" | "never" => Ok(None),
        days => match days.parse::<i64>() {
            Ok(d) if (1..=3650).contains(&d) => Ok(Some(datetime::in_days(d))),
            _ => Err("Choose a valid expiry.".into()),
        },
    }
}

/// How a page can fail; each becomes a friendly page or a redirect.
#[derive(Debug)]
pub(super) enum UiError {
    /// What the request names (a member, a token, an endpoint) is not there.
    NotFound,
    /// No page answers this address, or its tenant does not exist.
    NoSuchPage,
    /// Not logged in: go to the login page and come back.
    Login,
    Forbidden(String),
    BadRequest(String),
    /// The client's address failed too often: a 429 page, retry after these seconds.
    Throttled(u64),
    /// The storage cannot take writes now: a 503 page.
    Unavailable(String),
    Internal(String),
}

impl From<DbError> for UiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound | DbError::TenantDeleted => UiError::NotFound,
            DbError::Conflict(m) => UiError::BadRequest(m),
            other if other.unavailable() => UiError::Unavailable(other.to_string()),
            other => UiError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        UiError::Internal(format!("template: {e}"))
    }
}

pub(super) type PageResult = Result<Response<Body>, UiError>;

/// What every page's layout shows: who is logged in, the tenant, the section, a notice.
pub(super) struct Layout {
    pub session: Option<Session>,
    pub tenants: Vec<Tenant>,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub section: &'static str,
    pub test_mode: bool,
    /// Deprovisionings the guard holds in this tenant, if it tripped.
    pub held: Option<u64>,
    /// Whether an admin rejected what the open hold holds (it holds them still).
    pub held_rejected: bool,
    pub flash: Option<String>,
    /// The flash reports a failure ([`redirect_with_failure`]): shown as an error.
    pub flash_failed: bool,
    pub version: &'static str,
    /// This page's mark for the forms on it that make a secret ([`sent_once`]).
    pub once: String,
}

/// The sections of a tenant, in navigation order: (key, label, path under /t/<slug>).
const SECTIONS: &[(&str, &str, &str)] = &[
    ("dashboard", "Dashboard", ""),
    ("connection", "SCIM connection", "connection"),
    ("oauth", "OAuth apps", "oauth"),
    ("people", "People", "people"),
    ("groups", "Groups", "groups"),
    ("sync", "Test mode & sync", "sync"),
    ("roles", "Roles", "roles"),
    ("apps", "Apps", "apps"),
    ("requests", "Requests", "requests"),
    ("audit", "Audit log", "audit"),
    ("settings", "Settings", "settings"),
];

/// One entry of the section navigation.
pub(super) struct NavItem {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

impl Layout {
    pub fn nav(&self) -> Vec<NavItem> {
        SECTIONS
            .iter()
            .map(|(key, label, path)| NavItem {
                label,
                href: format!("/t/{}/{path}", self.tenant_slug),
                current: *key == self.section,
            })
            .collect()
    }
}

/// Builds the layout for a page of `tenant` (or of no tenant, with `None`).
/// For a form that makes a secret: refused when its page sent it before (a reload of the
/// page its answer showed, a second click), so one click makes one secret. A form without
/// a mark (a script) is taken as it comes.
pub(super) fn sent_once(state: &State, form: &Form) -> Result<(), UiError> {
    match form.field("once") {
        Some(once) if !state.sent_forms.first(&once) => Err(UiError::BadRequest(
            "This form was sent already (the page was reloaded, or the button clicked twice). \
             Nothing more was made: a secret is shown once, when it is made. Open the page \
             again to see what exists."
                .into(),
        )),
        _ => Ok(()),
    }
}

pub(super) async fn layout(
    state: &State,
    req: &Req,
    tenant: Option<&Tenant>,
    section: &'static str,
) -> Result<Layout, UiError> {
    let tenant_id = tenant.map(|t| t.id);
    let (tenants, test_mode, held) = state
        .db
        .read(move |c| {
            let (test_mode, held) = match tenant_id {
                Some(id) => (
                    db::settings::get(c, id)?.test_mode,
                    match db::guard::open_hold(c, id)? {
                        Some(h) => Some((
                            db::guard::held_count(c, h.id)?,
                            h.state == db::guard::HoldState::Rejected,
                        )),
                        None => None,
                    },
                ),
                None => (false, None),
            };
            Ok::<_, DbError>((db::tenants::list(c)?, test_mode, held))
        })
        .await?;
    Ok(Layout {
        session: req.session.as_ref().map(|s| s.session.clone()),
        tenants,
        tenant_slug: tenant.map(|t| t.slug.clone()).unwrap_or_default(),
        tenant_name: tenant.map(|t| t.name.clone()).unwrap_or_else(|| "—".into()),
        section,
        test_mode,
        held: held.map(|(n, _)| n),
        held_rejected: held.is_some_and(|(_, rejected)| rejected),
        flash: req
            .flash
            .as_deref()
            .map(|f| f.strip_prefix(FAILURE_FLASH).unwrap_or(f).to_string()),
        flash_failed: req
            .flash
            .as_deref()
            .is_some_and(|f| f.starts_with(FAILURE_FLASH)),
        version: env!("CARGO_PKG_VERSION"),
        once: crate::auth::random_hex(16),
    })
}

pub(in crate::http) async fn handle(
    state: &State,
    req: Request<RequestBody>,
    request_id: &str,
    conn: crate::http::Conn,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let secure = conn.tls
        || state
            .config
            .base_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let mut req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body: Some(body),
        request_id: request_id.to_string(),
        client: conn.client,
        tls: conn.tls,
        secure,
        session: None,
        flash: None,
    };
    let had_flash = req.cookie(FLASH_COOKIE).is_some();
    req.flash = req.cookie(FLASH_COOKIE).map(|f| {
        form_urlencoded::parse(format!("m={f}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    });
    let outcome = match load_session(state, &mut req).await {
        Ok(()) => route(state, &mut req).await,
        Err(e) => Err(e),
    };
    let mut response = match outcome {
        Ok(r) => r,
        Err(e) => error_page(state, &req, e).await,
    };
    if had_flash && req.method == Method::GET && response.status() == StatusCode::OK {
        set_cookie(&mut response, expired_cookie(FLASH_COOKIE, req.secure));
    }
    security_headers(response.headers_mut());
    if req.secure {
        // Browsers heed it over HTTPS only, and keep to HTTPS for this host for a year
        // (RFC 6797): no later visit goes out in the clear. Other hosts of the domain are
        // not scimd's to speak for, so no includeSubDomains.
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn load_session(state: &State, req: &mut Req) -> Result<(), UiError> {
    let Some(secret) = req.cookie(SESSION_COOKIE) else {
        return Ok(());
    };
    let id_hash = auth::tokens::hash(&secret);
    let session = crate::ops::admins::session(&state.db, id_hash).await?;
    req.session = session.map(|session| LiveSession { session, id_hash });
    Ok(())
}

async fn route(state: &State, req: &mut Req) -> PageResult {
    let path = req.path.clone();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    match (segments.as_slice(), get, post) {
        ([], true, _) => access::home(state, req).await,
        (["login"], true, _) => access::login_page(state, req, None).await,
        (["login"], _, true) => access::login(state, req).await,
        (["logout"], _, true) => access::logout(state, req).await,
        (["setup"], true, _) => access::setup_page(state, req, None).await,
        (["setup"], _, true) => access::setup(state, req).await,
        (["admins"], true, _) => access::admins_page(state, req, None).await,
        (["admins"], _, true) => access::create_admin(state, req).await,
        (["admins", "password"], _, true) => access::change_password(state, req).await,
        (["admins", id, "delete"], true, _) => {
            access::delete_admin_page(state, req, id, None).await
        }
        (["admins", id, "delete"], _, true) => access::delete_admin(state, req, id).await,
        (["tenants"], true, _) => tenants::list_page(state, req, None).await,
        (["tenants"], _, true) => tenants::create(state, req).await,
        (["tenants", slug, "delete"], true, _) => {
            tenants::delete_page(state, req, slug, None).await
        }
        (["tenants", slug, "delete"], _, true) => tenants::delete(state, req, slug).await,
        (["audit"], true, _) => {
            req.session()?;
            audit::page(state, req, audit::Log::Outside).await
        }
        (["audit", "export.jsonl"], true, _) => {
            req.session()?;
            audit::export(state, req, audit::Log::Outside).await
        }
        (["audit", "deleted", id], true, _) => {
            req.session()?;
            audit::page(state, req, audit::Log::deleted(state, id).await?).await
        }
        (["audit", "deleted", id, "export.jsonl"], true, _) => {
            req.session()?;
            audit::export(state, req, audit::Log::deleted(state, id).await?).await
        }
        (["oauth", "authorize"], true, _) => oauth::authorize_page(state, req).await,
        (["oauth", "authorize"], _, true) => oauth::authorize_decision(state, req).await,
        (["t", slug, rest @ ..], _, _) => {
            req.session()?;
            let slug = slug.to_string();
            let tenant = state
                .db
                .read(move |c| db::tenants::by_slug(c, &slug))
                .await
                .map_err(|e| match UiError::from(e) {
                    UiError::NotFound => UiError::NoSuchPage,
                    other => other,
                })?;
            crate::http::note_tenant(tenant.id);
            match (rest, get, post) {
                ([], true, _) => dashboard::page(state, req, &tenant).await,
                (["connection"], true, _) => connection::page(state, req, &tenant).await,
                (["tokens"], _, true) => connection::create_token(state, req, &tenant).await,
                (["tokens", id, "revoke"], _, true) => {
                    connection::revoke_token(state, req, &tenant, id).await
                }
                (["tokens", id, "regenerate"], _, true) => {
                    connection::regenerate_token(state, req, &tenant, id).await
                }
                (["oauth"], true, _) => oauth::page(state, req, &tenant).await,
                (["oauth"], _, true) => oauth::create(state, req, &tenant).await,
                (["oauth", "tokens", id, "revoke"], _, true) => {
                    oauth::revoke_token(state, req, &tenant, id).await
                }
                (["oauth", id, "rotate"], _, true) => oauth::rotate(state, req, &tenant, id).await,
                (["oauth", id, "revoke"], _, true) => oauth::revoke(state, req, &tenant, id).await,
                (["people"], true, _) => people::list_page(state, req, &tenant).await,
                (["people", "export.csv"], true, _) => {
                    people::export(state, req, &tenant, crate::ops::members::ExportFormat::Csv)
                        .await
                }
                (["people", "export.json"], true, _) => {
                    people::export(state, req, &tenant, crate::ops::members::ExportFormat::Json)
                        .await
                }
                (["people", "new"], true, _) => people::add_page(state, req, &tenant).await,
                (["people", "new"], _, true) => people::add(state, req, &tenant).await,
                (["people", "import"], true, _) => people::import_page(state, req, &tenant).await,
                (["people", "import"], _, true) => people::preview(state, req, &tenant).await,
                (["people", "import", "confirm"], _, true) => {
                    people::confirm(state, req, &tenant).await
                }
                (["people", id], true, _) => people::member_page(state, req, &tenant, id).await,
                (["people", id, "managed"], _, true) => {
                    people::set_managed(state, req, &tenant, id).await
                }
                (["people", id, "status"], _, true) => {
                    people::set_status(state, req, &tenant, id).await
                }
                (["people", id, "restore"], _, true) => {
                    people::restore(state, req, &tenant, id).await
                }
                (["groups"], true, _) => groups::list_page(state, req, &tenant).await,
                (["groups", id], true, _) => groups::group_page(state, req, &tenant, id).await,
                (["apps"], true, _) => apps::page(state, req, &tenant).await,
                (["apikeys"], _, true) => apps::create_key(state, req, &tenant).await,
                (["apikeys", id, "revoke"], _, true) => {
                    apps::revoke_key(state, req, &tenant, id).await
                }
                (["events"], true, _) => apps::events_page(state, req, &tenant).await,
                (["webhooks"], _, true) => apps::add_webhook(state, req, &tenant).await,
                (["webhooks", id], true, _) => apps::webhook_page(state, req, &tenant, id).await,
                (["webhooks", id, action], _, true) => {
                    apps::webhook_action(state, req, &tenant, id, action).await
                }
                (["guard"], true, _) => guard::page(state, req, &tenant).await,
                (["guard", id, decision], _, true) => {
                    guard::decide(state, req, &tenant, id, decision).await
                }
                (["requests"], true, _) => requests::list_page(state, req, &tenant).await,
                (["requests", id], true, _) => {
                    requests::request_page(state, req, &tenant, id).await
                }
                (["audit"], true, _) => audit::page(state, req, audit::Log::Of(&tenant)).await,
                (["audit", "export.jsonl"], true, _) => {
                    audit::export(state, req, audit::Log::Of(&tenant)).await
                }
                (["sync"], true, _) => sync::page(state, req, &tenant).await,
                (["sync", "test-mode"], _, true) => sync::set_test_mode(state, req, &tenant).await,
                (["sync", "run"], _, true) => sync::force(state, req, &tenant).await,
                (["sync", "report.csv"], true, _) => sync::export_csv(state, &tenant).await,
                (["sync", "report.json"], true, _) => sync::export_json(state, &tenant).await,
                (["roles"], true, _) => roles::page(state, req, &tenant).await,
                (["roles"], _, true) => roles::update(state, req, &tenant).await,
                (["roles", "map"], _, true) => roles::map(state, req, &tenant).await,
                (["roles", "unmap"], _, true) => roles::unmap(state, req, &tenant).await,
                (["settings"], true, _) => settings::page(state, req, &tenant).await,
                (["settings"], _, true) => settings::update(state, req, &tenant).await,
                _ => Err(UiError::NoSuchPage),
            }
        }
        _ => Err(UiError::NoSuchPage),
    }
}

// --- Responses --------------------------------------------------------------------------

/// A page's status: 400 when it is shown again with what was wrong with a form, else 200.
pub(super) fn page_status(refused: bool) -> StatusCode {
    if refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

pub(super) fn html(status: StatusCode, page: &impl Template) -> PageResult {
    let body = page.render()?;
    let mut r = Response::new(Body::from(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(r)
}

/// A file to download: `content_type`, saved as `filename`.
pub(super) fn download(content_type: &'static str, filename: &str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(Bytes::from(body)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// 303 See Other to `to` (after a POST, so a reload does not repeat it).
pub(super) fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// What starts a flash message that reports a failure.
const FAILURE_FLASH: &str = "!";

/// A redirect that shows `message` once on the next page, as an error: for an action that
/// ran and failed where only the next page shows why (a test event the endpoint refused).
pub(super) fn redirect_with_failure(req: &Req, to: &str, message: &str) -> Response<Body> {
    redirect_with_flash(req, to, &format!("{FAILURE_FLASH}{message}"))
}

/// A redirect that shows `message` once on the next page.
pub(super) fn redirect_with_flash(req: &Req, to: &str, message: &str) -> Response<Body> {
    let mut r = redirect(to);
    let value: String = form_urlencoded::byte_serialize(message.as_bytes()).collect();
    let c = Cookie::build((FLASH_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.secure)
        .max_age(cookie::time::Duration::seconds(60))
        .build();
    set_cookie(&mut r, c);
    r
}

pub(super) fn set_cookie(r: &mut Response<Body>, c: Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn expired_cookie(name: &'static str, secure: bool) -> Cookie<'static> {
    Cookie::build((name, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO)
        .build()
}

/// The admin UI's Content-Security-Policy; `form_action` adds one origin that forms may
/// post to (and be redirected to), for the OAuth consent page.
pub(super) fn content_security_policy(form_action: Option<&str>) -> String {
    let extra = form_action.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    if !h.contains_key("content-security-policy")
        && let Ok(v) = HeaderValue::from_str(&content_security_policy(None))
    {
        h.insert("content-security-policy", v);
    }
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    // Sent to this server only: a form sent after the session ended finds its page again.
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    set(h, "cross-origin-opener-policy", "same-origin");
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    message: String,
    request_id: String,
}

async fn error_page(state: &State, req: &Req, e: UiError) -> Response<Body> {
    let retry_after = match e {
        UiError::Throttled(seconds) => Some(seconds),
        _ => None,
    };
    let (status, heading, message) = match e {
        UiError::Login if !matches!(req.method, Method::GET | Method::HEAD) => {
            // A form sent after the session ended: its path answers POST only, so come back
            // to the page that showed the form (its Referer, same-origin by policy).
            let page = req
                .headers
                .get(header::REFERER)
                .and_then(|v| url::Url::parse(v.to_str().ok()?).ok())
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                })
                .unwrap_or_else(|| "/".into());
            let next: String = form_urlencoded::byte_serialize(page.as_bytes()).collect();
            return redirect_with_flash(
                req,
                &format!("/login?next={next}"),
                "Your session had ended, so nothing was changed: log in, then send the form again.",
            );
        }
        UiError::Login => {
            // Come back to the same page with the same query (the OAuth authorization
            // request lives in it).
            let mut here = req.path.clone();
            if !req.query.is_empty() {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &req.query {
                    q.append_pair(k, v);
                }
                here = format!("{here}?{}", q.finish());
            }
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return redirect(&format!("/login?next={next}"));
        }
        // A form of a page older than what it acts on: a token revoked, an endpoint
        // removed, a member deleted meanwhile, in another tab or by another admin.
        UiError::NotFound if req.method == Method::POST => (
            StatusCode::NOT_FOUND,
            "Already gone",
            "Nothing was changed: what this form acts on is no longer there (revoked, removed \
             or deleted meanwhile, perhaps in another tab or by another admin). Reload the page \
             it came from to see how things are now."
                .to_string(),
        ),
        UiError::NotFound | UiError::NoSuchPage => (
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is nothing at this address. It may have moved, or the link may be mistyped."
                .to_string(),
        ),
        UiError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
        UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m),
        UiError::Throttled(seconds) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            format!(
                "This address sent too many requests that could not be accepted. Try again in {seconds} seconds."
            ),
        ),
        UiError::Unavailable(cause) => {
            tracing::error!(request_id = %req.request_id, %cause, "storage unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage unavailable",
                "scimd cannot write to its storage now (the disk is full or read-only). Nothing was changed; pages that only read keep working. Free space, then try again.".to_string(),
            )
        }
        UiError::Internal(cause) => {
            tracing::error!(request_id = %req.request_id, %cause, "admin page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "scimd could not complete this request. Nothing was changed by the failed step; the log has the details.".to_string(),
            )
        }
    };
    // Within a tenant's pages the error keeps the tenant's tabs, so the admin can go on.
    let slug = req
        .path
        .strip_prefix("/t/")
        .and_then(|rest| rest.split('/').next())
        .filter(|slug| !slug.is_empty() && req.session.is_some())
        .map(str::to_string);
    let tenant = match slug {
        Some(slug) => state
            .db
            .read(move |c| db::tenants::by_slug(c, &slug))
            .await
            .ok(),
        None => None,
    };
    let layout = layout(state, req, tenant.as_ref(), "")
        .await
        .unwrap_or_else(|_| Layout {
            session: None,
            tenants: Vec::new(),
            tenant_slug: String::new(),
            tenant_name: String::new(),
            section: "",
            test_mode: false,
            held: None,
            held_rejected: false,
            flash: None,
            flash_failed: false,
            version: env!("CARGO_PKG_VERSION"),
            once: String::new(),
        });
    let page = ErrorPage {
        layout,
        status: status.as_u16(),
        heading,
        message,
        request_id: req.request_id.clone(),
    };
    match html(status, &page) {
        Ok(r) if status == StatusCode::SERVICE_UNAVAILABLE => crate::http::unavailable(r),
        Ok(r) => match retry_after {
            Some(seconds) => crate::http::throttled(r, seconds),
            None => r,
        },
        Err(_) => {
            let mut r = Response::new(Body::from(Bytes::from_static(b"error\n")));
            *r.status_mut() = status;
            r
        }
    }
}

/// Template filters (askama looks them up as `filters::name` beside each template).
pub(super) mod filters {
    /// `2026-11-23T03:21:24.123456Z` → `2026-11-23 03:21 UTC`; other text unchanged.
    #[askama::filter_fn]
    pub fn short_time(
        value: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::short_time(&value.to_string()))
    }

    /// A webhook URL with its password, if any, masked.
    #[askama::filter_fn]
    pub fn shown_url(
        value: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(crate::auth::webhooks::shown_url(&value.to_string()))
    }
}

/// A stored timestamp as admins read it: minutes are enough.
pub(super) fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..16)) {
        (Some(day), Some(hm)) if t.len() >= 20 => format!("{day} {hm} UTC"),
        _ => t.to_string(),
    }
}
