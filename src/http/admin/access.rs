//! Getting in: the first-run setup link, login with throttling, logout, admin accounts.

use askama::Template;
use cookie::{Cookie, SameSite};
use hyper::StatusCode;
use time::OffsetDateTime;

use super::filters;
use super::{
    LOGIN_CSRF_COOKIE, Layout, PageResult, Req, SESSION_COOKIE, UiError, expired_cookie, html,
    layout, redirect, redirect_with_flash, set_cookie,
};
use crate::auth::{self, passwords};
use crate::db::audit::{self, Action};
use crate::db::{self, admins};
use crate::http::State;
use crate::model::Who;
use crate::scim::datetime;

/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;
/// Failed logins tolerated per username within [`THROTTLE_WINDOW_MINUTES`].
const USER_FAILURES: i64 = 5;
/// Failed logins tolerated per client address within the window (several admins may
/// share an address behind a proxy, so it is higher).
const ADDRESS_FAILURES: i64 = 20;
const THROTTLE_WINDOW_MINUTES: i64 = 15;
/// How long a throttled key stays locked.
const LOCK_MINUTES: i64 = 15;

fn minutes_from_now(m: i64) -> String {
    datetime::format(OffsetDateTime::now_utc() + time::Duration::minutes(m))
}

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

/// A local path to return to after login; anything else goes home.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// A fresh double-submit token for a form shown before there is a session.
fn login_csrf(req: &Req) -> (String, Cookie<'static>) {
    let token = auth::random_hex(16);
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
    if cookie.is_empty() || !auth::constant_time_eq(&cookie, form.get("csrf")) {
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
    check_login_csrf(req, &form)?;
    let username = form.trimmed("username").to_string();
    let password = form.get("password").to_string();
    let user_key = format!("user:{}", username.to_lowercase());
    let ip_key = format!(
        "ip:{}",
        req.peer.map(|p| p.ip().to_string()).unwrap_or_default()
    );

    let now = datetime::now();
    let keys = [user_key.clone(), ip_key.clone()];
    let (locked, credentials) = {
        let username = username.clone();
        state
            .db
            .read(move |c| {
                let mut locked = None;
                for k in &keys {
                    if let Some(until) = admins::locked_until(c, k, &now)? {
                        locked = Some(until);
                    }
                }
                Ok::<_, db::DbError>((locked, admins::credentials(c, &username)?))
            })
            .await?
    };
    if let Some(until) = locked {
        let message = format!(
            "Too many failed attempts. Logins for this account or address are paused until {} UTC.",
            until.get(11..16).unwrap_or(&until)
        );
        return login_page(
            state,
            req,
            Some((username, message, StatusCode::TOO_MANY_REQUESTS)),
        )
        .await;
    }
    let hash = credentials.as_ref().map(|(_, h)| h.clone());
    let ok = tokio::task::spawn_blocking(move || passwords::verify(&password, hash.as_deref()))
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let Some((admin_id, _)) = credentials.filter(|_| ok) else {
        let now = datetime::now();
        let window = datetime::format(
            OffsetDateTime::now_utc() - time::Duration::minutes(THROTTLE_WINDOW_MINUTES),
        );
        let lock = minutes_from_now(LOCK_MINUTES);
        let failure = req
            .audit(
                None,
                None,
                Action::AdminLoginFailed,
                format!("admin/{username}"),
            )
            .failed()
            .with_detail(serde_json::json!({"address": ip_key.trim_start_matches("ip:")}));
        state
            .db
            .write(move |tx| {
                admins::record_failure(tx, &user_key, &now, &window, USER_FAILURES, &lock)?;
                admins::record_failure(tx, &ip_key, &now, &window, ADDRESS_FAILURES, &lock)?;
                audit::append(tx, &failure).map(drop)
            })
            .await?;
        tracing::warn!(username = %username, "failed admin login");
        return login_page(
            state,
            req,
            Some((
                username,
                "Wrong username or password.".into(),
                StatusCode::UNAUTHORIZED,
            )),
        )
        .await;
    };
    let next = safe_next(form.get("next"));
    let login = req.audit(
        Some(Who::Admin(username.to_string())),
        None,
        Action::AdminLoggedIn,
        format!("admin/{username}"),
    );
    start_session(state, req, admin_id, &user_key, &next, vec![login]).await
}

/// Logs `admin_id` in with a new session id (never reusing one: no fixation).
async fn start_session(
    state: &State,
    req: &Req,
    admin_id: i64,
    clear_key: &str,
    next: &str,
    audit_entries: Vec<audit::Entry>,
) -> PageResult {
    let secret = auth::random_hex(32);
    let id_hash = auth::tokens::hash(&secret);
    let csrf = auth::random_hex(32);
    let expires =
        datetime::format(OffsetDateTime::now_utc() + time::Duration::hours(SESSION_HOURS));
    let clear_key = clear_key.to_string();
    state
        .db
        .write(move |tx| {
            admins::clear_failures(tx, &clear_key)?;
            admins::create_session(tx, admin_id, &id_hash, &csrf, &expires)?;
            for entry in &audit_entries {
                audit::append(tx, entry)?;
            }
            Ok::<_, db::DbError>(())
        })
        .await?;
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
    Ok(r)
}

pub(super) async fn logout(state: &State, req: &mut Req) -> PageResult {
    req.form(state).await?;
    let id_hash = req.session()?.id_hash;
    let logout = req.audit(
        None,
        None,
        Action::AdminLoggedOut,
        format!("admin/{}", req.session()?.session.username),
    );
    state
        .db
        .write(move |tx| {
            admins::delete_session(tx, &id_hash)?;
            audit::append(tx, &logout).map(drop)
        })
        .await?;
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
            .read(move |c| admins::setup_token_valid(c, &hash, &now))
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
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let token_hash = auth::tokens::hash(&token);
    let now = datetime::now();
    let name = username.clone();
    let created_entry = req.audit(
        Some(Who::SetupLink),
        None,
        Action::AdminCreated,
        format!("admin/{username}"),
    );
    let created = state
        .db
        .write(move |tx| {
            if !admins::consume_setup_token(tx, &token_hash, &now)? {
                return Ok(None);
            }
            let admin = admins::create(tx, &name, &hash)?;
            audit::append(tx, &created_entry)?;
            Ok(Some(admin))
        })
        .await;
    match created {
        Ok(Some(admin)) => {
            let login = req.audit(
                Some(Who::Admin(admin.username.clone())),
                None,
                Action::AdminLoggedIn,
                format!("admin/{}", admin.username),
            );
            start_session(state, req, admin.id, "", "/", vec![login]).await
        }
        Ok(None) => setup_page(state, req, None).await,
        Err(db::DbError::Conflict(m)) => setup_page(state, req, Some((username, m))).await,
        Err(e) => Err(e.into()),
    }
}

/// Username and password rules for a new admin.
fn validate_new_admin(username: &str, password: &str, confirm: &str) -> Result<(), String> {
    if username.is_empty()
        || username.chars().count() > 64
        || username.chars().any(char::is_control)
    {
        return Err("Choose a username of 1 to 64 characters.".into());
    }
    passwords::check_policy(password)
        .map_err(|e| format!("{}{}.", e[..1].to_uppercase(), &e[1..]))?;
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
}

pub(super) async fn admins_page(state: &State, req: &Req, error: Option<String>) -> PageResult {
    let s = req.session()?;
    let list = state.db.read(admins::list).await?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AdminsPage {
        layout: layout(state, req, None, "").await?,
        csrf: s.session.csrf.clone(),
        me: s.session.username.clone(),
        admins: list,
        error,
    };
    html(status, &page)
}

pub(super) async fn create_admin(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let username = form.trimmed("username").to_string();
    let password = form.get("password").to_string();
    if let Err(e) = validate_new_admin(&username, &password, form.get("confirm")) {
        return admins_page(state, req, Some(e)).await;
    }
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let name = username.clone();
    let entry = req.audit(
        None,
        None,
        Action::AdminCreated,
        format!("admin/{username}"),
    );
    match state
        .db
        .write(move |tx| {
            admins::create(tx, &name, &hash)?;
            audit::append(tx, &entry).map(drop)
        })
        .await
    {
        Ok(_) => Ok(redirect_with_flash(
            req,
            "/admins",
            &format!("Admin {username} created."),
        )),
        Err(db::DbError::Conflict(m)) => admins_page(state, req, Some(m)).await,
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn change_password(state: &State, req: &mut Req) -> PageResult {
    let form = req.form(state).await?;
    let me = req.session()?.session.username.clone();
    let current = form.get("current").to_string();
    let password = form.get("password").to_string();
    if let Err(e) = validate_new_admin(&me, &password, form.get("confirm")) {
        return admins_page(state, req, Some(e)).await;
    }
    let name = me.clone();
    let stored = state
        .db
        .read(move |c| admins::credentials(c, &name))
        .await?;
    let hash = stored.map(|(_, h)| h);
    let (ok, new_hash) = tokio::task::spawn_blocking(move || {
        (
            passwords::verify(&current, hash.as_deref()),
            passwords::hash(&password),
        )
    })
    .await
    .map_err(|e| UiError::Internal(e.to_string()))?;
    if !ok {
        return admins_page(state, req, Some("The current password is wrong.".into())).await;
    }
    let entry = req.audit(
        None,
        None,
        Action::AdminPasswordChanged,
        format!("admin/{me}"),
    );
    state
        .db
        .write(move |tx| {
            admins::set_password(tx, &me, &new_hash)?;
            audit::append(tx, &entry).map(drop)
        })
        .await?;
    // Every session ended with the password change, this one included.
    let mut r = redirect_with_flash(
        req,
        "/login",
        "Password changed. Log in with the new password.",
    );
    set_cookie(&mut r, expired_cookie(SESSION_COOKIE, req.secure));
    Ok(r)
}

pub(super) async fn delete_admin(state: &State, req: &mut Req, id: &str) -> PageResult {
    req.form(state).await?;
    let id: i64 = id.parse().map_err(|_| UiError::NotFound)?;
    let entry = req.audit(None, None, Action::AdminDeleted, format!("admin/{id}"));
    let deleted = state
        .db
        .write(move |tx| {
            admins::delete(tx, id)?;
            audit::append(tx, &entry).map(drop)
        })
        .await;
    match deleted {
        Ok(()) => Ok(redirect_with_flash(req, "/admins", "Admin deleted.")),
        Err(db::DbError::Conflict(m)) => admins_page(state, req, Some(m)).await,
        Err(e) => Err(e.into()),
    }
}
