//! The admin UI's HTTP contract, without a browser: redirects, CSRF, headers, 404s.

mod common;

use common::*;
use hyper::Method;

/// Logs alice in; the session cookie is HttpOnly and SameSite=Strict.
async fn login(s: &TestServer) -> String {
    let r = s.login_response("alice", "correct horse battery").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let set = r.set_cookie("scimd_session").expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    r.cookie("scimd_session").unwrap()
}

#[tokio::test]
async fn pages_need_a_login_and_forms_need_the_csrf_token() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let r = s.raw(Method::GET, "/t/default/connection", &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Ft%2Fdefault%2Fconnection")
    );

    let cookie = login(&s).await;
    let r = s
        .raw(
            Method::GET,
            "/t/default/connection",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let r = s
        .raw(Method::POST, "/t/default/tokens", &form, "name=evil")
        .await;
    assert_eq!(r.status, 403, "a form without the CSRF token is refused");
    let r = s
        .raw(
            Method::POST,
            "/t/default/tokens",
            &form,
            "name=evil&csrf=forged",
        )
        .await;
    assert_eq!(r.status, 403);
    let conn = s.db.conn().unwrap();
    assert_eq!(
        scimd::db::tokens::list(&conn, None).unwrap().len(),
        1,
        "no token was created"
    );

    // A login form posted without its double-submit cookie is refused too.
    let r = s
        .raw(
            Method::POST,
            "/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            "csrf=x&username=alice&password=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn every_page_carries_security_headers_and_unknown_pages_are_friendly() {
    let s = TestServer::start().await;
    for path in ["/login", "/nope", "/t/default/"] {
        let r = s.raw(Method::GET, path, &[], "").await;
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        assert_eq!(
            r.header("strict-transport-security"),
            None,
            "not over plain HTTP"
        );
    }
    let r = s.raw(Method::GET, "/nope", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(
        r.text.contains("Page not found") && r.text.contains(r.header("x-request-id").unwrap())
    );
    let css = s.raw(Method::GET, "/static/app.css", &[], "").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let etag = css.header("etag").unwrap().to_string();
    let again = s
        .raw(
            Method::GET,
            "/static/app.css",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(
        s.raw(Method::GET, "/static/nope.css", &[], "").await.status,
        404
    );
}

/// After login the admin goes back where they were, but only to a path of this site:
/// browsers drop tabs and line breaks from a URL, so `/<TAB>/evil.example` would lead to
/// another site, and a line break would leave the redirect without a Location.
/// An error inside a tenant's pages keeps that tenant's tabs, so the admin can go on from
/// it; an address naming no tenant has none to show.
#[tokio::test]
async fn an_error_in_a_tenants_pages_keeps_its_tabs() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = login(&s).await;
    let headers = [("cookie", cookie.as_str())];
    let get = |path: &'static str| s.raw(Method::GET, path, &headers, "");
    let r = get("/t/default/people/no-such-member").await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("Page not found"), "{}", r.text);
    assert!(r.text.contains(r#"aria-label="Sections""#), "{}", r.text);
    assert!(r.text.contains(r#"href="/t/default/people""#), "{}", r.text);
    let r = get("/t/no-such-tenant/people").await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains(r#"aria-label="Sections""#), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn the_page_to_return_to_after_login_is_always_local() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = login(&s).await;
    let cases = [
        ("%2Fpeople%3Fq%3Dada", "/people?q=ada"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%0A%2Fevil.example", "/"),
        ("%2F%0D%2Fevil.example", "/"),
        ("%2F%20%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%2Fcaf%C3%A9", "/"),
    ];
    for (next, to) in cases {
        let path = format!("/login?next={next}");
        let r = s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some(to), "{next}");
    }
}

/// A setup link creates the first admin only: once any admin exists (made with another
/// link or the CLI), a link still sitting in a log creates nobody.
#[tokio::test]
async fn a_setup_link_is_void_once_an_admin_exists() {
    let s = TestServer::start().await;
    // A server started again prints a new link; the one before is void.
    let earlier = s.setup_link();
    let link = s.setup_link();
    let earlier = earlier.split("token=").nth(1).unwrap();
    let r = s
        .raw(Method::GET, &format!("/setup?token={earlier}"), &[], "")
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let token = link.split("token=").nth(1).unwrap().to_string();
    let r = s
        .raw(Method::GET, &format!("/setup?token={token}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.create_admin("cliadmin", "correct horse battery");
    let path = format!("/setup?token={token}");
    let r = s.raw(Method::GET, &path, &[], "").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let created = scimd::ops::admins::create_from_setup_link(
        &s.db,
        "req",
        &token,
        "intruder".into(),
        "correct horse battery staple".into(),
    )
    .await
    .unwrap();
    assert!(created.is_none(), "the link created an admin");
    let conn = s.db.conn().unwrap();
    assert_eq!(scimd::db::admins::count(&conn).unwrap(), 1);
}

/// Guessing at an admin's password locks the username out from the guessing address
/// only: the admin logs in from elsewhere, and a reset of the password lifts the lock, so
/// whoever guessed cannot keep the admin out of the new password.
#[tokio::test]
async fn a_login_lockout_holds_for_the_guessing_address_until_a_reset() {
    use scimd::ops::admins::{Login, login, set_password};
    let s = TestServer::start().await;
    s.create_admin("victim", "correct horse battery");
    let mut guesses = 0;
    loop {
        let attempt = login(&s.db, "r", "victim".into(), "wrong".into(), "127.0.0.6").await;
        if matches!(attempt.unwrap(), Login::Locked { .. }) {
            break;
        }
        guesses += 1;
        assert!(guesses < 30, "guessing never locked the username");
    }
    assert_eq!(
        guesses, 5,
        "five failures lock the username at that address"
    );
    let right = "correct horse battery";
    let locked = login(&s.db, "r", "victim".into(), right.into(), "127.0.0.6");
    assert!(matches!(locked.await.unwrap(), Login::Locked { .. }));
    // The same /64 is the same address for IPv6.
    for i in 0..5 {
        let from = format!("2001:db8::{i}");
        let _ = login(&s.db, "r", "victim".into(), "wrong".into(), &from).await;
    }
    let same_block = login(&s.db, "r", "victim".into(), right.into(), "2001:db8::99");
    assert!(matches!(same_block.await.unwrap(), Login::Locked { .. }));
    let from_elsewhere = login(&s.db, "r", "victim".into(), right.into(), "127.0.0.8");
    assert!(matches!(from_elsewhere.await.unwrap(), Login::LoggedIn(_)));
    let new = "a brand new passphrase";
    set_password(
        &s.db,
        &scimd::model::Actor::cli(),
        "victim".into(),
        new.into(),
    )
    .await
    .unwrap();
    let after = login(&s.db, "r", "victim".into(), new.into(), "127.0.0.6").await;
    assert!(matches!(after.unwrap(), Login::LoggedIn(_)));
}

/// Logging in from a tab loaded before another still works (the login form's token is
/// the browser's, not the page's), a login form another site sent is refused whatever
/// cookie it could plant, and a form sent after the session ended comes back to its page
/// after the login, saying nothing was changed, instead of a POST-only path's 404.
#[tokio::test]
async fn logins_from_old_tabs_work_and_forms_sent_after_the_session_ended_find_their_page() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let first = s.raw(Method::GET, "/login", &[], "").await;
    let cookie = first.cookie("scimd_login_csrf").unwrap();
    let token = cookie.split_once('=').unwrap().1.to_string();
    let second = s
        .raw(Method::GET, "/login", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(
        second.cookie("scimd_login_csrf").as_deref(),
        Some(cookie.as_str())
    );
    let form = format!("csrf={token}&next=%2F&username=alice&password=correct+horse+battery");
    let headers = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let cross = [headers[0], headers[1], ("sec-fetch-site", "cross-site")];
    let r = s.raw(Method::POST, "/login", &cross, form.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.raw(Method::POST, "/login", &headers, form).await;
    assert_eq!(r.status, 303, "the first tab's form logs in: {}", r.text);

    let r = s
        .raw(
            Method::POST,
            "/t/default/sync/run",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("referer", &s.url("/t/default/sync?x=1")),
            ],
            "csrf=stale",
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Ft%2Fdefault%2Fsync%3Fx%3D1")
    );
    let flash = r
        .set_cookie("scimd_flash")
        .expect("a message for the login page");
    assert!(flash.contains("nothing+was+changed"), "{flash}");
}

/// Behind a reverse proxy named with `--trusted-proxy`, login locks count the client the
/// proxy names in `X-Forwarded-For`, not the proxy, so a guesser locks out only itself.
/// What a client writes into the header itself comes before the proxy's own entry and is
/// never read; and from an address that is not a trusted proxy the header is ignored, so
/// it cannot be used to dodge a lock.
#[tokio::test]
async fn login_locks_count_the_client_a_trusted_proxy_names() {
    let s = TestServer::start_with(scimd::config::HttpConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .await;
    s.create_admin("alice", "correct horse battery");
    let from = |chain: &'static str| [("x-forwarded-for", chain)];
    let mut guesses = 0;
    loop {
        let r = s
            .login_response_with("alice", "wrong", &from("203.0.113.5"))
            .await;
        if r.status == 429 {
            break;
        }
        assert_eq!(r.status, 401, "{}", r.text);
        guesses += 1;
        assert!(guesses < 30, "guessing never locked the username");
    }
    let right = "correct horse battery";
    let r = s
        .login_response_with("alice", right, &from("203.0.113.5"))
        .await;
    assert_eq!(r.status, 429, "the guessing client is locked out");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&wait), "{wait}");
    // A client prepending an address of its choice is still the address the proxy saw.
    let r = s
        .login_response_with("alice", right, &from("198.51.100.7, 203.0.113.5"))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    // Proxies in a chain are skipped: the client is the last untrusted address.
    let r = s
        .login_response_with("alice", right, &from("203.0.113.5, 127.0.0.9"))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    let r = s
        .login_response_with("alice", right, &from("203.0.113.6"))
        .await;
    assert_eq!(
        r.status, 303,
        "another client behind the proxy logs in: {}",
        r.text
    );

    // Without --trusted-proxy the header counts for nothing.
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    for i in 0..5 {
        let chain = format!("203.0.113.{i}");
        let r = s
            .login_response_with("alice", "wrong", &[("x-forwarded-for", &chain)])
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = s
        .login_response_with("alice", right, &from("203.0.113.99"))
        .await;
    assert_eq!(
        r.status, 429,
        "the header did not make a new client: {}",
        r.text
    );
}

/// A session is no way around the login throttle: a wrong current password in the
/// change-password form counts and is audited as a failed login, and five of them pause
/// password changes (and logins) from that address, the right password included.
#[tokio::test]
async fn guessing_the_current_password_in_a_session_is_throttled_and_audited() {
    let s = TestServer::start().await;
    let right = "correct horse battery";
    s.create_admin("alice", right);
    let admin = Admin::login(&s, "alice", right).await;
    let change = |current: &str| {
        format!("current={current}&password=a+brand+new+passphrase&confirm=a+brand+new+passphrase")
    };
    for _ in 0..5 {
        let r = admin.post(&s, "/admins/password", &change("guess")).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("The current password is wrong."));
    }
    let r = admin
        .post(&s, "/admins/password", &change("correct+horse+battery"))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.text.contains("paused until"), "{}", r.text);
    let conn = s.db.conn().unwrap();
    let failed = failed_logins_by(&s, "alice");
    assert_eq!(
        failed, 5,
        "each wrong guess is in the audit log, by whoever held the session"
    );
    let r = s.login_response("alice", right).await;
    assert_eq!(r.status, 429, "the same address is paused for logins too");
    assert!(
        scimd::auth::passwords::verify(
            right,
            scimd::db::admins::credentials(&conn, "alice")
                .unwrap()
                .map(|c| c.1)
                .as_deref()
        ),
        "the password did not change"
    );
}

/// How many failed logins the audit log holds by admin `name`'s session.
fn failed_logins_by(s: &TestServer, name: &str) -> i64 {
    s.db.conn()
        .unwrap()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'admin.login_failed' AND actor = ?1",
            [format!("admin:{name}")],
            |r| r.get(0),
        )
        .unwrap()
}

/// A session alone cannot add or delete an admin: the admin at the keyboard types their own
/// password again. A wrong one changes nothing and counts as a failed login (throttled and
/// audited); deleting yourself signs you out.
#[tokio::test]
async fn adding_or_deleting_an_admin_takes_your_own_password_again() {
    let s = TestServer::start().await;
    let right = "correct horse battery";
    s.create_admin("alice", right);
    let admin = Admin::login(&s, "alice", right).await;
    let names = || {
        let conn = s.db.conn().unwrap();
        scimd::db::admins::list(&conn)
            .unwrap()
            .into_iter()
            .map(|a| (a.username, a.id))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let add = |current: &str| {
        format!(
            "username=bob&password=a+brand+new+passphrase&confirm=a+brand+new+passphrase&current={current}"
        )
    };
    for current in ["", "guess"] {
        let r = admin.post(&s, "/admins", &add(current)).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("Your password is wrong."), "{}", r.text);
        assert!(r.text.contains("value=\"bob\""), "the name typed is kept");
    }
    assert!(!names().contains_key("bob"), "no admin was added");
    let r = admin
        .post(&s, "/admins", &add("correct+horse+battery"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let bob = names()["bob"];

    // Deleting: a page says what it does and asks for the password.
    let page = admin.get(&s, &format!("/admins/{bob}/delete")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("bob is signed out at once"),
        "{}",
        page.text
    );
    assert!(page.text.contains("name=\"current\""), "{}", page.text);
    assert_eq!(admin.get(&s, "/admins/999/delete").await.status, 404);
    let r = admin
        .post(&s, &format!("/admins/{bob}/delete"), "current=guess")
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("Your password is wrong."), "{}", r.text);
    assert!(names().contains_key("bob"), "bob is still there");
    assert_eq!(
        failed_logins_by(&s, "alice"),
        3,
        "each wrong password is a failed login"
    );
    let r = admin
        .post(
            &s,
            &format!("/admins/{bob}/delete"),
            "current=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/admins"));
    assert!(!names().contains_key("bob"));

    // Two more wrong passwords make five: the throttle pauses account changes, the right
    // password included.
    let carol = {
        s.create_admin("carol", right);
        names()["carol"]
    };
    for _ in 0..2 {
        admin.post(&s, "/admins", &add("guess")).await;
    }
    let r = admin
        .post(
            &s,
            &format!("/admins/{carol}/delete"),
            "current=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.text.contains("paused until"), "{}", r.text);
    assert!(names().contains_key("carol"));

    // The only admin's page says so, with no form that can only fail.
    let s1 = TestServer::start().await;
    s1.create_admin("solo", right);
    let solo = Admin::login(&s1, "solo", right).await;
    let page = solo.get(&s1, "/admins/1/delete").await;
    assert!(page.text.contains("only admin account"), "{}", page.text);
    assert!(!page.text.contains(r#"name="current""#), "{}", page.text);

    // Deleting yourself signs you out.
    let s2 = TestServer::start().await;
    s2.create_admin("alice", right);
    s2.create_admin("dave", right);
    let alice = Admin::login(&s2, "alice", right).await;
    let me = scimd::db::admins::list(&s2.db.conn().unwrap())
        .unwrap()
        .into_iter()
        .find(|a| a.username == "alice")
        .unwrap()
        .id;
    let page = alice.get(&s2, &format!("/admins/{me}/delete")).await;
    assert!(
        page.text.contains("you cannot sign in again"),
        "{}",
        page.text
    );
    let r = alice
        .post(
            &s2,
            &format!("/admins/{me}/delete"),
            "current=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/login"));
    assert_eq!(alice.get(&s2, "/admins").await.status, 303, "signed out");
}

/// The page that shows a new secret answers a POST: a reload sends the form again, and a
/// double click sends it twice. Each makes one token, one key, one client, one endpoint.
#[tokio::test]
async fn a_form_that_makes_a_secret_makes_one_however_often_it_is_sent() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = login(&s).await;
    let headers = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let forms = [
        ("/t/default/connection", "/t/default/tokens", "name=okta"),
        ("/t/default/apps", "/t/default/apikeys", "name=billing"),
        (
            "/t/default/apps",
            "/t/default/webhooks",
            "url=https%3A%2F%2Fapp.example.com%2Fhook&format=standard",
        ),
        (
            "/t/default/oauth",
            "/t/default/oauth",
            "name=okta&client_credentials=on",
        ),
    ];
    let count = |s: &TestServer| {
        let conn = s.db.conn().unwrap();
        let n = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        [
            n("SELECT count(*) FROM scim_tokens"),
            n("SELECT count(*) FROM api_keys"),
            n("SELECT count(*) FROM webhook_endpoints"),
            n("SELECT count(*) FROM oauth_clients"),
        ]
    };
    for (i, (page, action, fields)) in forms.into_iter().enumerate() {
        let r = s.raw(Method::GET, page, &[("cookie", &cookie)], "").await;
        assert_eq!(r.status, 200, "{page}");
        let csrf = hidden_field(&r.text, "csrf").unwrap();
        let once = hidden_field(&r.text, "once").expect("the form carries a mark");
        let body = format!("{fields}&csrf={csrf}&once={once}");
        let before = count(&s);
        let first = s.raw(Method::POST, action, &headers, body.clone()).await;
        assert_eq!(first.status, 200, "{action}: {}", first.text);
        let again = s.raw(Method::POST, action, &headers, body.clone()).await;
        assert_eq!(again.status, 400, "{action}: {}", again.text);
        assert!(again.text.contains("sent already"), "{}", again.text);
        let after = count(&s);
        assert_eq!(
            after[i],
            before[i] + 1,
            "{action}: one made, {before:?} → {after:?}"
        );
        // The page the answer shows carries a new mark: the next click makes another.
        let next = hidden_field(&first.text, "once").unwrap();
        assert_ne!(next, once);
        let body = format!("{fields}&csrf={csrf}&once={next}");
        let third = s.raw(Method::POST, action, &headers, body.clone()).await;
        assert_eq!(third.status, 200, "{action}: {}", third.text);
    }
}

/// A password typed into the username box is no name of an admin: the failed login is
/// audited and logged without it. A wrong password for a real admin names the admin.
#[tokio::test]
async fn a_failed_login_names_only_admins_that_exist() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let r = s.login_response("Sup3rSecretPass!", "alice").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.login_response("alice", "wrong password here").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let conn = s.db.conn().unwrap();
    let targets: Vec<String> = conn
        .prepare("SELECT coalesce(target, '') FROM audit_log WHERE action = 'admin.login_failed' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(targets, ["admin/(no such admin)", "admin/alice"]);
    let everything: String = conn
        .query_row("SELECT group_concat(detail, ' ') FROM audit_log", [], |r| {
            r.get::<_, Option<String>>(0)
        })
        .unwrap()
        .unwrap_or_default();
    assert!(!everything.contains("Sup3rSecretPass"), "{everything}");
    let keys: String = conn
        .query_row(
            "SELECT group_concat(key, ' ') FROM login_failures",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .unwrap()
        .unwrap_or_default();
    assert!(
        !keys.to_lowercase().contains("sup3rsecretpass") && keys.contains("user:"),
        "the failure counters name no typed name: {keys}"
    );
}

/// A session unused for half an hour is over, however long its login had left; one in
/// use stays alive, and its use is noted at most once a minute.
#[tokio::test]
async fn a_session_left_unused_for_half_an_hour_ends() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = login(&s).await;
    let page = |cookie: String| {
        let s = &s;
        async move {
            s.raw(
                Method::GET,
                "/t/default/connection",
                &[("cookie", &cookie)],
                "",
            )
            .await
        }
    };
    let last_seen = |ago_minutes: i64| {
        let at = scimd::scim::datetime::format(
            time::OffsetDateTime::now_utc() - time::Duration::minutes(ago_minutes),
        );
        // Immediate: the server's writer may be writing beside this connection.
        let mut conn = s.db.conn().unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("UPDATE admin_sessions SET last_seen_at = ?1", [&at])
            .unwrap();
        tx.commit().unwrap();
        at
    };
    let stored = || -> String {
        s.db.conn()
            .unwrap()
            .query_row("SELECT last_seen_at FROM admin_sessions", [], |r| r.get(0))
            .unwrap()
    };

    // Used 29 minutes ago: alive, and this use is noted.
    let before = last_seen(29);
    assert_eq!(page(cookie.clone()).await.status, 200);
    assert!(stored() > before, "a use moves the session's last use");
    // Used a moment ago: alive, and not written again.
    let recent = stored();
    assert_eq!(page(cookie.clone()).await.status, 200);
    assert_eq!(stored(), recent, "at most one note a minute");

    // Unused for 31 minutes: over, back to the login page.
    last_seen(31);
    let r = page(cookie.clone()).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Ft%2Fdefault%2Fconnection")
    );
}

/// A form from a page older than what it acts on (a token revoked in another tab) says
/// that nothing was changed and why, not that the address is mistyped.
#[tokio::test]
async fn a_stale_form_says_what_it_acted_on_is_gone() {
    let s = TestServer::start().await;
    s.create_admin("alice", "correct horse battery");
    let cookie = login(&s).await;
    let page = s
        .raw(
            Method::GET,
            "/t/default/connection",
            &[("cookie", &cookie)],
            "",
        )
        .await;
    let csrf = hidden_field(&page.text, "csrf").unwrap();
    let id = scimd::db::tokens::list(&s.db.conn().unwrap(), Some(1)).unwrap()[0].id;
    let headers = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let path = format!("/t/default/tokens/{id}/revoke");
    let first = s
        .raw(Method::POST, &path, &headers, format!("csrf={csrf}"))
        .await;
    assert_eq!(first.status, 303, "{}", first.text);
    let again = s
        .raw(Method::POST, &path, &headers, format!("csrf={csrf}"))
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert!(again.text.contains("Nothing was changed"), "{}", again.text);
    assert!(!again.text.contains("mistyped"), "{}", again.text);
    // A form to an address that never existed is still a page not found.
    for path in [
        "/t/default/nonsense",
        "/t/no-such-tenant/apikeys",
        "/t/default/tokens/x/revoke",
    ] {
        let r = s
            .raw(Method::POST, path, &headers, format!("csrf={csrf}"))
            .await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text.contains("Page not found"), "{path}: {}", r.text);
    }
}

/// Admin names are unique whatever their case; a clash names the admin that exists.
#[tokio::test]
async fn a_clashing_admin_name_names_the_one_that_exists() {
    let s = TestServer::start().await;
    s.create_admin("carol", "correct horse battery");
    let e = scimd::db::admins::create(&s.db.conn().unwrap(), "Carol", "hash").unwrap_err();
    assert_eq!(e.to_string(), "an admin called \"carol\" already exists");
}
