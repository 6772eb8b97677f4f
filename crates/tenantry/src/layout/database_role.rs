//! What PostgreSQL's dedicated isolation keeps (its app server of its own is `served.rs`'s):
//! a database of the tenant's own (the database layout's) and a database role of its own,
//! which may connect to that database and to nothing else. The role has no
//! password at rest: whoever starts the tenant's server sets a fresh one
//! ([`role_credentials`]) and hands it over.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Executor, PgPool};
use uuid::Uuid;

use super::database::{Database, own_database};
use super::{Cx, Layout, Outside, OwnServer, Tables, TxRoute};
use crate::db_server::DbServerName;
use crate::error::{DUPLICATE_OBJECT, Error, UNIQUE_VIOLATION, sqlstate};
use crate::migrate::Applied;
use crate::pooler;
use crate::pools::Access;
use crate::role::AppRole;
use crate::slug::Slug;
use crate::tenant::{Placement, Tenant};

/// A database of the tenant's own (the database layout's) and a role of its own.
pub(super) struct DatabaseWithRole;

/// The name of the tenant's own role: from its id, so it never changes.
pub(crate) fn role_name(tenant: &Tenant) -> String {
    role_name_of(tenant.id)
}

/// The name of the own role of the tenant with id `id`.
pub(crate) fn role_name_of(id: uuid::Uuid) -> String {
    format!("tenantry_t_{}", &id.simple().to_string()[..20])
}

/// A random password for a tenant's role.
pub(crate) fn new_password() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Gives the tenant's role a fresh random password and returns the role with it: the old
/// password (and a server still holding it) no longer logs in.
pub(crate) async fn role_credentials(cx: Cx<'_>, tenant: &Tenant) -> Result<AppRole, Error> {
    let password = new_password();
    set_password(cx, tenant, &password).await?;
    AppRole::new(&role_name(tenant), Some(password))
}

/// Sets the password of the tenant's role.
pub(crate) async fn set_password(cx: Cx<'_>, tenant: &Tenant, password: &str) -> Result<(), Error> {
    let server = cx
        .pools
        .for_server(tenant.placement.server.as_ref())
        .await?;
    // The server quotes the literal itself.
    let statement: String =
        pooler::query_scalar("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)")
            .bind(role_name(tenant))
            .bind(password)
            .fetch_one(pooler::Pinned(&server))
            .await?;
    server.execute(AssertSqlSafe(statement)).await?;
    Ok(())
}

/// Where a dedicated tenant's database is, as this process reaches its server.
#[cfg(feature = "deploy")]
pub(crate) struct OwnDatabase {
    pub(crate) role: String,
    pub(crate) database: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The tenant's role, database and server address.
#[cfg(feature = "deploy")]
pub(crate) async fn own_database_of(cx: Cx<'_>, tenant: &Tenant) -> Result<OwnDatabase, Error> {
    let server = cx
        .pools
        .for_server(tenant.placement.server.as_ref())
        .await?;
    let options = server.connect_options();
    Ok(OwnDatabase {
        role: role_name(tenant),
        database: own_database(tenant)?.as_str().to_owned(),
        host: options.get_host().to_owned(),
        port: options.get_port(),
    })
}

/// Creates the tenant's role if needed: it may log in, and nothing more.
async fn create_role(server: &PgPool, name: &str) -> Result<(), Error> {
    let created = server
        .execute(AssertSqlSafe(format!(
            "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
             NOINHERIT"
        )))
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                sqlstate(&e).as_deref(),
                Some(DUPLICATE_OBJECT | UNIQUE_VIOLATION)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Lets the tenant's role connect to its database and makes it the owner of its schema and
/// tables there (Row-Level Security is forced on them, so it binds their owner too): the
/// tenant's own migration step (`migrate_own_database`) runs as that role.
async fn grant(cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
    let database = own_database(tenant)?;
    let server = cx
        .pools
        .for_server(tenant.placement.server.as_ref())
        .await?;
    let role = AppRole::new(&role_name(tenant), None)?;
    server
        .execute(AssertSqlSafe(format!(
            "GRANT CONNECT ON DATABASE {} TO \"{}\"",
            database.quoted(),
            role.name()
        )))
        .await?;
    let TxRoute { pool, .. } = Database.transaction(cx, tenant, Access::Owner).await?;
    let mut conn = pool.pg()?.acquire().await?;
    // The server quotes the names itself.
    let statements: Vec<String> = pooler::query_scalar(
        "SELECT format('ALTER SCHEMA %I OWNER TO %I', $1::text, $2::text) \
         UNION ALL \
         SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, $2::text) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
    )
    .bind(tenant.placement.schema.as_str())
    .bind(role.name())
    .fetch_all(&mut *conn)
    .await?;
    for statement in statements {
        conn.execute(AssertSqlSafe(statement)).await?;
    }
    Ok(())
}

#[async_trait]
impl Layout for DatabaseWithRole {
    fn place(
        &self,
        slug: &Slug,
        id: Uuid,
        server: Option<&DbServerName>,
        fresh: bool,
    ) -> Result<Placement, Error> {
        Database.place(slug, id, server, fresh)
    }

    fn tables(&self, _: &Placement) -> Tables<'_> {
        Tables::Outside(self)
    }

    async fn discard(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        Database.discard(cx, tenant).await
    }

    async fn size(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Option<i64>, Error> {
        Database.size(cx, tenant).await
    }

    fn describe(&self, tenant: &Tenant) -> String {
        format!(
            "{}, its role \"{}\"",
            Database.describe(tenant),
            role_name(tenant)
        )
    }

    async fn migrate(&self, cx: Cx<'_>, tenant: &Tenant, keep: bool) -> Result<Applied, Error> {
        let applied = Database.migrate(cx, tenant, keep).await?;
        if keep && applied.count > 0 {
            // New tables are granted to the app role by the migration; the tenant's own role
            // gets them here.
            grant(cx, tenant).await?;
        }
        Ok(applied)
    }

    async fn transaction(
        &self,
        cx: Cx<'_>,
        tenant: &Tenant,
        access: Access,
    ) -> Result<TxRoute, Error> {
        Database.transaction(cx, tenant, access).await
    }
}

#[async_trait]
impl Outside for DatabaseWithRole {
    fn provision_first(&self) -> bool {
        Database.provision_first()
    }

    async fn provision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<Applied, Error> {
        let applied = Outside::provision(&Database, cx, tenant).await?;
        let granted = async {
            let server = cx
                .pools
                .for_server(tenant.placement.server.as_ref())
                .await?;
            create_role(&server, &role_name(tenant)).await?;
            grant(cx, tenant).await
        };
        if let Err(error) = granted.await {
            self.deprovision(cx, tenant).await?;
            return Err(error);
        }
        Ok(applied)
    }

    async fn rename(&self, cx: Cx<'_>, tenant: &Tenant, to: &Slug) -> Result<Placement, Error> {
        Outside::rename(&Database, cx, tenant, to).await
    }

    async fn deprovision(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<(), Error> {
        Outside::deprovision(&Database, cx, tenant).await?;
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        server
            .execute(AssertSqlSafe(format!(
                "DROP ROLE IF EXISTS \"{}\"",
                role_name(tenant)
            )))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl OwnServer for DatabaseWithRole {
    /// A `postgres://` URL of the tenant's database as its own role, with a password set
    /// for this start.
    async fn server_url(&self, cx: Cx<'_>, tenant: &Tenant) -> Result<String, Error> {
        let role = role_credentials(cx, tenant).await?;
        let server = cx
            .pools
            .for_server(tenant.placement.server.as_ref())
            .await?;
        database_url(
            &role,
            &server.connect_options(),
            own_database(tenant)?.as_str(),
        )
    }
}

/// A `postgres://` URL for `role` on `database` of the server `options` reach, with the
/// server's TLS settings (`sslmode`, `sslrootcert`, ...) kept.
fn database_url(
    role: &AppRole,
    options: &sqlx::postgres::PgConnectOptions,
    database: &str,
) -> Result<String, Error> {
    use sqlx::ConnectOptions;
    let mut url = options.to_url_lossy();
    let set = url
        .set_username(role.name())
        .and_then(|()| url.set_password(role.password()));
    if set.is_err() {
        return Err(Error::Incomplete(format!(
            "the server's URL cannot carry the role '{}'",
            role.name()
        )));
    }
    url.set_path(database);
    // sqlx writes a certificate file as `file: <path>`, which it would not read back.
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            (
                k.into_owned(),
                v.strip_prefix("file: ").unwrap_or(&v).to_owned(),
            )
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(query);
    Ok(url.to_string())
}
