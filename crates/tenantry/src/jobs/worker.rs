//! [`Worker`]: takes jobs from the tenants that have them, in turn, and runs each in its
//! tenant's context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use uuid::Uuid;

use super::queue::{self, Claimed};
use super::registry::JobContext;
use super::source::Source;
use super::{JobError, Jobs, now_ms, schedule};
use crate::catalog::DueTenant;
use crate::error::Error;
use crate::lifecycle::Every;
use crate::tenancy::Tenancy;
use crate::tenant::{Tenant, TenantStatus};

/// How a [`Worker`] shares itself out.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs it runs at once.
    pub concurrency: usize,
    /// Jobs of one tenant running at once, across every worker: the bound on how much of
    /// the workers one tenant's backlog takes.
    pub per_tenant: usize,
    /// How often it looks for work another process enqueued (this process's own wakes it).
    pub poll: Duration,
    /// How long a job may run; a worker that dies leaves its job to another after this.
    pub lease: Duration,
    /// The wait before the first retry, doubling for each later one up to an hour.
    pub backoff: Duration,
    /// How often it reads every tenant's queue, to find jobs whose commit could not tell the
    /// catalog (a process killed in between).
    pub sweep: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            per_tenant: 2,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(300),
            backoff: Duration::from_secs(10),
            sweep: Duration::from_secs(600),
        }
    }
}

/// Runs the jobs of every tenant this process serves (not dedicated tenants: their own
/// servers run theirs). Many workers, in many processes, share the queues safely. Dropped,
/// it stops at once and its running jobs roll back, to run again when their leases end;
/// [`stop`](Self::stop) lets them finish.
#[derive(Debug)]
pub struct Worker {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    _sweep: Every,
}

struct Shared<S> {
    source: Source,
    jobs: Jobs<S>,
    options: WorkerOptions,
    /// What this worker writes in `locked_by`.
    name: String,
    permits: Arc<Semaphore>,
    /// Jobs of each tenant this worker is running.
    running: Mutex<HashMap<Uuid, usize>>,
}

/// Why an attempt did not complete.
enum Outcome {
    /// The job failed: counted.
    Failed(JobError),
    /// The job's tenant moved or its lease passed to another worker: not counted.
    Lost,
}

impl Worker {
    /// Starts a worker running `jobs` for `tenancy`'s tenants.
    pub fn start<S: Clone + Send + Sync + 'static>(
        tenancy: Tenancy,
        jobs: Jobs<S>,
        options: WorkerOptions,
    ) -> Self {
        Self::start_on(Source::Catalog(tenancy), jobs, options)
    }

    /// Starts a worker running `jobs` for the tenants `source` has.
    pub(crate) fn start_on<S: Clone + Send + Sync + 'static>(
        source: Source,
        jobs: Jobs<S>,
        options: WorkerOptions,
    ) -> Self {
        let options = WorkerOptions {
            concurrency: options.concurrency.max(1),
            per_tenant: options.per_tenant.max(1),
            ..options
        };
        let name = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(options.concurrency)),
            source,
            jobs,
            options: options.clone(),
            name,
            running: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let sweeping = shared.clone();
        let sweep = Every::start(options.sweep, "the job sweep", move || {
            let shared = sweeping.clone();
            async move { shared.source.sweep().await }
        });
        Self {
            task: Some(tokio::spawn(shared.run(stopped))),
            stop,
            _sweep: sweep,
        }
    }

    /// Stops taking jobs and waits for those running to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Shared<S> {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut served = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        while !*stopped.borrow() {
            let (claimed, more) = match self.round(&mut served, &mut running).await {
                Ok(round) => round,
                Err(error) => {
                    tracing::warn!(%error, "a worker's round failed");
                    (0, false)
                }
            };
            while running.try_join_next().is_some() {}
            if (claimed == 0 && !more) || self.permits.available_permits() == 0 {
                tokio::select! {
                    () = self.source.ready().notified() => {}
                    () = tokio::time::sleep(self.options.poll) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
        running.join_all().await;
    }

    /// Takes a job from each due tenant in turn, those this worker served longest ago first,
    /// while it has room: how many it took, and whether more tenants may be due than it read
    /// (hints it found stale are settled as it goes, so the next round reads further).
    async fn round(
        self: &Arc<Self>,
        served: &mut HashMap<Uuid, Instant>,
        running: &mut tokio::task::JoinSet<()>,
    ) -> Result<(usize, bool), Error> {
        let free = self.permits.available_permits();
        if free == 0 {
            return Ok((0, false));
        }
        let limit = i64::try_from(free * 4).unwrap_or(i64::MAX).max(16);
        let mut due = self.source.due(now_ms(), limit).await?;
        let more = i64::try_from(due.len()).unwrap_or(i64::MAX) >= limit;
        due.sort_by_key(|d| served.get(&d.tenant_id).copied());
        let mut claimed = 0;
        for seen in due {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                break;
            };
            if self.running_of(seen.tenant_id) >= self.options.per_tenant {
                continue;
            }
            match self.claim(seen).await {
                Ok(Some((tenant, job))) => {
                    served.insert(tenant.id, Instant::now());
                    claimed += 1;
                    self.source.served(tenant.id, now_ms()).await?;
                    running.spawn(self.clone().execute(tenant, job, permit));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, tenant = %seen.tenant_id, "could not take a job")
                }
            }
        }
        Ok((claimed, more))
    }

    fn running_of(&self, tenant: Uuid) -> usize {
        let running = self.running.lock().expect("no panic holds this lock");
        running.get(&tenant).copied().unwrap_or(0)
    }

    fn count(&self, tenant: Uuid, started: bool) {
        let mut running = self.running.lock().expect("no panic holds this lock");
        let count = running.entry(tenant).or_default();
        match started {
            true => *count += 1,
            false => *count = count.saturating_sub(1),
        }
        if *count == 0 {
            running.remove(&tenant);
        }
    }

    /// Takes the tenant's next ready job, committing the lease; with none ready, moves the
    /// tenant's hint to when it next has work.
    async fn claim(&self, seen: DueTenant) -> Result<Option<(Arc<Tenant>, Claimed)>, Error> {
        let source = &self.source;
        let Some(tenant) = source.current(seen.tenant_id).await? else {
            return Ok(None);
        };
        if tenant.status != TenantStatus::Active || tenant.moving {
            return Ok(None);
        }
        let tenant = Arc::new(tenant);
        let mut tx = source.begin(tenant.clone()).await?;
        let now = now_ms();
        let lease_end = now.saturating_add(millis(self.options.lease));
        let per_tenant = self.options.per_tenant;
        queue::lock(&mut tx, tenant.id).await?;
        schedule::fire_due(&mut tx, now).await?;
        match queue::claim(&mut tx, &self.name, now, lease_end, per_tenant).await? {
            Some(job) => {
                if source.changed_since(&tenant).await? {
                    tx.rollback().await?;
                    return Ok(None);
                }
                tx.commit().await?;
                Ok(Some((tenant, job)))
            }
            None => {
                let next = queue::next_due(&mut tx).await?;
                tx.commit().await?;
                if next.is_none_or(|next| next > now) {
                    source.settle(seen, next).await?;
                }
                Ok(None)
            }
        }
    }

    /// Runs one attempt of `job` in a task of its own (a panic is a failed attempt), then
    /// records a failure.
    async fn execute(
        self: Arc<Self>,
        tenant: Arc<Tenant>,
        job: Claimed,
        _permit: OwnedSemaphorePermit,
    ) {
        self.count(tenant.id, true);
        let attempt = tokio::spawn(self.clone().attempt(tenant.clone(), job.clone()));
        let failed = match attempt.await {
            Ok(Ok(())) => None,
            Ok(Err(Outcome::Failed(error))) => Some(error),
            Ok(Err(Outcome::Lost)) => None,
            Err(join) if join.is_panic() => Some(JobError::new("the job panicked")),
            Err(_) => None,
        };
        if let Some(error) = failed
            && let Err(recording) = self.record_failure(&tenant, &job, &error).await
        {
            tracing::warn!(error = %recording, job = job.id, "could not record a failed job");
        }
        self.count(tenant.id, false);
        if let Err(error) = self.source.finished(tenant.id, now_ms()).await {
            tracing::warn!(%error, tenant = %tenant.slug, "could not mark a tenant's jobs due");
        }
        self.source.ready().notify_one();
    }

    /// Runs the job in a transaction in its tenant's context and marks it done in the same
    /// transaction, checking that the tenant did not move meanwhile.
    async fn attempt(self: Arc<Self>, tenant: Arc<Tenant>, job: Claimed) -> Result<(), Outcome> {
        let failed = |error: Error| Outcome::Failed(JobError::new(error.to_string()));
        let Some(run) = self.jobs.run_of(&job.kind) else {
            return Err(Outcome::Failed(JobError::new(format!(
                "no job type '{}' is registered in this worker",
                job.kind
            ))));
        };
        let tx = self.source.begin(tenant.clone()).await.map_err(failed)?;
        let mut cx = JobContext {
            tx,
            state: self.jobs.state().clone(),
            id: job.id,
            attempt: u32::try_from(job.attempts).unwrap_or(0),
            flush_cache: false,
            files: self.source.files(tenant.id).map_err(|e| e.to_string()),
        };
        match tokio::time::timeout(self.options.lease, run(&job.payload, &mut cx)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(Outcome::Failed(error)),
            Err(_) => {
                return Err(Outcome::Failed(JobError::new(format!(
                    "it ran past its lease of {} s",
                    self.options.lease.as_secs()
                ))));
            }
        }
        let (mut tx, flush_cache) = (cx.tx, cx.flush_cache);
        let held = queue::complete(&mut tx, job.id, &self.name, now_ms())
            .await
            .map_err(failed)?;
        if !held || self.source.changed_since(&tenant).await.map_err(failed)? {
            let _ = tx.rollback().await;
            self.release_moved(&tenant, &job).await;
            return Err(Outcome::Lost);
        }
        tx.commit().await.map_err(|e| failed(e.into()))?;
        if flush_cache {
            self.source.flush_cache(tenant.id).await;
        }
        Ok(())
    }

    /// After the tenant moved under a job, gives the job back to the queue where the tenant
    /// is now (once the move has finished), so it need not wait for its lease to run again.
    async fn release_moved(&self, tenant: &Tenant, job: &Claimed) {
        let released = async {
            let deadline = Instant::now() + self.options.lease;
            let now = loop {
                match self.source.current(tenant.id).await? {
                    None => return Ok(()),
                    Some(now) if !now.moving => break now,
                    Some(_) if Instant::now() > deadline => return Ok(()),
                    Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let mut tx = self.source.begin(Arc::new(now)).await?;
            queue::release(&mut tx, job.id, &self.name).await?;
            tx.enqueued(now_ms());
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(error) = released.await {
            tracing::warn!(%error, job = job.id, "could not release a job after a move");
        }
    }

    /// Queues the job again after its backoff, or, after its last attempt or a permanent
    /// failure, marks it dead.
    async fn record_failure(
        &self,
        tenant: &Tenant,
        job: &Claimed,
        error: &JobError,
    ) -> Result<(), Error> {
        let now = now_ms();
        let retry_at = (!error.is_permanent() && job.attempts < job.max_attempts)
            .then(|| now.saturating_add(millis(backoff(self.options.backoff, job.attempts))));
        tracing::warn!(tenant = %tenant.slug, job = job.id, kind = %job.kind, %error,
            dead = retry_at.is_none(), "a job failed");
        let Some(current) = self.source.current(tenant.id).await? else {
            return Ok(());
        };
        let mut tx = self.source.begin(Arc::new(current)).await?;
        queue::fail(
            &mut tx,
            job.id,
            &self.name,
            &error.to_string(),
            retry_at,
            now,
        )
        .await?;
        if let Some(at) = retry_at {
            tx.enqueued(at);
        }
        Ok(tx.commit().await?)
    }
}

/// The wait before attempt `attempts + 1`: `base` doubled for each attempt after the first,
/// at most an hour.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    base.saturating_mul(1 << doublings)
        .min(Duration::from_secs(3600))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into())
}
