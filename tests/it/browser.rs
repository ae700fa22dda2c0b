//! The desk in a real browser (issue 13): Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them).
//! If the browser cannot start, these tests fail: never skipped.

use std::process::Stdio;
use std::time::Duration;

use thirtyfour::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::desk::{Desk, PASSWORD};
use crate::helpers::xk;

/// chromedriver on a free port, in its own process group so that its
/// Chromium dies with it even when a test panics.
struct Driver {
    child: tokio::process::Child,
    port: u16,
}

impl Driver {
    async fn start() -> Driver {
        let mut child = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver ended without saying its port");
        })
        .await
        .expect("chromedriver says its port within 20 s");
        // Keep reading, so that chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Driver { child, port }
    }

    async fn browser(&self, width: u32) -> WebDriver {
        let mut caps = DesiredCapabilities::chrome();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            &format!("--window-size={width},900"),
        ] {
            caps.add_arg(arg).unwrap();
        }
        if width < 500 {
            // Headless Chromium's windows are at least 500 px wide: a phone
            // is emulated instead (its viewport and user agent).
            caps.add_experimental_option(
                "mobileEmulation",
                serde_json::json!({ "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 1.0 } }),
            )
            .unwrap();
        }
        WebDriver::new(format!("http://127.0.0.1:{}", self.port), caps)
            .await
            .expect("Chromium starts under chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group: chromedriver and the browsers it started.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// Screenshots go next to the build's other artifacts.
fn artifact(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("desk-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn sign_in(b: &WebDriver, desk: &Desk) {
    b.goto(desk.url("/")).await.unwrap();
    b.query(By::Id("name"))
        .first()
        .await
        .unwrap()
        .send_keys("ana")
        .await
        .unwrap();
    b.query(By::Id("password"))
        .first()
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    click(b, By::Css("form.login button")).await;
    if b.query(By::Css("table.sources")).first().await.is_err() {
        panic!(
            "no overview after signing in:\n{}",
            b.source().await.unwrap_or_default()
        );
    }
}

/// The first element `by` finds, waiting for the page to show it.
async fn element(b: &WebDriver, by: By) -> WebElement {
    let what = format!("{by:?}");
    b.query(by)
        .first()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn click(b: &WebDriver, by: By) {
    element(b, by).await.click().await.unwrap();
}

async fn text_of(b: &WebDriver, by: By) -> String {
    element(b, by).await.text().await.unwrap()
}

/// Waits until an element shows `want`, across the page load a form post
/// starts: an element of the page being left goes stale (a race seen in
/// CI), so each try looks it up again.
async fn wait_for_text(b: &WebDriver, by: By, want: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let shown = match b.find(by.clone()).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown.contains(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{by:?} never showed {want:?} (last: {shown:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Wider than the window: the page scrolls sideways.
async fn scrolls_sideways(b: &WebDriver) -> bool {
    b.execute(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
        Vec::new(),
    )
    .await
    .unwrap()
    .convert::<bool>()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editor_works_the_queue_down_in_a_browser() {
    // The changed page also carries a script in a list item.
    let evil = String::from_utf8(xk(65))
        .unwrap()
        .replacen("<li>", "<li>&lt;script&gt;alert(1)&lt;/script&gt; ", 1)
        .into_bytes();
    let desk = Desk::start_with(evil).await;
    let driver = Driver::start().await;
    let b = driver.browser(1280).await;
    sign_in(&b, &desk).await;
    b.screenshot(&artifact("overview-1280.png")).await.unwrap();

    click(&b, By::LinkText("Review queue")).await;
    click(&b, By::Css("ol.queue a.change")).await;
    element(&b, By::Css("section.review")).await;
    let table = text_of(&b, By::Css("table.changes")).await;
    assert!(table.contains("50 EUR") && table.contains("65 EUR"), "{table}");
    // The page's script is text on the screen, and nothing ran.
    let body = text_of(&b, By::Tag("main")).await;
    assert!(body.contains("<script>alert(1)</script>"), "{body}");
    assert!(b.get_alert_text().await.is_err(), "no alert dialog opened");
    b.screenshot(&artifact("change-1280.png")).await.unwrap();

    click(&b, By::Id("applied")).await;
    wait_for_text(&b, By::Id("review-state"), "applied").await;
    click(&b, By::LinkText("Review queue")).await;
    element(&b, By::Id("queue-empty")).await;
    b.quit().await.unwrap();

    // A phone: readable without sideways scrolling, on every page.
    let phone = driver.browser(390).await;
    sign_in(&phone, &desk).await;
    let width = phone
        .execute("return window.innerWidth;", Vec::new())
        .await
        .unwrap()
        .convert::<u32>()
        .unwrap();
    assert_eq!(width, 390, "the phone's viewport");
    for (path, shot) in [
        ("/", "overview-390.png"),
        ("/review", "review-390.png"),
        ("/changes/1", "change-390.png"),
        ("/sources/xk", "source-390.png"),
    ] {
        phone.goto(desk.url(path)).await.unwrap();
        phone.screenshot(&artifact(shot)).await.unwrap();
        assert!(
            !scrolls_sideways(&phone).await,
            "{path} scrolls sideways at 390 px"
        );
    }
    phone.quit().await.unwrap();
}

/// Usable by keyboard: Tab reaches the sign-in fields and Enter submits.
#[tokio::test(flavor = "multi_thread")]
async fn signing_in_works_by_keyboard() {
    let desk = Desk::start().await;
    let driver = Driver::start().await;
    let b = driver.browser(1280).await;
    b.goto(desk.url("/login")).await.unwrap();
    // The name field has the focus; Tab moves to the password; Enter sends.
    let active = b.active_element().await.unwrap();
    assert_eq!(active.id().await.unwrap().as_deref(), Some("name"));
    active.send_keys("ana" + Key::Tab).await.unwrap();
    let active = b.active_element().await.unwrap();
    assert_eq!(active.id().await.unwrap().as_deref(), Some("password"));
    active.send_keys(PASSWORD + Key::Enter).await.unwrap();
    b.query(By::Css("table.sources"))
        .first()
        .await
        .expect("signed in by keyboard");
    b.quit().await.unwrap();
}
