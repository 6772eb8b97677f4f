//! The tenant lifecycle: create, update (rename, suspend, resume, settings), domains, delete.
//!
//! Each operation is the catalog's transaction around the layout's call: what lives in the
//! catalog's database changes in that very transaction (PostgreSQL DDL is transactional);
//! what lives elsewhere is committed first and undone if the catalog then fails. Either way
//! it happens entirely or not at all.

use uuid::Uuid;

use super::commit::{Deprovision, Provision, Rename};
use crate::catalog::{CatalogTx, TenantDetails};
use crate::db_server::DbServerName;
use crate::error::Error;
#[cfg(feature = "postgres")]
use crate::error::PgOnly;
use crate::host::HostName;
use crate::migrate::Applied;
#[cfg(feature = "postgres")]
use crate::migrate::template::{drop_template, templates_of};
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, Placement, Tenant, TenantStatus};

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The tenant's slug.
    pub slug: Slug,
    /// Display name; the slug when absent.
    pub name: Option<String>,
    /// Domains besides the primary `<slug>.<base domain>`.
    pub domains: Vec<HostName>,
    /// The registered server to place the tenant on; the catalog's own database when absent.
    pub server: Option<DbServerName>,
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
    /// A new display name.
    pub name: Option<String>,
    /// A new slug renames the schema and the primary domain too.
    pub slug: Option<Slug>,
    /// A new status: suspended tenants' requests get 403.
    pub status: Option<TenantStatus>,
    /// Changes to the settings, a JSON object: the keys given replace the stored ones,
    /// `null` resets a key; checked against [`Tenancy::settings`].
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
    crate::settings::check_display_text(name).map_err(|message| Error::Invalid {
        field: "name",
        message,
    })?;
    Ok(name.to_owned())
}

impl Tenancy {
    /// The primary domain of a slug: `<slug>.<base domain>`.
    pub fn primary_domain(&self, slug: &Slug) -> String {
        format!("{slug}.{}", self.identification().base_domain)
    }

    /// A custom domain may not be the public site, nor sit under it: names below the base
    /// domain belong to the slugs they spell.
    pub(super) fn check_domain(&self, domain: &HostName) -> Result<(), Error> {
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

    /// Creates the tenant: its tables (as its isolation keeps them), catalog row and
    /// domains, all or nothing. Of two concurrent creates of one slug, one gets
    /// [`Error::SlugTaken`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let database = tenantry::testing::TestDatabase::create().await;
    /// # let url = database.url();
    /// # use sqlx::migrate::Migrator;
    /// # use tenantry::{AppRole, HostName, Identification, Migrations, Tenancy};
    /// #
    /// # let pool = sqlx::PgPool::connect_with(tenantry::connect_options(&url)?).await?;
    /// # let migrations = Migrations::new(Migrator::DEFAULT, sqlx::migrate!("./tests/migrations/tenant"))?;
    /// # tenantry::migrate_shared(&pool, &migrations, &AppRole::default()).await?;
    /// # let identification = Identification::new(HostName::parse("app.localhost")?);
    /// # let tenancy = Tenancy::connect(pool, identification, migrations).await?;
    /// use tenantry::{IsolationMode, NewTenant, Slug, TenantStatus, TenantUpdate};
    ///
    /// let thor = Slug::parse("thor")?;
    /// let created = tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Shared)).await?;
    /// assert_eq!(created.domains[0].domain, "thor.app.localhost");
    /// let suspend = TenantUpdate { status: Some(TenantStatus::Suspended), ..Default::default() };
    /// tenancy.update_tenant(&thor, suspend).await?;
    /// tenancy.delete_tenant(&thor).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_tenant(&self, new: NewTenant) -> Result<TenantDetails, Error> {
        self.create(new, TenantStatus::Active).await
    }

    /// Creates the tenant with `status` (a pending one, provisioned ahead of a signup).
    pub(super) async fn create(
        &self,
        new: NewTenant,
        status: TenantStatus,
    ) -> Result<TenantDetails, Error> {
        let name = validate_name(new.name.as_deref().unwrap_or(new.slug.as_str()))?;
        self.identification().tenant_may_take(&new.slug)?;
        for domain in &new.domains {
            self.check_domain(domain)?;
        }
        let layout = self.layout_of(new.isolation)?;
        let id = Uuid::new_v4();
        let placement = layout.place(&new.slug, id, new.server.as_ref(), false)?;
        #[cfg(feature = "postgres")]
        if let Some(server) = &new.server {
            // Fails early, before any change, if the server is unknown.
            self.db_servers()?.url(server).await?;
        }
        let tenant = Tenant {
            status,
            ..Tenant::new(id, new.slug.clone(), name, new.isolation, placement)
        };
        let fingerprint = self.catalog().fingerprint(self.migrations())?;
        let provision = Provision {
            tenant: &tenant,
            fresh: false,
            undo: true,
        };
        let open = async || {
            // The row first: of two creates of one slug, the second waits on it and fails
            // before it builds anything under the slug's names.
            let mut tx = self.catalog().begin().await?;
            tx.insert(&tenant).await?;
            let primary = self.primary_domain(&new.slug);
            tx.insert_domain(&tenant, &primary, true).await?;
            for domain in new.domains.iter().filter(|d| d.as_str() != primary) {
                tx.insert_domain(&tenant, domain.as_str(), false).await?;
            }
            Ok(tx)
        };
        let record = async |tx: &mut CatalogTx, applied: &Applied| {
            tx.record(&tenant, fingerprint, applied).await
        };
        self.commit(layout, provision, open, record).await?;
        self.catalog().invalidate();
        self.catalog().details_of(&new.slug, true).await
    }

    /// Applies `update` to the tenant with this slug: a new slug renames what carries it
    /// (schema, file) and the primary domain; all or nothing.
    pub async fn update_tenant(
        &self,
        slug: &Slug,
        update: TenantUpdate,
    ) -> Result<TenantDetails, Error> {
        let refused = match update.status {
            Some(TenantStatus::Pending) => {
                Some("a tenant is pending only from its creation until a signup takes it")
            }
            Some(TenantStatus::Deleted) => {
                Some("a tenant is deleted by deleting it, and brought back by restoring it")
            }
            _ => None,
        };
        if let Some(message) = refused {
            return Err(Error::Invalid {
                field: "status",
                message: message.into(),
            });
        }
        let new_slug = update.slug.clone().filter(|new| new != slug);
        if let Some(new) = &new_slug {
            self.identification().tenant_may_take(new)?;
        }
        let mut tx = self.catalog().begin().await?;
        let tenant = tx.lock(slug).await?;
        self.apply(tx, tenant, update).await
    }

    /// Applies `update` to `tenant`, which `tx` holds locked, and commits.
    pub(super) async fn apply(
        &self,
        mut tx: CatalogTx,
        tenant: Tenant,
        update: TenantUpdate,
    ) -> Result<TenantDetails, Error> {
        let name = update.name.as_deref().map(validate_name).transpose()?;
        let new_slug = update.slug.filter(|new| *new != tenant.slug);
        let settings = update
            .settings
            .map(|patch| self.settings().apply(&tenant.settings, &patch))
            .transpose()?;
        let layout = self.layout(&tenant)?;
        let status = update.status;
        #[cfg_attr(not(feature = "dedicated"), expect(unused_variables))]
        let renamed = match &new_slug {
            None => {
                tx.set(&tenant, name, status, settings).await?;
                tx.commit().await?;
                None
            }
            Some(new) => {
                let primary = self.primary_domain(new);
                // The catalog first: a taken slug or domain fails before anything is renamed.
                tx.rename(&tenant, new, &tenant.placement, &primary).await?;
                let rename = Rename {
                    tenant: &tenant,
                    to: new,
                };
                let record = async |tx: &mut CatalogTx, placement: &Placement| {
                    if *placement != tenant.placement {
                        tx.rename(&tenant, new, placement, &primary).await?;
                    }
                    tx.set(&tenant, name, status, settings).await
                };
                let placement = self.commit(layout, rename, async || Ok(tx), record).await?;
                Some(Tenant {
                    slug: new.clone(),
                    placement,
                    ..tenant.clone()
                })
            }
        };
        self.catalog().invalidate();
        self.cache().flush_tenant(tenant.id).await;
        // Suspended, or renamed (its primary domain with it): its server stops.
        #[cfg(feature = "dedicated")]
        if (status == Some(TenantStatus::Suspended) || renamed.is_some())
            && layout.own_server().is_some()
        {
            self.stop_instance(&tenant).await?;
        }
        let details = self
            .catalog()
            .details(new_slug.as_ref().unwrap_or(&tenant.slug))
            .await?;
        // Its server was started with the old name and settings.
        #[cfg(feature = "dedicated")]
        self.refresh_instance(&details.tenant).await;
        Ok(details)
    }

    /// The template databases this catalog made, by server (`None`: the catalog's own).
    #[cfg(feature = "postgres")]
    pub async fn templates(&self) -> Result<Vec<(Option<DbServerName>, String)>, Error> {
        let catalog = self.postgres_for(PgOnly::Templates)?.connect_options();
        let mut servers = vec![None];
        servers.extend(
            self.db_servers()?
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
    #[cfg(feature = "postgres")]
    pub async fn drop_templates(&self) -> Result<Vec<(Option<DbServerName>, String)>, Error> {
        let templates = self.templates().await?;
        for (server, name) in &templates {
            let pool = self.pools().for_server(server.as_ref()).await?;
            drop_template(&pool, name).await?;
        }
        Ok(templates)
    }

    /// What deleting `tenant` removes, for a person to confirm: its file, database or schema
    /// (and where), or its rows in the shared tables.
    pub fn what_deleting_drops(&self, tenant: &Tenant) -> Result<String, Error> {
        Ok(self.layout(tenant)?.describe(tenant))
    }

    /// Drops the tenant's schema, database or file with all its data (a shared-mode tenant's
    /// rows) and removes it from the catalog. Where the data is outside the catalog's
    /// database, the catalog goes first: a failure after it leaves orphaned data, never a
    /// tenant without its data.
    pub async fn delete_tenant(&self, slug: &Slug) -> Result<(), Error> {
        let mut tx = self.catalog().begin().await?;
        let tenant = tx.delete(slug).await?;
        let layout = self.layout(&tenant)?;
        let deprovision = Deprovision { tenant: &tenant };
        let record = async |_: &mut CatalogTx, _: &()| Ok(());
        self.commit(layout, deprovision, async || Ok(tx), record)
            .await?;
        self.catalog().invalidate();
        self.cache().flush_tenant(tenant.id).await;
        if let Some(files) = self.files() {
            // Its data is gone already; files left behind are kept by no one, so say so.
            if let Err(error) = files.delete_tenant(tenant.id).await {
                tracing::error!(%error, tenant = %tenant.slug, "a deleted tenant's files remain");
            }
        }
        Ok(())
    }

    /// The bytes the tenant's own tables or file take; `None` for a shared-mode tenant, whose
    /// rows sit among other tenants'.
    pub async fn tenant_size(&self, tenant: &Tenant) -> Result<Option<i64>, Error> {
        self.layout(tenant)?.size(self.cx(), tenant).await
    }

    /// Adds a (custom) domain to the tenant.
    pub async fn add_domain(&self, slug: &Slug, domain: &HostName) -> Result<(), Error> {
        self.check_domain(domain)?;
        let mut tx = self.catalog().begin().await?;
        let tenant = tx.lock(slug).await?;
        tx.insert_domain(&tenant, domain.as_str(), false).await?;
        tx.commit().await?;
        self.catalog().invalidate();
        #[cfg(feature = "dedicated")]
        self.restart_for_hosts(&tenant).await?;
        Ok(())
    }

    /// Removes a domain that is not the tenant's primary one, or withdraws its claim of one
    /// not verified yet.
    pub async fn remove_domain(&self, slug: &Slug, domain: &HostName) -> Result<(), Error> {
        let details = self.catalog().details(slug).await?;
        match details.domains.iter().find(|d| d.domain == domain.as_str()) {
            None => {
                return match self
                    .catalog()
                    .delete_claim(details.tenant.id, domain.as_str())
                    .await?
                {
                    true => Ok(()),
                    false => Err(Error::DomainNotFound(domain.to_string())),
                };
            }
            Some(d) if d.is_primary => return Err(Error::PrimaryDomain(domain.to_string())),
            Some(_) => {}
        }
        let mut tx = self.catalog().begin().await?;
        tx.remove_domain(&details.tenant, domain.as_str()).await?;
        tx.commit().await?;
        self.catalog().invalidate();
        #[cfg(feature = "dedicated")]
        self.restart_for_hosts(&details.tenant).await?;
        Ok(())
    }

    /// A tenant whose domains changed: its own server, which answers only for the domains it
    /// was started with, is stopped; the next request starts it with the new ones.
    #[cfg(feature = "dedicated")]
    pub(super) async fn restart_for_hosts(&self, tenant: &Tenant) -> Result<(), Error> {
        match self.layout(tenant)?.own_server() {
            Some(_) => self.stop_instance(tenant).await,
            None => Ok(()),
        }
    }
}
