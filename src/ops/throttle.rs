//! Throttling of failed credentials: admin logins (per username and address, and per address)
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
    /// `user:<name hash>@<address>`, `ip:<address>`, `client:<client_id>@<address>`,
    /// where the address is an IPv4 address or an IPv6 /64 ([`address_block`]).
    pub key: String,
    pub limit: i64,
}

impl Key {
    /// Failed logins tolerated per username and client address. Failures from one address
    /// never lock the admin out from another: a username is no secret, and locking it
    /// everywhere would let anyone keep any admin out (Auth0's brute-force protection
    /// counts the same way). Guessing from many addresses meets [`Key::address`].
    pub fn login(name: &str, address: &str) -> Key {
        Key {
            key: format!("{}{}", Key::login_prefix(name), block_of(address)),
            limit: 5,
        }
    }

    /// What every [`Key::login`] of `name` starts with: the name hashed (SHA-256 of it in
    /// lowercase, 128 bits), for what was typed as a name is often a password.
    pub fn login_prefix(name: &str) -> String {
        let hash = crate::auth::tokens::hash(&name.to_lowercase());
        format!("user:{}@", crate::auth::hex(&hash[..16]))
    }

    /// Failed logins tolerated per client address: several admins may share one behind a
    /// proxy, so it is higher.
    pub fn address(address: &str) -> Key {
        Key {
            key: format!("ip:{}", block_of(address)),
            limit: 20,
        }
    }

    /// Failed authentications tolerated per OAuth client and client address: a client id is
    /// no secret, so failures from one address never lock the client out for the IdP
    /// calling from another.
    pub fn client(client_id: &str, address: &str) -> Key {
        Key {
            key: format!("client:{client_id}@{}", block_of(address)),
            limit: 10,
        }
    }
}

/// [`address_block`] of an address given as text; text that is no address is kept as it is.
fn block_of(address: &str) -> String {
    address
        .parse::<std::net::IpAddr>()
        .map_or_else(|_| address.to_string(), |ip| address_block(ip).to_string())
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

/// A new password: the failed logins of `name` from every address are forgotten.
pub fn clear_logins(conn: &Conn, name: &str) -> Result<(), DbError> {
    admins::clear_failures_starting(conn, &Key::login_prefix(name))
}

/// Whole seconds from now until `until` (a stored time), at least 1: `Retry-After`.
pub fn seconds_until(until: &str) -> i64 {
    datetime::parse(until)
        .map(|t| (t - OffsetDateTime::now_utc()).whole_seconds().max(1))
        .unwrap_or(60)
}

/// Failed authentications an address may make in a burst before it is throttled, unless
/// configured otherwise (`--auth-failure-burst`).
pub const FLOOD_BURST: u32 = 30;
/// Failed authentications per second an address earns back.
pub const FLOOD_REFILL_PER_SEC: f64 = 1.0;
/// Addresses tracked at once; beyond it, a new address goes untracked (fails open).
const FLOOD_ADDRESSES: usize = 16_384;
/// Credentials remembered per address as having worked from it.
const KNOWN_PER_ADDRESS: usize = 4;

/// Unauthenticated request floods, throttled per client address in memory: each address
/// has a bucket of [`FLOOD_BURST`] failed authentications refilling at
/// [`FLOOD_REFILL_PER_SEC`]; an address that emptied it is answered 429 before any
/// lookup — unless the request carries a credential that has worked from that address,
/// so an IdP sharing an address with a flood keeps working. IPv6 addresses count per /64,
/// the block one host is usually given. The database is never touched, so a flood costs
/// no writes and no reads once throttled.
pub struct Floods {
    /// Failures in a burst; 0 turns the throttle off.
    burst: f64,
    doors: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Door>>,
}

struct Door {
    /// Failures the address may still make now.
    allowance: f64,
    /// When `allowance` was last brought up to date.
    at: std::time::Instant,
    /// Hashes of credentials that authenticated from the address, newest last.
    known: Vec<[u8; 32]>,
}

impl Door {
    fn refill(&mut self, burst: f64, now: std::time::Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * FLOOD_REFILL_PER_SEC;
        self.allowance = (self.allowance + earned).min(burst);
        self.at = now;
    }
}

/// The block a client address counts in, for every per-address limit: IPv4 as is
/// (IPv4-mapped IPv6 too), IPv6 per /64, the block one host is usually given.
pub fn address_block(address: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let block = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(block))
            }
        },
    }
}

impl Floods {
    /// A throttle allowing `burst` failures per address before it answers 429; 0 for none.
    pub fn new(burst: u32) -> Floods {
        Floods {
            burst: f64::from(burst),
            doors: Default::default(),
        }
    }

    /// Whether a request from `address` carrying the credential hashed `credential` may
    /// be authenticated now; `Err(seconds)` to wait when the address is throttled.
    pub fn admit(
        &self,
        address: std::net::IpAddr,
        credential: Option<&[u8; 32]>,
        now: std::time::Instant,
    ) -> Result<(), u64> {
        if self.burst == 0.0 {
            return Ok(());
        }
        let mut doors = self.doors.lock().unwrap_or_else(|e| e.into_inner());
        let Some(door) = doors.get_mut(&address_block(address)) else {
            return Ok(());
        };
        door.refill(self.burst, now);
        if door.allowance >= 1.0 || credential.is_some_and(|c| door.known.contains(c)) {
            return Ok(());
        }
        Err(((1.0 - door.allowance) / FLOOD_REFILL_PER_SEC)
            .ceil()
            .max(1.0) as u64)
    }

    /// A request from `address` failed to authenticate (no, malformed or unknown
    /// credentials).
    pub fn failed(&self, address: std::net::IpAddr, now: std::time::Instant) {
        self.with_door(address, now, |door| {
            door.allowance = (door.allowance - 1.0).max(0.0);
        });
    }

    /// The credential hashed `credential` authenticated from `address`: it stays
    /// admitted from there while the address is throttled.
    pub fn succeeded(
        &self,
        address: std::net::IpAddr,
        credential: &[u8; 32],
        now: std::time::Instant,
    ) {
        self.with_door(address, now, |door| {
            if !door.known.contains(credential) {
                if door.known.len() == KNOWN_PER_ADDRESS {
                    door.known.remove(0);
                }
                door.known.push(*credential);
            }
        });
    }

    fn with_door(
        &self,
        address: std::net::IpAddr,
        now: std::time::Instant,
        f: impl FnOnce(&mut Door),
    ) {
        if self.burst == 0.0 {
            return;
        }
        let key = address_block(address);
        let burst = self.burst;
        let mut doors = self.doors.lock().unwrap_or_else(|e| e.into_inner());
        if !doors.contains_key(&key) && doors.len() >= FLOOD_ADDRESSES {
            // Forget the addresses whose buckets are full again and that no credential
            // worked from; then those merely full. Past that, fail open.
            for keep_known in [true, false] {
                doors.retain(|_, d| {
                    d.refill(burst, now);
                    d.allowance < burst || (keep_known && !d.known.is_empty())
                });
                if doors.len() < FLOOD_ADDRESSES {
                    break;
                }
            }
            if doors.len() >= FLOOD_ADDRESSES {
                return;
            }
        }
        let door = doors.entry(key).or_insert_with(|| Door {
            allowance: burst,
            at: now,
            known: Vec::new(),
        });
        door.refill(burst, now);
        f(door);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_throttled_after_its_burst_and_earns_failures_back() {
        let floods = Floods::new(FLOOD_BURST);
        let t = Instant::now();
        for _ in 0..FLOOD_BURST as usize {
            assert_eq!(floods.admit(ip("192.0.2.1"), None, t), Ok(()));
            floods.failed(ip("192.0.2.1"), t);
        }
        assert_eq!(floods.admit(ip("192.0.2.1"), None, t), Err(1));
        // Another address is untouched.
        assert_eq!(floods.admit(ip("192.0.2.2"), None, t), Ok(()));
        let later = t + Duration::from_secs_f64(1.0 / FLOOD_REFILL_PER_SEC);
        assert_eq!(floods.admit(ip("192.0.2.1"), None, later), Ok(()));
        floods.failed(ip("192.0.2.1"), later);
        assert!(floods.admit(ip("192.0.2.1"), None, later).is_err());
    }

    #[test]
    fn a_credential_that_worked_from_a_throttled_address_still_gets_through() {
        let floods = Floods::new(FLOOD_BURST);
        let t = Instant::now();
        let good = [7u8; 32];
        floods.succeeded(ip("198.51.100.9"), &good, t);
        for _ in 0..FLOOD_BURST as usize {
            floods.failed(ip("198.51.100.9"), t);
        }
        assert_eq!(floods.admit(ip("198.51.100.9"), Some(&good), t), Ok(()));
        assert!(
            floods
                .admit(ip("198.51.100.9"), Some(&[8u8; 32]), t)
                .is_err()
        );
        assert!(floods.admit(ip("198.51.100.9"), None, t).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let floods = Floods::new(FLOOD_BURST);
        let t = Instant::now();
        for i in 0..FLOOD_BURST as usize {
            floods.failed(ip(&format!("2001:db8:1:2::{:x}", i + 1)), t);
        }
        assert!(floods.admit(ip("2001:db8:1:2:ffff::1"), None, t).is_err());
        assert_eq!(floods.admit(ip("2001:db8:1:3::1"), None, t), Ok(()));
        for _ in 0..FLOOD_BURST as usize {
            floods.failed(ip("::ffff:203.0.113.5"), t);
        }
        assert!(floods.admit(ip("203.0.113.5"), None, t).is_err());
    }

    #[test]
    fn a_full_table_forgets_addresses_that_recovered() {
        let floods = Floods::new(FLOOD_BURST);
        let t = Instant::now();
        for i in 0..FLOOD_ADDRESSES as u32 {
            floods.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t);
        }
        // All recovered a second later: a new address is tracked, the old ones forgotten.
        let later = t + Duration::from_secs(2);
        for _ in 0..FLOOD_BURST as usize {
            floods.failed(ip("10.9.9.9"), later);
        }
        assert!(floods.admit(ip("10.9.9.9"), None, later).is_err());
        assert!(floods.doors.lock().unwrap().len() < FLOOD_ADDRESSES);
    }

    #[test]
    fn a_burst_of_zero_throttles_nothing() {
        let floods = Floods::new(0);
        let t = Instant::now();
        for _ in 0..1000 {
            floods.failed(ip("192.0.2.1"), t);
        }
        assert_eq!(floods.admit(ip("192.0.2.1"), None, t), Ok(()));
    }
}
