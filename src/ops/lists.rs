//! Where `startIndex` pages start. Okta and Entra read a whole directory with `startIndex`
//! pages, one after the other; each page tells where the one after it begins ([`Resume`]),
//! and remembering that here lets the next page start there instead of stepping over
//! every row before it. A page that has to step leaves a position every
//! [`MARK_EVERY`](crate::db::paging::MARK_EVERY) rows on its way, so a deep page asked out
//! of order starts from the nearest one before it. A position no longer valid (a deletion
//! in the tenant since) is ignored by the query, which then steps as usual, and dropped
//! here once a position of the newer count is stored.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::db::paging::{Listed, Resume};

/// Positions kept at most; past it the oldest half of the walks start over by stepping.
const KEPT: usize = 4096;

/// A page of a tenant's table: (tenant, table, startIndex).
type PageKey = (i64, Listed, u64);

/// Remembered positions, per tenant, table and `startIndex`.
#[derive(Default)]
pub struct Resumes {
    /// Each position, with when it was stored.
    positions: Mutex<BTreeMap<PageKey, (u64, Resume)>>,
    /// Bumped on every store: the age of a position.
    stored: std::sync::atomic::AtomicU64,
}

impl Resumes {
    /// The known position nearest before page `start_index` of the tenant's table, or
    /// where that page starts, if a page before said so.
    pub fn nearest(&self, tenant_id: i64, table: Listed, start_index: u64) -> Option<Resume> {
        let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        positions
            .range((tenant_id, table, 0)..=(tenant_id, table, start_index))
            .next_back()
            .map(|(_, (_, r))| *r)
    }

    /// Remembers a position a page learned. Positions taken before a deletion the new one
    /// has seen are dropped, and one taken before a deletion a kept one has seen is not
    /// kept: they no longer hold.
    pub fn put(&self, tenant_id: i64, table: Listed, resume: Resume) {
        use std::sync::atomic::Ordering;
        let now = self.stored.fetch_add(1, Ordering::Relaxed);
        let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let tables = (tenant_id, table, 0)..=(tenant_id, table, u64::MAX);
        let newest = positions
            .range(tables.clone())
            .map(|(_, (_, r))| r.deleted)
            .max();
        match newest {
            Some(d) if d > resume.deleted => return,
            Some(d) if d < resume.deleted => {
                positions.retain(|k, (_, r)| !tables.contains(k) || r.deleted >= resume.deleted)
            }
            _ => {}
        }
        if positions.len() >= KEPT {
            let cut = now.saturating_sub(KEPT as u64 / 2);
            positions.retain(|_, (at, _)| *at >= cut);
        }
        positions.insert((tenant_id, table, resume.start_index), (now, resume));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_kept_per_tenant_table_and_index_and_bounded() {
        let r = Resumes::default();
        let at = |start_index, pk| Resume {
            start_index,
            pk,
            deleted: 0,
        };
        r.put(1, Listed::Users, at(101, 7));
        assert_eq!(r.nearest(1, Listed::Users, 101), Some(at(101, 7)));
        assert_eq!(r.nearest(2, Listed::Users, 101), None);
        assert_eq!(r.nearest(1, Listed::Groups, 101), None);
        assert_eq!(r.nearest(1, Listed::Users, 100), None);
        assert_eq!(r.nearest(1, Listed::Users, 201), Some(at(101, 7)));
        for i in 0..(3 * KEPT as u64) {
            r.put(1, Listed::Users, at(1000 + i, i as i64));
        }
        assert!(r.positions.lock().unwrap().len() <= KEPT);
        let last = 1000 + 3 * KEPT as u64 - 1;
        assert_eq!(
            r.nearest(1, Listed::Users, last).map(|p| p.start_index),
            Some(last)
        );
    }

    /// A position of a newer deletion count drops the tenant's older ones for that table
    /// (they no longer hold), and nothing of another tenant or table; an older one arriving
    /// late is not kept.
    #[test]
    fn a_newer_deletion_count_drops_the_older_positions() {
        let r = Resumes::default();
        let at = |start_index, deleted| Resume {
            start_index,
            pk: 1,
            deleted,
        };
        r.put(1, Listed::Users, at(1025, 0));
        r.put(1, Listed::Groups, at(1025, 0));
        r.put(2, Listed::Users, at(1025, 0));
        r.put(1, Listed::Users, at(3000, 1));
        assert_eq!(r.nearest(1, Listed::Users, 2000), None);
        assert_eq!(r.nearest(1, Listed::Users, 3500), Some(at(3000, 1)));
        assert_eq!(r.nearest(1, Listed::Groups, 2000), Some(at(1025, 0)));
        assert_eq!(r.nearest(2, Listed::Users, 2000), Some(at(1025, 0)));
        // A slow reader's position from before the deletion is not kept.
        r.put(1, Listed::Users, at(2049, 0));
        assert_eq!(r.nearest(1, Listed::Users, 2500), None);
    }
}
