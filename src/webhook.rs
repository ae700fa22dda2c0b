//! PURE: what a webhook receives. The body of each alert for each format
//! (`json` after the Standard Webhooks convention, `slack`, `teams`), and
//! the signature of a `json` delivery. Queueing, sending and retrying are
//! the outbox's and `notify`'s.
//!
//! Page text is untrusted: JSON escapes it by construction; Slack's
//! markup characters (`&`, `<`, `>`) are escaped; Teams cards show text as
//! text.

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::config::{HookEvent, HookFormat};
use crate::model::{Change, Source};

/// What happened, as every format tells it.
pub struct Event<'a> {
    pub kind: HookEvent,
    pub source: &'a Source,
    /// RFC 3339: when the check that raised it started.
    pub at: &'a str,
    pub changes: &'a [Change],
    pub diff: Option<&'a str>,
    /// The desk's page of the change, when `[web] base_url` is set.
    pub link: Option<&'a str>,
    /// Why the source cannot be read (`source_down`).
    pub error: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// A source going down (`error`: why) or reading again.
    pub fn health(kind: HookEvent, source: &'a Source, at: &'a str, error: Option<&'a str>) -> Event<'a> {
        Event {
            kind,
            source,
            at,
            changes: &[],
            diff: None,
            link: None,
            error,
        }
    }
}

/// The body a webhook of `format` receives for `event`.
pub fn body(format: HookFormat, event: &Event<'_>) -> String {
    let value = match format {
        HookFormat::Json => standard(event),
        HookFormat::Slack => slack(event),
        HookFormat::Teams => teams(event),
    };
    value.to_string()
}

/// The body of `visawatch test-webhook`: an event of type `test`.
pub fn test_body(format: HookFormat, at: &str) -> String {
    let text = "visawatch test: this webhook receives visawatch alerts";
    match format {
        HookFormat::Json => json!({"type": "test", "timestamp": at, "data": {"message": text}}),
        HookFormat::Slack => json!({"text": text}),
        HookFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": text, "wrap": true}],
                },
            }],
        }),
    }
    .to_string()
}

/// `{"type", "timestamp", "data": {"source", "changes", "diff", "link"}}`.
fn standard(e: &Event<'_>) -> Value {
    let mut data = json!({
        "source": {"id": e.source.id, "name": e.source.name(), "url": e.source.url.as_str()},
    });
    match e.kind {
        HookEvent::Change => {
            data["changes"] = serde_json::to_value(e.changes).unwrap_or(Value::Null);
            data["diff"] = json!(e.diff);
            data["link"] = json!(e.link);
        }
        HookEvent::SourceDown => data["error"] = json!(e.error),
        HookEvent::SourceRecovered => {}
    }
    json!({"type": e.kind.as_str(), "timestamp": e.at, "data": data})
}

/// The lines a person reads: the headline and one line per change.
fn lines(e: &Event<'_>) -> (String, Vec<String>) {
    match e.kind {
        HookEvent::Change => (
            format!("{} changed", e.source.name()),
            e.changes
                .iter()
                .filter(|c| c.kind.is_material())
                .map(Change::describe)
                .collect(),
        ),
        HookEvent::SourceDown => (
            format!("visawatch can no longer read {}", e.source.name()),
            e.error.map(str::to_string).into_iter().collect(),
        ),
        HookEvent::SourceRecovered => (format!("visawatch reads {} again", e.source.name()), Vec::new()),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn slack(e: &Event<'_>) -> Value {
    let (head, lines) = lines(e);
    let mut text = format!("*{}*", slack_escape(&head));
    for l in &lines {
        text.push_str("\n• ");
        text.push_str(&slack_escape(l));
    }
    let mut links = vec![format!("<{}|Official page>", e.source.url)];
    if let Some(link) = e.link {
        links.push(format!("<{link}|Review on the desk>"));
    }
    json!({
        "text": format!("{head}: {}", lines.join("; ")),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": links.join(" · ")}]},
        ],
    })
}

fn teams(e: &Event<'_>) -> Value {
    let (head, lines) = lines(e);
    let mut body =
        vec![json!({"type": "TextBlock", "text": head, "weight": "Bolder", "size": "Medium", "wrap": true})];
    body.extend(
        lines
            .iter()
            .map(|l| json!({"type": "TextBlock", "text": l, "wrap": true})),
    );
    let mut actions =
        vec![json!({"type": "Action.OpenUrl", "title": "Official page", "url": e.source.url.as_str()})];
    if let Some(link) = e.link {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Review on the desk", "url": link}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the secret.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn the_signature_matches_the_specification_s_example() {
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn slack_markup_in_page_text_stays_text() {
        assert_eq!(
            slack_escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
    }
}
