//! Throttling of failed credentials: admin logins (per username and per client address)
//! and OAuth client authentication (per client and address). One rule for all: `limit` failures of a
//! key within [`WINDOW_MINUTES`] lock it for [`LOCK_MINUTES`]; a success clears it.

use time::{Duration, OffsetDateTime};

use crate::db::{Conn, DbError, admins};
use crate::scim::datetime;

/// How far back failures count.
pub const WINDOW_MINUTES: i64 = 15;
/// How long a throttled key stays locked.
pub const LOCK_MINUTES: i64 = 15;

/// What is counted, and how many failures it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `user:<name>`, `ip:<address>`, `client:<client_id>@<address>`.
    pub key: String,
    pub limit: i64,
}

impl Key {
    /// Failed logins tolerated per username.
    pub fn username(name: &str) -> Key {
        Key {
            key: format!("user:{}", name.to_lowercase()),
            limit: 5,
        }
    }

    /// Failed logins tolerated per client address: several admins may share one behind a
    /// proxy, so it is higher.
    pub fn address(address: &str) -> Key {
        Key {
            key: format!("ip:{address}"),
            limit: 20,
        }
    }

    /// Failed authentications tolerated per OAuth client and client address: a client id is
    /// no secret, so failures from one address never lock the client out for the IdP
    /// calling from another.
    pub fn client(client_id: &str, address: &str) -> Key {
        Key {
            key: format!("client:{client_id}@{address}"),
            limit: 10,
        }
    }
}

/// Until when the latest lock among `keys` lasts, if any is locked now.
pub fn locked_until(conn: &Conn, keys: &[&Key]) -> Result<Option<String>, DbError> {
    let now = datetime::now();
    let mut until: Option<String> = None;
    for k in keys {
        if let Some(u) = admins::locked_until(conn, &k.key, &now)? {
            until = Some(until.map_or(u.clone(), |t| t.max(u)));
        }
    }
    Ok(until)
}

/// Counts one failure for `key`, locking it once it reaches its limit within the window.
pub fn fail(conn: &Conn, key: &Key) -> Result<(), DbError> {
    let now = OffsetDateTime::now_utc();
    admins::record_failure(
        conn,
        &key.key,
        &datetime::format(now),
        &datetime::format(now - Duration::minutes(WINDOW_MINUTES)),
        key.limit,
        &datetime::format(now + Duration::minutes(LOCK_MINUTES)),
    )
}

/// A success: the key's failures are forgotten.
pub fn clear(conn: &Conn, key: &Key) -> Result<(), DbError> {
    admins::clear_failures(conn, &key.key)
}

/// Whole seconds from now until `until` (a stored time), at least 1: `Retry-After`.
pub fn seconds_until(until: &str) -> i64 {
    datetime::parse(until)
        .map(|t| (t - OffsetDateTime::now_utc()).whole_seconds().max(1))
        .unwrap_or(60)
}
