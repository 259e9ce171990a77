//! Keyset paging for the admin UI's lists: a page starts after (or ends before) a row,
//! named by its row id, so reading page 2 000 of a 100 000-row list costs one page of
//! index entries, like page 1 — never an OFFSET that reads and drops everything before it.

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    First,
    /// The rows after this one, in list order.
    After(i64),
    /// The rows before this one (the previous page).
    Before(i64),
}

impl Cursor {
    /// From the `after` / `before` query parameters of a list page.
    pub fn from_query(after: Option<&str>, before: Option<&str>) -> Cursor {
        match (
            after.and_then(|a| a.parse().ok()),
            before.and_then(|b| b.parse().ok()),
        ) {
            (Some(a), _) => Cursor::After(a),
            (None, Some(b)) => Cursor::Before(b),
            _ => Cursor::First,
        }
    }
}

/// One page of a list, in list order.
#[derive(Debug, Clone)]
pub struct Keyset<T> {
    pub items: Vec<T>,
    /// The cursor of the previous page (`Before` this key), when there is one.
    pub prev: Option<i64>,
    /// The cursor of the next page (`After` this key), when there is one.
    pub next: Option<i64>,
}

impl<T> Keyset<T> {
    /// Builds a page from rows read with `LIMIT limit + 1` in the cursor's direction
    /// (descending for `Before`): the extra row only says whether more follow.
    pub fn from_rows(mut rows: Vec<T>, cursor: Cursor, limit: usize, key: fn(&T) -> i64) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        if let Cursor::Before(_) = cursor {
            rows.reverse();
        }
        let first = rows.first().map(key);
        let last = rows.last().map(key);
        let (prev, next) = match cursor {
            Cursor::First => (None, last.filter(|_| more)),
            Cursor::After(_) => (first, last.filter(|_| more)),
            Cursor::Before(_) => (first.filter(|_| more), last),
        };
        Keyset {
            items: rows,
            prev,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_know_their_neighbours() {
        let id = |x: &i64| *x;
        let p = Keyset::from_rows(vec![1, 2, 3], Cursor::First, 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![1, 2], None, Some(2)));
        let p = Keyset::from_rows(vec![3, 4], Cursor::After(2), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![3, 4], Some(3), None));
        // Read descending from before 5: 4, 3, 2 → shown 3, 4.
        let p = Keyset::from_rows(vec![4, 3, 2], Cursor::Before(5), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![3, 4], Some(3), Some(4)));
        let p = Keyset::from_rows(vec![1], Cursor::Before(2), 2, id);
        assert_eq!((p.items, p.prev, p.next), (vec![1], None, Some(1)));
        assert_eq!(Cursor::from_query(Some("7"), None), Cursor::After(7));
        assert_eq!(Cursor::from_query(None, Some("x")), Cursor::First);
    }
}
