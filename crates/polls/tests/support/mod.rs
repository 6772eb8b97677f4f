//! Spawns the real polls app on a random port against a fresh database.
#![allow(dead_code)]

pub mod browser;
pub mod visitor;

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenantry::testing::{TestDatabase, TestNginx, TestPgBouncer};
use tenantry::{NewTenant, Slug, Tenancy};

use polls::configuration::Settings;
use polls::startup;

pub const BASE: &str = "polls.test";

/// The smallest PNG: one transparent pixel.
pub const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
pub const PLATFORM_TOKEN: &str = "platform-secret";

pub struct TestApp {
    pub addr: SocketAddr,
    pub tenancy: Tenancy,
    /// What the app was started with: another server on the same store can be opened.
    pub settings: Settings,
    /// A client for requests the helpers do not make.
    pub client: reqwest::Client,
    /// The PostgreSQL database or SQLite directory, dropped with the app.
    _store: Store,
    /// nginx in front.
    _nginx: Option<TestNginx>,
    /// Where tenants' files are kept, removed with the app.
    _files: tempfile::TempDir,
}

enum Store {
    /// The database, and the PgBouncer it is reached through, if any.
    Postgres(Box<TestDatabase>, Option<TestPgBouncer>),
    Sqlite(tempfile::TempDir),
}

/// The kinds of tenant the API suite runs against.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Schema tenants in a PostgreSQL catalog.
    Schema,
    /// Shared-mode tenants: rows side by side, kept apart by Row-Level Security.
    Shared,
    /// PostgreSQL database tenants.
    Database,
    /// SQLite file tenants of a SQLite deployment, with no PostgreSQL anywhere.
    Sqlite,
    /// Schema tenants, every connection through a PgBouncer in transaction mode.
    SchemaThroughPgBouncer,
    /// Shared-mode tenants through PgBouncer.
    SharedThroughPgBouncer,
    /// Database tenants through PgBouncer.
    DatabaseThroughPgBouncer,
    /// Dedicated tenants: each served by its own `polls serve-tenant`, which the app starts
    /// and forwards to.
    Dedicated,
    /// Dedicated tenants behind real nginx, configured by `deploy nginx`: their hosts go
    /// straight to their servers, everything else (and a schema tenant, `odin`) to the app.
    DedicatedBehindNginx,
    /// Dedicated tenants of a SQLite deployment: each its own file and its own server.
    SqliteDedicated,
}

impl Mode {
    /// Whether tenants' rows share tables (and so their ids).
    pub fn shares_tables(self) -> bool {
        matches!(self, Mode::Shared | Mode::SharedThroughPgBouncer)
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Reads a response whose body must be JSON, or empty.
    async fn read(response: reqwest::Response, path: &str) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}: response is not JSON ({e}): {text}"))
        };
        Self {
            status,
            headers,
            body,
        }
    }
}

/// Settings as the binary would read them, for this test database.
pub fn settings(db: &TestDatabase) -> Settings {
    Settings {
        database_url: Some(db.url()),
        ..settings_without_database()
    }
}

/// Settings with no database: SQLite in `./data`, unless a test points elsewhere.
fn settings_without_database() -> Settings {
    Settings {
        database_url: None,
        data_dir: "data".into(),
        base_domain: BASE.into(),
        strategies: vec![
            tenantry::Strategy::Domain,
            tenantry::Strategy::Subdomain,
            tenantry::Strategy::PathPrefix,
        ],
        database_pooler: tenantry::Pooler::None,
        pool_size: 8,
        default_isolation: None,
        serving: polls::configuration::Serving {
            bind: "127.0.0.1:0".into(),
            platform_token: Some(PLATFORM_TOKEN.into()),
            ..Default::default()
        },
        router_secret: None,
        database_budget: 20,
        tenant_pool_size: 2,
        app_role: tenantry::AppRole::default().name().into(),
        app_role_password: None,
        redis_url: None,
        files_url: None,
    }
}

/// The app with schema-mode tenants `thor` and `potter`, serving on a random port.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(Mode::Schema).await
}

/// The isolation of the tenants a mode makes.
fn isolation_of(mode: Mode) -> tenantry::IsolationMode {
    match mode {
        Mode::Schema | Mode::SchemaThroughPgBouncer => tenantry::IsolationMode::Schema,
        Mode::Shared | Mode::SharedThroughPgBouncer => tenantry::IsolationMode::Shared,
        Mode::Database | Mode::DatabaseThroughPgBouncer | Mode::Sqlite => {
            tenantry::IsolationMode::Database
        }
        Mode::Dedicated | Mode::DedicatedBehindNginx | Mode::SqliteDedicated => {
            tenantry::IsolationMode::Dedicated
        }
    }
}

/// A SQLite deployment in a temporary directory.
fn sqlite_store() -> (tenantry::IsolationMode, Settings, Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_url: None,
        data_dir: dir.path().join("data"),
        ..settings_without_database()
    };
    (
        tenantry::IsolationMode::Database,
        settings,
        Store::Sqlite(dir),
    )
}

/// The app with tenants `thor` and `potter` of this kind, serving on a random port.
pub async fn spawn_app_in(mode: Mode) -> TestApp {
    spawn(mode, None).await
}

/// [`spawn_app_in`], with the serving options `configure` sets (signup, limits), served as
/// `polls serve` serves: client addresses known, limits applied.
pub async fn spawn_app_serving(
    mode: Mode,
    configure: impl FnOnce(&mut polls::configuration::Serving),
) -> TestApp {
    let mut serving = settings_without_database().serving;
    configure(&mut serving);
    spawn(mode, Some(serving)).await
}

async fn spawn(mode: Mode, serving: Option<polls::configuration::Serving>) -> TestApp {
    let (isolation, mut settings, store) = match mode {
        Mode::Sqlite => sqlite_store(),
        Mode::SqliteDedicated => {
            let (_, settings, store) = sqlite_store();
            (isolation_of(mode), settings, store)
        }
        Mode::Schema
        | Mode::Shared
        | Mode::Database
        | Mode::Dedicated
        | Mode::DedicatedBehindNginx => {
            let db = TestDatabase::create().await;
            let settings = settings(&db);
            (
                isolation_of(mode),
                settings,
                Store::Postgres(Box::new(db), None),
            )
        }
        Mode::SchemaThroughPgBouncer
        | Mode::SharedThroughPgBouncer
        | Mode::DatabaseThroughPgBouncer => {
            let bouncer = TestPgBouncer::start(2);
            let mut db = TestDatabase::create().await;
            db.reached_through(bouncer.port());
            let settings = Settings {
                database_url: Some(bouncer.url(db.name())),
                database_pooler: tenantry::Pooler::Transaction,
                ..settings(&db)
            };
            (
                isolation_of(mode),
                settings,
                Store::Postgres(Box::new(db), Some(bouncer)),
            )
        }
    };
    let files = tempfile::tempdir().unwrap();
    settings.files_url = Some(format!("file://{}", files.path().display()));
    if let Some(url) = &settings.database_url {
        let pool = startup::connect(url, settings.pool_size, settings.database_pooler)
            .await
            .unwrap();
        let role = tenantry::AppRole::default();
        tenantry::migrate_shared(&pool, &startup::migrations(), &role)
            .await
            .unwrap();
        if settings.database_pooler == tenantry::Pooler::Transaction {
            tenantry::role::prepare_roles(&pool, &role).await.unwrap();
        }
        pool.close().await;
    }
    let tenancy = match mode {
        Mode::Dedicated | Mode::DedicatedBehindNginx | Mode::SqliteDedicated => {
            let program = env!("CARGO_BIN_EXE_polls").into();
            startup::open_supervising(&settings, program).await.unwrap()
        }
        _ => startup::open(&settings).await.unwrap(),
    };
    for slug in ["thor", "potter"] {
        tenancy
            .create_tenant(NewTenant::new(Slug::parse(slug).unwrap(), isolation))
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match serving {
        None => {
            let app = startup::app(tenancy.clone(), settings.serving.platform_token.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Some(serving) => {
            let app = startup::app_with(tenancy.clone(), &serving);
            let limits = serving.limits.server();
            tokio::spawn(tenantry::serve(
                listener,
                app,
                limits,
                futures::stream::pending(),
            ));
        }
    }
    let mut app = TestApp {
        addr,
        tenancy,
        settings,
        client: reqwest::Client::new(),
        _store: store,
        _nginx: None,
        _files: files,
    };
    if let Mode::DedicatedBehindNginx = mode {
        app.behind_nginx().await;
    }
    app
}

impl TestApp {
    /// Asserts that a 400's body is `expected`, or, behind nginx, the router's own JSON
    /// refusal: nginx refuses some malformed requests itself, before the app sees them.
    pub fn assert_refused(&self, body: &Value, expected: &Value, context: &str) {
        let router: Value = serde_json::from_str(tenantry::deploy::ROUTER_REFUSAL).unwrap();
        if self._nginx.is_some() && *body == router {
            return;
        }
        assert_eq!(body, expected, "{context}");
    }

    /// Starts thor's and potter's servers, puts nginx (configured by `deploy nginx`) in
    /// front of the app, and sends every later request through it.
    async fn behind_nginx(&mut self) {
        let odin = NewTenant::new(
            Slug::parse("odin").unwrap(),
            tenantry::IsolationMode::Schema,
        );
        self.tenancy.create_tenant(odin).await.unwrap();
        for host in ["thor.polls.test", "potter.polls.test"] {
            let reply = self.request(Method::GET, host, "/health", None, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{host}: {:?}", reply.body);
        }
        let port = free_port();
        let options = tenantry::deploy::NginxOptions {
            listen: port,
            shared: self.addr.to_string(),
        };
        let config = tenantry::deploy::nginx(&self.tenancy, &options)
            .await
            .unwrap();
        assert!(config.contains("server_name thor.polls.test;"), "{config}");
        assert!(
            config.contains("server_name potter.polls.test;"),
            "{config}"
        );
        let nginx = TestNginx::start(&config);
        nginx.listening(port).await;
        self.addr = SocketAddr::from(([127, 0, 0, 1], port));
        self._nginx = Some(nginx);
        // The schema tenant is served by the app, through nginx.
        let reply = self
            .request(Method::GET, "odin.polls.test", "/", None, None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    }
}

impl TestApp {
    /// Sends a request with `Host: host`, optional token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        host: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.unwrap(), path).await
    }

    /// Registers a user in the tenant at `host` and returns its `Token ...` header value.
    pub async fn user(&self, host: &str, username: &str) -> String {
        let created = self
            .request(
                Method::POST,
                host,
                "/users/",
                None,
                Some(serde_json::json!({
                    "username": username, "email": format!("{username}@example.com"),
                    "password": "s3cret-pass"
                })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let login = self
            .request(
                Method::POST,
                host,
                "/login/",
                None,
                Some(serde_json::json!({ "username": username, "password": "s3cret-pass" })),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        format!("Token {}", login.body["token"].as_str().unwrap())
    }
}

impl TestApp {
    /// Changes the settings of the tenant `slug` (a patch, as the platform API takes it).
    pub async fn set_settings(&self, slug: &str, patch: Value) {
        let update = tenantry::TenantUpdate {
            settings: Some(patch),
            ..Default::default()
        };
        let slug = Slug::parse(slug).unwrap();
        self.tenancy.update_tenant(&slug, update).await.unwrap();
    }

    /// A staff user `admin` with `password` in the tenant `slug`, as `createsuperuser`
    /// makes one.
    pub async fn staff_user(&self, slug: &str, password: &str) {
        let hash = polls::auth::hash_password(password);
        self.tenancy
            .in_tenant(&Slug::parse(slug).unwrap(), async |db| {
                db.query(
                    "INSERT INTO users (username, email, password_hash, is_superuser, is_staff) \
                     VALUES ('admin', '', $1, true, true)",
                )
                .bind(&hash)
                .execute()
                .await
                .map_err(tenantry::Error::from)
            })
            .await
            .unwrap();
    }
}

/// A response read off the wire by [`TestApp::raw_get`].
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RawReply {
    /// The value of the first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    /// Sends `body` as is, with this `Content-Type` (none if `None`).
    pub async fn request_text(
        &self,
        method: Method,
        host: &str,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host)
            .body(body.to_owned());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Reply::read(request.send().await.unwrap(), path).await
    }

    /// `GET path` written by hand over TCP, so that any `Host` bytes can be sent (reqwest
    /// refuses some). `host: None` sends no `Host` header at all. The body must be JSON.
    pub async fn raw_get(&self, host: Option<&[u8]>, path: &str) -> RawReply {
        let mut request = format!("GET {path} HTTP/1.1\r\n").into_bytes();
        if let Some(host) = host {
            request.extend_from_slice(b"Host: ");
            request.extend_from_slice(host);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        self.raw(&request).await
    }

    /// Sends `request`, a whole HTTP/1.1 request written by hand, on a connection of its own
    /// and reads the reply to the end. The body must be JSON or empty.
    pub async fn raw(&self, request: &[u8]) -> RawReply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        parse_raw_response(&response)
    }
}

fn parse_raw_response(response: &[u8]) -> RawReply {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut words = status_line.splitn(3, ' ');
    assert_eq!(words.next(), Some("HTTP/1.1"), "{status_line}");
    let status = words
        .next()
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {body:?}"))
    };
    RawReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Asserts status and exact body, and that the body was sent as JSON.
#[track_caller]
pub fn assert_reply(reply: &Reply, status: StatusCode, body: Value) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_eq!(reply.body, body);
    if !body.is_null() {
        let content_type = reply
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap());
        assert_eq!(content_type, Some("application/json"));
    }
}

/// The newest tenant migration of the polls app, as the CLI and the API show it.
pub fn latest_version() -> i64 {
    polls::startup::migrations()
        .tenant_version()
        .expect("polls has tenant migrations")
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
