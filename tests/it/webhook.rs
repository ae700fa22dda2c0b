//! Webhooks end to end (issue 16): the real binary posts to real receivers
//! on 127.0.0.1 (wiremock), which answer as Slack, Teams or a CMS would.

use base64::Engine;
use hmac::{KeyInit, Mac};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// The CMS's signing secret, as its operator would export it.
const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret_env() -> String {
    format!("whsec_{SECRET_B64}")
}

/// A receiver answering `status` (and `Retry-After` when given) on `route`.
async fn receiver(
    server: &MockServer,
    route: &str,
    status: u16,
    retry_after: Option<&str>,
    times: Option<u64>,
) {
    let mut template =
        ResponseTemplate::new(status).set_body_string(if status >= 400 { "bad payload" } else { "ok" });
    if let Some(secs) = retry_after {
        template = template.insert_header("Retry-After", secs);
    }
    let mock = Mock::given(method("POST"))
        .and(path(route))
        .respond_with(template);
    match times {
        Some(n) => mock.up_to_n_times(n).mount(server).await,
        None => mock.mount(server).await,
    }
}

/// Posts received on `route`.
async fn posts(server: &MockServer, route: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == route)
        .collect()
}

/// Checks the Standard Webhooks signature the way a receiver does.
fn verify(request: &wiremock::Request) -> serde_json::Value {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(sig, expected, "the signature verifies with the secret");
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "a fresh timestamp");
    serde_json::from_slice(&request.body).unwrap()
}

fn config(pages: &MockServer, hooks: &str) -> String {
    format!(
        "{FAST}failure_alert_after = 2\n\n{}\n{hooks}",
        source_toml(
            "xk-permit",
            &format!("{}/xk", pages.uri()),
            "name = \"Kosovo temporary residence permit\"\nselect = \".content\"\nexclude = [\".share\"]"
        )
    )
}

/// The signed `json` webhook named `cms`, at `base`/cms.
fn cms_hook(base: &str) -> String {
    hook(
        "cms",
        &format!("{base}/cms"),
        "json",
        "secret_env = \"VISAWATCH_CMS_SECRET\"",
    )
}

/// `[[webhook]]` entries.
fn hook(name: &str, url: &str, format: &str, extra: &str) -> String {
    format!("[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nformat = \"{format}\"\n{extra}\n")
}

/// A data folder with its baseline taken (fee 50 €), then the fee at 65 €.
async fn baseline_then_change(env: &Env, pages: &MockServer) -> serde_json::Value {
    serve(pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    let (code, r) = env.check_with_env().await;
    assert_eq!(status(&r, "xk-permit"), "baseline", "exit {code}: {r}");
    pages.reset().await;
    serve(pages, "/xk", xk(65), "text/html; charset=utf-8").await;
    let (_, r) = env.check_with_env().await;
    assert_eq!(status(&r, "xk-permit"), "changed", "{r}");
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_reaches_json_slack_and_teams_receivers_signed_and_routed() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    for route in ["/cms", "/slack/T0KEN", "/teams/T0KEN", "/rs-only"] {
        receiver(&hooks, route, 200, None, None).await;
    }
    let env = Env::new();
    let u = hooks.uri();
    env.write_config(&config(
        &pages,
        &[
            cms_hook(&u),
            hook("editors-slack", &format!("{u}/slack/T0KEN"), "slack", ""),
            hook(
                "editors-teams",
                &format!("{u}/teams/T0KEN"),
                "teams",
                "sources = [\"xk-*\"]",
            ),
            hook(
                "serbia",
                &format!("{u}/rs-only"),
                "json",
                "secret_env = \"VISAWATCH_CMS_SECRET\"\nsources = [\"rs-*\"]",
            ),
        ]
        .concat(),
    ));
    serve(&pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    env.check_with_env().await;
    assert!(
        hooks.received_requests().await.unwrap().is_empty(),
        "a baseline never sends"
    );
    pages.reset().await;
    serve(&pages, "/xk", xk(65), "text/html; charset=utf-8").await;
    let (_, r) = env.check_with_env().await;
    assert_eq!(r["alerts"]["webhooks_sent"], 3, "{r}");

    let cms = posts(&hooks, "/cms").await;
    assert_eq!(cms.len(), 1);
    let body = verify(&cms[0]);
    assert_eq!(body["type"], "change");
    assert_eq!(body["data"]["source"]["id"], "xk-permit");
    assert_eq!(
        body["data"]["source"]["name"],
        "Kosovo temporary residence permit"
    );
    assert_eq!(
        body["data"]["changes"][0],
        serde_json::json!({"kind": "fee", "before": "50 EUR", "after": "65 EUR", "context": "Leje-qëndrimi i përkohshëm"})
    );
    assert!(body["data"]["diff"].as_str().unwrap().contains("65 €"));

    let slack: serde_json::Value =
        serde_json::from_slice(&posts(&hooks, "/slack/T0KEN").await[0].body).unwrap();
    assert!(
        slack["text"].as_str().unwrap().contains("fee 50 EUR → 65 EUR"),
        "{slack}"
    );
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert!(
        slack["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("|Official page>")
    );

    let teams: serde_json::Value =
        serde_json::from_slice(&posts(&hooks, "/teams/T0KEN").await[0].body).unwrap();
    let card = &teams["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(
        card["content"]["body"][1]["text"],
        "fee 50 EUR → 65 EUR (Leje-qëndrimi i përkohshëm)"
    );

    assert!(posts(&hooks, "/rs-only").await.is_empty(), "routed by source");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_asking_to_wait_gets_the_delivery_once_after_the_wait() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    // 503 with Retry-After: 2 once, then 200.
    receiver(&hooks, "/cms", 503, Some("2"), Some(1)).await;
    receiver(&hooks, "/cms", 200, None, None).await;
    let env = Env::new();
    env.write_config(&config(&pages, &cms_hook(&hooks.uri())));
    let r = baseline_then_change(&env, &pages).await;
    assert_eq!(r["alerts"]["webhooks_failed"], 1, "{r}");
    assert_eq!(posts(&hooks, "/cms").await.len(), 1);
    let (_, listing, _) = env.run_with_env(&["outbox"]).await;
    assert!(
        listing.contains("webhook cms") && listing.contains("HTTP 503"),
        "{listing}"
    );

    // Before the wait is over, the next run does not post.
    env.check_with_env().await;
    assert_eq!(posts(&hooks, "/cms").await.len(), 1, "Retry-After honoured");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (_, r) = env.check_with_env().await;
    assert_eq!(r["alerts"]["webhooks_sent"], 1, "{r}");
    let got = posts(&hooks, "/cms").await;
    assert_eq!(got.len(), 2, "delivered once after the wait");
    assert_eq!(
        got[0].headers.get("webhook-id"),
        got[1].headers.get("webhook-id"),
        "the same webhook-id on the retry"
    );
    verify(&got[1]);
    // Nothing more afterwards.
    env.check_with_env().await;
    assert_eq!(posts(&hooks, "/cms").await.len(), 2);
    let (_, listing, _) = env.run_with_env(&["outbox"]).await;
    assert!(
        !listing.contains("webhook cms"),
        "delivered, no longer owed: {listing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_refusing_the_payload_is_not_retried() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    receiver(&hooks, "/cms", 400, None, None).await;
    let env = Env::new();
    env.write_config(&config(&pages, &cms_hook(&hooks.uri())));
    baseline_then_change(&env, &pages).await;
    assert_eq!(posts(&hooks, "/cms").await.len(), 1);
    env.run_with_env(&["outbox", "--retry"]).await;
    assert_eq!(
        posts(&hooks, "/cms").await.len(),
        1,
        "a 400 is not retried, even by --retry"
    );
    let (_, out, _) = env.run_with_env(&["outbox", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hook = &rows["webhooks"][0];
    assert_eq!(hook["status"], "rejected", "{rows}");
    assert_eq!(hook["last_error"], "HTTP 400: bad payload");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_going_down_and_back_reaches_the_webhooks_that_asked() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    receiver(&hooks, "/ops", 200, None, None).await;
    receiver(&hooks, "/cms", 200, None, None).await;
    let env = Env::new();
    let u = hooks.uri();
    env.write_config(&config(
        &pages,
        &[
            hook(
                "ops",
                &format!("{u}/ops"),
                "slack",
                "events = [\"source_down\", \"source_recovered\"]",
            ),
            cms_hook(&u),
        ]
        .concat(),
    ));
    serve(&pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    env.check_with_env().await;
    pages.reset().await; // 404 from now on
    env.check_with_env().await;
    env.check_with_env().await;
    let ops = posts(&hooks, "/ops").await;
    assert_eq!(ops.len(), 1, "one source_down after two failures");
    let down: serde_json::Value = serde_json::from_slice(&ops[0].body).unwrap();
    assert!(
        down["text"].as_str().unwrap().contains("can no longer read"),
        "{down}"
    );
    serve(&pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    env.check_with_env().await;
    let ops = posts(&hooks, "/ops").await;
    assert_eq!(ops.len(), 2);
    assert!(String::from_utf8_lossy(&ops[1].body).contains("reads Kosovo temporary residence permit again"));
    assert!(
        posts(&hooks, "/cms").await.is_empty(),
        "cms asked for changes only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_secrets_and_tokenised_urls_never_reach_the_log() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    receiver(&hooks, "/cms", 500, None, None).await;
    // A Slack URL whose token is the secret, on a port nobody listens on.
    let closed = crate::smtp::free_port();
    let env = Env::new();
    env.write_config(&config(
        &pages,
        &[
            cms_hook(&hooks.uri()),
            hook(
                "slack",
                &format!("http://127.0.0.1:{closed}/services/T0KEN/XYZZY"),
                "slack",
                "",
            ),
        ]
        .concat(),
    ));
    serve(&pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    let mut logs = String::new();
    for fee in [50, 65] {
        pages.reset().await;
        serve(&pages, "/xk", xk(fee), "text/html; charset=utf-8").await;
        let out = env
            .command(&["check"])
            .env("VISAWATCH_CMS_SECRET", secret_env())
            .env("VISAWATCH_LOG", "debug")
            .output()
            .await
            .unwrap();
        logs += &String::from_utf8_lossy(&out.stderr);
        logs += &String::from_utf8_lossy(&out.stdout);
    }
    let (_, listing, err) = env.run_with_env(&["outbox"]).await;
    logs += &listing;
    logs += &err;
    assert!(
        logs.contains("webhook not delivered"),
        "the failures are logged: {logs}"
    );
    assert!(listing.contains(&format!("127.0.0.1:{closed}/…")), "{listing}");
    for secret in ["T0KEN", "XYZZY", SECRET_B64, "whsec_"] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn test_webhook_sends_a_signed_test_event_and_prints_the_answer() {
    let hooks = MockServer::start().await;
    receiver(&hooks, "/cms", 200, None, None).await;
    receiver(&hooks, "/broken", 404, None, None).await;
    let env = Env::new();
    let u = hooks.uri();
    env.write_config(&config(
        &hooks,
        &[cms_hook(&u), hook("broken", &format!("{u}/broken"), "slack", "")].concat(),
    ));
    let (code, out, _) = env.run_with_env(&["test-webhook", "cms"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HTTP 200, delivered"), "{out}");
    let body = verify(&posts(&hooks, "/cms").await[0]);
    assert_eq!(body["type"], "test");
    let (code, out, _) = env.run_with_env(&["test-webhook", "broken"]).await;
    assert_ne!(code, 0);
    assert!(out.contains("NOT delivered: HTTP 404: bad payload"), "{out}");
    let (code, _, err) = env.run_with_env(&["test-webhook", "nope"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no [[webhook]] named `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_mistakes_are_refused_at_load_with_their_line() {
    let pages = MockServer::start().await;
    let env = Env::new();
    // (the [[webhook]] entries, where the error points (its n-th
    // occurrence), the message)
    let cases = [
        (
            hook("a", "http://127.0.0.1:9/x", "slack", "colour = \"red\""),
            None,
            "unknown field `colour`",
        ),
        (
            [
                hook("a", "http://127.0.0.1:9/x", "slack", ""),
                hook("a", "http://127.0.0.1:9/y", "slack", ""),
            ]
            .concat(),
            Some(("\"a\"", 1)),
            "duplicate webhook name",
        ),
        (
            hook("a", "ftp://127.0.0.1/x", "slack", ""),
            Some(("\"ftp:", 0)),
            "url is not an http(s) URL",
        ),
        (
            hook(
                "a",
                "http://127.0.0.1:9/x",
                "json",
                "secret_env = \"VISAWATCH_NOT_SET\"",
            ),
            Some(("\"VISAWATCH_NOT_SET\"", 0)),
            "environment variable VISAWATCH_NOT_SET is not set",
        ),
        (
            hook("a", "http://127.0.0.1:9/x", "json", ""),
            Some(("\"http://127.0.0.1:9/x", 0)),
            "a json webhook needs secret_env",
        ),
        (
            hook("a", "http://127.0.0.1:9/x", "discord", ""),
            Some(("\"discord\"", 0)),
            "format `discord` is not json, slack or teams",
        ),
    ];
    for (hooks, at, message) in cases {
        let text = config(&pages, &hooks);
        env.write_config(&text);
        let (code, _, err) = env.run_with_env(&["sources"]).await;
        assert_eq!(code, 2, "{text}\n{err}");
        let want = match at {
            // The file, line and column of the offending value.
            Some((needle, nth)) => {
                let offset = text.match_indices(needle).nth(nth).expect("needle").0;
                let line = text[..offset].matches('\n').count() + 1;
                let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("sources.toml:{line}:{column}: [[webhook]] a: {message}")
            }
            None => message.to_string(),
        };
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
    }
}

/// Killed while the receiver held the POST: the next run sends it again,
/// with the same `webhook-id` (receivers dedupe on it), and only once.
#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_post_the_next_run_repeats_it_once_with_the_same_id() {
    let pages = MockServer::start().await;
    let hooks = MockServer::start().await;
    // The first answer takes 30 s: the process is killed before it comes.
    Mock::given(method("POST"))
        .and(path("/cms"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(30)))
        .up_to_n_times(1)
        .mount(&hooks)
        .await;
    receiver(&hooks, "/cms", 200, None, None).await;
    let env = Env::new();
    env.write_config(&config(&pages, &cms_hook(&hooks.uri())));
    serve(&pages, "/xk", xk(50), "text/html; charset=utf-8").await;
    env.check_with_env().await;
    pages.reset().await;
    serve(&pages, "/xk", xk(65), "text/html; charset=utf-8").await;
    let mut child = env
        .command(&["check"])
        .env("VISAWATCH_CMS_SECRET", secret_env())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while posts(&hooks, "/cms").await.is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(posts(&hooks, "/cms").await.len(), 1, "the receiver has the POST");
    child.kill().await.unwrap();

    let (_, listing, _) = env.run_with_env(&["outbox"]).await;
    assert!(
        listing.contains("webhook cms") && listing.contains("sending"),
        "{listing}"
    );
    let (_, r) = env.check_with_env().await;
    assert_eq!(r["alerts"]["webhooks_sent"], 1, "{r}");
    env.check_with_env().await;
    let got = posts(&hooks, "/cms").await;
    assert_eq!(got.len(), 2, "one repeat, no more");
    assert_eq!(got[0].headers.get("webhook-id"), got[1].headers.get("webhook-id"));
    assert_eq!(got[0].body, got[1].body, "the same bytes");
}
