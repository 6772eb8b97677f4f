//! A browser of one site for the tests: keeps cookies, follows no redirects.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};

use super::TestApp;

/// A browser of one site (`host`, and `mount` for a path-prefix tenant): keeps cookies,
/// follows no redirects.
pub struct Visitor<'a> {
    pub app: &'a TestApp,
    pub host: String,
    pub mount: String,
    pub cookies: BTreeMap<String, String>,
    pub client: reqwest::Client,
    /// Extra headers, such as a proxy's `X-Forwarded-Proto`.
    pub headers: Vec<(&'static str, &'static str)>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers["location"].to_str().unwrap()
    }

    /// The first value of the hidden `csrf` field of the form posting to `action`.
    pub fn csrf(&self, action: &str) -> String {
        let form = self
            .text
            .split("<form")
            .find(|form| form.contains(&format!("action=\"{action}\"")))
            .unwrap_or_else(|| panic!("no form posting to {action}: {}", self.text));
        let start = form.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        form[start..start + 64].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp, host: &str, mount: &str) -> Self {
        Self {
            app,
            host: host.into(),
            mount: mount.into(),
            cookies: BTreeMap::new(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            headers: Vec::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<reqwest::Body>,
        kind: Option<String>,
    ) -> Page {
        let url = format!("http://{}{}{path}", self.app.addr, self.mount);
        let mut request = self.client.request(method, url).header("host", &self.host);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        if let Some(kind) = kind {
            request = request.header("content-type", kind);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let page = Page {
            status,
            headers,
            bytes,
            text,
        };
        for cookie in page.set_cookies() {
            let (pair, attributes) = cookie.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            match attributes.contains("Max-Age=0") {
                true => self.cookies.remove(name),
                false => self.cookies.insert(name.into(), value.into()),
            };
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let kind = "application/x-www-form-urlencoded".to_owned();
        self.send(Method::POST, path, Some(body.into()), Some(kind))
            .await
    }

    /// Logs in through the form; the reply to the POST.
    pub async fn log_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf(&format!("{}/admin/login", self.mount));
        let fields = [
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ];
        self.post("/admin/login", &fields).await
    }

    /// The CSRF token of the session, from the dashboard's logout form.
    pub async fn csrf(&mut self) -> String {
        let dashboard = self.get("/admin").await;
        assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.text);
        dashboard.csrf(&format!("{}/admin/logout", self.mount))
    }

    pub fn session(&self) -> Option<String> {
        self.cookies.get("tenantry_session").cloned()
    }
}
