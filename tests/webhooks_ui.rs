//! The webhooks part of the admin UI's Apps area over HTTP: add an endpoint (its secret shown
//! once), send a test, see the attempt log, replay, disable and enable, remove; and the
//! dashboard's banner when delivery to an endpoint stopped.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Method;
use scimd::db;

const PASSWORD: &str = "correct horse battery";

/// A receiver answering `status` (changeable) and counting requests.
async fn receiver(status: u16) -> (String, Arc<AtomicU16>, Arc<AtomicUsize>) {
    let answer = Arc::new(AtomicU16::new(status));
    let count = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (a, n) = (answer.clone(), count.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (a, n) = (a.clone(), n.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let (a, n) = (a.clone(), n.clone());
                    async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"thanks")));
                        *r.status_mut() =
                            hyper::StatusCode::from_u16(a.load(Ordering::SeqCst)).unwrap();
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, answer, count)
}

#[tokio::test]
async fn admins_manage_webhooks_and_see_their_deliveries() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let cookie = s.login_cookie("alice", PASSWORD).await;
    let get = |path: String| {
        let cookie = cookie.clone();
        let s = &s;
        async move { s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await }
    };
    let page = get("/t/default/apps".into()).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let post = |path: String, body: String| {
        let s = &s;
        async move { s.raw(Method::POST, &path, &form, body).await }
    };
    let (url, answer, count) = receiver(204).await;
    let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();

    // Without the CSRF token nothing happens.
    let r = post(
        "/t/default/webhooks".into(),
        format!("url={encoded}&format=standard"),
    )
    .await;
    assert_eq!(r.status, 403);
    // A link-local receiver is refused with a message beside the form, which keeps what
    // the admin typed.
    let r = post(
        "/t/default/webhooks".into(),
        format!(
            "csrf={csrf}&url=http%3A%2F%2F169.254.169.254%2F&types=member.created&format=workos"
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let form = &r.text[r.text.find("Add an endpoint").expect("the form")..];
    assert!(form.contains(r#"class="error-box""#), "{}", r.text);
    assert!(
        form.contains(r#"value="http://169.254.169.254/""#)
            && form.contains(r#"value="member.created""#)
            && form.contains(r#"value="workos" selected"#),
        "{form}"
    );
    assert_eq!(r.text.matches(r#"class="error-box""#).count(), 1);
    let r = post(
        "/t/default/webhooks".into(),
        format!("csrf={csrf}&url={encoded}&types=member.created&format=standard"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r
        .text
        .split("value=\"")
        .filter_map(|v| v.split('"').next())
        .find(|v| v.starts_with("whsec_"))
        .expect("the secret is shown")
        .to_string();
    assert_eq!(r.text.matches(&secret).count(), 1, "shown once on the page");
    let title = r
        .text
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next());
    assert_eq!(
        title,
        Some("Apps — Default · scimd"),
        "the title is a title"
    );
    let again = get("/t/default/apps".into()).await;
    assert!(again.text.contains(&url));
    assert!(
        !again.text.contains(&secret),
        "the secret is shown only once"
    );
    let id = db::webhooks::list(&s.db.conn().unwrap(), Some(1)).unwrap()[0].id;

    // A test event reaches the receiver and shows in the attempt log.
    let r = post(
        format!("/t/default/webhooks/{id}/test"),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let detail = get(format!("/t/default/webhooks/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert!(detail.text.contains("204") && detail.text.contains("evt_test_"));
    // A test the endpoint refuses says so, as an error, not as a success.
    answer.store(500, Ordering::SeqCst);
    let r = post(
        format!("/t/default/webhooks/{id}/test"),
        format!("csrf={csrf}"),
    )
    .await;
    // On the endpoint's page, where the attempt shows, and a reload sends nothing more.
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("/t/default/webhooks/{id}").as_str())
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let flash = r.cookie("scimd_flash").unwrap();
    let shown = s
        .raw(
            Method::GET,
            &format!("/t/default/webhooks/{id}"),
            &[("cookie", &format!("{cookie}; {flash}"))],
            "",
        )
        .await;
    assert!(
        shown.text.contains(
            "<div class=\"error-box\" role=\"alert\">The test event was not accepted: HTTP 500"
        ),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("500"), "the attempt: {}", shown.text);
    answer.store(204, Ordering::SeqCst);

    // Replay, disable (banner on the dashboard), enable (banner gone), rotate, remove: all audited.
    s.create_user("ada@example.com").await;
    let r = post(
        format!("/t/default/webhooks/{id}/replay"),
        format!("csrf={csrf}&from=1"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text);
    answer.store(410, Ordering::SeqCst);
    let r = post(
        format!("/t/default/webhooks/{id}/disable"),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303);
    let dashboard = get("/t/default".into()).await;
    assert!(
        dashboard.text.contains("Webhook delivery stopped") && dashboard.text.contains(&url),
        "{}",
        dashboard.text
    );
    let r = post(
        format!("/t/default/webhooks/{id}/enable"),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        !get("/t/default".into())
            .await
            .text
            .contains("Webhook delivery stopped")
    );
    // An enabled endpoint whose retries keep failing is shown too, before it is disabled.
    assert!(
        !get("/t/default".into())
            .await
            .text
            .contains("deliveries failing")
    );
    s.db.conn()
        .unwrap()
        .execute(
            "UPDATE webhook_endpoints SET failures = 3,
                    failing_since = '2026-01-01T00:00:00.000000Z',
                    next_attempt_at = '2026-01-01T00:35:05.000000Z' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let dashboard = get("/t/default".into()).await;
    assert!(
        dashboard.text.contains("Webhook deliveries failing")
            && dashboard.text.contains("3 failed attempts since"),
        "{}",
        dashboard.text
    );
    let r = post(
        format!("/t/default/webhooks/{id}/rotate"),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("whsec_"));
    let r = post(
        format!("/t/default/webhooks/{id}/remove"),
        format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(
        db::webhooks::list(&s.db.conn().unwrap(), Some(1))
            .unwrap()
            .is_empty()
    );
    let log = db::audit::list(&s.db.conn().unwrap(), &db::audit::Filter::default()).unwrap();
    let actions: Vec<&str> = log.iter().map(|r| r.entry.action.as_str()).collect();
    for action in [
        "webhook.created",
        "webhook.tested",
        "webhook.replayed",
        "webhook.disabled",
        "webhook.enabled",
        "webhook.secret_rotated",
        "webhook.removed",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    assert!(
        log.iter().all(|r| !r
            .entry
            .detail
            .as_ref()
            .is_some_and(|d| d.to_string().contains("whsec_"))),
        "no secret in the audit log"
    );
    s.stop().await;
}
