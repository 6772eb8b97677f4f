//! Custom domains as a tenant's staff and an operator add them: the admin's and the
//! console's domain pages, verified against a real name server (dnsmasq), and HTTPS by the
//! custom domain through Debian's Caddy with its internal CA, its certificates issued only
//! for names the app confirms.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::visitor::Visitor;
use support::{Mode, TestApp};
use tenantry::dns::DnsResolver;
use tenantry::testing::TestDns;
use tenantry::{HostName, Slug};

const PASSWORD: &str = "staff-pass-1";

async fn app_with_dns(mode: Mode, dns: &TestDns) -> TestApp {
    let resolver = DnsResolver::at(&[dns.address()]);
    let app = support::spawn_app_serving(mode, |serving| serving.dns_resolver = resolver).await;
    app.staff_user("thor", PASSWORD).await;
    app.staff_user("potter", PASSWORD).await;
    app
}

async fn staff<'a>(app: &'a TestApp, slug: &str) -> (Visitor<'a>, String) {
    let mut admin = Visitor::new(app, &format!("{slug}.{}", support::BASE), "");
    let login = admin.log_in("admin", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
    let csrf = admin.csrf().await;
    (admin, csrf)
}

async fn token(app: &TestApp, slug: &str, domain: &str) -> String {
    let slug = Slug::parse(slug).unwrap();
    let claims = app.tenancy.domain_claims(&slug).await.unwrap();
    let claim = claims.iter().find(|c| c.domain == domain).expect("a claim");
    claim.token.clone()
}

/// The status of the tenant site's login page by `host`.
async fn site_status(app: &TestApp, host: &str) -> StatusCode {
    Visitor::new(app, host, "").get("/admin/login").await.status
}

async fn a_tenants_staff_add_and_verify_a_domain(mode: Mode) {
    let mut dns = TestDns::start(&[]).await;
    let app = app_with_dns(mode, &dns).await;
    let (mut admin, csrf) = staff(&app, "thor").await;

    let page = admin.get("/admin/domains").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("thor.polls.test"), "{}", page.text);
    for (bad, said) in [
        ("not a domain!", "is not a domain name"),
        ("polls.test", "the public site"),
        ("potter.polls.test", "reserved for tenant slugs"),
    ] {
        let refused = admin
            .post("/admin/domains", &[("csrf", &csrf), ("domain", bad)])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(refused.text.contains(said), "{bad}: {}", refused.text);
    }

    let claimed = admin
        .post(
            "/admin/domains",
            &[("csrf", &csrf), ("domain", "Shop.Test")],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.text);
    let token = token(&app, "thor", "shop.test").await;
    let page = admin.get("/admin/domains").await;
    assert!(page.text.contains("_tenantry.shop.test") && page.text.contains(&token));
    assert_eq!(site_status(&app, "shop.test").await, StatusCode::NOT_FOUND);

    let check = [
        ("csrf", csrf.as_str()),
        ("op", "check"),
        ("domain", "shop.test"),
    ];
    let not_yet = admin.post("/admin/domains", &check).await;
    assert_eq!(not_yet.status, StatusCode::OK);
    assert!(
        not_yet
            .text
            .contains("not verified yet: there is no TXT record at _tenantry.shop.test"),
        "{}",
        not_yet.text
    );
    assert_eq!(site_status(&app, "shop.test").await, StatusCode::NOT_FOUND);

    dns.set_txt(&[("_tenantry.shop.test", token.as_str())])
        .await;
    let verified = admin.post("/admin/domains", &check).await;
    assert_eq!(verified.status, StatusCode::SEE_OTHER, "{}", verified.text);
    let page = admin.get("/admin/domains").await;
    assert!(
        page.text.contains("The domain is verified"),
        "{}",
        page.text
    );
    assert_eq!(site_status(&app, "shop.test").await, StatusCode::OK);
    let mut by_domain = Visitor::new(&app, "shop.test", "");
    let login = by_domain.log_in("admin", PASSWORD).await;
    assert_eq!(
        login.status,
        StatusCode::SEE_OTHER,
        "thor's staff log in by it"
    );

    // Another tenant's staff see none of it and cannot take it.
    let (mut other, other_csrf) = staff(&app, "potter").await;
    let page = other.get("/admin/domains").await;
    assert!(!page.text.contains("shop.test"));
    let taken = other
        .post(
            "/admin/domains",
            &[("csrf", &other_csrf), ("domain", "shop.test")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST);
    let gone = other
        .post(
            "/admin/domains",
            &[
                ("csrf", &other_csrf),
                ("op", "remove"),
                ("domain", "shop.test"),
            ],
        )
        .await;
    assert_eq!(
        gone.status,
        StatusCode::BAD_REQUEST,
        "not potter's to remove"
    );
    assert_eq!(site_status(&app, "shop.test").await, StatusCode::OK);

    let remove = [
        ("csrf", csrf.as_str()),
        ("op", "remove"),
        ("domain", "shop.test"),
    ];
    let removed = admin.post("/admin/domains", &remove).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(site_status(&app, "shop.test").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn schema_tenants_staff_add_and_verify_a_domain() {
    a_tenants_staff_add_and_verify_a_domain(Mode::Schema).await;
}

#[tokio::test]
async fn sqlite_tenants_staff_add_and_verify_a_domain() {
    a_tenants_staff_add_and_verify_a_domain(Mode::Sqlite).await;
}

#[tokio::test]
async fn a_dedicated_tenants_own_server_leaves_domains_to_the_operator() {
    let dns = TestDns::start(&[]).await;
    let app = app_with_dns(Mode::Dedicated, &dns).await;
    let (mut admin, csrf) = staff(&app, "thor").await;
    let page = admin.get("/admin/domains").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("managed by the platform's operator"));
    let refused = admin
        .post(
            "/admin/domains",
            &[("csrf", &csrf), ("domain", "shop.test")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.text.contains("its operator does"),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn an_operator_adds_and_checks_a_domain_in_the_console() {
    let mut dns = TestDns::start(&[]).await;
    let app = app_with_dns(Mode::Schema, &dns).await;
    let hash = polls::auth::hash_password(PASSWORD);
    let catalog = app.tenancy.catalog();
    catalog.create_operator("olga", &hash).await.unwrap();
    let mut console = Visitor::new(&app, support::BASE, "");
    let form = console.get("/console/login").await;
    let csrf = form.csrf("/console/login");
    let login = [
        ("csrf", csrf.as_str()),
        ("name", "olga"),
        ("password", PASSWORD),
    ];
    assert_eq!(
        console.post("/console/login", &login).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = console.get("/console").await.csrf("/console/logout");

    let path = "/console/tenants/potter/domains";
    let form = |op| {
        [
            ("csrf", csrf.as_str()),
            ("op", op),
            ("domain", "potter.example.test"),
        ]
    };
    let posted = console.post(path, &form("claim")).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let token = token(&app, "potter", "potter.example.test").await;
    let check = form("check");
    assert_eq!(
        console.post(path, &check).await.status,
        StatusCode::SEE_OTHER
    );
    let page = console.get("/console/tenants/potter").await;
    assert!(
        page.text.contains(&token) && page.text.contains("no TXT record"),
        "{}",
        page.text
    );

    dns.set_txt(&[("_tenantry.potter.example.test", token.as_str())])
        .await;
    assert_eq!(
        console.post(path, &check).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        site_status(&app, "potter.example.test").await,
        StatusCode::OK
    );
    let log = catalog
        .audit_log(&tenantry::catalog::AuditFilter::default())
        .await
        .unwrap();
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.starts_with("ok")))
        .collect();
    assert_eq!(
        &actions[..3],
        [
            ("domain.verify", true),
            ("domain.verify", false),
            ("domain.claim", true)
        ]
    );
}

/// Caddy from Debian's package running `caddyfile`, its data (the internal CA) in `dir`.
struct TestCaddy {
    child: std::process::Child,
}

/// `caddy VERB` on `caddyfile`, its data and configuration under `dir`.
fn caddy(verb: &str, caddyfile: &Path, dir: &Path) -> Command {
    assert!(
        Path::new("/usr/bin/caddy").exists(),
        "this test needs caddy (apt-get install caddy)"
    );
    let mut command = Command::new("/usr/bin/caddy");
    command
        .args([verb, "--adapter", "caddyfile", "--config"])
        .arg(caddyfile)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    command
}

impl TestCaddy {
    fn start(caddyfile: &Path, dir: &Path) -> Self {
        let child = caddy("run", caddyfile, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("caddy.log")).unwrap(),
            ))
            .spawn()
            .expect("caddy starts");
        Self { child }
    }
}

impl Drop for TestCaddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn caddy_serves_a_verified_domain_over_https_and_no_certificate_for_others() {
    let mut dns = TestDns::start(&[]).await;
    let app = app_with_dns(Mode::Schema, &dns).await;
    let thor = Slug::parse("thor").unwrap();
    let resolver = DnsResolver::at(&[dns.address()]);
    for domain in ["shop.test", "unproven.test"] {
        let host = HostName::parse(domain).unwrap();
        app.tenancy.claim_domain(&thor, &host).await.unwrap();
    }
    let token = token(&app, "thor", "shop.test").await;
    dns.set_txt(&[("_tenantry.shop.test", token.as_str())])
        .await;
    let shop = HostName::parse("shop.test").unwrap();
    let checked = app
        .tenancy
        .check_domain_claim(&thor, &shop, &resolver)
        .await;
    assert_eq!(checked.unwrap(), tenantry::lifecycle::DomainCheck::Verified);

    let dir = tempfile::tempdir().unwrap();
    let caddyfile = dir.path().join("Caddyfile");
    let (http, https, ask) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let upstream = app.addr.to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_polls"))
        .args([
            "deploy",
            "caddy",
            "--internal-ca",
            "--admin",
            "off",
            "--output",
        ])
        .arg(&caddyfile)
        .args(["--upstream", &upstream])
        .args([
            "--http-port",
            &http.to_string(),
            "--https-port",
            &https.to_string(),
        ])
        .args(["--ask-port", &ask.to_string()])
        .env(
            "DATABASE_URL",
            app.settings.database_url.as_deref().unwrap(),
        )
        .env("BASE_DOMAIN", support::BASE)
        .env("RUST_LOG", "error")
        .env_remove("TENANT_STRATEGIES")
        .output()
        .unwrap();
    assert!(output.status.success(), "deploy caddy: {output:?}");
    let validated = caddy("validate", &caddyfile, dir.path())
        .output()
        .expect("caddy validate runs");
    assert!(validated.status.success(), "caddy validate: {validated:?}");
    let _caddy = TestCaddy::start(&caddyfile, dir.path());

    // Caddy's question, on its loopback port, reaches the public site's answer.
    let client = reqwest::Client::new();
    let asked = |domain: &str| {
        let url = format!(
            "http://127.0.0.1:{ask}{}?domain={domain}",
            tenantry::http::TLS_ASK_PATH
        );
        client.get(url).send()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = || std::fs::read_to_string(dir.path().join("caddy.log")).unwrap_or_default();
    while asked("shop.test").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "caddy did not come up: {}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(asked("shop.test").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        asked("unproven.test").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let root = dir.path().join("data/caddy/pki/authorities/local/root.crt");
    while !root.exists() {
        assert!(Instant::now() < deadline, "no internal CA: {}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let root = reqwest::Certificate::from_pem(&std::fs::read(&root).unwrap()).unwrap();
    let https_client = |domain: &str| {
        reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .resolve(domain, ([127, 0, 0, 1], https).into())
            .build()
            .unwrap()
    };
    let page = https_client("shop.test")
        .get(format!("https://shop.test:{https}/admin/login"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("HTTPS by the verified domain: {e:?}\n{}", log()));
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("thor"));

    for refused in ["unproven.test", "nobody.test"] {
        let attempt = https_client(refused)
            .get(format!("https://{refused}:{https}/admin/login"))
            .send()
            .await;
        assert!(attempt.is_err(), "{refused} got a certificate: {attempt:?}");
    }
}
