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

/// One unit an address holds, given back when dropped.
pub(crate) struct Held {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    block: IpAddr,
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
        let block = address_block(address);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(block).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Held {
            held: self.held.clone(),
            block,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.block) {
            *count -= 1;
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
    fn a_share_is_a_quarter_and_never_nothing() {
        assert_eq!(share_of(1024), 256);
        assert_eq!(share_of(256), 64);
        assert_eq!(share_of(2), 1);
    }
}
