//! Long operators' actions (a move, migrating every tenant) run as tasks of this process: each
//! has a page whose lines arrive, while it runs, as server-sent events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use tokio::sync::watch;

use super::{Console, ConsoleError, Operator};

/// How many finished tasks are kept to be looked at; the oldest go first.
const KEPT: usize = 100;

/// What a task has said so far, and how it ended.
#[derive(Debug, Clone, Default)]
pub(super) struct TaskState {
    title: String,
    lines: Vec<String>,
    /// `None` while it runs; then whether it succeeded.
    ok: Option<bool>,
}

/// The tasks of this process, by id.
#[derive(Default)]
pub(super) struct Tasks {
    next: AtomicU64,
    running: Mutex<HashMap<u64, watch::Receiver<TaskState>>>,
}

/// Where a task says how it goes.
pub(super) struct Progress(watch::Sender<TaskState>);

impl Progress {
    /// Adds a line to the task's page.
    pub(super) fn say(&self, line: impl Into<String>) {
        self.0.send_modify(|state| state.lines.push(line.into()));
    }
}

impl Tasks {
    /// Runs `work` as a task titled `title`, to its end whoever watches; its id.
    pub(super) fn start<Work, Done>(&self, title: String, work: Work) -> u64
    where
        Work: FnOnce(Progress) -> Done,
        Done: Future<Output = Result<String, String>> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, receiver) = watch::channel(TaskState {
            title,
            ..TaskState::default()
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.len() >= KEPT
            && let Some(oldest) = running
                .iter()
                .filter(|(_, r)| r.borrow().ok.is_some())
                .map(|(id, _)| *id)
                .min()
        {
            running.remove(&oldest);
        }
        running.insert(id, receiver);
        let progress = Progress(sender);
        let sender = progress.0.clone();
        let done = work(progress);
        tokio::spawn(async move {
            let outcome = done.await;
            sender.send_modify(|state| {
                let (ok, line) = match outcome {
                    Ok(line) => (true, line),
                    Err(line) => (false, format!("Failed: {line}")),
                };
                state.lines.push(line);
                state.ok = Some(ok);
            });
        });
        id
    }

    fn get(&self, id: u64) -> Option<watch::Receiver<TaskState>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(&id).cloned()
    }
}

/// A 303 to the page of task `id`.
pub(super) fn to_task(id: u64) -> Response {
    Redirect::to(&format!("/console/tasks/{id}")).into_response()
}

/// Says every second that `work` is still running, with how long it has run, until it ends.
pub(super) async fn ticking<T>(progress: &Progress, work: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = ticks.tick() => progress.say(format!("… still running ({} s)", started.elapsed().as_secs())),
        }
    }
}

#[derive(Template)]
#[template(path = "console/task.html")]
struct TaskPage {
    operator: String,
    csrf: String,
    id: u64,
    state: TaskState,
}

/// `GET /console/tasks/{id}`: what the task said so far; the page's script appends the rest.
pub(super) async fn page(
    State(console): State<Console>,
    operator: Operator,
    Path(id): Path<u64>,
) -> Result<Response, ConsoleError> {
    let state = console
        .tasks
        .get(id)
        .ok_or(ConsoleError::NotFound)?
        .borrow()
        .clone();
    let page = TaskPage {
        operator: operator.name,
        csrf: operator.csrf,
        id,
        state,
    };
    Ok(crate::admin::page(StatusCode::OK, &page))
}

/// `GET /console/tasks/{id}/events`: the task's lines from the `from`th on, one `line`
/// event each as they come, then one `done` event (`ok` or `failed`) and the end.
pub(super) async fn events(
    State(console): State<Console>,
    _: Operator,
    Path(id): Path<u64>,
    axum::extract::Query(from): axum::extract::Query<From>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let receiver = console.tasks.get(id).ok_or(ConsoleError::NotFound)?;
    let stream = futures::stream::unfold(
        (receiver, from.from, false),
        |(mut receiver, sent, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let state = receiver.borrow_and_update().clone();
                if let Some(line) = state.lines.get(sent) {
                    let event = Event::default().event("line").data(line);
                    return Some((Ok(event), (receiver, sent + 1, false)));
                }
                if let Some(ok) = state.ok {
                    let outcome = if ok { "ok" } else { "failed" };
                    let event = Event::default().event("done").data(outcome);
                    return Some((Ok(event), (receiver, sent, true)));
                }
                if receiver.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Which line the events start at (the page has the ones before).
#[derive(serde::Deserialize)]
pub(super) struct From {
    #[serde(default)]
    from: usize,
}

/// `GET /console/task.js`: the task page's script, which follows the events.
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../templates/console/task.js"),
    )
        .into_response()
}
