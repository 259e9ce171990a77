//! Test harness: the real server, in-process, on 127.0.0.1:0 with a fresh SQLite file,
//! driven over real HTTP.
#![allow(dead_code)]

pub mod browser;
pub mod oauth;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

use scimd::config::HttpConfig;
use scimd::db::{self, Db, Durability};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The member ids of a rendered group, sorted.
pub fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The value of the first hidden input `name` of an HTML page, unescaped.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(
        html[start..start + end]
            .replace("&amp;", "&")
            .replace("&#43;", "+"),
    )
}

/// `ids`, owned and sorted, to compare with [`member_ids`].
pub fn sorted<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The default tenant's token.
    pub token: String,
    pub db: Db,
    /// The server's metrics, for a webhook sender to record into.
    pub metrics: scimd::http::metrics::Metrics,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole `Set-Cookie` header this response sends for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// `name=value` of the cookie this response sets, ready for a `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name)
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    /// Asserts a SCIM Error body with this status and scimType.
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "{}",
            self.text
        );
        assert_eq!(self.json["schemas"][0], ERROR_URN, "{}", self.text);
        assert_eq!(self.json["status"], status.to_string(), "{}", self.text);
        assert!(
            self.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(self.json["scimType"].as_str(), scim_type, "{}", self.text);
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(HttpConfig::default()).await
    }

    pub async fn start_with(config: HttpConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        // The server's default durability: writes are answered by the log flusher.
        let db = Db::open(&dir.path().join("scimd.db"), Durability::Full).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = scimd::http::App::new(db.clone(), config);
        let metrics = app.metrics();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(scimd::server::run(listener, app, async {
            let _ = stopped.await;
        }));
        let mut server = TestServer {
            addr,
            token: String::new(),
            db,
            metrics,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        server.token = server.token_for("default");
        server
    }

    /// A new token for `tenant`, creating the tenant if needed.
    pub fn token_for(&self, tenant: &str) -> String {
        let conn = self.db.conn().unwrap();
        let tenant_id = match db::tenants::by_slug(&conn, tenant) {
            Ok(t) => t.id,
            Err(_) => db::tenants::create(&conn, tenant, tenant).unwrap().id,
        };
        let new = scimd::auth::tokens::generate();
        db::tokens::insert(&conn, tenant_id, "test", &new.prefix, &new.hash, None).unwrap();
        new.secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with full control over headers and body bytes.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    /// A JSON request authenticated with `token`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Resp {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type", "application/scim+json"));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        self.raw(method, path, &headers, bytes).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, &self.token, None).await
    }

    pub async fn get_owned(&self, path: String) -> Resp {
        self.get(&path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, &self.token, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, &self.token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, &self.token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, &self.token, None).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/scim/v2/Users",
                &serde_json::json!({"schemas":[USER_URN],"userName":user_name,"name":{"givenName":"G","familyName":"F"},
                    "emails":[{"value":user_name,"type":"work","primary":true}],"active":true}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    }

    /// Creates a group of the users `members` and returns its id.
    pub async fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<_> = members
            .iter()
            .map(|id| serde_json::json!({"value": id}))
            .collect();
        let r = self
            .post(
                "/scim/v2/Groups",
                &serde_json::json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_str().unwrap().to_string()
    }

    /// A one-time setup link for the first admin, as `scimd serve` prints it.
    pub fn setup_link(&self) -> String {
        let secret = scimd::auth::random_hex(32);
        let expires = scimd::scim::datetime::format(
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        );
        let conn = self.db.conn().unwrap();
        db::admins::create_setup_token(&conn, &scimd::auth::tokens::hash(&secret), &expires)
            .unwrap();
        self.url(&format!("/setup?token={secret}"))
    }

    /// A new app API key's secret: of tenant `tenant`, or of every tenant with `None`.
    pub async fn api_key(&self, tenant: Option<i64>) -> String {
        scimd::ops::apikeys::issue(
            &self.db,
            &scimd::model::Actor::cli(),
            tenant,
            "app".into(),
            None,
        )
        .await
        .unwrap()
        .token
        .secret
    }

    /// Creates an admin directly in the database.
    pub fn create_admin(&self, username: &str, password: &str) {
        let conn = self.db.conn().unwrap();
        db::admins::create(&conn, username, &scimd::auth::passwords::hash(password)).unwrap();
    }

    /// The sorted member ids of group `gid`, as a GET shows them.
    pub async fn members_of(&self, gid: &str) -> Vec<String> {
        member_ids(&self.get(&format!("/scim/v2/Groups/{gid}")).await.json)
    }

    /// Posts the login form the way a browser does (fetching the page for its CSRF cookie
    /// first) and returns the answer.
    pub async fn login_response(&self, username: &str, password: &str) -> Resp {
        self.login_response_with(username, password, &[]).await
    }

    /// [`Self::login_response`] with `extra` headers on both of its requests.
    pub async fn login_response_with(
        &self,
        username: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Resp {
        let page = self.raw(Method::GET, "/login", extra, "").await;
        let csrf_cookie = page
            .cookie("scimd_login_csrf")
            .expect("the login page sets its CSRF cookie");
        let token = csrf_cookie.split_once('=').unwrap().1.to_string();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("csrf", token.as_str()),
                ("next", "/"),
                ("username", username),
                ("password", password),
            ])
            .finish();
        let mut headers = vec![
            ("cookie", csrf_cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        headers.extend_from_slice(extra);
        self.raw(Method::POST, "/login", &headers, body).await
    }

    /// Logs `username` in over plain HTTP; returns the session cookie (`scimd_session=…`).
    pub async fn login_cookie(&self, username: &str, password: &str) -> String {
        let r = self.login_response(username, password).await;
        assert_eq!(r.status, 303, "{}", r.text);
        r.cookie("scimd_session").expect("a session cookie")
    }

    /// The server's database file (its log is beside it, `-wal` appended).
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("scimd.db")
    }

    /// Stops the server the way SIGTERM does and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An admin's browser: the session cookie and the CSRF token its pages carry.
pub struct Admin {
    pub cookie: String,
    pub csrf: String,
}

impl Admin {
    /// Logs `username` in and reads the CSRF token of a page, as the browser holds them.
    pub async fn login(s: &TestServer, username: &str, password: &str) -> Admin {
        let cookie = s.login_cookie(username, password).await;
        let page = s
            .raw(Method::GET, "/t/default/sync", &[("cookie", &cookie)], "")
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        Admin {
            csrf: hidden_field(&page.text, "csrf").expect("a CSRF field"),
            cookie,
        }
    }

    pub async fn get(&self, s: &TestServer, path: &str) -> Resp {
        s.raw(Method::GET, path, &[("cookie", &self.cookie)], "")
            .await
    }

    /// Posts `body` (url-encoded) with the session's CSRF token.
    pub async fn post(&self, s: &TestServer, path: &str, body: &str) -> Resp {
        let body = format!("csrf={}&{body}", self.csrf);
        self.post_raw(s, path, body).await
    }

    /// Posts exactly `body`.
    pub async fn post_raw(&self, s: &TestServer, path: &str, body: String) -> Resp {
        s.raw(
            Method::POST,
            path,
            &[
                ("cookie", self.cookie.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
        .await
    }
}
