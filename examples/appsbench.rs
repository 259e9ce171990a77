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
//! - **Webhooks**, with the sender `scimd serve` runs and an in-process receiver answering
//!   204: one endpoint replaying a backlog of `--backlog` events (events/s); a SCIM POST
//!   sent → its webhook received (p50/p99); and SCIM POST latency with 0 and with 10
//!   enabled endpoints.

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
    /// Events one webhook endpoint receives from a backlog.
    #[arg(long, default_value_t = 20_000)]
    backlog: i64,
}

/// Arrivals at the receiver: how many, and when each body containing a marker came.
#[derive(Default)]
struct Arrivals {
    count: std::sync::atomic::AtomicU64,
    seen: std::sync::Mutex<Vec<(Instant, Bytes)>>,
}

/// A webhook receiver answering 204, keeping every body with its arrival time.
async fn receiver(arrivals: std::sync::Arc<Arrivals>) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let arrivals = arrivals.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            arrivals
                                .count
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            arrivals.seen.lock().unwrap().push((Instant::now(), body));
                            let mut r = hyper::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::NO_CONTENT;
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

/// Sends `n` SCIM POSTs one after the other; their latencies, sorted.
async fn posts(
    client: &HttpClient,
    base: &str,
    token: &str,
    tag: &str,
    n: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": format!("{tag}{i}@example.com")});
        let started = Instant::now();
        call(
            client,
            Method::POST,
            &format!("{base}/scim/v2/Users"),
            token,
            Some(body),
        )
        .await?;
        out.push(started.elapsed());
    }
    out.sort();
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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

    // Webhooks: the sender `scimd serve` runs, one receiver.
    let arrivals = std::sync::Arc::new(Arrivals::default());
    let hook_url = receiver(arrivals.clone()).await?;
    let delivery = scimd::http::webhooks::Delivery::spawn(db.clone(), vec![Duration::from_secs(1)]);
    let standard = ops::webhooks::Format::Standard;
    let cli = Actor::cli();

    // (a) A backlog: one endpoint replays the newest `--backlog` events.
    let hook = ops::webhooks::add(&db, &cli, tenant, hook_url.clone(), vec![], standard).await?;
    let latest = ops::events::latest(&db, tenant).await?;
    let from = (latest - args.backlog + 1).max(1);
    let want = (latest - from + 1) as u64;
    let started = Instant::now();
    ops::webhooks::replay(&db, &cli, Some(tenant), hook.id, from).await?;
    while arrivals.count.load(std::sync::atomic::Ordering::Relaxed) < want {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the backlog was not delivered within 5 minutes".into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| webhooks, one endpoint, backlog of {want} | {:.0} events/s ({want} in {secs:.2} s) |",
        want as f64 / secs
    );

    // (b) A SCIM POST sent → its webhook received.
    let mut latencies = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        let name = format!("hook{i}@example.com");
        let sent = Instant::now();
        let body =
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
        call(
            &client,
            Method::POST,
            &format!("{base}/scim/v2/Users"),
            &token,
            Some(body),
        )
        .await?;
        let arrived = loop {
            let found = arrivals
                .seen
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(_, b)| b.windows(name.len()).any(|w| w == name.as_bytes()))
                .map(|(t, _)| *t);
            if let Some(t) = found {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(arrived.saturating_duration_since(sent));
    }
    latencies.sort();
    println!(
        "| SCIM POST sent → its webhook received (p50 / p99 / max of {}) | {:.2} / {:.2} / {:.2} ms |",
        args.rounds,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );

    // (c) SCIM write latency with 0 and with 10 enabled endpoints.
    ops::webhooks::disable(&db, &cli, Some(tenant), hook.id).await?;
    let none = posts(&client, &base, &token, "zero", 300).await?;
    for _ in 0..10 {
        ops::webhooks::add(&db, &cli, tenant, hook_url.clone(), vec![], standard).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ten = posts(&client, &base, &token, "ten", 300).await?;
    println!(
        "| SCIM POST /Users p50 / p99, 0 webhook endpoints | {:.2} / {:.2} ms |",
        ms(percentile(&none, 0.5)),
        ms(percentile(&none, 0.99))
    );
    println!(
        "| SCIM POST /Users p50 / p99, 10 webhook endpoints (each receiving every event) | {:.2} / {:.2} ms |",
        ms(percentile(&ten, 0.5)),
        ms(percentile(&ten, 0.99))
    );

    delivery.stop().await;
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
