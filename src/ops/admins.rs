//! The installation's admins and tenants: accounts (created from the setup link, the UI or
//! the command line), logins (throttled per username and per address) and sessions, and
//! new tenants. Each is audited; passwords are hashed with argon2 off the async runtime
//! and never logged.

use time::{Duration, OffsetDateTime};

use super::throttle::{self, Key};
use crate::auth::{self, passwords};
use crate::db::admins::{self, Admin};
use crate::db::audit::{self, Action, Entry};
use crate::db::events::{self, EventType};
use crate::db::tenants::{self, Tenant};
use crate::db::{Db, DbError};
use crate::model::{Actor, Who};
use crate::scim::datetime;

/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;

/// How long a session lasts unused: an admin console left open on an unattended screen
/// signs itself out (OWASP's session guide asks 15–30 minutes of an application that
/// hands out access).
pub const SESSION_IDLE_MINUTES: i64 = 30;

/// How far behind a session's last use may be noted: at most one write a minute per
/// session, however many pages it loads.
const TOUCH_EVERY: Duration = Duration::minutes(1);

fn admin_target(username: &str) -> Option<String> {
    Some(format!("admin/{username}"))
}

/// Runs argon2 (or anything CPU-bound) on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DbError::Task(e.to_string()))
}

/// Creates an admin with `password` (already checked against the policy).
pub async fn create(
    db: &Db,
    actor: &Actor,
    username: String,
    password: String,
) -> Result<Admin, DbError> {
    passwords::check_username(&username).map_err(DbError::Conflict)?;
    let hash = blocking(move || passwords::hash(&password)).await?;
    let entry = Entry::new(actor, None, Action::AdminCreated, admin_target(&username));
    db.write(move |tx| {
        let admin = admins::create(tx, &username, &hash)?;
        audit::append(tx, &entry)?;
        Ok(admin)
    })
    .await
}

/// While no admin exists, a one-time setup link secret (valid for an hour) for `scimd
/// serve` to print; `None` once there is an admin.
pub async fn setup_link(db: &Db) -> Result<Option<String>, DbError> {
    db.write(|tx| {
        if admins::count(tx)? > 0 {
            return Ok(None);
        }
        let secret = auth::random_hex(32);
        let expires = datetime::format(OffsetDateTime::now_utc() + Duration::hours(1));
        admins::create_setup_token(tx, &auth::tokens::hash(&secret), &expires)?;
        Ok(Some(secret))
    })
    .await
}

/// Creates the first admin with the one-time setup link `token`; `None` when the link is
/// unknown, spent or expired, or when an admin exists already: a link printed to a log
/// must not create admins once setup is done (another link, the CLI).
pub async fn create_from_setup_link(
    db: &Db,
    request_id: &str,
    token: &str,
    username: String,
    password: String,
) -> Result<Option<Admin>, DbError> {
    passwords::check_username(&username).map_err(DbError::Conflict)?;
    let hash = blocking(move || passwords::hash(&password)).await?;
    let token_hash = auth::tokens::hash(token);
    let actor = Actor::new(Who::SetupLink, Some(request_id));
    let entry = Entry::new(&actor, None, Action::AdminCreated, admin_target(&username));
    db.write(move |tx| {
        if admins::count(tx)? > 0
            || !admins::consume_setup_token(tx, &token_hash, &datetime::now())?
        {
            return Ok(None);
        }
        let admin = admins::create(tx, &username, &hash)?;
        audit::append(tx, &entry)?;
        Ok(Some(admin))
    })
    .await
}

/// Sets `username`'s password; every session of theirs ends. `NotFound` for no such admin.
pub async fn set_password(
    db: &Db,
    actor: &Actor,
    username: String,
    password: String,
) -> Result<(), DbError> {
    let hash = blocking(move || passwords::hash(&password)).await?;
    let entry = Entry::new(
        actor,
        None,
        Action::AdminPasswordChanged,
        admin_target(&username),
    );
    db.write(move |tx| {
        admins::set_password(tx, &username, &hash)?;
        // A new password lifts the username's lockouts: whoever guessed at the old one
        // must not keep the admin out of the new one (`scimd admin reset-password`).
        throttle::clear_logins(tx, &username)?;
        audit::append(tx, &entry).map(drop)
    })
    .await
}

/// The admin at the keyboard proving who they are again before an account changes: their
/// username, the password they typed, and the address it came from. A session left open or
/// stolen must not be enough to add an admin (a way back in for whoever holds it), remove
/// one (a way to lock the others out) or change a password, nor a way to guess the
/// password without limit: a wrong one counts as a failed login, throttled and audited alike.
pub struct Reauth {
    pub username: String,
    pub password: String,
    pub address: String,
}

/// Runs `change` once `reauth` proves right: the proof either way, and what `change` came
/// to when it ran.
async fn proven<T, F>(
    db: &Db,
    actor: &Actor,
    reauth: Reauth,
    change: F,
) -> Result<(Proof, Option<T>), DbError>
where
    F: Future<Output = Result<T, DbError>>,
{
    let Reauth {
        username,
        password,
        address,
    } = reauth;
    let proof = prove(db, actor, &username, password, &address).await?;
    let changed = match proof {
        Proof::Right { .. } => Some(change.await?),
        _ => None,
    };
    Ok((proof, changed))
}

/// An admin changes their own password, proving the current one. Every session of theirs
/// ends.
pub async fn change_password(
    db: &Db,
    actor: &Actor,
    reauth: Reauth,
    password: String,
) -> Result<Proof, DbError> {
    let username = reauth.username.clone();
    let change = set_password(db, actor, username, password);
    Ok(proven(db, actor, reauth, change).await?.0)
}

/// An admin adds `username` with `password` (already checked against the policy), proving
/// their own password. `Conflict` when the name is taken.
pub async fn create_proven(
    db: &Db,
    actor: &Actor,
    reauth: Reauth,
    username: String,
    password: String,
) -> Result<Proof, DbError> {
    let create = create(db, actor, username, password);
    Ok(proven(db, actor, reauth, create).await?.0)
}

/// An admin deletes admin `id` (themselves included), proving their own password: the
/// proof, and the deleted admin's username when it was right. `Conflict` for the last one,
/// `NotFound` for one already gone.
pub async fn delete_proven(
    db: &Db,
    actor: &Actor,
    reauth: Reauth,
    id: i64,
) -> Result<(Proof, Option<String>), DbError> {
    proven(db, actor, reauth, delete(db, actor, id)).await
}

/// Deletes admin `id` (`Conflict` for the last one, `NotFound` for none) and says who it
/// was: the command line's way, which needs no password (it has the database). Audited by
/// name, as every other admin entry is: ids are reused once an admin is gone, a name says
/// who it was.
pub async fn delete(db: &Db, actor: &Actor, id: i64) -> Result<String, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let username = admins::list(tx)?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or(DbError::NotFound)?
            .username;
        admins::delete(tx, id)?;
        let entry = Entry::new(&actor, None, Action::AdminDeleted, admin_target(&username));
        audit::append(tx, &entry)?;
        Ok(username)
    })
    .await
}

/// A new session: the cookie's secret (shown to the browser only) and its CSRF token.
pub struct NewSession {
    pub secret: String,
    pub csrf: String,
}

/// What a login attempt came to.
pub enum Login {
    /// Too many failures for this username or address: paused until then (UTC).
    Locked {
        until: String,
    },
    /// Wrong username or password; counted against both.
    Refused,
    LoggedIn(NewSession),
}

/// What proving an admin's password came to.
pub enum Proof {
    /// Too many failures for this username or address: paused until then (UTC).
    Locked { until: String },
    /// Wrong username or password; counted against both, and audited.
    Wrong,
    Right {
        admin_id: i64,
        /// The failures of the username from this address, to clear on a login.
        failures: Key,
    },
}

/// Checks `password` for `username` from `address`, unless either is locked out; a wrong
/// one counts against both and is audited as a failed login by `actor`.
async fn prove(
    db: &Db,
    actor: &Actor,
    username: &str,
    password: String,
    address: &str,
) -> Result<Proof, DbError> {
    let user_key = Key::login(username, address);
    let ip_key = Key::address(address);
    let (locked, credentials) = {
        let (user_key, ip_key, username) = (user_key.clone(), ip_key.clone(), username.to_string());
        db.read(move |c| {
            Ok::<_, DbError>((
                throttle::locked_until(c, &[&user_key, &ip_key])?,
                admins::credentials(c, &username)?,
            ))
        })
        .await?
    };
    if let Some(until) = locked {
        return Ok(Proof::Locked { until });
    }
    let known = credentials.is_some();
    let hash = credentials.as_ref().map(|(_, h)| h.clone());
    let ok = blocking(move || passwords::verify(&password, hash.as_deref())).await?;
    if let Some((admin_id, _)) = credentials.filter(|_| ok) {
        return Ok(Proof::Right {
            admin_id,
            failures: user_key,
        });
    }
    // A name no admin has is kept out of the audit log and the server's log: it is often
    // a password typed into the wrong box.
    let named = if known { username } else { UNKNOWN_ADMIN };
    let failure = Entry::new(actor, None, Action::AdminLoginFailed, admin_target(named))
        .failed()
        .with_detail(serde_json::json!({"address": address}));
    db.write(move |tx| {
        throttle::fail(tx, &user_key)?;
        throttle::fail(tx, &ip_key)?;
        audit::append(tx, &failure).map(drop)
    })
    .await?;
    // An admin's name as names are made now (`check_username`) or the placeholder cannot
    // forge a log line and is written as it is (escaped with `?`, a JSON log quoted it
    // twice); any other (an account from before names were checked) is escaped.
    if named == UNKNOWN_ADMIN || passwords::check_username(named).is_ok() {
        tracing::warn!(username = %named, "failed admin login");
    } else {
        tracing::warn!(username = ?named, "failed admin login");
    }
    Ok(Proof::Wrong)
}

/// How a failed login names a username that no admin has.
const UNKNOWN_ADMIN: &str = "(no such admin)";

/// An admin logs in from `address` with `username` and `password`.
pub async fn login(
    db: &Db,
    request_id: &str,
    username: String,
    password: String,
    address: &str,
) -> Result<Login, DbError> {
    let anonymous = Actor::new(Who::Anonymous, Some(request_id));
    match prove(db, &anonymous, &username, password, address).await? {
        Proof::Locked { until } => Ok(Login::Locked { until }),
        Proof::Wrong => Ok(Login::Refused),
        Proof::Right { admin_id, failures } => {
            let actor = Actor::new(Who::Admin(username), Some(request_id));
            let session = start_session(db, &actor, admin_id, Some(failures)).await?;
            Ok(Login::LoggedIn(session))
        }
    }
}

/// Logs `admin_id` in with a new session id (never reusing one: no fixation), clearing
/// the failures of `cleared`, and audits the login as `actor`.
pub async fn start_session(
    db: &Db,
    actor: &Actor,
    admin_id: i64,
    cleared: Option<Key>,
) -> Result<NewSession, DbError> {
    let secret = auth::random_hex(32);
    let id_hash = auth::tokens::hash(&secret);
    let csrf = auth::random_hex(32);
    let expires = datetime::format(OffsetDateTime::now_utc() + Duration::hours(SESSION_HOURS));
    let username = match &actor.who {
        Who::Admin(name) => name.clone(),
        _ => String::new(),
    };
    let entry = Entry::new(actor, None, Action::AdminLoggedIn, admin_target(&username));
    let session_csrf = csrf.clone();
    db.write(move |tx| {
        if let Some(key) = &cleared {
            throttle::clear(tx, key)?;
        }
        admins::create_session(tx, admin_id, &id_hash, &session_csrf, &expires)?;
        audit::append(tx, &entry).map(drop)
    })
    .await?;
    Ok(NewSession { secret, csrf })
}

/// The live session whose cookie hashes to `id_hash`: neither expired nor unused for
/// [`SESSION_IDLE_MINUTES`]. Using it keeps it alive.
pub async fn session(db: &Db, id_hash: [u8; 32]) -> Result<Option<admins::Session>, DbError> {
    let now = OffsetDateTime::now_utc();
    let (at, idle_since) = (
        datetime::format(now),
        datetime::format(now - Duration::minutes(SESSION_IDLE_MINUTES)),
    );
    let session = db
        .read(move |c| admins::session(c, &id_hash, &at, &idle_since))
        .await?;
    let stale = datetime::format(now - TOUCH_EVERY);
    if let Some(s) = &session
        && s.last_seen_at <= stale
    {
        let at = datetime::format(now);
        // Bookkeeping: a use lost to a power cut only brings the sign-out nearer.
        db.write_relaxed(move |tx| admins::touch_session(tx, &id_hash, &at))
            .await?;
    }
    Ok(session)
}

/// Ends the session whose cookie hashes to `id_hash`.
pub async fn logout(
    db: &Db,
    actor: &Actor,
    username: &str,
    id_hash: [u8; 32],
) -> Result<(), DbError> {
    let entry = Entry::new(actor, None, Action::AdminLoggedOut, admin_target(username));
    db.write(move |tx| {
        admins::delete_session(tx, &id_hash)?;
        audit::append(tx, &entry).map(drop)
    })
    .await
}

/// Creates a tenant (an IdP connection) named `name`, reached by `slug`.
pub async fn create_tenant(
    db: &Db,
    actor: &Actor,
    slug: String,
    name: String,
) -> Result<Tenant, DbError> {
    let actor = actor.clone();
    db.write(move |tx| {
        let t = tenants::create(tx, &slug, &name)?;
        let target = Some(format!("tenant/{}", t.slug));
        audit::append(
            tx,
            &Entry::new(&actor, Some(t.id), Action::TenantCreated, target),
        )?;
        Ok(t)
    })
    .await
}

/// How long after a tenant is marked deleted its rows start to go.
const PURGE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How many rows of a deleted tenant one transaction deletes: small enough that the writes
/// of other tenants waiting behind it wait milliseconds, not seconds.
const PURGE_ROWS: i64 = 500;

/// Deletes tenant `slug` (an admin at the keyboard, or the command line): at once it is
/// gone from every list, its slug is free, and its tokens, OAuth clients, API keys and
/// webhook endpoints stop working; what it holds is then deleted in the background
/// ([`purge_deleted_tenants`], which resumes at the next start if the server stops
/// first). Audited outside any tenant, with what the tenant held; the tenant's own audit
/// entries stay. `Conflict` for the last tenant, `NotFound` for none.
pub async fn delete_tenant(
    db: &Db,
    actor: &Actor,
    slug: String,
) -> Result<tenants::Contents, DbError> {
    let actor = actor.clone();
    // Counted before, not on the writer: at 100 000 members the counts take a while, and
    // they are a record of what went, not a condition of it.
    let asked = slug.clone();
    let contents = db
        .read(move |c| tenants::contents(c, tenants::by_slug(c, &asked)?.id))
        .await?;
    let held = contents.clone();
    db.write(move |tx| {
        let t = tenants::by_slug(tx, &slug)?;
        // The tenant's one event that outlives it ([`tenants::purge_step`] keeps it): apps
        // that read every tenant learn it went (WorkOS's `dsync.deleted`).
        let gone = serde_json::json!({"tenant": t, "context": {"via": "admin"}});
        events::append(
            tx,
            &actor,
            t.id,
            EventType::TenantDeleted,
            &t.id.to_string(),
            &gone,
        )?;
        tenants::mark_deleting(tx, t.id)?;
        let detail = serde_json::json!({"tenantId": t.id, "name": t.name, "held": held});
        let entry = Entry::new(
            &actor,
            None,
            Action::TenantDeleted,
            Some(format!("tenant/{}", t.slug)),
        )
        .with_detail(detail);
        audit::append(tx, &entry).map(drop)
    })
    .await?;
    let db = db.clone();
    tokio::spawn(async move {
        if let Err(e) = purge_deleted_tenants(&db).await {
            tracing::warn!(error = %e, "deleting a tenant's data failed; it resumes at the next start");
        }
    });
    Ok(contents)
}

/// [`delete_tenant`], by an admin proving their own password.
pub async fn delete_tenant_proven(
    db: &Db,
    actor: &Actor,
    reauth: Reauth,
    slug: String,
) -> Result<Proof, DbError> {
    let delete = delete_tenant(db, actor, slug);
    Ok(proven(db, actor, reauth, delete).await?.0)
}

/// Deletes what every tenant marked for deletion still holds, a few hundred rows a
/// transaction, until none is left; returns how many tenants it finished. Safe to run
/// twice at once: each step deletes what is there.
pub async fn purge_deleted_tenants(db: &Db) -> Result<usize, DbError> {
    let mut finished = 0;
    loop {
        let ids = db.read(tenants::deleting).await?;
        if ids.is_empty() {
            return Ok(finished);
        }
        // Reads that found a credential of the tenant before it went (a server whose token
        // cache learns of a deletion by the command line within a second) finish on the
        // tenant as it was, not on one half deleted; writes are refused in their
        // transaction (`tenants::taking_writes`).
        tokio::time::sleep(PURGE_AFTER).await;
        for id in ids {
            while !db
                .write(move |tx| tenants::purge_step(tx, id, PURGE_ROWS))
                .await?
            {}
            tracing::info!(tenant = id, "a deleted tenant's data is gone");
            finished += 1;
        }
    }
}
