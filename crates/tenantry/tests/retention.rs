//! Deleting with a grace period: kept whole and refused (403) until purged, restorable
//! until then, purged by a call or the background sweep.

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use support::{setup, slug};
use tenantry::lifecycle::PurgeSweep;
use tenantry::{Error, IsolationMode, TenancyLayer, TenantStatus, TenantUpdate};
use tower::Layer;

fn app(tenancy: &tenantry::Tenancy) -> Router {
    let routes = Router::new().route("/whoami", axum::routing::get(support::whoami));
    Router::new().fallback_service(
        TenancyLayer::new(tenancy.clone())
            .public(Router::new())
            .layer(routes),
    )
}

#[tokio::test]
async fn a_deleted_tenant_is_kept_refused_and_restorable_until_purged() {
    let s = setup(8).await;
    s.create("thor").await;
    s.create_in("odin", IsolationMode::Database).await;
    support::add_note(&s.tenancy, "thor", "kept").await;
    let app = app(&s.tenancy);

    let deleted = s.tenancy.delete_tenant_later(&slug("thor")).await.unwrap();
    assert_eq!(deleted.tenant.status, TenantStatus::Deleted);
    let (status, _) = support::call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(matches!(
        s.tenancy.delete_tenant_later(&slug("thor")).await,
        Err(Error::Invalid { .. })
    ));
    let by_api = TenantUpdate {
        status: Some(TenantStatus::Deleted),
        ..TenantUpdate::default()
    };
    assert!(matches!(
        s.tenancy.update_tenant(&slug("odin"), by_api).await,
        Err(Error::Invalid {
            field: "status",
            ..
        })
    ));

    s.tenancy.restore_tenant(&slug("thor")).await.unwrap();
    let (status, _) = support::call(&app, "GET", "thor.app.test", "/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(support::note_bodies(&s.tenancy, "thor").await, ["kept"]);
    assert!(matches!(
        s.tenancy.restore_tenant(&slug("thor")).await,
        Err(Error::Invalid { .. })
    ));

    s.tenancy.delete_tenant_later(&slug("thor")).await.unwrap();
    let odin = s.tenancy.delete_tenant_later(&slug("odin")).await.unwrap();
    let odin_database = odin.tenant.placement.database.unwrap().to_string();
    let purged = s
        .tenancy
        .purge_deleted(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(purged.is_empty(), "within the grace period");
    assert_eq!(s.tenancy.catalog().list().await.unwrap().len(), 2);

    // The sweep purges them once their grace is over, and their schema and database go.
    let _sweep = PurgeSweep::start(s.tenancy.clone(), Duration::ZERO, Duration::from_millis(50));
    for _ in 0..100 {
        if s.tenancy.catalog().list().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s.tenancy.catalog().list().await.unwrap().is_empty(),
        "purged"
    );
    assert!(!s.schemas().await.contains(&"thor".to_owned()));
    let databases: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&odin_database)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(databases, 0, "odin's database is dropped");
}
