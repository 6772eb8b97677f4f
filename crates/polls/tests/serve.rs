//! `polls serve` as an operator runs it, a real process: slow and idle clients are cut off,
//! a flood of connections is refused fast, shutdown ends on time, sign-up and login are
//! bounded in memory and rate, the log says what happened without leaking secrets, and it
//! works through PgBouncer in transaction mode.
// Its clients behave as attackers do (sockets bound and reset by hand) and it kills the
// processes it tests with signals.
#![allow(unsafe_code)]

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry::testing::{TestDatabase, TestNginx, TestPgBouncer};

/// A password in DATABASE_URL that must never reach the log (trust auth ignores it).
const SECRET: &str = "hunter2-in-the-url";

/// The database's URL with [`SECRET`] as its password.
fn url_with_password(db: &TestDatabase) -> String {
    db.url()
        .replacen("://postgres@", &format!("://postgres:{SECRET}@"), 1)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
    _db: TestDatabase,
    _bouncer: Option<TestPgBouncer>,
}

/// Where the server and the commands reach the database: its URL and `DATABASE_POOLER`.
struct Reach {
    url: String,
    pooler: &'static str,
}

/// Runs `polls <args>` to completion against the database at `reach`.
fn polls(reach: &Reach, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(args)
        .env("DATABASE_URL", &reach.url)
        .env("DATABASE_POOLER", reach.pooler)
        .env("BASE_DOMAIN", support::BASE)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "polls {args:?}");
}

/// `polls serve` on a free port with tenant `thor`, the environment plus `env`, its log
/// in a file; returns once it answers.
async fn serve(env: &[(&str, &str)]) -> Server {
    let db = TestDatabase::create().await;
    let reach = Reach {
        url: url_with_password(&db),
        pooler: "none",
    };
    serve_on(db, None, &reach, env).await
}

/// [`serve`] on `db`, reached as `reach` (through `bouncer`, if any).
async fn serve_on(
    db: TestDatabase,
    bouncer: Option<TestPgBouncer>,
    reach: &Reach,
    env: &[(&str, &str)],
) -> Server {
    polls(reach, &["migrate"]);
    polls(reach, &["tenants", "create", "thor"]);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve")
        .env("DATABASE_URL", &reach.url)
        .env("DATABASE_POOLER", reach.pooler)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", addr.to_string())
        .env("PLATFORM_TOKEN", support::PLATFORM_TOKEN)
        .env_remove("RUST_LOG")
        .env_remove("LOG_FORMAT")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        addr,
        log,
        _db: db,
        _bouncer: bouncer,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() || server.get("polls.test", "/health", &[]).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the server did not come up: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Value) {
        self.request("GET", host, path, headers, None)
    }

    fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Vec<(String, String)>, Value) {
        request_to(self.addr, method, (host, path), headers, body)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits up to `limit` for the process to exit; how long it took, or `None`.
    async fn exited_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The server's resident memory in bytes.
    fn resident(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `raw` to `addr` on a new connection and reads the reply to the end.
fn send_to(addr: SocketAddr, raw: &[u8]) -> (u16, Vec<(String, String)>, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(raw).unwrap();
    read_reply(&mut stream)
}

/// A request to `addr` with `Host: host`, extra headers and an optional JSON body.
fn request_to(
    addr: SocketAddr,
    method: &str,
    (host, path): (&str, &str),
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    raw.push_str("\r\n");
    raw.push_str(&body);
    send_to(addr, raw.as_bytes())
}

/// Reads a whole HTTP/1.1 reply (the server closes the connection after it).
fn read_reply(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Value) {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, Vec::new(), Value::Null);
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// How long until the server closes `stream`, reading and discarding whatever it sends.
fn closed_after(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    started.elapsed()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_a_flood_is_refused_fast() {
    let server = serve(&[
        ("HEADER_READ_TIMEOUT", "2"),
        ("BODY_READ_TIMEOUT", "2"),
        ("KEEP_ALIVE_TIMEOUT", "3"),
        ("MAX_CONNECTIONS", "40"),
    ])
    .await;
    // A head that never ends.
    let mut partial = server.connect();
    partial
        .write_all(b"GET /polls/ HTTP/1.1\r\nHost: thor.pol")
        .unwrap();
    let waited = closed_after(partial);
    assert!(
        waited < Duration::from_secs(4),
        "a partial head stayed open {waited:?}"
    );

    // A body that never ends.
    let mut slow_body = server.connect();
    slow_body
        .write_all(
            b"POST /users/ HTTP/1.1\r\nHost: thor.polls.test\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .unwrap();
    let started = Instant::now();
    let (status, _, _) = read_reply(&mut slow_body);
    // Its 2 s runs out well before the default 30 s would, however busy the machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a partial body stayed open"
    );
    assert!(
        (400..500).contains(&status) || status == 0,
        "a partial body got {status}"
    );

    // A connection left idle after its request.
    let mut idle = server.connect();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: polls.test\r\n\r\n")
        .unwrap();
    let waited = closed_after(idle);
    // Its 3 s, not the default 15 s.
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(14)).contains(&waited),
        "an idle connection was closed after {waited:?}"
    );

    // 40 connections hold every slot; the 41st is refused at once, with Retry-After.
    let held: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Refused, not queued until a slot frees (that would be a 200).
    let (status, headers, body) = server.get("polls.test", "/health", &[]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(
        body,
        json!({ "detail": "Too many open connections; retry shortly." })
    );
    // Once the header timeout frees them, everyone is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.get("polls.test", "/health", &[]).0, 200);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_ends_on_time() {
    let mut server = serve(&[("SHUTDOWN_GRACE", "6"), ("BODY_READ_TIMEOUT", "60")]).await;
    // A request in flight when SIGTERM arrives is finished.
    let body = r#"{"username":"ann","email":"ann@example.com","password":"s3cret-pass"}"#;
    let mut in_flight = server.connect();
    write!(
        in_flight,
        "POST /users/ HTTP/1.1\r\nHost: thor.polls.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    // A client stuck in the middle of its body, which never finishes.
    let mut stuck = server.connect();
    stuck
        .write_all(b"POST /users/ HTTP/1.1\r\nHost: thor.polls.test\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections once shutting down.
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after SIGTERM"
    );
    in_flight.write_all(&body.as_bytes()[10..]).unwrap();
    let (status, _, reply) = read_reply(&mut in_flight);
    assert_eq!(status, 201, "{reply}");
    // The stuck client does not keep the process alive past the grace.
    assert!(
        server
            .exited_within(Duration::from_secs(10))
            .await
            .is_some()
    );
    let waited = signalled.elapsed();
    assert!(
        waited > Duration::from_millis(5_500),
        "it did not wait for the grace: {waited:?}"
    );
    let log = server.log();
    assert!(
        log.contains("shutting down: 2 connections still open, waiting up to 6 s for them"),
        "{log}"
    );
    assert!(
        log.contains("connections still open after the shutdown grace"),
        "{log}"
    );
    // It is told so, not cut off.
    let (status, headers, reply) = read_reply(&mut stuck);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(
        reply,
        json!({ "detail": "The server is shutting down; retry shortly." })
    );

    // A second signal stops at once.
    let mut server = serve(&[("SHUTDOWN_GRACE", "60"), ("BODY_READ_TIMEOUT", "60")]).await;
    let mut stuck = server.connect();
    stuck
        .write_all(b"POST /users/ HTTP/1.1\r\nHost: thor.polls.test\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n{")
        .unwrap();
    // A client still sending its request's head, and one connected and silent.
    let mut heading = server.connect();
    heading
        .write_all(b"GET /health HTTP/1.1\r\nHost: polls.te")
        .unwrap();
    let mut silent = server.connect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal(libc::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it waits for the stuck client"
    );
    server.signal(libc::SIGINT);
    let exited = server.exited_within(Duration::from_secs(2)).await;
    assert!(exited.is_some(), "a second SIGINT did not stop it");
    assert_eq!(read_reply(&mut stuck).0, 503);
    let (status, headers, reply) = read_reply(&mut heading);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    // Nothing was asked on the silent one: it is closed, not answered.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut silent, &mut rest).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn two_hundred_concurrent_signups_stay_under_300_mb() {
    let server = serve(&[
        ("AUTH_RATE_PER_ADDRESS", "100000"),
        ("AUTH_RATE_PER_TENANT", "100000"),
    ])
    .await;
    let server = std::sync::Arc::new(server);
    let idle = server.resident();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampling = {
        let (server, peak) = (server.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(server.resident(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let signups: Vec<_> = (0..200)
        .map(|i| {
            let server = server.clone();
            tokio::task::spawn_blocking(move || {
                let body = json!({
                    "username": format!("user{i}"), "email": format!("u{i}@example.com"),
                    "password": "s3cret-pass"
                });
                let (status, headers, _) =
                    server.request("POST", "thor.polls.test", "/users/", &[], Some(body));
                (status, header(&headers, "retry-after").is_some())
            })
        })
        .collect();
    let mut created = 0;
    for signup in signups {
        match signup.await.unwrap() {
            (201, _) => created += 1,
            (503, true) => {}
            other => panic!("a sign-up got {other:?}"),
        }
    }
    sampling.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "resident memory: {} MiB idle, {} MiB at the peak; {created} of 200 created",
        idle >> 20,
        peak >> 20
    );
    assert!(created > 0);
    assert!(peak < 300 << 20, "peak resident memory {} MiB", peak >> 20);
}

/// The login form's CSRF token, from its cookie, as a browser would send it back.
fn login_form_token(server: &Server, host: &str) -> String {
    let (status, headers, _) = server.get(host, "/admin/login", &[]);
    assert_eq!(status, 200);
    let cookie = header(&headers, "set-cookie").expect("the login form's cookie");
    let token = cookie
        .strip_prefix("tenantry_login_csrf=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{cookie}"));
    token.to_owned()
}

#[tokio::test]
async fn huge_usernames_at_the_login_doors_keep_no_memory() {
    let server = serve(&[
        ("AUTH_RATE_PER_ADDRESS", "100000"),
        ("AUTH_RATE_PER_TENANT", "100000"),
    ])
    .await;
    let before = server.resident();
    let token = login_form_token(&server, "thor.polls.test");
    for i in 0..60 {
        let username = format!("{i}{}", "a".repeat(1_500_000));
        // The admin's form, with its CSRF token right: refused before any work.
        let form = format!("csrf={token}&username={username}&password=wrong");
        let raw = format!(
            "POST /admin/login HTTP/1.1\r\nHost: thor.polls.test\r\nConnection: close\r\n\
             Cookie: tenantry_login_csrf={token}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        );
        // The server answers before the body is all sent, and may reset the connection
        // under the rest of it.
        let mut stream = server.connect();
        let _ = stream.write_all(raw.as_bytes());
        let (status, _, _) = read_reply(&mut stream);
        assert!(
            status == 413 || status == 0,
            "the admin read a 1.5 MB form: {status}"
        );
        // The API's login: not a name any account has, so no work and nothing kept.
        let login = json!({ "username": username, "password": "wrong" });
        let (status, _, body) =
            server.request("POST", "thor.polls.test", "/login/", &[], Some(login));
        assert_eq!(status, 400, "{body}");
        assert_eq!(body, json!({ "error": "Wrong Credentials" }));
    }
    // Under the admin's form limit, a long name is refused the same way and not echoed.
    let form = format!(
        "csrf={token}&username={}&password=wrong",
        "b".repeat(60_000)
    );
    let raw = format!(
        "POST /admin/login HTTP/1.1\r\nHost: thor.polls.test\r\nConnection: close\r\n\
         Cookie: tenantry_login_csrf={token}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let mut stream = server.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    assert!(
        page.starts_with("HTTP/1.1 400"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("Wrong username or password."));
    assert!(!page.contains("bbbbbbbbbb"), "the name was echoed");
    let after = server.resident();
    println!(
        "resident memory: {} MiB before, {} MiB after 120 logins with 1.5 MB names",
        before >> 20,
        after >> 20
    );
    assert!(
        after < before + (40 << 20),
        "grew from {} to {} MiB",
        before >> 20,
        after >> 20
    );
}

#[tokio::test]
async fn signup_and_login_are_rate_limited_per_address_and_per_tenant() {
    let server = serve(&[
        ("AUTH_RATE_PER_ADDRESS", "5"),
        ("AUTH_RATE_PER_TENANT", "8"),
    ])
    .await;
    let login = |from: &str| {
        let local: SocketAddr = format!("{from}:0").parse().unwrap();
        let socket = connect_from(local, server.addr);
        let mut stream = socket;
        // A name of its own each time: an account's lockout is not what this measures.
        let body = format!(
            r#"{{"username":"u{}","password":"wrong"}}"#,
            uuid::Uuid::new_v4().simple()
        );
        write!(
            stream,
            "POST /login/ HTTP/1.1\r\nHost: thor.polls.test\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (status, headers, body) = read_reply(&mut stream);
        (
            status,
            header(&headers, "retry-after").map(str::to_owned),
            body,
        )
    };
    for _ in 0..5 {
        assert_eq!(login("127.0.0.1").0, 400);
    }
    let (status, retry, body) = login("127.0.0.1");
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Request was throttled.")
    );
    // Another address has its own allowance, until the tenant's is spent (8 in all).
    for _ in 0..3 {
        assert_eq!(login("127.0.0.2").0, 400);
    }
    assert_eq!(login("127.0.0.2").0, 429);
}

/// The configuration `polls deploy nginx` writes for `server`, listening on `port`.
fn deploy_nginx(server: &Server, reach: &Reach, port: u16) -> String {
    let dir = tempfile::tempdir().unwrap();
    let written = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["deploy", "nginx", "--listen", &port.to_string(), "--output"])
        .arg(dir.path().join("tenantry.conf"))
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", server.addr.to_string())
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");
    std::fs::read_to_string(dir.path().join("tenantry.conf")).unwrap()
}

/// nginx configured by `polls deploy nginx` for `server`, on a free port, started: nginx
/// and its address.
async fn nginx_in_front(server: &Server, reach: &Reach) -> (TestNginx, SocketAddr) {
    let port = support::free_port();
    let nginx = TestNginx::start(&deploy_nginx(server, reach, port));
    nginx.listening(port).await;
    (nginx, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A wrong login to `host` at `to`, sent from the local address `from` with extra headers;
/// its status.
fn login_from(from: &str, to: SocketAddr, host: &str, headers: &str) -> u16 {
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    let mut stream = connect_from(local, to);
    // A name of its own each time: an account's lockout is not what this measures.
    let body = format!(
        r#"{{"username":"u{}","password":"wrong"}}"#,
        uuid::Uuid::new_v4().simple()
    );
    write!(
        stream,
        "POST /login/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_reply(&mut stream).0
}

#[tokio::test]
async fn behind_trusted_proxies_each_client_has_its_own_allowance() {
    let (server, reach, _, _) = serve_eager_loki_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("AUTH_RATE_PER_ADDRESS", "5"),
        ("AUTH_RATE_PER_TENANT", "1000"),
    ])
    .await;
    let (_nginx, nginx) = nginx_in_front(&server, &reach).await;
    let paths = [
        (
            "nginx to the app",
            nginx,
            "thor.polls.test",
            ["127.0.0.2", "127.0.0.3"],
        ),
        (
            "nginx to loki's server",
            nginx,
            "loki.polls.test",
            ["127.0.0.4", "127.0.0.5"],
        ),
        (
            "the router to loki's server",
            server.addr,
            "loki.polls.test",
            ["127.0.0.6", "127.0.0.7"],
        ),
    ];
    for (path, to, host, [greedy, other]) in paths {
        for _ in 0..5 {
            assert_eq!(login_from(greedy, to, host, ""), 400, "{path}");
        }
        assert_eq!(login_from(greedy, to, host, ""), 429, "{path}: not limited");
        // A header a client writes itself names nobody: the proxy appends the real peer.
        let spoofed = format!("X-Forwarded-For: {other}\r\nForwarded: for={other}\r\n");
        assert_eq!(
            login_from(greedy, to, host, &spoofed),
            429,
            "{path}: spoofed"
        );
        assert_eq!(
            login_from(other, to, host, ""),
            400,
            "{path}: another client blocked"
        );
    }
    // Straight to the app, a client's own header is not believed (it is no trusted proxy).
    for _ in 0..5 {
        let spoofed = "X-Forwarded-For: 127.0.0.9\r\n";
        assert_eq!(
            login_from("127.0.0.8", server.addr, "thor.polls.test", spoofed),
            400
        );
    }
    assert_eq!(
        login_from("127.0.0.9", server.addr, "thor.polls.test", ""),
        400
    );
    assert_eq!(
        login_from("127.0.0.8", server.addr, "thor.polls.test", ""),
        429
    );
    // The log names the client nginx forwarded for.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("client=127.0.0.2") && l.contains("tenant=thor")),
        "{log}"
    );
}

/// A connection to `to` from the local address `from`.
fn connect_from(from: SocketAddr, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(from).unwrap();
    let std: std::net::TcpStream = {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: the descriptor is a fresh socket we own and hand over whole.
        unsafe { std::net::TcpStream::from_raw_fd(socket.into_raw_fd()) }
    };
    std.set_nonblocking(false).unwrap();
    let address = ipv4_address(to);
    // SAFETY: connect(2) on our own socket with a valid sockaddr_in.
    let connected = unsafe {
        use std::os::fd::AsRawFd;
        libc::connect(
            std.as_raw_fd(),
            std::ptr::addr_of!(address).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(connected, 0, "connect from {from} failed");
    std.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std
}

fn ipv4_address(to: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(to) = to else {
        panic!("the server listens on IPv4")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

#[tokio::test]
async fn each_request_is_logged_with_its_tenant_and_id_and_no_secrets() {
    let server = serve(&[("LOG_FORMAT", "json")]).await;
    let (status, headers, _) =
        server.get("thor.polls.test", "/polls/", &[("X-Request-Id", "req-42")]);
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "x-request-id"), Some("req-42"));
    let (_, headers, _) = server.get("thor.polls.test", "/", &[("X-Request-Id", "bad id!")]);
    let made = header(&headers, "x-request-id").unwrap();
    assert!(made.len() == 32 && made != "bad id!", "{made}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    assert!(
        !log.contains(SECRET),
        "the log shows the database password:\n{log}"
    );
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["message"] == "request" && l["span"]["id"] == "req-42")
        .unwrap_or_else(|| panic!("no request line in\n{log}"));
    assert_eq!(line["status"], 401);
    assert!(line["latency_ms"].as_f64().is_some());
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["path"], "/polls");
    assert_eq!(line["span"]["tenant"], "thor");
    assert_eq!(line["span"]["mode"], "schema");
    assert!(lines.iter().any(|l| l["span"]["id"] == made));
    // A line logged inside a request names its tenant too: the 31st login in a minute from
    // one address is throttled, with a warning.
    let login = json!({ "username": "nobody", "password": "wrong" });
    for _ in 0..31 {
        server.request(
            "POST",
            "thor.polls.test",
            "/login/",
            &[],
            Some(login.clone()),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    let warning = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "sign-up or login throttled")
        .unwrap_or_else(|| panic!("no throttling warning in\n{log}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["span"]["tenant"], "thor");

    // Plain text, with no colours when the log is not a terminal.
    let server = serve(&[]).await;
    server.get("thor.polls.test", "/", &[]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    assert!(
        log.contains("tenant=thor") && log.contains("status=200"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    assert!(!log.contains(SECRET));
}

#[tokio::test]
async fn serve_works_through_pgbouncer_and_sees_another_process_suspend_a_tenant() {
    let bouncer = TestPgBouncer::start(2);
    let mut db = TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let reach = Reach {
        url: bouncer.url(db.name()),
        pooler: "transaction",
    };
    let server = serve_on(db, Some(bouncer), &reach, &[]).await;
    let account = json!({"username": "ann", "email": "ann@example.com", "password": "s3cret-pass"});
    let (status, _, body) =
        server.request("POST", "thor.polls.test", "/users/", &[], Some(account));
    assert_eq!(status, 201, "{body}");
    let login = json!({"username": "ann", "password": "s3cret-pass"});
    let (status, _, body) = server.request("POST", "thor.polls.test", "/login/", &[], Some(login));
    assert_eq!(status, 200, "{body}");
    let token = format!("Token {}", body["token"].as_str().unwrap());
    let auth = [("Authorization", token.as_str())];
    let poll = json!({"question": "Through the pooler?"});
    let (status, _, body) = server.request("POST", "thor.polls.test", "/polls/", &auth, Some(poll));
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = server.get("thor.polls.test", "/polls/", &auth);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["question"], "Through the pooler?");

    // Another process suspends the tenant; the server refuses it once it sees the change
    // (about a second; a generous deadline here, the machine may be busy).
    polls(&reach, &["tenants", "suspend", "thor"]);
    let suspended = Instant::now();
    while server.get("thor.polls.test", "/polls/", &auth).0 != 403 {
        assert!(
            suspended.elapsed() < Duration::from_secs(30),
            "the suspension was never seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dedicated_tenant_is_served_through_pgbouncer() {
    let bouncer = TestPgBouncer::start(2);
    let mut db = TestDatabase::create().await;
    db.reached_through(bouncer.port());
    let reach = Reach {
        url: bouncer.url(db.name()),
        pooler: "transaction",
    };
    let pool = db.pool(2).await;
    let server = serve_on(db, Some(bouncer), &reach, &[]).await;
    polls(
        &reach,
        &["tenants", "create", "loki", "--isolation", "dedicated"],
    );
    let account = json!({"username": "ann", "email": "ann@example.com", "password": "s3cret-pass"});
    let (status, _, body) =
        server.request("POST", "loki.polls.test", "/users/", &[], Some(account));
    assert_eq!(status, 201, "{body}\n{}", server.log());
    let login = json!({"username": "ann", "password": "s3cret-pass"});
    let (status, _, body) = server.request("POST", "loki.polls.test", "/login/", &[], Some(login));
    assert_eq!(status, 200, "{body}");
    let token = format!("Token {}", body["token"].as_str().unwrap());
    let auth = [("Authorization", token.as_str())];
    for i in 0..20 {
        let poll = json!({ "question": format!("Pooled {i}?") });
        let (status, _, body) =
            server.request("POST", "loki.polls.test", "/polls/", &auth, Some(poll));
        assert_eq!(status, 201, "{body}");
    }
    let (status, _, body) = server.get("loki.polls.test", "/polls/", &auth);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 20);
    // Its server really went through PgBouncer: its connections come from PgBouncer's.
    assert!(dedicated_pid(&pool, "loki").await.is_some());
    let environ = std::fs::read(format!(
        "/proc/{}/environ",
        dedicated_pid(&pool, "loki").await.unwrap()
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&environ).contains("DATABASE_POOLER=transaction"),
        "the server was not told of the pooler"
    );
}

/// The pid of the tenant's dedicated server, as the supervisor published it.
async fn dedicated_pid(pool: &sqlx::PgPool, slug: &str) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT s.pid FROM tenantry.dedicated_servers s \
         JOIN tenantry.tenants t ON t.id = s.tenant_id WHERE t.slug = $1",
    )
    .bind(slug)
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten()
}

/// Takes CONNECT on its database from a dedicated tenant's role: its server exits as it
/// starts.
async fn lock_out(pool: &sqlx::PgPool, slug: &str) -> uuid::Uuid {
    let (id, database): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, database_name FROM tenantry.tenants WHERE slug = $1")
            .bind(slug)
            .fetch_one(pool)
            .await
            .unwrap();
    let role = format!("tenantry_t_{}", &id.simple().to_string()[..20]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE CONNECT ON DATABASE \"{database}\" FROM \"{role}\""
    )))
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Whether the process runs (a zombie, dead but not yet reaped, does not).
fn alive(pid: i64) -> bool {
    tenantry::testing::process_runs(pid)
}

#[tokio::test]
async fn a_dedicated_tenant_gets_its_own_supervised_server() {
    let server = serve(&[("DEDICATED_IDLE", "2")]).await;
    let reach = Reach {
        url: url_with_password(&server._db),
        pooler: "none",
    };
    polls(
        &reach,
        &["tenants", "create", "loki", "--isolation", "dedicated"],
    );
    let pool = server._db.pool(2).await;
    assert_eq!(
        dedicated_pid(&pool, "loki").await,
        None,
        "started before a request"
    );

    // The first request starts loki's server and is forwarded to it; loki's data is its own.
    let signup = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = server.request("POST", "loki.polls.test", "/users/", &[], Some(signup));
    assert_eq!(status, 201, "{body}\n{}", server.log());
    // The API root needs a token: 401 is the app answering.
    let (status, _, _) = server.get("thor.polls.test", "/", &[]);
    assert_eq!(status, 401);
    let pid = dedicated_pid(&pool, "loki").await.expect("published");
    assert!(alive(pid));
    let show = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["tenants", "show", "loki"])
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains(&format!("as pid {pid}, port ")), "{show}");

    // Killed: the next request finds it dead and starts it again.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    while alive(pid) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, _, body) = server.get("loki.polls.test", "/", &[]);
    assert_eq!(status, 401, "{body}\n{}", server.log());
    let login = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = server.request("POST", "loki.polls.test", "/login/", &[], Some(login));
    assert_eq!(status, 200, "{body}\n{}", server.log());
    let restarted = dedicated_pid(&pool, "loki").await.unwrap();
    assert_ne!(restarted, pid);
    let (status, _, _) = server.get("thor.polls.test", "/", &[]);
    assert_eq!(status, 401, "thor noticed");

    // Idle for longer than DEDICATED_IDLE: stopped; the next request starts it again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(restarted) || dedicated_pid(&pool, "loki").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "not stopped when idle, or still published as running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = server.get("loki.polls.test", "/", &[]);
    assert_eq!(status, 401);
    let again = dedicated_pid(&pool, "loki").await.unwrap();
    assert!(alive(again));
    // What loki's own server logs says it is loki's, not the router's.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("tenant_server{tenant=loki}: ") && l.contains("serving on")),
        "{log}"
    );

    // The parent killed with SIGKILL leaves no child behind.
    server.signal(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(again) {
        assert!(
            Instant::now() < deadline,
            "the tenant's server outlived its parent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its row still names the pid; `tenants show` does not take it for running.
    assert_eq!(dedicated_pid(&pool, "loki").await, Some(again));
    let show = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["tenants", "show", "loki"])
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains(&format!("(pid {again} is gone: its supervisor died)")),
        "{show}"
    );
}

#[tokio::test]
async fn a_dedicated_server_that_dies_at_once_is_backed_off_and_answered_503() {
    let server = serve(&[]).await;
    let reach = Reach {
        url: url_with_password(&server._db),
        pooler: "none",
    };
    polls(
        &reach,
        &["tenants", "create", "loki", "--isolation", "dedicated"],
    );
    let pool = server._db.pool(2).await;
    // Its role may no longer connect to its database: its server exits as it starts.
    let id = lock_out(&pool, "loki").await;
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let (status, headers, body) = server.get("loki.polls.test", "/", &[]);
        assert_eq!(status, 503, "{body}");
        assert!(header(&headers, "retry-after").is_some(), "{headers:?}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarts: i32 =
        sqlx::query_scalar("SELECT restarts FROM tenantry.dedicated_servers WHERE tenant_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    // Started at once, again at once, then after 0.5 s, 1 s, 2 s: never in a tight loop.
    assert!(requests > 20, "{requests} requests");
    assert!(restarts < 6, "{} starts in 3 s", restarts + 1);
    let (status, _, _) = server.get("thor.polls.test", "/", &[]);
    assert_eq!(status, 401, "thor noticed");
}

/// A fresh database, migrated, with the dedicated tenants `slugs`: the database, how
/// commands reach it, a pool on it.
async fn with_dedicated(slugs: &[&str]) -> (TestDatabase, Reach, sqlx::PgPool) {
    let db = TestDatabase::create().await;
    let reach = Reach {
        url: url_with_password(&db),
        pooler: "none",
    };
    polls(&reach, &["migrate"]);
    for slug in slugs {
        polls(
            &reach,
            &["tenants", "create", slug, "--isolation", "dedicated"],
        );
    }
    let pool = db.pool(2).await;
    (db, reach, pool)
}

/// `polls serve` with `DEDICATED_EAGER`, thor (schema) and loki (dedicated), once loki's
/// server runs: the server, how commands reach the database, a pool on it, loki's pid.
async fn serve_eager_loki() -> (Server, Reach, sqlx::PgPool, i64) {
    serve_eager_loki_with(&[]).await
}

/// [`serve_eager_loki`] with `env` added to the server's environment.
async fn serve_eager_loki_with(env: &[(&str, &str)]) -> (Server, Reach, sqlx::PgPool, i64) {
    let (db, reach, pool) = with_dedicated(&["loki"]).await;
    let env: Vec<_> = [("DEDICATED_EAGER", "true")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    let server = serve_on(db, None, &reach, &env).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = dedicated_pid(&pool, "loki").await {
            break pid;
        }
        assert!(Instant::now() < deadline, "not started: {}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (server, reach, pool, pid)
}

#[tokio::test]
async fn with_dedicated_eager_the_servers_start_with_serve() {
    let (server, _, pool, pid) = serve_eager_loki().await;
    assert!(alive(pid));
    let (status, _, _) = server.get("loki.polls.test", "/", &[]);
    assert_eq!(status, 401);
    assert_eq!(
        dedicated_pid(&pool, "loki").await,
        Some(pid),
        "started again"
    );
}

#[tokio::test]
async fn rapid_settings_changes_fail_no_request_of_a_dedicated_tenant() {
    let (server, _, pool, _) = serve_eager_loki().await;
    let server = std::sync::Arc::new(server);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop) = (server.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.push(server.get("loki.polls.test", "/admin/login", &[]).0);
                }
                statuses
            })
        })
        .collect();
    let bearer = format!("Bearer {}", support::PLATFORM_TOKEN);
    for i in 0..8 {
        let patch = json!({ "settings": { "display_name": format!("Loki {i}") } });
        let (status, _, body) = server.request(
            "PATCH",
            "polls.test",
            "/api/tenants/loki/",
            &[("Authorization", &bearer)],
            Some(patch),
        );
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for reader in readers {
        statuses.extend(reader.await.unwrap());
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();
    let restarts: i32 = sqlx::query_scalar(
        "SELECT s.restarts FROM tenantry.dedicated_servers s \
         JOIN tenantry.tenants t ON t.id = s.tenant_id WHERE t.slug = 'loki'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "{} requests during 8 settings changes, {failed} failed; {restarts} restarts",
        statuses.len()
    );
    assert_eq!(failed, 0, "of {}\n{}", statuses.len(), server.log());
    // Each change was handed to the running server: none needed a restart.
    assert_eq!(restarts, 0, "{}", server.log());
    // The last change is what loki's pages show.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = send_page(server.addr, "loki.polls.test", "/admin/login");
        if page.contains("Loki 7") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last change never showed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dedicated_pid(&pool, "loki").await.is_some());
}

/// The text of a page at `addr` for `host`.
fn send_page(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    page
}

#[tokio::test]
async fn nginx_routes_a_dedicated_tenant_to_its_own_server_and_the_rest_to_the_app() {
    let (server, reach, _, loki_pid) = serve_eager_loki().await;
    let port = support::free_port();
    let config = deploy_nginx(&server, &reach, port);
    assert!(config.contains("server_name loki.polls.test;"), "{config}");
    let nginx = TestNginx::start(&config);
    nginx.listening(port).await;
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], port));

    // loki's requests go straight to loki's server: the app's log never sees them.
    let signup = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(
        nginx_addr,
        "POST",
        ("loki.polls.test", "/users/"),
        &[],
        Some(signup),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = request_to(nginx_addr, "GET", ("thor.polls.test", "/"), &[], None);
    assert_eq!(status, 401);
    let (status, _, _) = request_to(nginx_addr, "GET", ("polls.test", "/health"), &[], None);
    assert_eq!(status, 200);
    // The router served thor; loki's requests went straight to loki's own server.
    let log = server.log();
    let served = |tenant: &str| {
        log.lines()
            .any(|l| l.contains("request{") && l.contains(&format!("tenant={tenant} ")))
    };
    assert!(!served("loki"), "{log}");
    assert!(served("thor"), "{log}");

    // loki's server killed: nginx falls back to the app, which starts it again. A GET, which
    // nginx may send to the backup after an error; a POST it does not resend.
    unsafe { libc::kill(loki_pid as libc::pid_t, libc::SIGKILL) };
    while alive(loki_pid) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, _, body) = request_to(nginx_addr, "GET", ("loki.polls.test", "/"), &[], None);
    assert_eq!(status, 401, "{body}\n{}", server.log());
    let login = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(
        nginx_addr,
        "POST",
        ("loki.polls.test", "/login/"),
        &[],
        Some(login),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());

    // Nothing behind nginx answers (the app killed, its tenants' servers with it): nginx's
    // own failure is the same JSON 503 with Retry-After as the app's.
    server.signal(libc::SIGKILL);
    let unavailable: Value = serde_json::from_str(tenantry::deploy::ROUTER_UNAVAILABLE).unwrap();
    for host in ["loki.polls.test", "thor.polls.test"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, headers, body) = loop {
            let reply = request_to(nginx_addr, "GET", (host, "/"), &[], None);
            if reply.0 == 503 || Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status, 503, "{host}: {body}");
        assert_eq!(body, unavailable, "{host}");
        assert!(header(&headers, "retry-after").is_some(), "{headers:?}");
    }
}

/// The port of the tenant's dedicated server, as the supervisor published it.
async fn dedicated_port(pool: &sqlx::PgPool, slug: &str) -> u16 {
    let port: i32 = sqlx::query_scalar(
        "SELECT s.port FROM tenantry.dedicated_servers s \
         JOIN tenantry.tenants t ON t.id = s.tenant_id WHERE t.slug = $1",
    )
    .bind(slug)
    .fetch_one(pool)
    .await
    .unwrap();
    u16::try_from(port).unwrap()
}

/// Closes `stream` with a reset, as a client that vanishes does: whatever the server
/// writes next fails.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setting SO_LINGER on a socket we own, with a value of the type it takes.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// nginx in front of `server` (thor, schema; loki, dedicated), and every path a request
/// takes to them: (what it is, where to send, the host to name).
async fn every_path(
    server: &Server,
    reach: &Reach,
    pool: &sqlx::PgPool,
) -> (TestNginx, Vec<(&'static str, SocketAddr, &'static str)>) {
    let loki = SocketAddr::from(([127, 0, 0, 1], dedicated_port(pool, "loki").await));
    let (nginx, nginx_addr) = nginx_in_front(server, reach).await;
    let paths = vec![
        ("direct", server.addr, "thor.polls.test"),
        ("the router", server.addr, "loki.polls.test"),
        ("loki's own server", loki, "loki.polls.test"),
        ("nginx to the app", nginx_addr, "thor.polls.test"),
        ("nginx to loki's server", nginx_addr, "loki.polls.test"),
    ];
    (nginx, paths)
}

/// The abuse of one round: `rounds` connections of each kind of client that leaves early,
/// to `addr` for `host`.
fn hang_up_on(addr: SocketAddr, host: &str, rounds: usize) {
    let connect = || {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    for round in 0..rounds {
        // 20 pipelined requests, then gone before the answers.
        let mut stream = connect();
        let pipelined = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").repeat(20);
        let _ = stream.write_all(pipelined.as_bytes());
        if round % 2 == 0 {
            reset(stream);
        }
        // A download abandoned after its first bytes.
        let mut stream = connect();
        let pages = format!("GET /admin/login HTTP/1.1\r\nHost: {host}\r\n\r\n").repeat(50);
        let _ = stream.write_all(pages.as_bytes());
        let _ = stream.read(&mut [0; 100]);
        reset(stream);
        // An upload of a 3 MB body abandoned after 256 KiB.
        if round % 2 == 0 {
            let mut stream = connect();
            let head = format!(
                "POST /users/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: 3000000\r\n\r\n{{\"username\": \""
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&[b'a'; 256 * 1024]);
            reset(stream);
        }
    }
}

#[tokio::test]
async fn clients_that_hang_up_never_end_a_serving_process() {
    let (mut server, reach, pool, loki_pid) = serve_eager_loki().await;
    let (_nginx, mut paths) = every_path(&server, &reach, &pool).await;
    paths.insert(1, ("the platform API's site", server.addr, "polls.test"));
    for (path, addr, host) in paths {
        let host_owned = host.to_owned();
        tokio::task::spawn_blocking(move || hang_up_on(addr, &host_owned, 400))
            .await
            .unwrap();
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "polls serve died after clients hung up on {path}: {}",
            server.log()
        );
        assert!(
            alive(loki_pid),
            "loki's server died after clients hung up on {path}"
        );
        let page = if host == support::BASE {
            "/health"
        } else {
            "/admin/login"
        };
        let (status, _, body) = request_to(addr, "GET", (host, page), &[], None);
        assert_eq!(status, 200, "{path}: {body}\n{}", server.log());
    }
    assert_eq!(
        dedicated_pid(&pool, "loki").await,
        Some(loki_pid),
        "restarted"
    );
}

/// Sends `head` and a body of `length` bytes to `addr` while reading the answer, as a client
/// that keeps sending after the server has answered; the answer, or why there was none.
fn answer_while_sending(addr: SocketAddr, head: &str, length: usize) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = format!("{head}Content-Length: {length}\r\nConnection: close\r\n\r\n");
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let chunk = [b'a'; 64 * 1024];
        let mut left = length;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    sending.join().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    match answer.is_empty() {
        false => answer.into_owned(),
        true => format!("no answer ({read:?})"),
    }
}

#[tokio::test]
async fn an_answer_given_before_the_body_is_read_reaches_the_client_on_every_path() {
    let (server, reach, pool, _) = serve_eager_loki().await;
    let (_nginx, paths) = every_path(&server, &reach, &pool).await;
    for (path, addr, host) in paths {
        // Too large a body: refused from its length alone.
        let head =
            format!("POST /users/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n");
        let answer = answer_while_sending(addr, &head, 3_000_000);
        assert!(answer.starts_with("HTTP/1.1 413 "), "{path}: {answer}");
        assert!(answer.contains("{\"detail\":"), "{path}: {answer}");
        // No credentials: refused before the body is read.
        let head =
            format!("POST /polls/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n");
        let answer = answer_while_sending(addr, &head, 1_500_000);
        assert!(answer.starts_with("HTTP/1.1 401 "), "{path}: {answer}");
        assert!(answer.contains("{\"detail\":"), "{path}: {answer}");
        // A method the path does not take.
        let head = format!("PUT /admin/login HTTP/1.1\r\nHost: {host}\r\n");
        let answer = answer_while_sending(addr, &head, 1_500_000);
        assert!(answer.starts_with("HTTP/1.1 405 "), "{path}: {answer}");
        assert!(answer.contains("{\"detail\":"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn requests_no_parser_takes_are_refused_in_json_on_every_path() {
    let (server, reach, pool, _) = serve_eager_loki().await;
    let loki = SocketAddr::from(([127, 0, 0, 1], dedicated_port(&pool, "loki").await));
    let (_nginx, nginx_addr) = nginx_in_front(&server, &reach).await;
    let host = "Host: loki.polls.test\r\nConnection: close\r\n";
    let header = |size| {
        format!(
            "GET / HTTP/1.1\r\n{host}X-Big: {}\r\n\r\n",
            "b".repeat(size)
        )
    };
    let requests = [
        (
            "a NUL in the request line",
            format!("GET /\0x HTTP/1.1\r\n{host}\r\n"),
            400,
        ),
        ("no request line", "GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "a header without a colon",
            format!("GET / HTTP/1.1\r\n{host}Bad\r\n\r\n"),
            400,
        ),
        (
            "a 70 KB URI",
            format!("GET /{} HTTP/1.1\r\n{host}\r\n", "a".repeat(70_000)),
            414,
        ),
        ("a 500 KB header", header(500_000), 431),
    ];
    let paths = [
        ("polls serve", server.addr),
        ("loki's own server", loki),
        ("nginx", nginx_addr),
    ];
    for (path, addr) in paths {
        for (what, request, status) in &requests {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let _ = stream.write_all(request.as_bytes());
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            // nginx drops a header it cannot read (the request then goes on, without
            // credentials).
            let status = match (path, *status) {
                ("nginx", _) if what.contains("colon") => 401,
                (_, status) => status,
            };
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{what} to {path}: {answer}"
            );
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            let json: Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{what} to {path}: {e}: {answer}"));
            assert!(json["detail"].is_string(), "{what} to {path}: {answer}");
        }
    }
}

/// An unprivileged user for the processes of a test about what one user's processes can
/// read of each other: `nobody` when the tests run as root, else the tests' own user.
fn unprivileged(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid(2) reads our own credentials.
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    command
}

/// Whether another process of the unprivileged user can read `/proc/<pid>/<file>`.
fn readable_by_the_same_user(pid: u32, file: &str) -> bool {
    unprivileged(Command::new("cat").arg(format!("/proc/{pid}/{file}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn a_dedicated_server_is_given_no_secret_but_its_own_and_seals_itself() {
    let (_db, reach, pool) = with_dedicated(&["loki"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_polls"));
    unprivileged(&mut serve)
        .arg("serve")
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", addr.to_string())
        .env("PLATFORM_TOKEN", support::PLATFORM_TOKEN)
        .env("APP_ROLE_PASSWORD", "app-role-secret")
        .env("SOME_OPERATOR_SECRET", "operator-secret")
        .env("DEDICATED_EAGER", "true")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap());
    let mut serve = serve.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = dedicated_pid(&pool, "loki").await {
            break pid;
        }
        let log = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            Instant::now() < deadline,
            "loki's server did not start: {log}"
        );
        assert!(serve.try_wait().unwrap().is_none(), "serve exited: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _, body) = request_to(addr, "GET", ("loki.polls.test", "/admin/login"), &[], None);
    assert_eq!(status, 200, "{body}");

    // Its environment holds its settings and nothing of the platform's secrets: not the
    // owner's URL, the app role's password, the platform token or anything unlisted.
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .replace('\0', "\n");
    for secret in [
        SECRET,
        "app-role-secret",
        support::PLATFORM_TOKEN,
        "operator-secret",
    ] {
        assert!(
            !environ.contains(secret),
            "{secret} in loki's environment:\n{environ}"
        );
    }
    assert!(environ.contains("\nDATABASE_URL=-\n"), "{environ}");
    assert!(
        environ.contains("TRUSTED_PROXIES=127.0.0.1/32,::1/128"),
        "{environ}"
    );
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let loki_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM tenantry.tenants WHERE slug = 'loki'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(cmdline.starts_with(tenantry::dedicated::server_marker(loki_id).as_bytes()));

    // Another process of the same user reads neither loki's server nor its supervisor (which
    // holds the owner's URL); it can read a process that did not seal itself.
    let pid = u32::try_from(pid).unwrap();
    for file in ["environ", "mem", "fd/0"] {
        assert!(!readable_by_the_same_user(pid, file), "loki's {file}");
        assert!(
            !readable_by_the_same_user(serve.id(), file),
            "serve's {file}"
        );
    }
    let mut open = unprivileged(&mut Command::new("sleep"))
        .arg("30")
        .spawn()
        .unwrap();
    assert!(
        readable_by_the_same_user(open.id(), "environ"),
        "the check cannot fail"
    );
    open.kill().unwrap();
    open.wait().unwrap();
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// Waits for the tenant's dedicated server to be published as running; its pid and port.
async fn running_server(server: &Server, pool: &sqlx::PgPool, slug: &str) -> (i64, u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = dedicated_pid(pool, slug).await {
            return (pid, dedicated_port(pool, slug).await);
        }
        assert!(
            Instant::now() < deadline,
            "{slug} not started: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `polls serve` with `DEDICATED_EAGER` and `env`, and two dedicated tenants, loki and
/// freya: the server, how commands reach the database, a pool on it.
async fn serve_two_dedicated(env: &[(&str, &str)]) -> (Server, Reach, sqlx::PgPool) {
    let (db, reach, pool) = with_dedicated(&["loki", "freya"]).await;
    let env: Vec<_> = [("DEDICATED_EAGER", "true")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    let server = serve_on(db, None, &reach, &env).await;
    (server, reach, pool)
}

#[tokio::test]
async fn dedicated_servers_keep_their_ports_and_refuse_other_tenants_hosts() {
    let (mut server, reach, pool) = serve_two_dedicated(&[]).await;
    let (_, loki) = running_server(&server, &pool, "loki").await;
    let (_, freya) = running_server(&server, &pool, "freya").await;
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    // Each answers its own hosts only: freya's host sent to loki's server is refused.
    let (status, _, _) = request_to(
        at(loki),
        "GET",
        ("loki.polls.test", "/admin/login"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    let (status, headers, body) = request_to(
        at(loki),
        "GET",
        ("freya.polls.test", "/admin/login"),
        &[],
        None,
    );
    assert_eq!(status, 421, "{body}");
    assert_eq!(
        body,
        json!({"detail": "This server does not serve host 'freya.polls.test'."})
    );
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let (status, _, _) = request_to(
        at(loki),
        "GET",
        ("polls.test", "/t/freya/admin/login"),
        &[("X-Forwarded-Prefix", "/t/freya")],
        None,
    );
    assert_eq!(status, 421, "another tenant's mount");

    // Its own routes answer a wrong method in JSON, as the app does.
    for path in ["/health", "/users/"] {
        let (status, _, body) =
            request_to(at(loki), "DELETE", ("loki.polls.test", path), &[], None);
        assert_eq!(status, 405, "{path}");
        assert_eq!(
            body,
            json!({"detail": "Method \"DELETE\" not allowed."}),
            "{path}"
        );
    }

    // A stale nginx configuration that sends freya's hosts to loki's port shows no page of
    // loki's under freya's name.
    let port = support::free_port();
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stale = deploy_nginx(&server, &reach, port).replace(
        &format!("127.0.0.1:{freya};"),
        &format!("127.0.0.1:{loki};"),
    );
    let nginx = TestNginx::start(&stale);
    nginx.listening(nginx_addr.port()).await;
    let (status, _, body) = request_to(
        nginx_addr,
        "GET",
        ("freya.polls.test", "/admin/login"),
        &[],
        None,
    );
    assert_eq!(status, 421, "{body}");
    let (status, _, _) = request_to(
        nginx_addr,
        "GET",
        ("loki.polls.test", "/admin/login"),
        &[],
        None,
    );
    assert_eq!(status, 200);
    drop(nginx);

    // A new domain: loki's server is started again and answers it.
    polls(
        &reach,
        &["tenants", "domains", "add", "loki", "loki.example"],
    );
    let (status, _, body) = server.get("loki.example", "/admin/login", &[]);
    assert_eq!(status, 200, "{body}\n{}", server.log());

    // `polls serve` restarted: every server takes its port again.
    server.signal(libc::SIGTERM);
    server
        .exited_within(Duration::from_secs(15))
        .await
        .expect("serve stopped");
    let log = tempfile::NamedTempFile::new().unwrap();
    let restarted = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve")
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", server.addr.to_string())
        .env("DEDICATED_EAGER", "true")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    server.child = restarted;
    server.log = log;
    let deadline = Instant::now() + Duration::from_secs(20);
    for (slug, port) in [("loki", loki), ("freya", freya)] {
        loop {
            let up = TcpStream::connect(at(port)).is_ok()
                && request_to(
                    at(port),
                    "GET",
                    (&format!("{slug}.polls.test"), "/admin/login"),
                    &[],
                    None,
                )
                .0 == 200;
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{slug} not back on {port}: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(dedicated_port(&pool, slug).await, port, "{slug}");
    }
}

/// The real uid of process `pid`.
fn uid_of(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn with_a_uid_base_each_dedicated_server_is_a_user_of_its_own() {
    // SAFETY: geteuid(2) reads our own credentials.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can start processes as other users: serve refuses the setting.
        let db = TestDatabase::create().await;
        let run = Command::new(env!("CARGO_BIN_EXE_polls"))
            .arg("serve")
            .env("DATABASE_URL", db.url())
            .env("DEDICATED_UID_BASE", "300000")
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{run:?}");
        return;
    }
    let base = 300_000;
    let (server, _, pool) = serve_two_dedicated(&[("DEDICATED_UID_BASE", "300000")]).await;
    let (loki, loki_port) = running_server(&server, &pool, "loki").await;
    let (freya, freya_port) = running_server(&server, &pool, "freya").await;
    assert_eq!(uid_of(loki), base + u32::from(loki_port));
    assert_eq!(uid_of(freya), base + u32::from(freya_port));
    let (status, _, body) = server.get("loki.polls.test", "/admin/login", &[]);
    assert_eq!(status, 200, "{body}\n{}", server.log());

    // As loki's user, nothing of freya's can be read or signalled; as root, it can (the
    // checks can fail).
    let as_loki = |program: &str, args: &[String]| {
        use std::os::unix::process::CommandExt;
        Command::new(program)
            .args(args)
            .uid(uid_of(loki))
            .gid(uid_of(loki))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let environ = format!("/proc/{freya}/environ");
    assert!(!as_loki("cat", std::slice::from_ref(&environ)));
    assert!(!as_loki("kill", &["-0".into(), freya.to_string()]));
    assert!(std::fs::read(&environ).is_ok());
    assert!(alive(freya));
}

/// `polls migrate --wave-size N` against the running `serve` at `server`: exit status and
/// standard output.
fn migrate_in_waves(server: &Server, reach: &Reach, wave: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(["migrate", "--wave-size", wave])
        .env("DATABASE_URL", &reach.url)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", server.addr.to_string())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn an_upgrade_in_waves_restarts_each_dedicated_server_and_stops_at_the_first_that_fails() {
    let db = TestDatabase::create().await;
    let reach = Reach {
        url: url_with_password(&db),
        pooler: "none",
    };
    polls(&reach, &["migrate"]);
    for slug in ["freya", "hela", "loki"] {
        polls(
            &reach,
            &["tenants", "create", slug, "--isolation", "dedicated"],
        );
    }
    let pool = db.pool(2).await;
    let server = serve_on(db, None, &reach, &[("DEDICATED_EAGER", "true")]).await;
    let mut pids = Vec::new();
    for slug in ["freya", "hela", "loki"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        pids.push(loop {
            if let Some(pid) = dedicated_pid(&pool, slug).await {
                break pid;
            }
            assert!(Instant::now() < deadline, "not started: {}", server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
    }

    // Every server stopped and started again through the router, one tenant per wave.
    let (ok, out) = migrate_in_waves(&server, &reach, "1");
    assert!(ok, "{out}\n{}", server.log());
    let version = support::latest_version();
    for (slug, old) in ["freya", "hela", "loki"].iter().zip(&pids) {
        let new = dedicated_pid(&pool, slug).await.unwrap();
        assert_ne!(new, *old, "{slug} was not restarted");
        assert!(!alive(*old), "{slug}'s old server still runs");
        assert!(
            out.contains(&format!(
                "{slug}: version {version}, server restarted on this binary (pid {new}, \
                 version {})",
                env!("CARGO_PKG_VERSION")
            )),
            "{out}"
        );
        let (status, _, _) = server.get(&format!("{slug}.polls.test"), "/", &[]);
        assert_eq!(status, 401, "{slug} answers after the upgrade");
    }

    // hela's new server cannot start (its role may no longer connect): the upgrade stops
    // there, and loki, in the wave after, keeps the server it had.
    lock_out(&pool, "hela").await;
    let loki = dedicated_pid(&pool, "loki").await.unwrap();
    let (ok, out) = migrate_in_waves(&server, &reach, "1");
    assert!(!ok, "{out}");
    assert!(out.contains("freya: version"), "{out}");
    assert!(
        out.contains("hela: version") && out.contains("FAILED"),
        "{out}"
    );
    assert!(
        out.contains("loki: version") && out.contains("untouched (after a failure)"),
        "{out}"
    );
    assert_eq!(dedicated_pid(&pool, "loki").await, Some(loki));
    assert!(alive(loki));
    let (status, _, _) = server.get("freya.polls.test", "/", &[]);
    assert_eq!(status, 401);
}

#[tokio::test]
async fn suspending_a_dedicated_tenant_from_another_process_stops_its_server() {
    let (server, reach, pool, pid) = serve_eager_loki().await;
    polls(&reach, &["tenants", "suspend", "loki"]);
    assert!(!alive(pid), "the suspended tenant's server still runs");
    assert_eq!(dedicated_pid(&pool, "loki").await, None);
    let (status, _, body) = server.get("loki.polls.test", "/", &[]);
    assert_eq!(status, 403, "{body}");
    polls(&reach, &["tenants", "resume", "loki"]);
    let (status, _, body) = server.get("loki.polls.test", "/", &[]);
    assert_eq!(status, 401, "{body}\n{}", server.log());
}

/// The processes whose environment names `TENANT_SLUG=<slug>`: a dedicated tenant's servers.
fn servers_of(slug: &str) -> Vec<i64> {
    let wanted = format!("TENANT_SLUG={slug}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|&b| b == 0)
                    .any(|entry| entry == wanted.as_bytes())
            }) && alive(*pid)
        })
        .collect()
}

/// Runs `polls <args>` in the SQLite deployment in `data`; its standard output.
fn sqlite_cli(data: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data)
        .env("BASE_DOMAIN", support::BASE)
        .output()
        .unwrap();
    assert!(output.status.success(), "polls {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A SQLite deployment in a temporary directory with one dedicated tenant, of a slug of
/// its own (the tests look for its server among every process of the machine).
fn sqlite_with_dedicated_tenant() -> (tempfile::TempDir, String) {
    let data = tempfile::tempdir().unwrap();
    let slug = format!("sq{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    sqlite_cli(
        data.path(),
        &["tenants", "create", &slug, "--isolation", "dedicated"],
    );
    (data, slug)
}

/// `polls serve` of the SQLite deployment in `data`, on `addr`.
fn sqlite_serve(data: &std::path::Path, addr: SocketAddr) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polls"));
    command
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data)
        .env("BASE_DOMAIN", support::BASE)
        .env("BIND", addr.to_string())
        .stdout(Stdio::null());
    command
}

#[tokio::test]
async fn a_dedicated_tenant_of_a_sqlite_deployment_gets_its_own_server() {
    let (data, slug) = sqlite_with_dedicated_tenant();
    let host = format!("{slug}.polls.test");
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut serve = sqlite_serve(data.path(), addr)
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its first request starts its own server, which is given its file and answers.
    let signup = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(addr, "POST", (&host, "/users/"), &[], Some(signup));
    let log_text = || std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(status, 201, "{body}\n{}", log_text());
    let servers = servers_of(&slug);
    assert_eq!(servers.len(), 1, "{servers:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", servers[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("DATABASE_URL=-"), "{environ}");
    // Killed: the next request starts it again, and the data is in the file.
    unsafe { libc::kill(servers[0] as libc::pid_t, libc::SIGKILL) };
    while alive(servers[0]) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let login = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(addr, "POST", (&host, "/login/"), &[], Some(login));
    assert_eq!(status, 200, "{body}\n{}", log_text());
    // Published in the SQLite catalog: shown, and stopped by a suspension from another
    // process.
    let restarted = servers_of(&slug);
    let show = sqlite_cli(data.path(), &["tenants", "show", &slug]);
    assert!(
        show.contains(&format!("as pid {}, port ", restarted[0])),
        "{show}"
    );
    sqlite_cli(data.path(), &["tenants", "suspend", &slug]);
    assert!(
        servers_of(&slug).is_empty(),
        "the suspended tenant's server runs"
    );
    let (status, _, body) = request_to(addr, "GET", (&host, "/"), &[], None);
    assert_eq!(status, 403, "{body}");
    serve.kill().unwrap();
    serve.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !servers_of(&slug).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the tenant's server outlived serve"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_dedicated_address_serve_forwards_to_servers_run_elsewhere_and_starts_none() {
    let (data, slug) = sqlite_with_dedicated_tenant();
    let host = format!("{slug}.polls.test");
    // The tenant's server, as Compose or Kubernetes would run it: started by the test.
    let id = {
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(data.path().join("catalog.sqlite3"));
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        id
    };
    let own = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let file = data.path().join(format!("tenants/{slug}.sqlite3"));
    let mut tenant_server = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve-tenant")
        .env("DATABASE_URL", format!("sqlite://{}", file.display()))
        .env("TENANT_ID", id.to_string())
        .env("TENANT_SLUG", &slug)
        .env("TENANT_HOSTS", &host)
        .env("BIND", own.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut serve = sqlite_serve(data.path(), addr)
        .env("DEDICATED_ADDRESS", format!("localhost:{}", own.port()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() || TcpStream::connect(own).is_err() {
        assert!(Instant::now() < deadline, "the servers did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signup = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(addr, "POST", (&host, "/users/"), &[], Some(signup));
    assert_eq!(status, 201, "{body}");
    // By path prefix too, which reaches the shared server's router.
    let login = json!({ "username": "odin", "password": "valhalla-123" });
    let (status, _, body) = request_to(
        addr,
        "POST",
        ("polls.test", &format!("/t/{slug}/login/")),
        &[],
        Some(login),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        servers_of(&slug),
        [i64::from(tenant_server.id())],
        "serve started one"
    );
    // Its server gone: 503 with Retry-After, and serve starts none in its place.
    tenant_server.kill().unwrap();
    tenant_server.wait().unwrap();
    let (status, headers, _) = request_to(addr, "GET", (&host, "/"), &[], None);
    assert_eq!(status, 503);
    assert!(header(&headers, "retry-after").is_some());
    assert!(servers_of(&slug).is_empty());
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn a_dedicated_address_without_a_port_is_refused_with_exit_2() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data.path())
        .env("DEDICATED_ADDRESS", "app-{slug}")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEDICATED_ADDRESS 'app-{slug}' is not host:port"),
        "{stderr}"
    );
}
