//! [`Every`]: a round of background work repeated on a timer, stopped when dropped.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// Runs a round now and then every `period` (a late round delays the next), logging a
/// failed round as `what` and going on; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Every {
    task: tokio::task::JoinHandle<()>,
}

impl Every {
    pub(crate) fn start<Round, Done>(period: Duration, what: &'static str, mut round: Round) -> Self
    where
        Round: FnMut() -> Done + Send + 'static,
        Done: Future<Output = Result<(), Error>> + Send,
    {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = round().await {
                    tracing::warn!(%error, "{what} failed");
                }
            }
        });
        Self { task }
    }
}

impl Drop for Every {
    fn drop(&mut self) {
        self.task.abort();
    }
}
