//! The audit log: append-only (triggers refuse UPDATE and DELETE), one row per admin
//! action, SCIM write and applied member change, filterable and exportable as JSON lines.
//!
//! [`append`] takes any connection, so a caller logs a successful write inside that
//! write's transaction (both commit or neither does) and a failed request in a small
//! transaction of its own once the failed one has rolled back. Entries name actors by id
//! (`token:<id>`, never the token) and hold no secret.

use rusqlite::{
    Connection, OptionalExtension, Row, params, params_from_iter, types::Value as SqlValue,
};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::DbError;
use super::paging::{Cursor, Keyset};
use crate::auth::chain;
use crate::model::{Actor, text_enum};
use crate::scim::datetime;

text_enum! {
    /// What was done. SCIM writes are named after their method; member changes share the
    /// names of their events.
    pub enum Action ("audit action") {
        ScimPost => "scim.post",
        ScimPut => "scim.put",
        ScimPatch => "scim.patch",
        ScimDelete => "scim.delete",
        MemberCreated => "member.created",
        MemberUpdated => "member.updated",
        MemberRoleChanged => "member.role_changed",
        MemberSuspended => "member.suspended",
        MemberReactivated => "member.reactivated",
        MemberArchived => "member.archived",
        MemberDeleted => "member.deleted",
        MembersImported => "members.imported",
        SettingsChanged => "tenant.settings_changed",
        RoleMapped => "roles.mapped",
        RoleUnmapped => "roles.unmapped",
        SyncRun => "sync.run",
        /// The guard against mass deprovisioning held member deprovisionings.
        DeprovisioningHeld => "deprovisioning.held",
        DeprovisioningApproved => "deprovisioning.approved",
        DeprovisioningRejected => "deprovisioning.rejected",
        /// Nothing is left to hold: the directory changed back.
        DeprovisioningReleased => "deprovisioning.released",
        /// The daily retention job deleted members past their grace period or retention,
        /// or purged old audit entries.
        RetentionApplied => "retention.applied",
        TokenCreated => "token.created",
        TokenRevoked => "token.revoked",
        ApiKeyCreated => "apikey.created",
        ApiKeyRevoked => "apikey.revoked",
        WebhookCreated => "webhook.created",
        WebhookRemoved => "webhook.removed",
        WebhookEnabled => "webhook.enabled",
        /// Disabled by an admin, by a 410 from the receiver, or after failing for longer
        /// than the retry schedule.
        WebhookDisabled => "webhook.disabled",
        WebhookSecretRotated => "webhook.secret_rotated",
        WebhookReplayed => "webhook.replayed",
        WebhookResent => "webhook.resent",
        WebhookTested => "webhook.tested",
        TenantCreated => "tenant.created",
        /// Deleted by an admin: an entry outside any tenant, with what the tenant held.
        TenantDeleted => "tenant.deleted",
        AdminCreated => "admin.created",
        AdminDeleted => "admin.deleted",
        AdminPasswordChanged => "admin.password_changed",
        AdminLoggedIn => "admin.login",
        AdminLoginFailed => "admin.login_failed",
        AdminLoggedOut => "admin.logout",
        OAuthClientCreated => "oauth.client_created",
        OAuthClientSecretRotated => "oauth.client_secret_rotated",
        OAuthClientRevoked => "oauth.client_revoked",
        OAuthAuthorizationApproved => "oauth.authorization_approved",
        OAuthAuthorizationDenied => "oauth.authorization_denied",
        OAuthAuthorizationRefused => "oauth.authorization_refused",
        OAuthTokenIssued => "oauth.token_issued",
        OAuthTokenRefreshed => "oauth.token_refreshed",
        OAuthTokenRefused => "oauth.token_refused",
        OAuthTokenRevoked => "oauth.token_revoked",
        OAuthRevokeRefused => "oauth.revoke_refused",
        /// A whole grant revoked because a spent code or refresh token was presented again.
        OAuthGrantRevoked => "oauth.grant_revoked",
    }
}

impl Action {
    /// The action of a SCIM write by HTTP method; `None` for methods that do not write.
    pub fn scim(method: &str) -> Option<Action> {
        match method.to_ascii_uppercase().as_str() {
            "POST" => Some(Action::ScimPost),
            "PUT" => Some(Action::ScimPut),
            "PATCH" => Some(Action::ScimPatch),
            "DELETE" => Some(Action::ScimDelete),
            _ => None,
        }
    }
}

text_enum! {
    pub enum Outcome ("outcome") {
        Success => "success",
        Failure => "failure",
    }
}

/// One audit entry, owned so it can move into a `Db::write` closure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `None` for actions outside any tenant (a request whose token did not authenticate).
    pub tenant_id: Option<i64>,
    /// `token:<id>`, `admin:<name>` or `cli`.
    pub actor: String,
    pub action: Action,
    /// What was acted on: `Users/<id>`, `Groups/<id>`, `member/<id>`, `tenant`.
    pub target: Option<String>,
    pub outcome: Outcome,
    /// The HTTP status, for requests.
    pub status: Option<u16>,
    pub request_id: Option<String>,
    /// Specifics: fields before/after, counts, the error detail of a failure.
    pub detail: Option<Value>,
}

impl Entry {
    /// The one way an entry is made: `actor` did `action` to `target`, in `tenant_id`
    /// (`None`: the installation, such as admin accounts and logins). The actor's label and
    /// request id come from `actor`, so no entry can miss them.
    pub fn new(
        actor: &Actor,
        tenant_id: Option<i64>,
        action: Action,
        target: Option<String>,
    ) -> Entry {
        Entry {
            tenant_id,
            actor: clip(&actor.label(), LABEL_MAX),
            action,
            target: target.map(|t| clip(&t, LABEL_MAX)),
            outcome: Outcome::Success,
            status: None,
            request_id: actor.request_id.clone(),
            detail: None,
        }
    }

    /// The same entry, recorded as a failure.
    pub fn failed(mut self) -> Entry {
        self.outcome = Outcome::Failure;
        self
    }

    /// The HTTP status answered; 4xx and 5xx make the entry a failure.
    pub fn with_status(mut self, status: u16) -> Entry {
        self.status = Some(status);
        if status >= 400 {
            self.outcome = Outcome::Failure;
        }
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Entry {
        self.detail = Some(detail);
        self
    }
}

/// The most bytes of an actor or target an entry keeps. Both can carry what an
/// unauthenticated caller sent (an OAuth client id, a username at the login form), and
/// no real one comes near it.
const LABEL_MAX: usize = 200;

/// `text` cut to at most `max` bytes (at a character boundary) and marked with `…` when
/// cut: for what a caller sent, kept in an audit entry so it can be recognised without
/// letting one request store kilobytes.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Appends `entry` to its tenant's chain (`auth::chain`); returns its id. Must run inside
/// a write transaction, which makes reading the chain's head and appending one step.
pub fn append(conn: &Connection, entry: &Entry) -> Result<i64, DbError> {
    let detail = entry.detail.as_ref().map(Value::to_string);
    Chain::new(entry.tenant_id).append_stored(conn, entry, detail.as_deref())
}

/// One tenant's chain for the entries one write appends in its transaction: its head (the
/// last entry's hash) and the next id are read at the first entry and kept here after,
/// so that a write of 100 000 entries (a whole-tenant sync) reads them once, not 100 000
/// times. A write of one entry costs what it always did.
///
/// Nothing else may append entries before the last one appended here: it would take the
/// id this chain hands out next, and that insert fails on the primary key, failing the
/// write rather than forking the chain.
pub struct Chain {
    tenant_id: Option<i64>,
    /// The head's hash and the next entry's id, once read.
    head: Option<(String, i64)>,
}

impl Chain {
    /// The chain of `tenant_id` (`None`: entries outside any tenant).
    pub fn new(tenant_id: Option<i64>) -> Chain {
        Chain {
            tenant_id,
            head: None,
        }
    }

    /// [`append`], with the detail given as the compact JSON text it is stored as (what
    /// `serde_json::to_raw_value` writes of any value), so that a writer of many entries
    /// builds no JSON tree for it. `entry.detail` is not read.
    pub fn append_raw(
        &mut self,
        conn: &Connection,
        entry: &Entry,
        detail: &RawValue,
    ) -> Result<i64, DbError> {
        self.append_stored(conn, entry, Some(detail.get()))
    }

    fn append_stored(
        &mut self,
        conn: &Connection,
        entry: &Entry,
        detail: Option<&str>,
    ) -> Result<i64, DbError> {
        debug_assert!(
            !conn.is_autocommit(),
            "audit entries are appended in a transaction"
        );
        debug_assert_eq!(entry.tenant_id, self.tenant_id, "one chain, one tenant");
        let (prev, id) = match self.head.take() {
            Some(head) => head,
            None => head(conn, self.tenant_id)?,
        };
        let at = datetime::now();
        let hash = entry.content(id, &at).hash_stored(&prev, detail);
        let mut stmt = conn.prepare_cached(
            "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, outcome, status, request_id, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        stmt.execute(rusqlite::params![
            id,
            entry.tenant_id,
            at,
            entry.actor,
            entry.action.as_str(),
            entry.target,
            entry.outcome.as_str(),
            entry.status,
            entry.request_id,
            detail,
            prev,
            hash,
        ])?;
        self.head = Some((hash, id + 1));
        Ok(id)
    }
}

/// The hash of `tenant_id`'s newest entry (else of the last one retention purged, else
/// the genesis), and the id the next entry takes: AUTOINCREMENT's counter, not max(id),
/// for ids are never reused, even after a purge.
fn head(conn: &Connection, tenant_id: Option<i64>) -> Result<(String, i64), DbError> {
    let (prev, id): (Option<String>, i64) = conn
        .prepare_cached(
            "SELECT coalesce(
                 (SELECT hash FROM audit_log WHERE tenant_id IS ?1 ORDER BY id DESC LIMIT 1),
                 (SELECT hash FROM audit_anchors WHERE tenant_id IS ?1)),
             max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0),
                 coalesce((SELECT max(id) FROM audit_log), 0)) + 1",
        )?
        .query_row([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((prev.unwrap_or_else(|| chain::GENESIS.to_string()), id))
}

impl Entry {
    /// What the chain hashes of this entry, stored as `id` at `at`.
    fn content<'a>(&'a self, id: i64, at: &'a str) -> chain::Content<'a> {
        chain::Content {
            id,
            tenant_id: self.tenant_id,
            at,
            actor: &self.actor,
            action: self.action.as_str(),
            target: self.target.as_deref(),
            outcome: self.outcome.as_str(),
            status: self.status,
            request_id: self.request_id.as_deref(),
            detail: self.detail.as_ref(),
        }
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: i64,
    pub at: String,
    #[serde(flatten)]
    pub entry: Entry,
    /// The hash of the entry before this one in its chain (`auth::chain`).
    pub prev_hash: Option<String>,
    /// This entry's hash; `None` only if it was written outside scimd.
    pub hash: Option<String>,
}

impl Record {
    /// The entry as one line of JSON: the export format.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an audit record always serialises")
    }

    /// The entry as the chain's verifier reads it.
    pub fn link(&self) -> chain::Link<'_> {
        chain::Link {
            content: self.entry.content(self.id, &self.at),
            prev_hash: self.prev_hash.as_deref(),
            hash: self.hash.as_deref(),
        }
    }
}

/// An exported entry (one parsed line of [`Record::to_json_line`]) as the chain's verifier
/// reads it, or which field is wrong. Unknown actions are fine: an export of a newer scimd
/// verifies too.
pub fn exported_link(v: &Value) -> Result<chain::Link<'_>, String> {
    let text = |k: &str| -> Result<Option<&str>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{k} is not a string")),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n.as_i64().map(Some).ok_or(format!("{k} is not an integer")),
        }
    };
    fn need<'a>(k: &str, x: Option<&'a str>) -> Result<&'a str, String> {
        x.ok_or(format!("{k} is missing"))
    }
    Ok(chain::Link {
        content: chain::Content {
            id: int("id")?.ok_or("id is missing")?,
            tenant_id: int("tenantId")?,
            at: need("at", text("at")?)?,
            actor: need("actor", text("actor")?)?,
            action: need("action", text("action")?)?,
            target: text("target")?,
            outcome: need("outcome", text("outcome")?)?,
            status: int("status")?
                .map(|s| u16::try_from(s).map_err(|_| "status is out of range".to_string()))
                .transpose()?,
            request_id: text("requestId")?,
            detail: v.get("detail").filter(|d| !d.is_null()),
        },
        prev_hash: text("prevHash")?,
        hash: text("hash")?,
    })
}

/// Which entries to read. Empty: all, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One chain's entries (`Some(Some(tenant))`, or `Some(None)` for those outside any
    /// tenant: admin accounts and sign-ins), or every entry (`None`).
    pub tenant_id: Option<Option<i64>>,
    /// Exact (`admin:alice`), or without a colon, a kind or a name (`admin`, `alice`).
    pub actor: Option<String>,
    pub action: Option<Action>,
    /// Exact target, or a prefix ending in `/` (`Users/` for every user).
    pub target: Option<String>,
    /// Inclusive, canonical UTC form (see `scim::datetime`).
    pub since: Option<String>,
    /// Exclusive.
    pub until: Option<String>,
    /// Only entries after this id: how a tail resumes.
    pub after_id: Option<i64>,
    /// The newest `last` entries (still listed oldest first).
    pub last: Option<u64>,
}

fn from_row(r: &Row) -> rusqlite::Result<Record> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let action: String = r.get(4)?;
    let outcome: String = r.get(6)?;
    let detail: Option<String> = r.get(9)?;
    Ok(Record {
        id: r.get(0)?,
        at: r.get(2)?,
        entry: Entry {
            tenant_id: r.get(1)?,
            actor: r.get(3)?,
            action: action.parse().map_err(|e| bad(4, format!("{e}")))?,
            target: r.get(5)?,
            outcome: outcome.parse().map_err(|e| bad(6, format!("{e}")))?,
            status: r.get(7)?,
            request_id: r.get(8)?,
            detail: detail
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(|e| bad(9, e.to_string()))?,
        },
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

impl Filter {
    /// Whether the filter asks more than the tenant: what no index of the log answers.
    fn narrows(&self) -> bool {
        self.actor.is_some()
            || self.action.is_some()
            || self.target.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// The WHERE clause and its parameters (`after_id` included, `last` not).
    fn conditions(&self) -> (String, Vec<SqlValue>) {
        let mut cond = vec!["1 = 1"];
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(t) = self.tenant_id {
            cond.push("tenant_id IS ?");
            params.push(t.map_or(SqlValue::Null, SqlValue::Integer));
        }
        if let Some(a) = &self.actor {
            if a.contains(':') {
                cond.push("actor = ?");
                params.push(SqlValue::Text(a.clone()));
            } else {
                // A kind alone (`admin`, `token`) or a name alone (`alice`, in any case
                // as admin names are) finds every actor of that kind or name, as well as
                // an actor spelled so (`cli`).
                cond.push(
                    "(actor = ? COLLATE NOCASE OR substr(actor, 1, ?) = ? COLLATE NOCASE \
                     OR substr(actor, -?) = ? COLLATE NOCASE)",
                );
                let n = a.chars().count() as i64 + 1;
                params.push(SqlValue::Text(a.clone()));
                params.push(SqlValue::Integer(n));
                params.push(SqlValue::Text(format!("{a}:")));
                params.push(SqlValue::Integer(n));
                params.push(SqlValue::Text(format!(":{a}")));
            }
        }
        if let Some(a) = self.action {
            cond.push("action = ?");
            params.push(SqlValue::Text(a.as_str().into()));
        }
        if let Some(t) = &self.target {
            if t.ends_with('/') {
                cond.push("substr(target, 1, ?) = ?");
                params.push(SqlValue::Integer(t.chars().count() as i64));
            } else {
                cond.push("target = ?");
            }
            params.push(SqlValue::Text(t.clone()));
        }
        if let Some(s) = &self.since {
            cond.push("at >= ?");
            params.push(SqlValue::Text(s.clone()));
        }
        if let Some(u) = &self.until {
            cond.push("at < ?");
            params.push(SqlValue::Text(u.clone()));
        }
        if let Some(id) = self.after_id {
            cond.push("id > ?");
            params.push(SqlValue::Integer(id));
        }
        (cond.join(" AND "), params)
    }
}

const COLUMNS: &str = "id, tenant_id, at, actor, action, target, outcome, status, request_id, detail, \
     prev_hash, hash";

/// The entry outside tenants that records tenant `id`'s deletion; `None` unless it was
/// deleted (or is being purged). Its entries stay after it, under its id.
pub fn tenant_deletion(conn: &Connection, id: i64) -> Result<Option<Record>, DbError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id IS NULL AND action = ?1
                   AND json_extract(detail, '$.tenantId') = ?2 ORDER BY id DESC LIMIT 1"
            ),
            params![Action::TenantDeleted.as_str(), id],
            from_row,
        )
        .optional()?)
}

/// The entries matching `filter`, oldest first.
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<Record>, DbError> {
    let (cond, params) = filter.conditions();
    let sql = match filter.last {
        Some(last) => format!(
            "SELECT * FROM (SELECT {COLUMNS} FROM audit_log WHERE {cond} ORDER BY id DESC LIMIT {last})
             ORDER BY id"
        ),
        None => format!("SELECT {COLUMNS} FROM audit_log WHERE {cond} ORDER BY id"),
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(params), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How many of a tenant's entries one filtered page of [`page`] looks at, at most. The log
/// is kept for ever unless a tenant sets a retention, and only its tenant order is indexed
/// for browsing (an index per filter would cost every write of the product more entries),
/// so a rare actor or target would otherwise make a page load read the tenant's whole
/// history, a cost that grows with every write.
pub const SEARCHED_PER_PAGE: u32 = 10_000;

/// A page of [`page`].
#[derive(Debug)]
pub struct Page {
    pub keyset: Keyset<Record>,
    /// When a filtered page stopped at [`SEARCHED_PER_PAGE`] entries short of a full page:
    /// the last entry it looked at, the oldest one (going older) or the newest (going
    /// newer). The page's `next` (or `prev`) cursor searches on from there.
    pub searched_to: Option<i64>,
}

/// One page of the entries matching `filter` (its `last` ignored), newest first: the
/// admin UI's audit log. `Cursor::After(id)` continues with older entries. A filtered
/// page of one tenant looks at `searched` entries of the tenant at most.
pub fn page(
    conn: &Connection,
    filter: &Filter,
    cursor: Cursor,
    limit: usize,
    searched: u32,
) -> Result<Page, DbError> {
    let (mut cond, mut params) = filter.conditions();
    // Newest first: "after" in list order is an older (smaller) id.
    let (order, from) = match cursor {
        Cursor::First => ("DESC", None),
        Cursor::After(id) => {
            cond.push_str(" AND id < ?");
            params.push(SqlValue::Integer(id));
            ("DESC", Some(id))
        }
        Cursor::Before(id) => {
            cond.push_str(" AND id > ?");
            params.push(SqlValue::Integer(id));
            ("ASC", Some(id))
        }
    };
    let older = order == "DESC";
    let windowed = filter.tenant_id.filter(|_| filter.narrows());
    // A time filter is first a span of ids, found in the time index: the window then
    // starts at the span's newest (oldest) entry instead of the newest of all, so a day
    // long past is a page away, not hundreds.
    let (lo, hi) = match windowed {
        Some(tenant) => match time_span(conn, tenant, filter)? {
            Some(span) => span,
            None => {
                return Ok(Page {
                    keyset: Keyset::from_rows(Vec::new(), cursor, limit, |r: &Record| r.id),
                    searched_to: None,
                });
            }
        },
        None => (i64::MIN, i64::MAX),
    };
    if windowed.is_some() {
        cond.push_str(" AND id >= ? AND id <= ?");
        params.extend([SqlValue::Integer(lo), SqlValue::Integer(hi)]);
    }
    // The first entry of the tenant, in the page's direction, that this page does not
    // look at, when there is one within the span.
    let bound = match windowed {
        Some(tenant) => {
            let (op, start) = if older {
                ("<", from.unwrap_or(i64::MAX).min(hi.saturating_add(1)))
            } else {
                (">", from.unwrap_or(0).max(lo.saturating_sub(1)))
            };
            conn.prepare_cached(&format!(
                "SELECT id FROM audit_log WHERE tenant_id IS ?1 AND id {op} ?2
                 ORDER BY id {order} LIMIT 1 OFFSET ?3"
            ))?
            .query_row(params![tenant, start, searched], |r| r.get::<_, i64>(0))
            .optional()?
            .filter(|b| (lo..=hi).contains(b))
        }
        None => None,
    };
    if let Some(b) = bound {
        cond.push_str(if older { " AND id > ?" } else { " AND id < ?" });
        params.push(SqlValue::Integer(b));
    }
    params.push(SqlValue::Integer(limit as i64 + 1));
    // The window is a range of the tenant's index; the table's own id range would also
    // step over every other tenant's entries written in between.
    let from_table = if bound.is_some() {
        "audit_log INDEXED BY audit_log_tenant"
    } else {
        "audit_log"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM {from_table} WHERE {cond} ORDER BY id {order} LIMIT ?"
    ))?;
    let rows = stmt
        .query_map(params_from_iter(params), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let full = rows.len() > limit;
    let mut keyset = Keyset::from_rows(rows, cursor, limit, |r| r.id);
    let searched_to = match bound {
        Some(b) if !full => Some(if older { b + 1 } else { b - 1 }),
        _ => None,
    };
    if let Some(last) = searched_to {
        // Search on past the window; and back the way the page came, when it found nothing
        // to take a cursor from.
        if older {
            keyset.next = Some(last);
            keyset.prev = keyset.prev.or(from.map(|c| c - 1));
        } else {
            keyset.prev = Some(last);
            keyset.next = keyset.next.or(from.map(|c| c + 1));
        }
    }
    Ok(Page {
        keyset,
        searched_to,
    })
}

/// The ids of the tenant's entries within the filter's `since` and `until`, oldest and
/// newest (unbounded ends as `i64::MIN`, `i64::MAX`); `None` when no entry is within.
/// Entries are numbered in the order they are written, so a time is an id as long as the
/// clock did not step back.
fn time_span(
    conn: &Connection,
    tenant: Option<i64>,
    filter: &Filter,
) -> Result<Option<(i64, i64)>, DbError> {
    let seek = |cond: &str, order: &str, at: &str| -> Result<Option<i64>, DbError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT id FROM audit_log INDEXED BY audit_log_at
                  WHERE {cond} AND tenant_id IS ?2 ORDER BY at {order} LIMIT 1"
            ))?
            .query_row(params![at, tenant], |r| r.get(0))
            .optional()?)
    };
    let lo = match &filter.since {
        Some(since) => match seek("at >= ?1", "ASC, id ASC", since)? {
            Some(id) => id,
            None => return Ok(None),
        },
        None => i64::MIN,
    };
    let hi = match &filter.until {
        Some(until) => match seek("at < ?1", "DESC, id DESC", until)? {
            Some(id) => id,
            None => return Ok(None),
        },
        None => i64::MAX,
    };
    Ok((lo <= hi).then_some((lo, hi)))
}

/// Every entry matching `filter`, oldest first, as JSON lines (the format of
/// `scimd audit`).
pub fn export_json_lines(conn: &Connection, filter: &Filter) -> Result<String, DbError> {
    let mut out = String::new();
    each(conn, filter, |r| -> Result<(), DbError> {
        out.push_str(&r.to_json_line());
        out.push('\n');
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with every entry matching `filter` (its `last` aside), oldest first, read a
/// chunk at a time, so a whole log costs a chunk of memory. Stops at `f`'s first error.
pub fn each<E: From<DbError>>(
    conn: &Connection,
    filter: &Filter,
    mut f: impl FnMut(&Record) -> Result<(), E>,
) -> Result<(), E> {
    const CHUNK: u64 = 1000;
    let mut filter = Filter {
        last: None,
        ..filter.clone()
    };
    loop {
        let (cond, params) = filter.conditions();
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE {cond} ORDER BY id LIMIT {CHUNK}"
            ))
            .map_err(DbError::from)?
            .query_map(params_from_iter(params), from_row)
            .map_err(DbError::from)?
            .collect::<Result<Vec<Record>, _>>()
            .map_err(DbError::from)?;
        for r in &rows {
            f(r)?;
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == CHUNK => filter.after_id = Some(last.id),
            _ => return Ok(()),
        }
    }
}

/// Up to a thousand entries after id `after`, in id order: of the whole log, or of one
/// chain (`Some(tenant)`).
fn chunk(
    conn: &Connection,
    chain: Option<Option<i64>>,
    after: i64,
) -> Result<Vec<Record>, DbError> {
    let rows = match chain {
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE id > ?1 ORDER BY id LIMIT 1000"
            ))?
            .query_map([after], from_row)?
            .collect::<Result<_, _>>()?,
        Some(tenant) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id IS ?2 AND id > ?1
                 ORDER BY id LIMIT 1000"
            ))?
            .query_map(rusqlite::params![after, tenant], from_row)?
            .collect::<Result<_, _>>()?,
    };
    Ok(rows)
}

/// Seals the entries written before the chain existed (migration 0008), once: hashes them
/// in id order, then forgets that any were pending, so an entry whose hash is removed later
/// is reported by `verify`, never sealed again.
pub fn seal_pending(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(upto) = tx
        .query_row("SELECT upto_id FROM audit_chain_pending", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
    else {
        return Ok(());
    };
    let mut heads: std::collections::HashMap<Option<i64>, String> = Default::default();
    let mut after = 0;
    while after < upto {
        let rows = chunk(&tx, None, after)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for r in rows.iter().filter(|r| r.id <= upto) {
            let prev = heads
                .get(&r.entry.tenant_id)
                .cloned()
                .unwrap_or_else(|| chain::GENESIS.to_string());
            let hash = r.entry.content(r.id, &r.at).hash(&prev);
            tx.execute(
                "UPDATE audit_log SET prev_hash = ?2, hash = ?3 WHERE id = ?1 AND hash IS NULL",
                rusqlite::params![r.id, prev, hash],
            )?;
            heads.insert(r.entry.tenant_id, hash);
        }
    }
    tx.execute("DELETE FROM audit_chain_pending", [])?;
    tx.commit()?;
    Ok(())
}

/// Walks the log in id order through `verifier`: the whole log, or one tenant's chain
/// (`Some(tenant)`, `Some(None)` for the entries outside any tenant). Stops at the first
/// break.
pub fn verify(
    conn: &Connection,
    chain: Option<Option<i64>>,
    verifier: &mut chain::Verifier,
) -> Result<Result<(), chain::Break>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT tenant_id, upto_id, hash FROM audit_anchors")?;
    let anchors = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (tenant, upto, hash) in anchors {
        if chain.is_none_or(|c| c == tenant) {
            verifier.anchor(tenant, upto, &hash);
        }
    }
    let mut after = 0;
    loop {
        let rows = chunk(conn, chain, after)?;
        for r in &rows {
            if let Err(b) = verifier.feed(&r.link()) {
                return Ok(Err(b));
            }
        }
        match rows.last() {
            Some(last) => after = last.id,
            None => return Ok(Ok(())),
        }
    }
}

/// The newest entry of the chain (one tenant's, or those outside any tenant) written
/// before `cutoff`: retention purges through it, [`purge_through`] a batch at a time.
pub fn purgeable(
    conn: &Connection,
    tenant_id: Option<i64>,
    cutoff: &str,
) -> Result<Option<i64>, DbError> {
    // From the time index, the old rows alone (what a purge removes anyway), not the chain
    // walked from its newest entry down to the first old one: all of it, in the writer, on
    // each hourly run while nothing is old enough (50 ms at 100 000 entries).
    Ok(conn.query_row(
        "SELECT max(id) FROM audit_log INDEXED BY audit_log_at
         WHERE at < ?2 AND tenant_id IS ?1",
        params![tenant_id, cutoff],
        |r| r.get(0),
    )?)
}

/// Deletes the chain's oldest entries, up to `limit` of them and none after `last`,
/// keeping the hash of the last one so the rest still verifies. Returns how many went: a
/// batch short of `limit` reached `last`. Only this function can delete entries: the
/// trigger lets a delete through only up to the id it names in `audit_purging` for the
/// length of its transaction.
pub fn purge_through(
    conn: &Connection,
    tenant_id: Option<i64>,
    last: i64,
    limit: usize,
) -> Result<usize, DbError> {
    let upto: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, hash FROM audit_log WHERE id = coalesce(
                 (SELECT id FROM audit_log WHERE tenant_id IS ?1 AND id <= ?2
                  ORDER BY id LIMIT 1 OFFSET ?3), ?2)",
            params![tenant_id, last, limit.saturating_sub(1) as i64],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()?;
    let Some((upto, hash)) = upto else {
        return Ok(0);
    };
    conn.execute("INSERT INTO audit_purging (upto_id) VALUES (?1)", [upto])?;
    let n = conn.execute(
        "DELETE FROM audit_log WHERE tenant_id IS ?1 AND id <= ?2",
        params![tenant_id, upto],
    )?;
    conn.execute("DELETE FROM audit_purging", [])?;
    conn.execute(
        "DELETE FROM audit_anchors WHERE tenant_id IS ?1",
        [tenant_id],
    )?;
    conn.execute(
        "INSERT INTO audit_anchors (tenant_id, upto_id, hash) VALUES (?1, ?2, ?3)",
        params![tenant_id, upto, hash],
    )?;
    Ok(n)
}

/// Up to `limit` of the tenant's entries written in request `request_id`, oldest first,
/// looked for among those stamped `during` (from, until: canonical times, as
/// `requests::Entry::while_answered` gives).
pub fn by_request(
    conn: &Connection,
    tenant_id: i64,
    request_id: &str,
    during: &(String, String),
    limit: u32,
) -> Result<Vec<Record>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log INDEXED BY audit_log_at
          WHERE at BETWEEN ?3 AND ?4 AND tenant_id = ?1 AND request_id = ?2
          ORDER BY id LIMIT ?5"
    ))?;
    let (from, until) = during;
    let rows = stmt
        .query_map(
            rusqlite::params![tenant_id, request_id, from, until, limit],
            from_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::scratch_db;

    /// Thirty member updates in tenant 1, the `n`th (from 1) aimed at `target(n)`; their ids.
    fn updates(conn: &Connection, target: impl Fn(usize) -> &'static str) -> Vec<i64> {
        (1..=30)
            .map(|n| {
                let entry = Entry::new(
                    &Actor::cli(),
                    Some(1),
                    Action::MemberUpdated,
                    Some(target(n).into()),
                );
                append(conn, &entry).unwrap()
            })
            .collect()
    }

    /// Writes batched into one transaction by the writer: writes to two tenants' chains and
    /// to the one outside any tenant, some undone after appending (a savepoint rolled back,
    /// or the whole transaction), some taking back an entry of their own (as an import's
    /// preview does), leave every chain whole, its ids without a gap, and each write
    /// answered Ok has its entries. (A head kept between the writes of a batch, tried and
    /// reverted, broke this when a write took back its own entry: BENCHMARKS.md,
    /// twenty-fourth.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_batched_together_leave_every_chain_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            crate::db::Db::open(&dir.path().join("a.db"), crate::db::Durability::Full).unwrap();
        let tasks: Vec<_> = (0..300usize)
            .map(|i| {
                let db = db.clone();
                let write = move |tx: &rusqlite::Transaction| {
                    let tenant = [Some(1), Some(2), None][i % 3];
                    let mut chain = Chain::new(tenant);
                    let entries = 1 + i % 2;
                    for _ in 0..entries {
                        let entry = Entry::new(&Actor::cli(), tenant, Action::MemberUpdated, None);
                        chain.append_raw(
                            tx,
                            &entry,
                            &RawValue::from_string("{}".into()).unwrap(),
                        )?;
                    }
                    if i % 5 == 2 {
                        // An entry the write itself takes back, as an import's preview does.
                        tx.execute_batch("SAVEPOINT preview")?;
                        let entry = Entry::new(&Actor::cli(), tenant, Action::MemberUpdated, None);
                        Chain::new(tenant).append_raw(
                            tx,
                            &entry,
                            &RawValue::from_string("{}".into()).unwrap(),
                        )?;
                        tx.execute_batch("ROLLBACK TO preview; RELEASE preview")?;
                    }
                    match i % 7 {
                        3 => Err(DbError::Conflict(format!("undo {i}"))),
                        _ => Ok(entries),
                    }
                };
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        db.write_replayable(write).await
                    } else {
                        db.write(write).await
                    }
                })
            })
            .collect();
        let mut appended = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(entries) => appended += entries,
                Err(DbError::Conflict(_)) if i % 7 == 3 => {}
                Err(e) => panic!("write {i} failed: {e}"),
            }
        }
        let (kept, first, last) = db
            .read(|c| {
                Ok::<_, DbError>(c.query_row(
                    "SELECT count(*), min(id), max(id) FROM audit_log",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )?)
            })
            .await
            .unwrap();
        assert_eq!(
            kept, appended as i64,
            "each write answered Ok has its entries, and no other"
        );
        assert_eq!(last - first + 1, kept, "no id is skipped");
        let verified = db
            .read(|c| verify(c, None, &mut crate::auth::chain::Verifier::whole_log()))
            .await
            .unwrap();
        assert_eq!(verified, Ok(()));
    }

    /// Retention purges a chain a batch at a time up to its bound, and the chain still
    /// verifies after every batch, from the anchor each one leaves.
    #[test]
    fn a_purge_goes_a_batch_at_a_time_and_the_chain_verifies_after_each() {
        let mut conn = scratch_db();
        let tx = conn.transaction().unwrap();
        let ids = updates(&tx, |_| "member/x");
        tx.commit().unwrap();
        assert_eq!(
            purgeable(&conn, Some(1), "2000-01-01T00:00:00.000000Z").unwrap(),
            None
        );
        assert_eq!(
            purgeable(&conn, Some(1), "2999-01-01T00:00:00.000000Z").unwrap(),
            Some(ids[29])
        );
        assert_eq!(
            purgeable(&conn, Some(2), "2999-01-01T00:00:00.000000Z").unwrap(),
            None
        );
        let verifies = || {
            let mut verifier = crate::auth::chain::Verifier::default();
            verify(&conn, Some(Some(1)), &mut verifier)
                .unwrap()
                .unwrap();
        };
        let mut batches = Vec::new();
        loop {
            let n = purge_through(&conn, Some(1), ids[9], 4).unwrap();
            batches.push(n);
            verifies();
            if n < 4 {
                break;
            }
        }
        assert_eq!(batches, [4, 4, 2]);
        let left: i64 = conn
            .query_row(
                "SELECT min(id) FROM audit_log WHERE tenant_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, ids[10], "nothing after the bound went");
        assert_eq!(purge_through(&conn, Some(1), ids[9], 4).unwrap(), 0);
    }

    /// A filtered page looks at a bounded window of the tenant's log, both ways, and its
    /// cursors search on from where it stopped; an unfiltered page is a plain page.
    #[test]
    fn a_filtered_page_searches_a_window_and_its_cursors_go_on() {
        let mut conn = scratch_db();
        let tx = conn.transaction().unwrap();
        let ids = updates(&tx, |n| {
            if n == 3 {
                "member/rare"
            } else {
                "member/common"
            }
        });
        tx.commit().unwrap();
        let id = |n: usize| ids[n - 1];
        let rare = Filter {
            tenant_id: Some(Some(1)),
            target: Some("member/rare".into()),
            ..Filter::default()
        };
        let browse = |filter: &Filter, cursor| {
            let p = page(&conn, filter, cursor, 5, 10).unwrap();
            let found: Vec<i64> = p.keyset.items.iter().map(|r| r.id).collect();
            (found, p.keyset.prev, p.keyset.next, p.searched_to)
        };
        // The newest ten: nothing; older searches on from the eleventh newest.
        let (found, prev, next, to) = browse(&rare, Cursor::First);
        assert_eq!(
            (found, prev, next, to),
            (vec![], None, Some(id(21)), Some(id(21)))
        );
        let (found, prev, next, to) = browse(&rare, Cursor::After(id(21)));
        assert_eq!(
            (found, prev, next, to),
            (vec![], Some(id(21) - 1), Some(id(11)), Some(id(11)))
        );
        // The last window holds it, and nothing is older.
        let (found, _, next, to) = browse(&rare, Cursor::After(id(11)));
        assert_eq!((found, next, to), (vec![id(3)], None, None));
        // Going newer from it searches ten at a time upwards.
        let (found, prev, next, to) = browse(&rare, Cursor::Before(id(3)));
        assert_eq!(
            (found, prev, next, to),
            (vec![], Some(id(13)), Some(id(3) + 1), Some(id(13)))
        );
        // A full page of matches stops at its own rows, not at the window.
        let common = Filter {
            target: Some("member/common".into()),
            ..rare.clone()
        };
        let (found, _, next, to) = browse(&common, Cursor::First);
        assert_eq!(found, (26..=30).rev().map(id).collect::<Vec<_>>());
        assert_eq!((next, to), (Some(id(26)), None));
        // The tenant alone is an index walk: no window.
        let tenant = Filter {
            tenant_id: Some(Some(1)),
            ..Filter::default()
        };
        let (found, _, next, to) = browse(&tenant, Cursor::After(id(6)));
        assert_eq!(found, (1..=5).rev().map(id).collect::<Vec<_>>());
        assert_eq!((next, to), (None, None));
    }

    /// A time filter starts the window at its span, found in the time index: entries of a
    /// day long past are one page away, and no page offers to search past the span.
    #[test]
    fn a_time_filter_starts_the_window_at_its_span() {
        let mut conn = scratch_db();
        let tx = conn.transaction().unwrap();
        let ids = updates(&tx, |_| "member/common");
        tx.execute_batch("DROP TRIGGER audit_log_no_update")
            .unwrap();
        for (n, id) in ids.iter().enumerate() {
            let at = format!("2026-01-{:02}T00:00:00.000000Z", n + 1);
            tx.execute(
                "UPDATE audit_log SET at = ?1 WHERE id = ?2",
                params![at, id],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let id = |n: usize| ids[n - 1];
        let day = |d: u32| Some(format!("2026-01-{d:02}T00:00:00.000000Z"));
        let browse = |filter: &Filter, cursor| {
            let p = page(&conn, filter, cursor, 5, 10).unwrap();
            let found: Vec<i64> = p.keyset.items.iter().map(|r| r.id).collect();
            (found, p.keyset.next, p.searched_to)
        };
        // The first five days, twenty-five entries back from the newest.
        let early = Filter {
            tenant_id: Some(Some(1)),
            until: day(6),
            ..Filter::default()
        };
        let (found, next, to) = browse(&early, Cursor::First);
        assert_eq!(found, (1..=5).rev().map(id).collect::<Vec<_>>());
        assert_eq!((next, to), (None, None));
        // From the twentieth on, a target that never matches: one window, then the span
        // ends, and nothing offers to search older.
        let late = Filter {
            tenant_id: Some(Some(1)),
            since: day(20),
            target: Some("member/rare".into()),
            ..Filter::default()
        };
        let (found, next, to) = browse(&late, Cursor::First);
        assert_eq!((found, next, to), (vec![], Some(id(21)), Some(id(21))));
        let (found, next, to) = browse(&late, Cursor::After(id(21)));
        assert_eq!((found, next, to), (vec![], None, None));
        // A span holding nothing.
        let none = Filter {
            tenant_id: Some(Some(1)),
            since: day(31),
            ..Filter::default()
        };
        assert_eq!(browse(&none, Cursor::First), (vec![], None, None));
    }
}
