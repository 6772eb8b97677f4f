//! Custom domains: claimed and not routed until a real name server (dnsmasq) holds the
//! claim's token in `_tenantry.<domain>`, checked on demand and in the background with
//! backoff; one tenant's claim never takes another's domain; Caddy's `ask` follows.

use crate::support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use support::{call, setup, slug};
use tenantry::dns::DnsResolver;
use tenantry::http::tls_ask;
use tenantry::lifecycle::{DomainCheck, DomainCheckSchedule, DomainChecks};
use tenantry::testing::TestDns;
use tenantry::{
    DatabaseBudget, Error, HostName, IsolationMode, Migrations, NewTenant, Tenancy, TenancyLayer,
    TenantStatus,
};
use tower::Layer;

fn app(tenancy: &Tenancy) -> Router {
    let routes = Router::new().route("/whoami", axum::routing::get(whoami));
    Router::new().fallback_service(
        TenancyLayer::new(tenancy.clone())
            .public(tls_ask(tenancy.clone()))
            .layer(routes),
    )
}

/// The tenant a request was routed to, on either engine.
async fn whoami(tenant: tenantry::Tenant) -> String {
    tenant.slug.to_string()
}

fn host(name: &str) -> HostName {
    HostName::parse(name).unwrap()
}

async fn ask(app: &Router, domain: &str) -> StatusCode {
    let path = format!("{}?domain={domain}", tenantry::http::TLS_ASK_PATH);
    call(app, "GET", "app.test", &path).await.0
}

async fn check(
    tenancy: &Tenancy,
    tenant: &str,
    domain: &HostName,
    dns: &DnsResolver,
) -> DomainCheck {
    tenancy
        .check_domain_claim(&slug(tenant), domain, dns)
        .await
        .unwrap()
}

fn not_yet(check: DomainCheck) -> String {
    match check {
        DomainCheck::NotYet(why) => why,
        DomainCheck::Verified => panic!("verified without its record"),
    }
}

#[tokio::test]
async fn a_claimed_domain_is_routed_only_once_its_txt_record_holds_the_token() {
    let s = setup(8).await;
    s.create("thor").await;
    s.create_in("odin", IsolationMode::Shared).await;
    let app = app(&s.tenancy);
    let shop = host("shop.test");

    let claim = s.tenancy.claim_domain(&slug("thor"), &shop).await.unwrap();
    assert_eq!(claim.record_name(), "_tenantry.shop.test");
    let again = s.tenancy.claim_domain(&slug("thor"), &shop).await.unwrap();
    assert_eq!(
        again.token, claim.token,
        "a second claim keeps the token shown"
    );
    let (status, _) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a claim is not routed");
    assert_eq!(ask(&app, "shop.test").await, StatusCode::NOT_FOUND);

    // No record, then a record with another text: no proof, and the page says why.
    let mut dns = TestDns::start(&[]).await;
    let resolver = DnsResolver::at(&[dns.address()]);
    let why = not_yet(check(&s.tenancy, "thor", &shop, &resolver).await);
    assert!(
        why.contains("no TXT record at _tenantry.shop.test"),
        "{why}"
    );
    dns.set_txt(&[("_tenantry.shop.test", "someone-else")])
        .await;
    let why = not_yet(check(&s.tenancy, "thor", &shop, &resolver).await);
    assert!(why.contains("not this claim's token"), "{why}");
    let claims = s.tenancy.domain_claims(&slug("thor")).await.unwrap();
    assert_eq!(claims[0].checks, 2);
    assert_eq!(claims[0].last_error.as_deref(), Some(why.as_str()));

    // Odin claims the same name (a claim proves nothing) with a token of its own.
    let odins = s.tenancy.claim_domain(&slug("odin"), &shop).await.unwrap();
    assert_ne!(odins.token, claim.token);

    // The record holds both tokens: thor verifies first and gets the domain; odin cannot.
    dns.set_txt(&[
        ("_tenantry.shop.test", claim.token.as_str()),
        ("_tenantry.shop.test", odins.token.as_str()),
    ])
    .await;
    let verified = check(&s.tenancy, "thor", &shop, &resolver).await;
    assert_eq!(verified, DomainCheck::Verified);
    let (status, body) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, Some("thor")));
    assert!(
        s.tenancy
            .domain_claims(&slug("thor"))
            .await
            .unwrap()
            .is_empty()
    );
    let why = not_yet(check(&s.tenancy, "odin", &shop, &resolver).await);
    assert!(why.contains("verified by another tenant first"), "{why}");
    assert!(matches!(
        s.tenancy
            .claim_domain(&slug("odin"), &host("shop.test"))
            .await,
        Err(Error::Invalid { .. } | Error::DomainTaken(_))
    ));
    let (_, body) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!(body, "thor");

    // Caddy's ask: the platform's own names and active tenants' verified domains only.
    for (domain, expected) in [
        ("shop.test", StatusCode::OK),
        ("thor.app.test", StatusCode::OK),
        ("app.test", StatusCode::OK),
        ("www.app.test", StatusCode::OK),
        ("nobody.app.test", StatusCode::NOT_FOUND),
        ("elsewhere.test", StatusCode::NOT_FOUND),
        ("bad_name", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(ask(&app, domain).await, expected, "{domain}");
    }
    support::set_status(&s.tenancy, "thor", TenantStatus::Suspended).await;
    assert_eq!(ask(&app, "shop.test").await, StatusCode::NOT_FOUND);
    support::set_status(&s.tenancy, "thor", TenantStatus::Active).await;

    // Removed, it is no longer routed; odin may then verify its own claim.
    s.tenancy.remove_domain(&slug("thor"), &shop).await.unwrap();
    let (status, _) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let verified = check(&s.tenancy, "odin", &shop, &resolver).await;
    assert_eq!(verified, DomainCheck::Verified);
    let (_, body) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!(body, "odin");
}

#[tokio::test]
async fn claims_that_could_never_be_a_tenants_are_refused() {
    let s = setup(4).await;
    s.create("thor").await;
    for (domain, refused) in [
        ("app.test", "the public site"),
        ("odin.app.test", "reserved for tenant slugs"),
        ("thor.app.test", "reserved for tenant slugs"),
    ] {
        match s.tenancy.claim_domain(&slug("thor"), &host(domain)).await {
            Err(Error::Invalid { message, .. }) => assert!(message.contains(refused), "{message}"),
            other => panic!("{domain}: {other:?}"),
        }
    }
    assert!(matches!(
        s.tenancy
            .claim_domain(&slug("nobody"), &host("x.test"))
            .await,
        Err(Error::TenantNotFound(_))
    ));
    for n in 0..tenantry::lifecycle::MAX_CLAIMS {
        let domain = host(&format!("d{n}.test"));
        s.tenancy
            .claim_domain(&slug("thor"), &domain)
            .await
            .unwrap();
    }
    let one_too_many = s
        .tenancy
        .claim_domain(&slug("thor"), &host("more.test"))
        .await;
    assert!(matches!(one_too_many, Err(Error::Invalid { .. })));
    s.tenancy
        .remove_domain(&slug("thor"), &host("d0.test"))
        .await
        .unwrap();
    s.tenancy
        .claim_domain(&slug("thor"), &host("more.test"))
        .await
        .unwrap();
    assert!(matches!(
        s.tenancy
            .remove_domain(&slug("thor"), &host("d0.test"))
            .await,
        Err(Error::DomainNotFound(_))
    ));
}

#[tokio::test]
async fn the_background_check_backs_off_and_a_verified_domain_is_routed_everywhere_within_a_second()
{
    let s = setup(8).await;
    s.create("thor").await;
    let app = app(&s.tenancy);
    // Another server on the same catalog, which has seen the name unrouted.
    let other = s
        .upgraded(Migrations::new(sqlx::migrate::Migrator::DEFAULT, support::notes()).unwrap())
        .await;
    let other_app = self::app(&other);
    let (status, _) = call(&other_app, "GET", "shop.test", "/whoami").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let shop = host("shop.test");
    let claim = s.tenancy.claim_domain(&slug("thor"), &shop).await.unwrap();
    let mut dns = TestDns::start(&[]).await;
    let schedule = DomainCheckSchedule {
        first_retry: Duration::from_secs(1),
        max_retry: Duration::from_secs(2),
        tick: Duration::from_millis(100),
    };
    let resolver = DnsResolver::at(&[dns.address()]);
    let _checks = DomainChecks::start(s.tenancy.clone(), resolver, schedule);

    // It checks at once, finds nothing, and waits before the next check.
    let claims = async || s.tenancy.domain_claims(&slug("thor")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while claims().await[0].checks < 2 {
        assert!(Instant::now() < deadline, "no background checks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = claims().await.remove(0);
    assert!(first.last_error.unwrap().contains("no TXT record"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(claims().await[0].checks, 2, "backs off between checks");

    // Once the record is there, the next check verifies it and it is routed.
    dns.set_txt(&[("_tenantry.shop.test", claim.token.as_str())])
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s
        .tenancy
        .domain_claims(&slug("thor"))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "never verified in the background"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let verified = Instant::now();
    let (status, body) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, Some("thor")));
    loop {
        let (status, body) = call(&other_app, "GET", "shop.test", "/whoami").await;
        if status == StatusCode::OK {
            assert_eq!(body, "thor");
            break;
        }
        assert!(
            verified.elapsed() < Duration::from_secs(1),
            "the other server still does not route it a second after"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = s
        .tenancy
        .catalog()
        .audit_log(&tenantry::catalog::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        ("domain-check", "domain.verify")
    );
}

#[tokio::test]
async fn a_sqlite_catalog_claims_and_verifies_domains_too() {
    let data = tempfile::tempdir().unwrap();
    let migrations = support::sqlite_notes();
    let tenancy = Tenancy::open_sqlite(
        data.path(),
        support::identification(),
        migrations,
        DatabaseBudget::default(),
    )
    .await
    .unwrap();
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Database))
        .await
        .unwrap();
    let app = app(&tenancy);
    let shop = host("shop.test");
    let claim = tenancy.claim_domain(&slug("thor"), &shop).await.unwrap();
    let dns = TestDns::start(&[("_tenantry.shop.test", claim.token.as_str())]).await;
    let resolver = DnsResolver::at(&[dns.address()]);
    assert_eq!(ask(&app, "shop.test").await, StatusCode::NOT_FOUND);
    let verified = check(&tenancy, "thor", &shop, &resolver).await;
    assert_eq!(verified, DomainCheck::Verified);
    let (status, body) = call(&app, "GET", "shop.test", "/whoami").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, Some("thor")));
    assert_eq!(ask(&app, "shop.test").await, StatusCode::OK);
}
