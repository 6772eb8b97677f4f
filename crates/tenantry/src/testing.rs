//! Test support (feature `testing`): a throwaway PostgreSQL database per test.
//!
//! The server comes from `TENANTRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). If it cannot be reached the test fails
//! with a message saying so: a test that needs PostgreSQL never passes without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("TENANTRY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database with a random name, dropped (with any open connections) when this is dropped,
/// together with the tenant databases and templates its catalog made on the same server.
pub struct TestDatabase {
    name: String,
    server: PgConnectOptions,
    /// Other ports the catalog was reached on (a relay), whose templates are dropped too.
    relays: Vec<u16>,
}

impl TestDatabase {
    /// Creates the database.
    pub async fn create() -> Self {
        let url = server_url();
        let server = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("TENANTRY_TEST_DATABASE_URL '{url}' is invalid: {e}"));
        let name = format!("tenantry_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&server)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need PostgreSQL at {url} (set TENANTRY_TEST_DATABASE_URL); \
                 connecting failed: {e}"
                )
            });
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .expect("CREATE DATABASE failed");
        Self {
            name,
            server,
            relays: Vec::new(),
        }
    }

    /// Notes that the catalog is reached through a relay on `port`: the templates it makes
    /// are named after that address, and are dropped with the database too.
    pub fn reached_through(&mut self, port: u16) {
        self.relays.push(port);
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database, with tenantry's empty `search_path`.
    pub fn options(&self) -> PgConnectOptions {
        self.server
            .clone()
            .database(&self.name)
            .options([("search_path", "")])
    }

    /// The database's URL (without tenantry's connection options).
    pub fn url(&self) -> String {
        let mut url = server_url();
        if let Some(slash) = url.rfind('/')
            && !url[..slash].ends_with('/')
        {
            url.truncate(slash);
        }
        format!("{url}/{}", self.name)
    }

    /// A pool of at most `size` connections on this database, ready for tenantry; like a
    /// server's, it does not ping connections as it hands them out.
    pub async fn pool(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .test_before_acquire(false)
            .connect_with(self.options())
            .await
            .expect("connecting to the test database failed")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        let relays = std::mem::take(&mut self.relays);
        // Drop runs outside async context; a runtime of its own does the dropping.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect_with(&server).await?;
                let (mut made, roles) = made_by_catalog(&server, &name, &relays).await?;
                made.push(name);
                // Those on this server: a registered server may be another one.
                let dropping: Vec<String> = sqlx::query_scalar(
                    "SELECT datname::text FROM pg_database WHERE datname = ANY($1)",
                )
                .bind(&made)
                .fetch_all(&mut conn)
                .await?;
                for database in dropping {
                    conn.execute(AssertSqlSafe(format!(
                        "ALTER DATABASE \"{database}\" WITH IS_TEMPLATE false"
                    )))
                    .await?;
                    conn.execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    )))
                    .await?;
                }
                // Their databases are gone, and with them whatever the roles were granted.
                for role in roles {
                    conn.execute(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{role}\"")))
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database");
        }
    }
}

/// The tenant databases and templates the catalog in database `name` made, on its own server
/// or a registered one (which may be the same server under another name), and its tenants'
/// roles.
async fn made_by_catalog(
    server: &PgConnectOptions,
    name: &str,
    relays: &[u16],
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let catalog = server.clone().database(name);
    let mut conn = PgConnection::connect_with(&catalog).await?;
    let families: Vec<String> = std::iter::once(catalog.clone())
        .chain(
            relays
                .iter()
                .map(|&port| catalog.clone().host("127.0.0.1").port(port)),
        )
        .map(|address| crate::migrate::template::family(&address))
        .collect();
    let mut made: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE EXISTS (SELECT FROM unnest($1::text[]) f WHERE starts_with(datname, f))",
    )
    .bind(families)
    .fetch_all(&mut conn)
    .await?;
    let has_catalog: bool =
        sqlx::query_scalar("SELECT to_regclass('tenantry.tenants') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    let mut roles = Vec::new();
    if has_catalog {
        // Where each tenant is, and where an interrupted move of it was going.
        let tenants: Vec<String> = sqlx::query_scalar(
            "SELECT database_name FROM tenantry.tenants WHERE database_name IS NOT NULL \
             UNION SELECT move_state->'to'->>'database' FROM tenantry.tenants \
             WHERE move_state->'to'->>'database' IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await?;
        made.extend(tenants);
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenantry.tenants")
            .fetch_all(&mut conn)
            .await?;
        roles = ids.into_iter().map(crate::layout::role_name_of).collect();
    }
    Ok((made, roles))
}

/// A PostgreSQL server of its own, on a free port, for tests that need several servers.
///
/// It is made with the installed `initdb` and `pg_ctl` (found with `pg_config --bindir`, or
/// in `TENANTRY_PG_BINDIR`), in a temporary directory, as the `postgres` user when the tests
/// run as root (initdb refuses root). It is stopped and deleted when this is dropped.
pub struct TestCluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    /// The password of `postgres` over TCP, on a server that asks for passwords.
    password: Option<&'static str>,
}

/// How a [`TestCluster`] takes connections.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Trust,
    Tls,
    Passwords,
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A new temporary directory named `<prefix>-<random>`, owned by `postgres` when we are root
/// (the server programs run as that user then).
fn postgres_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).expect("a temporary directory");
    if crate::dedicated::process::running_as_root() {
        let owned = Command::new("chown").arg("postgres").arg(&dir).status();
        assert!(owned.is_ok_and(|s| s.success()), "chown postgres failed");
    }
    dir
}

impl TestCluster {
    /// Initializes and starts the server; panics with the reason if that is impossible.
    pub fn start() -> Self {
        Self::start_with(Access::Trust)
    }

    /// A server that asks every TCP connection for its role's password (SCRAM), as
    /// operators run PostgreSQL; [`TestCluster::url`] carries `postgres`'s.
    pub fn start_with_passwords() -> Self {
        Self::start_with(Access::Passwords)
    }

    /// A server that accepts TLS connections only, with a certificate for `localhost`
    /// (and no other name or address) signed by a CA made for it ([`TestCluster::ca_file`]),
    /// both made with the installed `openssl`.
    pub fn start_tls() -> Self {
        Self::start_with(Access::Tls)
    }

    /// The CA that signed a [`TestCluster::start_tls`] server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The URL of `database` on this server by the name `localhost`, with `query`
    /// (`sslmode=...`) appended.
    pub fn localhost_url(&self, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/{database}?{query}",
            self.port
        )
    }

    fn start_with(access: Access) -> Self {
        let bindir = match std::env::var_os("TENANTRY_PG_BINDIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let out = Command::new("pg_config").arg("--bindir").output().expect(
                    "a second PostgreSQL server needs pg_config on the PATH (or TENANTRY_PG_BINDIR)",
                );
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let port = free_port();
        let dir = postgres_dir("tenantry-cluster");
        let password = (access == Access::Passwords).then_some("postgres-secret");
        let cluster = Self {
            dir,
            bindir,
            port,
            password,
        };
        let data = cluster.dir.display().to_string();
        let mut initdb = vec!["-D", &data, "-U", "postgres", "--no-sync", "-E", "UTF8"];
        let pwfile = cluster.dir.with_extension("pw");
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        match password {
            Some(password) => {
                std::fs::write(&pwfile, password).expect("the password file");
                initdb.extend([
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    &pwfile_arg,
                ]);
                if crate::dedicated::process::running_as_root() {
                    let owned = Command::new("chown").arg("postgres").arg(&pwfile).status();
                    assert!(owned.is_ok_and(|s| s.success()), "chown postgres failed");
                }
            }
            None => initdb.push("--auth=trust"),
        }
        cluster.as_postgres("initdb", &initdb);
        let _ = std::fs::remove_file(&pwfile);
        let mut options = format!(
            "-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        );
        if access == Access::Tls {
            make_certificates(&cluster.dir);
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={data}/server.crt -c ssl_key_file={data}/server.key"
            ));
        }
        let log = format!("{data}/server.log");
        cluster.as_postgres(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        cluster
    }

    /// Restarts the server, closing every connection to it, as a crash or an upgrade would.
    pub fn restart(&self) {
        let data = self.dir.display().to_string();
        let log = format!("{data}/server.log");
        self.as_postgres(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-m", "immediate", "-w", "restart"],
        );
    }

    /// The URL of database `database` on this server.
    pub fn url(&self, database: &str) -> String {
        let password = self.password.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "postgres://postgres{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Runs one of the server's programs, as `postgres` when we are root.
    fn as_postgres(&self, program: &str, args: &[&str]) -> std::process::Output {
        let program = self.bindir.join(program);
        let mut command = if crate::dedicated::process::running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.dir.display().to_string();
        let stopped = std::panic::catch_unwind(|| {
            self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
        });
        if stopped.is_err() {
            eprintln!("warning: could not stop the test cluster in {data}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a certificate for `localhost` signed by it, in the data directory `data` of a
/// server that then takes TLS connections only (its `pg_hba.conf` has `hostssl` lines alone).
fn make_certificates(data: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(data)
            .output()
            .expect("the TLS tests need the openssl command (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tenantry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(data.join("san.ext"), "subjectAltName=DNS:localhost\n")
        .expect("the certificate's extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .expect("pg_hba.conf");
    if crate::dedicated::process::running_as_root() {
        let owned = Command::new("chown")
            .args(["postgres", "server.key", "server.crt", "pg_hba.conf"])
            .current_dir(data)
            .status();
        assert!(owned.is_ok_and(|s| s.success()), "chown postgres failed");
    }
    let key = data.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("the key's mode");
}

/// A PgBouncer in transaction mode in front of the test server, on a free port, keeping at
/// most `pool_size` server connections per database and user, so that clients really share
/// server sessions.
///
/// It runs the installed `pgbouncer` (Debian's package puts it in `/usr/sbin`; set
/// `TENANTRY_PGBOUNCER` to use another), as the `postgres` user when the tests run as root
/// (PgBouncer refuses root), and is killed when this is dropped. Without PgBouncer the test
/// fails and says so.
pub struct TestPgBouncer {
    dir: PathBuf,
    port: u16,
    child: std::process::Child,
}

impl TestPgBouncer {
    /// Starts PgBouncer and waits until it accepts connections.
    pub fn start(pool_size: u32) -> Self {
        let program = std::env::var_os("TENANTRY_PGBOUNCER")
            .map(PathBuf::from)
            .or_else(|| {
                [
                    "/usr/sbin/pgbouncer",
                    "/usr/bin/pgbouncer",
                    "/usr/local/bin/pgbouncer",
                ]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
            })
            .expect(
                "these tests need PgBouncer (apt-get install pgbouncer, or set \
                 TENANTRY_PGBOUNCER to its path)",
            );
        let server = PgConnectOptions::from_str(&server_url()).expect("the test server's URL");
        let port = free_port();
        let dir = postgres_dir("tenantry-pgbouncer");
        let users = ["postgres", "root", crate::AppRole::default().name()]
            .map(|user| format!("\"{user}\" \"\"\n"))
            .concat();
        std::fs::write(dir.join("users.txt"), users).expect("PgBouncer's auth file");
        let config = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             auth_user = postgres\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             reserve_pool_size = 0\n\
             max_client_conn = 2000\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            host = server.get_host(),
            server_port = server.get_port(),
            dir = dir.display(),
        );
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(&ini, config).expect("PgBouncer's configuration");
        let mut command = Command::new(&program);
        if crate::dedicated::process::running_as_root() {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&ini)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let mut bouncer = Self { dir, port, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("PgBouncer exited ({status}): {}", bouncer.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "PgBouncer did not listen within 10 s: {}",
                bouncer.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bouncer
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` through this PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx from Debian's package, with a main configuration of its own that includes the
/// `http`-level configuration it is given (`deploy nginx`'s), in a temporary directory; it
/// listens on the ports that configuration names and is stopped when this is dropped.
/// Without nginx the test fails and says so.
pub struct TestNginx {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl TestNginx {
    /// Checks the configuration with `nginx -t`, then starts nginx.
    pub fn start(http: &str) -> Self {
        let nginx = "/usr/sbin/nginx";
        assert!(
            std::path::Path::new(nginx).exists(),
            "this test needs nginx (apt-get install nginx)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path().display();
        std::fs::write(dir.path().join("tenantry.conf"), http).expect("the configuration");
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
                 proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
                 uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
                 include {d}/tenantry.conf;\n}}\n"
            ),
        )
        .expect("the main configuration");
        let checked = Command::new(nginx)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nginx -t");
        assert!(
            checked.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        Self { dir, child }
    }

    /// Waits until nginx accepts connections on `port`.
    pub async fn listening(&self, port: u16) {
        let log = self.dir.path().join("error.log");
        accepting(port, || {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("nginx did not come up: {log}")
        })
        .await;
    }
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown, which stops its worker too. Our own child, not
        // reaped yet.
        let _ = crate::dedicated::process::signal(i64::from(self.child.id()), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

/// Waits up to 10 s until something accepts connections on `port` of the loopback address;
/// then fails with `why()`.
async fn accepting(port: u16, why: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// dnsmasq from Debian's package as a name server on a loopback port of its own: it answers
/// the TXT records it is given, NXDOMAIN for any other name under `.test` (RFC 6761), and
/// is stopped when this is dropped. [`TestDns::set_txt`] restarts it with other records.
/// Without dnsmasq the test fails and says so.
pub struct TestDns {
    port: u16,
    child: std::process::Child,
}

impl TestDns {
    /// Starts dnsmasq answering `records`, (name, text) pairs, and waits until it listens.
    pub async fn start(records: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Self::spawn(port, records);
        let dns = Self { port, child };
        dns.listening().await;
        dns
    }

    fn spawn(port: u16, records: &[(&str, &str)]) -> std::process::Child {
        let dnsmasq = "/usr/sbin/dnsmasq";
        assert!(
            Path::new(dnsmasq).exists(),
            "this test needs dnsmasq (apt-get install dnsmasq)"
        );
        let mut command = Command::new(dnsmasq);
        command
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
            ])
            .args(["--no-resolv", "--no-hosts", "--bind-interfaces"])
            .args(["--listen-address=127.0.0.1", "--local=/test/"])
            .arg(format!("--port={port}"));
        if crate::dedicated::process::running_as_root() {
            command.arg("--user=root");
        }
        for (name, text) in records {
            command.arg(format!("--txt-record={name},{text}"));
        }
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq starts")
    }

    async fn listening(&self) {
        let port = self.port;
        accepting(port, || format!("dnsmasq did not come up on port {port}")).await;
    }

    /// Where it answers (UDP and TCP).
    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Restarts it, on the same port, answering `records` instead.
    pub async fn set_txt(&mut self, records: &[(&str, &str)]) {
        self.stop();
        self.child = Self::spawn(self.port, records);
        self.listening().await;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether process `pid` runs: not a zombie, and not a killed process whose threads are
/// still exiting (its sockets may still accept connections then).
pub fn process_runs(pid: i64) -> bool {
    crate::dedicated::process::runs(pid)
}
