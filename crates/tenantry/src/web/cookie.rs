//! The cookies of a tenant's pages: read from a request, written for its mount.

use axum::http::header::{COOKIE, HeaderValue};
use axum::http::request::Parts;

/// The cookies a request sent.
pub struct CookieJar<'r>(Vec<(&'r str, &'r str)>);

impl<'r> CookieJar<'r> {
    pub fn of(parts: &'r Parts) -> Self {
        let pairs = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .collect();
        Self(pairs)
    }

    /// The value of the first cookie called `name`.
    pub fn get(&self, name: &str) -> Option<&'r str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
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
        self.header(format!("{name}={value}; Max-Age={max_age}"))
    }

    /// A `Set-Cookie` value that removes `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.header(format!("{name}=; Max-Age=0"))
    }

    fn header(&self, cookie: String) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{cookie}; Path={}; HttpOnly; SameSite=Lax{secure}",
            self.path
        );
        HeaderValue::try_from(text).expect("cookie names, tokens and mounts are header-safe")
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
            "s=v; Max-Age=60; Path=/t/thor; HttpOnly; SameSite=Lax"
        );
        let https = parts(
            Request::builder()
                .header("x-forwarded-proto", "https")
                .body(())
                .unwrap(),
        );
        assert_eq!(
            SessionCookie::for_request(&https, "").clear("s"),
            "s=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
