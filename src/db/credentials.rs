//! The bearer tokens the server has seen lately, so a request is authenticated without a
//! database round trip.
//!
//! Whatever can make a cached token stop working (a SCIM token or OAuth access token
//! revoked, expired early, regenerated or deleted; its grant or client revoked; its tenant
//! deleted) bumps `credential_generation.n` in the same transaction, by triggers
//! (migration 0012), so no code path can forget it. The writer thread reads the number
//! after each commit, before it answers the writers, and once a second when idle (for the
//! command line's changes, made by another process); [`Credentials::get`] empties the
//! cache whenever it moved. A revocation is therefore in force for this server's requests
//! as soon as it is answered, and within a second when made by `scimd` on the command
//! line. Expiry is checked against the stored time on every use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::DbError;

/// What a stored credential (a SCIM token, an API key) is now: `revoked`, `expired` (past
/// its expiry: refused, though never revoked) or `active`. Stored times are canonical
/// RFC 3339 text, which sorts as time does.
pub fn state(revoked_at: Option<&str>, expires_at: Option<&str>) -> &'static str {
    if revoked_at.is_some() {
        "revoked"
    } else if expires_at.is_some_and(|at| at <= crate::scim::datetime::now().as_str()) {
        "expired"
    } else {
        "active"
    }
}

/// At most this many tokens are remembered; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// A live token as storage found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Scim {
        id: i64,
        tenant_id: i64,
        expires_at: Option<String>,
    },
    OAuth {
        id: i64,
        tenant_id: i64,
        client: String,
        expires_at: String,
    },
}

impl Found {
    fn expired(&self, now: &str) -> bool {
        // The same comparison as the lookups' SQL (`expires_at > now`, RFC 3339 text).
        match self {
            Found::Scim { expires_at, .. } => expires_at.as_deref().is_some_and(|e| e <= now),
            Found::OAuth { expires_at, .. } => expires_at.as_str() <= now,
        }
    }
}

struct Entry {
    found: Found,
    /// When this server last recorded the token's use.
    noted: Instant,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    tokens: HashMap<[u8; 32], Entry>,
}

/// See the module documentation.
#[derive(Default)]
pub struct Credentials {
    generation: AtomicU64,
    cache: Mutex<Cache>,
}

/// A cached token, and whether its last use is due to be recorded again.
pub struct Hit {
    pub found: Found,
    pub note_use: bool,
}

impl Credentials {
    /// The generation the database has now (as last read): take it before a lookup and
    /// hand it to [`Credentials::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The live token whose SHA-256 is `hash`, if it is cached and not expired at `now`.
    /// `note_use` is true once per `every` for each token.
    pub fn get(&self, hash: &[u8; 32], now: &str, every: Duration) -> Option<Hit> {
        let generation = self.generation();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.generation != generation {
            cache.tokens.clear();
            cache.generation = generation;
            return None;
        }
        let entry = cache.tokens.get_mut(hash)?;
        if entry.found.expired(now) {
            cache.tokens.remove(hash);
            return None;
        }
        let note_use = entry.noted.elapsed() >= every;
        if note_use {
            entry.noted = Instant::now();
        }
        Some(Hit {
            found: entry.found.clone(),
            note_use,
        })
    }

    /// Remembers a token found live by a lookup that began at `generation`; nothing is
    /// remembered when anything changed since (the lookup may predate a revocation).
    pub fn put(&self, hash: [u8; 32], found: Found, generation: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if generation != self.generation() || cache.generation != generation {
            return;
        }
        if cache.tokens.len() >= MAX_ENTRIES {
            cache.tokens.clear();
        }
        cache.tokens.insert(
            hash,
            Entry {
                found,
                noted: Instant::now(),
            },
        );
    }

    /// Reads the generation from the database; called by the writer.
    pub(super) fn refresh(&self, conn: &Connection) -> Result<(), DbError> {
        let n: i64 = conn
            .prepare_cached("SELECT n FROM credential_generation")?
            .query_row([], |r| r.get(0))?;
        self.generation.store(n as u64, Ordering::Release);
        Ok(())
    }
}
