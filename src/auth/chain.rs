//! The audit log's hash chain, pure: each entry stores the hash of the entry before it in
//! the same chain (one chain per tenant, and one for entries outside any tenant) and its
//! own hash over that link and its content, so an entry changed, removed or inserted
//! outside scimd breaks the chain where it happened.
//!
//! `hash = hex(SHA-256(prev_hash ‖ "\n" ‖ content))`, where `prev_hash` is the previous
//! entry's hash (64 zeros for a chain's first entry) and `content` is the compact JSON
//! array `[id, tenantId, at, actor, action, target, outcome, status, requestId, detail]`
//! (`null` for what is absent; `detail` as stored, keys in their stored order). The id is
//! part of the content, so an entry cannot be moved either.
//!
//! The chain proves that the log is what it was when its newest hash (the *head*) was
//! seen: anyone able to rewrite the database file can rewrite a whole chain, so keep the
//! heads that `scimd audit verify` prints (or an export) somewhere else.

use std::collections::HashMap;

use super::hex;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the hash of an entry covers.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub id: i64,
    pub tenant_id: Option<i64>,
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub status: Option<u16>,
    pub request_id: Option<&'a str>,
    pub detail: Option<&'a Value>,
}

impl Content<'_> {
    /// The whole canonical array, as the hash covers it (tests pin its bytes).
    #[cfg(test)]
    fn canonical(&self) -> String {
        let detail = self
            .detail
            .map_or_else(|| "null".to_string(), Value::to_string);
        let mut out = self.canonical_head();
        out.push_str(&detail);
        out.push(']');
        out
    }

    /// The canonical array up to and including the comma before `detail`. A tuple
    /// serialises as the JSON array `json!([...])` would build, byte for byte, without
    /// first copying anything into a new tree.
    fn canonical_head(&self) -> String {
        let mut head = serde_json::to_string(&(
            self.id,
            self.tenant_id,
            self.at,
            self.actor,
            self.action,
            self.target,
            self.outcome,
            self.status,
            self.request_id,
        ))
        .expect("numbers and strings always serialise");
        head.pop(); // the closing bracket
        head.push(',');
        head
    }

    /// The hash of this entry when it follows an entry whose hash is `prev_hash`.
    pub fn hash(&self, prev_hash: &str) -> String {
        match self.detail {
            Some(detail) => self.hash_stored(prev_hash, Some(&detail.to_string())),
            None => self.hash_stored(prev_hash, None),
        }
    }

    /// [`Content::hash`], given `detail` as it is stored (compact JSON, which is what
    /// `Value::to_string` writes) so that a writer serialises it once, not twice. The
    /// `detail` field itself is not read.
    pub fn hash_stored(&self, prev_hash: &str, detail: Option<&str>) -> String {
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(self.canonical_head().as_bytes());
        h.update(detail.unwrap_or("null").as_bytes());
        h.update(b"]");
        hex(&h.finalize())
    }
}

/// One stored entry as the verifier reads it.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub content: Content<'a>,
    pub prev_hash: Option<&'a str>,
    pub hash: Option<&'a str>,
}

/// The first place a chain does not hold, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's content or hash no longer matches what was sealed.
    Changed { id: i64 },
    /// The entry carries no hash: it was written outside scimd.
    Unsealed { id: i64 },
    /// The entry sits between two entries that were sealed next to each other.
    Inserted { id: i64 },
    /// Entry `id` does not follow the entry before it in its chain (`after`, or none when
    /// it should be the first): what came between was removed, or `after` was rewritten
    /// together with its hash.
    Removed { id: i64, after: Option<i64> },
    /// Entry ids must rise by one through the whole log; `id` was expected and is missing.
    Missing { id: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Changed { id } => write!(f, "entry {id} was changed after it was written"),
            Break::Unsealed { id } => write!(
                f,
                "entry {id} has no hash: it was inserted or rewritten outside scimd"
            ),
            Break::Inserted { id } => write!(f, "entry {id} was inserted into the log"),
            Break::Removed {
                id,
                after: Some(after),
            } => write!(
                f,
                "entry {id} does not follow entry {after}: an entry between them was removed, \
                 or entry {after} was rewritten with a new hash"
            ),
            Break::Removed { id, after: None } => write!(
                f,
                "entry {id} should start its chain but follows an entry that is not there: \
                 earlier entries were removed"
            ),
            Break::Missing { id } => write!(f, "entry {id} was removed from the log"),
        }
    }
}

/// The newest entry of one chain, as verified so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: i64,
    pub hash: String,
    /// How many entries of this chain were checked.
    pub entries: u64,
    prev_hash: String,
}

/// Walks entries in id order and finds the first break.
#[derive(Debug, Default)]
pub struct Verifier {
    heads: HashMap<Option<i64>, Head>,
    /// Check that ids rise by one (a whole log, not one tenant's chain or a filtered export).
    contiguous: bool,
    /// Accept a chain whose first entry follows an entry that was not fed (an export that
    /// starts later than the log does).
    partial: bool,
    last_id: Option<i64>,
    /// Entries up to this id may be missing: retention purged them.
    purged_upto: i64,
}

impl Verifier {
    /// A verifier of the whole log (every chain, from its first entry).
    pub fn whole_log() -> Verifier {
        Verifier {
            contiguous: true,
            ..Verifier::default()
        }
    }

    /// A verifier of one chain (one tenant's entries), from its first entry.
    pub fn one_chain() -> Verifier {
        Verifier::default()
    }

    /// A verifier of an export, which may start anywhere in each chain.
    pub fn export() -> Verifier {
        Verifier {
            partial: true,
            ..Verifier::default()
        }
    }

    /// Starts `chain` after entries that retention purged: its next entry follows the
    /// purged entry `upto_id`, whose hash was `hash`.
    pub fn anchor(&mut self, chain: Option<i64>, upto_id: i64, hash: &str) {
        self.heads.insert(
            chain,
            Head {
                id: upto_id,
                hash: hash.to_string(),
                entries: 0,
                prev_hash: String::new(),
            },
        );
        self.purged_upto = self.purged_upto.max(upto_id);
    }

    /// Checks the next entry (ids must come in rising order).
    pub fn feed(&mut self, link: &Link) -> Result<(), Break> {
        let id = link.content.id;
        if self.contiguous {
            let expected = self.last_id.map_or(1, |l| l + 1).max(self.purged_upto + 1);
            if id > expected {
                return Err(Break::Missing { id: expected });
            }
        }
        self.last_id = Some(id);
        let (Some(prev), Some(hash)) = (link.prev_hash, link.hash) else {
            return Err(Break::Unsealed { id });
        };
        if link.content.hash(prev) != hash {
            return Err(Break::Changed { id });
        }
        let head = self.heads.get(&link.content.tenant_id);
        match head {
            Some(h) if h.hash == prev => {}
            // It links where the head linked: the head is the stranger.
            Some(h) if h.prev_hash == prev => return Err(Break::Inserted { id: h.id }),
            Some(h) => {
                return Err(Break::Removed {
                    id,
                    after: Some(h.id),
                });
            }
            None if prev == GENESIS || self.partial => {}
            None => return Err(Break::Removed { id, after: None }),
        }
        let entries = head.map_or(0, |h| h.entries) + 1;
        self.heads.insert(
            link.content.tenant_id,
            Head {
                id,
                hash: hash.to_string(),
                entries,
                prev_hash: prev.to_string(),
            },
        );
        Ok(())
    }

    /// The newest entry of each chain seen, by tenant (`None`: entries outside any tenant).
    pub fn heads(&self) -> impl Iterator<Item = (Option<i64>, &Head)> {
        self.heads.iter().map(|(t, h)| (*t, h))
    }

    /// How many entries were checked.
    pub fn entries(&self) -> u64 {
        self.heads.values().map(|h| h.entries).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hashes of entries already stored must not change: the content is the compact JSON
    /// array, as `json!` wrote it before the tuple replaced it.
    #[test]
    fn the_canonical_content_is_the_json_array() {
        let detail =
            json!({"kind": "create", "fields": [{"field": "email", "after": "é@x.io"}], "n": 1.5});
        let content = Content {
            id: 7,
            tenant_id: Some(1),
            at: "2026-12-03T10:00:00.000000Z",
            actor: "token:1",
            action: "member.created",
            target: None,
            outcome: "success",
            status: Some(201),
            request_id: Some("req \"1\""),
            detail: Some(&detail),
        };
        let old = json!([
            7,
            1,
            content.at,
            "token:1",
            "member.created",
            null,
            "success",
            201,
            content.request_id,
            detail
        ])
        .to_string();
        assert_eq!(content.canonical(), old);
        let mut h = Sha256::new();
        h.update(format!("{GENESIS}\n{old}").as_bytes());
        assert_eq!(content.hash(GENESIS), hex(&h.finalize()));
        let stored = detail.to_string();
        assert_eq!(
            content.hash_stored(GENESIS, Some(&stored)),
            content.hash(GENESIS)
        );
        let bare = Content {
            tenant_id: None,
            status: None,
            request_id: None,
            detail: None,
            ..content
        };
        assert_eq!(
            bare.canonical(),
            json!([
                7,
                null,
                content.at,
                "token:1",
                "member.created",
                null,
                "success",
                null,
                null,
                null
            ])
            .to_string()
        );
        assert_eq!(bare.hash_stored(GENESIS, None), bare.hash(GENESIS));
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    struct Row {
        id: i64,
        tenant: Option<i64>,
        actor: String,
        prev: Option<String>,
        hash: Option<String>,
    }

    impl Row {
        fn content(&self) -> Content<'_> {
            Content {
                id: self.id,
                tenant_id: self.tenant,
                at: "2026-12-03T00:00:00.000000Z",
                actor: &self.actor,
                action: "scim.post",
                target: None,
                outcome: "success",
                status: Some(201),
                request_id: None,
                detail: None,
            }
        }
        fn link(&self) -> Link<'_> {
            Link {
                content: self.content(),
                prev_hash: self.prev.as_deref(),
                hash: self.hash.as_deref(),
            }
        }
    }

    /// A sealed log of `n` entries alternating between tenants 1 and 2.
    fn log(n: i64) -> Vec<Row> {
        let mut heads: HashMap<Option<i64>, String> = HashMap::new();
        (1..=n)
            .map(|id| {
                let tenant = Some(id % 2 + 1);
                let mut row = Row {
                    id,
                    tenant,
                    actor: format!("token:{id}"),
                    prev: None,
                    hash: None,
                };
                let prev = heads.get(&tenant).cloned().unwrap_or(GENESIS.into());
                let hash = row.content().hash(&prev);
                heads.insert(tenant, hash.clone());
                row.prev = Some(prev);
                row.hash = Some(hash);
                row
            })
            .collect()
    }

    fn verify(mut v: Verifier, rows: &[Row]) -> Result<u64, Break> {
        for r in rows {
            v.feed(&r.link())?;
        }
        Ok(v.entries())
    }

    #[test]
    fn an_untouched_log_verifies() {
        assert_eq!(verify(Verifier::whole_log(), &log(10)), Ok(10));
        let one: Vec<Row> = log(10)
            .into_iter()
            .filter(|r| r.tenant == Some(1))
            .collect();
        assert_eq!(verify(Verifier::one_chain(), &one), Ok(5));
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut rows = log(10);
        rows[4].actor = "admin:mallory".into();
        assert_eq!(
            verify(Verifier::whole_log(), &rows),
            Err(Break::Changed { id: 5 })
        );
    }

    #[test]
    fn a_rewritten_entry_with_a_new_hash_breaks_the_next_link() {
        let mut rows = log(10);
        rows[4].actor = "admin:mallory".into();
        rows[4].hash = Some(rows[4].content().hash(rows[4].prev.as_deref().unwrap()));
        // Entry 7 is the next of the same tenant.
        assert_eq!(
            verify(Verifier::whole_log(), &rows),
            Err(Break::Removed {
                id: 7,
                after: Some(5)
            })
        );
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut rows = log(10);
        rows.remove(3);
        assert_eq!(
            verify(Verifier::whole_log(), &rows),
            Err(Break::Missing { id: 4 })
        );
        // Within one chain, without the global ids, the break is where it shows.
        let one: Vec<Row> = rows.into_iter().filter(|r| r.tenant == Some(1)).collect();
        assert_eq!(
            verify(Verifier::one_chain(), &one),
            Err(Break::Removed {
                id: 6,
                after: Some(2)
            })
        );
    }

    #[test]
    fn an_inserted_entry_is_named_even_when_it_carries_a_valid_hash() {
        let rows = log(6);
        let mut one: Vec<Row> = rows.into_iter().filter(|r| r.tenant == Some(1)).collect();
        // Between 2 and 4, linked to 2 and hashed correctly.
        let mut forged = Row {
            id: 3,
            tenant: Some(1),
            actor: "admin:mallory".into(),
            prev: one[0].hash.clone(),
            hash: None,
        };
        forged.hash = Some(forged.content().hash(forged.prev.as_deref().unwrap()));
        one.insert(1, forged);
        assert_eq!(
            verify(Verifier::one_chain(), &one),
            Err(Break::Inserted { id: 3 })
        );
    }

    #[test]
    fn an_entry_without_hash_and_a_missing_start_are_named() {
        let mut rows = log(4);
        rows[2].hash = None;
        assert_eq!(
            verify(Verifier::whole_log(), &rows),
            Err(Break::Unsealed { id: 3 })
        );
        let rows = log(6);
        let tail: Vec<Row> = rows.into_iter().skip(2).collect();
        assert_eq!(
            verify(Verifier::one_chain(), &tail),
            Err(Break::Removed { id: 3, after: None })
        );
        assert_eq!(verify(Verifier::export(), &tail), Ok(4));
    }

    #[test]
    fn a_chain_verifies_after_a_purge_from_its_anchor_and_not_before() {
        let rows = log(10);
        // Retention purged entries 1 to 4: the chains start after 3 (tenant 2) and 4.
        let mut v = Verifier::whole_log();
        v.anchor(Some(2), 3, rows[2].hash.as_deref().unwrap());
        v.anchor(Some(1), 4, rows[3].hash.as_deref().unwrap());
        assert_eq!(verify(v, &rows[4..]), Ok(6));
        // Removing the first kept entry is still seen.
        let mut v = Verifier::whole_log();
        v.anchor(Some(2), 3, rows[2].hash.as_deref().unwrap());
        v.anchor(Some(1), 4, rows[3].hash.as_deref().unwrap());
        assert_eq!(verify(v, &rows[5..]), Err(Break::Missing { id: 5 }));
    }
}
