//! The cookies of a tenant's pages, with the `cookie` crate: read from a request, written for
//! its mount.

use axum::http::header::{COOKIE, HeaderValue};
use axum::http::request::Parts;
use cookie::{Cookie, SameSite};

/// The cookies a request sent.
pub struct CookieJar<'r>(Vec<Cookie<'r>>);

impl<'r> CookieJar<'r> {
    /// The cookies of the request in `parts`.
    pub fn of(parts: &'r Parts) -> Self {
        let cookies = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .collect();
        Self(cookies)
    }

    /// The value of the first cookie called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|cookie| cookie.name() == name)
            .map(Cookie::value)
    }
}

/// How a tenant's cookies are set: scoped to its mount (`/t/<slug>` for a path-prefix
/// tenant, so the shared base host's other tenants never receive them), `HttpOnly`,
/// `SameSite=Lax`, and `Secure` when the request came over https.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    path: String,
    secure: bool,
}

impl SessionCookie {
    /// The cookie of the login session.
    pub const SESSION: &'static str = "tenantry_session";
    /// The cookie of the login form's CSRF token, before there is a session.
    pub const LOGIN_CSRF: &'static str = "tenantry_login_csrf";

    /// Cookies for the tenant mounted at `mount` (`""` or `/t/<slug>`), for this request:
    /// https when its URI says so or a proxy's `X-Forwarded-Proto` does.
    pub fn for_request(parts: &Parts, mount: &str) -> Self {
        let forwarded = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        let secure = forwarded || parts.uri.scheme_str() == Some("https");
        let path = match mount {
            "" => "/".to_owned(),
            mount => mount.to_owned(),
        };
        Self { path, secure }
    }

    /// A `Set-Cookie` value that sets `name` to `value` for `max_age` seconds.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let seconds = i64::try_from(max_age).unwrap_or(i64::MAX);
        self.header(name, value, cookie::time::Duration::seconds(seconds))
    }

    /// A `Set-Cookie` value that removes `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.header(name, "", cookie::time::Duration::ZERO)
    }

    fn header(&self, name: &str, value: &str, max_age: cookie::time::Duration) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .max_age(max_age)
            .path(self.path.as_str())
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .build();
        HeaderValue::try_from(cookie.to_string())
            .expect("cookie names, tokens and mounts are header-safe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn reads_cookies_and_scopes_them_to_the_mount() {
        let request = parts(
            Request::builder()
                .uri("/t/thor/admin")
                .header(COOKIE, "a=1; tenantry_session=abc")
                .header(COOKIE, "b=2")
                .body(())
                .unwrap(),
        );
        let jar = CookieJar::of(&request);
        assert_eq!(jar.get(SessionCookie::SESSION), Some("abc"));
        assert_eq!(jar.get("b"), Some("2"));
        assert_eq!(jar.get("c"), None);
        let cookie = SessionCookie::for_request(&request, "/t/thor");
        assert_eq!(
            cookie.set("s", "v", 60),
            "s=v; HttpOnly; SameSite=Lax; Path=/t/thor; Max-Age=60"
        );
        let https = parts(
            Request::builder()
                .header("x-forwarded-proto", "https")
                .body(())
                .unwrap(),
        );
        assert_eq!(
            SessionCookie::for_request(&https, "").clear("s"),
            "s=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"
        );
    }
}
