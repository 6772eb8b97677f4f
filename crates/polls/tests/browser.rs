//! The tenants' admin in headless Chromium, for a tenant of every mode: logins, sessions
//! that stay with their tenant (by subdomain and by path prefix), CSRF, branding and logos,
//! escaping.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::browser::Browser;
use support::{Mode, PIXEL_PNG, TestApp, spawn_app_in};

const STAFF_PASSWORD: &str = "staff-pass-123";
/// thor's colour, as the browser computes it.
const THOR_RED: &str = "rgb(170, 0, 0)";
/// The default colour, potter's.
const DEFAULT_BLUE: &str = "rgb(47, 93, 138)";

async fn log_in(browser: &Browser, site: &str, username: &str, password: &str) {
    browser.goto(&format!("{site}/admin/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", password).await;
    browser.submit("form.stacked button[type=submit]").await;
}

/// thor's polls, as its API lists them to `token`.
async fn thor_polls(app: &TestApp, token: &str) -> serde_json::Value {
    let polls = app
        .request(Method::GET, "thor.polls.test", "/polls/", Some(token), None)
        .await;
    assert_eq!(polls.status, StatusCode::OK);
    polls.body
}

/// Saves a screenshot of the current page, after checking that its form controls are
/// labelled.
async fn shoot(browser: &Browser, name: &str) {
    assert_eq!(browser.unlabelled().await, json!([]), "{name}");
    browser.screenshot(name).await;
}

/// The header's background colour on the current page.
async fn header_colour(browser: &Browser) -> String {
    let colour = browser
        .run("return getComputedStyle(document.querySelector('header.brand')).backgroundColor")
        .await;
    colour.as_str().unwrap().to_owned()
}

/// The WCAG contrast ratios on the current page, as the browser renders it: the header's
/// text on its background, a button's text on its colour, and the heading's and a link's
/// colour on white.
const CONTRASTS: &str = r#"
const rgb = c => c.match(/\d+/g).slice(0, 3).map(Number);
const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)]; return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const style = css => getComputedStyle(document.querySelector(css));
const white = 'rgb(255, 255, 255)';
return {
  header: ratio(style('header.brand #site-name').color, style('header.brand').backgroundColor),
  button: ratio(style('main .button').color, style('main .button').backgroundColor),
  heading: ratio(style('main h1').color, white),
  link: ratio(style('main table a').color, white),
};
"#;

/// Every contrast on the current page is at least WCAG's 4.5:1 for text.
async fn readable(browser: &Browser, what: &str) {
    let contrasts = browser.run(CONTRASTS).await;
    for (part, ratio) in contrasts.as_object().unwrap() {
        let ratio = ratio.as_f64().unwrap();
        assert!(ratio >= 4.5, "{what}: {part} at {ratio:.2}:1");
    }
}

/// The header logo's width as loaded by the browser, or null without one.
const LOGO_WIDTH: &str =
    "const img = document.querySelector('header img.logo'); return img && img.naturalWidth";

/// The header logo's loaded width on the current page, once it has loaded.
async fn logo_width(browser: &Browser) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let width = browser.run(LOGO_WIDTH).await;
        if width != json!(0) || std::time::Instant::now() > deadline {
            return width.as_i64().unwrap_or(-1);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn admin_in_a_real_browser(mode: Mode, name: &str) {
    let app = spawn_app_in(mode).await;
    let port = app.addr.port();
    let thor_site = format!("http://thor.polls.test:{port}");
    let potter_site = format!("http://potter.polls.test:{port}");
    let shared_host = format!("http://polls.test:{port}");
    app.staff_user("thor", STAFF_PASSWORD).await;
    app.staff_user("potter", STAFF_PASSWORD).await;
    let token = app.user("thor.polls.test", "ann").await;
    let colour = json!({ "primary_color": "#AA0000", "display_name": "Thor's Hall" });
    app.set_settings("thor", colour).await;
    let browser = Browser::start().await;

    // Anonymous visitors are sent to the login page; a non-staff user cannot log in.
    browser.goto(&format!("{thor_site}/admin/polls")).await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin/login"));
    shoot(&browser, &format!("{name}-login")).await;
    log_in(&browser, &thor_site, "ann", "s3cret-pass").await;
    assert!(
        browser.text("p.error").await.contains("not staff"),
        "{}",
        browser.source().await
    );
    assert!(browser.cookie("tenantry_session").await.is_none());
    log_in(&browser, &thor_site, "admin", "wrong").await;
    assert_eq!(browser.text("p.error").await, "Wrong username or password.");

    // The staff user logs in from the keyboard alone; thor's colour and name are on thor's
    // pages.
    browser.goto(&format!("{thor_site}/admin/login")).await;
    let keys = format!("admin\u{E004}{STAFF_PASSWORD}\u{E007}");
    browser.type_to_submit("#username", &keys).await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin"));
    assert_eq!(browser.text("#site-name").await, "Thor's Hall");
    assert_eq!(header_colour(&browser).await, THOR_RED);

    // A poll with choices, its question holding markup that must stay text.
    let question = "<script>window.pwned = 1</script>Odin or Loki?";
    browser.goto(&format!("{thor_site}/admin/polls/new")).await;
    browser.fill("#question", question).await;
    browser.fill("#choices", "Odin\nLoki").await;
    browser.submit("form.stacked button[type=submit]").await;
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("{thor_site}/admin/polls/"))
    );
    assert_eq!(browser.text("#question").await, question);
    assert_eq!(browser.run("return window.pwned === undefined").await, true);
    let polls = thor_polls(&app, &token).await;
    assert_eq!(polls[0]["question"], question);
    let choices: Vec<&str> = polls[0]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["choice_text"].as_str().unwrap())
        .collect();
    assert_eq!(choices, ["Odin", "Loki"]);
    // A vote through the API shows on the poll's page as a bar.
    let poll = &polls[0];
    let vote = format!(
        "/polls/{}/choices/{}/vote/",
        poll["id"], poll["choices"][0]["id"]
    );
    let voted = app
        .request(Method::POST, "thor.polls.test", &vote, Some(&token), None)
        .await;
    assert_eq!(voted.status, StatusCode::CREATED, "{}", voted.body);
    browser.goto(&browser.url().await).await;
    let bar = browser
        .run("const m = document.querySelector('meter'); return m.value + '/' + m.max")
        .await;
    assert_eq!(bar, "1/1");
    assert_eq!(browser.text("#total-votes").await, "1 vote");
    // Every button is one size, and the edit field shows the whole question.
    let heights = browser
        .run(
            "return [...document.querySelectorAll('main button, main a.button')]
                .map(e => Math.round(e.getBoundingClientRect().height))",
        )
        .await;
    let heights: Vec<i64> = heights
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_i64())
        .collect();
    assert!(
        heights.len() > 2 && heights.iter().all(|h| *h == heights[0]),
        "{heights:?}"
    );
    let whole = "const i = document.querySelector('#edit_question'); \
                 return i.scrollWidth <= i.clientWidth";
    assert_eq!(browser.run(whole).await, true);
    // One choice too many: the refusal sits under the choice field, not the question's.
    app.set_settings("thor", json!({ "max_choices_per_poll": 2 }))
        .await;
    browser.fill("#choice_text", "Thor").await;
    browser.submit("form.inline button[type=submit]").await;
    assert!(
        browser.text("#choice-error").await.contains("allows (2)"),
        "{}",
        browser.source().await
    );
    let placed = "return document.querySelector('#choice-error').previousElementSibling.action";
    assert!(
        browser
            .run(placed)
            .await
            .as_str()
            .unwrap()
            .ends_with("/choices")
    );
    assert_eq!(
        browser
            .run("return document.querySelector('#question-error')")
            .await,
        json!(null)
    );
    app.set_settings("thor", json!({ "max_choices_per_poll": null }))
        .await;
    browser.goto(&browser.url().await).await;
    shoot(&browser, &format!("{name}-poll")).await;
    browser.goto(&format!("{thor_site}/admin")).await;
    assert_eq!(browser.text("#count-votes").await, "1");
    shoot(&browser, &format!("{name}-dashboard")).await;
    browser
        .goto(&format!("{thor_site}/admin/polls?q=loki"))
        .await;
    shoot(&browser, &format!("{name}-polls")).await;
    browser.goto(&format!("{thor_site}/admin/settings")).await;
    shoot(&browser, &format!("{name}-settings")).await;
    // A light and a dark brand colour both leave every text readable.
    for (colour, expected) in [
        ("#ffeb3b", "rgb(0, 0, 0)"),
        ("#1a237e", "rgb(255, 255, 255)"),
    ] {
        app.set_settings("thor", json!({ "primary_color": colour }))
            .await;
        browser.goto(&format!("{thor_site}/admin/polls")).await;
        let text = browser
            .run("return getComputedStyle(document.querySelector('#site-name')).color")
            .await;
        assert_eq!(text, expected, "{colour}");
        readable(&browser, colour).await;
        shoot(&browser, &format!("{name}-polls-{}", &colour[1..])).await;
    }
    app.set_settings("thor", json!({ "primary_color": "#AA0000" }))
        .await;

    // Deleting asks first and says what goes; what was done is said once.
    browser.goto(&format!("{thor_site}/admin/polls/new")).await;
    browser.fill("#question", "Short-lived?").await;
    browser.submit("form.stacked button[type=submit]").await;
    assert_eq!(browser.text("#flash").await, "The poll was created.");
    browser.click("a.button.danger").await;
    assert!(
        browser
            .text("#consequence")
            .await
            .contains("“Short-lived?”")
    );
    shoot(&browser, &format!("{name}-confirm")).await;
    browser.click("a.button.secondary").await;
    assert_eq!(browser.text("#question").await, "Short-lived?");
    browser.click("a.button.danger").await;
    browser.submit("form.danger button[type=submit]").await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin/polls"));
    assert_eq!(
        browser.text("#flash").await,
        "The poll was deleted, with its choices and votes."
    );
    browser.goto(&browser.url().await).await;
    assert_eq!(
        browser.run("return document.querySelector('#flash')").await,
        json!(null)
    );
    // A page that is not there is said in the tenant's frame, with a way back.
    browser
        .goto(&format!("{thor_site}/admin/polls/999999"))
        .await;
    assert_eq!(browser.text("#site-name").await, "Thor's Hall");
    assert_eq!(browser.text("#failure").await, "There is no such page.");
    shoot(&browser, &format!("{name}-not-found")).await;
    browser.goto(&format!("{thor_site}/admin/users")).await;
    shoot(&browser, &format!("{name}-users")).await;
    // The label check sees an unlabelled control.
    browser
        .run("document.body.insertAdjacentHTML('beforeend', '<input id=stray>')")
        .await;
    assert_eq!(browser.unlabelled().await, json!([r#"<input id="stray">"#]));

    // With a logo, every page still answers and shows it, the login page too.
    let logo = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(logo.path(), PIXEL_PNG).unwrap();
    browser.goto(&format!("{thor_site}/admin/settings")).await;
    browser.fill("#logo", logo.path().to_str().unwrap()).await;
    browser
        .submit("form[enctype='multipart/form-data'] button[type=submit]")
        .await;
    for page in ["", "/polls", "/polls/new", "/users", "/settings"] {
        browser.goto(&format!("{thor_site}/admin{page}")).await;
        assert_eq!(
            logo_width(&browser).await,
            1,
            "{page}: {}",
            browser.source().await
        );
    }
    shoot(&browser, &format!("{name}-logo")).await;
    // A logo over the limit is refused in the tenant's frame, naming the limit.
    let big = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    let mut bytes = PIXEL_PNG.to_vec();
    bytes.resize(300 * 1024, 0);
    std::fs::write(big.path(), bytes).unwrap();
    browser.goto(&format!("{thor_site}/admin/settings")).await;
    browser.fill("#logo", big.path().to_str().unwrap()).await;
    browser
        .submit("form[enctype='multipart/form-data'] button[type=submit]")
        .await;
    assert!(browser.text("#failure").await.contains("at most 256 KiB"));
    assert_eq!(browser.text("#site-name").await, "Thor's Hall");
    shoot(&browser, &format!("{name}-logo-too-large")).await;
    browser.click("#failure + p a").await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin"));
    browser.submit("form.logout button[type=submit]").await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin/login"));
    assert_eq!(logo_width(&browser).await, 1, "{}", browser.source().await);
    log_in(&browser, &thor_site, "admin", STAFF_PASSWORD).await;
    assert_eq!(browser.url().await, format!("{thor_site}/admin"));
    // potter has none.
    browser.goto(&format!("{potter_site}/admin/login")).await;
    assert_eq!(browser.run(LOGO_WIDTH).await, json!(null));

    // A form without its CSRF token is refused, and changes nothing.
    browser.goto(&format!("{thor_site}/admin/polls/new")).await;
    browser
        .run("document.querySelector('form.stacked input[name=csrf]').remove()")
        .await;
    browser.fill("#question", "Forged?").await;
    browser.submit("form.stacked button[type=submit]").await;
    assert!(browser.source().await.contains("CSRF check failed"));
    let polls = thor_polls(&app, &token).await;
    assert_eq!(polls.as_array().unwrap().len(), 1, "{polls}");

    // thor's session cookie means nothing on potter's site, by subdomain or by path.
    let session = browser.cookie("tenantry_session").await.expect("a session");
    for (site, path) in [
        (potter_site.clone(), "/"),
        (format!("{shared_host}/t/potter"), "/t/potter"),
    ] {
        browser.goto(&format!("{site}/admin/login")).await;
        browser.add_cookie("tenantry_session", &session, path).await;
        browser.goto(&format!("{site}/admin")).await;
        assert_eq!(browser.url().await, format!("{site}/admin/login"), "{site}");
        assert_eq!(header_colour(&browser).await, DEFAULT_BLUE, "{site}");
        browser.delete_cookies().await;
    }

    // Through the path prefix, thor's own session is scoped to /t/thor and works there only.
    let thor_path = format!("{shared_host}/t/thor");
    log_in(&browser, &thor_path, "admin", STAFF_PASSWORD).await;
    assert_eq!(browser.url().await, format!("{thor_path}/admin"));
    assert_eq!(header_colour(&browser).await, THOR_RED);
    browser.goto(&format!("{shared_host}/t/potter/admin")).await;
    assert_eq!(
        browser.url().await,
        format!("{shared_host}/t/potter/admin/login")
    );
}

macro_rules! in_every_mode {
    ($($module:ident => $mode:expr),* $(,)?) => {
        $(mod $module {
            #[tokio::test]
            async fn the_admin_in_chromium() {
                use super::Mode;
                super::admin_in_a_real_browser($mode, stringify!($module)).await
            }
        })*
    };
}

in_every_mode!(
    schema => Mode::Schema,
    shared => Mode::Shared,
    database => Mode::Database,
    sqlite => Mode::Sqlite,
    dedicated => Mode::Dedicated,
    sqlite_dedicated => Mode::SqliteDedicated,
    schema_through_pgbouncer => Mode::SchemaThroughPgBouncer,
    dedicated_behind_nginx => Mode::DedicatedBehindNginx,
);
