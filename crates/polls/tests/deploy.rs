//! `polls deploy compose` and `polls deploy kubernetes`: the files are checked by the real
//! validators (the Compose specification's schema with `check-jsonschema`, the Kubernetes
//! API's schemas with `kubernetes-validate`, nginx with `nginx -t`), regenerating after a
//! catalog change rewrites only what it must, credentials are kept in files of mode 0600,
//! and what the files run works: a tenant's migration step and server on a database of its
//! own, as its role, with the credentials the files hold.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tenantry::testing::TestDatabase;

/// Runs `polls <args>` against `db`, asserting success; returns its standard output.
fn polls(db: &TestDatabase, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .env_remove("TENANT_STRATEGIES")
        .env_remove("BIND")
        .output()
        .unwrap();
    assert!(output.status.success(), "polls {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a validator installed from PyPI or Debian, failing clearly when it is missing.
fn validate(program: &str, args: &[&str], install: &str) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs {program} ({install}): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} refused it:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file under `dir` with its text.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_owned(), text);
            }
        }
    }
    files
}

/// The paths whose text differs between two snapshots (added, changed or removed).
fn changed(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut paths: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.display().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Runs `polls <change>`, regenerates, and returns the paths that changed under `dir`.
fn after(
    db: &TestDatabase,
    dir: &Path,
    change: &[&str],
    generate: &dyn Fn() -> String,
) -> Vec<String> {
    let before = snapshot(dir);
    polls(db, change);
    generate();
    changed(&before, &snapshot(dir))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The Compose specification's schema, vendored by check-jsonschema, on `file`.
fn check_compose(file: &Path) {
    validate(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            file.to_str().unwrap(),
        ],
        "pip install check-jsonschema",
    );
}

/// `nginx -t` on an `http`-level configuration, inside a main configuration of the test's.
fn nginx_check(dir: &Path, conf: &Path) {
    let nginx = "/usr/sbin/nginx";
    assert!(
        Path::new(nginx).exists(),
        "this test needs nginx (apt-get install nginx)"
    );
    let main = dir.join("main.conf");
    std::fs::write(
        &main,
        format!(
            "error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n    \
             access_log off;\n    include {conf};\n}}\n",
            d = dir.display(),
            conf = conf.display()
        ),
    )
    .unwrap();
    let prefix = format!("{}/", dir.display());
    validate(
        nginx,
        &["-t", "-q", "-p", &prefix, "-c", main.to_str().unwrap()],
        "apt-get install nginx",
    );
}

/// The id of the tenant with this slug.
async fn tenant_id(db: &TestDatabase, slug: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenantry.tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    id.to_string()
}

/// `url` with another database.
fn with_database(url: &str, database: &str) -> String {
    format!("{}/{database}", url.rsplit_once('/').unwrap().0)
}

/// A catalog with dedicated tenants `loki` and `hela` and a schema tenant `thor`.
async fn catalog() -> TestDatabase {
    let db = TestDatabase::create().await;
    polls(&db, &["migrate"]);
    polls(&db, &["tenants", "create", "thor"]);
    polls(
        &db,
        &["tenants", "create", "loki", "--isolation", "dedicated"],
    );
    polls(
        &db,
        &["tenants", "create", "hela", "--isolation", "dedicated"],
    );
    db
}

#[tokio::test]
async fn compose_files_pass_the_compose_schema_and_nginx_and_change_only_where_they_must() {
    let db = catalog().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("compose");
    let dir_arg = dir.to_str().unwrap();
    let context = out.path().to_str().unwrap();
    let generate = || {
        let args = [
            "deploy",
            "compose",
            "--output",
            dir_arg,
            "--context",
            context,
        ];
        polls(&db, &args)
    };
    generate();

    let compose = dir.join("docker-compose.yaml");
    check_compose(&compose);
    nginx_check(out.path(), &dir.join("nginx.conf"));
    let text = std::fs::read_to_string(&compose).unwrap();
    for service in [
        "app-loki:",
        "db-loki:",
        "migrate-loki:",
        "app-hela:",
        "app:",
        "db:",
        "nginx:",
    ] {
        assert!(
            text.contains(&format!("\n  {service}\n")),
            "{service} in {text}"
        );
    }
    assert!(
        !text.contains("thor"),
        "a schema tenant has no services: {text}"
    );
    assert!(
        !text.contains("PASSWORD"),
        "credentials stay in the env files: {text}"
    );
    let project = &yaml_documents(&text)[0];
    assert_eq!(
        project["services"]["app"]["environment"]["DEDICATED_ADDRESS"], "app-{slug}:8000",
        "the shared server forwards to the tenants' services: {text}"
    );
    let loki = tenant_id(&db, "loki").await;
    let env = dir.join(format!("env/{loki}.env"));
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(&dir.join("env/shared.env")), 0o600);
    let shared_env = std::fs::read_to_string(dir.join("env/shared.env")).unwrap();
    let app_password = shared_env
        .lines()
        .find_map(|line| line.strip_prefix("APP_ROLE_PASSWORD="))
        .unwrap_or_else(|| panic!("the app role's password: {shared_env}"));
    assert_eq!(app_password.len(), 64, "{shared_env}");
    // The build context leaves out build output and this folder with its credentials; the
    // build stage copies the binary out of its cached target.
    let ignore = std::fs::read_to_string(dir.join("Dockerfile.dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        ["target/", ".git/"].iter().all(|p| ignored.contains(p)),
        "{ignore}"
    );
    assert!(ignored.contains(&"compose/"), "{ignore}");
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert_eq!(dockerfile.matches("\nFROM ").count(), 2, "{dockerfile}");
    assert!(
        dockerfile.contains("COPY --from=build /usr/local/bin/polls /usr/local/bin/polls"),
        "{dockerfile}"
    );
    let env_text = std::fs::read_to_string(&env).unwrap();
    assert!(env_text.contains("TENANT_SLUG=loki\n"), "{env_text}");
    let nginx = std::fs::read_to_string(dir.join("nginx.conf")).unwrap();
    assert!(nginx.contains("server_name loki.polls.test;"), "{nginx}");
    assert!(
        nginx.contains("set $tenantry_upstream app-loki:8000;"),
        "{nginx}"
    );

    // Nothing changed, nothing rewritten; a password, once made, stays.
    let first = snapshot(&dir);
    assert!(generate().contains("0 written"));
    assert_eq!(changed(&first, &snapshot(&dir)), Vec::<String>::new());
    let shared_env_again = std::fs::read_to_string(dir.join("env/shared.env")).unwrap();
    assert_eq!(shared_env_again, shared_env);
    // A domain: the routing, and the hosts loki's server answers for.
    let domain = ["tenants", "domains", "add", "loki", "loki.example.com"];
    assert_eq!(
        after(&db, &dir, &domain, &generate),
        [format!("env/{loki}.env"), "nginx.conf".to_owned()]
    );
    let env_text = std::fs::read_to_string(&env).unwrap();
    assert!(
        env_text.contains("TENANT_HOSTS=loki.polls.test,loki.example.com\n"),
        "{env_text}"
    );
    // A new dedicated tenant: its env file, the project and the routing; the others' kept.
    let create = ["tenants", "create", "freya", "--isolation", "dedicated"];
    let created = after(&db, &dir, &create, &generate);
    let freya = tenant_id(&db, "freya").await;
    let freya_files = [
        "docker-compose.yaml",
        &format!("env/{freya}.env"),
        "nginx.conf",
    ];
    assert_eq!(created, freya_files);
    // Suspended: its server leaves, its database (and data) stays; hosts go to the app.
    after(&db, &dir, &["tenants", "suspend", "hela"], &generate);
    let text = std::fs::read_to_string(&compose).unwrap();
    assert!(
        text.contains("\n  db-hela:\n") && !text.contains("\n  app-hela:\n"),
        "{text}"
    );
    // Deleted: its env file goes too.
    let delete = ["tenants", "delete", "freya", "--yes"];
    assert_eq!(after(&db, &dir, &delete, &generate), freya_files);
    check_compose(&compose);
}

#[tokio::test]
async fn kubernetes_manifests_pass_the_api_schemas_and_their_credentials_reach_only_the_tenant() {
    let db = catalog().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("k8s");
    let dir_arg = dir.to_str().unwrap();
    let generate = || {
        polls(
            &db,
            &[
                "deploy",
                "kubernetes",
                "--image",
                "registry.example.com/polls:1.0",
                "--output",
                dir_arg,
                // The test's PostgreSQL is on this machine's loopback.
                "--allow-local",
            ],
        )
    };
    assert!(generate().contains(tenantry::deploy::KUBERNETES_VERSION));
    let files: Vec<String> = snapshot(&dir)
        .keys()
        .map(|p| dir.join(p).display().to_string())
        .collect();
    let mut args = vec!["-k", tenantry::deploy::KUBERNETES_VERSION, "--strict"];
    args.extend(files.iter().map(String::as_str));
    validate(
        "kubernetes-validate",
        &args,
        "pip install kubernetes-validate",
    );

    let app = std::fs::read_to_string(dir.join("tenants/loki/app.yaml")).unwrap();
    let objects = yaml_documents(&app);
    let mut kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Deployment",
            "Service",
            "Ingress",
            "Job",
            "NetworkPolicy",
            "ResourceQuota"
        ],
        "{app}"
    );
    let ingress = objects.iter().find(|o| o["kind"] == "Ingress").unwrap();
    assert_eq!(
        ingress["spec"]["rules"][0]["host"], "loki.polls.test",
        "{app}"
    );
    let shared = std::fs::read_to_string(dir.join("shared/app.yaml")).unwrap();
    assert!(shared.contains("app.tenant-{slug}.svc:80"), "{shared}");
    assert!(
        !app.contains("postgres://"),
        "credentials stay in the Secret: {app}"
    );
    let secret = dir.join("tenants/loki/secret.yaml");
    assert_eq!(mode(&secret), 0o600);
    assert!(!dir.join("tenants/thor").exists());

    // The Secret's credentials log in as loki's role to loki's database, and nowhere else.
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    let url = secret_value(&secret_text, "DATABASE_URL");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("loki's database");
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(user.starts_with("tenantry_t_"), "{user}");
    let refused = sqlx::PgConnection::connect(&with_database(&url, db.name())).await;
    assert!(
        refused.is_err(),
        "loki's role reached the catalog's database"
    );

    // The migration Job's command, with the Secret's environment: nothing pending.
    let migrated = run_tenant(&secret_text, &["migrate-tenant"]);
    assert!(
        migrated.contains("loki: 0 migration(s) applied"),
        "{migrated}"
    );

    // Regenerating: the same text (the password is kept); a domain changes one file; a new
    // tenant adds its own; a deleted one's folder goes.
    let first = snapshot(&dir);
    generate();
    assert_eq!(changed(&first, &snapshot(&dir)), Vec::<String>::new());
    let domain = ["tenants", "domains", "add", "loki", "loki.example.com"];
    assert_eq!(
        after(&db, &dir, &domain, &generate),
        ["tenants/loki/app.yaml"]
    );
    let freya_files = ["tenants/freya/app.yaml", "tenants/freya/secret.yaml"];
    let create = ["tenants", "create", "freya", "--isolation", "dedicated"];
    assert_eq!(after(&db, &dir, &create, &generate), freya_files);
    let delete = ["tenants", "delete", "freya", "--yes"];
    assert_eq!(after(&db, &dir, &delete, &generate), freya_files);
    assert!(!dir.join("tenants/freya").exists());
}

/// The documents of a YAML stream, as JSON values.
fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    yaml_serde::Deserializer::from_str(text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .collect()
}

/// The value of `key` in the Kubernetes Secret `text`.
fn secret_value(text: &str, key: &str) -> String {
    let secret = &yaml_documents(text)[0];
    secret["stringData"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_owned()
}

/// Runs `polls <args>` with a tenant's environment, read from its Kubernetes Secret.
fn run_tenant(secret: &str, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polls"));
    command
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("BIND");
    for key in ["DATABASE_URL", "TENANT_ID", "TENANT_SLUG"] {
        command.env(key, secret_value(secret, key));
    }
    let output = command.stdout(Stdio::piped()).output().unwrap();
    assert!(output.status.success(), "polls {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_compose_tenant_migrates_its_empty_database_as_its_own_role_then_serves_from_it() {
    let db = catalog().await;
    // Its server cannot read the catalog: its settings travel in its env file.
    polls(
        &db,
        &[
            "tenants",
            "settings",
            "loki",
            "--set",
            "display_name=Loki's $hall",
            "--set",
            "primary_color=#123456",
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("compose");
    polls(
        &db,
        &["deploy", "compose", "--output", dir.to_str().unwrap()],
    );
    let loki = tenant_id(&db, "loki").await;
    let env: BTreeMap<String, String> =
        std::fs::read_to_string(dir.join(format!("env/{loki}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();

    // What the PostgreSQL image does with the env file: its database, owned by its user.
    // Here both live on the test's server, under names of the test's own.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let role = format!("compose_{}", &suffix[..12]);
    let database = format!("compose_{}", &suffix[..12]);
    let mut admin = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let password = &env["POSTGRES_PASSWORD"];
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("CREATE DATABASE {database} OWNER {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let url = format!("postgres://{role}:{password}@127.0.0.1:5432/{database}");
    // Single-quoted, so Compose takes it literally; no quote or `$` inside to end or expand it.
    let quoted = &env["TENANT_SETTINGS"];
    let settings = quoted
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap();
    assert!(!settings.contains(['\'', '$']), "{quoted}");
    let tenant_env = |command: &mut Command| {
        command
            .env("DATABASE_URL", &url)
            .env("TENANT_ID", &env["TENANT_ID"])
            .env("TENANT_SLUG", &env["TENANT_SLUG"])
            .env("TENANT_SETTINGS", settings)
            .env("TENANT_HOSTS", &env["TENANT_HOSTS"])
            .env("RUST_LOG", "error");
    };
    let mut migrate = Command::new(env!("CARGO_BIN_EXE_polls"));
    migrate.arg("migrate-tenant");
    tenant_env(&mut migrate);
    let migrated = migrate.output().unwrap();
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(
        stdout.contains(&format!(
            "loki: {} migration(s) applied",
            support::latest_version()
        )),
        "{stdout}"
    );

    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_polls"));
    serve.arg("serve-tenant").env("BIND", addr.to_string());
    tenant_env(&mut serve);
    let mut child = serve.stdout(Stdio::null()).spawn().unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match client
            .post(format!("http://{addr}/users/"))
            .header("Host", "loki.polls.test")
            .json(&serde_json::json!({ "username": "odin", "password": "valhalla-123" }))
            .send()
            .await
        {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("loki's server did not come up: {e}"),
        }
    };
    let status = reply.status();
    let page = |path: &'static str| {
        let client = &client;
        async move {
            let url = format!("http://{addr}{path}");
            let reply = client
                .get(url)
                .header("Host", "loki.polls.test")
                .send()
                .await;
            reply.unwrap().text().await.unwrap()
        }
    };
    let style = page("/admin/style.css").await;
    assert!(
        style.starts_with(":root { --primary: #123456; --on-primary: #ffffff;"),
        "{style}"
    );
    let login = page("/admin/login").await;
    assert!(login.contains(">Loki&#39;s $hall</span>"), "{login}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 201, "{}", reply.text().await.unwrap());
    let mut own = sqlx::PgConnection::connect(&with_database(&db.url(), &database))
        .await
        .unwrap();
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant.users")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(users, 1);
    own.close().await.unwrap();
    for statement in [
        format!("DROP DATABASE {database} WITH (FORCE)"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn bad_deployment_options_are_refused_with_exit_2_and_nothing_written() {
    let db = catalog().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("k8s");
    for (option, value) in [
        ("--ingress-class", "Nginx Class"),
        ("--ingress-namespace", "-ingress"),
        ("--database-address", "db.example.com"),
        ("--database-address", "db/x:5432"),
        ("--image", "polls latest"),
    ] {
        let given = format!("{option}={value}");
        let mut args = vec!["deploy", "kubernetes", "--output", dir.to_str().unwrap()];
        if option != "--image" {
            args.extend(["--image", "polls:1"]);
        }
        args.push(&given);
        let output = Command::new(env!("CARGO_BIN_EXE_polls"))
            .args(&args)
            .env("DATABASE_URL", db.url())
            .env("BASE_DOMAIN", support::BASE)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{option} {value}: {output:?}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(option), "{stderr}");
        assert!(!dir.exists(), "{option} {value} wrote files");
    }
}

#[tokio::test]
async fn kubernetes_refuses_what_only_this_machine_reaches_unless_allowed() {
    let db = catalog().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("k8s");
    let loki = tenant_id(&db, "loki").await.replace('-', "");
    let role = format!("tenantry_t_{}", &loki[..20]);
    let loki_password = || async {
        let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        let password: Option<String> =
            sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(&role)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        password
    };
    let before = loki_password().await;
    // The test's database is on the loopback; the base domain may be `.localhost`.
    for (base, extra, named) in [
        (support::BASE, None, "127.0.0.1:"),
        (
            "polls.localhost",
            Some("--database-address=db.example.com:5432"),
            "polls.localhost",
        ),
        (
            support::BASE,
            Some("--database-address=[::1]:5432"),
            "[::1]:5432",
        ),
    ] {
        let mut args = vec!["deploy", "kubernetes", "--image", "polls:1", "--output"];
        args.push(dir.to_str().unwrap());
        args.extend(extra);
        let output = Command::new(env!("CARGO_BIN_EXE_polls"))
            .args(&args)
            .env("DATABASE_URL", db.url())
            .env("BASE_DOMAIN", base)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--allow-local") && stderr.contains(named),
            "{stderr}"
        );
        assert!(!dir.exists(), "{args:?} wrote files");
    }
    assert_eq!(
        loki_password().await,
        before,
        "a refusal changed a role's password"
    );
    let mut args = vec![
        "deploy",
        "kubernetes",
        "--image",
        "polls:1",
        "--allow-local",
    ];
    args.extend(["--output", dir.to_str().unwrap()]);
    polls(&db, &args);
    assert!(dir.join("shared/secret.yaml").exists());
    let secret = std::fs::read_to_string(dir.join("shared/secret.yaml")).unwrap();
    assert!(
        secret.starts_with("# DATABASE_URL is the catalog owner's"),
        "{secret}"
    );
    // An address the cluster reaches needs no permission, and the shared server's URL uses it.
    let reached = out.path().join("reached");
    let mut args = vec!["deploy", "kubernetes", "--image", "polls:1"];
    args.extend(["--database-address", "db.example.com:6543", "--output"]);
    args.push(reached.to_str().unwrap());
    polls(&db, &args);
    let secret = std::fs::read_to_string(reached.join("shared/secret.yaml")).unwrap();
    let url = secret_value(&secret, "DATABASE_URL");
    let expected = format!("@db.example.com:6543/{}", db.name());
    assert!(url.contains(&expected), "{url}");
}

#[tokio::test]
async fn nginx_goes_to_the_address_serve_listens_on_and_says_which() {
    let db = catalog().await;
    let out = tempfile::tempdir().unwrap();
    let conf = out.path().join("tenantry.conf");
    let run = |bind: Option<&str>, upstream: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_polls"));
        command.args(["deploy", "nginx", "--output"]).arg(&conf);
        command.args(upstream.map(|u| format!("--upstream={u}")));
        command
            .env("DATABASE_URL", db.url())
            .env("BASE_DOMAIN", support::BASE);
        match bind {
            Some(bind) => command.env("BIND", bind),
            None => command.env_remove("BIND"),
        };
        let output = command.output().unwrap();
        let text = std::fs::read_to_string(&conf).unwrap_or_default();
        (output, text)
    };
    for (bind, upstream, to, from) in [
        (None, None, "127.0.0.1:8000", "(the default;"),
        (Some("127.0.0.1:8100"), None, "127.0.0.1:8100", "(BIND)"),
        (Some("0.0.0.0:8200"), None, "127.0.0.1:8200", "(BIND)"),
        (
            Some("127.0.0.1:8100"),
            Some("10.0.0.5:8000"),
            "10.0.0.5:8000",
            "(--upstream)",
        ),
    ] {
        let (output, text) = run(bind, upstream);
        assert!(output.status.success(), "{output:?}");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(said.contains(&format!("goes to {to} {from}")), "{said}");
        assert!(
            text.contains(&format!(
                "upstream tenantry_shared {{\n    server {to};\n}}"
            )),
            "{text}"
        );
    }
    let (output, _) = run(None, Some("nowhere"));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--upstream 'nowhere'"));
}
