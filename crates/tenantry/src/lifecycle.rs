//! The tenant lifecycle: create, update (rename, suspend, resume, settings), domains, delete.
//!
//! Each operation is one transaction, so it happens entirely or not at all: a failed create
//! leaves neither a schema nor a catalog row. PostgreSQL DDL is transactional, which is what
//! makes this possible.

use sqlx::{AssertSqlSafe, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::catalog_row::{TenantDetails, TenantRow, select_tenants, tenant_columns};
use crate::error::{
    DUPLICATE_DATABASE, DUPLICATE_SCHEMA, Error, UNIQUE_VIOLATION, constraint, sqlstate,
};
use crate::host::HostName;
use crate::migrate::{Applied, applied, migrate_new_schema, record, shared_schema_state};
use crate::pooler;
use crate::rows;
use crate::safe_transaction;
use crate::servers::ServerName;
use crate::slug::{DatabaseName, SchemaName, Slug};
use crate::sqlite::needs_postgres;
use crate::template::{drop_database, drop_template, ensure_template, templates_of};
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, Tenant, TenantStatus};

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: Slug,
    /// Display name; the slug when absent.
    pub name: Option<String>,
    /// Domains besides the primary `<slug>.<base domain>`.
    pub domains: Vec<HostName>,
    /// The registered server to place the tenant on; the catalog's own database when absent.
    pub server: Option<ServerName>,
    /// Schema or database mode.
    pub isolation: IsolationMode,
}

impl NewTenant {
    /// A tenant with no display name, extra domains or server: set those fields as needed.
    pub fn new(slug: Slug, isolation: IsolationMode) -> Self {
        Self {
            slug,
            name: None,
            domains: Vec::new(),
            server: None,
            isolation,
        }
    }
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub name: Option<String>,
    /// A new slug renames the schema and the primary domain too.
    pub slug: Option<Slug>,
    pub status: Option<TenantStatus>,
    /// Replaces the settings; must be a JSON object.
    pub settings: Option<serde_json::Value>,
}

fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid {
            field: "name",
            message: "a name has 1 to 100 characters".into(),
        });
    }
    Ok(name.to_owned())
}

/// Turns a unique violation into the conflict it means.
fn conflict(error: sqlx::Error, slug: &Slug, domain: impl Fn(&str) -> String) -> Error {
    match sqlstate(&error).as_deref() {
        Some(UNIQUE_VIOLATION) => match constraint(&error).as_deref() {
            Some("domains_pkey") => Error::DomainTaken(domain(slug.as_str())),
            _ => Error::SlugTaken(slug.clone()),
        },
        Some(DUPLICATE_SCHEMA) => Error::ExistsOutsideCatalog(slug.schema_name().to_string()),
        _ => Error::Database(error),
    }
}

impl Tenancy {
    /// The primary domain of a slug: `<slug>.<base domain>`.
    pub fn primary_domain(&self, slug: &Slug) -> String {
        format!("{slug}.{}", self.identification().base_domain)
    }

    /// A custom domain may not be the public site, nor sit under it: names below the base
    /// domain belong to the slugs they spell.
    fn check_domain(&self, domain: &HostName) -> Result<(), Error> {
        let base = &self.identification().base_domain;
        let message = if domain == base {
            "the base domain is the public site"
        } else if domain.as_str().ends_with(&format!(".{base}")) {
            "names under the base domain are reserved for tenant slugs"
        } else {
            return Ok(());
        };
        Err(Error::Invalid {
            field: "domains",
            message: format!("'{domain}': {message}"),
        })
    }

    /// Creates the tenant: catalog row, domains, schema and tenant migrations, in one
    /// transaction. Of two concurrent creates of one slug, one gets [`Error::SlugTaken`].
    pub async fn create_tenant(&self, new: NewTenant) -> Result<TenantDetails, Error> {
        let name = validate_name(new.name.as_deref().unwrap_or(new.slug.as_str()))?;
        for domain in &new.domains {
            self.check_domain(domain)?;
        }
        if let Some(home) = self.catalog().sqlite() {
            if new.isolation != IsolationMode::Database {
                let what = format!("{} isolation", new.isolation.as_str());
                return Err(needs_postgres("isolation", &what));
            }
            if new.server.is_some() {
                return Err(needs_postgres("server", "placing a tenant on a server"));
            }
            let primary = self.primary_domain(&new.slug);
            let domains: Vec<(String, bool)> = std::iter::once((primary.clone(), true))
                .chain(
                    new.domains
                        .iter()
                        .filter(|d| d.as_str() != primary)
                        .map(|d| (d.to_string(), false)),
                )
                .collect();
            let migrations = self.migrations().sqlite_tenant()?;
            home.create(&new.slug, &name, &domains, migrations).await?;
            self.catalog().invalidate();
            return self.catalog().details(&new.slug).await;
        }
        let slug = &new.slug;
        let server = &new.server;
        let id = Uuid::new_v4();
        let (database, schema) = match new.isolation {
            IsolationMode::Shared if server.is_some() => {
                return Err(Error::Invalid {
                    field: "server",
                    message: "shared-mode tenants live in the catalog's database; servers hold \
                              schema and database tenants"
                        .into(),
                });
            }
            IsolationMode::Shared => (None, SchemaName::shared()),
            IsolationMode::Schema => (None, slug.schema_name()),
            IsolationMode::Database => (
                Some(DatabaseName::for_tenant(slug, id)),
                SchemaName::own_database(),
            ),
        };
        // Fails early, before any change, if the server is unknown.
        let tenant_pool = self.pools().for_server(server.as_ref()).await?;
        if server.is_some() {
            self.pools().role().ensure(&tenant_pool).await?;
        }
        // A database of its own is made before the catalog's transaction opens: on the
        // catalog's server both need a connection of the same pool, and an operation that
        // holds one connection while it waits for another of its own pool can wait forever.
        if let Some(database) = &database {
            self.create_database(&tenant_pool, database).await?;
        }
        let created = self
            .record_new_tenant(&new, id, &name, (&database, &schema), &tenant_pool)
            .await;
        if let (Err(_), Some(database)) = (&created, &database) {
            drop_database(&tenant_pool, database.as_str()).await?;
        }
        created?;
        self.catalog().invalidate();
        self.catalog().details(slug).await
    }

    /// A tenant database copied from the template, which is built first if needed.
    pub(crate) async fn create_database(
        &self,
        server: &PgPool,
        database: &DatabaseName,
    ) -> Result<(), Error> {
        let catalog = self.postgres()?.connect_options();
        let template =
            ensure_template(server, &catalog, self.migrations(), self.pools().role()).await?;
        server
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {} TEMPLATE \"{template}\"",
                database.quoted()
            )))
            .await
            .map_err(|e| match sqlstate(&e).as_deref() {
                Some(DUPLICATE_DATABASE) => Error::ExistsOutsideCatalog(database.to_string()),
                _ => Error::Database(e),
            })?;
        Ok(())
    }

    /// The catalog row and domains of a new tenant, and its tables unless they exist already
    /// (shared mode) or were copied from the template (database mode).
    async fn record_new_tenant(
        &self,
        new: &NewTenant,
        id: Uuid,
        name: &str,
        (database, schema): (&Option<DatabaseName>, &SchemaName),
        tenant_pool: &PgPool,
    ) -> Result<(), Error> {
        let slug = &new.slug;
        let server = &new.server;
        let mut tx = safe_transaction::begin(self.postgres()?, None).await?;
        let row: TenantRow = pooler::query_as(concat!(
            "INSERT INTO tenantry.tenants AS t \
             (id, slug, name, schema_name, server, isolation, database_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            tenant_columns!()
        ))
        .bind(id)
        .bind(slug.as_str())
        .bind(name)
        .bind(schema.as_str())
        .bind(server.as_ref().map(ServerName::as_str))
        .bind(new.isolation.as_str())
        .bind(database.as_ref().map(DatabaseName::as_str))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, slug, |_| String::new()))?;
        let tenant = Tenant::try_from(row)?;
        let primary = self.primary_domain(slug);
        insert_domain(&mut tx, &tenant, &primary, true).await?;
        for domain in &new.domains {
            if domain.as_str() != primary {
                insert_domain(&mut tx, &tenant, domain.as_str(), false).await?;
            }
        }
        if new.isolation == IsolationMode::Shared {
            // Nothing to build: the tables exist, and Row-Level Security keeps the rows apart.
            let applied = shared_schema_state(&mut tx, self.migrations()).await?;
            record(&mut tx, &tenant, self.migrations(), &applied).await?;
            tx.commit().await?;
        } else if database.is_some() {
            // The database was copied from the template before; if this fails, the caller
            // drops it again.
            let applied = applied(self.migrations());
            record(&mut tx, &tenant, self.migrations(), &applied).await?;
            tx.commit().await?;
        } else if server.is_none() {
            let applied = self.create_schema(&mut tx, &tenant).await?;
            record(&mut tx, &tenant, self.migrations(), &applied).await?;
            tx.commit().await?;
        } else {
            // Two databases: the schema commits first; if the catalog then fails, the schema
            // is dropped again, so either both exist or neither does.
            let mut remote = safe_transaction::begin(tenant_pool, None).await?;
            let applied = self.create_schema(&mut remote, &tenant).await?;
            remote.commit().await?;
            let recorded = async {
                record(&mut tx, &tenant, self.migrations(), &applied).await?;
                Ok::<_, Error>(tx.commit().await?)
            };
            if let Err(error) = recorded.await {
                drop_schema(tenant_pool, &tenant).await?;
                return Err(error);
            }
        }
        Ok(())
    }

    /// Applies `update` to the tenant with this slug.
    pub async fn update_tenant(
        &self,
        slug: &Slug,
        update: TenantUpdate,
    ) -> Result<TenantDetails, Error> {
        let name = update.name.as_deref().map(validate_name).transpose()?;
        if update.settings.as_ref().is_some_and(|s| !s.is_object()) {
            return Err(Error::Invalid {
                field: "settings",
                message: "settings are a JSON object".into(),
            });
        }
        if let Some(home) = self.catalog().sqlite() {
            let tenant = self.catalog().details(slug).await?.tenant;
            let new_slug = update.slug.filter(|new| new != slug);
            let primary = new_slug.as_ref().map(|new| self.primary_domain(new));
            let fields = (
                name,
                update.status.map(TenantStatus::as_str),
                update.settings,
            );
            let close = async || self.pools().close_database(&tenant.placement).await;
            home.update(
                &tenant,
                new_slug.as_ref().zip(primary.as_deref()),
                fields,
                close,
            )
            .await?;
            self.catalog().invalidate();
            return self
                .catalog()
                .details(new_slug.as_ref().unwrap_or(slug))
                .await;
        }
        let mut tx = safe_transaction::begin(self.postgres()?, None).await?;
        let row: Option<TenantRow> =
            pooler::query_as(select_tenants!("WHERE t.slug = $1 FOR UPDATE OF t"))
                .bind(slug.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let tenant = Tenant::try_from(row.ok_or_else(|| Error::TenantNotFound(slug.to_string()))?)?;
        let new_slug = update.slug.filter(|new| new != slug);
        let mut remote_rename = None;
        if let Some(new) = &new_slug {
            let new_primary = self.primary_domain(new);
            // A database-mode tenant's names inside its database do not follow the slug.
            let new_schema = match tenant.isolation {
                IsolationMode::Database | IsolationMode::Shared => tenant.placement.schema.clone(),
                _ => new.schema_name(),
            };
            pooler::query("UPDATE tenantry.tenants SET slug = $2, schema_name = $3 WHERE id = $1")
                .bind(tenant.id)
                .bind(new.as_str())
                .bind(new_schema.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, new, |_| new_primary.clone()))?;
            pooler::query(
                "UPDATE tenantry.domains SET domain = $2 WHERE tenant_id = $1 AND is_primary",
            )
            .bind(tenant.id)
            .bind(&new_primary)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, new, |_| new_primary.clone()))?;
            let rename = |from: &SchemaName, to: &SchemaName| {
                AssertSqlSafe(format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    from.quoted(),
                    to.quoted()
                ))
            };
            let old_schema = &tenant.placement.schema;
            match &tenant.placement.server {
                _ if *old_schema == new_schema => {}
                None => {
                    tx.execute(rename(old_schema, &new_schema))
                        .await
                        .map_err(|e| conflict(e, new, |_| new_primary.clone()))?;
                }
                Some(_) => {
                    let remote = self
                        .pools()
                        .for_server(tenant.placement.server.as_ref())
                        .await?;
                    remote
                        .execute(rename(old_schema, &new_schema))
                        .await
                        .map_err(|e| conflict(e, new, |_| new_primary.clone()))?;
                    remote_rename = Some((remote, rename(&new_schema, old_schema)));
                }
            }
        }
        pooler::query(
            "UPDATE tenantry.tenants SET name = COALESCE($2, name), \
             status = COALESCE($3, status), settings = COALESCE($4, settings) WHERE id = $1",
        )
        .bind(tenant.id)
        .bind(name)
        .bind(update.status.map(TenantStatus::as_str))
        .bind(update.settings)
        .execute(&mut *tx)
        .await?;
        if let Err(error) = tx.commit().await {
            // The schema on the other server was renamed already: put the name back.
            if let Some((remote, undo)) = remote_rename {
                remote.execute(undo).await?;
            }
            return Err(error.into());
        }
        self.catalog().invalidate();
        self.catalog()
            .details(new_slug.as_ref().unwrap_or(slug))
            .await
    }

    /// The template databases this catalog made, by server (`None`: the catalog's own).
    pub async fn templates(&self) -> Result<Vec<(Option<ServerName>, String)>, Error> {
        let catalog = self.postgres()?.connect_options();
        let mut servers = vec![None];
        servers.extend(
            self.servers()?
                .list()
                .await?
                .into_iter()
                .map(|s| Some(s.name)),
        );
        let mut found = Vec::new();
        for server in servers {
            let pool = self.pools().for_server(server.as_ref()).await?;
            for name in templates_of(&pool, &catalog).await? {
                found.push((server.clone(), name));
            }
        }
        Ok(found)
    }

    /// Drops every template database this catalog made (when a deployment is taken down, for
    /// instance); the next database-mode tenant builds its template again. Returns them.
    pub async fn drop_templates(&self) -> Result<Vec<(Option<ServerName>, String)>, Error> {
        let templates = self.templates().await?;
        for (server, name) in &templates {
            let pool = self.pools().for_server(server.as_ref()).await?;
            drop_template(&pool, name).await?;
        }
        Ok(templates)
    }

    /// What deleting `tenant` removes, for a person to confirm: its file, database or schema
    /// (and where), or its rows in the shared tables.
    pub fn what_deleting_drops(&self, tenant: &Tenant) -> String {
        let placement = &tenant.placement;
        let on = placement
            .server
            .as_ref()
            .map_or_else(String::new, |server| format!(" on server '{server}'"));
        match (self.catalog().sqlite(), &placement.database) {
            (Some(home), Some(database)) => {
                format!("file {}", home.tenant_file(database).display())
            }
            (None, Some(database)) => format!("database \"{database}\"{on}"),
            _ if tenant.isolation == IsolationMode::Shared => format!(
                "its rows in the shared tables (schema \"{}\")",
                placement.schema
            ),
            _ => format!("schema \"{}\"{on}", placement.schema),
        }
    }

    /// Drops the tenant's schema, database or file with all its data (a shared-mode tenant's
    /// rows) and removes it from the catalog.
    pub async fn delete_tenant(&self, slug: &Slug) -> Result<(), Error> {
        if let Some(home) = self.catalog().sqlite() {
            home.delete(slug, async |tenant| {
                self.catalog().invalidate();
                self.pools().close_database(&tenant.placement).await
            })
            .await?;
            self.catalog().invalidate();
            return Ok(());
        }
        let mut tx = safe_transaction::begin(self.postgres()?, None).await?;
        let row: Option<TenantRow> = pooler::query_as(concat!(
            "DELETE FROM tenantry.tenants AS t WHERE t.slug = $1 RETURNING ",
            tenant_columns!()
        ))
        .bind(slug.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let tenant = Tenant::try_from(row.ok_or_else(|| Error::TenantNotFound(slug.to_string()))?)?;
        match (&tenant.placement.database, &tenant.placement.server) {
            _ if tenant.isolation == IsolationMode::Shared => {
                rows::delete(&mut tx, &tenant.placement.schema, tenant.id).await?;
                tx.commit().await?;
            }
            (None, None) => {
                tx.execute(drop_schema_sql(&tenant)).await?;
                tx.commit().await?;
            }
            // Elsewhere, the catalog goes first: a failure after it leaves an orphaned schema
            // or database, never a tenant without its data.
            (database, server) => {
                let server = self.pools().for_server(server.as_ref()).await?;
                tx.commit().await?;
                self.catalog().invalidate();
                let what = match database {
                    Some(database) => format!("database \"{database}\""),
                    None => format!("schema \"{}\"", tenant.placement.schema),
                };
                self.drop_placement(&server, &tenant)
                    .await
                    .map_err(|e| leftover(slug, &what, e))?;
            }
        }
        self.catalog().invalidate();
        Ok(())
    }

    /// Adds a (custom) domain to the tenant.
    pub async fn add_domain(&self, slug: &Slug, domain: &HostName) -> Result<(), Error> {
        self.check_domain(domain)?;
        let tenant = self.catalog().details(slug).await?.tenant;
        match self.catalog().sqlite() {
            Some(home) => home.add_domain(&tenant, domain.as_str()).await?,
            None => {
                let mut conn = self.postgres()?.acquire().await?;
                insert_domain(&mut conn, &tenant, domain.as_str(), false).await?;
            }
        }
        self.catalog().invalidate();
        Ok(())
    }

    /// Removes a domain that is not the tenant's primary one.
    pub async fn remove_domain(&self, slug: &Slug, domain: &HostName) -> Result<(), Error> {
        let details = self.catalog().details(slug).await?;
        match details.domains.iter().find(|d| d.domain == domain.as_str()) {
            None => return Err(Error::DomainNotFound(domain.to_string())),
            Some(d) if d.is_primary => return Err(Error::PrimaryDomain(domain.to_string())),
            Some(_) => {}
        }
        if let Some(home) = self.catalog().sqlite() {
            home.remove_domain(&details.tenant, domain.as_str()).await?;
        } else {
            pooler::query(
                "DELETE FROM tenantry.domains \
                 WHERE domain = $1 AND tenant_id = $2 AND NOT is_primary",
            )
            .bind(domain.as_str())
            .bind(details.tenant.id)
            .execute(pooler::Pinned(self.postgres()?))
            .await?;
        }
        self.catalog().invalidate();
        Ok(())
    }
}

async fn insert_domain(
    conn: &mut PgConnection,
    tenant: &Tenant,
    domain: &str,
    is_primary: bool,
) -> Result<(), Error> {
    pooler::query(
        "INSERT INTO tenantry.domains (domain, tenant_id, is_primary) VALUES ($1, $2, $3)",
    )
    .bind(domain)
    .bind(tenant.id)
    .bind(is_primary)
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict(e, &tenant.slug, |_| domain.to_owned()))?;
    Ok(())
}

impl Tenancy {
    /// Drops a placement's own database (closing its pools) or its schema on `server`; a
    /// shared-mode tenant's rows are deleted with `rows::delete` instead.
    pub(crate) async fn drop_placement(
        &self,
        server: &PgPool,
        tenant: &Tenant,
    ) -> Result<(), Error> {
        match &tenant.placement.database {
            Some(database) => {
                self.pools().close_database(&tenant.placement).await?;
                drop_database(server, database.as_str()).await
            }
            None => drop_schema(server, tenant).await,
        }
    }

    /// Creates the tenant's schema on `conn` (in an open transaction) and applies the tenant
    /// migrations in it.
    pub(crate) async fn create_schema(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
    ) -> Result<Applied, Error> {
        let schema = tenant.placement.schema.quoted();
        conn.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}"
        )))
        .await
        .map_err(|e| conflict(e, &tenant.slug, |_| String::new()))?;
        migrate_new_schema(
            conn,
            &tenant.placement.schema,
            self.migrations(),
            self.pools().role(),
        )
        .await
    }
}

fn drop_schema_sql(tenant: &Tenant) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        tenant.placement.schema.quoted()
    ))
}

async fn drop_schema(pool: &PgPool, tenant: &Tenant) -> Result<(), Error> {
    pool.execute(drop_schema_sql(tenant)).await?;
    Ok(())
}

fn leftover(slug: &Slug, what: &str, error: Error) -> Error {
    Error::Incomplete(format!(
        "tenant '{slug}' is deleted, but its {what} could not be dropped ({error}); drop it by hand"
    ))
}
