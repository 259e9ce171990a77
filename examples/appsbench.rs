//! Apps-side benchmark: the real scimd server in-process on `127.0.0.1:0`, its events feed
//! and its webhook delivery driven over real HTTP. Run by hand; results go in BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release --example appsbench
//! cargo run --release --example appsbench -- --events 200000
//! ```
//!
//! - **Feed**: `--events` events are appended in one transaction, then one client reads
//!   them all through `GET /api/v1/events?after=…&limit=100`, page after page.
//! - **Wake-up**: a long poll (`wait=30`) is waiting when a SCIM POST commits; the time
//!   from sending the POST (an upper bound of the commit) to the poll's answer, `--rounds`
//!   times.

use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use scimd::config::HttpConfig;
use scimd::db::events::{self, EventType};
use scimd::db::{Db, Durability};
use scimd::model::Actor;
use scimd::ops;

type BoxError = Box<dyn Error + Send + Sync>;

/// Apps-side benchmark for scimd.
#[derive(Parser)]
struct Args {
    /// Events in the feed.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Wake-up measurements.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    auth: &str,
    body: Option<Value>,
) -> Result<Value, BoxError> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {auth}"));
    if body.is_some() {
        req = req.header("content-type", "application/scim+json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let res = client
        .request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{url}: {status} {}", String::from_utf8_lossy(&bytes)).into());
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let db = Db::open(&dir.path().join("bench.db"), Durability::Full)?;
    let tenant = 1;
    let token = ops::tokens::issue(&db, &Actor::cli(), tenant, "bench".into(), None)
        .await?
        .token
        .secret;
    let key = ops::apikeys::issue(&db, &Actor::cli(), Some(tenant), "bench".into(), None)
        .await?
        .token
        .secret;

    // Seed the feed: member.created events carrying a realistic member object.
    let n = args.events;
    db.write(move |tx| {
        let actor = Actor::cli();
        for i in 0..n {
            let payload = json!({"member": {"object": "member", "id": format!("m{i}"),
                "email": format!("user{i}@example.com"), "role": "viewer", "status": "active",
                "managed": true, "source": "scim", "groups": []},
                "previous": {}, "context": {"via": "scim"}});
            events::append(
                tx,
                &actor,
                tenant,
                EventType::MemberCreated,
                &format!("m{i}"),
                &payload,
            )?;
        }
        Ok::<_, scimd::db::DbError>(())
    })
    .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = scimd::http::App::new(db.clone(), HttpConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(scimd::server::run(listener, app, async {
        let _ = stopped.await;
    }));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{addr}");

    println!("# scimd appsbench: {n} events, synchronous=FULL\n");
    println!("| work | result |");
    println!("|---|---:|");

    // The feed, in pages of 100, one client.
    let started = Instant::now();
    let (mut after, mut read) = (0i64, 0u64);
    loop {
        let url = format!("{base}/api/v1/events?after={after}&limit=100");
        let page = call(&client, Method::GET, &url, &key, None).await?;
        let data = page["data"].as_array().map(Vec::len).unwrap_or(0);
        if data == 0 {
            break;
        }
        read += data as u64;
        after = page["list_metadata"]["after"].as_i64().unwrap_or(after);
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(read, n, "every event read once");
    println!(
        "| feed, pages of 100, one client | {:.0} events/s ({read} in {secs:.2} s) |",
        read as f64 / secs
    );

    // Wake-up: commit → long poll answered.
    let mut latencies = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        let after = ops::events::latest(&db, tenant).await?;
        let poll_url = format!("{base}/api/v1/events?after={after}&wait=30");
        let poll = {
            let client = client.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let r = call(&client, Method::GET, &poll_url, &key, None).await;
                (r, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": format!("wake{i}@example.com")});
        // From the moment the POST is sent: an upper bound of commit → answer.
        let sent = Instant::now();
        call(
            &client,
            Method::POST,
            &format!("{base}/scim/v2/Users"),
            &token,
            Some(body),
        )
        .await?;
        let (r, answered) = poll.await?;
        assert!(r?["data"].as_array().is_some_and(|d| !d.is_empty()));
        latencies.push(answered.saturating_duration_since(sent));
    }
    latencies.sort();
    println!(
        "| SCIM POST sent → long poll answered with its event (p50 / p99 / max of {}) | {:.2} / {:.2} / {:.2} ms |",
        args.rounds,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
