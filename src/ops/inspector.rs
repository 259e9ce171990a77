//! The request inspector: each tenant's last SCIM requests, kept so an admin can see what
//! the IdP actually sent, what scimd answered and what it changed.
//!
//! Recording never slows or fails a SCIM request. The SCIM door hands a [`Capture`] (the
//! bodies as the `Bytes` it already holds, no copy) to [`Recorder::record`], which adds it,
//! under a lock held for a few pointer moves, to what waits for the next write
//! ([`Gathered`]): only what retention would keep waits (each tenant's newest `keep`
//! successes and newest `keep` failures), so under heavy traffic the captures retention
//! would prune a moment later are never redacted nor written, and a capture a newer one
//! supersedes is dropped at once. When what waits is over its byte budget the capture is
//! dropped and counted ([`Recorder::dropped`]). One background task ([`RecorderTask`])
//! writes what waits at most once per [`WINDOW`] (at once when the last write is older):
//! it is woken by the first capture after a write, not by each (a wake per request was a
//! twentieth of a lookup's time).
//! It redacts what it keeps and detects the client off the request path ([`prepare`]:
//! `scim::redact`, `scim::idp`), and writes it in one relaxed transaction
//! (`Db::write_relaxed`: bookkeeping, not worth an fsync of its own), pruning in it each
//! tenant that had a tenth of `keep` new requests since its last prune.
//!
//! Retention ([`Retention`], server flags): per tenant, the newest `keep` successes not
//! older than `days`, and apart from them the newest `keep` failures not older than
//! `failed_days`, so a flood of successful syncs never pushes out the failure an admin is
//! looking for. `serve` also prunes every tenant daily, for tenants that went quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::db::requests::{self, Entry};
use crate::db::{Db, DbError};
use crate::scim::{datetime, idp, redact};

/// How much of a request body, or of a failure's answer, is kept after redaction.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How much of a successful answer is kept: a resource whole, a list page's totals and
/// its first resources. Held, redacted and written for up to `keep` requests a second
/// per tenant, a list page's 64 KiB cost a third of its throughput and ~100 MiB of RSS.
pub const ANSWER_LIMIT: usize = 8 * 1024;

/// How much of an answer with `status` is kept ([`ANSWER_LIMIT`], [`BODY_LIMIT`]). The
/// door hands over one byte more of a longer answer, so that its cut is known.
pub fn answer_limit(status: u16) -> usize {
    if status >= 400 {
        BODY_LIMIT
    } else {
        ANSWER_LIMIT
    }
}
/// Body bytes waiting for the writer; beyond, new captures are dropped. Request bodies
/// are held whole until redacted (a password may sit past any cut).
const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// The least time between two writes of the inspector: what it gathers meanwhile is
/// written together, the captures retention would prune at once left out.
const WINDOW: Duration = Duration::from_secs(1);
/// Captures gathered before a write, whatever the [`WINDOW`]: bounds the memory held.
const GATHER: usize = 8 * 1024;
/// Body bytes gathered before a write, whatever the [`WINDOW`]: well under
/// [`QUEUE_BYTES`], so that what gathers while a write runs seldom makes the door drop
/// captures.
const GATHER_BYTES: usize = QUEUE_BYTES / 4;

/// How long requests are kept, per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Newest successes kept, and apart from them newest failures kept; 0 records nothing.
    pub keep: u32,
    /// Days a success is kept.
    pub days: u32,
    /// Days a failure is kept.
    pub failed_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: 1000,
            days: 7,
            failed_days: 30,
        }
    }
}

/// One SCIM request as the door saw it, before redaction.
#[derive(Debug, Clone)]
pub struct Capture {
    pub tenant_id: i64,
    pub request_id: String,
    pub at: String,
    pub method: String,
    /// Path and query as received.
    pub path_and_query: String,
    pub status: u16,
    pub duration: Duration,
    /// [`crate::model::Actor::label`]: the token or OAuth client, never its secret.
    pub actor: String,
    pub user_agent: String,
    /// The whole body as read (the Authorization header is never captured).
    pub request_body: Option<Bytes>,
    /// The start of the response body (SCIM never returns a password; it is still
    /// scrubbed).
    pub response_body: Option<Bytes>,
}

impl Capture {
    /// Kept apart from successes, as [`Entry::failed`].
    fn failed(&self) -> bool {
        self.status >= 400
    }

    fn bytes(&self) -> usize {
        self.request_body.as_ref().map_or(0, Bytes::len)
            + self.response_body.as_ref().map_or(0, Bytes::len)
    }
}

/// The door's side: cheap to clone, never waits but for a lock held a moment.
#[derive(Clone)]
pub struct Recorder {
    /// None when nothing is recorded.
    shared: Option<Arc<Shared>>,
    /// Captures dropped since start because too much waited.
    dropped: Arc<AtomicU64>,
}

/// What the door and the writing task share.
struct Shared {
    gathered: std::sync::Mutex<Gathered>,
    /// Wakes the task: the first capture after a write, or enough gathered to write.
    wake: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        // A panic while holding the lock leaves whole captures behind: keep recording.
        self.gathered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The writer; [`RecorderTask::stop`] writes what is queued and ends it.
pub struct RecorderTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the writer on the current runtime. With `retention.keep == 0` nothing is
    /// recorded.
    pub fn spawn(db: Db, retention: Retention) -> (Recorder, RecorderTask) {
        let dropped = Arc::new(AtomicU64::new(0));
        if retention.keep == 0 {
            let off = Recorder {
                shared: None,
                dropped,
            };
            return (
                off,
                RecorderTask {
                    stop: None,
                    task: None,
                },
            );
        }
        let shared = Arc::new(Shared {
            gathered: std::sync::Mutex::new(Gathered::new(retention.keep)),
            wake: tokio::sync::Notify::new(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(write_batches(db, retention, shared.clone(), stopped));
        let recorder = Recorder {
            shared: Some(shared),
            dropped,
        };
        (
            recorder,
            RecorderTask {
                stop: Some(stop),
                task: Some(task),
            },
        )
    }

    /// Adds `capture` to what the next write takes, or drops it (counted) when what waits
    /// is over its byte budget.
    pub fn record(&self, capture: Capture) {
        let Some(shared) = &self.shared else { return };
        let (superseded, wake) = {
            let mut gathered = shared.lock();
            if gathered.bytes + capture.bytes() > QUEUE_BYTES {
                (None, false)
            } else {
                let first = gathered.len == 0;
                let superseded = gathered.push(capture);
                (Some(superseded), first || gathered.full())
            }
        };
        let Some(superseded) = superseded else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "request inspector queue full: requests not recorded"
                );
            }
            return;
        };
        // Freed outside the lock.
        drop(superseded);
        if wake {
            shared.wake.notify_one();
        }
    }

    /// Captures dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether requests are recorded at all.
    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }
}

impl RecorderTask {
    /// Writes what is queued, then ends the writer.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn write_batches(
    db: Db,
    retention: Retention,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut unpruned = Unpruned::default();
    let mut last_write = tokio::time::Instant::now() - WINDOW;
    let mut stopping = false;
    while !stopping {
        // Wait for a capture, then gather until a window has passed since the last write.
        while shared.lock().len == 0 && !stopping {
            tokio::select! {
                biased;
                _ = &mut stopped => stopping = true,
                _ = shared.wake.notified() => {}
            }
        }
        let due = last_write + WINDOW;
        while !stopping && !shared.lock().full() && tokio::time::Instant::now() < due {
            tokio::select! {
                biased;
                _ = &mut stopped => stopping = true,
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        // Stopping: what was recorded until now is written too.
        let captures = shared.lock().take();
        if !captures.is_empty() {
            flush(&db, &retention, &mut unpruned, captures).await;
            last_write = tokio::time::Instant::now();
        }
    }
}

/// The captures waiting for the next write, holding only what retention would keep once
/// they are written: each tenant's newest `keep` successes and newest `keep` failures. So
/// what waits is bounded by retention, whatever the rate of requests.
struct Gathered {
    keep: usize,
    /// Per tenant and failed or not, the captures in arrival order, with their arrival
    /// number.
    classes: std::collections::HashMap<(i64, bool), std::collections::VecDeque<(u64, Capture)>>,
    arrived: u64,
    len: usize,
    /// Body bytes held.
    bytes: usize,
}

impl Gathered {
    fn new(keep: u32) -> Gathered {
        Gathered {
            keep: keep as usize,
            classes: Default::default(),
            arrived: 0,
            len: 0,
            bytes: 0,
        }
    }

    /// Adds `c`; returns the capture it superseded, if any.
    fn push(&mut self, c: Capture) -> Option<Capture> {
        self.arrived += 1;
        self.len += 1;
        self.bytes += c.bytes();
        let class = self.classes.entry((c.tenant_id, c.failed())).or_default();
        class.push_back((self.arrived, c));
        if class.len() <= self.keep {
            return None;
        }
        let (_, old) = class.pop_front()?;
        self.len -= 1;
        self.bytes -= old.bytes();
        Some(old)
    }

    /// Whether enough is held to write it before the [`WINDOW`] is over.
    fn full(&self) -> bool {
        self.len >= GATHER || self.bytes >= GATHER_BYTES
    }

    /// Everything held, in arrival order; leaves it empty.
    fn take(&mut self) -> Vec<Capture> {
        let mut all: Vec<(u64, Capture)> = self.classes.drain().flat_map(|(_, c)| c).collect();
        all.sort_unstable_by_key(|(n, _)| *n);
        self.bytes = 0;
        self.len = 0;
        all.into_iter().map(|(_, c)| c).collect()
    }
}

async fn flush(db: &Db, retention: &Retention, unpruned: &mut Unpruned, captures: Vec<Capture>) {
    // Redaction parses every body: off the runtime's threads.
    let entries =
        tokio::task::spawn_blocking(move || captures.into_iter().map(prepare).collect::<Vec<_>>())
            .await;
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "request inspector: preparing a batch failed");
            return;
        }
    };
    let prune = unpruned.due(retention, &entries);
    if let Err(e) = write(db, retention, entries, prune.clone()).await {
        tracing::warn!(error = %e, "request inspector: writing a batch failed");
    } else {
        unpruned.pruned(&prune);
    }
}

/// How many requests each tenant has had recorded since its last prune. Pruning walks the
/// tenant's kept requests, so doing it for every batch would make each batch cost the
/// size of what is kept: a tenant is pruned once a tenth of `keep` new requests arrived,
/// so it holds at most 10 % more than `keep` for a moment.
#[derive(Default)]
struct Unpruned(std::collections::HashMap<i64, u32>);

impl Unpruned {
    /// Counts `entries`, and names the tenants due for pruning.
    fn due(&mut self, retention: &Retention, entries: &[Entry]) -> Vec<i64> {
        let every = (retention.keep / 10).max(1);
        for e in entries {
            *self.0.entry(e.tenant_id).or_default() += 1;
        }
        let mut due: Vec<i64> = self
            .0
            .iter()
            .filter(|(_, n)| **n >= every)
            .map(|(t, _)| *t)
            .collect();
        due.sort_unstable();
        due
    }

    fn pruned(&mut self, tenants: &[i64]) {
        for t in tenants {
            self.0.remove(t);
        }
    }
}

/// Writes one batch and prunes the tenants named, in one transaction.
async fn write(
    db: &Db,
    retention: &Retention,
    entries: Vec<Entry>,
    prune: Vec<i64>,
) -> Result<(), DbError> {
    let retention = *retention;
    // It acts on nothing but the transaction, so it may run again: written replayable,
    // it leaves the SCIM writes batched after it without savepoints (db::writer).
    db.write_relaxed_replayable(move |tx| {
        requests::insert(tx, &entries)?;
        for &t in &prune {
            prune_tenant(tx, t, &retention)?;
        }
        Ok(())
    })
    .await
}

fn prune_tenant(conn: &crate::db::Conn, tenant_id: i64, r: &Retention) -> Result<usize, DbError> {
    let cutoff = |days: u32| datetime::in_days(-i64::from(days));
    Ok(
        requests::prune(conn, tenant_id, false, r.keep, &cutoff(r.days))?
            + requests::prune(conn, tenant_id, true, r.keep, &cutoff(r.failed_days))?,
    )
}

/// Prunes every tenant's requests past `retention`: the daily job of `serve`, for tenants
/// whose IdP went quiet. Returns how many went.
pub async fn prune_all(db: &Db, retention: Retention) -> Result<usize, DbError> {
    db.write_relaxed(move |tx| {
        let mut n = 0;
        for t in requests::tenants(tx)? {
            n += prune_tenant(tx, t, &retention)?;
        }
        Ok(n)
    })
    .await
}

/// A capture as stored: redacted, its client detected, its bodies cut ([`answer_limit`]),
/// a failure's SCIM Error read from the response.
pub fn prepare(c: Capture) -> Entry {
    let query = c.path_and_query.split_once('?').map_or("", |(_, q)| q);
    let parsed: Option<Value> = c
        .request_body
        .as_ref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let detection = idp::detect(&c.user_agent, query, parsed.as_ref());
    let (request_body, request_truncated) =
        cut(c.request_body.as_deref().and_then(redact::body), BODY_LIMIT);
    // An answer the door cut is no longer JSON: scrubbed as text without a parse first.
    let limit = answer_limit(c.status);
    let answer = c
        .response_body
        .as_deref()
        .and_then(|b| match b.len() > limit {
            true => Some(redact::text(&String::from_utf8_lossy(b))),
            false => redact::body(b),
        });
    let (response_body, response_truncated) = cut(answer, limit);
    let error: Option<Value> = c
        .failed()
        .then(|| {
            c.response_body
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
        })
        .flatten();
    let error_text = |k: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(2000).collect::<String>())
    };
    Entry {
        tenant_id: c.tenant_id,
        resource: resource_of(&c.path_and_query).to_string(),
        path: redact::path_and_query(&c.path_and_query),
        request_id: c.request_id,
        at: c.at,
        method: c.method,
        status: c.status,
        duration_us: c.duration.as_micros().min(u128::from(u64::MAX)) as u64,
        actor: c.actor,
        user_agent: c.user_agent,
        idp: detection.idp,
        dialect: detection.dialect,
        evidence: detection.evidence.join("; "),
        request_body,
        response_body,
        request_truncated,
        response_truncated,
        error: error_text("detail"),
        scim_type: error_text("scimType"),
    }
}

/// `Users`, `Groups` or `other`, from a SCIM path (`/scim/v2/Users/42?x` → `Users`).
pub fn resource_of(path_and_query: &str) -> &'static str {
    let path = path_and_query.split('?').next().unwrap_or("");
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    // After the mount point (`scim`, then `v2` when present).
    let first = segments.find(|s| !s.eq_ignore_ascii_case("scim") && !s.eq_ignore_ascii_case("v2"));
    match first {
        Some(s) if s.eq_ignore_ascii_case("Users") => "Users",
        Some(s) if s.eq_ignore_ascii_case("Groups") => "Groups",
        _ => "other",
    }
}

/// `s` cut to `limit` bytes at a character boundary, and whether it was cut.
fn cut(s: Option<String>, limit: usize) -> (Option<String>, bool) {
    match s {
        Some(mut s) if s.len() > limit => {
            let mut end = limit;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            (Some(s), true)
        }
        other => (other, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(path: &str, status: u16, body: &str, response: &str) -> Capture {
        Capture {
            tenant_id: 1,
            request_id: "r1".into(),
            at: datetime::now(),
            method: "POST".into(),
            path_and_query: path.into(),
            status,
            duration: Duration::from_millis(3),
            actor: "token:1".into(),
            user_agent: "Okta SCIM Client 1.0.0".into(),
            request_body: Some(Bytes::from(body.to_string())),
            response_body: Some(Bytes::from(response.to_string())),
        }
    }

    #[test]
    fn keeps_the_start_of_a_success_and_more_of_a_failure() {
        let long = "y".repeat(BODY_LIMIT + 1);
        let ok = prepare(capture("/scim/v2/Users", 200, "", &long));
        assert_eq!(ok.response_body.unwrap().len(), ANSWER_LIMIT);
        assert!(ok.response_truncated);
        let failed = prepare(capture("/scim/v2/Users", 500, "", &long));
        assert_eq!(failed.response_body.unwrap().len(), BODY_LIMIT);
        assert!(failed.response_truncated);
        // A cut answer is no longer JSON, and is still scrubbed.
        let secret = format!("{{\"password\":\"hunter2\",\"pad\":\"{long}\"}}");
        let ok = prepare(capture("/scim/v2/Users", 200, "", &secret));
        let kept = ok.response_body.unwrap();
        assert!(
            !kept.contains("hunter2") && kept.contains("[redacted]"),
            "{kept:.80}"
        );
        let short = "z".repeat(ANSWER_LIMIT);
        let ok = prepare(capture("/scim/v2/Users", 200, "", &short));
        assert_eq!(ok.response_body.as_deref(), Some(short.as_str()));
        assert!(!ok.response_truncated);
    }

    #[test]
    fn prepares_a_redacted_entry_with_its_error() {
        let body = format!(
            "{{\"userName\":\"a\",\"password\":\"hunter2\",\"pad\":\"{}\"}}",
            "x".repeat(BODY_LIMIT)
        );
        let e = prepare(capture(
            "/scim/v2/Users?access_token=abc",
            409,
            &body,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"taken"}"#,
        ));
        assert_eq!(e.resource, "Users");
        assert_eq!(e.path, "/scim/v2/Users?access_token=[redacted]");
        let stored = e.request_body.as_deref().unwrap();
        assert!(!stored.contains("hunter2") && stored.contains("[redacted]"));
        assert!(e.request_truncated && stored.len() <= BODY_LIMIT);
        assert_eq!(
            (e.error.as_deref(), e.scim_type.as_deref()),
            (Some("taken"), Some("uniqueness"))
        );
        assert_eq!(e.idp, idp::Idp::Okta);
        assert_eq!(e.duration_us, 3000);
    }

    #[test]
    fn resources_of_paths() {
        assert_eq!(resource_of("/scim/v2/Users/42?x=1"), "Users");
        assert_eq!(resource_of("/scim/groups"), "Groups");
        assert_eq!(resource_of("/scim/v2/.search"), "other");
        assert_eq!(resource_of("/scim/v2"), "other");
    }

    #[test]
    fn gathers_only_what_retention_would_keep() {
        let ids = |keep| {
            let mut g = Gathered::new(keep);
            let mut superseded = Vec::new();
            for (i, (tenant, status)) in
                [(1, 200), (1, 404), (2, 200), (1, 200), (1, 409), (1, 201)]
                    .into_iter()
                    .enumerate()
            {
                let mut c = capture("/scim/v2/Users", status, "", "ab");
                c.tenant_id = tenant;
                c.request_id = format!("r{i}");
                superseded.extend(g.push(c));
                let back: usize = superseded.iter().map(Capture::bytes).sum();
                assert_eq!(
                    g.bytes + back,
                    (i + 1) * 2,
                    "every byte held or handed back"
                );
            }
            let kept = g.take();
            assert_eq!(kept.len() + superseded.len(), 6);
            assert_eq!((g.len, g.bytes, g.take().len()), (0, 0, 0));
            kept.into_iter().map(|c| c.request_id).collect::<Vec<_>>()
        };
        // Per tenant, the newest `keep` successes and newest `keep` failures, in order.
        assert_eq!(ids(2), ["r1", "r2", "r3", "r4", "r5"]);
        assert_eq!(ids(1), ["r2", "r4", "r5"]);
        assert_eq!(ids(1000).len(), 6);
    }

    /// Over the byte budget, captures are dropped and counted, never waited for; what was
    /// held is written when the writer stops, in order.
    #[tokio::test]
    async fn over_its_budget_the_door_drops_and_counts_and_the_rest_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), crate::db::Durability::Normal).unwrap();
        let (recorder, task) = Recorder::spawn(db.clone(), Retention::default());
        let big = Bytes::from(vec![b'x'; 1024 * 1024]);
        let sent = QUEUE_BYTES / big.len() + 16;
        for i in 0..sent {
            let mut c = capture("/scim/v2/Users", 201, "", "");
            c.request_id = format!("r{i}");
            c.request_body = Some(big.clone());
            recorder.record(c);
        }
        let dropped = recorder.dropped() as usize;
        // The first capture may have been taken by a write already; every other one waits.
        assert!((15..=16).contains(&dropped), "{dropped}");
        task.stop().await;
        let written = db
            .read(|c| {
                requests::page(
                    c,
                    1,
                    &Default::default(),
                    crate::db::paging::Cursor::First,
                    2000,
                )
            })
            .await
            .unwrap();
        let ids: Vec<String> = written
            .items
            .iter()
            .rev()
            .map(|r| r.entry.request_id.clone())
            .collect();
        let expected: Vec<String> = (0..sent - dropped).map(|i| format!("r{i}")).collect();
        assert_eq!(ids, expected);
    }
}
