//! What one client address may hold at once: a share of the open connections and of the
//! request slots. The server-wide caps (`--max-connections`, `--max-requests`) keep a
//! small VM alive; these keep one client from taking all of them, so a slowloris client
//! (headers or bodies trickled in) or a runaway script leaves room for the IdPs and the
//! apps. An address counts per block (`ops::throttle::address_block`: IPv6 per /64).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::ops::throttle::address_block;

/// The share of a server-wide cap one address may hold: a quarter, so it takes four
/// addresses to fill the server, and a reverse proxy (one address for everyone) still gets
/// a quarter of it.
pub(crate) fn share_of(cap: usize) -> usize {
    (cap / 4).max(1)
}

/// How much each address holds now, capped per address.
pub(crate) struct Shares {
    cap: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// What an address holds of its share, given back when dropped.
pub(crate) struct Held {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    block: IpAddr,
    units: usize,
}

impl Shares {
    /// At most `cap` units per address.
    pub(crate) fn new(cap: usize) -> Shares {
        Shares {
            cap: cap.max(1),
            held: Default::default(),
        }
    }

    /// One more unit for `address`, or `None` when it holds its whole share.
    pub(crate) fn take(&self, address: IpAddr) -> Option<Held> {
        self.take_many(address, 1)
    }

    /// `units` more for `address`, or `None` when they would take it past its share.
    pub(crate) fn take_many(&self, address: IpAddr, units: usize) -> Option<Held> {
        let block = address_block(address);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(block).or_insert(0);
        if count.saturating_add(units) > self.cap {
            if *count == 0 {
                held.remove(&block);
            }
            return None;
        }
        *count += units;
        Some(Held {
            held: self.held.clone(),
            block,
            units,
        })
    }
}

/// Answers bigger than this are held against the [`Backlog`]; smaller ones cost less than
/// the socket buffers of the connection that carries them.
pub(crate) const BIG_ANSWER: usize = 64 * 1024;

/// The memory held by big answers (a page of the apps' or WorkOS's lists, a big group)
/// until their clients have taken them: [`crate::config::HttpConfig::answer_backlog`]
/// bytes server-wide, a quarter of it per client address. A client that asks and never reads keeps its answer in memory
/// until the write timeout; without this, a few dozen of them took the VM's memory.
pub(crate) struct Backlog {
    /// What the whole backlog holds, in KiB.
    room: usize,
    total: Arc<tokio::sync::Semaphore>,
    shares: Shares,
}

/// One answer's room in the [`Backlog`], given back when the answer has been handed to
/// the connection or dropped with it.
pub struct Hold {
    _total: tokio::sync::OwnedSemaphorePermit,
    _share: Option<Held>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

impl Backlog {
    /// A backlog of `bytes` in all.
    pub(crate) fn new(bytes: usize) -> Backlog {
        let kib = kib(bytes).max(1);
        Backlog {
            room: kib,
            total: Arc::new(tokio::sync::Semaphore::new(kib)),
            shares: Shares::new(share_of(kib)),
        }
    }

    /// Room for an answer of `bytes` to `client`, or `None` when the backlog, or the
    /// client's share of it, is full. An answer bigger than a share takes a whole one, so
    /// that it is refused only while others are held.
    pub(crate) fn hold(&self, client: Option<IpAddr>, bytes: usize) -> Option<Hold> {
        let units = kib(bytes);
        let share = match client {
            Some(address) => Some(self.shares.take_many(address, units.min(self.shares.cap))?),
            None => None,
        };
        let whole = units.min(self.room);
        let total = self
            .total
            .clone()
            .try_acquire_many_owned(u32::try_from(whole).ok()?)
            .ok()?;
        Some(Hold {
            _total: total,
            _share: share,
        })
    }
}

/// `bytes` in KiB, rounded up: the backlog's unit.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.block) {
            *count -= self.units;
            if *count == 0 {
                held.remove(&self.block);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::new(2);
        let a = shares.take(ip("192.0.2.1")).unwrap();
        let _b = shares.take(ip("192.0.2.1")).unwrap();
        assert!(shares.take(ip("192.0.2.1")).is_none());
        assert!(
            shares.take(ip("192.0.2.2")).is_some(),
            "others are not held back"
        );
        drop(a);
        assert!(shares.take(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn an_ipv6_host_counts_per_64() {
        let shares = Shares::new(1);
        let _a = shares.take(ip("2001:db8::1")).unwrap();
        assert!(shares.take(ip("2001:db8::2")).is_none());
        assert!(shares.take(ip("2001:db8:0:1::1")).is_some());
    }

    #[test]
    fn nothing_is_kept_for_an_address_that_holds_nothing() {
        let shares = Shares::new(3);
        drop(shares.take(ip("192.0.2.1")));
        assert!(shares.held.lock().unwrap().is_empty());
    }

    #[test]
    fn an_address_holds_a_quarter_of_the_backlog_and_gets_it_back() {
        let backlog = Backlog::new(4 * 1024 * 1024);
        let a = backlog.hold(Some(ip("192.0.2.1")), 600 * 1024).unwrap();
        let b = backlog.hold(Some(ip("192.0.2.1")), 424 * 1024).unwrap();
        assert!(
            backlog.hold(Some(ip("192.0.2.1")), 1).is_none(),
            "its quarter is full"
        );
        let others = backlog.hold(Some(ip("192.0.2.2")), 1024 * 1024).unwrap();
        let _more = backlog.hold(Some(ip("192.0.2.3")), 1024 * 1024).unwrap();
        assert!(
            backlog.hold(None, 1024 * 1024 + 1).is_none(),
            "the whole backlog is full"
        );
        drop((a, others));
        assert!(backlog.hold(Some(ip("192.0.2.1")), 600 * 1024).is_some());
        drop(b);
        assert!(backlog.shares.held.lock().unwrap().len() <= 1);
    }

    #[test]
    fn an_answer_bigger_than_a_share_takes_a_whole_one_and_a_refused_hold_keeps_nothing() {
        let backlog = Backlog::new(1024 * 1024);
        let big = backlog
            .hold(Some(ip("192.0.2.1")), 2 * 1024 * 1024)
            .unwrap();
        assert!(backlog.hold(Some(ip("192.0.2.1")), 1).is_none());
        drop(big);
        let _all = backlog.hold(None, 2 * 1024 * 1024).unwrap();
        assert!(backlog.hold(Some(ip("192.0.2.2")), 1).is_none());
        assert!(backlog.shares.held.lock().unwrap().is_empty());
    }

    #[test]
    fn a_share_is_a_quarter_and_never_nothing() {
        assert_eq!(share_of(1024), 256);
        assert_eq!(share_of(256), 64);
        assert_eq!(share_of(2), 1);
    }
}
