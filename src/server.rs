//! The accept loop, TLS and graceful shutdown. Takes its listener and its shutdown future as
//! arguments so tests can bind `127.0.0.1:0` and stop the real server in-process.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::http::App;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS configuration from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1), for TLS 1.2 and 1.3 with rustls' safe defaults (Entra requires TLS 1.2 with ECDHE
/// suites, which these include).
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read the certificate chain {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the certificate and key do not form a usable pair: {e}"))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What `scimd healthcheck` trusts of a server it checks over TLS: exactly the certificate
/// the server serves (the first of `cert`, its `--tls-cert`), whatever name it is for and
/// whoever issued it: the check dials an address, often loopback, that no certificate
/// names. The handshake's signatures are verified as usual.
pub fn pinned_client(cert: &Path) -> Result<rustls::ClientConfig, String> {
    let pinned = CertificateDer::pem_file_iter(cert)
        .and_then(|mut certs| certs.next().transpose())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .ok_or_else(|| format!("{} holds no PEM certificate", cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        cert: pinned,
        provider: provider.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// [`pinned_client`]'s verifier.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the one configured".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]) and returns.
pub async fn run(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) {
    serve(listener, app, None, shutdown).await
}

/// [`run`] over TLS.
pub async fn run_tls(
    listener: TcpListener,
    app: App,
    tls: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, app, Some(tls), shutdown).await
}

/// File descriptors a server needs besides its connections: the database's pooled
/// connections and log, the webhook sender's sockets, the listeners, log files.
pub const RESERVED_FILES: u64 = 128;

/// Raises this process's limit on open files to the most it may have (the soft limit to
/// the hard one: the soft one is often 1 024, and every connection takes a descriptor),
/// and answers the limit it has.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum.unwrap_or(u64::MAX);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Runs `work` on a thread of its own that yields the cores to everything else (nice 10),
/// and answers what it returns: for background work at start, such as checking every page
/// of the file, which must not slow the first answers or the first plans. Linux sets the
/// priority per thread; elsewhere the thread keeps the process's.
pub async fn in_background<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
            let _ = done.send(work());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for background work");
        return None;
    }
    answer.await.ok()
}

async fn serve(
    listener: TcpListener,
    app: App,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a sender; when all are dropped, `recv` returns `None`.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    // One permit per open connection, and a share of them per client address; past either
    // cap a connection is told so and closed.
    let slots = Arc::new(tokio::sync::Semaphore::new(app.max_connections()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = app
                        .connection_share(peer)
                        .and_then(|share| Some((share, slots.clone().try_acquire_owned().ok()?)));
                    let Some((share, slot)) = admitted else {
                        tracing::warn!(%peer, "too many open connections, from this address or in all");
                        if tls.is_none() {
                            tokio::spawn(refuse(stream));
                        }
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let stop = stop_rx.clone();
                    let done = done_tx.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => app.serve_connection(stream, Some(peer), false, stop).await,
                            Some(acceptor) => {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => app.serve_connection(stream, Some(peer), true, stop).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            }
                        }
                        drop(done);
                        drop(slot);
                        drop(share);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    app.close_streams();
    let _ = stop_tx.send(());
    drop(done_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// Answers a connection past the cap with a 503 and closes it (plain HTTP only: a TLS
/// client would not read plain text, so it is just closed).
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503","detail":"the server has as many connections open as it may, in all or from this address; retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/scim+json\r\nX-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Completes on SIGTERM, SIGINT (Ctrl-C) or SIGHUP.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let signal = |kind| async move {
        match tokio::signal::unix::signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(unix)]
    let (term, hangup) = (
        signal(tokio::signal::unix::SignalKind::terminate()),
        // Its terminal closed, or a supervisor's "reload": scimd has nothing to reload, and
        // SIGHUP's default (an exit on the spot) would drop what is in flight.
        signal(tokio::signal::unix::SignalKind::hangup()),
    );
    #[cfg(not(unix))]
    let (term, hangup) = (std::future::pending::<()>(), std::future::pending::<()>());
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
        () = hangup => {},
    }
}

#[cfg(test)]
mod tests {
    /// Background work answers what it returns, from a thread that yields the cores.
    #[test]
    fn background_work_answers_from_a_thread_of_lower_priority() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tid = || rustix::thread::gettid();
        let here = rustix::process::getpriority_process(Some(tid())).unwrap();
        let (there, name) = runtime
            .block_on(super::in_background("scimd-test", move || {
                let nice = rustix::process::getpriority_process(Some(tid())).unwrap();
                (nice, std::thread::current().name().map(str::to_string))
            }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("scimd-test"));
        if cfg!(target_os = "linux") {
            assert_eq!(there, here.max(10));
        }
    }
}
