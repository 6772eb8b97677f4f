//! [`Jobs`]: the job types an app runs, and the [`JobContext`] a job runs in.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use futures::future::BoxFuture;

use super::{Enqueue, Job, JobError};
use crate::error::Error;
use crate::files::TenantFiles;
use crate::tenant::Tenant;
use crate::transaction::TenantTransaction;

type Run<S> = for<'a> fn(&'a str, &'a mut JobContext<S>) -> BoxFuture<'a, Result<(), JobError>>;

/// The job types a worker runs, by [`Job::KIND`], with the app's state they are given.
pub struct Jobs<S> {
    runs: HashMap<&'static str, Run<S>>,
    state: S,
}

impl<S: Clone + Send + Sync + 'static> Jobs<S> {
    /// No job types yet; every job is given `state`.
    pub fn new(state: S) -> Self {
        Self {
            runs: HashMap::new(),
            state,
        }
    }

    /// Runs jobs of type `J`.
    ///
    /// # Panics
    /// If another type registered the same [`Job::KIND`].
    #[must_use]
    pub fn register<J: Job<State = S>>(mut self) -> Self {
        let previous = self.runs.insert(J::KIND, run::<J>);
        assert!(previous.is_none(), "two job types are named '{}'", J::KIND);
        self
    }

    pub(super) fn run_of(&self, kind: &str) -> Option<Run<S>> {
        self.runs.get(kind).copied()
    }

    pub(super) fn state(&self) -> &S {
        &self.state
    }
}

impl<S> std::fmt::Debug for Jobs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.runs.keys().collect();
        kinds.sort();
        f.debug_struct("Jobs").field("kinds", &kinds).finish()
    }
}

fn run<'a, J: Job>(
    payload: &'a str,
    cx: &'a mut JobContext<J::State>,
) -> BoxFuture<'a, Result<(), JobError>> {
    Box::pin(async move {
        let job: J = serde_json::from_str(payload)
            .map_err(|e| JobError::permanent(format!("its payload is not a {}: {e}", J::KIND)))?;
        job.run(cx).await
    })
}

/// What a running job has: a transaction in its tenant's context, which commits with the
/// job's completion (a job that fails or dies leaves no write behind), and the app's state.
/// It derefs to the [`TenantTransaction`]: `cx.query(...)`.
pub struct JobContext<S> {
    pub(super) tx: TenantTransaction,
    pub(super) state: S,
    pub(super) id: i64,
    pub(super) attempt: u32,
    pub(super) flush_cache: bool,
    pub(super) files: Result<TenantFiles, String>,
}

impl<S> JobContext<S> {
    /// The app's state, as given to [`Jobs::new`].
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The tenant the job is for.
    pub fn tenant(&self) -> &Tenant {
        self.tx.tenant()
    }

    /// The job's id in its tenant's queue.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The tenant's files; an error (failing the attempt) where no store is configured.
    pub fn files(&self) -> Result<&TenantFiles, JobError> {
        self.files.as_ref().map_err(|e| JobError::new(e.clone()))
    }

    /// Flushes the tenant's cache (what handlers' `TenantCache` holds) once the job's
    /// writes commit, so that no reader is served what they replaced.
    pub fn flush_cache(&mut self) {
        self.flush_cache = true;
    }

    /// Enqueues another job of the same tenant, committed with this one's completion.
    pub async fn enqueue<J: Job>(&mut self, job: Enqueue<'_, J>) -> Result<Option<i64>, Error> {
        job.send(&mut self.tx).await
    }
}

impl<S> Deref for JobContext<S> {
    type Target = TenantTransaction;

    fn deref(&self) -> &TenantTransaction {
        &self.tx
    }
}

impl<S> DerefMut for JobContext<S> {
    fn deref_mut(&mut self) -> &mut TenantTransaction {
        &mut self.tx
    }
}

impl<S> std::fmt::Debug for JobContext<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("tenant", &self.tx.tenant().slug)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
