//! The `scimd` command line. Every command is a thin shell over the library, so scripts,
//! support staff and tests all exercise the same code the server runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod apps;
mod directory;
mod logs;
mod webhooks;

use crate::config::{DbArgs, LogFormat, MetricsSwitch, ServeArgs};
use crate::db::{self, Db, DbError, Durability, tenants};
use crate::model::Actor;
use crate::ops::{self, block_on};
use crate::scim::datetime;

/// Self-hosted SCIM 2.0 provisioning appliance: one binary, one SQLite file.
#[derive(Debug, Parser)]
#[command(name = "scimd", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SCIM at /scim/v2 and /scim, health at /healthz).
    Serve(ServeArgs),
    /// Exit 0 when a server answers GET /healthz with 200 (for supervisors and containers).
    Healthcheck {
        /// Address of the server to check.
        #[arg(long, env = "SCIMD_LISTEN", default_value = "127.0.0.1:8080", value_parser = crate::config::parse_listen)]
        listen: SocketAddr,
        /// The server's certificate (its `--tls-cert`): check it over HTTPS, trusting
        /// exactly that certificate.
        #[arg(long, env = "SCIMD_TLS_CERT")]
        tls_cert: Option<std::path::PathBuf>,
    },
    /// Manage SCIM bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage tenants (each IdP connection writes into one tenant) and their sync settings.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Force a full sync of a tenant's members with its directory and print the report.
    Sync(directory::SyncArgs),
    /// Import or export members (the people who exist before or beside provisioning).
    #[command(subcommand)]
    Members(directory::MembersCommand),
    /// Manage a tenant's roles and group-to-role mappings.
    #[command(subcommand)]
    Roles(directory::RolesCommand),
    /// Print the newest audit log entries as JSON lines (and follow new ones), or verify them.
    Audit(directory::AuditArgs),
    /// See, approve or reject what the guard against mass deprovisioning holds.
    #[command(subcommand)]
    Guard(directory::GuardCommand),
    /// Manage admin accounts of the web UI.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage OAuth 2.0 clients (IdPs that authenticate with OAuth instead of a token).
    #[command(subcommand)]
    Oauth(OAuthCommand),
    /// Manage app API keys (what the organisation's apps read `/api/v1` with).
    #[command(subcommand)]
    Apikey(apps::ApiKeyCommand),
    /// Print a tenant's events as JSON lines, oldest first (and follow new ones).
    Events(apps::EventsArgs),
    /// Manage webhook endpoints (Standard Webhooks 1.0) that receive a tenant's events.
    #[command(subcommand)]
    Webhook(webhooks::WebhookCommand),
    /// Replace the database with a backup, after checking it (refused while a server runs).
    Restore {
        /// The backup (`scimd backup FILE`).
        file: std::path::PathBuf,
    },
    /// Check the database: SQLite's integrity and foreign keys, and the audit log's chain.
    Check,
    /// Copy the database to FILE consistently, while the server keeps running.
    Backup {
        /// Where to write the copy; must not exist yet.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin; the password is read from the first line of standard input.
    Create { username: String },
    /// Set a new password (read from standard input) and end the admin's sessions.
    ResetPassword { username: String },
    /// Delete an admin account (not the last): their sessions end at once.
    Delete { username: String },
    /// List admin accounts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (and nothing else) on stdout, once.
    Create {
        /// Tenant the token grants access to.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// A name to recognise the token by (e.g. "Okta production").
        #[arg(long, default_value = "SCIM token")]
        name: String,
        /// Make the token stop working after this many days (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        expires_in_days: Option<u32>,
    },
    /// List tokens: id, tenant, name, visible prefix, created, last used, expiry, state.
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a token by id; a running server refuses it within a second (at once when
    /// revoked in its web UI).
    Revoke {
        /// The id shown by `scimd token list`.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OAuthCommand {
    /// Register a client; prints `client_id=…` and `client_secret=…` (the secret only once).
    Create {
        /// Tenant whose SCIM API the client's tokens reach.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
        /// A name to recognise the client by (e.g. "Okta provisioning").
        #[arg(long)]
        name: String,
        /// A redirect URI, matched exactly; repeat for several. Okta's is
        /// https://system-admin.okta.com/admin/app/cpc/<instance>_<app>/oauth/callback
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A grant the client may use: authorization_code (with refresh tokens) or
        /// client_credentials; repeat for both. Default: authorization_code when a redirect
        /// URI is given, else client_credentials.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
    },
    /// List clients: id, tenant, name, client id, grants, redirect URIs, created, state.
    List {
        /// Only this tenant's clients.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a client (by id or client id): its secret and every token it was issued stop
    /// working within a second (at once when revoked in the web UI).
    Revoke {
        /// The id or client id shown by `scimd oauth list`.
        id: String,
    },
    /// Replace a client's secret and print the new one, once; the old one stops working.
    RotateSecret {
        /// The id or client id shown by `scimd oauth list`.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Short name: lowercase letters, digits and dashes.
        slug: String,
        /// Display name; defaults to the slug.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
    /// Delete a tenant: its tokens, OAuth apps, API keys and webhook endpoints at once,
    /// then its directory, members, events and settings. Its audit entries stay. Without
    /// --yes, prints what it holds and deletes nothing.
    Delete {
        /// The tenant's slug.
        slug: String,
        /// Delete it.
        #[arg(long)]
        yes: bool,
    },
    /// Change a tenant's sync settings (test mode, policies, matching, roles).
    Set(directory::TenantSetArgs),
    /// Show a tenant's sync settings.
    Show {
        /// Tenant to show.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(&cli.db, args),
        Command::Healthcheck { listen, tls_cert } => return healthcheck(listen, tls_cert),
        Command::Token(cmd) => open(&cli.db).and_then(|db| token(&db, cmd)),
        Command::Tenant(cmd) => open(&cli.db).and_then(|db| tenant(&db, cmd)),
        Command::Sync(args) => open(&cli.db).and_then(|db| directory::sync(&db, args)),
        Command::Members(cmd) => open(&cli.db).and_then(|db| directory::members_cmd(&db, cmd)),
        Command::Roles(cmd) => open(&cli.db).and_then(|db| directory::roles(&db, cmd)),
        Command::Audit(args) => directory::audit_cmd(|| open_existing(&cli.db), args),
        Command::Guard(cmd) => open(&cli.db).and_then(|db| directory::guard_cmd(&db, cmd)),
        Command::Admin(cmd) => open(&cli.db).and_then(|db| admin(&db, cmd)),
        Command::Backup { file } => open_existing(&cli.db).and_then(|db| backup(&db, &file)),
        Command::Restore { file } => restore(&cli.db.path, &file),
        Command::Check => check(&cli.db),
        Command::Apikey(cmd) => open(&cli.db).and_then(|db| apps::apikey(&db, cmd)),
        Command::Events(args) => open_existing(&cli.db).and_then(|db| apps::events(&db, args)),
        Command::Oauth(cmd) => open(&cli.db).and_then(|db| oauth(&db, cmd)),
        Command::Webhook(cmd) => open(&cli.db).and_then(|db| webhooks::run(&db, cmd)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `scimd audit | head`: the reader stopped reading, as is its right; ended as a
        // closed pipe ends a C program, without a word (128 + SIGPIPE).
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::from(141)
        }
        Err(e) => {
            eprintln!("scimd: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `text`, which may carry what an IdP sent, made safe to print on a terminal: control
/// characters other than newline and tab (an escape sequence could recolour, retitle or
/// rewrite the admin's screen) are shown as `\u{1b}` escapes.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            c if unsafe_char(c) => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// [`printable`] when standard output is a terminal, else `text` unchanged: for data an
/// admin may redirect to a file (an export), which must stay byte for byte.
pub(crate) fn for_stdout(text: &str) -> std::borrow::Cow<'_, str> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        printable(text)
    } else {
        text.into()
    }
}

/// [`open`] for a command that only reads what a database holds (a backup, the audit log,
/// the feed): a missing one is a mistyped path, not a database to create and read empty.
fn open_existing(args: &DbArgs) -> Result<Db, Box<dyn std::error::Error>> {
    if !args.path.is_file() {
        return Err(format!(
            "no database at {} (check --db or SCIMD_DB)",
            args.path.display()
        )
        .into());
    }
    // What a copy or a restore cut short leaves; SQLite would make it a new database.
    if std::fs::metadata(&args.path)?.len() == 0 {
        return Err(format!("{} is empty: not a database", args.path.display()).into());
    }
    open(args)
}

/// Refuses a database path whose directory does not exist, saying so: SQLite and the
/// server's lock file would only report "No such file or directory".
fn directory_exists(path: &std::path::Path) -> Result<(), String> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(format!(
            "cannot open database {}: the directory {} does not exist (create it, or check --db or SCIMD_DB)",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

fn open(args: &DbArgs) -> Result<Db, Box<dyn std::error::Error>> {
    directory_exists(&args.path)?;
    let existed = args.path.exists();
    let db = Db::open(&args.path, Durability::Full)
        .map_err(|e| format!("cannot open database {}: {e}", args.path.display()))?;
    adopt_owner(&args.path)?;
    if !existed {
        // Said on standard error: a mistyped --db would otherwise quietly act on a new,
        // empty database the server never reads.
        eprintln!(
            "scimd: created a new database at {} (if you meant the server's, check --db or SCIMD_DB)",
            args.path.display()
        );
    }
    Ok(db)
}

/// Keeps a root shell from leaving root-owned files the packaged service cannot write.
fn adopt_owner(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    db::adopt_owner(path).map_err(|e| {
        format!(
            "cannot hand {} to its directory's owner: {e}",
            path.display()
        )
        .into()
    })
}

fn serve(db_args: &DbArgs, mut args: ServeArgs) -> CliResult {
    if args.metrics == MetricsSwitch::Off && args.metrics_listen.is_some() {
        return Err(
            "--metrics-listen serves metrics, which --metrics off turns off: drop one".into(),
        );
    }
    // Held until `serve` returns: dropping it writes out the lines still queued.
    let _log = init_tracing(args.log_format, &args.log_level);
    // Connections past what the open-files limit leaves would fail the database's own
    // files (a write committed, its flush refused) and stall accepting: fewer are taken.
    let files = crate::server::raise_open_files();
    let room = files.saturating_sub(crate::server::RESERVED_FILES).max(16);
    if args.max_connections as u64 > room {
        tracing::warn!(
            open_files = files,
            max_connections = args.max_connections,
            taken = room,
            "the open-files limit leaves room for fewer connections than --max-connections: raise it (LimitNOFILE, ulimit -n)"
        );
        args.max_connections = room as usize;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::load_tls(cert, key)?),
        _ => None,
    };
    // The addresses first: a port in use is refused before a database is made or changed.
    let (listener, metrics_listener) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let metrics_listener = match args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?,
            ),
            None => None,
        };
        Ok::<_, String>((listener, metrics_listener))
    })?;
    // Tells `scimd restore` and a second server that a server is using the database, until
    // this process ends; taken before the database opens, so a second server changes nothing.
    directory_exists(&db_args.path)?;
    let _lock = db::ServerLock::serving(&db_args.path)?;
    let db = Db::open_with(&db_args.path, args.synchronous, args.mmap_mib << 20)
        .map_err(|e| format!("cannot open database {}: {e}", db_args.path.display()))?;
    runtime.block_on(async move {
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let root = args
            .base_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local}"));
        // What the operator needs once; a closed or full stdout must not stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(
            out,
            "scimd {} listening on {scheme}://{local}",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(out, "SCIM base URL: {root}/scim/v2");
        if args.base_url.is_none() && local.ip().is_unspecified() {
            let _ = writeln!(
                out,
                "(listening on every address: give --base-url the name IdPs reach this server by, for the URLs it hands out)"
            );
        }
        let _ = writeln!(out, "database: {}", db_args.path.display());
        match &metrics_listener {
            Some(l) => {
                let _ = writeln!(out, "metrics: http://{}/metrics", l.local_addr()?);
            }
            None if args.metrics == MetricsSwitch::On => {
                let _ = writeln!(out, "metrics: {scheme}://{local}/metrics");
            }
            None => {}
        }
        if let Some(secret) = ops::admins::setup_link(&db).await? {
            // The admin UI is served at the root of a host, which a base URL with a path
            // (a proxy's prefix for IdPs and apps) is not: then the link is the listener's.
            let ui = match root.split_once("://").map(|(_, rest)| rest.trim_end_matches('/')) {
                Some(rest) if rest.contains('/') => format!("{scheme}://{local}"),
                _ => root.clone(),
            };
            let _ = writeln!(out, "first run: create the admin account at {ui}/setup?token={secret} (valid for one hour)");
        }
        let conn = db.conn()?;
        let no_token = db::tokens::list(&conn, None)?.iter().all(|t| t.revoked_at.is_some());
        let no_client = db::oauth::list_clients(&conn, None)?.iter().all(|c| c.revoked_at.is_some());
        if no_token && no_client {
            // The default tenant, or the first there is once an admin deleted it.
            let tenant = match tenants::list(&conn)?.into_iter().next() {
                Some(t) if t.slug != tenants::DEFAULT_SLUG => format!(" --tenant {}", t.slug),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "no SCIM token yet: create one in the web UI (SCIM connection) or with `scimd token create --db {}{tenant}`",
                db_args.path.display()
            );
        }
        // Group names are unique per tenant since migration 0010; groups stored before
        // that under one name were kept, not merged, and are named here until resolved.
        for clash in db::groups::name_clashes(&conn, None)? {
            tracing::warn!(
                tenant_id = clash.tenant_id,
                name = %clash.name,
                ids = %clash.ids.join(", "),
                "groups share a displayName, which must be unique per tenant: rename or delete all but one (in the IdP, or in the admin Groups page); until then a rename onto that name and a new group of that name get 409"
            );
        }
        drop(conn);
        // A damaged page shows only when something reads it, perhaps weeks later: each
        // page is checked once, in the background, so the operator hears of it at start;
        // at a low priority, so that the first answers and plans are not slowed by it.
        let app = crate::http::App::new(db.clone(), (&args).into());
        let checked = db.clone();
        let metrics = app.metrics();
        tokio::spawn(async move {
            let found = crate::server::in_background("scimd-check", move || {
                let conn = checked.conn()?;
                db::quick_check(&conn)
            })
            .await;
            // Also a metric: a log line alone is easily missed, for weeks.
            match found {
                Some(Ok(problems)) if problems.is_empty() => {
                    metrics.checked_pages(false);
                    tracing::info!("database quick check: every page reads")
                }
                Some(Ok(problems)) => {
                    metrics.checked_pages(true);
                    tracing::error!(
                        problems = %problems.join("; "),
                        "the database is damaged: run `scimd check`, and restore a backup (`scimd restore`) if it confirms"
                    )
                }
                Some(Err(e)) => {
                    metrics.checked_pages(true);
                    tracing::error!(
                        error = %e,
                        "the database could not be checked; it may be damaged: run `scimd check`"
                    )
                }
                None => {}
            }
        });
        let maintenance = db.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(6 * 3600));
            every.tick().await;
            loop {
                every.tick().await;
                let db = maintenance.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || db.optimize()).await {
                    tracing::warn!(error = %e, "PRAGMA optimize failed");
                }
            }
        });
        // A tenant deleted while the server was down, or whose deletion a stop interrupted.
        let purge = db.clone();
        tokio::spawn(async move {
            if let Err(e) = ops::admins::purge_deleted_tenants(&purge).await {
                tracing::warn!(error = %e, "deleting a deleted tenant's data failed");
            }
        });
        // Retention (grace-period deletions, archived members, audit entries, events), at
        // start and then hourly so a grace period ends within the hour it is due, and the
        // request inspector's requests past theirs.
        let retention = db.clone();
        let inspector = args.inspector();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                match ops::retention::daily(&retention, time::OffsetDateTime::now_utc()).await {
                    Ok(done) => tracing::info!(?done, "retention applied"),
                    Err(e) => tracing::warn!(error = %e, "applying retention failed"),
                }
                match ops::inspector::prune_all(&retention, inspector).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(requests = n, "pruned the request inspector's old requests"),
                    Err(e) => tracing::warn!(error = %e, "pruning the request inspector failed"),
                }
            }
        });
        let exiting = db.clone();
        let delivery = crate::http::webhooks::Delivery::spawn_recording(db, args.webhook_retry_schedule.0.clone(), app.metrics());
        // `--metrics-listen`: /metrics on a listener of its own, plain HTTP, stopped with
        // the main one.
        let metrics = match metrics_listener {
            Some(listener) => {
                let app = app.metrics_only();
                Some(tokio::spawn(crate::server::run(listener, app, crate::server::shutdown_signal())))
            }
            None => None,
        };
        let recording = app.recording();
        match tls {
            Some(tls) => crate::server::run_tls(listener, app, tls, crate::server::shutdown_signal()).await,
            None => crate::server::run(listener, app, crate::server::shutdown_signal()).await,
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        delivery.stop().await;
        if let Some(recording) = recording {
            recording.stop().await;
        }
        match exiting.empty_log_for_exit().await {
            Ok(true) => tracing::info!("stopped: every write is in the database file"),
            Ok(false) => tracing::info!("stopped: another process uses the database, so its log stays beside it"),
            Err(e) => tracing::warn!(error = %e, "stopped: the log could not be copied into the database; it stays beside it"),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Logs to standard error, through [`logs`]: the returned guard writes out what is still
/// buffered when dropped.
fn init_tracing(format: LogFormat, level: &str) -> logs::Flushing {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var("SCIMD_LOG").unwrap_or_default();
    // What was wrong with SCIMD_LOG, said once logging runs: silence would hide it.
    let (filter, refused) = match EnvFilter::try_new(&directives) {
        _ if directives.trim().is_empty() => (EnvFilter::new(level), None),
        Ok(filter) if !sets_a_level_for_scimd(&directives) => (
            filter,
            Some(format!(
                "SCIMD_LOG={directives:?} sets no level for scimd's own messages: after this warning, none of them, errors included, will be logged"
            )),
        ),
        Ok(filter) => (filter, None),
        Err(e) => (
            EnvFilter::new(level),
            Some(format!(
                "SCIMD_LOG={directives:?} does not parse ({e}): logging at {level} instead"
            )),
        ),
    };
    // The warning itself gets through, in the log's own format.
    let filter = match &refused {
        Some(_) => filter.add_directive("scimd::cli=warn".parse().expect("a valid directive")),
        None => filter,
    };
    let (writer, guard) = logs::buffered(std::io::stderr());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if let Some(refused) = refused {
        tracing::warn!("{refused}");
    }
    guard
}

/// Whether tracing directives give scimd's own messages a level: a bare level (`info`), or
/// one for a `scimd` target. `SCIMD_LOG=infp` is a target named "infp", and logs nothing.
fn sets_a_level_for_scimd(directives: &str) -> bool {
    directives
        .split(',')
        .map(str::trim)
        .any(|d| d.parse::<tracing::level_filters::LevelFilter>().is_ok() || d.starts_with("scimd"))
}

/// A raw HTTP/1.1 GET: the binary needs no HTTP client for one request. A server listening
/// on every address (`0.0.0.0:8080`, the container's `SCIMD_LISTEN`) is asked on loopback.
fn healthcheck(mut addr: SocketAddr, tls_cert: Option<std::path::PathBuf>) -> ExitCode {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let check = || -> std::io::Result<Vec<u8>> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.set_write_timeout(Some(Duration::from_secs(3)))?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut response = Vec::new();
        match &tls_cert {
            None => {
                let mut stream = stream;
                stream.write_all(request.as_bytes())?;
                stream.read_to_end(&mut response)?;
            }
            Some(cert) => {
                let config = crate::server::pinned_client(cert).map_err(std::io::Error::other)?;
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
                    .map_err(std::io::Error::other)?;
                let mut stream = rustls::StreamOwned::new(tls, stream);
                stream.write_all(request.as_bytes())?;
                // The server closes after its answer, maybe without a close_notify.
                match stream.read_to_end(&mut response) {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::UnexpectedEof
                            && !response.is_empty() => {}
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(response)
    };
    match check() {
        Ok(response) if response.starts_with(b"HTTP/1.1 200") => {
            println!("ok");
            ExitCode::SUCCESS
        }
        // A TLS record (an alert, 0x15, or a handshake, 0x16) where HTTP was expected.
        Ok(response) if tls_cert.is_none() && matches!(response.first(), Some(0x15 | 0x16)) => {
            eprintln!(
                "scimd: {addr} speaks HTTPS: give healthcheck the server's certificate with --tls-cert (or SCIMD_TLS_CERT, as the server reads it)"
            );
            ExitCode::FAILURE
        }
        Ok(response) => {
            eprintln!(
                "scimd: {addr} answered /healthz with an error: {}",
                health_failure(&response)
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("scimd: cannot reach {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a failing `/healthz` answer says: its status and its one-line reason
/// (`503 Service Unavailable: database not writable: …`).
fn health_failure(response: &[u8]) -> String {
    let response = String::from_utf8_lossy(response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    let status = status.strip_prefix("HTTP/1.1 ").unwrap_or(status);
    let said = match body.lines().next().map(str::trim) {
        Some(reason) if !reason.is_empty() => format!("{status}: {reason}"),
        _ => status.to_string(),
    };
    printable(&said).into_owned()
}

/// The id of the tenant `slug` names, or an error that says how to find the right one.
fn tenant_id(db: &Db, slug: &str) -> Result<i64, Box<dyn std::error::Error>> {
    match tenants::by_slug(&*db.conn()?, slug) {
        Ok(t) => Ok(t.id),
        Err(DbError::NotFound) => {
            Err(format!("no tenant {slug:?} (see `scimd tenant list`)").into())
        }
        Err(e) => Err(e.into()),
    }
}

fn token(db: &Db, cmd: TokenCommand) -> CliResult {
    let conn = db.conn()?;
    match cmd {
        TokenCommand::Create {
            tenant,
            name,
            expires_in_days,
        } => {
            let tenant_id = tenant_id(db, &tenant)?;
            let expires_at = expires_in_days.map(|days| datetime::in_days(days.into()));
            let issued = block_on(ops::tokens::issue(
                db,
                &Actor::cli(),
                tenant_id,
                name.clone(),
                expires_at,
            ))?;
            let (id, new) = (issued.id, issued.token);
            println!("{}", new.secret);
            eprintln!(
                "token {id} ({name}) created for tenant {tenant}; it is shown only this once"
            );
        }
        TokenCommand::List { tenant } => {
            let filter = tenant.as_deref().map(|t| tenant_id(db, t)).transpose()?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "ID\tTENANT\tNAME\tPREFIX\tCREATED\tLAST USED\tEXPIRES\tSTATE"
            )?;
            for t in db::tokens::list(&conn, filter)? {
                let state = t.state();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}…\t{}\t{}\t{}\t{state}",
                    t.id,
                    t.tenant,
                    t.name,
                    t.prefix,
                    t.created_at,
                    t.last_used_at.as_deref().unwrap_or("never"),
                    t.expires_at.as_deref().unwrap_or("never"),
                )?;
            }
        }
        TokenCommand::Revoke { id } => {
            let live = db::tokens::list(&conn, None)?
                .into_iter()
                .find(|t| t.id == id && t.revoked_at.is_none());
            let Some(token) = live else {
                return Err(format!("no active token with id {id}").into());
            };
            let tenant_id = tenant_id(db, &token.tenant)?;
            block_on(ops::tokens::revoke(db, &Actor::cli(), tenant_id, id))?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

fn tenant(db: &Db, cmd: TenantCommand) -> CliResult {
    let conn = db.conn()?;
    match cmd {
        TenantCommand::Create { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let t = block_on(ops::admins::create_tenant(db, &Actor::cli(), slug, name))?;
            println!("tenant {} created", t.slug);
        }
        TenantCommand::Delete { slug, yes } => {
            let t = tenants::by_slug(&conn, &slug).map_err(|_| format!("no tenant {slug:?}"))?;
            let held = tenants::contents(&conn, t.id)?;
            drop(conn);
            let what = format!(
                "{} users, {} groups, {} members ({} active), {} events, {} SCIM tokens, {} OAuth apps, {} API keys, {} webhook endpoints",
                held.users,
                held.groups,
                held.members,
                held.active_members,
                held.events,
                held.scim_tokens,
                held.oauth_clients,
                held.api_keys,
                held.webhook_endpoints
            );
            if !yes {
                return Err(format!("tenant {slug} holds {what}; add --yes to delete it").into());
            }
            block_on(ops::admins::delete_tenant(db, &Actor::cli(), slug.clone()))?;
            block_on(ops::admins::purge_deleted_tenants(db))?;
            println!("tenant {slug} (id {}) deleted: {what}", t.id);
            return Ok(());
        }
        TenantCommand::Set(args) => return directory::tenant_set(db, args),
        TenantCommand::Show { tenant } => return directory::tenant_show(db, &tenant),
        TenantCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "SLUG\tNAME\tCREATED")?;
            for t in tenants::list(&conn)? {
                writeln!(out, "{}\t{}\t{}", t.slug, t.name, t.created_at)?;
            }
        }
    }
    Ok(())
}

fn backup(db: &Db, file: &std::path::Path) -> CliResult {
    if file.exists() {
        return Err(format!("{} exists already; choose a new file", file.display()).into());
    }
    let pages =
        db::backup(db, file).map_err(|e| format!("backup to {} failed: {e}", file.display()))?;
    println!("backed up {pages} pages to {}", file.display());
    Ok(())
}

fn restore(db: &std::path::Path, file: &std::path::Path) -> CliResult {
    let restored = db::restore(file, db).map_err(|e| format!("restore refused: {e}"))?;
    adopt_owner(db)?;
    println!(
        "restored {} from {} ({} pages); `scimd check` confirms it",
        db.display(),
        file.display(),
        restored.pages
    );
    match &restored.set_aside {
        Some(aside) if restored.replaced_read => println!(
            "the database replaced is kept as {} (remove it, with its -wal and -shm, once the restore is confirmed)",
            aside.display()
        ),
        Some(aside) => println!(
            "the database replaced could not be read; it is kept as {}",
            aside.display()
        ),
        None => {}
    }
    if !restored.replaced {
        println!(
            "there was no database at {}: new events are numbered {} past the backup's, so none repeats an id or a seq apps or webhook receivers saw from the server the backup came from",
            db.display(),
            db::events::RESTORE_MARGIN
        );
    } else if !restored.replaced_read {
        println!(
            "the database replaced could not be read: new events are numbered {} past the backup's, so none repeats an id or a seq apps or webhook receivers saw",
            db::events::RESTORE_MARGIN
        );
    }
    println!(
        "apps following the events feed from before the restore get 410 and list again: the restore may have undone changes they saw"
    );
    Ok(())
}

fn check(args: &DbArgs) -> CliResult {
    if !args.path.is_file() {
        return Err(format!("no database at {}", args.path.display()).into());
    }
    // An empty file is what a restore or a copy cut short leaves: no database, nothing
    // sound about it (SQLite would read it as a new, empty database).
    if std::fs::metadata(&args.path)?.len() == 0 {
        return Err(format!("{} is empty: not a database", args.path.display()).into());
    }
    // Checked as it is, read only: neither upgraded (a check changes nothing, and an older
    // scimd must still open what it checked) nor needing to open for use (a damaged one
    // may not), so the problems are listed rather than the first one.
    let conn = db::open_as_is(&args.path)?;
    let mut problems = match db::check(&conn) {
        Ok(found) => found,
        Err(e) => vec![format!("the integrity check stopped: {e}")],
    };
    let version = db::schema_version(&conn).unwrap_or(0);
    let mut chain = crate::auth::chain::Verifier::whole_log();
    let audit = if version == db::SCHEMA_VERSION {
        match db::audit::verify(&conn, None, &mut chain) {
            Ok(Ok(())) => {}
            Ok(Err(b)) => problems.push(format!("the audit log does not verify: {b}")),
            Err(e) => problems.push(format!("the audit log cannot be read: {e}")),
        }
        format!("{} audit entries verified", chain.entries())
    } else if version > db::SCHEMA_VERSION {
        format!(
            "the audit log is not verified: schema version {version}, newer than this scimd's {} (the scimd that wrote it verifies it)",
            db::SCHEMA_VERSION
        )
    } else {
        format!(
            "the audit log is not verified: schema version {version}, this scimd's is {} (the scimd that wrote it verifies it, or this one once `scimd serve` has upgraded it)",
            db::SCHEMA_VERSION
        )
    };
    if problems.is_empty() {
        println!("ok: integrity and foreign keys hold; {audit}");
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    let n = problems.len();
    Err(format!("{n} problem{} found", if n == 1 { "" } else { "s" }).into())
}

/// The first line of standard input, without its line ending: admin `username`'s new
/// password, held to the policy.
fn read_password(username: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut line = String::new();
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password (input is shown; pipe it in to hide it): ");
    }
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    crate::auth::passwords::check_policy(username, &password)?;
    Ok(password)
}

fn admin(db: &Db, cmd: AdminCommand) -> CliResult {
    let conn = db.conn()?;
    match cmd {
        AdminCommand::Create { username } => {
            let password = read_password(&username)?;
            let username = username.trim().to_string();
            block_on(ops::admins::create(
                db,
                &Actor::cli(),
                username.clone(),
                password,
            ))?;
            println!("admin {} created", username.trim());
        }
        AdminCommand::ResetPassword { username } => {
            let password = read_password(&username)?;
            let name = username.trim().to_string();
            match block_on(ops::admins::set_password(db, &Actor::cli(), name, password)) {
                Ok(()) => {
                    println!(
                        "password of {} changed; their sessions ended",
                        username.trim()
                    );
                }
                Err(DbError::NotFound) => {
                    return Err(format!("no admin called {username:?}").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        AdminCommand::Delete { username } => {
            let name = username.trim();
            let id = db::admins::list(&conn)?
                .into_iter()
                .find(|a| a.username == name)
                .ok_or_else(|| format!("no admin called {username:?}"))?
                .id;
            block_on(ops::admins::delete(db, &Actor::cli(), id))?;
            println!("admin {name} deleted; their sessions ended");
        }
        AdminCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "USERNAME\tCREATED\tLAST LOGIN")?;
            for a in db::admins::list(&conn)? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    a.username,
                    a.created_at,
                    a.last_login_at.as_deref().unwrap_or("never")
                )?;
            }
        }
    }
    Ok(())
}

/// The row id of the client `id` names: a row id or a client id.
fn oauth_client_row(db: &Db, id: &str) -> Result<i64, Box<dyn std::error::Error>> {
    if let Ok(n) = id.parse::<i64>() {
        return Ok(n);
    }
    match db::oauth::client_by_client_id(&*db.conn()?, id)? {
        Some((c, _)) => Ok(c.id),
        None => Err(format!("no OAuth client {id:?} (see `scimd oauth list`)").into()),
    }
}

fn oauth(db: &Db, cmd: OAuthCommand) -> CliResult {
    use crate::auth::oauth::GrantType;
    let conn = db.conn()?;
    match cmd {
        OAuthCommand::Create {
            tenant,
            name,
            redirect_uris,
            grant_types,
        } => {
            let tenant_id = tenant_id(db, &tenant)?;
            let mut kinds = grant_types
                .iter()
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<Vec<_>, _>>()?;
            if kinds.is_empty() {
                kinds.push(if redirect_uris.is_empty() {
                    GrantType::ClientCredentials
                } else {
                    GrantType::AuthorizationCode
                });
            }
            let registration = ops::oauth::Registration {
                name,
                grant_types: kinds,
                redirect_uris,
            };
            let cli = Actor::cli();
            let created = ops::oauth::create_client(db, &cli, tenant_id, registration);
            let ops::oauth::WithSecret { client, secret } = block_on(created)?;
            println!("client_id={}", client.client_id);
            println!("client_secret={secret}");
            eprintln!(
                "OAuth client {} ({}) created for tenant {tenant} with {}; the secret is shown only this once",
                client.id,
                client.name,
                client.grant_types_text()
            );
        }
        OAuthCommand::List { tenant } => {
            let filter = tenant.as_deref().map(|t| tenant_id(db, t)).transpose()?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "ID\tTENANT\tNAME\tCLIENT ID\tGRANTS\tREDIRECT URIS\tCREATED\tSTATE"
            )?;
            for c in db::oauth::list_clients(&conn, filter)? {
                let state = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{state}",
                    c.id,
                    c.tenant,
                    c.name,
                    c.client_id,
                    c.grant_types_text().replace(' ', ","),
                    c.redirect_uris.join(" "),
                    c.created_at,
                )?;
            }
        }
        OAuthCommand::Revoke { id } => {
            let row = oauth_client_row(db, &id)?;
            match block_on(ops::oauth::revoke_client(db, &Actor::cli(), None, row)) {
                Ok(c) => println!(
                    "OAuth client {} ({}) revoked with all its tokens",
                    c.id, c.name
                ),
                Err(DbError::NotFound) => {
                    return Err(format!("no active OAuth client {id:?}").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        OAuthCommand::RotateSecret { id } => {
            let row = oauth_client_row(db, &id)?;
            match block_on(ops::oauth::rotate_secret(db, &Actor::cli(), None, row)) {
                Ok(ops::oauth::WithSecret { client: c, secret }) => {
                    println!("client_id={}", c.client_id);
                    println!("client_secret={secret}");
                    eprintln!(
                        "the secret of OAuth client {} ({}) was replaced; the old one stopped working",
                        c.id, c.name
                    );
                }
                Err(DbError::NotFound) => {
                    return Err(format!("no active OAuth client {id:?}").into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{health_failure, printable};

    #[test]
    fn a_failing_health_check_says_the_status_and_the_reason() {
        let answer = |s: &str| health_failure(s.as_bytes());
        assert_eq!(
            answer(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 70\r\n\r\n\
                 database not writable: disk I/O error since 2026-01-02T03:04:05Z\n"
            ),
            "503 Service Unavailable: database not writable: disk I/O error since 2026-01-02T03:04:05Z"
        );
        assert_eq!(
            answer("HTTP/1.1 502 Bad Gateway\r\n\r\n"),
            "502 Bad Gateway"
        );
        assert_eq!(
            answer("HTTP/1.1 503 x\r\n\r\n\u{1b}]0;t\u{7}\n"),
            "503 x: \\u{1b}]0;t\\u{7}"
        );
        assert_eq!(answer(""), "");
    }

    #[test]
    fn escape_sequences_from_an_idp_reach_the_terminal_as_text() {
        assert_eq!(printable("Ada\tLovelace\n"), "Ada\tLovelace\n");
        assert_eq!(
            printable("\u{1b}]0;pwned\u{7}Ada\u{9b}2J"),
            "\\u{1b}]0;pwned\\u{7}Ada\\u{9b}2J"
        );
    }
}
