//! The [`Tenant`] record and its small value types.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db_server::{DbServerName, DbServerUrl};
use crate::settings::ParsedSettings;
use crate::slug::{DatabaseName, SchemaName, Slug};

/// How a tenant's data is kept apart from other tenants'.
///
/// The catalog stores it per tenant, so new modes join without reshaping the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum IsolationMode {
    /// Tables in a PostgreSQL schema of the tenant's own, chosen per transaction.
    #[default]
    Schema,
    /// A PostgreSQL database of the tenant's own.
    Database,
    /// Rows in tables shared with other tenants, kept apart by Row-Level Security.
    Shared,
    /// An app server, a PostgreSQL database and a database role of the tenant's own.
    Dedicated,
}

impl IsolationMode {
    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Database => "database",
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }

    pub(crate) fn from_catalog(value: &str) -> Option<Self> {
        match value {
            "schema" => Some(Self::Schema),
            "database" => Some(Self::Database),
            "shared" => Some(Self::Shared),
            "dedicated" => Some(Self::Dedicated),
            _ => None,
        }
    }
}

impl std::str::FromStr for IsolationMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Self::from_catalog(value).ok_or_else(|| {
            format!(
                "unknown isolation mode '{value}' (expected shared, schema, database or dedicated)"
            )
        })
    }
}

/// Whether a tenant's site serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serves requests.
    Active,
    /// Answers every request with 403; data is kept.
    Suspended,
    /// Provisioned ahead of a signup, which names it and makes it active: until then no
    /// request reaches it and no listing shows it.
    Pending,
    /// Deleted, but kept (answering 403, as if suspended) for a grace period in which it can
    /// be restored; purged after it.
    Deleted,
}

impl TenantStatus {
    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Pending => "pending",
            Self::Deleted => "deleted",
        }
    }

    pub(crate) fn from_catalog(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "pending" => Some(Self::Pending),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// Where a tenant's tables live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The registered server, or `None` for the catalog's own database.
    pub server: Option<DbServerName>,
    /// The server's URL, when the catalog lookup brought it along.
    #[serde(skip)]
    pub(crate) server_url: Option<DbServerUrl>,
    /// The tenant's own database (database mode); `None` for the server's shared database.
    pub database: Option<DatabaseName>,
    /// The PostgreSQL schema holding the tenant's tables.
    pub schema: SchemaName,
}

impl std::fmt::Display for Placement {
    /// `server/database/schema`, `catalog` standing for the catalog's own server, and the
    /// database left out where it is the server's shared one: `catalog/thor`,
    /// `eu-1/tenant_3f2a.../tenant`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.server {
            Some(server) => write!(f, "{server}/")?,
            None => f.write_str("catalog/")?,
        }
        if let Some(database) = &self.database {
            write!(f, "{database}/")?;
        }
        write!(f, "{}", self.schema)
    }
}

impl Placement {
    /// Whether the tenant's tables are in the catalog's own database.
    pub fn in_catalog_database(&self) -> bool {
        self.server.is_none() && self.database.is_none()
    }
}

/// Where a move takes a tenant, as the catalog records it while the move runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveStep {
    /// The isolation the tenant had (`from`) or will have (`to`).
    pub isolation: IsolationMode,
    /// The database server it is on; `None`: the catalog's own.
    pub server: Option<DbServerName>,
    /// Its own database, for database and dedicated tenants.
    pub database: Option<DatabaseName>,
    /// The schema its tables are in.
    pub schema: SchemaName,
}

#[cfg(feature = "postgres")]
impl MoveStep {
    pub(crate) fn of(isolation: IsolationMode, placement: &Placement) -> Self {
        Self {
            isolation,
            server: placement.server.clone(),
            database: placement.database.clone(),
            schema: placement.schema.clone(),
        }
    }

    pub(crate) fn placement(&self) -> Placement {
        Placement {
            server: self.server.clone(),
            server_url: None,
            database: self.database.clone(),
            schema: self.schema.clone(),
        }
    }
}

/// A move that has not finished. A move that runs holds a lock; one whose process died
/// leaves this behind for `tenants move --resume` or `--abort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveState {
    /// Where it was.
    pub from: MoveStep,
    /// Where it goes.
    pub to: MoveStep,
    /// The catalog points at `to` already; only removing the old data remains.
    pub switched: bool,
}

/// A tenant as the catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// Its id, which never changes.
    pub id: Uuid,
    /// Its slug.
    pub slug: Slug,
    /// Display name.
    pub name: String,
    /// How its data is kept apart.
    pub isolation: IsolationMode,
    /// Where its data is.
    pub placement: Placement,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Free-form per-tenant settings (branding, limits, ...).
    pub settings: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Highest tenant migration applied, as recorded by the last migration run.
    pub migration_version: Option<i64>,
    /// Being moved to another placement: reads are served, writes refused.
    pub moving: bool,
    /// The move under way or interrupted, if any.
    pub move_state: Option<MoveState>,
    #[serde(skip)]
    pub(crate) begin_sql: Arc<str>,
    /// `settings` as the app's type, parsed once per catalog read.
    #[serde(skip)]
    pub(crate) parsed_settings: ParsedSettings,
}

impl Tenant {
    /// A tenant as created: active, no settings, no migration recorded yet.
    pub(crate) fn new(
        id: Uuid,
        slug: Slug,
        name: String,
        isolation: IsolationMode,
        placement: Placement,
    ) -> Self {
        Self {
            id,
            begin_sql: begin_statement(id, &placement.schema, false),
            parsed_settings: ParsedSettings::default(),
            slug,
            name,
            isolation,
            placement,
            status: TenantStatus::Active,
            settings: serde_json::json!({}),
            created_at: Utc::now(),
            migration_version: None,
            moving: false,
            move_state: None,
        }
    }

    /// This tenant with another name and settings (parsed again when next asked for).
    pub(crate) fn with_profile(&self, name: String, settings: serde_json::Value) -> Self {
        Self {
            name,
            settings,
            parsed_settings: ParsedSettings::default(),
            ..self.clone()
        }
    }

    /// The single statement that opens a transaction in this tenant's context: one round trip,
    /// and only transaction-local settings, so it is safe behind a transaction-mode pooler.
    pub fn begin_statement(&self) -> &str {
        &self.begin_sql
    }
}

/// Builds [`Tenant::begin_statement`]; the schema name is validated and the id is a UUID, so
/// nothing in it comes from a request. A tenant being moved gets read-only transactions: a
/// write then would be left behind on the old placement.
pub(crate) fn begin_statement(id: Uuid, schema: &SchemaName, moving: bool) -> Arc<str> {
    let read_only = if moving {
        "; SET LOCAL transaction_read_only = on"
    } else {
        ""
    };
    format!(
        "BEGIN; SET LOCAL search_path TO {}; SET LOCAL app.tenant_id = '{id}'{read_only}",
        schema.quoted()
    )
    .into()
}
