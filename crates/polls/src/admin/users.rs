//! Users: list, create, reset a password, grant or remove staff.

use askama::Template;
use axum::Extension;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tenantry::web::Session;
use tenantry::{Db, TenantDb};

use super::{AdminError, AdminPath, CheckedForm, Chrome, Done, Site, Staff, done, page};
use crate::domain::users::{Email, Password, Username};
use crate::limits::AuthLimits;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: String,
    staff: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UserList {
    chrome: Chrome,
    users: Vec<UserRow>,
    error: String,
}

/// The users page, with `error` (and `status`) after a refused change.
async fn users_page(
    staff: &Staff,
    site: &Site,
    db: &mut Db,
    (status, error): (StatusCode, String),
) -> Result<Response, AdminError> {
    let chrome = Chrome::for_staff(site, staff, db).await?;
    let users = db
        .query(
            "SELECT id, username, email, is_staff OR is_superuser AS staff FROM users \
             ORDER BY username",
        )
        .fetch_all()
        .await?;
    Ok(page(
        status,
        &UserList {
            chrome,
            users,
            error,
        },
    ))
}

/// `GET /admin/users`.
pub(super) async fn list(
    staff: Staff,
    site: Site,
    mut db: TenantDb,
) -> Result<Response, AdminError> {
    let ok = (StatusCode::OK, String::new());
    users_page(&staff, &site, &mut db, ok).await
}

#[derive(Deserialize)]
pub(super) struct NewUser {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    staff: Option<String>,
}

/// `POST /admin/users`: a user, checked as a sign-up is.
pub(super) async fn create(
    staff: Staff,
    site: Site,
    Extension(limits): Extension<AuthLimits>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<NewUser>,
) -> Result<Response, AdminError> {
    let context = &site;
    let checked = (
        Username::parse(form.username),
        Email::parse(form.email),
        Password::parse(form.password),
    );
    let (username, email, password) = match checked {
        (Ok(u), Ok(e), Ok(p)) => (u, e, p),
        (u, e, p) => {
            let errors: Vec<String> = [u.err(), e.err(), p.err()].into_iter().flatten().collect();
            let refused = (StatusCode::BAD_REQUEST, errors.join(" "));
            return users_page(&staff, context, &mut db, refused).await;
        }
    };
    let hash = limits.hasher.hash(password.0).await?;
    let inserted = db
        .query(
            "INSERT INTO users (username, email, password_hash, is_staff) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(username.0)
        .bind(email.0)
        .bind(hash)
        .bind(form.staff.as_deref() == Some("true"))
        .execute()
        .await?;
    if inserted == 0 {
        // The username is taken; the statement did not fail, so the transaction goes on.
        let refused = (
            StatusCode::BAD_REQUEST,
            "A user with that username already exists.".to_owned(),
        );
        return users_page(&staff, context, &mut db, refused).await;
    }
    Ok(done(&site, "/admin/users", Done::UserCreated))
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    password: Option<String>,
}

/// `POST /admin/users/{id}/password`: a new password; the user's sessions end.
pub(super) async fn password(
    staff: Staff,
    site: Site,
    Extension(limits): Extension<AuthLimits>,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<PasswordForm>,
) -> Result<Response, AdminError> {
    let password = match Password::parse(form.password) {
        Ok(password) => password,
        Err(error) => {
            let refused = (StatusCode::BAD_REQUEST, error);
            return users_page(&staff, &site, &mut db, refused).await;
        }
    };
    let hash = limits.hasher.hash(password.0).await?;
    let updated = db
        .query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute()
        .await?;
    if updated == 0 {
        return Err(AdminError::NotFound);
    }
    if id != staff.user_id {
        Session::end_all(&mut db, id).await?;
    }
    Ok(done(&site, "/admin/users", Done::PasswordSet))
}

#[derive(Deserialize)]
pub(super) struct StaffForm {
    staff: Option<String>,
}

/// `POST /admin/users/{id}/staff`: grants or removes the staff flag (not one's own); a
/// user who loses it is logged out everywhere.
pub(super) async fn staff(
    staff: Staff,
    site: Site,
    AdminPath(id): AdminPath<i64>,
    mut db: TenantDb,
    CheckedForm(form): CheckedForm<StaffForm>,
) -> Result<Response, AdminError> {
    let grant = form.staff.as_deref() == Some("true");
    if id == staff.user_id && !grant {
        let refused = (
            StatusCode::BAD_REQUEST,
            "You cannot remove your own staff flag.".to_owned(),
        );
        return users_page(&staff, &site, &mut db, refused).await;
    }
    let updated = db
        .query("UPDATE users SET is_staff = $2, is_superuser = is_superuser AND $2 WHERE id = $1")
        .bind(id)
        .bind(grant)
        .execute()
        .await?;
    if updated == 0 {
        return Err(AdminError::NotFound);
    }
    if !grant {
        Session::end_all(&mut db, id).await?;
    }
    Ok(done(&site, "/admin/users", Done::StaffChanged))
}
