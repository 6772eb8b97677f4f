//! Pending tenants: built ahead, invisible until taken, migrated like any tenant, and never
//! handed to two takers.

use crate::support;

use std::collections::HashSet;

use axum::Router;
use axum::http::StatusCode;
use support::{setup, slug};
use tenantry::lifecycle::{MigrateOptions, PendingPool};
use tenantry::{Error, IsolationMode, NewTenant, TenancyLayer, TenantStatus, TenantUpdate};
use tower::Layer;

#[tokio::test]
async fn pending_tenants_are_invisible_until_taken_and_follow_migrations() {
    let s = setup(8).await;
    s.create("thor").await;
    let pending = s
        .tenancy
        .create_pending(IsolationMode::Schema)
        .await
        .unwrap();
    let hidden = pending.tenant.slug.clone();
    assert!(hidden.as_str().starts_with("pending-"), "{hidden}");
    assert_eq!(pending.tenant.status, TenantStatus::Pending);

    let listed: Vec<String> = s
        .tenancy
        .catalog()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.tenant.slug.to_string())
        .collect();
    assert_eq!(listed, ["thor"]);
    let waiting = s.tenancy.catalog().list_pending().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(matches!(
        s.tenancy.catalog().details(&hidden).await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        s.tenancy.export_tenant(&hidden).await,
        Err(Error::TenantNotFound(_))
    ));
    let routes = Router::new().route("/whoami", axum::routing::get(support::whoami));
    let app = Router::new().fallback_service(
        TenancyLayer::new(s.tenancy.clone())
            .public(Router::new())
            .layer(routes),
    );
    let host = format!("{hidden}.app.test");
    let (status, _) = support::call(&app, "GET", &host, "/whoami").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no request reaches it");
    let (status, _) = support::call(&app, "GET", "app.test", &format!("/t/{hidden}/whoami")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nor by path");
    let make_pending = TenantUpdate {
        status: Some(TenantStatus::Pending),
        ..TenantUpdate::default()
    };
    assert!(matches!(
        s.tenancy.update_tenant(&slug("thor"), make_pending).await,
        Err(Error::Invalid {
            field: "status",
            ..
        })
    ));

    // A migration reaches it, as every tenant.
    let v2 = s
        .upgraded(support::notes_then(
            "ALTER TABLE notes ADD COLUMN pinned boolean",
        ))
        .await;
    let report = v2
        .migrate_tenants(&MigrateOptions::default(), |_| {}, |_| {})
        .await
        .unwrap();
    assert_eq!(report.applied(), 2, "thor and the pending tenant");

    // Taken, it is an ordinary tenant under its new slug, its tables (migrated) with it.
    let taken = v2
        .take_pending(IsolationMode::Schema, &slug("acme"), Some("Acme".into()))
        .await
        .unwrap()
        .expect("one pending tenant");
    assert_eq!(taken.tenant.id, pending.tenant.id);
    assert_eq!(taken.tenant.status, TenantStatus::Active);
    assert_eq!(taken.tenant.name, "Acme");
    assert!(taken.tenant.created_at >= pending.tenant.created_at);
    assert_eq!(taken.domains[0].domain, "acme.app.test");
    support::add_note(&v2, "acme", "hello").await;
    let pinned: Option<bool> = sqlx::query_scalar("SELECT pinned FROM acme.notes")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(pinned, None, "the column of the second migration is there");
    assert!(
        v2.take_pending(IsolationMode::Schema, &slug("bravo"), None)
            .await
            .unwrap()
            .is_none(),
        "the pool is empty"
    );
}

#[tokio::test]
async fn a_taken_slug_leaves_the_pending_tenant_pending() {
    let s = setup(4).await;
    s.create("thor").await;
    s.tenancy
        .create_pending(IsolationMode::Schema)
        .await
        .unwrap();
    let taken = s
        .tenancy
        .take_pending(IsolationMode::Schema, &slug("thor"), None)
        .await;
    assert!(matches!(taken, Err(Error::SlugTaken(_))), "{taken:?}");
    assert_eq!(s.tenancy.catalog().list_pending().await.unwrap().len(), 1);
    let www = s
        .tenancy
        .take_pending(IsolationMode::Schema, &slug("blog"), None)
        .await;
    assert!(www.is_ok(), "an unreserved name is fine: {www:?}");
}

/// 50 concurrent takes against a pool of 10, each falling back to building a tenant as a
/// signup does: 50 distinct tenants, and no pending tenant handed out twice.
async fn fifty_takes_against_ten_pending(isolation: IsolationMode) {
    let s = setup(24).await;
    let pool = PendingPool::start(s.tenancy.clone(), vec![(isolation, 10)]);
    pool.fill().await.unwrap();
    let before: HashSet<_> = s
        .tenancy
        .catalog()
        .list_pending()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.tenant.id)
        .collect();
    assert_eq!(before.len(), 10);
    let takes = (0..50).map(|i| {
        let (pool, tenancy) = (pool.clone(), s.tenancy.clone());
        async move {
            let slug = slug(&format!("t{i}"));
            match pool.take(isolation, &slug, None).await.unwrap() {
                Some(taken) => (taken.tenant.id, true),
                None => {
                    let built = tenancy
                        .create_tenant(NewTenant::new(slug, isolation))
                        .await
                        .unwrap();
                    (built.tenant.id, false)
                }
            }
        }
    });
    let results = futures::future::join_all(takes).await;
    let ids: HashSet<_> = results.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 50, "50 distinct tenants");
    let from_pool = results.iter().filter(|(_, pooled)| *pooled).count();
    assert!(
        from_pool >= 10,
        "the ten pending ones were taken: {from_pool}"
    );
    assert!(before.iter().all(|id| ids.contains(id)));
    let listed = s.tenancy.catalog().list().await.unwrap();
    assert_eq!(listed.len(), 50);
    for (i, details) in listed.iter().enumerate() {
        assert_eq!(details.tenant.status, TenantStatus::Active, "{i}");
    }
    pool.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_takes_against_ten_pending_schema_tenants() {
    fifty_takes_against_ten_pending(IsolationMode::Schema).await;
}

#[tokio::test]
async fn fifty_concurrent_takes_against_ten_pending_database_tenants() {
    fifty_takes_against_ten_pending(IsolationMode::Database).await;
}
