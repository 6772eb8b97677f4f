//! The dashboard, and polls with their choices.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tenantry::{Db, TenantDb};

use super::{AdminError, AdminPath, CheckedForm, Chrome, Done, Site, Staff, done, page};
use crate::domain::Refused;
use crate::domain::choices::{self, ChoiceText};
use crate::domain::polls::{self, Question};

/// Polls per page of the list.
const PER_PAGE: i64 = 20;

/// A poll in a list.
#[derive(sqlx::FromRow)]
struct PollRow {
    id: i64,
    question: String,
    pub_date: chrono::DateTime<chrono::Utc>,
    choices: i64,
}

struct Counts {
    polls: i64,
    choices: i64,
    votes: i64,
    users: i64,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    counts: Counts,
    latest: Vec<PollRow>,
}

/// The columns of a [`PollRow`], before a filter and an order.
macro_rules! poll_rows {
    () => {
        "SELECT p.id, p.question, p.pub_date, \
         (SELECT count(*) FROM choices c WHERE c.poll_id = p.id) AS choices FROM polls p "
    };
}

/// Matches a question against the search pattern `$1`.
macro_rules! question_filter {
    () => {
        "WHERE lower(p.question) LIKE $1 ESCAPE '\\' "
    };
}

/// `GET /admin`: counts and the latest polls.
pub(super) async fn dashboard(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    let (polls, choices, votes, users) = db
        .query(
            "SELECT (SELECT count(*) FROM polls), (SELECT count(*) FROM choices), \
             (SELECT count(*) FROM votes), (SELECT count(*) FROM users)",
        )
        .fetch_one()
        .await?;
    let counts = Counts {
        polls,
        choices,
        votes,
        users,
    };
    let latest = db
        .query(concat!(
            poll_rows!(),
            "ORDER BY p.pub_date DESC, p.id DESC LIMIT 5"
        ))
        .fetch_all()
        .await?;
    Ok(page(
        StatusCode::OK,
        &Dashboard {
            chrome,
            counts,
            latest,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/polls.html")]
struct PollList {
    chrome: Chrome,
    polls: Vec<PollRow>,
    query: String,
    /// `query`, encoded for a link.
    query_param: String,
    page: i64,
    pages: i64,
    total: i64,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

/// `GET /admin/polls?q=...&page=N`: polls whose question contains `q` (any case), newest
/// first, [`PER_PAGE`] at a time.
pub(super) async fn list(
    staff: Staff,
    site: Site,
    RawQuery(raw): RawQuery,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    let query: ListQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let text = query.q.unwrap_or_default().trim().to_owned();
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{}%", escaped.to_lowercase());
    let total: i64 = db
        .query(concat!("SELECT count(*) FROM polls p ", question_filter!()))
        .bind(&pattern)
        .fetch_scalar()
        .await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page_number = query
        .page
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let polls = db
        .query(concat!(
            poll_rows!(),
            question_filter!(),
            "ORDER BY p.pub_date DESC, p.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(&pattern)
        .bind(PER_PAGE)
        .bind((page_number - 1) * PER_PAGE)
        .fetch_all()
        .await?;
    let query_param = serde_urlencoded::to_string([("", &text)])
        .map(|encoded| encoded.trim_start_matches('=').to_owned())
        .unwrap_or_default();
    Ok(page(
        StatusCode::OK,
        &PollList {
            chrome,
            polls,
            query: text,
            query_param,
            page: page_number,
            pages,
            total,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/poll_form.html")]
struct PollForm {
    chrome: Chrome,
    question: String,
    choices: String,
    /// What is wrong with the question, or with the choices.
    question_error: String,
    choices_error: String,
}

/// `GET /admin/polls/new`.
pub(super) async fn new(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(&site, &staff, &mut db).await?;
    Ok(page(
        StatusCode::OK,
        &PollForm {
            chrome,
            question: String::new(),
            choices: String::new(),
            question_error: String::new(),
            choices_error: String::new(),
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct NewPoll {
    #[serde(default)]
    question: String,
    #[serde(default)]
    choices: String,
}

/// `POST /admin/polls`: a poll by the staff user, with a choice per non-blank line, under
/// the same rules as the API (the question's length, the tenant's limit on choices).
pub(super) async fn create(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<NewPoll>,
) -> Result<Response, AdminError> {
    let refuse = async |db: &mut Db, field: Field, error: String| {
        let chrome = Chrome::for_staff(&site, &staff, db).await?;
        let (question_error, choices_error) = match field {
            Field::Question => (error, String::new()),
            Field::Choice => (String::new(), error),
        };
        let form = PollForm {
            chrome,
            question: form.question.clone(),
            choices: form.choices.clone(),
            question_error,
            choices_error,
        };
        Ok::<_, AdminError>(page(StatusCode::BAD_REQUEST, &form))
    };
    let question = match Question::parse(Some(form.question.clone())) {
        Ok(question) => question,
        Err(message) => return refuse(&mut db, Field::Question, message).await,
    };
    let id = polls::create(&mut db, question, staff.user_id, None)
        .await?
        .id;
    for line in form.choices.lines().filter(|line| !line.trim().is_empty()) {
        let added = match ChoiceText::parse(Some(line.to_owned())) {
            Ok(text) => choices::add(&mut db, id, text, &site.settings.app).await,
            Err(message) => Err(Refused::Field("choice_text", message)),
        };
        if let Err(refused) = added {
            // The 400 rolls the poll back with its choices.
            return refuse(&mut db, Field::Choice, message(refused)?).await;
        }
    }
    Ok(done(
        &site,
        &format!("/admin/polls/{id}"),
        Done::PollCreated,
    ))
}

/// Which field of a form a refusal is about: it is shown beside that field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Question,
    Choice,
}

/// What to tell the staff user about a refused change; a database error is the page's.
fn message(refused: Refused) -> Result<String, AdminError> {
    match refused {
        Refused::Field(_, message) => Ok(message),
        Refused::Database(error) => Err(error.into()),
    }
}

struct ChoiceRow {
    id: i64,
    text: String,
    votes: i64,
}

#[derive(sqlx::FromRow)]
struct PollHead {
    id: i64,
    question: String,
    pub_date: chrono::DateTime<chrono::Utc>,
    closes_at: Option<chrono::DateTime<chrono::Utc>>,
    closed: bool,
}

#[derive(Template)]
#[template(path = "admin/poll.html")]
struct PollPage {
    chrome: Chrome,
    poll: PollHead,
    choices: Vec<ChoiceRow>,
    total_votes: i64,
    /// Why a new question, or a new choice, was refused.
    question_error: String,
    choice_error: String,
}

/// `n` things, in words: `1 vote`, `2 votes`.
pub(super) fn count(n: i64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// The poll page, with `error` about a field (and `status`) after a refused change.
async fn poll_page(
    staff: &Staff,
    site: &Site,
    db: &mut Db,
    id: i64,
    (status, error): (StatusCode, Option<(Field, String)>),
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(site, staff, db).await?;
    let head: Option<PollHead> = db
        .query("SELECT id, question, pub_date, closes_at, closed FROM polls WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?;
    let poll = head.ok_or(AdminError::NotFound)?;
    let id = poll.id;
    let rows: Vec<(i64, String, i64)> = db
        .query(
            "SELECT c.id, c.choice_text, (SELECT count(*) FROM votes v WHERE v.choice_id = c.id) \
             FROM choices c WHERE c.poll_id = $1 ORDER BY c.id",
        )
        .bind(id)
        .fetch_all()
        .await?;
    let choices: Vec<ChoiceRow> = rows
        .into_iter()
        .map(|(id, text, votes)| ChoiceRow { id, text, votes })
        .collect();
    let total_votes = choices.iter().map(|c| c.votes).sum();
    Ok(page(
        status,
        &PollPage {
            chrome,
            poll,
            choices,
            total_votes,
            question_error: error
                .as_ref()
                .filter(|(field, _)| *field == Field::Question)
                .map_or_else(String::new, |(_, message)| message.clone()),
            choice_error: error
                .filter(|(field, _)| *field == Field::Choice)
                .map_or_else(String::new, |(_, message)| message),
        },
    ))
}

/// `GET /admin/polls/{id}`: the poll, its choices and their votes as bars.
pub(super) async fn detail(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    poll_page(&staff, &site, &mut db, id, (StatusCode::OK, None)).await
}

#[derive(Deserialize)]
pub(super) struct QuestionForm {
    #[serde(default)]
    question: String,
}

/// `POST /admin/polls/{id}`: a new question.
pub(super) async fn edit(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<QuestionForm>,
) -> Result<Response, AdminError> {
    let question = match Question::parse(Some(form.question)) {
        Ok(question) => question,
        Err(message) => {
            let refused = (StatusCode::BAD_REQUEST, Some((Field::Question, message)));
            return poll_page(&staff, &site, &mut db, id, refused).await;
        }
    };
    if polls::save(&mut db, id, Some(question), polls::Closing::Keep)
        .await?
        .is_none()
    {
        return Err(AdminError::NotFound);
    }
    Ok(done(&site, &format!("/admin/polls/{id}"), Done::PollSaved))
}

/// A destructive form's confirmation: only `confirm=yes` acts.
#[derive(Deserialize)]
pub(super) struct Confirm {
    confirm: Option<String>,
}

impl Confirm {
    fn given(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    heading: &'static str,
    /// What goes, in words.
    consequence: String,
    action: String,
    button: &'static str,
    back: String,
}

/// The poll's question and its choices' and votes' counts.
async fn poll_summary(db: &mut Db, id: i64) -> Result<(String, i64, i64), AdminError> {
    let summary: Option<(String, i64, i64)> = db
        .query(
            "SELECT p.question, (SELECT count(*) FROM choices c WHERE c.poll_id = p.id), \
             (SELECT count(*) FROM votes v JOIN choices c ON c.id = v.choice_id \
              WHERE c.poll_id = p.id) FROM polls p WHERE p.id = $1",
        )
        .bind(id)
        .fetch_optional()
        .await?;
    summary.ok_or(AdminError::NotFound)
}

/// `GET /admin/polls/{id}/delete`: what deleting the poll removes, to confirm.
pub(super) async fn confirm_delete(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let (question, choices, votes) = poll_summary(&mut db, id).await?;
    let consequence = format!(
        "“{question}” is deleted with its {} and {}. This cannot be undone.",
        count(choices, "choice", "choices"),
        count(votes, "vote", "votes")
    );
    let what = ("Delete this poll?", consequence, "Delete the poll");
    let poll = format!("/admin/polls/{id}");
    ask(
        &staff,
        &site,
        &mut db,
        what,
        &format!("{poll}/delete"),
        &poll,
    )
    .await
}

/// The page that asks before `action` (a path under the mount) does what `what` says:
/// its heading, consequence and button; cancelling goes `back`.
async fn ask(
    staff: &Staff,
    site: &Site,
    db: &mut Db,
    (heading, consequence, button): (&'static str, String, &'static str),
    action: &str,
    back: &str,
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(site, staff, db).await?;
    let mount = &site.mount.0;
    let confirm = ConfirmPage {
        chrome,
        heading,
        consequence,
        action: format!("{mount}{action}"),
        button,
        back: format!("{mount}{back}"),
    };
    Ok(page(StatusCode::OK, &confirm))
}

/// `POST /admin/polls/{id}/delete`: with `confirm=yes`, deletes; without, asks first.
pub(super) async fn delete(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<Confirm>,
) -> Result<Response, AdminError> {
    if !form.given() {
        return confirm_delete(staff, site, AdminPath(id), db).await;
    }
    polls::delete(&mut db, id).await?;
    Ok(done(&site, "/admin/polls", Done::PollDeleted))
}

#[derive(Deserialize)]
pub(super) struct ChoiceForm {
    choice_text: Option<String>,
}

/// `POST /admin/polls/{id}/choices`: a new choice, within the tenant's limit.
pub(super) async fn add_choice(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<ChoiceForm>,
) -> Result<Response, AdminError> {
    polls::creator(&mut db, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    let added = match ChoiceText::parse(form.choice_text) {
        Ok(text) => choices::add(&mut db, id, text, &site.settings.app).await,
        Err(message) => Err(Refused::Field("choice_text", message)),
    };
    if let Err(refused) = added {
        let refused = (
            StatusCode::BAD_REQUEST,
            Some((Field::Choice, message(refused)?)),
        );
        return poll_page(&staff, &site, &mut db, id, refused).await;
    }
    Ok(done(
        &site,
        &format!("/admin/polls/{id}"),
        Done::ChoiceAdded,
    ))
}

/// `GET /admin/polls/{id}/choices/{choice_id}/delete`: what removing the choice removes,
/// to confirm.
pub(super) async fn confirm_delete_choice(
    staff: Staff,
    site: Site,
    AdminPath((id, choice_id)): AdminPath<(i64, i64)>,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let choice: Option<(String, String, i64)> = db
        .query(
            "SELECT c.choice_text, p.question, \
             (SELECT count(*) FROM votes v WHERE v.choice_id = c.id) \
             FROM choices c JOIN polls p ON p.id = c.poll_id WHERE c.id = $1 AND p.id = $2",
        )
        .bind(choice_id)
        .bind(id)
        .fetch_optional()
        .await?;
    let (text, question, votes) = choice.ok_or(AdminError::NotFound)?;
    let consequence = format!(
        "“{text}” is removed from “{question}” with its {}. This cannot be undone.",
        count(votes, "vote", "votes")
    );
    let what = ("Remove this choice?", consequence, "Remove the choice");
    let poll = format!("/admin/polls/{id}");
    let action = format!("{poll}/choices/{choice_id}/delete");
    ask(&staff, &site, &mut db, what, &action, &poll).await
}

/// `POST /admin/polls/{id}/choices/{choice_id}/delete`: with `confirm=yes`, removes the
/// choice; without, asks first.
pub(super) async fn delete_choice(
    staff: Staff,
    site: Site,
    AdminPath((id, choice_id)): AdminPath<(i64, i64)>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<Confirm>,
) -> Result<Response, AdminError> {
    if !form.given() {
        let path = AdminPath((id, choice_id));
        return confirm_delete_choice(staff, site, path, db).await;
    }
    db.query("DELETE FROM choices WHERE id = $1 AND poll_id = $2")
        .bind(choice_id)
        .bind(id)
        .execute()
        .await?;
    Ok(done(
        &site,
        &format!("/admin/polls/{id}"),
        Done::ChoiceRemoved,
    ))
}
