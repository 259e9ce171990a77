//! Load benchmark: the real scimd server driven over HTTP by concurrent keep-alive clients.
//! Run by hand; results are recorded in `BENCHMARKS.md`.
//!
//! ```sh
//! cargo run --release --example loadbench                       # in-process, 1 000 and 100 000 users
//! cargo run --release --example loadbench -- --help
//! cargo run --release --example loadbench -- --users 100000 --only "Groups/{big}"
//! # Like a client would: a separately started server, its own RSS and CPU.
//! loadbench --users 100000 --seed-only /tmp/bench.db          # prints the token
//! scimd serve --db /tmp/bench.db --listen 127.0.0.1:8080 &
//! loadbench --users 100000 --target http://127.0.0.1:8080 --token scimd_… --pid $!
//! ```
//!
//! In-process (the default), for each directory size it opens a fresh SQLite file (default
//! durability, `FULL`), seeds it straight through the `db` layer in one transaction — the
//! users (each body through `resource::normalize`, each row through `db::users::create`,
//! exactly as a POST stores it), a group holding every one of them, a 10-member group, and
//! spare users that the membership scenarios add and remove — then syncs them into members
//! as `scimd sync` does (a directory pushed through scimd has one per user), refreshes the
//! planner statistics as the server does at start (`Db::optimize`), and starts the server on
//! `127.0.0.1:0`. Seeding bypasses HTTP because a 100 000-user directory would otherwise
//! take minutes of fsync'd POSTs; the write scenarios below measure POST itself.
//!
//! With `--target` it drives a `scimd serve` started separately on a database that
//! `--seed-only` seeded the same way, finding the users and groups over HTTP; with `--pid`
//! the server's own peak RSS and CPU are reported per scenario.
//!
//! Each scenario: one request checked for the right answer, a short warm-up, then
//! `--clients` tasks sending requests back to back until `--seconds` have passed or
//! `--max-requests` were sent. Latency is measured by the client, from sending the request
//! to the last byte of the body. The client runs on its own single-threaded runtime. Peak
//! RSS is `VmHWM` (in-process: server and client together, so an upper bound for the
//! server), reset before each scenario through `clear_refs`. Before the scenarios, the raw
//! SQLite ceiling of the same disk: 100-row `synchronous=FULL` transactions, in rows/s.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use scimd::config::HttpConfig;
use scimd::db::groups::{MemberKind, ResolvedMember};
use scimd::db::{self, Db, Durability};
use scimd::scim::resource::normalize;
use scimd::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

type BoxError = Box<dyn Error + Send + Sync>;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Members of the small group.
const SMALL_GROUP: usize = 10;

/// Load benchmark for scimd: real server in-process, real HTTP on loopback.
#[derive(Parser)]
struct Args {
    /// Directory sizes, each run in a fresh database: users in the directory, all of
    /// them members of the big group.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 100_000])]
    users: Vec<u64>,

    /// Concurrent keep-alive clients (16 is the issue's standard).
    #[arg(long, default_value_t = 16)]
    clients: usize,

    /// Seconds each scenario is measured for, after its warm-up.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,

    /// Most requests one scenario may send (the full GET of the big group is capped lower).
    #[arg(long, default_value_t = 100_000)]
    max_requests: u64,

    /// Commit durability (`full` is the server's default: every write commit is fsync'd).
    #[arg(long, value_enum, default_value = "full")]
    synchronous: Durability,

    /// Run only the scenarios whose name contains one of these strings (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Where the temporary databases go (default: the system temp directory). Use the
    /// disk you care about: FULL commits wait for it.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Leave each database in place after its run (the path is printed), e.g. to look at
    /// query plans with `sqlite3`.
    #[arg(long)]
    keep_db: bool,

    /// Only seed a database at this path (one `--users` size, one spare user per client),
    /// print its token, and exit: for a server started separately and `--target`.
    #[arg(long)]
    seed_only: Option<PathBuf>,

    /// Drive a separately started `scimd serve` at this root URL (e.g.
    /// `http://127.0.0.1:8080`) instead of one in this process. Its database must have been
    /// seeded by `--seed-only` with the same `--users` and at least as many clients.
    #[arg(long, requires = "token")]
    target: Option<String>,

    /// The SCIM token for `--target` (printed by `--seed-only`).
    #[arg(long)]
    token: Option<String>,

    /// The `--target` server's process id: its own peak RSS and CPU are reported.
    #[arg(long)]
    pid: Option<u32>,

    /// In-process: the request inspector's kept requests per tenant (the server's default;
    /// 0 turns recording off, like `scimd serve --inspector-keep 0`).
    #[arg(long, default_value_t = 1000)]
    inspector_keep: u32,

    /// Seconds the raw SQLite ceiling is measured for (0 skips it).
    #[arg(long, default_value_t = 2.0)]
    ceiling_seconds: f64,

    /// Rounds of the reads whose target is a share of the floor, each measured between two
    /// measurements of the floor (0 skips them). A VM's speed drifts within minutes; a
    /// share against the floor measured beside it cancels the drift that one against the
    /// floor at the start of the run keeps.
    #[arg(long, default_value_t = 3)]
    share_rounds: usize,
}

/// The first scenario: what any answer costs (HTTP, routing, no database).
const FLOOR: &str = "GET /ServiceProviderConfig (the floor)";

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let clients = args.clients.clamp(1, 256);
    if let Some(path) = &args.seed_only {
        let n = *args.users.first().ok_or("--users: one size to seed")?;
        let db = Db::open(path, args.synchronous)?;
        let started = Instant::now();
        let seeded = seed(&db, n, clients)?;
        println!(
            "Seeded {n} users + {clients} spares in {:.1}s into {}\ntoken: {}",
            started.elapsed().as_secs_f64(),
            path.display(),
            seeded.token
        );
        return Ok(());
    }
    println!(
        "# scimd loadbench: {clients} clients, {}s per scenario, synchronous={:?}, {}\n",
        args.seconds,
        args.synchronous,
        match &args.target {
            Some(t) => format!("server at {t} (pid {:?})", args.pid),
            None => format!("server in-process, inspector keep {}", args.inspector_keep),
        }
    );
    if args.ceiling_seconds > 0.0 {
        sqlite_ceiling(&args)?;
    }
    if let Some(target) = &args.target {
        let n = *args
            .users
            .first()
            .ok_or("--users: the size the target was seeded with")?;
        return run_target(&args, target, n, clients);
    }
    for &n in &args.users {
        run_size(&args, n, clients)?;
    }
    Ok(())
}

/// What the disk allows: 100-row `synchronous=FULL` WAL transactions into a scratch table
/// on the same disk, back to back for `--ceiling-seconds`. Durable writes are reported as a
/// share of this.
fn sqlite_ceiling(args: &Args) -> Result<(), BoxError> {
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let conn = rusqlite::Connection::open(dir.path().join("ceiling.db"))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    )?;
    let row = "x".repeat(600);
    let (started, mut commits) = (Instant::now(), 0u64);
    while started.elapsed().as_secs_f64() < args.ceiling_seconds {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut insert = conn.prepare_cached("INSERT INTO t (v) VALUES (?1)")?;
            for _ in 0..100 {
                insert.execute([&row])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        commits += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "SQLite ceiling on this disk: {:.0} rows/s in 100-row synchronous=FULL transactions \
         ({:.0} commits/s, 600-byte rows).\n",
        commits as f64 * 100.0 / secs,
        commits as f64 / secs
    );
    Ok(())
}

/// Finds what `--seed-only` left in the target's directory, over HTTP.
fn discover(bench: &Bench, rt: &tokio::runtime::Runtime, n: u64) -> Result<Seeded, BoxError> {
    rt.block_on(async {
        let (mut user_ids, mut spare_ids, mut cursors) = (Vec::new(), Vec::new(), Vec::new());
        let mut cursor = String::new();
        loop {
            let page = bench
                .get_json(&format!("/Users?count=1000&attributes=userName&cursor={cursor}"))
                .await?;
            cursors.push((cursor.clone(), user_ids.len() + spare_ids.len()));
            for r in page["Resources"].as_array().ok_or("no Resources")? {
                let id = r["id"].as_str().ok_or("no id")?.to_string();
                // Users the POST scenario of an earlier run created ("new…") are left out.
                match r["userName"].as_str() {
                    Some(u) if u.starts_with("spare") => spare_ids.push(id),
                    Some(u) if u.starts_with("user") => user_ids.push(id),
                    _ => {}
                }
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        if user_ids.len() as u64 != n || spare_ids.len() < bench.clients {
            return Err(format!(
                "the target holds {} users and {} spares, want {n} and at least {}: seed it with --seed-only",
                user_ids.len(),
                spare_ids.len(),
                bench.clients
            )
            .into());
        }
        let listed = user_ids.len() + spare_ids.len();
        // The deepest cursor with a full page of 100 after it.
        let deep_cursor = cursors
            .iter()
            .rev()
            .find(|(_, before)| listed - before >= 100)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        let group = |name: &'static str| async move {
            let filter: String = form_urlencoded::byte_serialize(
                format!("displayName eq \"{name}\"").as_bytes(),
            )
            .collect();
            let found = bench
                .get_json(&format!("/Groups?filter={filter}&excludedAttributes=members"))
                .await?;
            found["Resources"][0]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| BoxError::from(format!("no group {name}")))
        };
        Ok(Seeded {
            token: bench.token.clone(),
            user_ids,
            deep_cursor,
            spare_ids,
            big_group: group("Everyone").await?,
            small_group: group("Ten people").await?,
        })
    })
}

fn run_target(args: &Args, target: &str, n: u64, clients: usize) -> Result<(), BoxError> {
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _runtime = client_rt.enter();
    let mut bench = Bench {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(clients)
            .build_http(),
        base: format!("{}/scim/v2", target.trim_end_matches('/')),
        token: args.token.clone().unwrap_or_default(),
        clients,
        seconds: args.seconds,
        max_requests: args.max_requests,
        pid: args.pid,
    };
    let started = Instant::now();
    let seeded = Arc::new(discover(&bench, &client_rt, n)?);
    println!(
        "## {n} users (server at {target})\n\nFound {n} users, {} spares and the two groups over HTTP in {:.1}s; server RSS {} MiB.\n",
        seeded.spare_ids.len(),
        started.elapsed().as_secs_f64(),
        rss_mib(bench.pid, "VmRSS"),
    );
    bench.base = format!("{}/scim/v2", target.trim_end_matches('/'));
    print_header(bench.pid.is_some());
    for scenario in scenarios(&seeded, n, clients) {
        if selected(args, &scenario.name) {
            client_rt.block_on(bench.run(scenario, true))?;
        }
    }
    shares(&bench, &client_rt, args, || scenarios(&seeded, n, clients))?;
    println!(
        "\nServer peak RSS (VmHWM since the last reset) {} MiB, RSS now {} MiB.\n",
        rss_mib(bench.pid, "VmHWM"),
        rss_mib(bench.pid, "VmRSS")
    );
    Ok(())
}

/// Whether `--only` leaves scenario `name` in.
fn selected(args: &Args, name: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| name.contains(o))
}

/// `--share-rounds`: each read whose target is a share of the floor, measured between two
/// measurements of the floor, round after round; its share in a round is its rate over
/// the mean of the two floors beside it. `all` builds the scenarios afresh (each run
/// consumes one).
fn shares(
    bench: &Bench,
    rt: &tokio::runtime::Runtime,
    args: &Args,
    all: impl Fn() -> Vec<Scenario>,
) -> Result<(), BoxError> {
    let wanted: Vec<String> = all()
        .into_iter()
        .filter(|s| s.share && selected(args, &s.name))
        .map(|s| s.name)
        .collect();
    if args.share_rounds == 0 || wanted.is_empty() {
        return Ok(());
    }
    let rate = |name: &str| -> Result<f64, BoxError> {
        let sc = all()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or("no such scenario")?;
        Ok(rt.block_on(bench.run(sc, false))?[0])
    };
    let mut shares = vec![Vec::new(); wanted.len()];
    for _ in 0..args.share_rounds {
        let mut before = rate(FLOOR)?;
        for (name, shares) in wanted.iter().zip(&mut shares) {
            let measured = rate(name)?;
            let after = rate(FLOOR)?;
            shares.push(measured / ((before + after) / 2.0));
            before = after;
        }
    }
    println!(
        "\nEach against the floor measured just before and after it, {} rounds:\n",
        args.share_rounds
    );
    println!("| scenario | share of the floor, each round | median |");
    println!("|---|---|---:|");
    let percent = |f: f64| format!("{:.0} %", f * 100.0);
    for (name, mut shares) in wanted.into_iter().zip(shares) {
        let rounds: Vec<String> = shares.iter().map(|&f| percent(f)).collect();
        shares.sort_by(f64::total_cmp);
        let median = match shares.len() % 2 {
            1 => shares[shares.len() / 2],
            _ => (shares[shares.len() / 2 - 1] + shares[shares.len() / 2]) / 2.0,
        };
        println!("| {name} | {} | {} |", rounds.join(", "), percent(median));
    }
    Ok(())
}

fn print_header(server_cpu: bool) {
    if server_cpu {
        println!(
            "| scenario | clients | requests | req/s | p50 ms | p95 ms | p99 ms | bytes/resp | server peak RSS MiB (+rise) | server CPU % |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!(
            "| scenario | clients | requests | req/s | p50 ms | p95 ms | p99 ms | bytes/resp | peak RSS MiB (+rise) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
}

/// What seeding left in the database.
struct Seeded {
    token: String,
    /// The directory's users (all in the big group), in insertion order.
    user_ids: Vec<String>,
    /// A cursor with a full page of 100 after it, deep in the list.
    deep_cursor: String,
    /// Users in no group, one per client, for membership changes.
    spare_ids: Vec<String>,
    big_group: String,
    small_group: String,
}

fn user_name(i: u64) -> String {
    format!("user{i:07}@example.com")
}

/// An Okta-style user body.
fn user_body(user_name: &str, i: u64) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "externalId": format!("00u{i:010}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}")},
        "displayName": format!("Given{i} Family{i}"),
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "locale": "en-US",
        "active": true
    })
}

fn seed(db: &Db, users: u64, spares: usize) -> Result<Seeded, BoxError> {
    let mut conn = db.conn()?;
    let tenant = db::tenants::by_slug(&conn, db::tenants::DEFAULT_SLUG)?.id;
    let token = scimd::auth::tokens::generate();
    db::tokens::insert(&conn, tenant, "loadbench", &token.prefix, &token.hash, None)?;
    let seeded = db::write_sync(&mut conn, |tx| {
        let add_user = |name: &str, i: u64| -> Result<(String, i64), BoxError> {
            let data = normalize(&USER_RESOURCE, user_body(name, i))?;
            let row = db::users::create(tx, tenant, &data)?;
            Ok((row.id, row.pk))
        };
        let (mut user_ids, mut user_pks) = (Vec::new(), Vec::new());
        for i in 0..users {
            let (id, pk) = add_user(&user_name(i), i)?;
            user_ids.push(id);
            user_pks.push(pk);
        }
        let mut spare_ids = Vec::new();
        for k in 0..spares {
            let i = 1_000_000_000 + k as u64;
            spare_ids.push(add_user(&format!("spare{k}@example.com"), i)?.0);
        }
        let add_group = |name: &str, pks: &[i64]| -> Result<String, BoxError> {
            let data = normalize(
                &GROUP_RESOURCE,
                json!({"schemas": [GROUP_URN], "displayName": name}),
            )?;
            let row = db::groups::create(tx, tenant, &data)?;
            let members: Vec<ResolvedMember> = pks
                .iter()
                .map(|&pk| ResolvedMember {
                    kind: MemberKind::User,
                    pk,
                    display: None,
                })
                .collect();
            db::groups::add_members(tx, row.pk, &members)?;
            Ok(row.id)
        };
        let big_group = add_group("Everyone", &user_pks)?;
        let small = &user_pks[..SMALL_GROUP.min(user_pks.len())];
        let small_group = add_group("Ten people", small)?;
        // Resume after the user 200 from the end: a full page remains, then more.
        let after = user_pks[user_pks.len().saturating_sub(200)..]
            .first()
            .copied()
            .unwrap_or(0);
        let deep_cursor = scimd::scim::list::encode_cursor(
            None,
            false,
            &scimd::scim::list::Position {
                key: serde_json::Value::Null,
                pk: after,
            },
        );
        Ok::<_, BoxError>(Seeded {
            token: token.secret,
            user_ids,
            deep_cursor,
            spare_ids,
            big_group,
            small_group,
        })
    })?;
    drop(conn);
    // A directory an IdP pushed through scimd has a member for each user (and the events
    // and audit entries that made them): sync them, as `scimd sync` does, so the write
    // scenarios find what production has. Without members a PATCH of a seeded user
    // created its member, and nothing a member costs (the guard, role changes) showed.
    let run = scimd::ops::block_on(scimd::ops::reconcile::force(
        db,
        &scimd::model::Actor::cli(),
        tenant,
        false,
    ))?;
    eprintln!("# seeded members by a sync: {}", run.applied_in());
    // What `scimd serve` does at start and every 6 hours: a directory that grew to this
    // size in production would have statistics like these.
    db.optimize()?;
    Ok(seeded)
}

fn run_size(args: &Args, n: u64, clients: usize) -> Result<(), BoxError> {
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let path = dir.path().join("scimd.db");
    let db = Db::open(&path, args.synchronous)?;
    let started = Instant::now();
    let seeded = Arc::new(seed(&db, n, clients)?);
    let seed_secs = started.elapsed().as_secs_f64();
    let analysed: i64 = db
        .conn()?
        .query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))
        .unwrap_or(0);
    let db_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
    println!(
        "## {n} users\n\nSeeded {n} users + {} spares, a group of {n} and a group of {SMALL_GROUP} \
         in {seed_secs:.1}s (one transaction); database {db_mib:.0} MiB; \
         {analysed} sqlite_stat1 rows; RSS after seeding {} MiB.\n",
        seeded.spare_ids.len(),
        rss_mib(None, "VmRSS"),
    );

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    // The app starts its background tasks (the request inspector's writer) on the runtime.
    let app = {
        let _runtime = server_rt.enter();
        let mut config = HttpConfig::default();
        config.inspector.keep = args.inspector_keep;
        scimd::http::App::new(db.clone(), config)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(scimd::server::run(listener, app, async {
        let _ = stopped.await;
    }));

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bench = Bench {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(clients)
            .build_http(),
        base: format!("http://{addr}/scim/v2"),
        token: seeded.token.clone(),
        clients,
        seconds: args.seconds,
        max_requests: args.max_requests,
        pid: None,
    };
    print_header(false);
    for scenario in scenarios(&seeded, n, clients) {
        if selected(args, &scenario.name) {
            client_rt.block_on(bench.run(scenario, true))?;
        }
    }
    shares(&bench, &client_rt, args, || scenarios(&seeded, n, clients))?;
    println!(
        "\nProcess peak RSS (VmHWM since the last reset) {} MiB.\n",
        rss_mib(None, "VmHWM")
    );
    let _ = stop.send(());
    server_rt.block_on(server)?;
    drop(db);
    if args.keep_db {
        println!("Kept {}\n", dir.keep().join("scimd.db").display());
    }
    Ok(())
}

/// One request to send: method, path under the SCIM base, JSON body, and which row of the
/// scenario's table it counts towards.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    row: usize,
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            method: Method::GET,
            path,
            body: None,
            row: 0,
        }
    }

    fn with(method: Method, path: String, body: Value) -> Call {
        Call {
            method,
            path,
            body: Some(body),
            row: 0,
        }
    }
}

type MakeCall = Box<dyn Fn(usize, u64) -> Call + Send + Sync>;
type Check = Box<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

struct Scenario {
    name: String,
    /// Table rows when requests alternate between kinds (e.g. add, remove).
    rows: Vec<String>,
    /// Builds request `i` of client `c`.
    make: MakeCall,
    expect: StatusCode,
    /// What the first response's body must satisfy.
    check: Option<Check>,
    /// Each client stops only after a multiple of this many requests (add+remove pairs).
    batch: u64,
    clients: Option<usize>,
    max_requests: Option<u64>,
    /// Whose target is a share of the floor's rate (issue #12: ≥ 50 %).
    share: bool,
}

impl Scenario {
    fn new(
        name: impl Into<String>,
        make: impl Fn(usize, u64) -> Call + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        Scenario {
            rows: vec![name.clone()],
            name,
            make: Box::new(make),
            expect: StatusCode::OK,
            check: None,
            batch: 1,
            clients: None,
            max_requests: None,
            share: false,
        }
    }

    fn share(mut self) -> Self {
        self.share = true;
        self
    }

    fn expect(mut self, status: StatusCode) -> Self {
        self.expect = status;
        self
    }

    fn check(mut self, f: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.check = Some(Box::new(f));
        self
    }
}

fn total_is(want: u64) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |v| match v["totalResults"].as_u64() {
        Some(t) if t == want => Ok(()),
        other => Err(format!("totalResults {other:?}, want {want}")),
    }
}

fn items_are(want: u64) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |v| match v["Resources"].as_array().map(Vec::len) {
        Some(n) if n as u64 == want => Ok(()),
        other => Err(format!("{other:?} resources, want {want}")),
    }
}

fn members_are(want: Option<usize>) -> impl Fn(&Value) -> Result<(), String> + Send + Sync {
    move |v| {
        let got = v.get("members").and_then(Value::as_array).map(Vec::len);
        if got == want {
            Ok(())
        } else {
            Err(format!("members {got:?}, want {want:?}"))
        }
    }
}

/// Spreads requests over `n` items without a random number generator.
fn pick(c: usize, i: u64, n: usize) -> usize {
    ((i.wrapping_mul(2_654_435_761) ^ (c as u64).wrapping_mul(40_503)) % n as u64) as usize
}

fn filter_query(filter: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("/Users?filter={encoded}")
}

fn member_patch(op: &str, user_id: &str) -> Value {
    let op = if op == "add" {
        json!({"op": "add", "path": "members", "value": [{"value": user_id}]})
    } else {
        json!({"op": "remove", "path": format!("members[value eq \"{user_id}\"]")})
    };
    json!({"schemas": [PATCH_URN], "Operations": [op]})
}

/// Alternates adding and removing client `c`'s spare user: one member changes, the rest of
/// the group is untouched.
fn group_membership(label: &str, seeded: &Arc<Seeded>, group: String) -> Scenario {
    let s = seeded.clone();
    let mut sc = Scenario::new(label, move |c, i| {
        let spare = &s.spare_ids[c % s.spare_ids.len()];
        let (op, row) = if i % 2 == 0 {
            ("add", 0)
        } else {
            ("remove", 1)
        };
        Call {
            method: Method::PATCH,
            path: format!("/Groups/{group}"),
            body: Some(member_patch(op, spare)),
            row,
        }
    });
    sc.rows = vec![format!("{label}: add"), format!("{label}: remove")];
    sc.batch = 2;
    // Answered as IdPs prefer: 204 with the new ETag, no body.
    sc.expect(StatusCode::NO_CONTENT)
}

fn scenarios(seeded: &Arc<Seeded>, n: u64, clients: usize) -> Vec<Scenario> {
    let users = seeded.user_ids.len();
    let mut out = Vec::new();

    // The floor: what any answer costs here (HTTP, routing, no database).
    out.push(Scenario::new(FLOOR, |_, _| {
        Call::get("/ServiceProviderConfig".into())
    }));

    out.push(
        Scenario::new("GET /Users?filter=userName eq (hit)", move |c, i| {
            let k = pick(c, i, users) as u64;
            Call::get(filter_query(&format!("userName eq \"{}\"", user_name(k))))
        })
        .check(total_is(1))
        .share(),
    );
    out.push(
        Scenario::new("GET /Users?filter=userName eq (miss)", |c, i| {
            Call::get(filter_query(&format!(
                "userName eq \"nobody{c}-{i}@example.com\""
            )))
        })
        .check(total_is(0)),
    );
    out.push(
        Scenario::new("GET /Users?filter=emails.value eq (hit)", move |c, i| {
            let k = pick(c, i, users) as u64;
            Call::get(filter_query(&format!(
                "emails.value eq \"{}\"",
                user_name(k)
            )))
        })
        .check(total_is(1))
        .share(),
    );
    let s = seeded.clone();
    out.push(
        Scenario::new("GET /Users/{id}", move |c, i| {
            Call::get(format!("/Users/{}", s.user_ids[pick(c, i, users)]))
        })
        .share(),
    );

    // Paging. The directory holds n users plus one spare per client.
    let listed = n + clients as u64;
    let page = 100.min(listed);
    out.push(
        Scenario::new("GET /Users?startIndex=1&count=100", |_, _| {
            Call::get("/Users?startIndex=1&count=100".into())
        })
        .check(items_are(page)),
    );
    let deep = listed.saturating_sub(99).max(1);
    out.push(
        Scenario::new(
            format!("GET /Users?startIndex={deep}&count=100 (last page)"),
            move |_, _| Call::get(format!("/Users?startIndex={deep}&count=100")),
        )
        .check(items_are(listed - deep + 1)),
    );
    // What Okta and Entra do: page after page, each startIndex where the last page ended.
    // Each client walks the last 10 pages of the directory over and over: the first of them
    // steps over everything before it (no page before it was read), every later one starts
    // where its predecessor said the next page starts, down to the directory's last page.
    const WALKED: u64 = 10;
    let mut walk = Scenario::new("GET /Users?startIndex=… walk", move |_, i| {
        let k = i % WALKED;
        let start = deep.saturating_sub((WALKED - 1 - k) * 100).max(1);
        Call {
            row: usize::from(k > 0),
            ..Call::get(format!("/Users?startIndex={start}&count=100"))
        }
    });
    walk.rows = vec![
        "GET /Users?startIndex=… walk: its first page (no page before it read)".into(),
        "GET /Users?startIndex=… walk: each page after, to the last".into(),
    ];
    walk.batch = WALKED;
    out.push(walk);
    out.push(
        Scenario::new("GET /Users?count=100&cursor= (first page)", |_, _| {
            Call::get("/Users?count=100&cursor=".into())
        })
        .check(items_are(page)),
    );
    let cursor = seeded.deep_cursor.clone();
    out.push(
        Scenario::new(
            "GET /Users?count=100&cursor=… (deep page)",
            move |_, _| Call::get(format!("/Users?count=100&cursor={cursor}")),
        )
        .check(items_are(page)),
    );

    // Groups: reads.
    let (big, small) = (seeded.big_group.clone(), seeded.small_group.clone());
    {
        let big = big.clone();
        out.push(
            Scenario::new(
                "GET /Groups/{big}?excludedAttributes=members",
                move |_, _| Call::get(format!("/Groups/{big}?excludedAttributes=members")),
            )
            .check(members_are(None))
            .share(),
        );
    }
    {
        let small = small.clone();
        out.push(
            Scenario::new("GET /Groups/{small} (10 members)", move |_, _| {
                Call::get(format!("/Groups/{small}"))
            })
            .check(members_are(Some(SMALL_GROUP.min(users)))),
        );
    }
    {
        let big = big.clone();
        let mut sc = Scenario::new(format!("GET /Groups/{{big}} ({n} members)"), move |_, _| {
            Call::get(format!("/Groups/{big}"))
        })
        .check(members_are(Some(users)));
        sc.clients = Some(clients.min(2));
        sc.max_requests = Some(200);
        out.push(sc);
    }

    // Writes: each one commits (and, with FULL, fsyncs) on its own.
    let created = Arc::new(AtomicU64::new(0));
    out.push(
        Scenario::new("POST /Users", move |_, _| {
            let k = created.fetch_add(1, Ordering::Relaxed);
            let name = format!("new{k}@example.com");
            Call::with(
                Method::POST,
                "/Users".into(),
                user_body(&name, 2_000_000_000 + k),
            )
        })
        .expect(StatusCode::CREATED),
    );
    let s = seeded.clone();
    let patched = Arc::new(AtomicU64::new(0));
    out.push(Scenario::new(
        "PATCH /Users/{id} active=false",
        move |_, _| {
            // Each user once; a second pass turns them back on, so every PATCH writes.
            let k = patched.fetch_add(1, Ordering::Relaxed);
            let active = (k / users as u64) % 2 == 1;
            let id = &s.user_ids[(k % users as u64) as usize];
            Call::with(
                Method::PATCH,
                format!("/Users/{id}"),
                json!({"schemas": [PATCH_URN], "Operations": [
                {"op": "replace", "value": {"active": active}}]}),
            )
        },
    ));

    // Groups: one-member changes, small group then big group.
    out.push(group_membership(
        "PATCH /Groups/{small} one member",
        seeded,
        small,
    ));
    out.push(group_membership(
        &format!("PATCH /Groups/{{big}} ({n}) one member"),
        seeded,
        big,
    ));
    out
}

/// The HTTP side: one pooled keep-alive client shared by all tasks.
struct Bench {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    clients: usize,
    seconds: f64,
    max_requests: u64,
    /// The `--target` server's process, whose RSS and CPU are reported; `None`: this one.
    pid: Option<u32>,
}

/// What one client task measured: (row, microseconds) per request, and body bytes.
struct Measured {
    samples: Vec<(usize, u32)>,
    bytes: u64,
}

impl Bench {
    fn request(&self, call: &Call) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(format!("{}{}", self.base, call.path))
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match &call.body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/scim+json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        req.body(Full::new(body)).expect("valid request")
    }

    /// GET `path` and parse the JSON answer (for finding the target's directory).
    async fn get_json(&self, path: &str) -> Result<Value, BoxError> {
        let res = self
            .client
            .request(self.request(&Call::get(path.into())))
            .await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}").into());
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Sends one call and drains the body without keeping it; returns (status, bytes).
    async fn send(&self, call: &Call) -> Result<(StatusCode, u64), BoxError> {
        let res = self.client.request(self.request(call)).await?;
        let status = res.status();
        let mut body = res.into_body();
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok((status, bytes))
    }

    /// Checks `sc`'s first answer, warms up, measures; prints its rows if `print`, and
    /// gives each row's rate.
    async fn run(&self, sc: Scenario, print: bool) -> Result<Vec<f64>, BoxError> {
        let sc = Arc::new(sc);
        // The first request must get the right answer.
        let probe = (sc.make)(usize::MAX / 2, u64::MAX / 2);
        let res = self.client.request(self.request(&probe)).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        if status != sc.expect {
            return Err(format!(
                "{}: status {status}, want {}: {}",
                sc.name,
                sc.expect,
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        if let Some(check) = &sc.check {
            let v: Value = serde_json::from_slice(&body)?;
            check(&v).map_err(|e| format!("{}: {e}", sc.name))?;
        }
        // Undo the probe's change for alternating scenarios (an add is followed by a remove).
        if sc.batch == 2 {
            self.send(&(sc.make)(usize::MAX / 2, u64::MAX / 2 + 1))
                .await?;
        }

        let clients = sc.clients.unwrap_or(self.clients);
        let max = sc.max_requests.unwrap_or(self.max_requests);
        let warm_up = (self.seconds / 6.0).clamp(0.1, 0.5);
        self.drive(&sc, clients, warm_up, max / 10).await?;

        reset_peak_rss(self.pid);
        let rss_before = rss_mib(self.pid, "VmRSS");
        let cpu_before = cpu_ticks(self.pid);
        let started = Instant::now();
        let measured = self.drive(&sc, clients, self.seconds, max).await?;
        let elapsed = started.elapsed().as_secs_f64();
        // The peak, and how far it rose above the RSS the scenario started from.
        let peak = rss_mib(self.pid, "VmHWM");
        let peak = format!("{peak} (+{})", peak.saturating_sub(rss_before));
        // Clock ticks are 1/100 s on Linux.
        let cpu = self.pid.map(|_| {
            format!(
                " {:.0} |",
                (cpu_ticks(self.pid) - cpu_before) as f64 / elapsed
            )
        });
        let total = measured.samples.len() as u64;
        let mut rates = Vec::new();
        for (row, label) in sc.rows.iter().enumerate() {
            let mut lat: Vec<u32> = measured
                .samples
                .iter()
                .filter(|(r, _)| *r == row)
                .map(|(_, us)| *us)
                .collect();
            lat.sort_unstable();
            let pct = |p: f64| -> f64 {
                if lat.is_empty() {
                    return 0.0;
                }
                let k = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
                lat[k] as f64 / 1000.0
            };
            rates.push(lat.len() as f64 / elapsed);
            if !print {
                continue;
            }
            println!(
                "| {label} | {clients} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {peak} |{}",
                lat.len(),
                lat.len() as f64 / elapsed,
                pct(0.50),
                pct(0.95),
                pct(0.99),
                measured.bytes / total.max(1),
                cpu.as_deref().unwrap_or(""),
            );
        }
        Ok(rates)
    }

    /// `clients` tasks send requests back to back for `seconds` or until `max` were sent.
    async fn drive(
        &self,
        sc: &Arc<Scenario>,
        clients: usize,
        seconds: f64,
        max: u64,
    ) -> Result<Measured, BoxError> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let issued = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let sc = sc.clone();
            let issued = issued.clone();
            let this = Bench {
                client: self.client.clone(),
                base: self.base.clone(),
                token: self.token.clone(),
                ..*self
            };
            tasks.spawn(async move {
                let mut out = Measured {
                    samples: Vec::new(),
                    bytes: 0,
                };
                let mut i = 0u64;
                loop {
                    if i.is_multiple_of(sc.batch)
                        && (Instant::now() >= deadline
                            || issued.fetch_add(sc.batch, Ordering::Relaxed) >= max)
                    {
                        break;
                    }
                    let call = (sc.make)(c, i);
                    let started = Instant::now();
                    let (status, bytes) = this.send(&call).await?;
                    let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    if status != sc.expect {
                        return Err::<Measured, BoxError>(
                            format!("{}: status {status}, want {}", sc.name, sc.expect).into(),
                        );
                    }
                    out.samples.push((call.row, us));
                    out.bytes += bytes;
                    i += 1;
                }
                Ok(out)
            });
        }
        let mut all = Measured {
            samples: Vec::new(),
            bytes: 0,
        };
        while let Some(joined) = tasks.join_next().await {
            let m = joined??;
            all.samples.extend(m.samples);
            all.bytes += m.bytes;
        }
        Ok(all)
    }
}

/// The status file of `pid`, or of this process.
fn proc_file(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// A line of `/proc/<pid>/status` in MiB (`VmRSS`, `VmHWM`), or 0 where there is none.
fn rss_mib(pid: Option<u32>, field: &str) -> u64 {
    std::fs::read_to_string(proc_file(pid, "status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// User plus system CPU time of `pid` so far, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: Option<u32>) -> u64 {
    let stat = std::fs::read_to_string(proc_file(pid, "stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Resets `VmHWM` to the current RSS (Linux: "5" to clear_refs), so each scenario's peak
/// is its own.
fn reset_peak_rss(pid: Option<u32>) {
    let _ = std::fs::write(proc_file(pid, "clear_refs"), "5");
}
