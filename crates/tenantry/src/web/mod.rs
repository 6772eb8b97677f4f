//! The web side every tenant's pages need: login sessions with CSRF tokens, one-time login
//! links, login throttling, and the logo of the tenant's [`Branding`](crate::settings::Branding).
//!
//! Sessions and logos are kept in the tenant's own data, through its [`Db`](crate::Db), so a
//! session of one tenant means nothing to any other, whatever the isolation and the routing.
//! The app's tenant migrations create the three tables (on SQLite without `tenant_id`, and
//! on PostgreSQL with Row-Level Security as every tenant table):
//!
//! ```sql
//! CREATE TABLE web_sessions (
//!     tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
//!     id varchar(64) NOT NULL,     -- SHA-256 of the cookie's token, hex
//!     user_id bigint NOT NULL,     -- the app's user
//!     csrf varchar(64) NOT NULL,
//!     expires_at bigint NOT NULL,  -- Unix seconds
//!     impersonator varchar(64),    -- the operator looking as the user, if any
//!     PRIMARY KEY (tenant_id, id));
//! CREATE TABLE web_login_links (  -- one-time login links
//!     tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
//!     id varchar(64) NOT NULL,     -- SHA-256 of the link's token, hex
//!     user_id bigint NOT NULL,
//!     expires_at bigint NOT NULL,
//!     impersonator varchar(64),
//!     PRIMARY KEY (tenant_id, id));
//! CREATE TABLE branding_files (
//!     tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
//!     name varchar(32) NOT NULL, content_type varchar(32) NOT NULL, data bytea NOT NULL,
//!     PRIMARY KEY (tenant_id, name));
//! ```

mod cookie;
mod login_link;
mod logo;
mod session;
mod throttle;

pub use crate::secret::{random_token, same_token};
pub use cookie::{CookieJar, SessionCookie};
pub use login_link::{LOGIN_LINK_SECS, LoginLink, Redeemed};
pub use logo::{LOGO_MAX_BYTES, Logo, image_type};
pub use session::{Session, StartedSession};
pub use throttle::{LoginAttempt, LoginThrottle};
