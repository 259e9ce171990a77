//! OAuth helpers for tests that need real clients and tokens: register a client in the
//! database, log an admin in, approve an authorization request, call the token endpoint.

use hyper::Method;
use scimd::auth::oauth::{self, GrantType};
use scimd::db;

use super::{Resp, TestServer, hidden_field};

pub const PASSWORD: &str = "correct horse battery staple";
pub const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
pub const REDIRECT: &str = "https://idp.example.com/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A registered client: its row id, `client_id` and secret.
pub type Client = (i64, String, String);

/// Registers a client of `tenant`; returns its row id, client_id and secret.
pub fn register(s: &TestServer, tenant: &str, grants: &[GrantType]) -> Client {
    let conn = s.db.conn().unwrap();
    let tenant_id = db::tenants::by_slug(&conn, tenant).unwrap().id;
    let secret = oauth::generate_client_secret();
    let client_id = oauth::generate_client_id();
    let uris = if grants.contains(&GrantType::AuthorizationCode) {
        vec![REDIRECT.to_string()]
    } else {
        Vec::new()
    };
    let c = db::oauth::create_client(
        &conn,
        &db::oauth::NewClient {
            tenant_id,
            client_id: &client_id,
            name: &format!("{tenant} app"),
            secret_hash: &secret.hash,
            grant_types: grants,
            redirect_uris: &uris,
        },
    )
    .unwrap();
    (c.id, client_id, secret.secret)
}

pub fn form(params: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        f.append_pair(k, v);
    }
    f.finish()
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub async fn token_request(s: &TestServer, client: &Client, params: &[(&str, &str)]) -> Resp {
    let auth = basic(&client.1, &client.2);
    s.raw(
        Method::POST,
        "/oauth/token",
        &[FORM, ("authorization", &auth)],
        form(params),
    )
    .await
}

/// Creates the admin `alice` and logs her in; returns the session cookie.
pub async fn login(s: &TestServer) -> String {
    s.create_admin("alice", PASSWORD);
    s.login_cookie("alice", PASSWORD).await
}

/// The admin approves `client_id`'s authorization request; returns the code.
pub async fn approve(s: &TestServer, cookie: &str, client_id: &str) -> String {
    let challenge = oauth::s256(VERIFIER);
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let page = s
        .raw(
            Method::GET,
            &format!("/oauth/authorize?{}", form(&params)),
            &[("cookie", cookie)],
            "",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let mut fields: Vec<(&str, String)> = [
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
    .filter_map(|k| hidden_field(&page.text, k).map(|v| (*k, v)))
    .collect();
    fields.push(("decision", "approve".into()));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = s
        .raw(
            Method::POST,
            "/oauth/authorize",
            &[("cookie", cookie), FORM],
            form(&fields),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let location = r.header("location").unwrap();
    let q = location.split_once('?').unwrap().1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string()
}

pub async fn exchange(s: &TestServer, client: &Client, code: &str) -> Resp {
    token_request(
        s,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}
