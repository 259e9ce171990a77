//! scimd serving HTTPS itself (`--tls-cert`, `--tls-key`), for installs without a proxy.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use scimd::config::HttpConfig;
use scimd::db::{self, Db, Durability};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Tls {
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let acceptor = scimd::server::load_tls(&cert, &key).unwrap();

    let db = Db::open(&dir.path().join("scimd.db"), Durability::Normal).unwrap();
    let new = scimd::auth::tokens::generate();
    db::tokens::insert(&db.conn().unwrap(), 1, "tls", &new.prefix, &new.hash, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = scimd::http::App::new(db, HttpConfig::default());
    tokio::spawn(scimd::server::run_tls(
        listener,
        app,
        acceptor,
        std::future::pending(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Tls {
        addr,
        connector: TlsConnector::from(Arc::new(config)),
        token: new.secret,
        _dir: dir,
    }
}

impl Tls {
    /// One HTTPS request; returns the raw response.
    async fn get(&self, path: &str) -> String {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut tls = self
            .connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    }
}

#[tokio::test]
async fn scim_is_served_over_tls_with_https_locations() {
    let s = start().await;
    let r = s.get("/scim/v2/ServiceProviderConfig").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("\"location\":\"https://localhost/scim/v2/ServiceProviderConfig\""),
        "{r}"
    );
    let r = s.get("/scim/v2/Users").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"totalResults\":0"),
        "{r}"
    );
    // The admin UI over TLS tells browsers to keep to HTTPS (RFC 6797).
    let r = s.get("/login").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("\r\nstrict-transport-security: max-age=31536000\r\n"),
        "{r}"
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_refused_and_tls_still_works() {
    let s = start().await;
    let mut plain = TcpStream::connect(s.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "no plain-text answer"
    );
    assert!(s.get("/healthz").await.starts_with("HTTP/1.1 200"));
}

#[test]
fn unusable_certificates_are_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = scimd::server::load_tls(&missing, &missing).err().unwrap();
    assert!(err.contains("missing.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    assert!(scimd::server::load_tls(&empty, &empty).is_err());
}

/// `scimd healthcheck --tls-cert` checks a server that serves HTTPS itself, trusting
/// exactly its certificate; another certificate fails the check.
#[tokio::test]
async fn the_healthcheck_speaks_tls_to_a_tls_server() {
    let s = start().await;
    let cert = s._dir.path().join("cert.pem");
    let other = s._dir.path().join("other.pem");
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();
    let addr = s.addr.to_string();
    let check = move |cert: Option<std::path::PathBuf>| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"));
            cmd.args(["healthcheck", "--listen", &addr])
                .env_remove("SCIMD_TLS_CERT");
            if let Some(cert) = cert {
                cmd.arg("--tls-cert").arg(cert);
            }
            let out = cmd.output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
    };
    assert!(check(Some(cert)).await.unwrap().0, "its own certificate");
    assert!(!check(Some(other)).await.unwrap().0, "another certificate");
    let (ok, err) = check(None).await.unwrap();
    assert!(!ok, "plain HTTP to a TLS port");
    assert!(
        err.contains("speaks HTTPS") && err.contains("--tls-cert"),
        "says what to do: {err}"
    );
}
