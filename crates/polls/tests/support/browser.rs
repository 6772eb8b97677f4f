//! Headless Chromium driven over WebDriver with `fantoccini`: Debian's `chromium` and
//! `chromium-driver`, started per test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// A chromedriver and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    client: Client,
    /// The session's URL at the driver, ended on drop.
    session: String,
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
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1100,800",
                    "--host-resolver-rules=MAP *.polls.test 127.0.0.1, MAP polls.test 127.0.0.1"
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        // The driver is on this machine: plain HTTP, no TLS.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        // chromedriver answers once it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match builder.connect(&base).await {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("chromedriver exited ({status}): {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("chromedriver did not answer: {error}"),
            }
        };
        let id = client.session_id().await.unwrap().expect("a session id");
        Self {
            driver: child,
            client,
            session: format!("{base}/session/{id}"),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Types `text` into the element `css` finds.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
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
        self.find(css).await.text().await.unwrap()
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
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// The value of the cookie `name` on the current page, if set.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.client.get_all_cookies().await.unwrap();
        cookies
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// Sets a cookie for the current page's host, on `path`.
    pub async fn add_cookie(&self, name: &str, value: &str, path: &str) {
        let url = self.client.current_url().await.unwrap();
        let mut cookie = Cookie::new(name.to_owned(), value.to_owned());
        cookie.set_path(path.to_owned());
        cookie.set_domain(url.host_str().unwrap().to_owned());
        // Chromium refuses SameSite=None (fantoccini's default) without Secure.
        cookie.set_same_site(cookie::SameSite::Lax);
        self.client.add_cookie(cookie).await.unwrap();
    }

    pub async fn delete_cookies(&self) {
        self.client.delete_all_cookies().await.unwrap();
    }

    /// Saves a PNG of the window as `<screenshot_dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let session = self.session.clone();
        // Ends the session (and Chromium) before the driver, on a runtime of its own: the
        // test's may be ending.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { reqwest::Client::new().delete(session).send().await })
        })
        .join();
        self.driver.kill().ok();
        self.driver.wait().ok();
    }
}
