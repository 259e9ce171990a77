//! The events feed as apps read it: each tenant's events in `seq` order, as the event
//! objects the feed returns and webhooks deliver, with long polling that wakes on commit.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::db::events::{self, Event, EventType};
use crate::db::{Db, DbError};

/// The most events one page returns.
pub const MAX_PAGE: u32 = 1000;
/// The longest a long poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting reader looks again without a commit of this process to wake it
/// (writes of another process, such as the CLI, do not wake it).
const RECHECK: Duration = Duration::from_secs(1);

/// The id apps and webhook receivers see for an event: stable, unique across tenants.
pub fn event_id(e: &Event) -> String {
    format!("evt_{}", e.cursor)
}

/// The event object the feed returns and a webhook carries: `id`, the tenant's `seq`, the
/// `type`, its `timestamp`, `data` (the member or group as it is after the change, as it
/// was last for a deletion; for a membership, the group and the directory user with its
/// member's id), `previous` (the values the change replaced) and `context`
/// (who caused it, in which request, and how: `via` scim, force_sync, settings, csv_import,
/// admin, or guard).
pub fn object(e: &Event) -> Value {
    let mut payload = match &e.payload {
        Value::Object(p) => p.clone(),
        _ => Map::new(),
    };
    let mut context = match payload.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let mut previous = payload.remove("previous").unwrap_or_else(|| json!({}));
    let data = match e.kind {
        EventType::GroupCreated | EventType::GroupUpdated | EventType::GroupDeleted => {
            // Stored with SCIM's names, shown with the API's.
            if let Value::Object(p) = &mut previous {
                for (scim, api) in [
                    ("displayName", "display_name"),
                    ("externalId", "external_id"),
                ] {
                    if let Some(v) = p.remove(scim) {
                        p.insert(api.to_string(), v);
                    }
                }
            }
            group_data(&payload["group"])
        }
        EventType::GroupMemberAdded | EventType::GroupMemberRemoved => {
            let user = &payload["user"];
            json!({
                "group": group_data(&payload["group"]),
                "user": {
                    "id": user["id"],
                    "user_name": user["userName"],
                    "external_id": user["externalId"],
                    "member_id": user["memberId"],
                },
            })
        }
        EventType::DeprovisioningHeld | EventType::DeprovisioningResolved => {
            payload.remove("hold").unwrap_or(Value::Null)
        }
        EventType::TenantDeleted => payload.remove("tenant").unwrap_or(Value::Null),
        _ => payload.remove("member").unwrap_or(Value::Null),
    };
    context.entry("via").or_insert_with(|| json!("scim"));
    context.insert("actor".into(), json!(e.actor));
    context.insert("request_id".into(), json!(e.request_id));
    json!({
        "object": "event",
        "id": event_id(e),
        "seq": e.seq,
        "type": e.kind,
        "timestamp": e.created_at,
        "data": data,
        "previous": previous,
        "context": context,
    })
}

/// A group as an event's `data` names it: with the names `/api/v1/groups` gives it. (The
/// stored payload keeps SCIM's names, as every stored event since the first has them.)
fn group_data(stored: &Value) -> Value {
    let mut data =
        json!({"object": "group", "id": stored["id"], "display_name": stored["displayName"]});
    // Stored with the group's externalId since the first events; membership events only
    // since 2026-12 (before, they named the group only).
    if let Some(external_id) = stored.get("externalId") {
        data["external_id"] = external_id.clone();
    }
    data
}

/// Why the feed cannot answer from a cursor.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Events after the cursor were purged (retention): the app must list again and follow
    /// the feed from the list's `events_cursor`.
    #[error(
        "events after {after} are no longer kept (the oldest kept follows {purged}): list the resources again and follow the feed from the list's events_cursor"
    )]
    Expired { after: i64, purged: i64 },
    /// The cursor is past the newest event: it was never handed out (a typo, or a
    /// database restored from an older backup). Following it would skip the events that
    /// take those numbers next.
    #[error(
        "after {after} is past the newest event ({newest}): list the resources again and follow the feed from the list's events_cursor"
    )]
    Ahead { after: i64, newest: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<Event>,
    /// The cursor to ask with next: the last event's `seq` when the page is full; else the
    /// newest `seq` the page looked past, so that events the type filter skipped are not
    /// read again by the next poll (or the one asked with, when there was none newer).
    pub next_after: i64,
}

/// Up to `limit` of the tenant's events after `after`, of `types` (all when empty).
pub async fn page(
    db: &Db,
    tenant_id: i64,
    after: i64,
    limit: u32,
    types: Vec<EventType>,
) -> Result<Page, FeedError> {
    let limit = limit.clamp(1, MAX_PAGE);
    // One snapshot: the bounds and the events as of one moment. Read apart, an event
    // committed between them would be on the page and past the `newest` it reports, and
    // the next poll would get it again.
    let upto = db.durable_cursor();
    db.snapshot(move |c| {
        let (newest, purged) = events::shown_bounds(c, tenant_id, upto)?;
        if after < purged {
            return Ok(Err(FeedError::Expired { after, purged }));
        }
        if after > newest {
            return Ok(Err(FeedError::Ahead { after, newest }));
        }
        let events = events::after_of_types(c, tenant_id, after, limit, &types, upto)?;
        // A page short of `limit` has looked at every event of this snapshot after `after`:
        // later events get later numbers, so the next poll starts past all of them. An app
        // following one rare type would otherwise read the same skipped events again on
        // every poll, and its polls would cost what the feed holds since its last match.
        let next_after = match events.last() {
            Some(last) if events.len() as u32 >= limit => last.seq,
            _ => newest.max(after),
        };
        Ok::<_, DbError>(Ok(Page { events, next_after }))
    })
    .await?
}

/// [`page`], waiting up to `wait` (at most [`MAX_WAIT`]) for an event when there is none
/// yet: a commit of this process wakes it at once.
pub async fn wait(
    db: &Db,
    tenant_id: i64,
    after: i64,
    limit: u32,
    types: Vec<EventType>,
    wait: Duration,
) -> Result<Page, FeedError> {
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    let mut commits = db.commits();
    let mut after = after;
    loop {
        commits.borrow_and_update();
        let p = page(db, tenant_id, after, limit, types.clone()).await?;
        let now = tokio::time::Instant::now();
        if !p.events.is_empty() || now >= deadline {
            return Ok(p);
        }
        // Each wake-up reads only what committed since the last look.
        after = p.next_after;
        let nap = (deadline - now).min(RECHECK);
        let _ = tokio::time::timeout(nap, commits.changed()).await;
    }
}

/// Where a reader that names no cursor starts: past the events retention purged, so it
/// reads from the oldest event kept. A reader that names a cursor behind that point has
/// missed events, and is told so ([`FeedError::Expired`]).
pub async fn oldest_kept_after(db: &Db, tenant_id: i64) -> Result<i64, DbError> {
    Ok(db.read(move |c| events::bounds(c, tenant_id)).await?.1)
}

/// The tenant's newest `seq`: where a reader that has just listed everything resumes.
pub async fn latest(db: &Db, tenant_id: i64) -> Result<i64, DbError> {
    let upto = db.durable_cursor();
    Ok(db
        .read(move |c| events::shown_bounds(c, tenant_id, upto))
        .await?
        .0)
}
