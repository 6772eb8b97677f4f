//! The tenant's JSON API: [`api_router`], a file per resource over the domain's queries.

mod choices;
mod images;
mod polls;
mod root;
mod users;
mod votes;

pub use images::IMAGE_MAX_BYTES;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::limits::AuthLimits;

/// The API's routes, without trailing slashes. Sign-up and login (only they) get `auth`'s
/// hasher and rates.
pub fn api_router(auth: AuthLimits) -> Router {
    let accounts = Router::new()
        .route("/users", post(users::create))
        .route("/login", post(users::login))
        .layer(Extension(auth));
    Router::new()
        .route("/", get(root::index))
        .merge(accounts)
        .route("/polls", get(polls::list).post(polls::create))
        .route(
            "/polls/{id}",
            get(polls::detail)
                .put(polls::replace)
                .patch(polls::patch)
                .delete(polls::delete),
        )
        .route(
            "/polls/{id}/choices",
            get(choices::list).post(choices::create),
        )
        .route("/polls/{id}/choices/{choice_id}/vote", post(votes::create))
        .route(
            "/polls/{id}/image",
            get(images::get)
                .put(images::put)
                .layer(DefaultBodyLimit::max(images::IMAGE_MAX_BYTES)),
        )
}
