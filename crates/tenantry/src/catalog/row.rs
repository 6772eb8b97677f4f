//! A tenant's row in the catalog, as PostgreSQL and SQLite store it, and the SQL that selects
//! it; a tenant with its domains.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db_server::{DbServerName, DbServerUrl};
use crate::error::Error;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::tenant::{self, IsolationMode, Placement, Tenant, TenantStatus};

/// The columns of [`TenantRow`], from `tenantry.tenants` aliased as `t`.
macro_rules! tenant_columns {
    () => {
        "t.id, t.slug, t.name, t.schema_name, t.isolation, t.status, t.settings, \
         t.created_at, t.migration_version, t.server, t.database_name, t.moving, \
         CAST(t.move_state AS TEXT) AS move_state"
    };
}
pub(crate) use tenant_columns;

/// Selects tenants as `t`, with `$tail` appended (joins, WHERE, ORDER BY).
#[cfg(feature = "postgres")]
macro_rules! select_tenants {
    ($tail:expr) => {
        concat!(
            "SELECT ",
            $crate::catalog::row::tenant_columns!(),
            ", s.url AS server_url FROM tenantry.tenants t \
             LEFT JOIN tenantry.servers s ON s.name = t.server ",
            $tail
        )
    };
}
#[cfg(feature = "postgres")]
pub(crate) use select_tenants;

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    schema_name: String,
    isolation: String,
    status: String,
    settings: serde_json::Value,
    created_at: DateTime<Utc>,
    migration_version: Option<i64>,
    server: Option<String>,
    database_name: Option<String>,
    moving: bool,
    move_state: Option<String>,
    /// Present when the row was selected with [`select_tenants`].
    #[sqlx(default)]
    server_url: Option<String>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;

    fn try_from(row: TenantRow) -> Result<Self, Error> {
        row.into_tenant(DatabaseName::from_catalog)
    }
}

impl TenantRow {
    /// The tenant, with its database name checked by `database`.
    pub(crate) fn into_tenant(
        self,
        database: fn(&str) -> Option<DatabaseName>,
    ) -> Result<Tenant, Error> {
        let row = self;
        let corrupt = |what: &str| Error::CorruptCatalog(format!("tenant {}: {what}", row.id));
        let slug = Slug::parse(&row.slug).map_err(|e| corrupt(&e.to_string()))?;
        let schema = SchemaName::from_catalog(&row.schema_name)
            .ok_or_else(|| corrupt("invalid schema name"))?;
        let isolation: IsolationMode = row
            .isolation
            .parse()
            .map_err(|_| corrupt("unknown isolation mode"))?;
        let status =
            TenantStatus::from_catalog(&row.status).ok_or_else(|| corrupt("unknown status"))?;
        let server = row
            .server
            .as_deref()
            .map(DbServerName::parse)
            .transpose()
            .map_err(|_| corrupt("invalid server name"))?;
        let database = row
            .database_name
            .as_deref()
            .map(|name| database(name).ok_or_else(|| corrupt("invalid database name")))
            .transpose()?;
        Ok(Tenant {
            id: row.id,
            begin_sql: tenant::begin_statement(row.id, &schema, row.moving),
            parsed_settings: Default::default(),
            slug,
            name: row.name,
            isolation,
            placement: Placement {
                server,
                server_url: row.server_url.map(DbServerUrl::from_catalog),
                database,
                schema,
            },
            status,
            settings: row.settings,
            created_at: row.created_at,
            migration_version: row.migration_version,
            moving: row.moving,
            move_state: row
                .move_state
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(&format!("move state: {e}")))?,
        })
    }
}

/// One of a tenant's host names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Domain {
    /// The host name.
    pub domain: String,
    /// Whether it is the tenant's primary domain (`<slug>.<base>`).
    pub is_primary: bool,
}

/// A tenant with its domains, as listed by the CLI and the platform API.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetails {
    #[serde(flatten)]
    /// The tenant's catalog row.
    pub tenant: Tenant,
    /// Its domains, the primary one first.
    pub domains: Vec<Domain>,
}

/// Pairs tenants with their domains, given as (tenant id, domain, is primary) in display
/// order.
pub(crate) fn assemble(
    tenants: impl Iterator<Item = Result<Tenant, Error>>,
    domains: Vec<(Uuid, String, bool)>,
) -> Result<Vec<TenantDetails>, Error> {
    tenants
        .map(|tenant| {
            let tenant = tenant?;
            let domains = domains
                .iter()
                .filter(|(id, _, _)| *id == tenant.id)
                .map(|(_, domain, is_primary)| Domain {
                    domain: domain.clone(),
                    is_primary: *is_primary,
                })
                .collect();
            Ok(TenantDetails { tenant, domains })
        })
        .collect()
}
