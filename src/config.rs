//! Server settings from flags and `SCIMD_*` environment variables, validated once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::db::Durability;
use crate::ops::inspector::Retention;

/// Settings shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// SQLite database file. `serve` and most commands create it, with the default tenant,
    /// when missing; `backup`, `check`, `audit` and `events` refuse a missing one
    /// (`restore` creates it).
    #[arg(
        long = "db",
        env = "SCIMD_DB",
        default_value = "scimd.db",
        global = true
    )]
    pub path: PathBuf,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of `scimd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIMD_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Public base URL of this server (e.g. https://scim.example.com), used for
    /// `meta.location` and `Location`; derived from each request's Host header when unset.
    #[arg(long, env = "SCIMD_BASE_URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,

    /// Largest request body accepted, in bytes (at least 1024); larger requests get 413.
    #[arg(long, env = "SCIMD_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_parser = at_least::<1024>)]
    pub max_body_bytes: usize,

    /// PEM certificate chain: serve HTTPS directly (with --tls-key) instead of behind a
    /// TLS-terminating proxy.
    #[arg(long, env = "SCIMD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SCIMD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Open connections at most; beyond, a new connection is answered 503 and closed.
    #[arg(long, env = "SCIMD_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = at_least::<1>)]
    pub max_connections: usize,

    /// Requests being answered at once at most; beyond, 503 with Retry-After.
    #[arg(long, env = "SCIMD_MAX_REQUESTS", default_value_t = DEFAULT_MAX_REQUESTS, value_parser = at_least::<1>)]
    pub max_requests: usize,

    /// Failed authentications (missing, malformed or unknown SCIM tokens and API keys) one
    /// client address may make in a burst, earning one back per second; past it the address
    /// is answered 429 with Retry-After, except for credentials that worked from it. IPv6
    /// counts per /64. 0 turns this off. Behind a reverse proxy, name it with
    /// --trusted-proxy, or every client counts as the proxy's address.
    #[arg(long, env = "SCIMD_AUTH_FAILURE_BURST", default_value_t = crate::ops::throttle::FLOOD_BURST)]
    pub auth_failure_burst: u32,

    /// A reverse proxy in front of scimd (an address, or a range such as 10.0.0.0/8;
    /// repeat, or separate with commas): for a request it forwards, the client is the last
    /// address in `X-Forwarded-For` that is not itself a trusted proxy. Login locks, the
    /// failed-authentication throttle and the per-address request share then count real
    /// clients instead of the proxy; from anyone else the header is ignored.
    #[arg(long = "trusted-proxy", env = "SCIMD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Log lines as human-readable `text` (default) or one JSON object per line (`json`),
    /// on standard error. `SCIMD_LOG` (tracing directives) overrides --log-level.
    #[arg(long, env = "SCIMD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// The least severe level logged: error, warn, info (default: one line per request),
    /// debug or trace.
    #[arg(long, env = "SCIMD_LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,

    /// `full`: a 2xx survives power loss (default). `normal`: faster, may lose the last
    /// writes on power loss (never on a crash of scimd alone).
    #[arg(long, env = "SCIMD_SYNCHRONOUS", value_enum, default_value = "full")]
    pub synchronous: Durability,

    /// MiB of the database file mapped into memory for reads (0: none, the default; at
    /// most 2047, SQLite's limit).
    /// Lookups on a large directory run faster (5–15 % at 100 000 users); the mapped pages
    /// the server touches count in its RSS, and an I/O error on the file stops the server
    /// instead of failing one request.
    #[arg(long, env = "SCIMD_MMAP_MIB", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2047))]
    pub mmap_mib: u64,

    /// Waits between a webhook delivery's retries (comma-separated, units ms, s, m, h, d;
    /// each give or take 10%). Once all have failed the endpoint is disabled.
    #[arg(
        long,
        env = "SCIMD_WEBHOOK_RETRY_SCHEDULE",
        default_value = DEFAULT_RETRY_SCHEDULE,
        value_parser = parse_schedule
    )]
    pub webhook_retry_schedule: RetrySchedule,

    /// Request inspector: how many of each tenant's latest successful SCIM requests are
    /// kept, and apart from them how many failed ones; 0 records no request.
    #[arg(long, env = "SCIMD_INSPECTOR_KEEP", default_value_t = 1000)]
    pub inspector_keep: u32,

    /// Request inspector: days a successful request is kept.
    #[arg(long, env = "SCIMD_INSPECTOR_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub inspector_days: u32,

    /// Request inspector: days a failed request (4xx, 5xx) is kept.
    #[arg(long, env = "SCIMD_INSPECTOR_FAILED_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub inspector_failed_days: u32,

    /// `on` (default): serve Prometheus metrics at GET /metrics, without a token. `off`:
    /// no /metrics anywhere.
    #[arg(long, env = "SCIMD_METRICS", value_enum, default_value = "on")]
    pub metrics: MetricsSwitch,

    /// Serve /metrics on this address (plain HTTP) instead of --listen, whose /metrics
    /// then answers 404: keeps the counts off the port IdPs and browsers reach.
    #[arg(long, env = "SCIMD_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Whether scimd serves Prometheus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsSwitch {
    On,
    Off,
}

impl ServeArgs {
    /// The request inspector's retention.
    pub fn inspector(&self) -> Retention {
        Retention {
            keep: self.inspector_keep,
            days: self.inspector_days,
            failed_days: self.inspector_failed_days,
        }
    }
}

/// The default webhook retry schedule, Standard Webhooks' example: about 75 hours in all,
/// so a receiver down over a weekend's two nights loses nothing and needs no admin.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

/// The waits after a webhook's first, second… failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        parse_schedule(DEFAULT_RETRY_SCHEDULE).expect("the default schedule parses")
    }
}

/// The validated settings the HTTP layer runs with.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive once its headers have: a client that
    /// stalls mid-body gets a 408 instead of holding its connection forever.
    pub body_read_timeout: Duration,
    /// How long one write of an answer may wait on a client that does not read it before
    /// the connection is closed.
    pub write_timeout: Duration,
    /// What the request inspector keeps of each tenant's SCIM requests.
    pub inspector: Retention,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Requests being answered at most; one more is answered 503 with `Retry-After`.
    pub max_requests: usize,
    /// Bytes that big answers may hold until their clients have taken them, a quarter of
    /// it per client address; one more is answered 503 with `Retry-After`.
    pub answer_backlog: usize,
    /// `/metrics` is served on the main listener (metrics on, no `--metrics-listen`).
    pub metrics_on_main: bool,
    /// Failed authentications per client address in a burst before 429; 0 for no limit.
    pub auth_failure_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Open connections a small VM serves at once unless told otherwise (each costs a task
/// and a socket; an IdP uses a handful).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Requests answered at once unless told otherwise (each may hold a database connection
/// or a long poll).
pub const DEFAULT_MAX_REQUESTS: usize = 256;

/// [`HttpConfig::answer_backlog`] unless a test says otherwise: what a thousand pages of
/// a hundred ordinary users take, a fraction of a small VM.
pub const ANSWER_BACKLOG: usize = 128 * 1024 * 1024;

/// [`HttpConfig::write_timeout`]: a client that reads nothing of its answer for this long
/// has gone.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// [`HttpConfig::body_read_timeout`] unless a test says otherwise: a megabyte in 30 s is
/// 35 kB/s, slower than any IdP or browser an admin would use.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl From<&ServeArgs> for HttpConfig {
    fn from(a: &ServeArgs) -> Self {
        HttpConfig {
            base_url: a.base_url.clone(),
            max_body_bytes: a.max_body_bytes,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            inspector: a.inspector(),
            max_connections: a.max_connections,
            max_requests: a.max_requests,
            answer_backlog: ANSWER_BACKLOG,
            metrics_on_main: a.metrics == MetricsSwitch::On && a.metrics_listen.is_none(),
            auth_failure_burst: a.auth_failure_burst,
            trusted_proxies: a.trusted_proxies.clone(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            base_url: None,
            max_body_bytes: 1024 * 1024,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            inspector: Retention::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_requests: DEFAULT_MAX_REQUESTS,
            answer_backlog: ANSWER_BACKLOG,
            metrics_on_main: true,
            auth_failure_burst: crate::ops::throttle::FLOOD_BURST,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A trusted proxy: one address, or a range in CIDR notation.
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{s}' is neither an IP address nor a CIDR range (10.0.0.0/8)"))
}

/// A count of at least `MIN` (a cap of 0 would refuse everything, or mean nothing).
fn at_least<const MIN: usize>(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= MIN => Ok(n),
        _ => Err(format!("expected a whole number of at least {MIN}")),
    }
}

/// A listening address, `IP:PORT`; `localhost` is taken for `127.0.0.1`. Anything else is
/// refused with an example, not clap's bare "invalid socket address syntax".
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let s = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_string(),
    };
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not IP:PORT: e.g. 127.0.0.1:8080 (this machine only), 0.0.0.0:8080 (every IPv4 address) or [::]:8080"
        )
    })
}

/// An absolute http(s) URL without a trailing slash.
fn parse_base_url(s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#']) {
        return Err("must be an absolute URL without query or fragment".into());
    }
    Ok(trimmed.to_string())
}

/// Parses a retry schedule: comma-separated durations such as `5s,5m,30m,2h`.
pub fn parse_schedule(s: &str) -> Result<RetrySchedule, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("{part:?} needs a unit (ms, s, m, h or d)"))?;
            let (n, unit) = part.split_at(split);
            let n: u64 = n
                .parse()
                .map_err(|_| format!("{part:?} is not a duration"))?;
            let unit = match unit {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86400),
                _ => return Err(format!("{part:?}: the unit is ms, s, m, h or d")),
            };
            Ok(unit * n as u32)
        })
        .collect::<Result<_, _>>()
        .map(RetrySchedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse() {
        let d = parse_schedule(DEFAULT_RETRY_SCHEDULE).unwrap().0;
        assert_eq!(d.len(), 9);
        assert_eq!(d[0], Duration::from_secs(5));
        assert_eq!(d[8], Duration::from_secs(24 * 3600));
        assert_eq!(
            parse_schedule("1s, 250ms").unwrap().0,
            [Duration::from_secs(1), Duration::from_millis(250)]
        );
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn base_url_is_validated_and_trimmed() {
        assert_eq!(
            parse_base_url("https://scim.example.com/").unwrap(),
            "https://scim.example.com"
        );
        assert!(parse_base_url("scim.example.com").is_err());
        assert!(parse_base_url("https://x?y").is_err());
    }
}
