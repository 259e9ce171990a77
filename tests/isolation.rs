//! Tenant isolation across every surface: two tenants with their own tokens, users, groups,
//! members and OAuth clients. Nothing of one tenant may be read, written, counted or named
//! in an error through the other's credentials: not over SCIM (by id, by filter, by cursor,
//! by membership or manager reference), not over OAuth (codes, refresh tokens, revocation),
//! and not through the admin UI's tenant-scoped URLs.

mod common;

use common::oauth::*;
use common::*;
use hyper::Method;
use scimd::auth::oauth::GrantType;
use scimd::db;
use serde_json::{Value, json};

/// One tenant's directory as seeded.
struct Tenant {
    slug: &'static str,
    token: String,
    users: Vec<String>,
    groups: Vec<String>,
    /// Strings that only this tenant's data contains: a response to the other tenant that
    /// holds one of them has leaked.
    markers: Vec<String>,
}

impl Tenant {
    fn ids(&self) -> Vec<String> {
        self.users.iter().chain(&self.groups).cloned().collect()
    }
}

/// Three users (the second managed by the first) and two groups (the second holds the
/// first), all named after `slug`.
async fn seed(s: &TestServer, slug: &'static str, token: String) -> Tenant {
    let mut users = Vec::new();
    let mut markers = Vec::new();
    for i in 0..3 {
        let user_name = format!("{slug}-user{i}@example.com");
        let mut body = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": user_name,
            "externalId": format!("{slug}-ext{i}"),
            "displayName": format!("{slug} person {i}"),
            "name": {"givenName": format!("{slug}given"), "familyName": format!("{slug}family{i}")},
            "emails": [{"value": user_name, "type": "work", "primary": true}],
            "active": true,
        });
        if let Some(first) = users.first() {
            body[ENTERPRISE_URN] = json!({"manager": {"value": first}});
        }
        let r = s
            .call(Method::POST, "/scim/v2/Users", &token, Some(&body))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        users.push(r.json["id"].as_str().unwrap().to_string());
        markers.extend([
            user_name,
            format!("{slug}-ext{i}"),
            format!("{slug} person {i}"),
            format!("{slug}family{i}"),
        ]);
    }
    let mut groups: Vec<String> = Vec::new();
    for i in 0..2 {
        let mut members = if i == 0 {
            json!([{"value": users[0]}, {"value": users[1]}])
        } else {
            json!([{"value": users[2]}])
        };
        if let Some(first) = groups.first() {
            members
                .as_array_mut()
                .unwrap()
                .push(json!({"value": first, "type": "Group"}));
        }
        let name = format!("{slug} team {i}");
        let body = json!({"schemas": [GROUP_URN], "displayName": name, "externalId": format!("{slug}-gext{i}"), "members": members});
        let r = s
            .call(Method::POST, "/scim/v2/Groups", &token, Some(&body))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        groups.push(r.json["id"].as_str().unwrap().to_string());
        markers.extend([name, format!("{slug}-gext{i}")]);
    }
    Tenant {
        slug,
        token,
        users,
        groups,
        markers,
    }
}

async fn two_tenants(s: &TestServer) -> (Tenant, Tenant) {
    let a = seed(s, "alpha", s.token_for("alpha")).await;
    let b = seed(s, "beta", s.token_for("beta")).await;
    (a, b)
}

/// Everything a tenant's directory holds, as its own token reads it.
async fn snapshot(s: &TestServer, token: &str) -> Value {
    let mut out = json!({});
    for rt in ["Users", "Groups"] {
        let r = s
            .call(
                Method::GET,
                &format!("/scim/v2/{rt}?count=1000"),
                token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        out[rt] = r.json;
    }
    out
}

/// Asserts that `r`, answering a request that named only `asked`, shows nothing of `other`
/// beyond what the request itself said.
fn assert_no_leak(r: &Resp, other: &Tenant, asked: &str) {
    for m in &other.markers {
        assert!(!r.text.contains(m.as_str()), "leaked {m:?}: {}", r.text);
    }
    for id in other.ids() {
        if !asked.contains(&id) {
            assert!(!r.text.contains(&id), "leaked id {id}: {}", r.text);
        }
    }
}

/// The resource ids in a ListResponse, asserting they all belong to `own`.
fn listed_ids(r: &Resp, own: &Tenant) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<String> = r.json["Resources"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let own_ids = own.ids();
    for id in &ids {
        assert!(own_ids.contains(id), "listed a foreign id {id}: {}", r.text);
    }
    ids
}

#[tokio::test]
async fn scim_reads_and_writes_never_cross_tenants() {
    let s = TestServer::start().await;
    let (a, b) = two_tenants(&s).await;
    let a_before = snapshot(&s, &a.token).await;
    let b_before = snapshot(&s, &b.token).await;

    // By id, every method, on both endpoints, with and without If-Match.
    let user_body = json!({"schemas": [USER_URN], "userName": "hijack@example.com"});
    let group_body = json!({"schemas": [GROUP_URN], "displayName": "hijacked"});
    let patch = json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "hijacked"}]});
    for id in b.ids() {
        for rt in ["Users", "Groups"] {
            let path = format!("/scim/v2/{rt}/{id}");
            let body = if rt == "Users" {
                &user_body
            } else {
                &group_body
            };
            for (method, body) in [
                (Method::GET, None),
                (Method::HEAD, None),
                (Method::PUT, Some(body)),
                (Method::PATCH, Some(&patch)),
                (Method::DELETE, None),
            ] {
                let r = s.call(method.clone(), &path, &a.token, body).await;
                assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
                if method != Method::HEAD {
                    r.assert_error(404, None);
                }
                assert_no_leak(&r, &b, &path);
                let auth = format!("Bearer {}", a.token);
                let body = body.map(Value::to_string).unwrap_or_default();
                let r = s
                    .raw(
                        method.clone(),
                        &format!("{path}?attributes=userName,members"),
                        &[("authorization", &auth), ("if-match", "*")],
                        body,
                    )
                    .await;
                assert_eq!(r.status, 404, "{method} {path} If-Match *: {}", r.text);
                assert_no_leak(&r, &b, &path);
            }
        }
    }

    // Filters naming the other tenant's ids, names and references: per type, by GET and by
    // POST .search, and at the root.
    let filters_on_b = [
        ("Users", format!(r#"id eq "{}""#, b.users[0])),
        (
            "Users",
            r#"userName eq "beta-user0@example.com""#.to_string(),
        ),
        ("Users", r#"userName sw "beta""#.to_string()),
        ("Users", r#"externalId eq "beta-ext1""#.to_string()),
        (
            "Users",
            r#"emails.value eq "beta-user2@example.com""#.to_string(),
        ),
        ("Users", r#"emails[value co "beta"]"#.to_string()),
        ("Users", format!(r#"groups.value eq "{}""#, b.groups[0])),
        ("Users", format!(r#"groups[value eq "{}"]"#, b.groups[0])),
        ("Users", r#"groups.display eq "beta team 0""#.to_string()),
        (
            "Users",
            format!(r#"{ENTERPRISE_URN}:manager.value eq "{}""#, b.users[0]),
        ),
        ("Groups", format!(r#"id eq "{}""#, b.groups[1])),
        ("Groups", r#"displayName eq "beta team 0""#.to_string()),
        ("Groups", r#"externalId eq "beta-gext1""#.to_string()),
        ("Groups", format!(r#"members.value eq "{}""#, b.users[0])),
        ("Groups", format!(r#"members[value eq "{}"]"#, b.users[1])),
        ("Groups", format!(r#"members.value eq "{}""#, b.groups[0])),
        ("Groups", r#"members.display co "beta""#.to_string()),
    ];
    for (rt, f) in &filters_on_b {
        let enc: String = form_urlencoded::byte_serialize(f.as_bytes()).collect();
        let r = s
            .call(
                Method::GET,
                &format!("/scim/v2/{rt}?filter={enc}"),
                &a.token,
                None,
            )
            .await;
        assert_eq!(listed_ids(&r, &a), Vec::<String>::new(), "{f}");
        assert_eq!(r.json["totalResults"], 0, "{f}: {}", r.text);
        assert_no_leak(&r, &b, f);
        for path in [format!("/scim/v2/{rt}/.search"), "/scim/v2/.search".into()] {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f});
            let r = s.call(Method::POST, &path, &a.token, Some(&body)).await;
            assert_eq!(listed_ids(&r, &a), Vec::<String>::new(), "{path} {f}");
            assert_eq!(r.json["totalResults"], 0, "{path} {f}: {}", r.text);
            assert_no_leak(&r, &b, f);
        }
    }

    // Counts, whole lists and presence filters see one tenant only.
    for (path, expected) in [
        ("/scim/v2/Users", 3),
        ("/scim/v2/Groups", 2),
        ("/scim/v2/Users?filter=id%20pr", 3),
        ("/scim/v2/Users?filter=groups%20pr", 3),
        ("/scim/v2/Users?filter=groups.value%20pr", 3),
        ("/scim/v2/Groups?filter=members%20pr", 2),
        (
            "/scim/v2/Groups?filter=members.value%20pr&sortBy=displayName",
            2,
        ),
        (
            "/scim/v2/Users?sortBy=userName&sortOrder=descending&count=1000",
            3,
        ),
        ("/scim/v2/Users?startIndex=3&count=10", 3),
        ("/scim/v2/Users?cursor=&count=1000", 3),
    ] {
        let r = s.call(Method::GET, path, &a.token, None).await;
        listed_ids(&r, &a);
        assert_eq!(r.json["totalResults"], expected, "{path}: {}", r.text);
        assert_no_leak(&r, &b, path);
    }
    let r = s
        .call(
            Method::POST,
            "/scim/v2/.search",
            &a.token,
            Some(&json!({"count": 1000})),
        )
        .await;
    assert_eq!(listed_ids(&r, &a).len(), 5);
    assert_eq!(r.json["totalResults"], 5, "{}", r.text);
    // A user's groups and a group's members are the tenant's own.
    for id in &a.users {
        let r = s
            .call(Method::GET, &format!("/scim/v2/Users/{id}"), &a.token, None)
            .await;
        assert_no_leak(&r, &b, "");
    }

    // Cursors minted by the other tenant page through this tenant's rows only.
    for rt in ["Users", "Groups"] {
        let mut cursor = String::new();
        loop {
            let r = s
                .call(
                    Method::GET,
                    &format!("/scim/v2/{rt}?count=1&cursor={cursor}"),
                    &b.token,
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let Some(next) = r.json["nextCursor"].as_str() else {
                break;
            };
            cursor = next.to_string();
            let r = s
                .call(
                    Method::GET,
                    &format!("/scim/v2/{rt}?count=1000&cursor={cursor}"),
                    &a.token,
                    None,
                )
                .await;
            if r.status == 400 {
                r.assert_error(400, Some("invalidCursor"));
            } else {
                listed_ids(&r, &a);
            }
            assert_no_leak(&r, &b, "");
        }
    }

    // Memberships naming the other tenant's users and groups are refused whole.
    let g = format!("/scim/v2/Groups/{}", a.groups[0]);
    for member in [
        json!({"value": b.users[0]}),
        json!({"value": b.users[2], "type": "User"}),
        json!({"value": b.groups[0], "type": "Group"}),
        json!({"value": b.groups[1]}),
    ] {
        let both = json!([{"value": a.users[2]}, member]);
        for body in [
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members", "value": both}]}),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "value": {"members": both}}]}),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "members", "value": both}]}),
            json!({"schemas": [PATCH_URN], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{}\"]", a.users[0])},
                {"op": "add", "path": "members", "value": [member]},
            ]}),
        ] {
            let r = s.call(Method::PATCH, &g, &a.token, Some(&body)).await;
            r.assert_error(400, Some("invalidValue"));
            assert_no_leak(&r, &b, &body.to_string());
        }
        let put = json!({"schemas": [GROUP_URN], "displayName": "alpha team 0", "members": both});
        let r = s.call(Method::PUT, &g, &a.token, Some(&put)).await;
        r.assert_error(400, Some("invalidValue"));
        assert_no_leak(&r, &b, &put.to_string());
        let post = json!({"schemas": [GROUP_URN], "displayName": "stealer", "members": both});
        let r = s
            .call(Method::POST, "/scim/v2/Groups", &a.token, Some(&post))
            .await;
        r.assert_error(400, Some("invalidValue"));
        assert_no_leak(&r, &b, &post.to_string());
    }
    // Removing the other tenant's member from one's own group removes nothing of theirs.
    let body = json!({"schemas": [PATCH_URN], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{}\"]", b.users[0])},
        {"op": "remove", "path": "members", "value": [{"value": b.users[1]}]},
    ]});
    let r = s.call(Method::PATCH, &g, &a.token, Some(&body)).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    assert_no_leak(&r, &b, &body.to_string());
    assert_eq!(
        snapshot(&s, &a.token).await,
        a_before,
        "a failed write changed alpha"
    );

    // A manager reference is an opaque value: stored as sent, never resolved against the
    // other tenant (no displayName, no $ref to its user).
    let body = json!({"schemas": [PATCH_URN], "Operations": [
        {"op": "replace", "path": format!("{ENTERPRISE_URN}:manager"), "value": {"value": b.users[0]}},
    ]});
    let path = format!("/scim/v2/Users/{}", a.users[2]);
    let r = s.call(Method::PATCH, &path, &a.token, Some(&body)).await;
    assert!(r.status.is_success() || r.status == 400, "{}", r.text);
    assert_no_leak(&r, &b, &body.to_string());
    let r = s.call(Method::GET, &path, &a.token, None).await;
    assert_no_leak(&r, &b, &body.to_string());

    // The other tenant's names are free here: no 409 tells that they exist there. A
    // client-chosen id or groups list is ignored, not matched against the other tenant.
    let body = json!({
        "schemas": [USER_URN],
        "id": b.users[0],
        "userName": "beta-user0@example.com",
        "externalId": "beta-ext0",
        "groups": [{"value": b.groups[0]}],
    });
    let r = s
        .call(Method::POST, "/scim/v2/Users", &a.token, Some(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.json["id"], b.users[0]);
    assert!(r.json.get("groups").is_none(), "{}", r.text);
    let body = json!({"schemas": [GROUP_URN], "id": b.groups[0], "displayName": "beta team 0"});
    let r = s
        .call(Method::POST, "/scim/v2/Groups", &a.token, Some(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.json["id"], b.groups[0]);

    assert_eq!(
        snapshot(&s, &b.token).await,
        b_before,
        "beta changed through alpha's token"
    );
    let r = s
        .call(
            Method::GET,
            &format!("/scim/v2/Groups/{}", b.groups[0]),
            &b.token,
            None,
        )
        .await;
    assert_eq!(member_ids(&r.json), sorted(&[&b.users[0], &b.users[1]]));
}

// --- OAuth -----------------------------------------------------------------------------------

#[tokio::test]
async fn oauth_clients_and_tokens_stay_in_their_tenant() {
    let s = TestServer::start().await;
    let (a, b) = two_tenants(&s).await;
    let b_before = snapshot(&s, &b.token).await;
    let cookie = login(&s).await;
    let a_cc = register(&s, a.slug, &[GrantType::ClientCredentials]);
    let a_code = register(&s, a.slug, &[GrantType::AuthorizationCode]);
    let b_code = register(&s, b.slug, &[GrantType::AuthorizationCode]);
    let b_cc = register(&s, b.slug, &[GrantType::ClientCredentials]);

    // A client-credentials token is the client's tenant's, whatever the request says.
    for extra in [
        vec![],
        vec![("scope", "scim")],
        vec![("tenant", "beta")],
        vec![("resource", "http://localhost/t/beta")],
    ] {
        let mut params = vec![("grant_type", "client_credentials")];
        params.extend(extra);
        let r = token_request(&s, &a_cc, &params).await;
        if r.status != 200 {
            assert_eq!(r.status, 400, "{}", r.text);
            continue;
        }
        let access = r.json["access_token"].as_str().unwrap();
        let listed = s.call(Method::GET, "/scim/v2/Users", access, None).await;
        listed_ids(&listed, &a);
        assert_eq!(listed.json["totalResults"], 3);
        assert_no_leak(&listed, &b, "");
        for id in b.ids() {
            let r = s
                .call(Method::GET, &format!("/scim/v2/Users/{id}"), access, None)
                .await;
            r.assert_error(404, None);
        }
    }

    // beta's authorization code cannot be exchanged by alpha's client; beta's own exchange
    // yields beta's tokens.
    let code = approve(&s, &cookie, &b_code.1).await;
    let r = exchange(&s, &a_code, &code).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_grant", "{}", r.text);
    assert!(r.json.get("access_token").is_none());
    let code = approve(&s, &cookie, &b_code.1).await;
    let r = exchange(&s, &b_code, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b_access = r.json["access_token"].as_str().unwrap().to_string();
    let b_refresh = r.json["refresh_token"].as_str().unwrap().to_string();

    // beta's refresh token is refused to alpha's client.
    let r = token_request(
        &s,
        &a_code,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &b_refresh),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_grant", "{}", r.text);
    assert!(r.json.get("access_token").is_none());

    // alpha's client cannot revoke beta's tokens (RFC 7009 §2.1: it answers 200 and does
    // nothing).
    for token in [&b_access, &b_refresh] {
        let auth = basic(&a_cc.1, &a_cc.2);
        let r = s
            .raw(
                Method::POST,
                "/oauth/revoke",
                &[FORM, ("authorization", &auth)],
                form(&[("token", token)]),
            )
            .await;
        assert!(r.status == 200 || r.status == 400, "{}", r.text);
    }
    let r = s.call(Method::GET, "/scim/v2/Users", &b_access, None).await;
    listed_ids(&r, &b);
    assert_eq!(r.json["totalResults"], 3);

    // beta's access token reaches beta only.
    for id in a.ids() {
        for rt in ["Users", "Groups"] {
            let r = s
                .call(Method::GET, &format!("/scim/v2/{rt}/{id}"), &b_access, None)
                .await;
            r.assert_error(404, None);
            assert_no_leak(&r, &a, &id);
        }
    }

    // beta's refresh still works for beta.
    let r = token_request(
        &s,
        &b_code,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &b_refresh),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = token_request(&s, &b_cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(snapshot(&s, &b.token).await, b_before);
}

// --- The admin UI ------------------------------------------------------------------------------

/// The CSRF token of the logged-in admin, from any tenant page.
async fn csrf(s: &TestServer, cookie: &str, slug: &str) -> String {
    let page = s
        .raw(
            Method::GET,
            &format!("/t/{slug}/connection"),
            &[("cookie", cookie)],
            "",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    hidden_field(&page.text, "csrf").unwrap()
}

#[tokio::test]
async fn the_admin_ui_never_shows_or_changes_another_tenant_through_a_tenant_url() {
    let s = TestServer::start().await;
    let (a, b) = two_tenants(&s).await;
    let cookie = login(&s).await;
    let b_cc = register(&s, b.slug, &[GrantType::ClientCredentials]);
    let r = token_request(&s, &b_cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b_access = r.json["access_token"].as_str().unwrap().to_string();

    let (b_members, b_token_ids, b_oauth_token_ids) = {
        let conn = s.db.conn().unwrap();
        let tid = db::tenants::by_slug(&conn, b.slug).unwrap().id;
        let members: Vec<String> = conn
            .prepare("SELECT id FROM members WHERE tenant_id = ?1")
            .unwrap()
            .query_map([tid], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let tokens: Vec<i64> = db::tokens::list(&conn, Some(tid))
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        let oauth_tokens: Vec<i64> = conn
            .prepare(
                "SELECT k.id FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id
                 JOIN oauth_clients c ON c.id = g.client_id WHERE c.tenant_id = ?1",
            )
            .unwrap()
            .query_map([tid], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (members, tokens, oauth_tokens)
    };
    assert_eq!(b_members.len(), 3, "sync made members of beta's users");
    assert!(!b_oauth_token_ids.is_empty());

    // beta's member and group pages under alpha's URL are not found.
    let get = |path: String| {
        let cookie = cookie.clone();
        let s = &s;
        async move { s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await }
    };
    let mut pages: Vec<String> = Vec::new();
    pages.extend(b_members.iter().map(|m| format!("/t/alpha/people/{m}")));
    pages.extend(b.groups.iter().map(|g| format!("/t/alpha/groups/{g}")));
    pages.extend(b.users.iter().map(|u| format!("/t/alpha/groups/{u}")));
    pages.extend(b.users.iter().map(|u| format!("/t/alpha/people/{u}")));
    for path in &pages {
        let r = get(path.clone()).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_no_leak(&r, &b, path);
    }

    // Every alpha page, list and export shows nothing of beta.
    for path in [
        "/t/alpha",
        "/t/alpha/connection",
        "/t/alpha/oauth",
        "/t/alpha/people",
        "/t/alpha/people?q=beta",
        "/t/alpha/people?q=example.com&status=active",
        "/t/alpha/people/export.csv",
        "/t/alpha/people/export.json",
        "/t/alpha/groups",
        "/t/alpha/groups?q=team",
        "/t/alpha/audit",
        "/t/alpha/audit/export.jsonl",
        "/t/alpha/sync",
        "/t/alpha/sync/report.csv",
        "/t/alpha/sync/report.json",
        "/t/alpha/roles",
        "/t/alpha/settings",
    ] {
        let r = get(path.to_string()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_no_leak(&r, &b, "");
        for m in &b_members {
            assert!(
                !r.text.contains(m.as_str()),
                "{path} shows beta's member {m}"
            );
        }
        assert!(
            !r.text.contains(&b_cc.1),
            "{path} shows beta's OAuth client"
        );
    }
    for g in &a.groups {
        let r = get(format!("/t/alpha/groups/{g}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_no_leak(&r, &b, "");
    }

    // State changes through alpha's URLs on beta's rows are not found and change nothing.
    let csrf = csrf(&s, &cookie, "alpha").await;
    let mut posts: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    for m in &b_members {
        posts.push((
            format!("/t/alpha/people/{m}/managed"),
            vec![("managed", "false")],
        ));
    }
    for t in &b_token_ids {
        posts.push((format!("/t/alpha/tokens/{t}/revoke"), vec![]));
        posts.push((format!("/t/alpha/tokens/{t}/regenerate"), vec![]));
    }
    posts.push((format!("/t/alpha/oauth/{}/rotate", b_cc.0), vec![]));
    posts.push((format!("/t/alpha/oauth/{}/revoke", b_cc.0), vec![]));
    for t in &b_oauth_token_ids {
        posts.push((format!("/t/alpha/oauth/tokens/{t}/revoke"), vec![]));
    }
    for (path, fields) in &posts {
        let mut fields = fields.clone();
        fields.push(("csrf", &csrf));
        let r = s
            .raw(
                Method::POST,
                path,
                &[("cookie", &cookie), FORM],
                form(&fields),
            )
            .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_no_leak(&r, &b, path);
    }

    // beta's SCIM token, OAuth client secret and access token all still work, and its
    // members are still managed.
    let r = s.call(Method::GET, "/scim/v2/Users", &b.token, None).await;
    assert_eq!(r.json["totalResults"], 3, "{}", r.text);
    let r = s.call(Method::GET, "/scim/v2/Users", &b_access, None).await;
    assert_eq!(r.json["totalResults"], 3, "{}", r.text);
    let r = token_request(&s, &b_cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let conn = s.db.conn().unwrap();
    let unmanaged: i64 = conn
        .query_row("SELECT COUNT(*) FROM members WHERE managed = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(unmanaged, 0);
}

/// An admin deletes a tenant: at once its token and API key are refused and it is gone
/// from every page, then its data is removed in the background, while the other tenant
/// keeps every row. Its audit entries stay, a new tenant with the freed slug starts a
/// chain of its own, and the last tenant cannot be deleted.
#[tokio::test]
async fn a_deleted_tenant_is_gone_at_once_and_takes_nothing_of_another() {
    let s = TestServer::start().await;
    let (a, b) = two_tenants(&s).await;
    let b_before = snapshot(&s, &b.token).await;
    let alpha = db::tenants::by_slug(&s.db.conn().unwrap(), "alpha")
        .unwrap()
        .id;
    let key = s.api_key(Some(alpha)).await;
    // An app reading every tenant, as a WorkOS environment key does.
    let every = format!("Bearer {}", s.api_key(None).await);
    let password = "correct horse battery";
    s.create_admin("alice", password);
    let admin = Admin::login(&s, "alice", password).await;

    // An app of the tenant long-polls its feed from the newest event.
    let bearer = format!("Bearer {key}");
    let feed = s
        .raw(
            Method::GET,
            "/api/v1/events?limit=1",
            &[("authorization", &bearer)],
            "",
        )
        .await;
    let newest = feed.json["list_metadata"]["events_cursor"]
        .as_i64()
        .unwrap();
    let poll = {
        let (url, bearer) = (
            s.url(&format!("/api/v1/events?after={newest}&wait=20")),
            bearer.clone(),
        );
        tokio::spawn(async move { long_poll(&url, &bearer).await })
    };

    let page = admin.get(&s, "/tenants/alpha/delete").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("3 users and 2 groups"), "{}", page.text);
    assert!(page.text.contains("Apps are not told"), "{}", page.text);
    // The slug typed wrong, or a wrong password: nothing happens.
    for body in [
        "confirm=alph&current=correct+horse+battery",
        "confirm=alpha&current=guess",
    ] {
        let r = admin.post(&s, "/tenants/alpha/delete", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        let r = s.call(Method::GET, "/scim/v2/Users", &a.token, None).await;
        assert_eq!(r.status, 200, "{body}: still there");
    }
    let r = admin
        .post(
            &s,
            "/tenants/alpha/delete",
            "confirm=alpha&current=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);

    // At once: its credentials are refused, its pages and its name are gone.
    let r = s.call(Method::GET, "/scim/v2/Users", &a.token, None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s
        .raw(
            Method::GET,
            "/api/v1/members",
            &[("authorization", &format!("Bearer {key}"))],
            "",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(admin.get(&s, "/t/alpha/").await.status, 404);
    let tenants = admin.get(&s, "/tenants").await;
    assert!(!tenants.text.contains("/t/alpha/"), "{}", tenants.text);
    // An app reading every tenant sees the others as before, while the deleted tenant's
    // rows are still there to purge.
    assert!(
        !db::tenants::deleting(&s.db.conn().unwrap())
            .unwrap()
            .is_empty()
    );
    for path in ["/directory_users?limit=100", "/directory_groups?limit=100"] {
        let r = s
            .raw(Method::GET, path, &[("authorization", &every)], "")
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(!r.text.contains("alpha"), "{path}: {}", r.text);
    }
    // Of its events, that app reads one: the directory's `dsync.deleted`.
    let deleted = dsync_deleted(&s, &every).await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let directory = &deleted[0]["data"];
    assert_eq!(directory["id"], "directory_alpha");
    assert_eq!(directory["organization_id"], "org_alpha");
    assert_eq!(directory["state"], "deleting");
    assert_eq!(directory["object"], "directory");
    assert!(directory.get("external_key").is_none(), "{directory}");
    let users = s
        .raw(
            Method::GET,
            "/directory_users?limit=100",
            &[("authorization", &every)],
            "",
        )
        .await;
    assert_eq!(
        users.json["data"].as_array().unwrap().len(),
        3,
        "beta's: {}",
        users.text
    );

    // Then its data goes, and nothing of the other tenant's.
    let conn = s.db.conn().unwrap();
    let left = |table: &str| -> i64 {
        conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = ?1"),
            [alpha],
            |r| r.get(0),
        )
        .unwrap()
    };
    for _ in 0..200 {
        if db::tenants::deleting(&conn).unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for table in ["users", "groups", "members", "scim_requests"] {
        assert_eq!(left(table), 0, "{table}");
    }
    // All but the one event that outlives it, still read as before.
    assert_eq!(left("events"), 1);
    assert_eq!(dsync_deleted(&s, &every).await, deleted);
    let only = s
        .raw(
            Method::GET,
            "/events?events=dsync.deleted&limit=100",
            &[("authorization", &every)],
            "",
        )
        .await;
    assert_eq!(
        only.json["data"].as_array().unwrap(),
        &deleted,
        "{}",
        only.text
    );
    // The poll that was waiting is told its key no longer works, not that its cursor,
    // whose events went with the tenant, is past the newest.
    let polled = poll.await.unwrap();
    assert!(
        polled.starts_with("HTTP/1.1 401"),
        "the waiting poll: {polled}"
    );
    let in_tenants: i64 = conn
        .query_row("SELECT count(*) FROM tenants WHERE id = ?1", [alpha], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(in_tenants, 0);
    assert!(left("audit_log") > 0, "its audit entries stay");
    assert_eq!(snapshot(&s, &b.token).await, b_before);
    let audit = admin.get(&s, "/audit?action=tenant.deleted").await;
    assert!(audit.text.contains("tenant/alpha"), "{}", audit.text);
    // The deletion links to the tenant's kept log, which reads, verifies and exports as a
    // live tenant's does; no other id has such a page.
    let kept = format!("/audit/deleted/{alpha}");
    assert!(
        audit.text.contains(&format!("href=\"{kept}\"")),
        "{}",
        audit.text
    );
    let page = admin.get(&s, &kept).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("deleted tenant alpha"), "{}", page.text);
    assert!(page.text.contains("scim.post"), "{}", page.text);
    let verified = admin.get(&s, &format!("{kept}?verify=1")).await;
    assert!(
        verified.text.contains("The chain holds"),
        "{}",
        verified.text
    );
    let export = admin.get(&s, &format!("{kept}/export.jsonl")).await;
    assert_eq!(export.status, 200);
    assert!(
        export.text.contains("\"action\":\"scim.post\""),
        "{}",
        export.text
    );
    let tenants = admin.get(&s, "/tenants").await;
    assert!(tenants.text.contains("Deleted tenants"), "{}", tenants.text);
    assert!(
        tenants.text.contains(&format!("href=\"{kept}\"")),
        "{}",
        tenants.text
    );
    let beta = db::tenants::by_slug(&conn, "beta").unwrap().id;
    for other in [
        format!("/audit/deleted/{beta}"),
        "/audit/deleted/x".into(),
        format!("/audit/deleted/0{alpha}"),
        format!("/audit/deleted/+{alpha}"),
    ] {
        assert_eq!(admin.get(&s, &other).await.status, 404, "{other}");
    }

    // The slug is free; the new tenant's id is new, so its audit chain is its own.
    let again = s.token_for("alpha");
    let new_id = db::tenants::by_slug(&conn, "alpha").unwrap().id;
    assert!(new_id > alpha, "{new_id} after {alpha}");
    let r = s.call(Method::GET, "/scim/v2/Users", &again, None).await;
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);
    drop(conn);

    // The last tenant cannot be deleted.
    for slug in ["alpha", "default"] {
        let r = admin
            .post(
                &s,
                &format!("/tenants/{slug}/delete"),
                &format!("confirm={slug}&current=correct+horse+battery"),
            )
            .await;
        assert_eq!(r.status, 303, "{slug}: {}", r.text);
    }
    let page = admin.get(&s, "/tenants/beta/delete").await;
    assert!(page.text.contains("only tenant"), "{}", page.text);
    let r = admin
        .post(
            &s,
            "/tenants/beta/delete",
            "confirm=beta&current=correct+horse+battery",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("last tenant"), "{}", r.text);
    let r = s.call(Method::GET, "/scim/v2/Users", &b.token, None).await;
    assert_eq!(r.status, 200);
}

/// A write whose token was checked before its tenant's deletion committed (the command
/// line's, which a server's token cache learns of within a second) is refused in its
/// transaction, not acknowledged and then purged.
#[tokio::test]
async fn a_write_that_raced_its_tenants_deletion_is_refused() {
    let s = TestServer::start().await;
    s.token_for("alpha");
    let conn = s.db.conn().unwrap();
    let alpha = db::tenants::by_slug(&conn, "alpha").unwrap().id;
    db::tenants::mark_deleting(&conn, alpha).unwrap();
    let actor = scimd::model::Actor::cli();
    let user = scimd::ops::users::create(
        &s.db,
        &actor,
        alpha,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "late@example.com"}),
    )
    .await;
    let group = scimd::ops::groups::create(
        &s.db,
        &actor,
        alpha,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Late"}),
    )
    .await;
    for outcome in [user.map(drop), group.map(drop)] {
        assert!(
            matches!(
                outcome,
                Err(scimd::ops::Error::Db(db::DbError::TenantDeleted))
            ),
            "{outcome:?}"
        );
    }
    for table in ["users", "groups"] {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = ?1"),
                [alpha],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}

/// The events a key of every tenant reads from `/events` that speak of alpha: the
/// `dsync.deleted` of its directory, and nothing else.
async fn dsync_deleted(s: &TestServer, every: &str) -> Vec<serde_json::Value> {
    let r = s
        .raw(
            Method::GET,
            "/events?range_start=2000-01-01T00:00:00Z&limit=100",
            &[("authorization", every)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let of_alpha: Vec<_> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("alpha"))
        .cloned()
        .collect();
    for e in &of_alpha {
        assert_eq!(e["event"], "dsync.deleted", "{e}");
    }
    of_alpha
}

/// A GET of `url` with `bearer`, over a connection of its own: the whole answer.
async fn long_poll(url: &str, bearer: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
