//! Headless Chromium driven over WebDriver: Debian's `chromium` and `chromium-driver`,
//! started per test, speaking the W3C protocol over HTTP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
}

/// Where the tests write their screenshots: outside the repository.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("TENANTRY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tenantry-screenshots"))
}

fn installed(path: &str, package: &str) -> String {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: the browser tests need Debian's {package} \
         (apt-get install chromium chromium-driver; .ci/run installs them)"
    );
    path.to_owned()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose DNS sends every `*.polls.test`
    /// host (and `polls.test`) to this machine.
    pub async fn start() -> Self {
        let driver = installed("/usr/bin/chromedriver", "chromium-driver");
        let chromium = installed("/usr/bin/chromium", "chromium");
        let port = super::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Self {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser
            .client
            .get(format!("{}/status", browser.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1100,800",
                    "--host-resolver-rules=MAP *.polls.test 127.0.0.1, MAP polls.test 127.0.0.1"
                ]
            }
        }}});
        let session = browser.call("POST", "/session", Some(capabilities)).await;
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body.unwrap_or(json!({}))),
        };
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        let value = reply["value"].clone();
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    /// Types `text` into the element `css` finds.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}/value");
        self.call("POST", &path, Some(json!({ "text": text })))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), None)
            .await;
    }

    /// Clicks a submit button and waits until the next page has loaded.
    pub async fn submit(&self, css: &str) {
        self.run("window.tenantryStale = true").await;
        self.click(css).await;
        self.next_page(css).await;
    }

    /// Types `keys` (`\u{E004}` is Tab, `\u{E007}` Enter) into the element `css` finds, and on
    /// into whatever they move the focus to, then waits until the next page has loaded.
    pub async fn type_to_submit(&self, css: &str, keys: &str) {
        self.run("window.tenantryStale = true").await;
        self.fill(css, keys).await;
        self.next_page(css).await;
    }

    async fn next_page(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let loaded =
            "return window.tenantryStale === undefined && document.readyState === 'complete'";
        while self.run(loaded).await != true {
            assert!(
                Instant::now() < deadline,
                "no page came after submitting {css}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rendered text of the element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self
            .call("GET", &format!("/element/{element}/text"), None)
            .await;
        text.as_str().unwrap().to_owned()
    }

    /// The visible form controls of the page that have no label: none, on an accessible page.
    pub async fn unlabelled(&self) -> Value {
        self.run(
            "return [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]\
             .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))\
             .map(e => e.outerHTML)",
        )
        .await
    }

    /// Runs `script` in the page (as WebDriver does, not subject to the page's policy).
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The value of the cookie `name` on the current page, if set.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.call("GET", "/cookie", None).await;
        cookies
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["value"].as_str().unwrap().to_owned())
    }

    /// Sets a cookie for the current page's host, on `path`.
    pub async fn add_cookie(&self, name: &str, value: &str, path: &str) {
        let cookie = json!({ "cookie": { "name": name, "value": value, "path": path } });
        self.call("POST", "/cookie", Some(cookie)).await;
    }

    pub async fn delete_cookies(&self) {
        self.call("DELETE", "/cookie", None).await;
    }

    /// Saves a PNG of the window as `<screenshot_dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = self.base.clone();
        // Ends the session (and Chromium) before the driver.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { reqwest::Client::new().delete(url).send().await })
        })
        .join();
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}
