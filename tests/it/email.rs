//! Alert emails end to end: a real HTTP server serving the pages, the real
//! binary, a real SMTP server on 127.0.0.1 receiving what it sends.

use wiremock::MockServer;

use crate::helpers::*;
use crate::smtp::{Options, SmtpServer, free_port};

const XK: &str = "pages/xk-mpb-temporary-residence/v1.html";

/// The Kosovo permit page with its permit fee set to `fee` (v1 has 50 €).
fn xk_page(fee: u32, extra_document: Option<&str>) -> Vec<u8> {
    let mut html = String::from_utf8(fixture(XK)).unwrap();
    html = html.replace("<td>50 €</td>", &format!("<td>{fee} €</td>"));
    if let Some(doc) = extra_document {
        html = html.replace(
            "<li>Sigurimin shëndetësor</li>",
            &format!("<li>Sigurimin shëndetësor</li>\n    <li>{doc}</li>"),
        );
    }
    html.into_bytes()
}

async fn serve_xk(server: &MockServer, fee: u32, extra: Option<&str>) {
    server.reset().await;
    serve(server, "/xk", xk_page(fee, extra), "text/html; charset=utf-8").await;
}

fn config(http: &MockServer, smtp_port: u16, extra_email: &str, name: &str) -> String {
    format!(
        "{FAST}failure_alert_after = 3\n\n[email]\nfrom = \"visawatch <alerts@example.org>\"\nto = [\"editors@example.org\"]\n\
         smtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nretry_backoff_secs = 0\n{extra_email}\n\n{}",
        source_toml(
            "xk-permit",
            &format!("{}/xk", http.uri()),
            &format!(
                "name = {name:?}\nmaintainers = [\"kosovo@example.org\"]\nselect = \".content\"\nexclude = [\".share\"]"
            ),
        )
    )
}

/// A data folder whose `xk-permit` source has its baseline (fee 50 €).
async fn with_baseline(http: &MockServer, smtp_port: u16, name: &str) -> Env {
    let env = Env::new();
    env.write_config(&config(http, smtp_port, "", name));
    serve_xk(http, 50, None).await;
    let (code, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "baseline", "exit {code}: {r}");
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn material_change_mails_maintainers_and_editors_threaded() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = Env::new();
    env.write_config(&config(&http, smtp.port, "", "Kosovo temporary residence permit"));

    serve_xk(&http, 50, None).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk-permit")), (0, "baseline"));
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 0, "sent": 0, "failed": 0})
    );
    assert!(smtp.drain().is_empty(), "a baseline never sends an alert");

    serve_xk(&http, 65, None).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk-permit")), (0, "changed"), "{r}");
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 1, "failed": 0})
    );
    let got = smtp.drain();
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["editors@example.org", "kosovo@example.org"],
        "one envelope each"
    );
    let first = &got[0];
    let headers: Vec<String> = first
        .parsed()
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap().to_string())
        .collect();
    assert_eq!(
        headers,
        ["kosovo@example.org", "editors@example.org"],
        "To: names everyone"
    );
    assert_eq!(first.from, "alerts@example.org");
    assert_eq!(
        first.subject(),
        "[visawatch] Kosovo temporary residence permit: fee 50 EUR → 65 EUR"
    );
    // Issue 12: vacation replies must not answer an alert (RFC 3834).
    assert!(
        first.raw().contains("Auto-Submitted: auto-generated\r\n"),
        "{}",
        first.raw()
    );
    let msg = first.parsed();
    let text = msg.body_text(0).unwrap().to_string();
    let html = msg.body_html(0).unwrap().to_string();
    for part in [&text, &html] {
        assert!(part.contains("50 EUR") && part.contains("65 EUR"), "{part}");
        assert!(part.contains("What to do: check the official page"), "{part}");
        assert!(part.contains(&format!("{}/xk", http.uri())), "{part}");
        assert!(
            part.contains("Leje-qëndrimi i përkohshëm"),
            "context missing: {part}"
        );
    }
    assert!(
        text.contains("before │ Leje-qëndrimi i përkohshëm | 50 €")
            && text.contains(" after │ Leje-qëndrimi i përkohshëm | 65 €"),
        "{text}"
    );
    assert!(
        html.contains("<ins style=\"background:#9e9\">65</ins>"),
        "word-level highlight: {html}"
    );
    let first_id = msg.message_id().unwrap().to_string();
    assert!(
        msg.in_reply_to().as_text().is_none(),
        "the first alert starts the thread"
    );

    serve_xk(&http, 65, Some("Fotografi biometrike")).await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "changed");
    let got = smtp.drain();
    assert_eq!(got.len(), 2);
    let second = &got[0];
    assert_eq!(
        second.subject(),
        "[visawatch] Kosovo temporary residence permit: document added: Fotografi biometrike"
    );
    let msg2 = second.parsed();
    assert_ne!(msg2.message_id().unwrap(), first_id);
    assert_eq!(msg2.in_reply_to().as_text(), Some(first_id.as_str()));
    assert_eq!(msg2.references().as_text(), Some(first_id.as_str()));

    // Noise only: a new date line and counter. No alert.
    let noisy = String::from_utf8(xk_page(65, Some("Fotografi biometrike")))
        .unwrap()
        .replace("23.06.2026", "01.12.2026")
        .replace("4812", "5120");
    http.reset().await;
    serve(&http, "/xk", noisy.into_bytes(), "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "unchanged");
    assert!(smtp.drain().is_empty());
}

/// Issue 15: an age limit and a country list reach the alert's subject and
/// body and the JSON report in words editors read.
#[tokio::test(flavor = "multi_thread")]
async fn an_age_limit_and_a_country_added_are_alerted_in_words() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = with_baseline(&http, smtp.port, "Kosovo temporary residence permit").await;
    let page = |countries: &str, age: u32| {
        String::from_utf8(xk_page(50, None))
            .unwrap()
            .replace(
                "<h2>Taksa</h2>",
                &format!(
                    "<p>Shtetasit e {countries} hyjnë me letërnjoftim.</p>\
                     <p>Fëmijët nën {age} vjeç kanë nevojë për pëlqimin e të dy prindërve.</p><h2>Taksa</h2>"
                ),
            )
            .into_bytes()
    };
    http.reset().await;
    serve(
        &http,
        "/xk",
        page("Shqipërisë dhe të Malit të Zi", 14),
        "text/html; charset=utf-8",
    )
    .await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "changed");
    smtp.drain();

    http.reset().await;
    let after = page("Shqipërisë, të Malit të Zi dhe të Kroacisë", 16);
    serve(&http, "/xk", after, "text/html; charset=utf-8").await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "changed");
    let changes = &source(&r, "xk-permit")["changes"];
    assert!(
        changes.as_array().unwrap().contains(&serde_json::json!({
            "kind": "country_added", "before": null, "after": "HR", "context": "Kroacisë"
        })),
        "{changes}"
    );
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "age" && c["before"] == "14 years" && c["after"] == "16 years"),
        "{changes}"
    );
    let got = smtp.drain();
    assert_eq!(got.len(), 2, "maintainers and editors");
    let subject = got[0].subject();
    // The first change in the subject, every change in the body.
    assert_eq!(
        subject,
        "[visawatch] Kosovo temporary residence permit: age limit 14 → 16 years (+1 more)"
    );
    let text = got[0].parsed().body_text(0).unwrap().to_string();
    assert!(
        text.contains("country added: Kroacisë (HR)") && text.contains("age limit 14 → 16 years"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_page_text_and_names_stay_inert() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = Env::new();
    env.write_config(&config(
        &http,
        smtp.port,
        "",
        "Kosovo\r\nBcc: victim@evil.example",
    ));
    serve_xk(&http, 50, None).await;
    env.check().await;

    serve_xk(
        &http,
        50,
        Some("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; Dëshmi\r\nBcc: x@evil.example"),
    )
    .await;
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "changed", "{r}");
    let got = smtp.drain();
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        ["editors@example.org", "kosovo@example.org"],
        "no injected recipient"
    );
    let m = &got[0];
    let raw = m.raw();
    let headers = raw.split("\r\n\r\n").next().unwrap();
    assert!(!headers.to_ascii_lowercase().contains("\r\nbcc:"), "{headers}");
    assert!(
        m.subject()
            .starts_with("[visawatch] Kosovo Bcc: victim@evil.example: document added: <script>")
    );
    let html = m.parsed().body_html(0).unwrap().to_string();
    assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_down_for_two_runs_then_up_delivers_each_once_in_order() {
    let http = MockServer::start().await;
    let port = free_port();
    let env = with_baseline(&http, port, "Kosovo permit").await;

    serve_xk(&http, 60, None).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk-permit")), (0, "changed"));
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1})
    );
    serve_xk(&http, 70, None).await;
    let (_, r) = env.check().await;
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 2})
    );

    let (code, out, _) = env.run(&["outbox", "--json"]).await;
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str::<serde_json::Value>(&out).unwrap()["emails"].clone();
    assert_eq!(
        rows.as_array().unwrap().len(),
        4,
        "2 alerts × 2 recipients pending: {rows}"
    );
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{rows}"
    );

    let smtp = SmtpServer::start(Options {
        port: Some(port),
        ..Options::default()
    });
    let (_, r) = env.check().await;
    assert_eq!(status(&r, "xk-permit"), "unchanged");
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 0, "sent": 2, "failed": 0})
    );
    let got: Vec<String> = smtp.drain().iter().map(|m| m.subject()).collect();
    assert_eq!(
        got,
        [
            "[visawatch] Kosovo permit: fee 50 EUR → 60 EUR",
            "[visawatch] Kosovo permit: fee 50 EUR → 60 EUR",
            "[visawatch] Kosovo permit: fee 60 EUR → 70 EUR",
            "[visawatch] Kosovo permit: fee 60 EUR → 70 EUR",
        ],
        "one envelope per recipient, oldest alert first"
    );
    let (_, r) = env.check().await;
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 0, "sent": 0, "failed": 0})
    );
    assert!(smtp.drain().is_empty(), "nothing twice");
    let (_, out, _) = env.run(&["outbox"]).await;
    assert!(out.contains("outbox empty"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_recipient_does_not_block_the_others() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options {
        reject: vec!["kosovo@example.org".into()],
        ..Options::default()
    });
    let env = with_baseline(&http, smtp.port, "Kosovo permit").await;
    serve_xk(&http, 65, None).await;
    let (_, r) = env.check().await;
    assert_eq!(
        r["alerts"],
        serde_json::json!({"queued": 1, "sent": 0, "failed": 1})
    );
    let got = smtp.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["editors@example.org"]);

    let (_, out, _) = env.run(&["outbox", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str::<serde_json::Value>(&out).unwrap()["emails"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["recipient"], "kosovo@example.org");
    assert_eq!(rows[0]["status"], "rejected");
    assert!(rows[0]["last_error"].as_str().unwrap().contains("550"), "{rows}");
    // A permanent rejection is not retried.
    let (code, _, _) = env.run(&["outbox", "--retry"]).await;
    assert_eq!(code, 0);
    assert!(smtp.drain().is_empty());

    // Issue 12: the report said of a 550 that it waits and "is retried".
    serve_xk(&http, 70, None).await;
    let (code, out, _) = env.run(&["check"]).await;
    assert_eq!(
        code, 0,
        "every source was read (delivery has its own exit in `outbox --retry`): {out}"
    );
    assert!(
        out.contains("1 refused for good by the mail server (not retried)"),
        "{out}"
    );
    assert!(!out.contains("are retried"), "{out}");
}

/// Issue 12: `outbox --retry` on an empty outbox said so twice ("0 sent, 0
/// not delivered" and "outbox empty").
#[tokio::test(flavor = "multi_thread")]
async fn retrying_an_empty_outbox_says_so_once() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = with_baseline(&http, smtp.port, "Kosovo permit").await;
    let (code, out, err) = env.run(&["outbox", "--retry"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "outbox empty: every alert was delivered\n");
    assert!(!err.contains("0 sent"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_the_environment_over_starttls() {
    let smtp = SmtpServer::start(Options {
        tls_login: Some(("mailer".into(), "s3cret pass".into())),
        ..Options::default()
    });
    let env = Env::new();
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
    env.write_config(&format!(
        "[email]\nfrom = \"visawatch <alerts@example.org>\"\nto = [\"editors@example.org\"]\n\
         smtp_url = \"smtp://127.0.0.1:{}\"\ntls_ca_file = {ca:?}\n\n{}",
        smtp.port,
        source_toml("a", "https://example.org/a", "")
    ));
    let out = env
        .command(&["test-email"])
        .env("VISAWATCH_SMTP_USERNAME", "mailer")
        .env("VISAWATCH_SMTP_PASSWORD", "s3cret pass")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("sent to editors@example.org via smtp://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains(": 250"), "the server's reply is shown: {stdout}");
    let m = smtp.next(5).expect("test message");
    assert_eq!(m.user.as_deref(), Some("mailer"));
    assert_eq!(m.subject(), "[visawatch] test message");

    let out = env
        .command(&["test-email", "--to", "someone@example.org"])
        .env("VISAWATCH_SMTP_USERNAME", "mailer")
        .env("VISAWATCH_SMTP_PASSWORD", "wrong")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.starts_with("NOT sent to someone@example.org") && stdout.contains("535"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrong"), "never echo the password: {stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_smtp_alerts_are_eml_files_in_the_data_folder() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml(
            "xk-permit",
            &format!("{}/xk", http.uri()),
            "name = \"Kosovo permit\"\nmaintainers = [\"kosovo@example.org\"]\nselect = \".content\""
        )
    ));
    serve_xk(&http, 50, None).await;
    env.check().await;
    serve_xk(&http, 65, None).await;
    let (code, out, _) = env.run(&["check"]).await;
    assert_eq!(code, 0);
    let outbox = env.data().join("outbox");
    assert!(
        out.contains(&format!(
            "alerts: 1 queued, 1 sent, 0 not delivered (.eml files in {})",
            outbox.display()
        )),
        "{out}"
    );
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(files[0].path()).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(
        msg.subject(),
        Some("[visawatch] Kosovo permit: fee 50 EUR → 65 EUR")
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("kosovo@example.org")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_change_and_delivery_the_alert_still_goes_once() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = with_baseline(&http, smtp.port, "Kosovo permit").await;

    serve_xk(&http, 65, None).await;
    let out = env
        .command(&["check", "--json", "--test-abort-before-delivery"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "the hook aborts the process");
    assert!(smtp.drain().is_empty(), "killed before delivery");

    // The change and its alert were committed together: the next run
    // reports the page unchanged and delivers the waiting alert.
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk-permit")), (0, "unchanged"));
    assert_eq!(r["alerts"]["sent"], 1);
    let got = smtp.drain();
    assert_eq!(got.len(), 2, "one per recipient");
    assert!(
        got.iter()
            .all(|m| m.subject() == "[visawatch] Kosovo permit: fee 50 EUR → 65 EUR")
    );
    env.check().await;
    assert!(smtp.drain().is_empty(), "once");
    let (_, out, _) = env.run(&["history", "xk-permit"]).await;
    assert_eq!(out.matches("fee 50 EUR → 65 EUR").count(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_source_alerts_once_then_recovered() {
    let http = MockServer::start().await;
    let smtp = SmtpServer::start(Options::default());
    let env = with_baseline(&http, smtp.port, "Kosovo permit").await;

    http.reset().await; // every request is now a 404
    for run in 1..=4 {
        let (code, r) = env.check().await;
        assert_eq!((code, status(&r, "xk-permit")), (1, "failed"));
        let got = smtp.drain();
        if run == 3 {
            assert_eq!(got.len(), 2, "run {run}");
            assert!(
                got[0]
                    .subject()
                    .starts_with("[visawatch] can no longer read Kosovo permit: HTTP 404"),
                "{}",
                got[0].subject()
            );
        } else {
            assert!(
                got.is_empty(),
                "run {run}: {:?}",
                got.iter().map(|m| m.subject()).collect::<Vec<_>>()
            );
        }
    }
    serve_xk(&http, 50, None).await;
    let (code, r) = env.check().await;
    assert_eq!((code, status(&r, "xk-permit")), (0, "unchanged"));
    let got = smtp.drain();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].subject(),
        "[visawatch] recovered: Kosovo permit reads again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_with_nobody_to_send_to_is_shown_not_lost() {
    let http = MockServer::start().await;
    let env = Env::new();
    env.write_config(&format!(
        "{FAST}\n{}",
        source_toml("xk", &format!("{}/xk", http.uri()), "select = \".content\"")
    ));
    serve_xk(&http, 50, None).await;
    env.check().await;
    serve_xk(&http, 65, None).await;
    let (_, r) = env.check().await;
    assert_eq!(r["alerts"]["queued"], 1);
    let (_, out, _) = env.run(&["outbox"]).await;
    assert!(
        out.contains("no recipients") && out.contains("fee 50 EUR → 65 EUR"),
        "{out}"
    );
}
