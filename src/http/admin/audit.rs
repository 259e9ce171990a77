//! The audit log: newest first, filtered by actor, action, target and time, a page at a
//! time, and exported as JSON lines (the format of `scimd audit`). Each tenant has its
//! log; the entries outside any tenant (admin accounts and sign-ins) have one of their own
//! at `/audit`, and a deleted tenant's kept entries theirs at `/audit/deleted/<id>`.

use askama::Template;
use serde_json::Value;

use super::filters;
use super::people::link;
use super::{Layout, PageResult, Req, UiError, download, html, layout, page_status};
use crate::auth::chain;
use crate::db::audit::{self, Action, Record};
use crate::db::paging::Cursor;
use crate::db::tenants::Tenant;
use crate::http::State;
use crate::scim::datetime;
use crate::sync::TextEnum;

/// Entries per page.
const PAGE: usize = 50;

/// The filter fields as typed, kept for the form and the links.
struct Fields {
    actor: String,
    action: String,
    target: String,
    since: String,
    until: String,
}

impl Fields {
    fn of(req: &Req) -> Fields {
        let get = |k: &str| req.query(k).unwrap_or("").trim().to_string();
        Fields {
            actor: get("actor"),
            action: get("action"),
            target: get("target"),
            since: get("since"),
            until: get("until"),
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }

    /// The storage filter for the log of `tenant_id` (`None`: outside tenants), or what
    /// is wrong with the fields.
    fn filter(&self, tenant_id: Option<i64>) -> Result<audit::Filter, String> {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Ok(audit::Filter {
            tenant_id: Some(tenant_id),
            actor: some(&self.actor),
            action: match self.action.as_str() {
                "" => None,
                a => Some(a.parse::<Action>().map_err(|e| e.to_string())?),
            },
            target: some(&self.target),
            since: time_bound(&self.since, "From")?,
            until: time_bound(&self.until, "Until")?,
            ..audit::Filter::default()
        })
    }
}

/// A time typed in the form (`2026-11-23`, the `datetime-local` form `2026-11-23T03:21`,
/// or RFC 3339), as the log's canonical UTC text. Times without a zone are UTC, like the
/// times the page shows.
fn time_bound(s: &str, label: &str) -> Result<Option<String>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let candidates = [
        s.to_string(),
        format!("{s}Z"),
        format!("{s}:00Z"),
        format!("{s}T00:00:00Z"),
    ];
    candidates
        .iter()
        .find_map(|c| datetime::canonical(c))
        .map(Some)
        .ok_or_else(|| {
            format!("{label}: {s:?} is not a date or time (use 2026-11-23 or 2026-11-23T14:30)")
        })
}

/// One entry as the page shows it.
struct Line {
    r: Record,
    /// Where the target lives in the UI, if it has a page.
    href: Option<String>,
    /// The detail as stored (compact JSON), for whoever wants all of it.
    detail: String,
    /// The detail as an admin reads it ([`readable`]).
    readable: Vec<String>,
}

/// An entry's detail as an admin reads it, a line each: every changed field as
/// `field: before → after` (`—` for none), then the other values as `name: value`, an
/// object's own values inline. What is not an object reads as its JSON.
fn readable(detail: &Value) -> Vec<String> {
    fn shown(v: &Value) -> String {
        match v {
            Value::Null => "—".to_string(),
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| format!("{k} {}", shown(v)))
                .collect::<Vec<_>>()
                .join(", "),
            Value::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join(", "),
            other => other.to_string(),
        }
    }
    let Value::Object(detail) = detail else {
        return vec![detail.to_string()];
    };
    fn changed(v: &Value) -> Option<&Vec<Value>> {
        v.as_array().filter(|list| {
            list.iter()
                .all(|c| c.get("field").and_then(Value::as_str).is_some())
        })
    }
    let mut lines = Vec::new();
    for (name, value) in detail {
        match changed(value) {
            Some(list) if matches!(name.as_str(), "fields" | "changes") => {
                lines.extend(list.iter().map(|c| {
                    let field = c["field"].as_str().unwrap_or_default();
                    format!("{field}: {} → {}", shown(&c["before"]), shown(&c["after"]))
                }));
            }
            _ if value.is_null() || name == "kind" => {}
            _ => lines.push(format!("{name}: {}", shown(value))),
        }
    }
    lines
}

/// The outcome of checking the log's hash chain (`?verify=1`).
struct Verification {
    ok: bool,
    message: String,
    /// The chain's newest entry and hash, to note down and compare later.
    head: Option<(i64, String)>,
}

impl Verification {
    async fn run(state: &State, tenant_id: Option<i64>) -> Result<Verification, UiError> {
        let (verifier, outcome) = state
            .db
            .read(move |c| {
                let mut v = chain::Verifier::one_chain();
                let outcome = audit::verify(c, Some(tenant_id), &mut v)?;
                Ok::<_, crate::db::DbError>((v, outcome))
            })
            .await?;
        let head = verifier.heads().next().map(|(_, h)| (h.id, h.hash.clone()));
        Ok(match outcome {
            Ok(()) => Verification {
                ok: true,
                message: format!(
                    "The chain holds: {} entries verified, none changed, removed or inserted.",
                    verifier.entries()
                ),
                head,
            },
            Err(b) => Verification {
                ok: false,
                message: format!("The audit log does not verify: {b}."),
                head,
            },
        })
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    /// The page's path: `/t/<slug>/audit`, or `/audit` for the log outside tenants.
    base: String,
    /// Whether this is the log outside tenants.
    outside: bool,
    /// The deleted tenant whose kept entries these are.
    gone: Option<Gone>,
    verification: Option<Verification>,
    f: Fields,
    actions: Vec<&'static str>,
    error: Option<String>,
    lines: Vec<Line>,
    prev: Option<String>,
    next: Option<String>,
    /// Where a filtered page stopped searching, short of a page of matches.
    searched: Option<Searched>,
    export: String,
}

/// The last entry a filtered page looked at, and which way it was going.
struct Searched {
    to: i64,
    newer: bool,
}

/// Whose audit log a page shows.
pub(super) enum Log<'a> {
    /// Entries outside any tenant.
    Outside,
    Of(&'a Tenant),
    /// A deleted tenant's entries, kept under its id.
    Deleted(Gone),
}

impl Log<'_> {
    /// The log of deleted tenant `id` (`/audit/deleted/<id>`); 404 for any other id.
    pub(super) async fn deleted(state: &State, id: &str) -> Result<Log<'static>, UiError> {
        // Its one spelling: `02` or `+2` is no page of tenant 2.
        let id = id
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == id)
            .ok_or(UiError::NotFound)?;
        state
            .db
            .read(move |c| audit::tenant_deletion(c, id))
            .await?
            .and_then(Gone::of)
            .map(Log::Deleted)
            .ok_or(UiError::NotFound)
    }

    fn tenant(&self) -> Option<&Tenant> {
        match self {
            Log::Of(t) => Some(t),
            _ => None,
        }
    }

    fn tenant_id(&self) -> Option<i64> {
        match self {
            Log::Outside => None,
            Log::Of(t) => Some(t.id),
            Log::Deleted(g) => Some(g.id),
        }
    }

    /// Where the log lives.
    fn base(&self) -> String {
        match self {
            Log::Outside => "/audit".to_string(),
            Log::Of(t) => format!("/t/{}/audit", t.slug),
            Log::Deleted(g) => format!("/audit/deleted/{}", g.id),
        }
    }

    /// The name its export is saved under.
    fn file_name(&self) -> String {
        match self {
            Log::Outside => "audit-outside-tenants.jsonl".to_string(),
            Log::Of(t) => format!("audit-{}.jsonl", t.slug),
            Log::Deleted(g) => format!("audit-deleted-tenant-{}.jsonl", g.id),
        }
    }
}

/// A deleted tenant, as the entry of its deletion (outside tenants) recorded it.
pub(super) struct Gone {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) slug: String,
    pub(super) at: String,
    pub(super) actor: String,
}

impl Gone {
    /// The tenant a `tenant.deleted` entry speaks of.
    pub(super) fn of(r: Record) -> Option<Gone> {
        let id = deleted_id(&r)?;
        let name = r.entry.detail.as_ref().and_then(|d| d["name"].as_str());
        Some(Gone {
            id,
            name: name.unwrap_or_default().to_string(),
            slug: r
                .entry
                .target
                .as_deref()
                .and_then(|t| t.strip_prefix("tenant/"))
                .unwrap_or_default()
                .to_string(),
            at: r.at,
            actor: r.entry.actor,
        })
    }
}

/// The tenant a `tenant.deleted` entry (outside tenants) speaks of.
fn deleted_id(r: &Record) -> Option<i64> {
    let id = r.entry.detail.as_ref()?.get("tenantId")?.as_i64()?;
    (r.entry.action == Action::TenantDeleted).then_some(id)
}

/// The audit log `log` shows.
pub(super) async fn page(state: &State, req: &Req, log: Log<'_>) -> PageResult {
    let tenant = log.tenant();
    let f = Fields::of(req);
    let cursor = Cursor::from_query(req.query("after"), req.query("before"));
    let base = log.base();
    let tenant_id = log.tenant_id();
    let (error, page) = match f.filter(tenant_id) {
        Err(e) => (Some(e), None),
        Ok(filter) => (
            None,
            Some(
                state
                    .db
                    .read(move |c| audit::page(c, &filter, cursor, PAGE, audit::SEARCHED_PER_PAGE))
                    .await?,
            ),
        ),
    };
    let slug = tenant.map(|t| t.slug.clone());
    let keep = |k: &'static str, v: i64| {
        let v = v.to_string();
        let mut pairs: Vec<(&str, &str)> = f.pairs().to_vec();
        pairs.push((k, &v));
        link(&base, &pairs)
    };
    let searched = page
        .as_ref()
        .and_then(|p| p.searched_to)
        .map(|to| Searched {
            to,
            newer: matches!(cursor, Cursor::Before(_)),
        });
    let (lines, prev, next) = match page.map(|p| p.keyset) {
        None => (Vec::new(), None, None),
        Some(p) => (
            p.items
                .into_iter()
                .map(|r| Line {
                    href: match &log {
                        Log::Of(_) => slug
                            .as_deref()
                            .and_then(|slug| target_href(slug, r.entry.target.as_deref())),
                        _ => deleted_id(&r).map(|id| format!("/audit/deleted/{id}")),
                    },
                    detail: r
                        .entry
                        .detail
                        .as_ref()
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    readable: r.entry.detail.as_ref().map(readable).unwrap_or_default(),
                    r,
                })
                .collect(),
            p.prev.map(|k| keep("before", k)),
            p.next.map(|k| keep("after", k)),
        ),
    };
    let status = page_status(error.is_some());
    let verification = match req.query("verify") {
        Some("1") => Some(Verification::run(state, tenant_id).await?),
        _ => None,
    };
    let page = AuditPage {
        layout: layout(state, req, tenant, "audit").await?,
        verification,
        export: link(&format!("{base}/export.jsonl"), &f.pairs()),
        outside: matches!(log, Log::Outside),
        gone: match log {
            Log::Deleted(g) => Some(g),
            _ => None,
        },
        base,
        f,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        error,
        lines,
        prev,
        next,
        searched,
    };
    html(status, &page)
}

/// The UI page of an audit target: members and groups have one.
fn target_href(slug: &str, target: Option<&str>) -> Option<String> {
    let target = target?;
    if let Some(id) = target.strip_prefix("member/") {
        return Some(format!("/t/{slug}/people/{id}"));
    }
    let id = target.strip_prefix("Groups/")?;
    Some(format!("/t/{slug}/groups/{id}")).filter(|_| !id.is_empty() && !id.contains('/'))
}

/// Every entry of `log` matching the filters, oldest first, as JSON lines.
pub(super) async fn export(state: &State, req: &Req, log: Log<'_>) -> PageResult {
    let filter = Fields::of(req)
        .filter(log.tenant_id())
        .map_err(UiError::BadRequest)?;
    let body = state
        .db
        .read(move |c| audit::export_json_lines(c, &filter))
        .await?;
    Ok(download(
        "application/x-ndjson; charset=utf-8",
        &log.file_name(),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::readable;

    #[test]
    fn a_member_change_reads_field_by_field() {
        let detail = json!({"kind": "update", "memberId": "m1", "subject": "ada@example.com",
            "fields": [{"field": "email", "before": "ada@old.example", "after": "ada@example.com"},
                       {"field": "attributes.title", "before": null, "after": "Lead"}],
            "reason": null});
        assert_eq!(
            readable(&detail),
            [
                "memberId: m1",
                "subject: ada@example.com",
                "email: ada@old.example → ada@example.com",
                "attributes.title: — → Lead",
            ]
        );
    }

    #[test]
    fn other_details_read_as_names_and_values() {
        let detail = json!({"scope": "full", "dryRun": false,
            "counts": {"create": 3, "update": 0}, "error": "no such group"});
        assert_eq!(
            readable(&detail),
            [
                "scope: full",
                "dryRun: false",
                "counts: create 3, update 0",
                "error: no such group",
            ]
        );
        assert_eq!(readable(&json!("plain")), ["\"plain\""]);
    }
}
