//! Hostile input against the real server: random and mutated requests over HTTP (bodies,
//! PATCH operations, filters, query parameters, methods and paths), then the credentials and
//! the body edge cases an attacker or a broken client sends.
//!
//! The bar, for every request: never a 5xx (501 for `/Bulk` and `/Me` is a deliberate
//! answer), every SCIM 4xx is a SCIM Error (`application/scim+json`, `status` a string equal
//! to the HTTP status, a `detail`, and on a 400 a `scimType` from RFC 7644 Table 9), a request
//! that fails changes nothing (the directory read back before and after is identical), and
//! the server is healthy afterwards.
//!
//! The property tests run a bounded number of cases (about 500 in all, a few seconds) with
//! a fresh seed each run; `PROPTEST_CASES` raises the count for a longer hunt, and
//! `ADV_TRACE=1` (with `--nocapture`) prints every request with its answer.

mod common;

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use common::*;
use hyper::Method;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// RFC 7644 Table 9, with RFC 9865's cursor errors.
const TABLE_9: &[&str] = &[
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
    "invalidCursor",
    "expiredCursor",
];

// --- The harness ------------------------------------------------------------------------

/// One request as generated.
#[derive(Clone)]
struct Sent {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl fmt::Debug for Sent {
    // Bodies can be 70 kB: show enough to reproduce by hand, not the whole thing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(600).collect();
        let path: String = self.path.chars().take(600).collect();
        write!(
            f,
            "{} {path} ({} bytes of path) {:?}\n{shown}{}",
            self.method,
            self.path.len(),
            self.headers,
            if body.len() > shown.len() { "…" } else { "" }
        )
    }
}

impl Sent {
    fn scim(method: Method, path: String, body: Vec<u8>) -> Sent {
        Sent {
            method,
            path,
            headers: vec![("content-type".into(), "application/scim+json".into())],
            body,
        }
    }

    fn json(method: Method, path: String, body: &Value) -> Sent {
        Sent::scim(method, path, body.to_string().into_bytes())
    }
}

/// The seeded directory of tenant `default`.
#[derive(Clone)]
struct Fixture {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Fixture {
    fn ids(&self) -> Vec<String> {
        self.users.iter().chain(&self.groups).cloned().collect()
    }
}

/// The server, its runtime and what the cases compare against. The server is declared
/// first so it stops before the runtime it runs on goes away.
struct Env {
    s: TestServer,
    fx: Fixture,
    /// Tenant `other`, which no request of the properties names: it must never change.
    other_token: String,
    other_before: Value,
    /// The default tenant's directory as last read.
    last: RefCell<Value>,
    rt: tokio::runtime::Runtime,
}

fn env() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, fx, other_token, other_before, last) = rt.block_on(async {
        let s = TestServer::start().await;
        let fx = seed(&s, &s.token, "a").await;
        let other_token = s.token_for("other");
        seed(&s, &other_token, "b").await;
        let other_before = snapshot(&s, &other_token).await;
        let last = snapshot(&s, &s.token).await;
        (s, fx, other_token, other_before, last)
    });
    Env {
        s,
        fx,
        other_token,
        other_before,
        last: RefCell::new(last),
        rt,
    }
}

/// Three users (one with a manager) and two groups, one nested in the other.
async fn seed(s: &TestServer, token: &str, tag: &str) -> Fixture {
    let mut users = Vec::new();
    for i in 0..3 {
        let mut body = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": format!("{tag}{i}@example.com"),
            "externalId": format!("ext-{tag}{i}"),
            "name": {"givenName": "Given", "familyName": format!("Family{i}")},
            "displayName": format!("User {tag}{i}"),
            "emails": [{"value": format!("{tag}{i}@example.com"), "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
            "active": true,
            ENTERPRISE_URN: {"employeeNumber": format!("{i}"), "department": "Eng"},
        });
        if let Some(first) = users.first() {
            body[ENTERPRISE_URN]["manager"] = json!({ "value": first });
        }
        let r = s
            .call(Method::POST, "/scim/v2/Users", token, Some(&body))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        users.push(r.json["id"].as_str().unwrap().to_string());
    }
    let mut groups = Vec::new();
    for (i, members) in [
        json!([{"value": users[0]}, {"value": users[1]}]),
        json!([{"value": users[2]}]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut members = members;
        if let Some(first) = groups.first() {
            members
                .as_array_mut()
                .unwrap()
                .push(json!({"value": first, "type": "Group"}));
        }
        let body = json!({"schemas": [GROUP_URN], "displayName": format!("Group {tag}{i}"), "members": members});
        let r = s
            .call(Method::POST, "/scim/v2/Groups", token, Some(&body))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        groups.push(r.json["id"].as_str().unwrap().to_string());
    }
    Fixture { users, groups }
}

/// Everything a tenant's directory holds, as the SCIM API shows it.
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

fn is_scim(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    path == "/scim" || path.starts_with("/scim/")
}

fn is_write(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Asserts what every answer must satisfy.
fn check_response(sent: &Sent, r: &Resp) -> Result<(), TestCaseError> {
    let status = r.status.as_u16();
    let scim = is_scim(&sent.path);
    let lower = sent.path.to_ascii_lowercase();
    let unsupported = status == 501 && (lower.contains("/bulk") || lower.contains("/me"));
    prop_assert!(status < 500 || unsupported, "{status}: {}", r.text);
    if status == 401 {
        prop_assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "401 without a Bearer challenge"
        );
    }
    if !scim || status < 400 || sent.method == Method::HEAD {
        return Ok(());
    }
    prop_assert_eq!(
        r.header("content-type"),
        Some("application/scim+json"),
        "{}",
        &r.text
    );
    prop_assert_eq!(&r.json["schemas"], &json!([ERROR_URN]), "{}", &r.text);
    let status_text = status.to_string();
    prop_assert_eq!(
        r.json["status"].as_str(),
        Some(status_text.as_str()),
        "{}",
        &r.text
    );
    prop_assert!(
        r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        &r.text
    );
    match r.json.get("scimType") {
        Some(t) => prop_assert!(
            t.as_str().is_some_and(|t| TABLE_9.contains(&t)),
            "scimType {t} is not in RFC 7644 Table 9"
        ),
        None => prop_assert!(status != 400, "a 400 without a scimType: {}", &r.text),
    }
    Ok(())
}

impl Env {
    /// Sends one generated request and checks the answer and the directory after it.
    fn case(&self, sent: Sent) -> Result<(), TestCaseError> {
        let url = self.s.url(&sent.path);
        prop_assume!(hyper::Uri::try_from(url.as_str()).is_ok());
        prop_assume!(
            sent.headers
                .iter()
                .all(|(_, v)| hyper::header::HeaderValue::from_str(v).is_ok())
        );
        self.rt.block_on(async {
            let auth = format!("Bearer {}", self.s.token);
            let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
            headers.extend(sent.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let r = tokio::time::timeout(
                Duration::from_secs(20),
                self.s
                    .raw(sent.method.clone(), &sent.path, &headers, sent.body.clone()),
            )
            .await
            .map_err(|_| TestCaseError::fail("no answer within 20 s"))?;
            check_response(&sent, &r)?;
            if std::env::var_os("ADV_TRACE").is_some() {
                eprintln!(
                    "{} {} -> {} {} {}",
                    sent.method,
                    sent.path.chars().take(120).collect::<String>(),
                    r.status,
                    r.json["scimType"],
                    r.json["detail"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(150)
                        .collect::<String>()
                );
            }
            let after = snapshot(&self.s, &self.s.token).await;
            let mut last = self.last.borrow_mut();
            if !(is_write(&sent.method) && r.status.is_success()) && after != *last {
                return Err(TestCaseError::fail(format!(
                    "{} answered {} but changed the directory:\nbefore {}\nafter  {}",
                    sent.method, r.status, *last, after
                )));
            }
            *last = after;
            Ok(())
        })
    }

    /// The server still answers, and the tenant no request named is untouched.
    fn finish(self) {
        self.rt.block_on(async {
            let r = self.s.raw(Method::GET, "/healthz", &[], "").await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(
                snapshot(&self.s, &self.other_token).await,
                self.other_before
            );
            let r = self.s.get("/scim/v2/ServiceProviderConfig").await;
            assert_eq!(r.status, 200, "{}", r.text);
        });
    }
}

/// Runs `cases` generated requests through [`Env::case`], shrinking any failure.
fn property<S>(cases: u32, strategy: impl FnOnce(&Fixture) -> S)
where
    S: Strategy<Value = Sent>,
{
    let env = env();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = strategy(&env.fx);
    if let Err(e) = runner.run(&strategy, |sent| env.case(sent)) {
        panic!("{e}");
    }
    env.finish();
}

// --- Generators ---------------------------------------------------------------------------

/// Any JSON value, with the awkward ones over-represented.
fn wild_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(-0.0)),
        Just(json!(1.7976931348623157e308)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::from),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("a\u{0}b")),
        Just(json!("True")),
        Just(json!("false")),
        Just(json!("2024-02-30T25:61:00Z")),
        (1usize..70_000).prop_map(|n| json!("x".repeat(n))),
        (1usize..127).prop_map(nested),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `depth` arrays and objects inside each other (serde_json refuses 128 and more).
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("core"), |v, i| {
        if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "value": v })
        }
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "value",
            "Value",
            "type",
            "primary",
            "display",
            "$ref",
            "givenName",
            "schemas",
            "members",
            "id",
            "meta",
            "op",
            "path",
            "",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z$:._]{0,12}",
        ".{0,6}",
    ]
}

/// A path into a resource: object keys, and array indexes as numbers.
fn user_attribute() -> impl Strategy<Value = Vec<String>> {
    let enterprise = |rest: &[&str]| {
        std::iter::once(ENTERPRISE_URN)
            .chain(rest.iter().copied())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let plain = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
    select(vec![
        plain("userName"),
        plain("UserName"),
        plain("name"),
        plain("name.givenName"),
        plain("name.formatted"),
        plain("displayName"),
        plain("active"),
        plain("emails"),
        plain("emails.0"),
        plain("emails.0.value"),
        plain("emails.0.primary"),
        plain("emails.0.type"),
        plain("phoneNumbers"),
        plain("phoneNumbers.0.value"),
        plain("addresses"),
        plain("roles"),
        plain("x509Certificates"),
        plain("schemas"),
        plain("schemas.0"),
        plain("id"),
        plain("externalId"),
        plain("meta"),
        plain("meta.version"),
        plain("groups"),
        plain("password"),
        plain("title"),
        plain("timezone"),
        plain("locale"),
        plain("profileUrl"),
        plain("unknownAttribute"),
        plain("urn:example:unknown:2.0:User"),
        enterprise(&[]),
        enterprise(&["manager"]),
        enterprise(&["manager", "value"]),
        enterprise(&["employeeNumber"]),
        enterprise(&["department"]),
    ])
}

fn group_attribute() -> impl Strategy<Value = Vec<String>> {
    let plain = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
    select(vec![
        plain("displayName"),
        plain("DisplayName"),
        plain("members"),
        plain("members.0"),
        plain("members.0.value"),
        plain("members.0.type"),
        plain("members.0.$ref"),
        plain("members.1"),
        plain("externalId"),
        plain("schemas"),
        plain("id"),
        plain("meta"),
        plain("unknownAttribute"),
    ])
}

/// Sets `path` in `doc` to `value`, creating what is missing; indexes past the end append.
fn set_path(doc: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *doc = value;
        return;
    };
    match doc {
        Value::Array(items) => {
            let i = first.parse::<usize>().unwrap_or(usize::MAX);
            if i < items.len() {
                set_path(&mut items[i], rest, value);
            } else {
                let mut item = json!({});
                set_path(&mut item, rest, value);
                items.push(item);
            }
        }
        Value::Object(fields) => {
            let slot = fields.entry(first.clone()).or_insert(json!({}));
            set_path(slot, rest, value);
        }
        other => {
            *other = json!({});
            set_path(other, path, value);
        }
    }
}

/// Byte-level damage done to a serialised body.
#[derive(Debug, Clone)]
enum Mangle {
    Keep,
    Truncate(Index),
    Insert(Index, Vec<u8>),
    DuplicateKey(&'static str),
    BigNumber(&'static str),
    Trailing(&'static str),
    WrapInArray,
    Empty(&'static str),
}

/// Damage one body in `1 + 7 / keep`.
fn mangle(keep: u32) -> impl Strategy<Value = Mangle> {
    prop_oneof![
        keep => Just(Mangle::Keep),
        1 => any::<Index>().prop_map(Mangle::Truncate),
        1 => (
            any::<Index>(),
            select(vec![
                vec![0xff],
                vec![0xc3, 0x28],
                vec![0xed, 0xa0, 0x80],
                vec![0xf4, 0x90, 0x80, 0x80],
                vec![0],
                b"\\u0000".to_vec(),
                b"\\ud800".to_vec(),
                b"\"".to_vec(),
                b"{".to_vec(),
                b",".to_vec(),
            ])
        )
            .prop_map(|(i, b)| Mangle::Insert(i, b)),
        1 => select(vec![
            r#""userName":"dup@example.com","#,
            r#""displayName":"Dup","#,
            r#""id":"chosen-by-client","#,
            r#""schemas":5,"#,
            r#""members":[],"#,
            r#""Operations":[],"#,
            r#""active":"maybe","#,
        ])
        .prop_map(Mangle::DuplicateKey),
        1 => select(vec!["1e400", "-1e400", "123456789012345678901234567890", "0x10", "NaN", "Infinity", "01"])
            .prop_map(Mangle::BigNumber),
        1 => select(vec!["}", "{}", ",", " garbage", "\u{0}", "]"]).prop_map(Mangle::Trailing),
        1 => Just(Mangle::WrapInArray),
        1 => select(vec!["", " ", "null", "[]", "\"a\"", "42", "{}"]).prop_map(Mangle::Empty),
    ]
}

fn apply_mangle(body: Value, m: &Mangle) -> Vec<u8> {
    let mut bytes = body.to_string().into_bytes();
    match m {
        Mangle::Keep => {}
        Mangle::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mangle::Insert(i, b) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, b.iter().copied());
        }
        Mangle::DuplicateKey(kv) => {
            if let Some(at) = bytes.iter().position(|&b| b == b'{') {
                bytes.splice(at + 1..at + 1, kv.bytes());
            }
        }
        Mangle::BigNumber(n) => {
            // Replace the first `true` (`active`, `primary`) or append a numeric member.
            let text = String::from_utf8(bytes).unwrap();
            let text = if text.contains("true") {
                text.replacen("true", n, 1)
            } else {
                text.replacen('{', &format!("{{\"active\":{n},"), 1)
            };
            bytes = text.into_bytes();
        }
        Mangle::Trailing(t) => bytes.extend_from_slice(t.as_bytes()),
        Mangle::WrapInArray => {
            bytes.insert(0, b'[');
            bytes.push(b']');
        }
        Mangle::Empty(e) => bytes = e.as_bytes().to_vec(),
    }
    bytes
}

fn base_user(fx: &Fixture) -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "userName": "generated@example.com",
        "name": {"givenName": "Gen", "familyName": "Erated"},
        "emails": [{"value": "generated@example.com", "type": "work", "primary": true}],
        "active": true,
        ENTERPRISE_URN: {"manager": {"value": fx.users[0]}},
    })
}

fn base_group(fx: &Fixture) -> Value {
    json!({
        "schemas": [GROUP_URN],
        "displayName": "Generated group",
        "members": [{"value": fx.users[0]}, {"value": fx.groups[0], "type": "Group"}],
    })
}

/// A body that may carry a member or manager id: the fixture's, or none of ours.
fn id_like(fx: &Fixture) -> impl Strategy<Value = Value> + use<> {
    prop_oneof![
        select(fx.ids()).prop_map(Value::from),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("")),
        wild_value(),
    ]
}

// --- 1. Resource bodies ---------------------------------------------------------------------

fn resource_body(fx: &Fixture) -> impl Strategy<Value = Sent> + use<> {
    let fx = fx.clone();
    let user = (
        prop::collection::vec((user_attribute(), wild_value()), 1..4),
        mangle(6),
    );
    let group = (
        prop::collection::vec(
            (group_attribute(), prop_oneof![wild_value(), id_like(&fx)]),
            1..4,
        ),
        mangle(6),
    );
    let target = prop_oneof![Just(None), select(fx.users.clone()).prop_map(Some),];
    let gtarget = prop_oneof![Just(None), select(fx.groups.clone()).prop_map(Some),];
    let fx2 = fx.clone();
    let content_type = select(vec![
        "application/scim+json",
        "application/json",
        "text/plain",
        "application/scim+json; charset=latin1",
    ]);
    prop_oneof![
        (user, target, content_type.clone()).prop_map(move |((edits, m), target, ct)| {
            let mut body = base_user(&fx);
            for (path, v) in edits {
                set_path(&mut body, &path, v);
            }
            request(
                target.map(|id| format!("/scim/v2/Users/{id}")),
                "/scim/v2/Users",
                apply_mangle(body, &m),
                ct,
            )
        }),
        (group, gtarget, content_type).prop_map(move |((edits, m), target, ct)| {
            let mut body = base_group(&fx2);
            for (path, v) in edits {
                set_path(&mut body, &path, v);
            }
            request(
                target.map(|id| format!("/scim/v2/Groups/{id}")),
                "/scim/v2/Groups",
                apply_mangle(body, &m),
                ct,
            )
        }),
    ]
}

/// A POST to `collection`, or a PUT to `resource`.
fn request(resource: Option<String>, collection: &str, body: Vec<u8>, content_type: &str) -> Sent {
    let (method, path) = match resource {
        Some(p) => (Method::PUT, p),
        None => (Method::POST, collection.to_string()),
    };
    let mut sent = Sent::scim(method, path, body);
    sent.headers = vec![("content-type".into(), content_type.into())];
    sent
}

#[test]
fn random_resource_bodies_never_break_the_server_or_the_directory() {
    property(120, resource_body);
}

// --- 2. PATCH operations --------------------------------------------------------------------

fn patch_path(fx: &Fixture) -> impl Strategy<Value = Value> + use<> {
    let core = "urn:ietf:params:scim:schemas:core:2.0:User";
    let mut paths: Vec<String> = [
        "userName",
        "name",
        "name.givenName",
        "name.nope",
        "displayName",
        "active",
        "emails",
        "emails.value",
        r#"emails[type eq "work"]"#,
        r#"emails[type eq "work"].value"#,
        r#"emails[type eq "work"].nope"#,
        r#"emails[primary eq true].value"#,
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]]"#,
        r#"emails[[type eq "work"]"#,
        r#"emails[type zz "work"]"#,
        r#"emails[nope eq "x"]"#,
        r#"emails[type eq "work"][value eq "x"]"#,
        "emails[]",
        "emails]",
        "[",
        "members",
        "members.value",
        "members[value eq 5]",
        r#"members[value eq ""].display"#,
        "groups",
        "id",
        "meta",
        "meta.version",
        "schemas",
        "externalId",
        "password",
        "x509Certificates.value",
        "",
        " ",
        ".",
        "..",
        "a..b",
        "name.givenName.more",
        "urn:bogus:attribute",
        "urn:",
        ":",
        "\u{0}",
        "émails",
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
        "urn:ietf:params:scim:schemas:core:2.0:Group:members",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for suffix in [
        "",
        ":",
        ":manager",
        ":manager.value",
        ":manager.displayName",
        ":employeeNumber",
        ":nope",
    ] {
        paths.push(format!("{ENTERPRISE_URN}{suffix}"));
    }
    for suffix in [
        ":userName",
        ":name.familyName",
        ":emails[type eq \"work\"].value",
        "userName",
    ] {
        paths.push(format!("{core}{suffix}"));
    }
    for id in fx.ids() {
        paths.push(format!(r#"members[value eq "{id}"]"#));
        paths.push(format!(r#"members[value eq "{id}"].display"#));
        paths.push(format!(r#"members[value eq "{id}" or value eq "x"]"#));
    }
    prop_oneof![
        8 => select(paths).prop_map(Value::from),
        1 => (1usize..6000).prop_map(|n| json!("a.".repeat(n))),
        1 => (1usize..60).prop_map(|n| json!(format!("{}x{}", "emails[".repeat(n), "]".repeat(n)))),
        1 => wild_value(),
    ]
}

fn patch_value(fx: &Fixture) -> impl Strategy<Value = Value> + use<> {
    let ids = fx.ids();
    prop_oneof![
        3 => wild_value(),
        2 => select(vec![json!("Text"), json!(true), json!("False"), json!(""), json!([]), json!({}), json!([{"value": "v@example.com", "type": "work"}]), json!({"givenName": "Renamed"})]),
        2 => select(ids.clone()).prop_map(|id| json!([{"value": id}])),
        1 => select(ids.clone()).prop_map(|id| json!({"value": id})),
        1 => select(ids).prop_map(|id| json!({"members": [{"value": id}], "displayName": "Renamed"})),
        1 => Just(json!({"active": "False", "name.givenName": "Dotted", "emails[type eq \"work\"].value": "w@example.com"})),
        1 => Just(json!({"userName": null})),
    ]
}

fn patch_body(fx: &Fixture) -> impl Strategy<Value = Sent> + use<> {
    let op_name = prop_oneof![
        12 => select(vec!["add", "replace", "remove", "Add", "Replace", "REMOVE"]).prop_map(Value::from),
        1 => select(vec!["", "move", "copy", "test", "delete"]).prop_map(Value::from),
        1 => wild_value(),
    ];
    let op = (
        op_name,
        prop::option::weighted(0.85, patch_path(fx)),
        prop::option::weighted(0.9, patch_value(fx)),
        prop::option::weighted(0.1, (key(), wild_value())),
    )
        .prop_map(|(op, path, value, extra)| {
            let mut o = json!({ "op": op });
            if let Some(p) = path {
                o["path"] = p;
            }
            if let Some(v) = value {
                o["value"] = v;
            }
            if let Some((k, v)) = extra {
                o[k] = v;
            }
            o
        });
    let ops = prop_oneof![
        12 => prop::collection::vec(op, 1..5).prop_map(Value::Array),
        1 => Just(json!([])),
        1 => wild_value(),
    ];
    let wrapper = prop_oneof![
        12 => Just("standard"),
        1 => select(vec!["no schemas", "wrong schema", "lowercase key", "schemas string"]),
    ];
    let targets: Vec<String> = fx
        .users
        .iter()
        .map(|id| format!("/scim/v2/Users/{id}"))
        .chain(fx.groups.iter().map(|id| format!("/scim/v2/Groups/{id}")))
        .chain([
            "/scim/v2/Users/nope".to_string(),
            "/scim/v2/Groups/nope".to_string(),
        ])
        .collect();
    (ops, wrapper, select(targets), mangle(20)).prop_map(|(ops, wrapper, path, m)| {
        let body = match wrapper {
            "standard" => json!({"schemas": [PATCH_URN], "Operations": ops}),
            "no schemas" => json!({"Operations": ops}),
            "wrong schema" => json!({"schemas": [USER_URN], "Operations": ops}),
            "lowercase key" => json!({"schemas": [PATCH_URN], "operations": ops}),
            _ => json!({"schemas": PATCH_URN, "Operations": ops}),
        };
        Sent::scim(Method::PATCH, path, apply_mangle(body, &m))
    })
}

#[test]
fn random_patch_operations_apply_whole_or_not_at_all() {
    property(120, patch_body);
}

// --- 3. Filters -----------------------------------------------------------------------------

/// A filter for `rt` ("Users" or "Groups"): mostly well-formed from the RFC 7644 grammar,
/// with a few unknown attributes, operators and values, then perhaps damaged.
fn filter_text(fx: &Fixture, rt: &str) -> impl Strategy<Value = String> + use<> {
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let (mut attrs, multi): (Vec<String>, Vec<&str>) = if rt == "Users" {
        (
            [
                "userName",
                "USERNAME",
                "displayName",
                "name.givenName",
                "name",
                "emails",
                "emails.value",
                "emails.type",
                "emails.primary",
                "active",
                "groups",
                "groups.value",
                "groups.display",
                "x509Certificates.value",
                "title",
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([
                format!("{enterprise}:manager.value"),
                format!("{enterprise}:manager"),
                format!("{enterprise}:employeeNumber"),
            ])
            .collect(),
            vec!["emails", "phoneNumbers", "groups", "addresses"],
        )
    } else {
        (
            [
                "displayName",
                "members",
                "members.value",
                "members.display",
                "members.type",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            vec!["members"],
        )
    };
    attrs.extend(
        [
            "id",
            "externalId",
            "meta.created",
            "meta.lastModified",
            "meta.version",
            "meta.resourceType",
            "meta",
            "id",
            "externalId",
            // Unknown or unsupported.
            "nope",
            "name.nope",
            "urn:bogus:x",
            "$ref",
            "members.$ref",
            "a.b.c",
            "é",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let attr = select(attrs);
    let op = prop_oneof![
        12 => select(vec!["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "Co"]),
        1 => select(vec!["xx", "==", "like", "", "pr"]),
    ];
    let mut values: Vec<String> = [
        r#""a""#,
        r#""""#,
        "true",
        "False",
        "null",
        "42",
        "-1.5e3",
        r#""2024-01-01T00:00:00Z""#,
        r#""W/\"1\"""#,
        r#""\u0000""#,
        r#""\"""#,
        r#""%""#,
        r#""_""#,
        r#""a0@example.com""#,
        // Not values.
        "1e400",
        "99999999999999999999999",
        r#""unterminated"#,
        "'single'",
        "bare",
        r#""\q""#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    values.extend(fx.ids().iter().map(|id| format!("\"{id}\"")));
    let values = select(values);
    let comparison = prop_oneof![
        6 => (attr.clone(), op, values).prop_map(|(a, o, v)| format!("{a} {o} {v}")),
        1 => attr.clone().prop_map(|a| format!("{a} pr")),
    ];
    let sub = select(vec!["value", "type", "primary", "display", "nope"]);
    let multi = select(multi);
    let value_path = (multi, comparison.clone(), sub).prop_map(|(a, f, sub)| {
        // The inner comparison names a sub-attribute of `a`.
        let inner = match f.split_once(' ') {
            Some((_, rest)) => format!("{sub} {rest}"),
            None => f,
        };
        format!("{a}[{inner}]")
    });
    let leaf = prop_oneof![4 => comparison, 1 => value_path];
    let tree = leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| format!("({f})")),
            inner.clone().prop_map(|f| format!("not ({f})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} OR {b}")),
        ]
    });
    (tree, filter_mutation()).prop_map(|(f, m)| m.apply(f))
}

#[derive(Debug, Clone)]
enum FilterMutation {
    Keep,
    Truncate(Index),
    Insert(Index, char),
    Delete(Index),
    Repeat(usize),
    Parens(usize),
}

impl FilterMutation {
    fn apply(&self, f: String) -> String {
        let chars: Vec<char> = f.chars().collect();
        match self {
            FilterMutation::Keep => f,
            FilterMutation::Truncate(i) => chars[..i.index(chars.len() + 1)].iter().collect(),
            FilterMutation::Insert(i, c) => {
                let mut chars = chars;
                chars.insert(i.index(chars.len() + 1), *c);
                chars.into_iter().collect()
            }
            FilterMutation::Delete(i) if !chars.is_empty() => {
                let mut chars = chars;
                chars.remove(i.index(chars.len()));
                chars.into_iter().collect()
            }
            FilterMutation::Delete(_) => f,
            FilterMutation::Repeat(n) => vec![f; *n].join(" or "),
            FilterMutation::Parens(n) => format!("{}{f}{}", "(".repeat(*n), ")".repeat(*n)),
        }
    }
}

fn filter_mutation() -> impl Strategy<Value = FilterMutation> {
    prop_oneof![
        8 => Just(FilterMutation::Keep),
        2 => any::<Index>().prop_map(FilterMutation::Truncate),
        2 => (any::<Index>(), select(vec!['(', ')', '[', ']', '"', '\\', ' ', '\u{0}', 'é', '.', ':']))
            .prop_map(|(i, c)| FilterMutation::Insert(i, c)),
        1 => any::<Index>().prop_map(FilterMutation::Delete),
        1 => (2usize..400).prop_map(FilterMutation::Repeat),
        1 => (1usize..120).prop_map(FilterMutation::Parens),
    ]
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn filter_request(fx: &Fixture) -> impl Strategy<Value = Sent> + use<> {
    let odd_search = prop_oneof![
        12 => Just(None),
        1 => wild_value().prop_map(Some),
    ];
    let how = prop_oneof![
        (
            filter_text(fx, "Users"),
            select(vec!["GET Users", "search Users", "search root"])
        ),
        (
            filter_text(fx, "Groups"),
            select(vec!["GET Groups", "search Groups", "search root"])
        ),
    ];
    (how, odd_search).prop_map(|((f, how), odd)| {
        let (kind, rt) = how.split_once(' ').unwrap();
        // Very long filters go in a search body: a URL that long is refused by the HTTP
        // layer before it reaches SCIM.
        if kind == "GET" && f.len() < 16_000 {
            return Sent::scim(
                Method::GET,
                format!("/scim/v2/{rt}?filter={}", encode(&f)),
                Vec::new(),
            );
        }
        let path = if rt == "root" {
            "/scim/v2/.search".to_string()
        } else {
            format!("/scim/v2/{rt}/.search")
        };
        let filter = odd.unwrap_or(Value::from(f));
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter});
        Sent::json(Method::POST, path, &body)
    })
}

#[test]
fn random_filters_are_answered_or_refused_precisely() {
    property(120, filter_request);
}

// --- 4. Query parameters ---------------------------------------------------------------------

fn query_request(fx: &Fixture) -> impl Strategy<Value = Sent> + use<> {
    let name = prop_oneof![
        8 => select(vec![
            "startIndex", "count", "sortBy", "sortOrder", "cursor", "attributes",
            "excludedAttributes", "filter", "STARTINDEX", "Count",
        ])
        .prop_map(str::to_string),
        1 => ".{0,8}",
    ];
    let value = prop_oneof![
        4 => select(vec![
            "-1", "0", "1", "2", "abc", "99999999999999999999", "18446744073709551616", "1e3",
            "1.5", "", " ", "\u{0}", "+5", "0x10", "ascending", "descending", "DESC", "up",
            "userName", "name.givenName", "emails.value", "emails[type eq \"work\"].value",
            "members", "members.value", "groups", "meta", "meta.lastModified", "nope",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", "urn:bogus",
            ",,,", "userName,,displayName", "id,", "AAAA", "MQ", "MTIzNDU2", "!!!",
            "eyJwayI6LTF9", "-", "%00", "%ZZ",
        ])
        .prop_map(str::to_string),
        1 => ".{0,20}",
        1 => (1usize..3000).prop_map(|n| "userName,".repeat(n)),
    ];
    let mut targets = vec![
        "/scim/v2/Users".to_string(),
        "/scim/v2/Groups".to_string(),
        "/scim/Users".to_string(),
    ];
    targets.extend(fx.users.iter().map(|id| format!("/scim/v2/Users/{id}")));
    targets.extend(fx.groups.iter().map(|id| format!("/scim/v2/Groups/{id}")));
    (
        select(targets),
        prop::collection::vec((name, value), 0..5),
        prop::sample::select(vec![Method::GET, Method::GET, Method::HEAD, Method::POST]),
    )
        .prop_map(|(path, pairs, method)| {
            let query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            let collection = path.ends_with("/Users") || path.ends_with("/Groups");
            match (method, collection) {
                (Method::POST, true) => {
                    // The same parameters as a SearchRequest, numbers as numbers.
                    let mut body = json!({});
                    for (k, v) in pairs {
                        body[k] = v.parse::<i64>().map(Value::from).unwrap_or(Value::from(v));
                    }
                    Sent::json(Method::POST, format!("{path}/.search"), &body)
                }
                (Method::POST, false) => Sent::json(
                    Method::PATCH,
                    format!("{path}?{}", query.join("&")),
                    &json!({"schemas": [PATCH_URN], "Operations": []}),
                ),
                (method, _) => {
                    Sent::scim(method, format!("{path}?{}", query.join("&")), Vec::new())
                }
            }
        })
}

#[test]
fn random_query_parameters_are_answered_or_refused_precisely() {
    property(80, query_request);
}

// --- 5. Methods and paths ---------------------------------------------------------------------

fn path_request(fx: &Fixture) -> impl Strategy<Value = Sent> + use<> {
    let mut segments: Vec<String> = [
        "Users",
        "Groups",
        "users",
        "GROUPS",
        ".search",
        "Bulk",
        "Me",
        "Schemas",
        "ResourceTypes",
        "ServiceProviderConfig",
        "..",
        ".",
        "%00",
        "%2e%2e",
        "%2F",
        "",
        "Users.",
        "Users..",
        "%C3%A9",
        "%ZZ",
        "%FF",
        "00000000-0000-0000-0000-000000000000",
        "*",
        "~",
        ";",
        "Users;x",
        "Users%20",
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "login",
        "t",
        "default",
        "people",
        "healthz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    segments.extend(fx.ids());
    let fixture = fx.ids();
    let segment = prop_oneof![
        10 => select(segments),
        1 => (1usize..4000).prop_map(|n| "a".repeat(n)),
        1 => "[a-zA-Z0-9._~%-]{0,12}",
    ];
    let prefix = select(vec![
        "/scim/v2",
        "/scim",
        "/scim/v2/",
        "/SCIM/v2",
        "/scim/v3",
        "/scim/v2/scim/v2",
        "",
        "/t/default",
        "/oauth",
        "/static",
        "/.well-known",
        "//scim/v2",
    ]);
    let method = select(vec![
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "PROPFIND",
        "get",
    ]);
    let body = prop_oneof![
        3 => Just(Vec::new()),
        1 => wild_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    (
        method,
        prefix,
        prop::collection::vec((segment, select(vec!["/", "//", "/./"])), 0..5),
        select(vec!["", "?", "?a=b", "#frag", ".", "/"]),
        body,
    )
        .prop_map(move |(method, prefix, segs, tail, body)| {
            let mut path = prefix.to_string();
            for (seg, sep) in segs {
                path.push_str(sep);
                path.push_str(&seg);
            }
            path.push_str(tail);
            if !path.starts_with('/') {
                path.insert(0, '/');
            }
            let mut sent = Sent::scim(Method::from_bytes(method.as_bytes()).unwrap(), path, body);
            if sent.method == Method::DELETE
                && fixture.iter().any(|id| sent.path.contains(id.as_str()))
            {
                // Deleting the fixture would only be a success, and starve later cases.
                sent.method = Method::OPTIONS;
            }
            sent
        })
}

#[test]
fn random_methods_and_paths_are_answered_or_refused_precisely() {
    property(100, path_request);
}

// --- 6. Credentials --------------------------------------------------------------------------

/// Asserts the 401 of a request with no usable credentials: a SCIM Error with a Bearer
/// challenge, which names `invalid_token` exactly when a token was presented (RFC 6750 §3.1).
fn assert_unauthorized(r: &Resp, token_presented: bool, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    r.assert_error(401, None);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"scimd\""),
        "{what}: {challenge}"
    );
    assert_eq!(
        challenge.contains("error=\"invalid_token\""),
        token_presented,
        "{what}: {challenge}"
    );
}

#[tokio::test]
async fn every_unusable_credential_gets_a_401_with_a_bearer_challenge() {
    use common::oauth::*;
    use scimd::auth::oauth::GrantType;
    use scimd::db;

    // Dozens of refusals from one address: the flood throttle (tests/limits.rs) would
    // answer the later ones 429, and this test is about each refusal's own answer.
    let s = TestServer::start_with(scimd::config::HttpConfig {
        auth_failure_burst: 0,
        ..Default::default()
    })
    .await;
    let fx = seed(&s, &s.token, "a").await;
    let user = format!("/scim/v2/Users/{}", fx.users[0]);
    let good = s.token.clone();

    // No token, or no usable scheme. (Basic carries a token as its password: a wrong one
    // is a presented, invalid token, checked with the others below.)
    let basic_auth = basic("user", "pass");
    let no_token: [(&str, Option<&str>); 6] = [
        ("missing", None),
        ("scheme only", Some("Bearer")),
        ("scheme and spaces", Some("Bearer   ")),
        ("Digest", Some("Digest username=\"x\"")),
        ("empty", Some("")),
        ("token in another scheme", Some(&format!("Token {good}"))),
    ];
    for (what, value) in no_token {
        let headers: Vec<(&str, &str)> = value.map(|v| ("authorization", v)).into_iter().collect();
        for (method, path) in [
            (Method::GET, user.as_str()),
            (Method::POST, "/scim/v2/Users"),
        ] {
            let r = s.raw(method, path, &headers, "{}").await;
            assert_unauthorized(&r, false, what);
        }
    }

    // Tokens presented but not valid.
    let (revoked, expired) = {
        let conn = s.db.conn().unwrap();
        let tenant = db::tenants::by_slug(&conn, "default").unwrap().id;
        let revoked = scimd::auth::tokens::generate();
        let id =
            db::tokens::insert(&conn, tenant, "old", &revoked.prefix, &revoked.hash, None).unwrap();
        db::tokens::revoke(&conn, Some(tenant), id).unwrap();
        let expired = scimd::auth::tokens::generate();
        let past = scimd::scim::datetime::format(
            time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
        );
        db::tokens::insert(
            &conn,
            tenant,
            "expired",
            &expired.prefix,
            &expired.hash,
            Some(&past),
        )
        .unwrap();
        (revoked.secret, expired.secret)
    };
    let mut altered = good.clone();
    altered.pop();
    altered.push(if good.ends_with('0') { '1' } else { '0' });
    let presented = [
        ("revoked", format!("Bearer {revoked}")),
        ("expired", format!("Bearer {expired}")),
        ("unknown", "Bearer scimd_0000".to_string()),
        ("one character changed", format!("Bearer {altered}")),
        ("truncated", format!("Bearer {}", &good[..good.len() - 1])),
        ("upper-cased", format!("Bearer {}", good.to_uppercase())),
        ("with a suffix", format!("Bearer {good}x")),
        ("with an escaped newline", format!("Bearer {good}%0A")),
        (
            "with an inner space",
            format!("Bearer {} {}", &good[..10], &good[10..]),
        ),
        ("two tokens", format!("Bearer {good} {good}")),
        ("bare revoked token", revoked.clone()),
        ("bare, not ours", "scimd_".to_string()),
        ("Basic with a password that is no token", basic_auth.clone()),
        ("Basic with a revoked token", basic("okta", &revoked)),
    ];
    for (what, value) in &presented {
        let r = s
            .raw(Method::GET, &user, &[("authorization", value)], "")
            .await;
        assert_unauthorized(&r, true, what);
        let r = s
            .raw(
                Method::PATCH,
                &user,
                &[("authorization", value)],
                json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}).to_string(),
            )
            .await;
        assert_unauthorized(&r, true, what);
    }

    // OAuth credentials that are not an access token, and an access token past its expiry.
    let cookie = login(&s).await;
    let client = register(&s, "default", &[GrantType::AuthorizationCode]);
    let code = approve(&s, &cookie, &client.1).await;
    let unused_code = approve(&s, &cookie, &client.1).await;
    let r = exchange(&s, &client, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_string();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(s.call(Method::GET, &user, &access, None).await.status, 200);
    for (what, token) in [
        ("refresh token", &refresh),
        ("authorization code", &unused_code),
        ("client secret", &client.2),
        ("client id", &client.1),
    ] {
        let r = s.call(Method::GET, &user, token, None).await;
        assert_unauthorized(&r, true, what);
    }
    // Its expiry moved into the past (through the server's own writer, as the clock would
    // have it: the server remembers tokens and must notice).
    let past =
        scimd::scim::datetime::format(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    s.db.write(move |tx| {
        tx.execute(
            "UPDATE oauth_tokens SET expires_at = ?1 WHERE kind = 'access'",
            [past],
        )
        .map_err(scimd::db::DbError::from)
    })
    .await
    .unwrap();
    let r = s.call(Method::GET, &user, &access, None).await;
    assert_unauthorized(&r, true, "expired access token");

    // HTTP strips whitespace around a field value (RFC 9110 §5.5): a token with trailing
    // spaces or tabs is the same token, and the scheme is case-insensitive.
    for value in [
        format!("Bearer {good}   "),
        format!("Bearer {good}\t"),
        format!("bearer {good}"),
        format!("BEARER  {good}"),
    ] {
        let r = s
            .raw(Method::GET, &user, &[("authorization", &value)], "")
            .await;
        assert_eq!(r.status, 200, "{value:?}: {}", r.text);
    }
    // Nothing the refused requests sent was written.
    let r = s.get(&user).await;
    assert_eq!(r.json["displayName"], "User a0");
}

// --- 7. Bodies at and past the limit, lying and stalling --------------------------------------

/// One response read off a raw connection: status, head and body text.
struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

/// Writes `request` on a new connection, leaves it open (a stalled client sends nothing
/// more), and reads one response; panics if none comes within `patience`.
async fn raw_http(addr: std::net::SocketAddr, request: &[u8], patience: Duration) -> RawResponse {
    let request = request.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&request).unwrap();
        let deadline = std::time::Instant::now() + patience;
        let mut buf = Vec::new();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    return RawResponse { status, head, body };
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no answer within {patience:?}: {buf:?}");
            stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 8192];
            let n = stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("no answer within {patience:?} ({e}): {buf:?}"));
            assert!(n > 0, "the connection closed without an answer: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap()
}

fn head(method: &str, path: &str, token: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/scim+json\r\n{extra}\r\n"
    )
}

/// A user body of exactly `len` bytes.
fn user_of_len(user_name: &str, len: usize) -> String {
    let body = json!({"schemas": [USER_URN], "userName": user_name}).to_string();
    assert!(body.len() <= len);
    format!(
        "{}{}}}",
        &body[..body.len() - 1],
        " ".repeat(len - body.len())
    )
}

/// `POST /scim/v2/Users` with `body` as it is.
async fn post_text(s: &TestServer, body: &str) -> Resp {
    let auth = format!("Bearer {}", s.token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/scim+json"),
    ];
    s.raw(Method::POST, "/scim/v2/Users", &headers, body.to_string())
        .await
}

fn chunked(body: &str) -> String {
    let mut out = String::new();
    for piece in body.as_bytes().chunks(100) {
        out.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            std::str::from_utf8(piece).unwrap()
        ));
    }
    out.push_str("0\r\n\r\n");
    out
}

fn assert_raw_error(r: &RawResponse, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: application/scim+json"),
        "{}",
        r.head
    );
    let json: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["schemas"][0], ERROR_URN);
    assert_eq!(json["status"], status.to_string());
    assert_eq!(json["scimType"].as_str(), scim_type, "{}", r.body);
}

#[tokio::test]
async fn bodies_at_the_limit_pass_and_past_it_or_stalled_fail_cleanly() {
    const LIMIT: usize = 1024;
    let s = TestServer::start_with(scimd::config::HttpConfig {
        max_body_bytes: LIMIT,
        body_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let token = s.token.clone();
    let patience = Duration::from_secs(5);
    let users = || async { s.get("/scim/v2/Users").await.json["totalResults"].clone() };

    // With Content-Length: exactly the limit is accepted, one byte more is a 413.
    let body = user_of_len("at-limit@example.com", LIMIT);
    let r = post_text(&s, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = user_of_len("past-limit@example.com", LIMIT + 1);
    let r = post_text(&s, &body).await;
    r.assert_error(413, None);

    // Chunked, without Content-Length: the same.
    let mut req = head(
        "POST",
        "/scim/v2/Users",
        &token,
        "transfer-encoding: chunked\r\n",
    );
    req.push_str(&chunked(&user_of_len(
        "chunked-at-limit@example.com",
        LIMIT,
    )));
    let r = raw_http(s.addr, req.as_bytes(), patience).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut req = head(
        "POST",
        "/scim/v2/Users",
        &token,
        "transfer-encoding: chunked\r\n",
    );
    req.push_str(&chunked(&user_of_len(
        "chunked-past@example.com",
        LIMIT + 1,
    )));
    let r = raw_http(s.addr, req.as_bytes(), patience).await;
    assert_raw_error(&r, 413, None);
    assert_eq!(users().await, 2);

    // A Content-Length past the limit is refused before the body is read.
    let req = head(
        "POST",
        "/scim/v2/Users",
        &token,
        "content-length: 1000000\r\n",
    );
    let r = raw_http(s.addr, format!("{req}{{}}").as_bytes(), patience).await;
    assert_raw_error(&r, 413, None);

    // A Content-Length shorter than the body: the body is cut there, which is not JSON.
    let body = user_of_len("short-length@example.com", 200);
    let req = head("POST", "/scim/v2/Users", &token, "content-length: 20\r\n");
    let r = raw_http(s.addr, format!("{req}{body}").as_bytes(), patience).await;
    assert_raw_error(&r, 400, Some("invalidSyntax"));

    // A Content-Length longer than what is sent, or a chunked body that stops: the client
    // stalls, and the server answers 408 once the body read times out, writing nothing.
    let body = user_of_len("stalled@example.com", 200);
    let started = std::time::Instant::now();
    for (method, path, extra, sent) in [
        (
            "POST",
            "/scim/v2/Users",
            "content-length: 500\r\n",
            body.clone(),
        ),
        (
            "POST",
            "/scim/v2/Users",
            "transfer-encoding: chunked\r\n",
            format!("64\r\n{}", &body[..50]),
        ),
        (
            "PUT",
            "/scim/v2/Users/x",
            "content-length: 500\r\n",
            body.clone(),
        ),
        (
            "PATCH",
            "/scim/v2/Users/x",
            "content-length: 500\r\n",
            "{".into(),
        ),
        (
            "POST",
            "/scim/v2/.search",
            "content-length: 500\r\n",
            "{".into(),
        ),
    ] {
        let req = head(method, path, &token, extra);
        let r = raw_http(s.addr, format!("{req}{sent}").as_bytes(), patience).await;
        assert_raw_error(&r, 408, None);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // The OAuth token endpoint and the admin forms time out the same way (their own errors).
    for (path, content_type) in [
        ("/oauth/token", "application/x-www-form-urlencoded"),
        ("/oauth/revoke", "application/x-www-form-urlencoded"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/login", "multipart/form-data; boundary=xyz"),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: {content_type}\r\ncontent-length: 500\r\n\r\nab"
        );
        let r = raw_http(s.addr, req.as_bytes(), patience).await;
        assert!(
            (400..500).contains(&r.status),
            "{path}: {}\n{}",
            r.head,
            r.body
        );
    }

    assert_eq!(users().await, 2);
    let r = s.raw(Method::GET, "/healthz", &[], "").await;
    assert_eq!(r.status, 200);
}

/// A request answered before its body is read (a bad token, an unknown endpoint, a login
/// redirect, a GET that carries a body) ends its connection: the answer says
/// `Connection: close`, so a keep-alive client opens a new connection for its next request
/// instead of failing on the closed one. (Found by the methods-and-paths property.)
#[tokio::test]
async fn a_refused_body_closes_the_connection_and_says_so() {
    let s = TestServer::start_with(scimd::config::HttpConfig {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    let big = user_of_len("big@example.com", 60 * 1024);
    let auth = format!("Bearer {}", s.token);
    for (method, path, auth) in [
        (Method::POST, "/scim/v2/Users", "Bearer wrong"),
        (Method::POST, "/scim/v2/Users", "Basic x"),
        (Method::POST, "/scim/v2/Nope", auth.as_str()),
        (Method::PUT, "/scim/v2/Users", auth.as_str()),
        (Method::POST, "/scim/v2/Schemas", auth.as_str()),
        (Method::POST, "/scim/v2/Bulk", auth.as_str()),
        (Method::POST, "/no/such/page", auth.as_str()),
        (Method::POST, "/t/default/people/import", auth.as_str()),
        (Method::GET, "/scim/v2/Users", auth.as_str()),
    ] {
        let r = s
            .raw(
                method.clone(),
                path,
                &[("authorization", auth)],
                big.clone(),
            )
            .await;
        assert!(
            r.status.as_u16() < 500 || r.status == 501,
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(r.header("connection"), Some("close"), "{method} {path}");
        // The harness's client pools connections: this fails if it reused the closed one.
        let r = s.get("/scim/v2/Users").await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = s
        .raw(
            Method::POST,
            "/scim/v2/Users",
            &[("authorization", &auth)],
            user_of_len("big@example.com", 70 * 1024),
        )
        .await;
    r.assert_error(413, None);
    assert_eq!(r.header("connection"), Some("close"));
    // A body read to the end keeps the connection open.
    let r = s
        .raw(
            Method::POST,
            "/scim/v2/Users",
            &[("authorization", &auth)],
            big,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("connection"), None);
    assert_eq!(s.get("/scim/v2/Users").await.status, 200);
}

// --- One huge PATCH ---------------------------------------------------------------------

/// The most operations a PATCH may carry, each touching one element: the IdP gets the
/// whole result, and a write of another tenant sent while it runs completes too (the
/// write lock is shared by every tenant, so a PATCH that held it for seconds would stall
/// them all; BENCHMARKS.md records how long it holds it).
#[tokio::test]
async fn a_thousand_operation_patch_answers_whole_and_other_tenants_keep_writing() {
    let s = TestServer::start().await;
    let other = s.token_for("other");
    let uid = s.create_user("huge@example.com").await;
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("e{i}@example.com"), "type": "other"}]}))
        .collect();
    let body = json!({"schemas": [PATCH_URN], "Operations": ops});
    let path = format!("/scim/v2/Users/{uid}");
    let other_user = json!({"schemas": [USER_URN], "userName": "meanwhile@example.com"});
    let (patched, created) = tokio::join!(
        s.patch(&path, &body),
        s.call(Method::POST, "/scim/v2/Users", &other, Some(&other_user)),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let emails = patched.json["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 1001);
    assert_eq!(emails[1000]["value"], "e999@example.com");
    assert_eq!(created.status, 201, "{}", created.text);
    // The same addresses again merge into the ones there: nothing doubles.
    let again = s.patch(&path, &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["emails"].as_array().map(Vec::len), Some(1001));

    // A group: 1000 operations adding one member each, then 1000 removing them by filter.
    let mut ids = Vec::new();
    for i in 0..1000 {
        let conn = s.db.conn().unwrap();
        let tenant = scimd::db::tenants::by_slug(&conn, "default").unwrap().id;
        let data = scimd::scim::resource::normalize(
            &scimd::scim::schema::USER_RESOURCE,
            json!({"userName": format!("m{i}@example.com")}),
        )
        .unwrap();
        ids.push(scimd::db::users::create(&conn, tenant, &data).unwrap().id);
    }
    let r = s
        .post(
            "/scim/v2/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Huge"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let gpath = format!("/scim/v2/Groups/{gid}");
    let adds: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": "add", "path": "members", "value": [{"value": id}]}))
        .collect();
    let other_group = json!({"schemas": [GROUP_URN], "displayName": "Meanwhile"});
    let adds = json!({"schemas": [PATCH_URN], "Operations": adds});
    let (added, created) = tokio::join!(
        s.patch(&gpath, &adds),
        s.call(Method::POST, "/scim/v2/Groups", &other, Some(&other_group)),
    );
    assert!(added.status == 200 || added.status == 204, "{}", added.text);
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(sorted(&s.members_of(&gid).await), sorted(&ids));
    let removes: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
        .collect();
    let removed = s
        .patch(
            &gpath,
            &json!({"schemas": [PATCH_URN], "Operations": removes}),
        )
        .await;
    assert!(
        removed.status == 200 || removed.status == 204,
        "{}",
        removed.text
    );
    assert!(s.members_of(&gid).await.is_empty());
}

/// Every `$ref` and `location` repeats the request's host: a `Host` that is not one host
/// and port (a 100 KB one would make a 1 000-member group's answer 100 MB), or two of them,
/// is refused with 400 (RFC 9112 §3.2); a host and port are used as sent.
#[tokio::test]
async fn a_host_header_that_is_no_host_is_refused() {
    let s = TestServer::start().await;
    let patience = Duration::from_secs(10);
    let get = |hosts: Vec<String>| {
        let mut req = format!(
            "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n",
            s.token
        );
        for h in hosts {
            req.push_str(&format!("Host: {h}\r\n"));
        }
        req.push_str("\r\n");
        req
    };
    for bad in [
        vec!["a".repeat(100_000)],
        vec!["x.example.com".into(), "y.example.com".into()],
        vec!["user@x.example.com".into()],
        vec!["x.example.com/path".into()],
    ] {
        let r = raw_http(s.addr, get(bad.clone()).as_bytes(), patience).await;
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            &bad[0][..bad[0].len().min(40)],
            r.head
        );
    }
    let r = raw_http(
        s.addr,
        get(vec!["scim.example.com:8443".into()]).as_bytes(),
        patience,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.body
            .contains("http://scim.example.com:8443/scim/v2/ServiceProviderConfig"),
        "{}",
        r.body
    );
}

/// A query parameter that is not UTF-8 once percent-decoded is refused, not searched for
/// as U+FFFD: `invalidFilter` for a filter, `invalidValue` for anything else.
#[tokio::test]
async fn a_query_that_is_not_utf8_is_refused() {
    let s = TestServer::start().await;
    s.create_user("alice@example.com").await;
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22%ff%fe%22")
        .await;
    r.assert_error(400, Some("invalidFilter"));
    let r = s.get("/scim/v2/Users?attributes=%c3%28").await;
    r.assert_error(400, Some("invalidValue"));
    // Encoded UTF-8, and the replacement character itself, are just text.
    let r = s
        .get("/scim/v2/Users?filter=userName%20eq%20%22jos%C3%A9%EF%BF%BD%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 0);
}
