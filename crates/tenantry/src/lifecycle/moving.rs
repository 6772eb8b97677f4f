//! Moving a tenant to another placement (shared, schema or database isolation, on any server).
//!
//! A move, in order:
//! 1. opens a transaction in the tenant's schema, held until the switch, and takes a
//!    per-tenant advisory lock in it, so only one move of a tenant runs (the lock ends with
//!    the transaction, so it holds through a transaction pooler and ends if this process
//!    dies);
//! 2. records the move in the catalog (`move_state`: from, to) and marks the tenant
//!    `moving`: its requests are read-only and writes get 503 with `Retry-After`;
//! 3. locks the source tables against writes (waiting for writes already under way);
//! 4. builds the target under names of this move's own and copies the rows there with their
//!    ids, in batches (memory stays the same whatever the tenant holds), checking each
//!    table's count;
//! 5. switches the catalog row to the target in one transaction (which, when the target is in
//!    the catalog's database, is the very transaction that wrote it), leaving in `move_state`
//!    that the old data is still to be removed;
//! 6. removes the old data, then clears `move_state`.
//!
//! A failure before the switch drops what the move built and clears the mark: the tenant is
//! where it was, with its data unchanged. A move whose process died leaves `move_state`;
//! [`Tenancy::resume_move`] finishes it and [`Tenancy::abort_move`] undoes it, dropping only a
//! target marked as made for this tenant.

use std::time::Duration;

use sqlx::{PgConnection, Postgres};

use tokio::sync::Mutex;

use super::commit::Provision;
use crate::catalog::{CatalogTx, TenantDetails};
use crate::db_server::DbServerName;
use crate::error::{Error, PgOnly};
use crate::layout::{Layout, Tables, TxRoute, begin_in};
use crate::migrate::{Applied, Migrations, applied};
use crate::pooler;
use crate::pools::{Access, PoolLease};
use crate::rows;
use crate::safe_transaction::SafeTransaction;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{IsolationMode, MoveState, MoveStep, Tenant};

/// Where a tenant is to be moved.
#[derive(Debug, Clone)]
pub struct MoveTarget {
    /// The isolation to move to.
    pub isolation: IsolationMode,
    /// A registered server for schema and database isolation; the catalog's own when absent.
    pub server: Option<DbServerName>,
}

/// A step of a move, where a test injects a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum MoveStage {
    /// The catalog marks the tenant as moving.
    Marked,
    /// The target is built (in the catalog's transaction when the target is there).
    Built,
    /// The rows are written to the target, before the switch.
    Copied,
    /// The catalog row is switched, before its transaction commits.
    Switching,
    /// The switch is committed; the old data is not removed yet.
    Switched,
}

/// A fault a test injects into a move (see `Tenancy::move_tenant_failing`, feature
/// `testing`). Without that feature nothing can name it, and no move is ever failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum MoveFault {
    /// An error at this stage: the move undoes itself.
    Fail(MoveStage),
    /// The process dies at this stage: nothing more runs, no undo.
    Crash(MoveStage),
}

impl MoveFault {
    fn crash(fault: Option<Self>) -> bool {
        matches!(fault, Some(Self::Crash(_)))
    }
}

fn inject(fault: Option<MoveFault>, at: MoveStage) -> Result<(), Error> {
    match fault {
        Some(MoveFault::Fail(s) | MoveFault::Crash(s)) if s == at => {
            Err(Error::Incomplete(format!("injected fault at {at:?}")))
        }
        _ => Ok(()),
    }
}

/// Second key of the advisory lock a move holds ("move").
const MOVE_LOCK: i32 = 0x6d6f_7665;

fn interrupted(slug: &Slug) -> Error {
    Error::Invalid {
        field: "tenant",
        message: format!(
            "a move of '{slug}' was interrupted; finish it with `tenants move {slug} --resume` \
             or undo it with `tenants move {slug} --abort`"
        ),
    }
}

/// A transaction in the source's schema, holding the tenant's move lock, and the lease
/// that keeps the source's pool open meanwhile.
struct Source {
    tx: SafeTransaction<Postgres>,
    _lease: PoolLease,
}

impl Tenancy {
    /// Opens a transaction in `source`'s schema and takes the tenant's move lock in it:
    /// `None` if a move holds it. The lock lives in the source's database, where every move
    /// of the tenant from there takes it, and ends with the transaction (so it holds through
    /// a transaction pooler, and ends with a dead process's connection).
    async fn move_lock(&self, source: &Tenant) -> Result<Option<Source>, Error> {
        let TxRoute { pool, .. } = self.transaction(source, Access::Owner).await?;
        let mut tx = begin_in(pool.pg()?, &source.placement.schema).await?;
        let locked: bool =
            pooler::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
                .bind(MOVE_LOCK)
                .bind(source.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        Ok(locked.then_some(Source { tx, _lease: pool }))
    }

    /// The tenant's move lock for an interrupted move: where its data is read from (the
    /// source until the switch, the target after it).
    async fn lock_for(&self, tenant: &Tenant, state: &MoveState) -> Result<Option<Source>, Error> {
        match state.switched {
            true => self.move_lock(tenant).await,
            false => self.move_lock(&as_step(tenant, &state.from)).await,
        }
    }

    /// Moves the tenant to `to`; see the module documentation for the steps and guarantees.
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
    /// use tenantry::lifecycle::MoveTarget;
    /// use tenantry::{IsolationMode, NewTenant, Slug};
    ///
    /// let thor = Slug::parse("thor")?;
    /// tenancy.create_tenant(NewTenant::new(thor.clone(), IsolationMode::Shared)).await?;
    /// let to = MoveTarget { isolation: IsolationMode::Schema, server: None };
    /// let moved = tenancy.move_tenant(&thor, to).await?;
    /// assert_eq!(moved.tenant.isolation, IsolationMode::Schema);
    /// # Ok(()) }
    /// ```
    pub async fn move_tenant(&self, slug: &Slug, to: MoveTarget) -> Result<TenantDetails, Error> {
        self.move_with(slug, to, None).await
    }

    /// [`Tenancy::move_tenant`] with a fault injected.
    #[cfg(feature = "testing")]
    pub async fn move_tenant_failing(
        &self,
        slug: &Slug,
        to: MoveTarget,
        fault: MoveFault,
    ) -> Result<TenantDetails, Error> {
        self.move_with(slug, to, Some(fault)).await
    }

    /// The tenant's move, if one was interrupted: recorded, but no move runs.
    pub async fn interrupted_move(&self, slug: &Slug) -> Result<Option<MoveState>, Error> {
        let tenant = self.catalog().details(slug).await?.tenant;
        let Some(state) = tenant.move_state.clone() else {
            return Ok(None);
        };
        self.postgres_for(PgOnly::Moving)?;
        match self.lock_for(&tenant, &state).await? {
            Some(lock) => {
                lock.tx.rollback().await?;
                Ok(Some(state))
            }
            None => Ok(None),
        }
    }

    /// Finishes an interrupted move: removes the old data if the catalog had switched,
    /// otherwise drops what the move had built and moves the tenant again.
    pub async fn resume_move(&self, slug: &Slug) -> Result<TenantDetails, Error> {
        let state = self.discard_target(slug).await?;
        if !state.switched {
            let to = MoveTarget {
                isolation: state.to.isolation,
                server: state.to.server,
            };
            return self.move_tenant(slug, to).await;
        }
        self.catalog().details(slug).await
    }

    /// Undoes an interrupted move: drops what it had built and leaves the tenant where it
    /// was. A move whose catalog switch had committed cannot be undone (the tenant may have
    /// written there since); it is finished instead.
    pub async fn abort_move(&self, slug: &Slug) -> Result<TenantDetails, Error> {
        self.discard_target(slug).await?;
        self.catalog().details(slug).await
    }

    /// Under the move lock: the old data removed if the move had switched, otherwise the
    /// target dropped if it was made for this tenant; the move state cleared. Returns it.
    async fn discard_target(&self, slug: &Slug) -> Result<MoveState, Error> {
        self.postgres_for(PgOnly::Moving)?;
        let tenant = self.catalog().details(slug).await?.tenant;
        let Some(state) = tenant.move_state.clone() else {
            return Err(Error::Invalid {
                field: "tenant",
                message: format!("'{slug}' has no interrupted move"),
            });
        };
        let Some(guard) = self.lock_for(&tenant, &state).await? else {
            return Err(Error::Moving(slug.to_string()));
        };
        if state.switched {
            // Dropping the old data must not wait on a lock of our own there.
            guard.tx.rollback().await?;
            self.remove_old(&tenant, &state).await?;
        } else {
            let built = as_step(&tenant, &state.to);
            self.layout(&built)?.discard(self.cx(), &built).await?;
            let mut tx = self.catalog().begin().await?;
            tx.end_move(&tenant).await?;
            tx.commit().await?;
            guard.tx.rollback().await?;
        }
        self.catalog().invalidate();
        Ok(state)
    }

    async fn move_with(
        &self,
        slug: &Slug,
        to: MoveTarget,
        fault: Option<MoveFault>,
    ) -> Result<TenantDetails, Error> {
        self.postgres_for(PgOnly::Moving)?;
        let tenant = self.catalog().details(slug).await?.tenant;
        check_target(&tenant, &to, self.migrations())?;
        let target = self.layout_of(to.isolation)?;
        let mut placement = target.place(&tenant.slug, tenant.id, to.server.as_ref(), true)?;
        if let Some(server) = &to.server {
            placement.server_url = Some(self.db_servers()?.url(server).await?);
        }
        let Some(mut source) = self.move_lock(&tenant).await? else {
            return Err(Error::Moving(slug.to_string()));
        };
        // Read again under the lock: another move may have finished meanwhile.
        let now = self.catalog().details(slug).await?.tenant;
        if now.move_state.is_some() || now.placement != tenant.placement {
            source.tx.rollback().await?;
            return Err(match now.move_state {
                Some(_) => interrupted(slug),
                None => Error::Moving(slug.to_string()),
            });
        }
        let state = MoveState {
            from: MoveStep::of(tenant.isolation, &tenant.placement),
            to: MoveStep::of(to.isolation, &placement),
            switched: false,
        };
        let moved = Tenant {
            isolation: to.isolation,
            placement,
            ..tenant.clone()
        };
        let mut tx = self.catalog().begin().await?;
        tx.start_move(&tenant, &state).await?;
        tx.commit().await?;
        self.catalog().invalidate();
        let switched = self
            .copy_and_switch(&tenant, &moved, target, (&state, fault), &mut source.tx)
            .await;
        if switched.is_err() && !MoveFault::crash(fault) {
            let mut tx = self.catalog().begin().await?;
            tx.end_move(&tenant).await?;
            tx.commit().await?;
        }
        // The lock ends with its transaction, as it would with a dead process's connection;
        // the old data is dropped after it, so that nothing waits on a lock of ours there.
        source.tx.rollback().await?;
        switched?;
        self.catalog().invalidate();
        inject(fault, MoveStage::Switched)?;
        let switched = MoveState {
            switched: true,
            ..state
        };
        self.remove_old(&tenant, &switched).await?;
        self.catalog().invalidate();
        self.cache().flush_tenant(tenant.id).await;
        self.catalog().details(slug).await
    }

    /// Steps 3 to 5: the rows copied to `moved`'s placement and the catalog switched to it.
    /// `source` is the transaction holding the move lock, in the tenant's schema.
    async fn copy_and_switch(
        &self,
        tenant: &Tenant,
        moved: &Tenant,
        target: &dyn Layout,
        (state, fault): (&MoveState, Option<MoveFault>),
        source: &mut PgConnection,
    ) -> Result<(), Error> {
        inject(fault, MoveStage::Marked)?;
        let from = &tenant.placement.schema;
        rows::hold_writes(source, from).await?;
        let switched = MoveState {
            switched: true,
            ..state.clone()
        };
        let fingerprint = self.migrations().tenant_fingerprint();
        let applied = applied(self.migrations());
        let schema = &moved.placement.schema;
        let tables = target.tables(&moved.placement);
        let source = Mutex::new(source);
        let provision = Provision {
            tenant: moved,
            fresh: true,
            undo: !MoveFault::crash(fault),
        };
        // The rows go where the tables are: into the catalog's transaction, or into the
        // target's own, committed before the catalog's opens.
        let open = async || {
            if let Tables::Outside(_) = tables {
                inject(fault, MoveStage::Built)?;
                let TxRoute { pool, .. } = self.transaction(moved, Access::Owner).await?;
                let mut tx = begin_in(pool.pg()?, schema).await?;
                let mut source = source.lock().await;
                rows::copy((&mut **source, from), (&mut tx, schema), tenant.id).await?;
                inject(fault, MoveStage::Copied)?;
                tx.commit().await?;
            }
            self.catalog().begin().await
        };
        let record = async |tx: &mut CatalogTx, _: &Applied| {
            if let Tables::InCatalog(_) = tables {
                inject(fault, MoveStage::Built)?;
                let conn = tx
                    .postgres()
                    .ok_or_else(|| Error::Incomplete("no catalog".into()))?;
                let mut source = source.lock().await;
                rows::copy((&mut **source, from), (conn, schema), tenant.id).await?;
                inject(fault, MoveStage::Copied)?;
            }
            tx.switch(moved, &switched, fingerprint, &applied).await?;
            inject(fault, MoveStage::Switching)
        };
        self.commit(target, provision, open, record).await?;
        Ok(())
    }

    /// Step 6: removes the data at the old placement, now that the catalog points elsewhere,
    /// and clears the move state.
    async fn remove_old(&self, tenant: &Tenant, state: &MoveState) -> Result<(), Error> {
        let old = as_step(tenant, &state.from);
        let removed = async {
            let layout = self.layout(&old)?;
            // Requests still finishing on the old placement (they will roll back) may
            // deadlock with the drop; PostgreSQL then aborts one side, and the drop is tried
            // again, as `--resume` would.
            let mut attempt = 1;
            loop {
                match self.drop_tables(layout, &old).await {
                    Err(Error::Database(e)) if is_deadlock(&e) && attempt < 5 => {
                        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                        attempt += 1;
                    }
                    done => break done?,
                }
            }
            let mut tx = self.catalog().begin().await?;
            tx.end_move(tenant).await?;
            tx.commit().await
        };
        removed.await.map_err(|e| Error::Unfinished {
            done: format!("tenant '{}' has moved", tenant.slug),
            left: "its old data could not be removed".into(),
            remedy: "run `tenants move SLUG --resume` to try again",
            source: Box::new(e),
        })
    }
}

/// The tenant as it is (or would be) at one end of a move.
fn as_step(tenant: &Tenant, step: &MoveStep) -> Tenant {
    Tenant {
        isolation: step.isolation,
        placement: step.placement(),
        ..tenant.clone()
    }
}

fn check_target(tenant: &Tenant, to: &MoveTarget, migrations: &Migrations) -> Result<(), Error> {
    let invalid = |message: String| Error::Invalid {
        field: "move target",
        message,
    };
    if tenant.move_state.is_some() {
        return Err(interrupted(&tenant.slug));
    }
    if tenant.isolation == to.isolation && tenant.placement.server == to.server {
        return Err(invalid(format!(
            "tenant '{}' already has {} isolation there",
            tenant.slug,
            to.isolation.as_str()
        )));
    }
    if tenant.migration_version != migrations.tenant_version() {
        return Err(Error::Migration(format!(
            "tenant '{}' is not at the newest tenant migration; run migrate before moving it",
            tenant.slug
        )));
    }
    Ok(())
}

/// Whether PostgreSQL aborted the statement to break a deadlock.
fn is_deadlock(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01")
}
