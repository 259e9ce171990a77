//! OAuth 2.0: scimd as the authorization server of its own SCIM API. The first test plays
//! Okta end to end with an admin in a real browser; the others drive every branch of the
//! authorization, token and revocation endpoints over plain HTTP.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::browser::Browser;
use common::*;
use hyper::Method;
use scimd::auth::oauth::{self, GrantType};
use scimd::config::HttpConfig;
use scimd::db;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Registers a client directly in the database; returns (client_id, client_secret).
fn register(
    s: &TestServer,
    tenant: &str,
    grants: &[GrantType],
    redirect_uris: &[&str],
) -> (String, String) {
    let conn = s.db.conn().unwrap();
    let tenant_id = match db::tenants::by_slug(&conn, tenant) {
        Ok(t) => t.id,
        Err(_) => db::tenants::create(&conn, tenant, tenant).unwrap().id,
    };
    let secret = oauth::generate_client_secret();
    let client_id = oauth::generate_client_id();
    let uris: Vec<String> = redirect_uris.iter().map(|u| u.to_string()).collect();
    db::oauth::create_client(
        &conn,
        &db::oauth::NewClient {
            tenant_id,
            client_id: &client_id,
            name: "Okta",
            secret_hash: &secret.hash,
            grant_types: grants,
            redirect_uris: &uris,
        },
    )
    .unwrap();
    (client_id, secret.secret)
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn form(params: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        f.append_pair(k, v);
    }
    f.finish()
}

/// A token-endpoint request authenticated with HTTP Basic.
async fn token(s: &TestServer, client: &(String, String), params: &[(&str, &str)]) -> Resp {
    let auth = basic(&client.0, &client.1);
    s.raw(
        Method::POST,
        "/oauth/token",
        &[FORM, ("authorization", &auth)],
        form(params),
    )
    .await
}

/// Asserts an RFC 6749 §5.2 error.
fn assert_oauth_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["error"], error, "{}", r.text);
    assert!(
        r.json["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

fn query_of(location: &str) -> HashMap<String, String> {
    let q = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Logs alice in over plain HTTP; returns the session cookie.
async fn login(s: &TestServer) -> String {
    s.create_admin("alice", PASSWORD);
    s.login_cookie("alice", PASSWORD).await
}

/// `/oauth/authorize?…` for these parameters.
fn authorize_path(params: &[(&str, &str)]) -> String {
    format!("/oauth/authorize?{}", form(params))
}

/// Shows the consent page to the logged-in admin and posts `decision`; returns the
/// redirect's Location.
async fn decide(s: &TestServer, cookie: &str, params: &[(&str, &str)], decision: &str) -> String {
    let page = s
        .raw(
            Method::GET,
            &authorize_path(params),
            &[("cookie", cookie)],
            "",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let mut fields: Vec<(String, String)> = [
        "csrf",
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
    ]
    .iter()
    .filter_map(|k| hidden_field(&page.text, k).map(|v| (k.to_string(), v)))
    .collect();
    fields.push(("decision".into(), decision.into()));
    let body = form(
        &fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let r = s
        .raw(
            Method::POST,
            "/oauth/authorize",
            &[("cookie", cookie), FORM],
            body,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    r.header("location").unwrap().to_string()
}

/// Approves an authorization request with PKCE; returns the code.
async fn approve(s: &TestServer, cookie: &str, client_id: &str, redirect: &str) -> String {
    let challenge = oauth::s256(VERIFIER);
    let location = decide(
        s,
        cookie,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "approve",
    )
    .await;
    assert!(location.starts_with(redirect), "{location}");
    let q = query_of(&location);
    assert_eq!(q["state"], "st");
    q["code"].clone()
}

async fn exchange(s: &TestServer, client: &(String, String), code: &str, redirect: &str) -> Resp {
    token(
        s,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn scim_status(s: &TestServer, access_token: &str) -> u16 {
    s.call(Method::GET, "/scim/v2/Users?count=1", access_token, None)
        .await
        .status
        .as_u16()
}

// --- A tiny "IdP" for the browser test ------------------------------------------------------

/// An HTTP listener playing Okta's side: `/` is the admin console with the "Authenticate"
/// link, `/start` redirects the browser to scimd's authorization endpoint, `/callback` is
/// the redirect URI.
struct Idp {
    addr: SocketAddr,
}

impl Idp {
    async fn bind() -> (Idp, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Idp { addr }, listener)
    }

    /// On `localhost`, so it is a different site from scimd on 127.0.0.1, as Okta is.
    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    fn serve(listener: tokio::net::TcpListener, authorize_url: String) {
        use http_body_util::Full;
        use hyper_util::rt::TokioIo;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let authorize_url = authorize_url.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let authorize_url = authorize_url.clone();
                        async move {
                            let page: &'static [u8] = if req.uri().path() == "/" {
                                b"<!doctype html><title>IdP</title><a id=authenticate href=/start>Authenticate with scimd</a>"
                            } else {
                                b"<!doctype html><title>IdP</title><p>Okta got the answer.</p>"
                            };
                            let mut r =
                                hyper::Response::new(Full::new(bytes::Bytes::from_static(page)));
                            if req.uri().path() == "/start" {
                                *r.status_mut() = hyper::StatusCode::FOUND;
                                r.headers_mut()
                                    .insert("location", authorize_url.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
}

async fn wait_for_path(b: &Browser, path: &str) {
    for _ in 0..250 {
        if b.path().await == path {
            let state = b
                .client
                .execute("return document.readyState", vec![])
                .await
                .unwrap();
            if state == "complete" {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the browser did not reach {path}; it is at {}",
        b.client.current_url().await.unwrap()
    );
}

/// Okta's "Authenticate with …": the admin, sent over from the IdP's site, logs in,
/// approves, and the IdP gets a code; it exchanges the code with PKCE, provisions, refreshes,
/// and is locked out once the admin revokes the approval. A second app registered in the UI
/// uses client credentials, and rotating its secret locks the old secret out.
#[tokio::test]
async fn okta_connects_with_the_authorization_code_flow_in_a_real_browser() {
    let s = TestServer::start().await;
    s.create_admin("alice", PASSWORD);
    let Some(b) = Browser::start().await else {
        return;
    };
    let (idp, listener) = Idp::bind().await;
    let redirect = idp.url("/callback");
    let okta = register(&s, "default", &[GrantType::AuthorizationCode], &[&redirect]);
    let challenge = oauth::s256(VERIFIER);
    let authorize = s.url(&authorize_path(&[
        ("response_type", "code"),
        ("client_id", &okta.0),
        ("redirect_uri", &redirect),
        ("state", "okta-state-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]));
    Idp::serve(listener, authorize);

    // Not logged in: the authorization request survives the login. The admin clicks
    // "Authenticate" on the IdP's page, so the navigation is cross-site, as with Okta.
    b.goto(&idp.url("/")).await;
    b.find("#authenticate").await.click().await.unwrap();
    wait_for_path(&b, "/login").await;
    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
    assert_eq!(b.path().await, "/oauth/authorize");
    assert!(
        b.title().await.starts_with("Authorize Okta"),
        "{}",
        b.title().await
    );
    let body = b.body().await;
    assert!(
        body.contains("Default") && body.contains("localhost"),
        "{body}"
    );
    b.screenshot("oauth-consent").await;

    // Approve: the form posts to scimd, which redirects to the IdP (the consent page's CSP
    // lets the redirect through).
    b.click("#approve").await;
    let at = b.client.current_url().await.unwrap();
    assert_eq!(at.path(), "/callback", "{at}");
    let q: HashMap<String, String> = at.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "okta-state-1");
    let code = q["code"].clone();

    // The IdP exchanges the code, with PKCE and HTTP Basic.
    let r = exchange(&s, &okta, &code, &redirect).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 3600);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let access = r.json["access_token"].as_str().unwrap().to_string();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_string();

    // It provisions with the access token.
    let u = s
        .call(
            Method::POST,
            "/scim/v2/Users",
            &access,
            Some(&json!({"schemas":[USER_URN],"userName":"ada@example.com","active":true})),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text);

    // It refreshes, and the new access token works too.
    let r = token(
        &s,
        &okta,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access2 = r.json["access_token"].as_str().unwrap().to_string();
    assert_ne!(
        r.json["refresh_token"].as_str().unwrap(),
        refresh,
        "rotated"
    );
    assert_eq!(scim_status(&s, &access2).await, 200);

    // Already logged in, a second authorization goes straight to the consent page: the
    // cross-site arrival is reloaded from scimd's own site, which brings the session.
    b.goto(&idp.url("/")).await;
    b.find("#authenticate").await.click().await.unwrap();
    wait_for_path(&b, "/oauth/authorize").await;
    assert!(b.title().await.starts_with("Authorize"));
    b.click("#deny").await;
    let at = b.client.current_url().await.unwrap();
    let q: HashMap<String, String> = at.query_pairs().into_owned().collect();
    assert_eq!(q["error"], "access_denied", "{at}");
    assert_eq!(q["state"], "okta-state-1");

    // The admin sees the tokens and revokes the approval from the refresh token's row.
    b.goto(&s.url("/t/default/oauth")).await;
    let body = b.body().await;
    assert!(body.contains("approved by alice"), "{body}");
    assert!(!body.contains(&access2) && !body.contains(&refresh));
    b.screenshot("oauth-apps").await;
    b.click_and_confirm("//tr[td[text()='refresh']]//button")
        .await;
    assert!(b.body().await.contains("Refresh token revoked"));
    assert_eq!(scim_status(&s, &access2).await, 401);
    assert_eq!(scim_status(&s, &access).await, 401);

    // A second app, registered in the UI, uses client credentials.
    b.fill("input[name=name]", "Entra ID").await;
    b.find("input[name=authorization_code]")
        .await
        .click()
        .await
        .unwrap();
    b.find("input[name=client_credentials]")
        .await
        .click()
        .await
        .unwrap();
    b.click("form[action$='/oauth'] button[type=submit]").await;
    let entra = (
        b.value("#new-client-id").await,
        b.value("#new-client-secret").await,
    );
    assert!(entra.1.starts_with("scimd_cs_"), "{}", b.body().await);
    b.goto(&s.url("/t/default/oauth")).await;
    assert!(!b.body().await.contains(&entra.1), "shown only once");
    let r = s
        .raw(
            Method::POST,
            "/oauth/token",
            &[FORM],
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &entra.0),
                ("client_secret", &entra.1),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("refresh_token").is_none());
    let cc = r.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &cc).await, 200);

    // Rotating its secret in the UI: the old one stops working, the new one works.
    b.click_and_confirm("//tr[td[text()='Entra ID']]//form[contains(@action,'/rotate')]//button")
        .await;
    let rotated = b.value("#new-client-secret").await;
    assert_ne!(rotated, entra.1);
    let r = token(&s, &entra, &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = token(
        &s,
        &(entra.0.clone(), rotated),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Revoking the app kills its tokens.
    b.goto(&s.url("/t/default/oauth")).await;
    b.click_and_confirm("//tr[td[text()='Entra ID']]//form[contains(@action,'/revoke')]//button")
        .await;
    assert!(b.body().await.contains("revoked"));
    assert_eq!(scim_status(&s, &cc).await, 401);
    b.close().await;
}

/// The authorization endpoint: login first, errors on the page until the redirect URI is
/// known, then errors back to the client; deny; CSRF; the consent page's CSP.
#[tokio::test]
async fn authorization_requests_are_checked_before_anything_is_redirected() {
    let s = TestServer::start().await;
    let redirect = "http://127.0.0.1:9/callback";
    let okta = register(&s, "default", &[GrantType::AuthorizationCode], &[redirect]);
    let cc = register(&s, "default", &[GrantType::ClientCredentials], &[redirect]);
    let base = [
        ("response_type", "code"),
        ("client_id", okta.0.as_str()),
        ("redirect_uri", redirect),
        ("state", "s 1"),
    ];

    // No session: to the login page, coming back with the whole request.
    let r = s.raw(Method::GET, &authorize_path(&base), &[], "").await;
    assert_eq!(r.status, 303);
    let location = r.header("location").unwrap();
    let next = &query_of(location)["next"];
    assert_eq!(*next, authorize_path(&base), "{location}");
    // An unknown client or an unregistered redirect URI gets its error page at once, before
    // any login: the bad URI is never carried along (RFC 6749 §4.1.2.1).
    for params in [
        [("client_id", "nope"), ("redirect_uri", redirect)],
        [
            ("client_id", okta.0.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    ] {
        let mut bad = vec![("response_type", "code")];
        bad.extend(params);
        let r = s.raw(Method::GET, &authorize_path(&bad), &[], "").await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.header("location").is_none());
        assert!(!r.text.contains("evil.example/cb\""), "{}", r.text);
    }

    let cookie = login(&s).await;
    let get = |params: Vec<(&'static str, String)>| {
        let path = format!(
            "/oauth/authorize?{}",
            form(
                &params
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>()
            )
        );
        let cookie = cookie.clone();
        let s = &s;
        async move { s.raw(Method::GET, &path, &[("cookie", &cookie)], "").await }
    };
    let with = |extra: &[(&'static str, &str)]| {
        let mut p: Vec<(&'static str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", okta.0.clone()),
            ("redirect_uri", redirect.into()),
            ("state", "s 1".into()),
        ];
        for (k, v) in extra {
            p.retain(|(name, _)| name != k);
            if !v.is_empty() {
                p.push((k, v.to_string()));
            }
        }
        p
    };

    // Shown on the page, never redirected: unknown client, unregistered redirect URI.
    for (params, needle) in [
        (with(&[("client_id", "")]), "no client_id"),
        (with(&[("client_id", "scimd-nope")]), "no OAuth app"),
        (
            with(&[("redirect_uri", "http://127.0.0.1:9/callback/")]),
            "is not registered",
        ),
        (
            with(&[("redirect_uri", "https://evil.example/callback")]),
            "is not registered",
        ),
    ] {
        let r = get(params).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.header("location").is_none());
        assert!(r.text.contains(needle), "{needle}: {}", r.text);
    }

    // A scope scimd does not know is ignored: the consent page is shown (what the code
    // grants, `scim` alone, is checked at the exchange below).
    let r = get(with(&[("scope", "scim offline_access")])).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Back to the registered redirect URI, with the state.
    for (params, error) in [
        (
            with(&[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (with(&[("response_type", "")]), "invalid_request"),
        (
            with(&[("code_challenge", &oauth::s256(VERIFIER))]),
            "invalid_request",
        ),
        (
            with(&[
                ("code_challenge", &oauth::s256(VERIFIER)),
                ("code_challenge_method", "plain"),
            ]),
            "invalid_request",
        ),
        (with(&[("client_id", &cc.0)]), "unauthorized_client"),
    ] {
        let r = get(params).await;
        assert_eq!(r.status, 303, "{error}: {}", r.text);
        let location = r.header("location").unwrap();
        assert!(location.starts_with(redirect), "{location}");
        let q = query_of(location);
        assert_eq!(q["error"], error, "{location}");
        assert_eq!(q["state"], "s 1");
    }
    // A repeated parameter.
    let r = s
        .raw(
            Method::GET,
            &format!("{}&state=again", authorize_path(&base)),
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(
        query_of(r.header("location").unwrap())["error"],
        "invalid_request"
    );

    // The consent page names app and tenant and lets its form lead to the client's origin.
    let page = get(with(&[])).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Okta") && page.text.contains("Default"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // The decision needs the session's CSRF token.
    let r = s
        .raw(
            Method::POST,
            "/oauth/authorize",
            &[("cookie", &cookie), FORM],
            form(&[
                ("client_id", &okta.0),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("decision", "approve"),
                ("csrf", "forged"),
            ]),
        )
        .await;
    assert_eq!(r.status, 403);

    // Deny.
    let location = decide(&s, &cookie, &base, "deny").await;
    let q = query_of(&location);
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "s 1")
    );
    assert!(!q.contains_key("code"));

    // Without redirect_uri, the only registered one is used, and then the token request
    // may omit it too; without PKCE, none is required.
    let location = decide(
        &s,
        &cookie,
        &[("response_type", "code"), ("client_id", &okta.0)],
        "approve",
    )
    .await;
    let code = query_of(&location)["code"].clone();
    let r = token(
        &s,
        &okta,
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Every error branch of the authorization-code and refresh-token grants.
#[tokio::test]
async fn codes_are_single_use_and_bound_to_client_redirect_and_pkce() {
    let s = TestServer::start().await;
    let redirect = "http://127.0.0.1:9/callback";
    let okta = register(&s, "default", &[GrantType::AuthorizationCode], &[redirect]);
    let other = register(&s, "default", &[GrantType::AuthorizationCode], &[redirect]);
    let cookie = login(&s).await;

    // PKCE mismatch; the failed attempt spends the code.
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = token(
        &s,
        &okta,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            (
                "code_verifier",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            ),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("PKCE")
    );
    assert_oauth_error(
        &exchange(&s, &okta, &code, redirect).await,
        400,
        "invalid_grant",
    );

    // Missing verifier, other redirect URI, missing redirect URI.
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = token(
        &s,
        &okta,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = exchange(&s, &okta, &code, "http://127.0.0.1:9/other").await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = token(
        &s,
        &okta,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");

    // Another client cannot use the code; the right one still can, once. Presenting it
    // again revokes the tokens it gave.
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    assert_oauth_error(
        &exchange(&s, &other, &code, redirect).await,
        400,
        "invalid_grant",
    );
    let r = exchange(&s, &okta, &code, redirect).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &access).await, 200);
    let again = exchange(&s, &okta, &code, redirect).await;
    assert_oauth_error(&again, 400, "invalid_grant");
    assert_eq!(
        scim_status(&s, &access).await,
        401,
        "reuse revoked the grant"
    );

    // An unknown or expired code.
    assert_oauth_error(
        &exchange(&s, &okta, "scimd_ac_nope", redirect).await,
        400,
        "invalid_grant",
    );
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    s.db.conn()
        .unwrap()
        .execute(
            "UPDATE oauth_codes SET expires_at = '2000-01-01T00:00:00.000000Z'",
            [],
        )
        .unwrap();
    assert_oauth_error(
        &exchange(&s, &okta, &code, redirect).await,
        400,
        "invalid_grant",
    );

    // Refresh rotation: reusing a spent refresh token revokes the whole family.
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = exchange(&s, &okta, &code, redirect).await;
    let refresh1 = r.json["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        let s = &s;
        let okta = okta.clone();
        async move {
            token(
                s,
                &okta,
                &[("grant_type", "refresh_token"), ("refresh_token", &t)],
            )
            .await
        }
    };
    let r = refresh(refresh1.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access2 = r.json["access_token"].as_str().unwrap().to_string();
    let refresh2 = r.json["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &access2).await, 200);
    assert_oauth_error(&refresh(refresh1).await, 400, "invalid_grant");
    assert_eq!(
        scim_status(&s, &access2).await,
        401,
        "the family is revoked"
    );
    assert_oauth_error(&refresh(refresh2).await, 400, "invalid_grant");

    // A refresh retried after a lost answer (nothing it issued was used) works once more,
    // within a minute; the lost tokens are revoked, and a third try revokes the family.
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = exchange(&s, &okta, &code, redirect).await;
    let spent = r.json["refresh_token"].as_str().unwrap().to_string();
    let lost = refresh(spent.clone()).await;
    assert_eq!(lost.status, 200, "{}", lost.text);
    let lost_access = lost.json["access_token"].as_str().unwrap().to_string();
    let lost_refresh = lost.json["refresh_token"].as_str().unwrap().to_string();
    let retried = refresh(spent.clone()).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    let access3 = retried.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &access3).await, 200);
    assert_eq!(
        scim_status(&s, &lost_access).await,
        401,
        "the lost tokens are revoked"
    );
    assert_oauth_error(&refresh(lost_refresh).await, 400, "invalid_grant");
    assert_oauth_error(&refresh(spent).await, 400, "invalid_grant");
    assert_eq!(
        scim_status(&s, &access3).await,
        401,
        "a third try revokes the family"
    );

    // A refresh token is bound to its client, and the scope cannot grow (below).
    let code = approve(&s, &cookie, &okta.0, redirect).await;
    let r = exchange(&s, &okta, &code, redirect).await;
    let rt = r.json["refresh_token"].as_str().unwrap().to_string();
    let at = r.json["access_token"].as_str().unwrap().to_string();
    let r = token(
        &s,
        &other,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = token(
        &s,
        &okta,
        &[("grant_type", "refresh_token"), ("refresh_token", &at)],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
    let r = token(
        &s,
        &okta,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "scim admin"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["scope"], "scim",
        "a scope scimd lacks is ignored, never granted"
    );

    // An expired access token is refused by SCIM.
    let fresh = r.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &fresh).await, 200);
    // Through the server's own writer, as the clock would have it: the server remembers
    // tokens it has seen and must notice.
    s.db.write(|tx| {
        tx.execute(
            "UPDATE oauth_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE kind = 'access'",
            [],
        )
        .map_err(scimd::db::DbError::from)
    })
    .await
    .unwrap();
    let r = s.call(Method::GET, "/scim/v2/Users", &fresh, None).await;
    r.assert_error(401, None);
    // Static SCIM tokens keep working beside OAuth.
    assert_eq!(s.get("/scim/v2/Users").await.status, 200);

    // The audit log has every approval, grant, refresh and refusal, and no secret.
    let conn = s.db.conn().unwrap();
    let log = db::audit::list(&conn, &db::audit::Filter::default()).unwrap();
    let count = |action: db::audit::Action, outcome: db::audit::Outcome| {
        log.iter()
            .filter(|r| r.entry.action == action && r.entry.outcome == outcome)
            .count()
    };
    use db::audit::{Action, Outcome};
    assert_eq!(
        count(Action::OAuthAuthorizationApproved, Outcome::Success),
        9
    );
    assert_eq!(count(Action::OAuthTokenIssued, Outcome::Success), 4);
    assert_eq!(count(Action::OAuthTokenRefreshed, Outcome::Success), 4);
    assert_eq!(
        count(Action::OAuthGrantRevoked, Outcome::Failure),
        3,
        "code reuse, refresh reuse, and reuse past the grace"
    );
    assert!(count(Action::OAuthTokenRefused, Outcome::Failure) >= 10);
    let approved = log
        .iter()
        .find(|r| r.entry.action == Action::OAuthAuthorizationApproved)
        .unwrap();
    assert_eq!(approved.entry.actor, "admin:alice");
    assert_eq!(approved.entry.tenant_id, Some(1));
    let refused = log
        .iter()
        .find(|r| r.entry.action == Action::OAuthTokenRefused)
        .unwrap();
    assert_eq!(refused.entry.status, Some(400));
    assert_eq!(refused.entry.actor, format!("oauth-client:{}", okta.0));
    let all = log
        .iter()
        .map(|r| r.to_json_line())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [okta.1.as_str(), &fresh, &rt, &at, VERIFIER] {
        assert!(!all.contains(secret), "{secret} is in the audit log");
    }
    assert!(!all.contains("scimd_ac_") && !all.contains("scimd_rt_"));
}

/// Client authentication, malformed requests, client credentials, throttling, revocation.
#[tokio::test]
async fn the_token_endpoint_answers_rfc_6749_errors() {
    let s = TestServer::start().await;
    let cc = register(&s, "acme", &[GrantType::ClientCredentials], &[]);
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let s = &s;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.raw(Method::POST, "/oauth/token", &h, body).await
        }
    };
    let form_h = || vec![(FORM.0, FORM.1.to_string())];

    // Client credentials with form fields, and with the scope in the token URL's query as
    // Okta documents for custom scopes.
    let r = post(
        form_h(),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &cc.0),
            ("client_secret", &cc.1),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "scim");
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    let access = r.json["access_token"].as_str().unwrap().to_string();
    // The token reaches its own tenant only.
    s.call(
        Method::POST,
        "/scim/v2/Users",
        &access,
        Some(&json!({"schemas":[USER_URN],"userName":"acme@example.com"})),
    )
    .await;
    let acme = s.call(Method::GET, "/scim/v2/Users", &access, None).await;
    assert_eq!(acme.json["totalResults"], 1);
    assert_eq!(s.get("/scim/v2/Users").await.json["totalResults"], 0);
    let r = s
        .raw(
            Method::POST,
            "/oauth/token?scope=scim",
            &[FORM, ("authorization", &basic(&cc.0, &cc.1))],
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Wrong secret, by Basic and by form: 401 invalid_client with a Basic challenge.
    let r = token(
        &s,
        &(cc.0.clone(), "scimd_cs_wrong".into()),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let r = post(
        form_h(),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &cc.0),
            ("client_secret", "nope"),
        ]),
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    for body in [
        form(&[("grant_type", "client_credentials"), ("client_id", &cc.0)]),
        form(&[("grant_type", "client_credentials")]),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "scimd-unknown"),
            ("client_secret", &cc.1),
        ]),
    ] {
        assert_oauth_error(&post(form_h(), body).await, 401, "invalid_client");
    }
    let r = post(
        vec![
            (FORM.0, FORM.1.into()),
            ("authorization", "Basic !!".into()),
        ],
        "grant_type=client_credentials".into(),
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");

    // Malformed requests.
    let auth = basic(&cc.0, &cc.1);
    let with_auth = || {
        vec![
            (FORM.0, FORM.1.to_string()),
            ("authorization", auth.clone()),
        ]
    };
    assert_oauth_error(
        &post(with_auth(), String::new()).await,
        400,
        "invalid_request",
    );
    // Two Authorization headers: which client is meant is a guess.
    let mut twice = with_auth();
    twice.push(("authorization", basic("someone", "else")));
    assert_oauth_error(
        &post(twice, "grant_type=client_credentials".into()).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &post(
            with_auth(),
            "grant_type=password&username=a&password=b".into(),
        )
        .await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &post(
            with_auth(),
            "grant_type=client_credentials&grant_type=client_credentials".into(),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &post(
            with_auth(),
            format!("grant_type=client_credentials&client_secret={}", cc.1),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &post(
            vec![
                ("content-type", "application/json".into()),
                ("authorization", auth.clone()),
            ],
            r#"{"grant_type":"client_credentials"}"#.into(),
        )
        .await,
        400,
        "invalid_request",
    );
    // Scopes scimd does not know (PingOne lets the admin type any) are ignored: the
    // answer names the one granted.
    let r = post(
        with_auth(),
        "grant_type=client_credentials&scope=openid,scim.write".into(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "scim");
    assert_oauth_error(
        &post(with_auth(), "grant_type=authorization_code&code=x".into()).await,
        400,
        "unauthorized_client",
    );
    assert_oauth_error(
        &post(
            with_auth(),
            "grant_type=refresh_token&refresh_token=x".into(),
        )
        .await,
        400,
        "unauthorized_client",
    );
    let code_client = register(
        &s,
        "default",
        &[GrantType::AuthorizationCode],
        &["https://a.example/cb"],
    );
    let r = token(&s, &code_client, &[("grant_type", "authorization_code")]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = token(&s, &code_client, &[("grant_type", "refresh_token")]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = s.raw(Method::GET, "/oauth/token", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    // Revocation (RFC 7009): unknown tokens and other clients' tokens answer 200 and
    // change nothing; the client's own token stops working.
    let revoke = |client: (String, String), t: String| {
        let s = &s;
        async move {
            s.raw(
                Method::POST,
                "/oauth/revoke",
                &[FORM, ("authorization", &basic(&client.0, &client.1))],
                form(&[("token", &t), ("token_type_hint", "access_token")]),
            )
            .await
        }
    };
    assert_eq!(
        revoke(cc.clone(), "scimd_at_unknown".into()).await.status,
        200
    );
    assert_eq!(
        revoke(code_client.clone(), access.clone()).await.status,
        200
    );
    assert_eq!(scim_status(&s, &access).await, 200);
    let r = revoke(cc.clone(), access.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(scim_status(&s, &access).await, 401);
    let r = revoke((cc.0.clone(), "wrong".into()), access.clone()).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = s
        .raw(
            Method::POST,
            "/oauth/revoke",
            &[FORM, ("authorization", &auth)],
            "",
        )
        .await;
    assert_oauth_error(&r, 400, "invalid_request");

    // Throttling: after ten failures the client is locked, even with the right secret.
    let victim = register(&s, "default", &[GrantType::ClientCredentials], &[]);
    for _ in 0..10 {
        let r = token(
            &s,
            &(victim.0.clone(), "wrong".into()),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_oauth_error(&r, 401, "invalid_client");
    }
    let r = token(&s, &victim, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json["error"], "invalid_client");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    // Other clients are unaffected.
    let r = token(&s, &cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // So is the same client calling from another address: knowing a client id is not
    // enough to lock the IdP out.
    let answer = token_from(&s, "127.0.0.2", &victim, "grant_type=client_credentials").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A token request with HTTP Basic sent from local address `from` (any of 127.0.0.0/8).
async fn token_from(s: &TestServer, from: &str, client: &(String, String), body: &str) -> String {
    let request = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: scimd\r\nConnection: close\r\n\
         Authorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        basic(&client.0, &client.1),
        body.len()
    );
    send_from(s, from, &request).await
}

/// Sends the raw HTTP/1.1 `request` from local address `from`; the whole answer.
async fn send_from(s: &TestServer, from: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(s.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// The status code of a raw HTTP/1.1 answer.
fn status_of(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// Every refused OAuth request is audited, and anyone may make one: a client whose
/// requests keep being refused is throttled per address before anything is written, and
/// what it sent is kept clipped, so no caller can grow the database without bound. The
/// IdP keeps working, from the same address and from others.
#[tokio::test]
async fn refused_oauth_requests_cannot_flood_the_audit_log() {
    let s = TestServer::start().await;
    let idp = register(&s, "default", &[GrantType::ClientCredentials], &[]);
    let grant = "grant_type=client_credentials";
    let (flood, elsewhere) = ("127.0.0.31", "127.0.0.32");
    // The IdP got a token from the address before the flood started there.
    assert_eq!(status_of(&token_from(&s, flood, &idp, grant).await), 200);
    let audited = || {
        let conn = s.db.conn().unwrap();
        db::audit::list(&conn, &db::audit::Filter::default()).unwrap()
    };
    let before = audited().len();

    let huge_id = "c".repeat(12_000);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let answer = if i % 2 == 0 {
            let body = format!("{grant}&client_id={huge_id}&client_secret=guess");
            let request = format!(
                "POST /oauth/token HTTP/1.1\r\nHost: scimd\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            send_from(&s, flood, &request).await
        } else {
            let path = format!("/oauth/authorize?response_type=code&client_id={huge_id}");
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: scimd\r\nConnection: close\r\n\r\n");
            send_from(&s, flood, &request).await
        };
        statuses.push(status_of(&answer));
    }
    let burst = scimd::ops::throttle::FLOOD_BURST as usize;
    let refused = statuses.iter().filter(|&&st| st != 429).count();
    assert!(
        (burst..=burst + 2).contains(&refused),
        "{refused} requests were refused before the throttle: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let entries = audited();
    let written = &entries[before..];
    assert_eq!(
        written.len(),
        refused,
        "one entry per refusal, none once throttled"
    );
    for record in written {
        let size = serde_json::to_string(&record.entry).unwrap().len();
        assert!(size < 1_500, "an entry of {size} bytes: {:?}", record.entry);
    }
    let target = written[0].entry.target.as_deref().unwrap();
    assert!(
        target.starts_with("oauth-client:cccc") && target.ends_with('…'),
        "{target}"
    );

    // The IdP's secret has worked from the flooded address: it still gets its tokens.
    assert_eq!(status_of(&token_from(&s, flood, &idp, grant).await), 200);
    // A wrong secret from there is answered 429 with Retry-After, in RFC 6749's shape.
    let wrong = (idp.0.clone(), "wrong".to_string());
    let mut answer = token_from(&s, flood, &wrong, grant).await;
    // The address earns a failure back each second: on a slow, loaded machine the
    // requests since the flood may have taken that long, and one more wrong secret is
    // answered 401 before the throttle is back.
    for _ in 0..3 {
        if status_of(&answer) == 429 {
            break;
        }
        answer = token_from(&s, flood, &wrong, grant).await;
    }
    assert_eq!(status_of(&answer), 429, "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: "), "{answer}");
    assert!(answer.contains("\"invalid_client\""), "{answer}");
    // Other addresses are not throttled.
    let answer = token_from(&s, elsewhere, &wrong, grant).await;
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert_eq!(
        status_of(&token_from(&s, elsewhere, &idp, grant).await),
        200
    );
}

/// A SCIM write made with an OAuth access token is audited as the OAuth client that holds
/// the token, whether it succeeds or is refused (never as a SCIM token's id).
#[tokio::test]
async fn scim_writes_by_an_oauth_token_name_the_oauth_client() {
    let s = TestServer::start().await;
    let cc = register(&s, "default", &[GrantType::ClientCredentials], &[]);
    let r = token(&s, &cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_string();
    let created = s
        .call(
            Method::POST,
            "/scim/v2/Users",
            &access,
            Some(&json!({"schemas":[USER_URN],"userName":"ada@example.com"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_string();
    let refused = s
        .call(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &access,
            Some(
                &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations":[{"op":"replace","path":"nosuch","value":1}]}),
            ),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let request_id = refused.header("x-request-id").unwrap().to_string();

    let conn = s.db.conn().unwrap();
    let log = db::audit::list(&conn, &db::audit::Filter::default()).unwrap();
    let scim: Vec<_> = log
        .iter()
        .filter(|r| r.entry.action.as_str().starts_with("scim."))
        .collect();
    assert_eq!(scim.len(), 2, "{scim:#?}");
    for r in &scim {
        assert_eq!(r.entry.actor, format!("oauth-client:{}", cc.0), "{r:?}");
    }
    let failed = scim[1];
    assert_eq!(failed.entry.action, db::audit::Action::ScimPatch);
    assert_eq!(failed.entry.outcome, db::audit::Outcome::Failure);
    assert_eq!(failed.entry.status, Some(400));
    assert_eq!(
        failed.entry.request_id.as_deref(),
        Some(request_id.as_str())
    );
    // The member sync created from the write names the same client in its event.
    let events = db::events::after(&conn, 1, 0, 10).unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e.actor.as_deref() == Some(format!("oauth-client:{}", cc.0).as_str()))
    );
    s.stop().await;
}

/// RFC 8414 metadata names the public base URL as issuer.
#[tokio::test]
async fn metadata_describes_the_authorization_server() {
    let s = TestServer::start_with(HttpConfig {
        base_url: Some("https://scim.example.com".into()),
        ..HttpConfig::default()
    })
    .await;
    let r = s
        .raw(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.json;
    assert_eq!(m["issuer"], "https://scim.example.com");
    assert_eq!(
        m["authorization_endpoint"],
        "https://scim.example.com/oauth/authorize"
    );
    assert_eq!(m["token_endpoint"], "https://scim.example.com/oauth/token");
    assert_eq!(
        m["revocation_endpoint"],
        "https://scim.example.com/oauth/revoke"
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let r = s
        .raw(
            Method::POST,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 405);
    // With no path in the issuer, there is no metadata under a path.
    let r = s.get("/.well-known/oauth-authorization-server/scimd").await;
    assert_eq!(r.status, 404, "{}", r.text);
    s.stop().await;

    // An issuer with a path has its metadata at the well-known path followed by its own
    // (RFC 8414 §3.1), and at the well-known path as before.
    let s = TestServer::start_with(HttpConfig {
        base_url: Some("https://example.com/scimd".into()),
        ..HttpConfig::default()
    })
    .await;
    for path in [
        "/.well-known/oauth-authorization-server/scimd",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = s.raw(Method::GET, path, &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["issuer"], "https://example.com/scimd");
        assert_eq!(
            r.json["token_endpoint"],
            "https://example.com/scimd/oauth/token"
        );
    }
    let r = s
        .raw(
            Method::GET,
            "/.well-known/oauth-authorization-server/other",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    s.stop().await;
}

// --- The command line and the log ------------------------------------------------------------

fn scimd_cli(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .current_dir(dir)
        .env_remove("SCIMD_DB")
        .env_remove("SCIMD_LISTEN")
        .env_remove("SCIMD_BASE_URL")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn credentials(out: &str) -> (String, String) {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= line in {out:?}"))
            .to_string()
    };
    (get("client_id"), get("client_secret"))
}

/// `scimd oauth create|list|rotate-secret|revoke`, as the issue specifies them.
#[test]
fn the_oauth_cli_registers_lists_rotates_and_revokes_clients() {
    let dir = tempfile::tempdir().unwrap();
    let okta_uri = "https://system-admin.okta.com/admin/app/cpc/acme_scimd/oauth/callback";
    let (ok, out, err) = scimd_cli(
        dir.path(),
        &[
            "oauth",
            "create",
            "--name",
            "Okta",
            "--redirect-uri",
            okta_uri,
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let okta = credentials(&out);
    assert!(
        okta.1.starts_with("scimd_cs_") && okta.1.len() == 73,
        "{out}"
    );
    assert!(err.contains("authorization_code"), "{err}");

    // Without a redirect URI the client uses client credentials.
    let (ok, out, err) = scimd_cli(dir.path(), &["oauth", "create", "--name", "Entra"]);
    assert!(ok && err.contains("client_credentials"), "{err}");
    let entra = credentials(&out);

    for (args, needle) in [
        (
            vec![
                "oauth",
                "create",
                "--name",
                "x",
                "--redirect-uri",
                "http://example.com/cb",
            ],
            "https",
        ),
        (
            vec![
                "oauth",
                "create",
                "--name",
                "x",
                "--grant-type",
                "authorization_code",
            ],
            "redirect URI",
        ),
        (
            vec!["oauth", "create", "--name", "x", "--grant-type", "password"],
            "unknown grant type",
        ),
        (
            vec!["oauth", "create", "--name", "x", "--tenant", "nope"],
            "no tenant",
        ),
    ] {
        let (ok, _, err) = scimd_cli(dir.path(), &args);
        assert!(!ok && err.contains(needle), "{args:?}: {err}");
    }

    let (_, list, _) = scimd_cli(dir.path(), &["oauth", "list"]);
    assert!(
        list.contains(&okta.0) && list.contains(okta_uri) && list.contains(&entra.0),
        "{list}"
    );
    assert!(!list.contains(&okta.1), "{list}");

    let (ok, out, err) = scimd_cli(dir.path(), &["oauth", "rotate-secret", &okta.0]);
    assert!(ok, "{err}");
    let rotated = credentials(&out);
    assert_eq!(rotated.0, okta.0);
    assert_ne!(rotated.1, okta.1);
    {
        let db = db::Db::open(&dir.path().join("scimd.db"), db::Durability::Full).unwrap();
        let conn = db.conn().unwrap();
        let (_, hash) = db::oauth::client_by_client_id(&conn, &okta.0)
            .unwrap()
            .unwrap();
        assert!(oauth::secret_matches(&rotated.1, &hash));
        assert!(!oauth::secret_matches(&okta.1, &hash));
    }
    for secret in [&okta.1, &rotated.1, &entra.1] {
        let raw = std::fs::read(dir.path().join("scimd.db")).unwrap();
        let wal = std::fs::read(dir.path().join("scimd.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a client secret is never stored"
            );
        }
    }

    let (ok, out, err) = scimd_cli(dir.path(), &["oauth", "revoke", "2"]);
    assert!(ok && out.contains("revoked"), "{err}");
    let (_, list, _) = scimd_cli(dir.path(), &["oauth", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains(&entra.0) && l.ends_with("revoked")),
        "{list}"
    );
    let (ok, _, err) = scimd_cli(dir.path(), &["oauth", "revoke", &entra.0]);
    assert!(!ok && err.contains("no active OAuth client"), "{err}");
}

/// One raw HTTP/1.1 request to the real binary; returns status line and body.
fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{e}: {request} -> {response}"));
    response
}

fn post_form(addr: &str, path: &str, body: &str) -> String {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The real binary at debug log level: grants, refusals and revocations are logged, and
/// no client secret or token ever is.
#[test]
fn nothing_secret_is_logged() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = scimd_cli(dir.path(), &["oauth", "create", "--name", "Entra"]);
    let (id, secret) = credentials(&out);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .current_dir(dir.path())
        .env("SCIMD_LOG", "debug")
        .env_remove("SCIMD_DB")
        .env_remove("SCIMD_BASE_URL")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Keep reading both pipes: the server writes to them until it stops.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let drain_stdout = std::thread::spawn(move || stdout.count());
    let mut stderr = child.stderr.take().unwrap();
    let drain_stderr = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
        log
    });
    let addr = first.rsplit("http://").next().unwrap().to_string();

    let creds = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
    ]);
    let answer = post_form(&addr, "/oauth/token", &creds);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let token: serde_json::Value = serde_json::from_str(body).unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    let wrong = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        (
            "client_secret",
            "scimd_cs_a_wrong_secret_that_must_not_be_logged",
        ),
    ]);
    assert!(post_form(&addr, "/oauth/token", &wrong).starts_with("HTTP/1.1 401"));
    let scim = http(
        &addr,
        &format!(
            "GET /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {access}\r\n\r\n"
        ),
    );
    assert!(scim.starts_with("HTTP/1.1 200"), "{scim}");
    let revoke = form(&[
        ("token", &access),
        ("client_id", &id),
        ("client_secret", &secret),
    ]);
    assert!(post_form(&addr, "/oauth/revoke", &revoke).starts_with("HTTP/1.1 200"));

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    drain_stdout.join().unwrap();
    let log = drain_stderr.join().unwrap();
    for action in [
        "oauth.token_issued",
        "oauth.token_refused",
        "oauth.token_revoked",
    ] {
        assert!(log.contains(action), "{action} is logged: {log}");
    }
    for secret in [
        secret.as_str(),
        access.as_str(),
        &access[15..],
        "scimd_cs_a_wrong_secret_that_must_not_be_logged",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log: {log}");
    }
}

/// A secret is rotated because it may have leaked: the tokens the old secret bought with
/// client credentials stop working at once; the new secret buys new ones.
#[tokio::test]
async fn rotating_a_secret_ends_the_tokens_the_old_one_bought() {
    let s = TestServer::start().await;
    let cc = register(&s, "default", &[GrantType::ClientCredentials], &[]);
    let r = token(&s, &cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old = r.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(scim_status(&s, &old).await, 200);
    let pk: i64 =
        s.db.conn()
            .unwrap()
            .query_row(
                "SELECT id FROM oauth_clients WHERE client_id = ?1",
                [&cc.0],
                |r| r.get(0),
            )
            .unwrap();
    let rotated = scimd::ops::oauth::rotate_secret(&s.db, &scimd::model::Actor::cli(), None, pk)
        .await
        .unwrap();
    assert_eq!(
        scim_status(&s, &old).await,
        401,
        "the old secret's token ends"
    );
    let r = token(&s, &cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 401, "the old secret buys nothing: {}", r.text);
    let new = (cc.0.clone(), rotated.secret);
    let r = token(&s, &new, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.json["access_token"].as_str().unwrap();
    assert_eq!(scim_status(&s, fresh).await, 200);
}
