//! Oversized request bodies: the sender learns of the 413 at once, whatever it is still
//! sending, and the connection ends (a lingering close: no reset that would hide the answer).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{ERROR_URN, TestServer};
use serde_json::Value;

/// Generous: these pin behaviour (an answer without waiting for the body), not speed.
const PROMPTLY: Duration = Duration::from_secs(5);
const BODY: usize = 4 << 20;

/// What a reader running beside the sender saw: the answer, when it arrived, and when
/// the server ended the stream.
struct Seen {
    response: String,
    answered: Duration,
    ended: Option<Duration>,
}

fn headers(token: &str, framing: &str) -> String {
    format!(
        "POST /scim/v2/Users HTTP/1.1\r\nhost: scimd\r\nauthorization: Bearer {token}\r\n\
         content-type: application/scim+json\r\n{framing}\r\n\r\n"
    )
}

/// Sends `head`, then `BODY` bytes in 64 KiB pieces every 50 ms (chunk-framed if
/// `chunked`), reading beside it; returns what was read and how much had been sent when
/// the answer came.
fn slow_send(addr: SocketAddr, head: &str, chunked: bool) -> (Seen, usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut reader = stream.try_clone().unwrap();
    let read = std::thread::spawn(move || {
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (mut buf, mut answered) = (Vec::new(), None);
        let mut piece = [0u8; 8192];
        let ended = loop {
            match reader.read(&mut piece) {
                Ok(0) => break Some(started.elapsed()),
                Ok(n) => {
                    answered.get_or_insert(started.elapsed());
                    buf.extend_from_slice(&piece[..n]);
                }
                Err(_) => break None,
            }
        };
        Seen {
            response: String::from_utf8_lossy(&buf).into_owned(),
            answered: answered.expect("an answer"),
            ended,
        }
    });
    let piece = vec![b' '; 64 << 10];
    let mut sent = 0;
    while sent < BODY && !read.is_finished() {
        let r = if chunked {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .and_then(|()| stream.write_all(&piece))
                .and_then(|()| stream.write_all(b"\r\n"))
        } else {
            stream.write_all(&piece)
        };
        if r.is_err() {
            break;
        }
        sent += piece.len();
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = read.join().unwrap();
    (seen, sent)
}

fn assert_413(response: &str) {
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["schemas"][0], ERROR_URN);
    assert_eq!(json["status"], "413");
}

async fn no_users(s: &TestServer) {
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 0);
}

#[tokio::test]
async fn a_declared_length_past_the_limit_is_answered_before_the_body() {
    let s = TestServer::start().await;
    let (addr, head) = (
        s.addr,
        headers(&s.token, &format!("content-length: {BODY}")),
    );
    let (seen, sent) = tokio::task::spawn_blocking(move || slow_send(addr, &head, false))
        .await
        .unwrap();
    assert_413(&seen.response);
    assert!(
        seen.answered < PROMPTLY,
        "answered after {:?}",
        seen.answered
    );
    let ended = seen
        .ended
        .expect("the server ends the stream (FIN), no reset");
    assert!(ended < PROMPTLY, "ended after {ended:?}");
    assert!(sent < BODY, "the sender stopped early ({sent} bytes)");
    no_users(&s).await;
}

#[tokio::test]
async fn a_chunked_body_is_answered_as_it_passes_the_limit() {
    let s = TestServer::start().await;
    let limit = scimd::config::HttpConfig::default().max_body_bytes;
    let (addr, head) = (s.addr, headers(&s.token, "transfer-encoding: chunked"));
    let (seen, sent) = tokio::task::spawn_blocking(move || slow_send(addr, &head, true))
        .await
        .unwrap();
    assert_413(&seen.response);
    // Pieces go every 50 ms, so passing the limit takes limit/64 KiB pieces; the answer
    // comes then, not after the 4 MiB.
    let to_limit = Duration::from_millis(50) * (limit / (64 << 10)) as u32;
    assert!(
        seen.answered < to_limit + PROMPTLY,
        "answered after {:?}",
        seen.answered
    );
    assert!(seen.ended.is_some_and(|e| e < to_limit + PROMPTLY));
    assert!(sent < BODY, "the sender stopped early ({sent} bytes)");
    no_users(&s).await;
}

/// A client that writes its whole body before reading (most HTTP libraries) is not left
/// blocked or reset: the server drains what it sends, so its write completes and it reads
/// the 413 and the end of the stream.
#[tokio::test]
async fn a_sender_that_writes_everything_first_still_reads_the_413() {
    let s = TestServer::start().await;
    let (addr, head) = (
        s.addr,
        headers(&s.token, &format!("content-length: {BODY}")),
    );
    let (written, response, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut request = head.into_bytes();
        request.resize(request.len() + BODY, b' ');
        let written = stream.write_all(&request).map_err(|e| e.to_string());
        stream.set_read_timeout(Some(PROMPTLY)).unwrap();
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response);
        assert!(read.is_ok(), "{read:?}");
        (
            written,
            String::from_utf8_lossy(&response).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap();
    assert_eq!(written, Ok(()));
    assert_413(&response);
    assert!(took < PROMPTLY, "took {took:?}");
    no_users(&s).await;
}
