//! [`AppRole`]: the PostgreSQL role tenant transactions run as.
//!
//! Row-Level Security keeps shared-mode tenants apart only for a role it applies to: not a
//! superuser, not one with `BYPASSRLS`, and not the tables' owner (who could switch it off).
//! So tenant transactions run as a role of their own, and migrations and the tenant lifecycle
//! run as the role of the configured URL, which owns the tables. [`AppRole::ensure`] creates
//! the role and [`AppRole::grant`] lets it read and write a tenant schema's tables, never the
//! migration ledger.

use std::fmt;

use crate::error::Error;
#[cfg(feature = "postgres")]
use {
    crate::error::{DUPLICATE_OBJECT, UNIQUE_VIOLATION, sqlstate},
    crate::pooler,
    crate::safe_transaction,
    crate::slug::SchemaName,
    sqlx::postgres::PgConnectOptions,
    sqlx::{AssertSqlSafe, Executor, PgConnection, PgPool},
};

/// Key of the advisory lock that serializes changes of a database's connect privileges.
#[cfg(feature = "postgres")]
const CONNECT_LOCK: i32 = 0x636f_6e6e;

/// The role tenant transactions run as, with its password if the server asks for one.
#[derive(Clone, PartialEq, Eq)]
pub struct AppRole {
    name: String,
    password: Option<String>,
}

impl fmt::Debug for AppRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRole")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for AppRole {
    /// `tenantry_app`, without a password (for servers that trust local connections).
    fn default() -> Self {
        Self {
            name: "tenantry_app".into(),
            password: None,
        }
    }
}

impl AppRole {
    /// A role named `name` (`^[a-z_][a-z0-9_]{0,62}$`), with `password` if given.
    pub fn new(name: &str, password: Option<String>) -> Result<Self, Error> {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= 63
            && !name.starts_with("pg_");
        if !valid {
            return Err(Error::Invalid {
                field: "role",
                message: format!(
                    "'{name}' is not a role name tenantry uses (lower-case letters, digits and \
                     '_', at most 63, not starting with pg_)"
                ),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            password,
        })
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "postgres")]
impl AppRole {
    /// The role's password, if one is set.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `options` (the owner's) with this role's credentials instead.
    pub(crate) fn options(&self, options: &PgConnectOptions) -> PgConnectOptions {
        let options = options.clone().username(&self.name);
        match &self.password {
            Some(password) => options.password(password),
            None => options,
        }
    }

    fn quoted(&self) -> String {
        format!("\"{}\"", self.name)
    }

    /// Creates the role on `server` if it does not exist (and sets its password if one is
    /// configured): it may log in and nothing more. The server's database is then closed to
    /// roles not granted it (a dedicated tenant's own role), and granted to this one.
    pub async fn ensure(&self, server: &PgPool) -> Result<(), Error> {
        let exists: bool =
            pooler::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&self.name)
                .fetch_one(pooler::Pinned(server))
                .await?;
        if !exists {
            let created = server
                .execute(AssertSqlSafe(format!(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
                    self.quoted()
                )))
                .await;
            match created {
                Ok(_) => {}
                // Another process created it at the same moment.
                Err(e)
                    if matches!(
                        sqlstate(&e).as_deref(),
                        Some(DUPLICATE_OBJECT | UNIQUE_VIOLATION)
                    ) => {}
                Err(e) => {
                    return Err(Error::Migration(format!(
                        "could not create role {} for tenant transactions ({e}); create it \
                         yourself: CREATE ROLE {} LOGIN",
                        self.name,
                        self.quoted()
                    )));
                }
            }
        }
        self.restrict_connect(server).await?;
        if let Some(password) = &self.password {
            // The server quotes the literal itself.
            let statement: String = pooler::query_scalar(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
            )
            .bind(&self.name)
            .bind(password)
            .fetch_one(pooler::Pinned(server))
            .await?;
            alter_role(server, statement).await?;
        }
        Ok(())
    }

    /// Closes the server's database to roles not granted it (a dedicated tenant's own role
    /// may not connect), granting it to this role; once, under a lock, since concurrent
    /// changes of one database's privileges fail.
    async fn restrict_connect(&self, server: &PgPool) -> Result<(), Error> {
        let mut tx = safe_transaction::begin(server, None).await?;
        pooler::query("SELECT pg_advisory_xact_lock($1, hashtext(current_database()))")
            .bind(CONNECT_LOCK)
            .execute(&mut *tx)
            .await?;
        let open: bool = pooler::query_scalar(
            "SELECT has_database_privilege('public', current_database(), 'CONNECT')",
        )
        .fetch_one(&mut *tx)
        .await?;
        if open {
            let restrict: String = pooler::query_scalar(
                "SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %1$I FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE %1$I TO %2$I', current_database(), $1::text)",
            )
            .bind(&self.name)
            .fetch_one(&mut *tx)
            .await?;
            tx.execute(AssertSqlSafe(restrict)).await?;
        } else {
            let grant: String = pooler::query_scalar(
                "SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text) \
                 WHERE NOT has_database_privilege($1::text, current_database(), 'CONNECT')",
            )
            .bind(&self.name)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
            if !grant.is_empty() {
                tx.execute(AssertSqlSafe(grant)).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Lets the role use the tables and sequences of `schema`, except the migration ledger.
    pub(crate) async fn grant(
        &self,
        conn: &mut PgConnection,
        schema: &SchemaName,
    ) -> Result<(), Error> {
        let (schema, role) = (schema.quoted(), self.quoted());
        conn.execute(AssertSqlSafe(format!(
            "GRANT USAGE ON SCHEMA {schema} TO {role}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; \
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}; \
             REVOKE ALL ON {schema}.tenantry_migrations FROM {role}"
        )))
        .await?;
        Ok(())
    }

    /// Refuses a role Row-Level Security would not hold: run on a connection of this role.
    pub(crate) async fn check(&self, conn: &mut PgConnection) -> Result<(), Error> {
        let (superuser, bypass, owns): (bool, bool, bool) = pooler::query_as(
            "SELECT r.rolsuper, r.rolbypassrls, EXISTS ( \
                 SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND pg_has_role(current_user, c.relowner, 'MEMBER')) \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .bind(SchemaName::shared().as_str())
        .fetch_one(&mut *conn)
        .await?;
        let why = if superuser {
            "is a superuser"
        } else if bypass {
            "has BYPASSRLS"
        } else if owns {
            "owns the shared tenant tables"
        } else {
            return Ok(());
        };
        Err(Error::UnsafeRole(format!(
            "tenant transactions would run as role '{}', which {why}, so Row-Level Security \
             could not keep shared tenants apart; configure a role without SUPERUSER or \
             BYPASSRLS that owns no tables (the migrate command creates '{}' when it can)",
            self.name,
            AppRole::default().name
        )))
    }
}

/// Sets an empty `search_path` on the catalog's owning role in its database and on `role`,
/// so that sessions a transaction pooler opens fail closed without a startup parameter.
/// Sessions the pooler opened before keep the old setting until it reconnects them.
#[cfg(feature = "postgres")]
pub async fn prepare_roles(pool: &PgPool, role: &AppRole) -> Result<(), Error> {
    let statements: Vec<String> = pooler::query_scalar(
        "SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = ''''', \
                       current_user, current_database()) \
         UNION ALL SELECT format('ALTER ROLE %I SET search_path = ''''', $1::text)",
    )
    .bind(role.name())
    .fetch_all(pooler::Pinned(pool))
    .await?;
    for statement in statements {
        alter_role(pool, statement).await.map_err(|e| {
            Error::Migration(format!(
                "could not give the roles an empty search_path for a transaction pooler \
                     ({e})"
            ))
        })?;
    }
    Ok(())
}

/// Runs `statement`, which changes a role. A role is the whole server's: another database's
/// `migrate` may change the same role at this moment, and PostgreSQL then refuses one of the
/// two ("tuple concurrently updated", or a duplicate key when both add the same setting);
/// that one tries again.
#[cfg(feature = "postgres")]
async fn alter_role(pool: &PgPool, statement: String) -> Result<(), sqlx::Error> {
    let mut attempt = 1;
    loop {
        match pool.execute(AssertSqlSafe(statement.clone())).await {
            Ok(_) => return Ok(()),
            Err(e) if concurrently_updated(&e) && attempt < 20 => {
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether PostgreSQL refused a change of a shared catalog row (a role's) because another
/// transaction changed or added it at the same time.
#[cfg(feature = "postgres")]
fn concurrently_updated(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| {
        e.message().contains("tuple concurrently updated")
            || e.code().as_deref() == Some(UNIQUE_VIOLATION)
    })
}

/// Refuses to start through a transaction pooler unless both roles' settings give new
/// sessions an empty `search_path` ([`prepare_roles`]).
#[cfg(feature = "postgres")]
pub(crate) async fn check_roles(pool: &PgPool, role: &AppRole) -> Result<(), Error> {
    let missing: Vec<String> = pooler::query_scalar(
        "SELECT r.name FROM (VALUES (current_user::text, true), ($1::text, false)) r(name, here) \
         WHERE NOT EXISTS ( \
             SELECT 1 FROM pg_db_role_setting s JOIN pg_roles o ON o.oid = s.setrole \
             WHERE o.rolname = r.name \
               AND s.setdatabase IN (0, CASE WHEN r.here THEN \
                   (SELECT oid FROM pg_database WHERE datname = current_database()) ELSE 0 END) \
               AND 'search_path=\"\"' = ANY (s.setconfig))",
    )
    .bind(role.name())
    .fetch_all(pooler::Pinned(pool))
    .await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid {
        field: "pool",
        message: format!(
            "through a transaction pooler the roles must carry an empty search_path, and {} \
             do not; the migrate command sets it",
            missing.join(" and ")
        ),
    })
}
