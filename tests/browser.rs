//! The admin UI in a real headless Chromium: what an admin clicks through.

mod common;

use common::browser::Browser;
use common::*;
use hyper::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

/// First run: the setup link creates the admin, who generates a token that an IdP then
/// uses; revoking it locks the IdP out; logout and login work.
#[tokio::test]
async fn setup_token_generation_scim_call_and_revocation() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };

    b.goto(&s.setup_link()).await;
    assert!(b.title().await.starts_with("First-run setup"));
    b.screenshot("setup").await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=confirm]", "a different password").await;
    b.click("button[type=submit]").await;
    assert!(b.body().await.contains("The two passwords differ."));
    b.fill("input[name=password]", PASSWORD).await;
    b.fill("input[name=confirm]", PASSWORD).await;
    b.click("button[type=submit]").await;
    assert_eq!(b.path().await, "/t/default/");
    assert!(b.title().await.starts_with("Dashboard"));
    assert!(b.body().await.contains("Waiting"));

    // Once an admin exists, another setup link (one still in a log) creates nobody.
    let link = s.setup_link();
    b.goto(&link).await;
    let body = b.body().await;
    assert!(body.contains("invalid, already used, or expired"), "{body}");
    assert!(
        !body.contains("name=\"username\""),
        "no form to fill: {body}"
    );

    // Generate a token; it is shown once.
    b.goto(&s.url("/t/default/connection")).await;
    // The keyboard's first stop skips the navigation.
    let first = b
        .client
        .execute(
            "const f = document.querySelector('a[href], button, input, select, textarea'); \
             return [f.textContent, document.querySelector(f.getAttribute('href')).tagName];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(first, serde_json::json!(["Skip to content", "MAIN"]));
    assert_eq!(b.value("#base-url").await, s.url("/scim/v2"));
    b.fill("input[name=name]", "Okta production").await;
    b.click("form[action$='/tokens'] button[type=submit]").await;
    let secret = b.value("#new-token").await;
    assert!(secret.starts_with("scimd_"), "{secret}");
    assert!(b.body().await.contains("shown only this once"));
    // Copy works without the Clipboard API too, as on plain HTTP at an address other than
    // localhost, where browsers withhold it; it says so when it cannot copy.
    b.client
        .execute(
            "Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})",
            vec![],
        )
        .await
        .unwrap();
    b.find("button[data-copy='new-token']")
        .await
        .click()
        .await
        .unwrap();
    let label = b.text("button[data-copy='new-token']").await;
    assert!(
        label == "Copied" || label.starts_with("Not copied"),
        "{label}"
    );
    if label == "Copied" {
        // The copy through a hidden field gave the focus back to the button.
        assert_eq!(b.focused().await, "button[data-copy=new-token]");
    }
    // A screen reader hears it too: a status region says what the button says.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(b.text("#announcer").await, label);
    b.screenshot("connection").await;
    b.goto(&s.url("/t/default/connection")).await;
    assert!(!b.body().await.contains(&secret), "never shown again");
    assert!(b.body().await.contains("Okta production"));

    // The IdP uses it.
    let r = s
        .call(
            Method::POST,
            "/scim/v2/Users",
            &secret,
            Some(&json!({"userName":"first@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    b.goto(&s.url("/t/default/")).await;
    let body = b.body().await;
    assert!(body.contains("Connected"), "{body}");
    assert!(body.contains("POST /scim/v2/Users"), "{body}");
    b.screenshot("dashboard").await;

    // Revoke it from the UI: the IdP is locked out at once.
    b.goto(&s.url("/t/default/connection")).await;
    let revoke = "//tr[td[text()='Okta production']]//form[contains(@action,'/revoke')]//button";
    b.click_and_confirm(revoke).await;
    assert!(b.body().await.contains("Token revoked"));
    let r = s.call(Method::GET, "/scim/v2/Users", &secret, None).await;
    r.assert_error(401, None);

    // Log out, then back in.
    b.click("form[action='/logout'] button").await;
    assert_eq!(b.path().await, "/login");
    b.goto(&s.url("/t/default/connection")).await;
    assert_eq!(b.path().await, "/login", "pages need a login");
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
    assert_eq!(
        b.path().await,
        "/t/default/connection",
        "back where the admin was going"
    );
    b.close().await;
}

/// Repeated failures lock the account for a while, even with the right password.
#[tokio::test]
async fn login_is_throttled_after_repeated_failures() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let Some(b) = Browser::start().await else {
        return;
    };
    b.goto(&s.url("/login")).await;
    b.screenshot("login").await;
    for _ in 0..5 {
        b.fill("input[name=username]", "alice").await;
        b.fill("input[name=password]", "wrong password!").await;
        b.click("button[type=submit]").await;
        assert!(b.body().await.contains("Wrong username or password."));
        // The error has the focus, so that a screen reader reads it first.
        assert_eq!(b.focused().await, "div.error-box");
    }
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
    assert!(
        b.body().await.contains("Too many failed attempts"),
        "{}",
        b.body().await
    );
    assert_eq!(b.path().await, "/login");
    b.close().await;
}

/// Tenants and admins are managed from the browser too.
#[tokio::test]
async fn tenants_and_admins_from_the_browser() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let Some(b) = Browser::start().await else {
        return;
    };
    b.goto(&s.url("/login")).await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;

    b.goto(&s.url("/tenants")).await;
    b.fill("input[name=slug]", "acme").await;
    b.fill("input[name=name]", "Acme Inc").await;
    b.click("form[action='/tenants'] button").await;
    assert_eq!(b.path().await, "/t/acme/connection");
    assert!(b.body().await.contains("Tenant Acme Inc created"));

    b.goto(&s.url("/admins")).await;
    b.fill("form[action='/admins'] input[name=username]", "bob")
        .await;
    // A password that is quick to guess is refused, and the form keeps the name typed.
    for field in ["password", "confirm"] {
        let css = format!("form[action='/admins'] input[name={field}]");
        b.fill(&css, "1234567890").await;
    }
    // The form asks for the admin's own password too (a session alone cannot add one).
    b.fill("form[action='/admins'] input[name=current]", PASSWORD)
        .await;
    b.click("form[action='/admins'] button").await;
    assert!(b.body().await.contains("too easy to guess"));
    assert_eq!(
        b.value("form[action='/admins'] input[name=username]").await,
        "bob"
    );
    b.fill("form[action='/admins'] input[name=password]", PASSWORD)
        .await;
    b.fill("form[action='/admins'] input[name=confirm]", PASSWORD)
        .await;
    b.fill("form[action='/admins'] input[name=current]", PASSWORD)
        .await;
    b.click("form[action='/admins'] button").await;
    assert!(b.body().await.contains("Admin bob created."));
    b.close().await;
}

/// A keyboard reaches what a wide table hides at phone width (its box takes the focus and
/// scrolls with the arrow keys), and leaves the tenant menu with Escape.
#[tokio::test]
async fn a_keyboard_scrolls_wide_tables_and_closes_the_tenant_menu() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let Some(b) = Browser::start().await else {
        return;
    };
    s.create_user("someone-with-a-long-address@example.com")
        .await;
    scimd::ops::admins::create_tenant(
        &s.db,
        &scimd::model::Actor::cli(),
        "acme".into(),
        "Acme".into(),
    )
    .await
    .unwrap();
    b.goto(&s.url("/login")).await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;

    // The tenant menu: open, Escape closes it and the focus is back on its summary.
    b.goto(&s.url("/t/default/people")).await;
    b.find(".tenant-switch summary")
        .await
        .click()
        .await
        .unwrap();
    let open = "return document.querySelector('.tenant-switch details').open";
    assert_eq!(b.client.execute(open, vec![]).await.unwrap(), true);
    b.press(fantoccini::key::Key::Escape).await;
    assert_eq!(b.client.execute(open, vec![]).await.unwrap(), false);
    assert_eq!(b.focused().await, "summary");

    // At phone width the people table scrolls in its box; the box takes the focus, is
    // named after the page's heading, and the arrow keys scroll it.
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&s.url("/t/default/people")).await;
    let boxes = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('.table-wrap'))
                .filter(w => w.scrollWidth > w.clientWidth + 1)
                .map(w => [w.tabIndex, w.getAttribute('role'), w.getAttribute('aria-label')])",
            vec![],
        )
        .await
        .unwrap();
    let boxes = boxes.as_array().unwrap();
    assert!(!boxes.is_empty(), "the people table is wider than a phone");
    for b in boxes {
        assert_eq!(b[0], 0, "{b}");
        assert_eq!(b[1], "region", "{b}");
        assert!(b[2].as_str().unwrap().starts_with("People"), "{b}");
    }
    b.client
        .execute("document.querySelector('.table-wrap').focus()", vec![])
        .await
        .unwrap();
    for _ in 0..5 {
        b.press(fantoccini::key::Key::Right).await;
    }
    let left = b
        .client
        .execute(
            "return document.querySelector('.table-wrap').scrollLeft",
            vec![],
        )
        .await
        .unwrap();
    assert!(left.as_f64().unwrap() > 0.0, "scrolled: {left}");
    b.close().await;
}
