//! Changes made on someone's behalf (an operator in the console, a platform-API token): run
//! to their end and recorded in the catalog's audit log, whatever their outcome.

use std::future::Future;

use crate::error::Error;
use crate::tenancy::Tenancy;

impl Tenancy {
    /// Runs `change` as a task of its own, so that a caller who stops waiting (a client
    /// hanging up) does not stop it halfway, then records in the audit log that `actor` did
    /// `action` to `target`, and how it ended. A record that cannot be written is logged as
    /// an error; the change's own result is returned either way.
    pub async fn audited<T: Send + 'static>(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        change: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let catalog = self.catalog().clone();
        let (actor, action, target) = (actor.to_owned(), action.to_owned(), target.to_owned());
        tokio::spawn(async move {
            let result = change.await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(error) => format!("failed: {error}"),
            };
            if let Err(error) = catalog
                .audit(&actor, &action, Some(&target), &outcome)
                .await
            {
                tracing::error!(%error, %actor, %action, %target, "an audit record was not written");
            }
            result
        })
        .await
        .unwrap_or_else(|joined| std::panic::resume_unwind(joined.into_panic()))
    }
}
