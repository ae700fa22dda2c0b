//! The editors' desk over HTTP (issue 13): the real binary's `serve` on
//! 127.0.0.1, a data folder made by real checks against a real HTTP
//! server, requests from a real client.

use std::time::Duration;

use wiremock::MockServer;

use crate::helpers::*;
use crate::smtp::free_port;

pub const PASSWORD: &str = "correct horse battery";

/// A data folder with one material change (fee 50 € → 65 €), an editor
/// `ana`, an API token, and `visawatch serve` on a free port.
pub struct Desk {
    pub env: Env,
    /// Kept alive: the source's server.
    _http: MockServer,
    pub base: String,
    pub token: String,
    server: tokio::process::Child,
}

impl Desk {
    /// `page` is the changed page the second check reads.
    pub async fn start_with(page: Vec<u8>) -> Desk {
        let http = MockServer::start().await;
        serve(&http, "/xk", xk(50), "text/html; charset=utf-8").await;
        let env = Env::new();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        env.write_config(&format!(
            "{FAST}\n[web]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"{base}\"\n\n{}",
            source_toml(
                "xk",
                &format!("{}/xk", http.uri()),
                "name = \"Kosovo permit\"\nallow_private = true\nmaintainers = [\"kosovo@example.org\"]"
            )
        ));
        assert_eq!(env.check().await.0, 0);
        http.reset().await;
        serve(&http, "/xk", page, "text/html; charset=utf-8").await;
        let (code, r) = env.check().await;
        assert_eq!(code, 0, "{r}");

        let mut add = env.command(&["user", "add", "ana"]);
        add.stdin(std::process::Stdio::piped());
        let mut child = add.spawn().unwrap();
        use tokio::io::AsyncWriteExt;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .unwrap();
        assert!(child.wait().await.unwrap().success());
        let (code, token, err) = env.run(&["token", "add", "robot"]).await;
        assert_eq!(code, 0, "{err}");
        let token = token.trim().to_string();
        assert_eq!(token.len(), 64, "the token alone on stdout: {token:?}");

        let server = env.command(&["serve"]).spawn().unwrap();
        let client = plain_client();
        for _ in 0..100 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Desk {
            env,
            _http: http,
            base,
            token,
            server,
        }
    }

    pub async fn start() -> Desk {
        Desk::start_with(xk(65)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs `ana` in; returns the session cookie (`name=value`).
    pub async fn sign_in(&self) -> String {
        let c = plain_client();
        let (cookie, csrf) = login_form(&c, &self.base).await;
        let resp = c
            .post(self.url("/login"))
            .header("cookie", &cookie)
            .form(&[("name", "ana"), ("password", PASSWORD), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
        let set = set_cookies(&resp);
        let session = set
            .iter()
            .find(|c| c.starts_with("visawatch_session=") && !c.starts_with("visawatch_session=;"))
            .unwrap_or_else(|| panic!("no session cookie in {set:?}"))
            .clone();
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Strict"),
            "{session}"
        );
        session.split(';').next().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let resp = plain_client()
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn api(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = plain_client()
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.server.start_kill();
    }
}

/// A client that follows no redirects (the tests look at them).
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The value of the hidden `csrf` field of the first form in `html`.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 19;
    html[at..at + 64].to_string()
}

/// The sign-in form: its cookie (`name=value`) and CSRF token.
async fn login_form(c: &reqwest::Client, base: &str) -> (String, String) {
    let resp = c.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("visawatch_login="))
        .expect("a sign-in cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = resp.text().await.unwrap();
    (cookie, csrf_of(&html))
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_but_health_and_sign_in_without_a_session() {
    let desk = Desk::start().await;
    let c = plain_client();
    let resp = c.get(desk.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login");
    for path in ["/review", "/changes/1", "/sources/xk"] {
        let resp = c.get(desk.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
    }
    for path in ["/api/v1/sources", "/api/v1/changes", "/feed.atom", "/metrics"] {
        let resp = c.get(desk.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let resp = c.get(desk.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let css = c.get(desk.url("/static/desk.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);

    // Every response carries the security headers.
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script allowed at all: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_refuses_forms_without_csrf_and_wrong_passwords_alike() {
    let desk = Desk::start().await;
    let c = plain_client();
    let (cookie, csrf) = login_form(&c, &desk.base).await;
    // No token: 403.
    let resp = c
        .post(desk.url("/login"))
        .header("cookie", &cookie)
        .form(&[("name", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A wrong password and an unknown user read the same.
    let mut pages = Vec::new();
    for (name, password) in [("ana", "wrong password!"), ("nobody", PASSWORD)] {
        let resp = c
            .post(desk.url("/login"))
            .header("cookie", &cookie)
            .form(&[("name", name), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let html = resp.text().await.unwrap();
        assert!(html.contains("Wrong name or password."), "{html}");
        pages.push(html.replace(&csrf_of(&html), ""));
    }
    assert_eq!(pages[0], pages[1], "nothing tells which part was wrong");
    // Five failures lock the account for a while, even with the right password.
    for _ in 0..4 {
        c.post(desk.url("/login"))
            .header("cookie", &cookie)
            .form(&[("name", "ana"), ("password", "wrong password!"), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
    }
    let resp = c
        .post(desk.url("/login"))
        .header("cookie", &cookie)
        .form(&[("name", "ana"), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_is_recorded_and_the_queue_shrinks() {
    let desk = Desk::start().await;
    let session = desk.sign_in().await;
    let (code, overview) = desk.get("/", &session).await;
    assert_eq!(code, 200);
    assert!(
        overview.contains("Kosovo permit") && overview.contains("1 change awaiting review</a>"),
        "{overview}"
    );
    let (code, queue) = desk.get("/review", &session).await;
    assert_eq!(code, 200);
    assert!(
        queue.contains("href=\"/changes/1\"") && queue.contains("50 EUR") && queue.contains("65 EUR"),
        "{queue}"
    );

    let (code, page) = desk.get("/changes/1", &session).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("awaiting review") && page.contains("Leje-qëndrimi i përkohshëm"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let post = |form: Vec<(&'static str, String)>| {
        plain_client()
            .post(desk.url("/changes/1/review"))
            .header("cookie", &session)
            .form(&form)
            .send()
    };
    // Without the token, or from another site: 403, nothing recorded.
    let resp = post(vec![("action", "applied".into())]).await.unwrap();
    assert_eq!(resp.status(), 403);
    // "Not relevant" needs a reason.
    let resp = post(vec![("action", "not_relevant".into()), ("csrf", csrf.clone())])
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(vec![
        ("action", "applied".into()),
        ("note", "updated the article <b>today</b>".into()),
        ("csrf", csrf.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(resp.status(), 303);

    let (_, queue) = desk.get("/review", &session).await;
    assert!(queue.contains("Nothing awaits review"), "{queue}");
    let (_, page) = desk.get("/changes/1", &session).await;
    assert!(page.contains("applied") && page.contains("ana"), "{page}");
    assert!(
        page.contains("&lt;b&gt;today&lt;/b&gt;"),
        "the note is escaped: {page}"
    );
    let (code, c) = desk.api("/api/v1/changes/1").await;
    assert_eq!(code, 200);
    assert_eq!(c["review_state"], "applied");
    assert_eq!(c["reviews"][0]["user"], "ana");
    assert_eq!(c["reviews"][0]["action"], "applied");

    // Reopen: back in the queue.
    let resp = post(vec![("action", "reopen".into()), ("csrf", csrf)])
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (_, queue) = desk.get("/review", &session).await;
    assert!(queue.contains("href=\"/changes/1\""), "{queue}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_are_404_pages_and_bad_input_400() {
    let desk = Desk::start().await;
    let session = desk.sign_in().await;
    for (path, status) in [
        ("/changes/999", 404),
        ("/sources/nope", 404),
        ("/no/such/page", 404),
        ("/changes/abc", 400),
        ("/changes/-1", 400),
    ] {
        let (code, page) = desk.get(path, &session).await;
        assert_eq!(code, status, "{path}");
        assert!(page.contains("<html"), "an HTML page for {path}: {page}");
    }
    let (code, _) = desk.api("/api/v1/changes/999").await;
    assert_eq!(code, 404);
    // A body that is not a form: a 400 page, not the framework's plain text.
    let resp = plain_client()
        .post(desk.url("/changes/1/review"))
        .header("cookie", &session)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("<html"));
    let (code, v) = desk.api("/api/v1/changes?since=yesterday").await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("RFC 3339"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_feeds_and_metrics_speak_to_machines_with_a_token() {
    let desk = Desk::start().await;
    let (code, sources) = desk.api("/api/v1/sources").await;
    assert_eq!(code, 200);
    assert_eq!(sources[0]["id"], "xk");
    assert_eq!(sources[0]["awaiting_review"], 1);
    let (_, source) = desk.api("/api/v1/sources/xk").await;
    let fees = source["facts"]["fees"].as_array().unwrap();
    assert!(fees.iter().any(|f| f["value"] == "65 EUR"), "{source}");
    let (_, page) = desk
        .api("/api/v1/changes?material=true&source=xk&since=2020-01-01T00:00:00Z")
        .await;
    let change = &page["changes"][0];
    assert_eq!(change["changes"][0]["kind"], "fee");
    assert_eq!(change["changes"][0]["before"], "50 EUR");
    assert_eq!(change["review_state"], "awaiting_review");
    assert_eq!(change["link"], desk.url("/changes/1"));
    // The OpenAPI document names every endpoint the desk serves.
    let (code, doc) = desk.api("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/sources",
        "/api/v1/sources/{id}",
        "/api/v1/changes",
        "/api/v1/changes/{n}",
        "/feed.atom",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let (_, none) = desk.api("/api/v1/changes?since=2999-01-01T00:00:00Z").await;
    assert_eq!(none["changes"].as_array().unwrap().len(), 0);

    // Atom 1.0, well-formed, for feed readers that can only pass ?token=.
    let resp = plain_client()
        .get(desk.url(&format!("/feed.atom?token={}", desk.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml")
    );
    let xml = resp.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let feed = doc.root_element();
    // The Atom 1.0 namespace (a name, not a host anyone is asked).
    let namespace = feed.tag_name().namespace().unwrap_or_default();
    assert!(namespace.ends_with("//www.w3.org/2005/Atom"), "{namespace}");
    for required in ["id", "title", "updated"] {
        assert!(
            feed.children().any(|n| n.has_tag_name(required)),
            "feed/{required}"
        );
    }
    let entries: Vec<_> = feed.children().filter(|n| n.has_tag_name("entry")).collect();
    assert_eq!(entries.len(), 1);
    let title = entries[0]
        .children()
        .find(|n| n.has_tag_name("title"))
        .unwrap()
        .text()
        .unwrap();
    assert!(title.contains("fee 50 EUR → 65 EUR"), "{title}");
    let resp = plain_client()
        .get(desk.url(&format!("/sources/xk/feed.atom?token={}", desk.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = plain_client()
        .get(desk.url("/feed.atom?token=not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Metrics: a token, not a session; every name visawatch_.
    let session = desk.sign_in().await;
    let (code, _) = desk.get("/metrics", &session).await;
    assert_eq!(code, 403);
    let resp = plain_client()
        .get(desk.url("/metrics"))
        .bearer_auth(&desk.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for name in [
        "visawatch_checks_total{status=\"changed\"} 1",
        "visawatch_checks_total{status=\"baseline\"} 1",
        "visawatch_changes_total{kind=\"fee\"} 1",
        "visawatch_outbox_pending",
        "visawatch_sources_unreadable 0",
        "visawatch_check_duration_seconds_bucket{le=\"+Inf\"} 2",
        "visawatch_check_duration_seconds_count 2",
        "visawatch_last_check_timestamp_seconds",
        "visawatch_alert_deliveries",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("visawatch_"), "{line}");
    }
}

/// The alert email links to the change's page; the link works once signed in.
#[tokio::test(flavor = "multi_thread")]
async fn the_alert_links_to_the_change_on_the_desk() {
    let desk = Desk::start().await;
    let outbox = desk.env.data().join("outbox");
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|m| m.contains("fee 50 EUR"))
        .expect("the change alert");
    let unfolded = eml.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("{}/sources/xk/changes/", desk.base);
    let at = unfolded
        .find(&prefix)
        .unwrap_or_else(|| panic!("no desk link in {eml}"));
    let link: String = unfolded[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let session = desk.sign_in().await;
    let path = link.strip_prefix(&desk.base).unwrap().replace("=3A", ":");
    let resp = plain_client()
        .get(desk.url(&path))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{path}");
    assert_eq!(resp.headers()["location"], "/changes/1");
}

/// Page text is untrusted: a `<script>` in a watched list shows as text.
#[tokio::test(flavor = "multi_thread")]
async fn page_text_is_escaped_everywhere() {
    let evil = String::from_utf8(xk(50))
        .unwrap()
        .replace("<li>", "<li>&lt;script&gt;alert(1)&lt;/script&gt; ")
        .into_bytes();
    let desk = Desk::start_with(evil).await;
    let session = desk.sign_in().await;
    for path in ["/review", "/changes/1", "/sources/xk"] {
        let (code, page) = desk.get(path, &session).await;
        assert_eq!(code, 200, "{path}");
        assert!(!page.contains("<script"), "{path}: {page}");
    }
    let (_, page) = desk.get("/changes/1", &session).await;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exits_0_on_sigterm() {
    let mut desk = Desk::start().await;
    let pid = desk.server.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), desk.server.wait())
        .await
        .expect("serve stops within 10 s")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Reviews written while a `check` writes: both land whole (SQLite
/// serialises the short transactions; the desk takes no folder lock).
#[tokio::test(flavor = "multi_thread")]
async fn reviews_and_a_running_check_both_land() {
    let desk = Desk::start().await;
    // Forty more sources for the next check to record.
    let mut config = std::fs::read_to_string(desk.env.config()).unwrap();
    let xk_url = config
        .split("url = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    for i in 0..40 {
        config.push_str(&source_toml(
            &format!("more-{i}"),
            &xk_url,
            "allow_private = true",
        ));
    }
    desk.env.write_config(&config);
    let session = desk.sign_in().await;
    // Configured, not yet checked: listed, with a page that says so.
    let (_, overview) = desk.get("/", &session).await;
    assert!(
        overview.contains("href=\"/sources/more-7\"") && overview.contains("never checked"),
        "{overview}"
    );
    let (code, page) = desk.get("/sources/more-7", &session).await;
    assert_eq!(code, 200);
    assert!(page.contains("Not checked yet"), "{page}");
    let (_, page) = desk.get("/changes/1", &session).await;
    let csrf = csrf_of(&page);
    let check = desk.env.check();
    let reviews = async {
        for i in 0..20 {
            let action = if i % 2 == 0 { "applied" } else { "reopen" };
            let resp = plain_client()
                .post(desk.url("/changes/1/review"))
                .header("cookie", &session)
                .form(&[("action", action), ("csrf", &csrf)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303, "review {i}");
        }
    };
    let ((code, report), ()) = tokio::join!(check, reviews);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["sources"].as_array().unwrap().len(), 41);
    let (_, c) = desk.api("/api/v1/changes/1").await;
    assert_eq!(c["reviews"].as_array().unwrap().len(), 20, "{c}");
    let (_, sources) = desk.api("/api/v1/sources").await;
    assert_eq!(sources.as_array().unwrap().len(), 41);
}

/// Issue 17: the overview of many sources comes in pages of 100, in
/// attention order (the source awaiting review first), with links that
/// keep the filters; a page past the end shows the last one.
#[tokio::test]
async fn the_overview_of_many_sources_comes_in_pages() {
    let desk = Desk::start().await;
    let cookie = desk.sign_in().await;
    // 150 more sources, not checked yet: the desk reads sources.toml again.
    let mut config = std::fs::read_to_string(desk.env.config()).unwrap();
    for i in 0..150 {
        config += &source_toml(
            &format!("extra-{i:03}"),
            &format!("http://127.0.0.1:9/extra/{i}"),
            "maintainers = [\"serbia@example.org\"]",
        );
    }
    std::fs::write(desk.env.config(), config).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rows = |html: &str| html.matches("data-label=\"Source\"").count();

    let (code, first) = desk.get("/", &cookie).await;
    assert_eq!(code, 200);
    assert!(first.contains("151 sources"), "{first}");
    assert_eq!(rows(&first), 100);
    assert!(
        first.contains("page 1 of 2") && first.contains("href=\"/?page=2\""),
        "{first}"
    );
    let xk = first.find("Kosovo permit").expect("the source awaiting review");
    assert!(
        xk < first.find("extra-000").unwrap(),
        "awaiting review comes first"
    );

    let (_, second) = desk.get("/?page=2", &cookie).await;
    assert_eq!(rows(&second), 51);
    assert!(second.contains("page 2 of 2") && second.contains("href=\"/?page=1\""));
    assert!(second.contains("extra-149") && !second.contains("Kosovo permit"));
    let (_, past) = desk.get("/?page=99", &cookie).await;
    assert!(past.contains("page 2 of 2"), "a page past the end is the last");

    let (_, filtered) = desk
        .get("/?maintainer=serbia%40example.org&page=2", &cookie)
        .await;
    assert_eq!(rows(&filtered), 50);
    assert!(
        filtered.contains("href=\"/?page=1&amp;maintainer=serbia%40example.org\""),
        "{filtered}"
    );
    let (_, awaiting) = desk.get("/?status=awaiting", &cookie).await;
    assert_eq!(rows(&awaiting), 1);
    assert!(!awaiting.contains("page 1 of"));
}
