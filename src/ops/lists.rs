//! Where the next `startIndex` page of a walk starts. Okta and Entra read a whole
//! directory with `startIndex` pages, one after the other; each page tells where the one
//! after it begins ([`Resume`]), and remembering that here lets the next page start there
//! instead of stepping over every row before it. A position no longer valid (a deletion in
//! the tenant since) is ignored by the query, which then steps as usual.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::paging::{Listed, Resume};

/// Positions kept at most; past it the oldest half of the walks start over by stepping.
const KEPT: usize = 4096;

/// A page of a tenant's table: (tenant, table, startIndex).
type PageKey = (i64, Listed, u64);

/// Remembered next-page positions, per tenant, table and `startIndex`.
#[derive(Default)]
pub struct Resumes {
    /// The position of each page, with when it was stored.
    positions: Mutex<HashMap<PageKey, (u64, Resume)>>,
    /// Bumped on every store: the age of a position.
    stored: std::sync::atomic::AtomicU64,
}

impl Resumes {
    /// Where page `start_index` of the tenant's table starts, if a page before said so.
    pub fn get(&self, tenant_id: i64, table: Listed, start_index: u64) -> Option<Resume> {
        let positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        positions
            .get(&(tenant_id, table, start_index))
            .map(|(_, r)| *r)
    }

    /// Remembers where the page after one just read starts.
    pub fn put(&self, tenant_id: i64, table: Listed, resume: Resume) {
        use std::sync::atomic::Ordering;
        let now = self.stored.fetch_add(1, Ordering::Relaxed);
        let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
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
        assert_eq!(r.get(1, Listed::Users, 101), Some(at(101, 7)));
        assert_eq!(r.get(2, Listed::Users, 101), None);
        assert_eq!(r.get(1, Listed::Groups, 101), None);
        assert_eq!(r.get(1, Listed::Users, 201), None);
        for i in 0..(3 * KEPT as u64) {
            r.put(1, Listed::Users, at(1000 + i, i as i64));
        }
        assert!(r.positions.lock().unwrap().len() <= KEPT);
        let last = 1000 + 3 * KEPT as u64 - 1;
        assert_eq!(
            r.get(1, Listed::Users, last).map(|p| p.start_index),
            Some(last)
        );
    }
}
