//! Every admin page at phone width (390 px) in a real headless Chromium: long URLs, ids,
//! JSON and code wrap or scroll inside their own box, never the page. The test walks the
//! UI by its links from the dashboard, so a new page is checked as soon as something
//! links to it.

mod common;

use std::collections::{BTreeSet, VecDeque};

use common::browser::Browser;
use common::*;
use hyper::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
/// Most pages the walk visits (one per path; queries are not walked separately).
const MOST_PAGES: usize = 80;

#[tokio::test]
async fn every_page_fits_a_phone() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    s.create_admin("alice", PASSWORD);

    // Long things everywhere: a person with a long email, userName and externalId, in a
    // group with a long name; a failing request with a long path (the dashboard's last
    // error and the request inspector); an OAuth app with a long redirect URI; a webhook
    // with a long URL.
    let long = "a-very-long-local-part-that-does-not-break-anywhere";
    let email = format!("{long}@{}.example.com", "sub".repeat(20));
    let user = json!({"schemas": [USER_URN], "userName": email, "externalId": "0".repeat(120),
        "name": {"givenName": "G", "familyName": "F"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x".repeat(200)}});
    let r = s.post("/scim/v2/Users", &user).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uid = r.json["id"].as_str().unwrap().to_string();
    let group = json!({"schemas": [GROUP_URN], "displayName": format!("Group-{}", "x".repeat(150)),
        "members": [{"value": uid}]});
    assert_eq!(s.post("/scim/v2/Groups", &group).await.status, 201);
    let r = s
        .get_owned(format!(
            "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
            "y".repeat(300)
        ))
        .await;
    assert_eq!(r.status, 200);
    let auth = format!("Bearer {}", s.token);
    let r = s
        .raw(
            Method::PATCH,
            &format!("/scim/v2/Users/{uid}?{}", "aadOptscim062020=".repeat(12)),
            &[
                ("authorization", &auth),
                ("user-agent", &"Okta SCIM Client 1.0.0 ".repeat(8)),
            ],
            format!(
                "{{\"Operations\":[{{\"op\":\"bogus\",\"path\":\"{}\"}}]}}",
                "p".repeat(300)
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    let actor = scimd::model::Actor::cli();
    scimd::ops::oauth::create_client(
        &s.db,
        &actor,
        1,
        scimd::ops::oauth::Registration {
            name: "Okta".into(),
            grant_types: vec![scimd::auth::oauth::GrantType::AuthorizationCode],
            redirect_uris: vec![format!(
                "https://system-admin.okta.com/admin/app/cpc/{}/oauth/callback",
                "very_long_instance_name_app".repeat(4)
            )],
        },
    )
    .await
    .unwrap();
    scimd::ops::webhooks::add(
        &s.db,
        &actor,
        1,
        format!(
            "http://127.0.0.1:9/hooks/{}",
            "very-long-path-segment/".repeat(8)
        ),
        Vec::new(),
        scimd::ops::webhooks::Format::Standard,
    )
    .await
    .unwrap();
    // A deleted tenant with a long name: the Tenants page lists it, linking its kept log.
    s.token_for("gone");
    let gone = scimd::db::tenants::by_slug(&s.db.conn().unwrap(), "gone")
        .unwrap()
        .id;
    scimd::ops::admins::delete_tenant(&s.db, &actor, "gone".into())
        .await
        .unwrap();
    // The request inspector writes beside the requests: wait for the last one.
    let conn = s.db.conn().unwrap();
    for _ in 0..500 {
        let (ok, failed) = scimd::db::requests::counts(&conn, 1).unwrap();
        if ok + failed >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    b.goto(&s.url("/login")).await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;

    b.client.set_window_size(390, 844).await.unwrap();
    let mut queue: VecDeque<String> = ["/t/default/", "/tenants", "/admins", "/login"]
        .map(String::from)
        .into();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut too_wide = Vec::new();
    while let Some(href) = queue.pop_front() {
        let path = href.split('?').next().unwrap_or(&href).to_string();
        if !seen.insert(path) || seen.len() > MOST_PAGES {
            continue;
        }
        b.goto(&s.url(&href)).await;
        let (over, culprits) = b.overflow().await;
        if over != 0 {
            too_wide.push(format!("{href}: {over} px too wide: {culprits:?}"));
        }
        queue.extend(b.links().await);
    }
    b.client.set_window_size(1280, 900).await.unwrap();
    assert!(too_wide.is_empty(), "wider than a phone: {too_wide:#?}");
    let member = scimd::db::members::by_email(&conn, 1, &email)
        .unwrap()
        .unwrap()
        .id;
    for must in [
        "/t/default/oauth".to_string(),
        format!("/t/default/people/{member}"),
        "/t/default/requests".into(),
        "/t/default/webhooks/1".into(),
        "/t/default/events".into(),
        "/t/default/settings".into(),
        format!("/audit/deleted/{gone}"),
    ] {
        assert!(seen.contains(&must), "{must} was not reached: {seen:#?}");
    }
    assert!(
        seen.iter().any(|p| p.starts_with("/t/default/requests/")),
        "a request's page was not reached: {seen:#?}"
    );
    b.close().await;
}
