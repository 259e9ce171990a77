//! Getting in: the first-run setup link, login with throttling, logout, admin accounts.

use askama::Template;
use cookie::{Cookie, SameSite};
use hyper::{Response, StatusCode};

use super::filters;
use super::{
    LOGIN_CSRF_COOKIE, Layout, PageResult, Req, SESSION_COOKIE, UiError, expired_cookie, html,
    layout, page_status, redirect, redirect_with_flash, set_cookie,
};
use crate::auth::{self, passwords};
use crate::db::{self, admins};
use crate::http::{Body, State};
use crate::model::Who;
use crate::ops;
use crate::ops::admins::{Login, NewSession, Proof, Reauth, SESSION_HOURS};
use crate::scim::datetime;

/// `/`: the default tenant's dashboard, or the login page.
pub(super) async fn home(state: &State, req: &Req) -> PageResult {
    req.session()?;
    let tenants = state.db.read(db::tenants::list).await?;
    let slug = tenants
        .iter()
        .find(|t| t.slug == db::tenants::DEFAULT_SLUG)
        .or(tenants.first())
        .map(|t| t.slug.clone())
        .unwrap_or_default();
    Ok(redirect(&format!("/t/{slug}/")))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    no_admin_yet: bool,
}

/// A local path to return to after login; anything else goes home. Only visible ASCII:
/// browsers drop tabs and line breaks from a URL (so `/<TAB>/evil.example` is
/// `//evil.example`, another site), read `\` as `/`, and a header cannot carry the rest.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// The double-submit token for a form shown before there is a session: the browser's own
/// while it has one, so that a login page loaded earlier in another tab still works, else
/// a fresh one.
fn login_csrf(req: &Req) -> (String, Cookie<'static>) {
    let token = req
        .cookie(LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| auth::random_hex(16));
    let c = Cookie::build((LOGIN_CSRF_COOKIE, token.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.secure)
        .build();
    (token, c)
}

fn check_login_csrf(req: &Req, form: &super::Form) -> Result<(), UiError> {
    let cookie = req.cookie(LOGIN_CSRF_COOKIE).unwrap_or_default();
    // A form another site sent: the browser says so, whatever cookie could be planted.
    let cross_site = req
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site || cookie.is_empty() || !auth::constant_time_eq(&cookie, form.get("csrf")) {
        return Err(UiError::Forbidden(
            "the form expired or did not come from this site; reload the page and try again".into(),
        ));
    }
    Ok(())
}

pub(super) async fn login_page(
    state: &State,
    req: &Req,
    error: Option<(String, String, StatusCode)>,
) -> PageResult {
    if req.session.is_some() && error.is_none() {
        return Ok(redirect(&safe_next(req.query("next").unwrap_or("/"))));
    }
    let no_admin_yet = state.db.read(admins::count).await? == 0;
    let (csrf, cookie) = login_csrf(req);
    let (username, error, status) = match error {
        Some((u, e, s)) => (u, Some(e), s),
        None => (String::new(), None, StatusCode::OK),
    };
    let page = LoginPage {
        layout: layout(state, req, None, "").await?,
        csrf,
        next: safe_next(req.query("next").unwrap_or("/")),
        username,
        error,
        no_admin_yet,
    };
    let mut r = html(status, &page)?;
    set_cookie(&mut r, cookie);
    Ok(r)
}

pub(super) async fn login(state: &State, req: &mut Req) -> PageResult {
    let form = req.form_unchecked(state).await?;
    if req.session.is_some() {
        // Logged in meanwhile (in another tab): on to where this login was going.
        return Ok(redirect(&safe_next(form.get("next"))));
    }
    check_login_csrf(req, &form)?;
    let username = form.trimmed("username").to_string();
    let password = form.get("password").to_string();
    let address = req.client.map(|a| a.to_string()).unwrap_or_default();
    let next = safe_next(form.get("next"));
    let attempt = ops::admins::login(
        &state.db,
        &req.request_id,
        username.clone(),
        password,
        &address,
    );
    match attempt.await? {
        Login::Locked { until } => {
            let message = format!(
                "Too many failed attempts from your address: logins to this account from it (or, after many failures, any login from it) are paused until {} UTC.",
                until.get(11..16).unwrap_or(&until)
            );
            let mut r = login_page(
                state,
                req,
                Some((username, message, StatusCode::TOO_MANY_REQUESTS)),
            )
            .await?;
            retry_after(&mut r, &until);
            Ok(r)
        }
        Login::Refused => {
            login_page(
                state,
                req,
                Some((
                    username,
                    "Wrong username or password.".into(),
                    StatusCode::UNAUTHORIZED,
                )),
            )
            .await
        }
        Login::LoggedIn(session) => Ok(session_response(req, session, &next)),
    }
}

/// `Retry-After` on a 429 whose pause ends at `until` (RFC 6585 §4).
fn retry_after(r: &mut Response<Body>, until: &str) {
    let Some(until) = crate::scim::datetime::parse(until) else {
        return;
    };
    let seconds = (until - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(1);
    r.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(seconds),
    );
}

/// The answer that starts a session: its cookie, and on to `next`.
fn session_response(req: &Req, session: NewSession, next: &str) -> Response<Body> {
    let secret = session.secret;
    let mut r = redirect(next);
    let c = Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.secure)
        .max_age(cookie::time::Duration::hours(SESSION_HOURS))
        .build();
    set_cookie(&mut r, c);
    set_cookie(&mut r, expired_cookie(LOGIN_CSRF_COOKIE, req.secure));
    r
}

pub(super) async fn logout(state: &State, req: &mut Req) -> PageResult {
    req.form(state).await?;
    let s = req.session()?;
    ops::admins::logout(&state.db, &req.actor()?, &s.session.username, s.id_hash).await?;
    let mut r = redirect_with_flash(req, "/login", "You are logged out.");
    set_cookie(&mut r, expired_cookie(SESSION_COOKIE, req.secure));
    Ok(r)
}

// --- First run ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    csrf: String,
    token: String,
    valid: bool,
    username: String,
    error: Option<String>,
}

pub(super) async fn setup_page(
    state: &State,
    req: &Req,
    error: Option<(String, String)>,
) -> PageResult {
    let token = req.query("token").unwrap_or_default().to_string();
    let hash = auth::tokens::hash(&token);
    let now = datetime::now();
    let valid = !token.is_empty()
        && state
            .db
            .read(move |c| -> Result<bool, db::DbError> {
                Ok(admins::setup_token_valid(c, &hash, &now)? && admins::count(c)? == 0)
            })
            .await?;
    let (csrf, cookie) = login_csrf(req);
    let (username, error) = match error {
        Some((u, e)) => (u, Some(e)),
        None => (String::new(), None),
    };
    let status = if valid {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let page = SetupPage {
        layout: layout(state, req, None, "").await?,
        csrf,
        token,
        valid,
        username,
        error,
    };
    let mut r = html(status, &page)?;
    set_cookie(&mut r, cookie);
    Ok(r)
}

pub(super) async fn setup(state: &State, req: &mut Req) -> PageResult {
    let form = req.form_unchecked(state).await?;
    check_login_csrf(req, &form)?;
    let token = form.get("token").to_string();
    let username = form.trimmed("username").to_string();
    let password = form.get("password").to_string();
    req.query = vec![("token".into(), token.clone())];
    if let Err(e) = validate_new_admin(&username, &password, form.get("confirm")) {
        return setup_page(state, req, Some((username, e))).await;
    }
    let created = ops::admins::create_from_setup_link(
        &state.db,
        &req.request_id,
        &token,
        username.clone(),
        password,
    );
    match created.await {
        Ok(Some(admin)) => {
            let actor = req.actor_as(Some(Who::Admin(admin.username.clone())));
            let session = ops::admins::start_session(&state.db, &actor, admin.id, None).await?;
            Ok(session_response(req, session, "/"))
        }
        Ok(None) => setup_page(state, req, None).await,
        Err(db::DbError::Conflict(m)) => setup_page(state, req, Some((username, m))).await,
        Err(e) => Err(e.into()),
    }
}

/// Username and password rules for a new admin.
fn validate_new_admin(username: &str, password: &str, confirm: &str) -> Result<(), String> {
    let sentence = |e: String| format!("{}{}.", e[..1].to_uppercase(), &e[1..]);
    passwords::check_username(username).map_err(sentence)?;
    passwords::check_policy(username, password).map_err(sentence)?;
    if password != confirm {
        return Err("The two passwords differ.".into());
    }
    Ok(())
}

// --- Admin accounts -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admins.html")]
struct AdminsPage {
    layout: Layout,
    csrf: String,
    me: String,
    admins: Vec<admins::Admin>,
    error: Option<String>,
    /// The username the "Add an admin" form was sent with, shown again with its error.
    typed: String,
}

pub(super) async fn admins_page(state: &State, req: &Req, error: Option<String>) -> PageResult {
    admins_page_with(state, req, error, String::new()).await
}

async fn admins_page_with(
    state: &State,
    req: &Req,
    error: Option<String>,
    typed: String,
) -> PageResult {
    let s = req.session()?;
    let list = state.db.read(admins::list).await?;
    let status = page_status(error.is_some());
    let page = AdminsPage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        me: s.session.username.clone(),
        admins: list,
        error,
        typed,
    };
    html(status, &page)
}

/// The admin at the keyboard, proving who they are again with the password typed into the
/// form's `current` field.
pub(super) fn reauth(req: &Req, form: &super::Form) -> Result<Reauth, UiError> {
    Ok(Reauth {
        username: req.session()?.session.username.clone(),
        password: form.get("current").to_string(),
        address: req.client.map(|a| a.to_string()).unwrap_or_default(),
    })
}

/// The page again, by `page`, saying why an admin's password did not prove them (`wrong`
/// for a wrong one); `None` when it did.
pub(super) async fn unproven<F, Fut>(
    proof: Proof,
    wrong: &str,
    page: F,
) -> Result<Option<Response<Body>>, UiError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = PageResult>,
{
    match proof {
        Proof::Right { .. } => Ok(None),
        Proof::Wrong => page(wrong.into()).await.map(Some),
        Proof::Locked { until } => {
            let message = format!(
                "Too many wrong passwords. Account changes and logins from your address are paused until {} UTC.",
                until.get(11..16).unwrap_or(&until)
            );
            let mut r = page(message).await?;
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            retry_after(&mut r, &until);
            Ok(Some(r))
        }
    }
}

pub(super) async fn create_admin(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let username = form.trimmed("username").to_string();
    let password = form.get("password").to_string();
    if let Err(e) = validate_new_admin(&username, &password, form.get("confirm")) {
        return admins_page_with(state, req, Some(e), username).await;
    }
    let (actor, reauth) = (req.actor()?, reauth(req, &form)?);
    let created = ops::admins::create_proven(&state.db, &actor, reauth, username.clone(), password);
    let proof = match created.await {
        Ok(proof) => proof,
        Err(db::DbError::Conflict(m)) => {
            return admins_page_with(state, req, Some(m), username).await;
        }
        Err(e) => return Err(e.into()),
    };
    let again = |e| admins_page_with(state, req, Some(e), username.clone());
    if let Some(r) = unproven(proof, "Your password is wrong.", again).await? {
        return Ok(r);
    }
    Ok(redirect_with_flash(
        req,
        "/admins",
        &format!("Admin {username} created."),
    ))
}

pub(super) async fn change_password(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let reauth = reauth(req, &form)?;
    let password = form.get("password").to_string();
    if let Err(e) = validate_new_admin(&reauth.username, &password, form.get("confirm")) {
        return admins_page(state, req, Some(e)).await;
    }
    let proof = ops::admins::change_password(&state.db, &req.actor()?, reauth, password).await?;
    let again = |e| admins_page(state, req, Some(e));
    if let Some(r) = unproven(proof, "The current password is wrong.", again).await? {
        return Ok(r);
    }
    // Every session ended with the password change, this one included.
    let mut r = redirect_with_flash(
        req,
        "/login",
        "Password changed. Log in with the new password.",
    );
    set_cookie(&mut r, expired_cookie(SESSION_COOKIE, req.secure));
    Ok(r)
}

#[derive(Template)]
#[template(path = "admin_delete.html")]
struct DeleteAdminPage {
    layout: Layout,
    csrf: String,
    admin: admins::Admin,
    /// Whether the admin at the keyboard is the one to be deleted.
    themselves: bool,
    /// Whether it is the only admin (who cannot be deleted).
    last: bool,
    error: Option<String>,
}

/// `/admins/{id}/delete`: what deleting that admin does, and their own password to confirm.
pub(super) async fn delete_admin_page(
    state: &State,
    req: &Req,
    id: &str,
    error: Option<String>,
) -> PageResult {
    let s = req.session()?;
    let id: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let list = state.db.read(admins::list).await?;
    let last = list.len() == 1;
    let admin = list
        .into_iter()
        .find(|a| a.id == id)
        .ok_or(UiError::NoSuchPage)?;
    let status = page_status(error.is_some());
    let page = DeleteAdminPage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        themselves: admin.username == s.session.username,
        last,
        admin,
        error,
    };
    html(status, &page)
}

pub(super) async fn delete_admin(state: &State, req: &mut Req, id: &str) -> PageResult {
    let form = req.form(state).await?;
    let reauth = reauth(req, &form)?;
    let me = reauth.username.clone();
    let id_number: i64 = id.parse().map_err(|_| UiError::NoSuchPage)?;
    let (proof, deleted) =
        match ops::admins::delete_proven(&state.db, &req.actor()?, reauth, id_number).await {
            Ok(done) => done,
            Err(db::DbError::Conflict(m)) => {
                return delete_admin_page(state, req, id, Some(m)).await;
            }
            Err(e) => return Err(e.into()),
        };
    let again = |e| delete_admin_page(state, req, id, Some(e));
    if let Some(r) = unproven(proof, "Your password is wrong.", again).await? {
        return Ok(r);
    }
    let name = deleted.unwrap_or_default();
    if name == me {
        // Their sessions went with the account, this one included.
        let mut r = redirect_with_flash(
            req,
            "/login",
            &format!("Admin {name} deleted: that was you."),
        );
        set_cookie(&mut r, expired_cookie(SESSION_COOKIE, req.secure));
        return Ok(r);
    }
    Ok(redirect_with_flash(
        req,
        "/admins",
        &format!("Admin {name} deleted."),
    ))
}
