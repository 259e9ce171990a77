//! Prometheus metrics: the registry the doors record into, and `GET /metrics`, which
//! renders it in the OpenMetrics text format with `prometheus-client`.
//!
//! Two kinds of numbers. Counters and the latency histogram count what this process saw
//! since it started (requests, SCIM writes, sync runs it ran, webhook deliveries it sent);
//! Prometheus' `rate()` copes with restarts. Gauges of state (database and WAL size,
//! webhook lag, token last use) are read afresh at each scrape, so they hold for writes
//! made by other processes too (the CLI); `database_writable` is what this server's own
//! writes met, as `/healthz` reports it.
//!
//! No label carries a secret or a name an admin typed: tokens and endpoints are labelled
//! by their numeric id, tenants not at all.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::db::{self, Db, DbError};

/// The media type of the OpenMetrics text format, which Prometheus negotiates first.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The request log's route class (scim, oauth, api, workos, admin, static, health, metrics).
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    /// `Users` or `Groups`.
    resource: &'static str,
    /// `success` or `failure`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// `success` or `failure`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    /// `full` (force sync) or `roles` (a settings change re-evaluating roles).
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    /// The webhook endpoint's id.
    endpoint: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    /// The SCIM token's id (never its secret or prefix).
    token: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    /// `db` (the main file) or `wal` (its write-ahead log).
    file: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// `success` for a 2xx (a SCIM write, a webhook delivery), else `failure`.
fn outcome(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

type FGauge = Gauge<f64, AtomicU64>;

/// Every metric scimd exports; cheap to clone (the families share their storage).
#[derive(Clone)]
pub struct Metrics {
    /// The registry behind the text output; also what serialises scrapes, so two scrapes
    /// never interleave refreshing the gauges below.
    registry: Arc<std::sync::Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    scim_writes: Family<WriteLabels, Counter>,
    sync_runs: Family<ScopeLabel, Counter>,
    sync_changes: Family<ScopeLabel, Counter>,
    deliveries: Family<OutcomeLabel, Counter>,
    // Read at scrape time.
    lag: Family<EndpointLabel, Gauge>,
    failing: Family<EndpointLabel, Gauge>,
    token_idle: Family<TokenLabel, FGauge>,
    files: Family<FileLabel, Gauge>,
    writable: Gauge,
    // Set by the start-up check.
    damaged: Gauge,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("scimd");
        let m = Metrics {
            registry: Default::default(),
            requests: Default::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            scim_writes: Default::default(),
            sync_runs: Default::default(),
            sync_changes: Default::default(),
            deliveries: Default::default(),
            lag: Default::default(),
            failing: Default::default(),
            token_idle: Default::default(),
            files: Default::default(),
            writable: Default::default(),
            damaged: Default::default(),
        };
        r.register(
            "http_requests",
            "HTTP requests answered, by route class and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by route class",
            Unit::Seconds,
            m.latency.clone(),
        );
        r.register(
            "scim_writes",
            "SCIM writes (POST, PUT, PATCH, DELETE) by resource and outcome",
            m.scim_writes.clone(),
        );
        r.register(
            "sync_runs",
            "Sync runs this server ran (force sync, role re-evaluation), by scope",
            m.sync_runs.clone(),
        );
        r.register(
            "sync_changes_applied",
            "Member changes applied by those sync runs, by scope",
            m.sync_changes.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (success is a 2xx)",
            m.deliveries.clone(),
        );
        r.register(
            "webhook_lag_events",
            "Events of the endpoint's tenant after its cursor (not yet delivered or skipped)",
            m.lag.clone(),
        );
        r.register(
            "webhook_failures",
            "Consecutive failed attempts of the event an endpoint is retrying",
            m.failing.clone(),
        );
        r.register_with_unit(
            "token_last_use_age",
            "Time since each unrevoked SCIM token was last used (tokens never used are left out)",
            Unit::Seconds,
            m.token_idle.clone(),
        );
        r.register_with_unit(
            "sqlite_file_size",
            "Size of the SQLite database file and of its write-ahead log",
            Unit::Bytes,
            m.files.clone(),
        );
        r.register(
            "database_writable",
            "1 while writes are stored, 0 while they fail for a reason of the storage \
             (disk full, read-only, the log's flush failing), as /healthz reports",
            m.writable.clone(),
        );
        r.register(
            "database_damaged",
            "1 when the check of every page at start found damage (the log says where: run \
             `scimd check`, and restore a backup if it confirms), else 0",
            m.damaged.clone(),
        );
        let build: Family<VersionLabel, Gauge> = Default::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("build_info", "Always 1; the version of scimd", build);
        // Every counter's label sets at 0 from the start, so a rate or an alert on them reads
        // 0 before the first event, not "absent".
        for ok in [true, false] {
            for resource in ["Users", "Groups"] {
                let outcome = outcome(ok);
                let _ = m
                    .scim_writes
                    .get_or_create(&WriteLabels { resource, outcome });
            }
            let _ = m.deliveries.get_or_create(&OutcomeLabel {
                outcome: outcome(ok),
            });
        }
        for scope in <crate::model::SyncScope as crate::model::TextEnum>::ALL {
            let scope = ScopeLabel {
                scope: scope.as_str(),
            };
            let _ = m.sync_runs.get_or_create(&scope);
            let _ = m.sync_changes.get_or_create(&scope);
        }
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = r;
        m
    }

    /// What the start-up check of every page found.
    pub(crate) fn checked_pages(&self, damaged: bool) {
        self.damaged.set(i64::from(damaged));
    }

    /// Whether the start-up check found the database damaged.
    pub(crate) fn damaged(&self) -> bool {
        self.damaged.get() != 0
    }

    /// One answered request.
    pub(crate) fn request(&self, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// One SCIM write to `resource` (`Users` or `Groups`).
    pub(crate) fn scim_write(&self, resource: &'static str, ok: bool) {
        let outcome = outcome(ok);
        self.scim_writes
            .get_or_create(&WriteLabels { resource, outcome })
            .inc();
    }

    /// One sync run: the changes it applied are its plan less the deprovisionings the
    /// guard held and the skips (none for a dry run).
    pub(crate) fn sync_run(&self, run: &crate::ops::reconcile::SyncRun) {
        use crate::sync::ChangeKind;
        let applied = if run.dry_run {
            0
        } else {
            let counts = &run.report.counts;
            let planned: usize = counts.0.iter().map(|(_, n)| n).sum();
            planned
                .saturating_sub(counts.get(ChangeKind::Skip))
                .saturating_sub(run.held)
        };
        let label = ScopeLabel {
            scope: run.scope.as_str(),
        };
        self.sync_runs.get_or_create(&label).inc();
        self.sync_changes
            .get_or_create(&label)
            .inc_by(applied as u64);
    }

    /// One webhook delivery attempt.
    pub(crate) fn delivery(&self, ok: bool) {
        self.deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome(ok),
            })
            .inc();
    }

    /// The text exposition, with the gauges of state read from `db` now.
    pub(crate) async fn render(&self, db: &Db) -> Result<String, DbError> {
        let now = time::OffsetDateTime::now_utc();
        let (tokens, endpoints) = db
            .read(|c| {
                let tokens = db::tokens::list(c, None)?;
                let mut endpoints = Vec::new();
                for e in db::webhooks::list(c, None)? {
                    let (newest, _) = db::events::bounds(c, e.tenant_id)?;
                    endpoints.push((e.id, (newest - e.cursor).max(0), e.failures));
                }
                Ok::<_, DbError>((tokens, endpoints))
            })
            .await?;
        let (db_size, wal_size) = db.file_sizes();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Cleared first, so a deleted endpoint or a revoked token stops being reported.
        self.lag.clear();
        self.failing.clear();
        for (endpoint, lag, failures) in endpoints {
            let label = EndpointLabel { endpoint };
            self.lag.get_or_create(&label).set(lag);
            self.failing.get_or_create(&label).set(failures);
        }
        self.token_idle.clear();
        for t in tokens.iter().filter(|t| t.revoked_at.is_none()) {
            let Some(used) = t
                .last_used_at
                .as_deref()
                .and_then(crate::scim::datetime::parse)
            else {
                continue;
            };
            let idle = (now - used).as_seconds_f64().max(0.0);
            self.token_idle
                .get_or_create(&TokenLabel { token: t.id })
                .set(idle);
        }
        self.files
            .get_or_create(&FileLabel { file: "db" })
            .set(db_size as i64);
        self.files
            .get_or_create(&FileLabel { file: "wal" })
            .set(wal_size as i64);
        self.writable.set(i64::from(db.write_health().is_ok()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}
