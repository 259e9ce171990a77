//! The audit log: append-only (triggers refuse UPDATE and DELETE), one row per admin
//! action, SCIM write and applied member change, filterable and exportable as JSON lines.
//!
//! [`append`] takes any connection, so a caller logs a successful write inside that
//! write's transaction (both commit or neither does) and a failed request in a small
//! transaction of its own once the failed one has rolled back. Entries name actors by id
//! (`token:<id>`, never the token) and hold no secret.

use rusqlite::{Connection, Row, params_from_iter, types::Value as SqlValue};
use serde::Serialize;
use serde_json::Value;

use super::DbError;
use super::paging::{Cursor, Keyset};
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
            actor: actor.label(),
            action,
            target,
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

/// Appends `entry`; returns its id.
pub fn append(conn: &Connection, entry: &Entry) -> Result<i64, DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit_log (tenant_id, at, actor, action, target, outcome, status, request_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(rusqlite::params![
        entry.tenant_id,
        datetime::now(),
        entry.actor,
        entry.action.as_str(),
        entry.target,
        entry.outcome.as_str(),
        entry.status,
        entry.request_id,
        entry.detail.as_ref().map(Value::to_string),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: i64,
    pub at: String,
    #[serde(flatten)]
    pub entry: Entry,
}

impl Record {
    /// The entry as one line of JSON: the export format.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an audit record always serialises")
    }
}

/// Which entries to read. Empty: all, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant_id: Option<i64>,
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
    })
}

impl Filter {
    /// The WHERE clause and its parameters (`after_id` included, `last` not).
    fn conditions(&self) -> (String, Vec<SqlValue>) {
        let mut cond = vec!["1 = 1"];
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(t) = self.tenant_id {
            cond.push("tenant_id = ?");
            params.push(SqlValue::Integer(t));
        }
        if let Some(a) = &self.actor {
            cond.push("actor = ?");
            params.push(SqlValue::Text(a.clone()));
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

const COLUMNS: &str =
    "id, tenant_id, at, actor, action, target, outcome, status, request_id, detail";

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

/// One page of the entries matching `filter` (its `last` ignored), newest first: the
/// admin UI's audit log. `Cursor::After(id)` continues with older entries.
pub fn page(
    conn: &Connection,
    filter: &Filter,
    cursor: Cursor,
    limit: usize,
) -> Result<Keyset<Record>, DbError> {
    let (mut cond, mut params) = filter.conditions();
    // Newest first: "after" in list order is an older (smaller) id.
    let order = match cursor {
        Cursor::First => "DESC",
        Cursor::After(id) => {
            cond.push_str(" AND id < ?");
            params.push(SqlValue::Integer(id));
            "DESC"
        }
        Cursor::Before(id) => {
            cond.push_str(" AND id > ?");
            params.push(SqlValue::Integer(id));
            "ASC"
        }
    };
    params.push(SqlValue::Integer(limit as i64 + 1));
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE {cond} ORDER BY id {order} LIMIT ?"
    ))?;
    let rows = stmt
        .query_map(params_from_iter(params), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Keyset::from_rows(rows, cursor, limit, |r| r.id))
}

/// Every entry matching `filter`, oldest first, as JSON lines (the format of
/// `scimd audit`), read a chunk at a time.
pub fn export_json_lines(conn: &Connection, filter: &Filter) -> Result<String, DbError> {
    const CHUNK: u64 = 1000;
    let mut filter = Filter {
        last: None,
        ..filter.clone()
    };
    let mut out = String::new();
    loop {
        let (cond, params) = filter.conditions();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE {cond} ORDER BY id LIMIT {CHUNK}"
        ))?;
        let rows = stmt
            .query_map(params_from_iter(params), from_row)?
            .collect::<Result<Vec<Record>, _>>()?;
        for r in &rows {
            out.push_str(&r.to_json_line());
            out.push('\n');
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == CHUNK => filter.after_id = Some(last.id),
            _ => return Ok(out),
        }
    }
}

/// Up to `limit` of the tenant's entries written in request `request_id`, oldest first.
pub fn by_request(
    conn: &Connection,
    tenant_id: i64,
    request_id: &str,
    limit: u32,
) -> Result<Vec<Record>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = ?1 AND request_id = ?2
         ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(rusqlite::params![tenant_id, request_id, limit], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
