//! PURE: what a check means. From what was read, the previous text and the
//! source's health, decides the outcome (baseline, unchanged, changed,
//! failed), whether it is material, and which alerts go to whom.
//!
//! Every rule of that kind lives here and only here: the suspect-shrink
//! confirmation, "can no longer read" after N failures and "recovered", the
//! recipients of an alert. No SQLite, no HTTP, no async, no clock: the
//! caller reads the store and passes the time in. Not for: how a text is
//! compared (`compare`) or worded (`alert`).

use crate::alert;
use crate::compare;
use crate::config::{Config, HookEvent};
use crate::model::{
    Alert, Check, Failure, Health, HookQueued, Outcome, Queued, Reading, Reason, Source, Time, stamp,
};
use crate::webhook;

/// How many checks in a row must show the same shrunken text before it is
/// accepted as the page's real new content.
pub const SUSPECT_CONFIRMATIONS: usize = 3;

/// What the judge needs besides the reading.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The last good text, cleaned with the source's current rules.
    pub previous: Option<&'a str>,
    pub health: &'a Health,
    /// Checks in a row (before this one) that held back the same suspect text.
    pub suspect_streak: usize,
    /// When this check started, and how long it took.
    pub started_at: Time,
    pub duration_ms: u64,
}

/// Judges one source's reading into the check to record.
pub fn judge(config: &Config, source: &Source, reading: Reading, ctx: Context) -> Check {
    let outcome = decide(reading, ctx);
    let mut check = Check {
        source_id: source.id.clone(),
        name: source.name().to_string(),
        url: source.url.to_string(),
        started_at: ctx.started_at,
        duration_ms: ctx.duration_ms,
        outcome,
        alerts: Vec::new(),
        blind: None,
    };
    if let (Outcome::Changed(read, verdict), Some(prev)) = (&check.outcome, ctx.previous)
        && verdict.material
    {
        let at = stamp(&ctx.started_at);
        // The change's number is known only once stored: link by its check.
        let link = config.desk_link(&format!("/sources/{}/changes/{at}", source.id));
        let a = alert::change(source, verdict, prev, &read.text, &at, link.as_deref());
        let mut q = queued_for(config, source, a);
        q.hooks = hooks(
            config,
            &webhook::Event {
                kind: HookEvent::Change,
                source,
                at: &at,
                changes: &verdict.changes,
                diff: Some(&verdict.diff),
                link: link.as_deref(),
                error: None,
            },
        );
        check.alerts.push(q);
    }
    health_alerts(config, ctx.health, source, &mut check);
    check
}

/// The outcome alone: baseline, unchanged, changed or failed.
fn decide(reading: Reading, ctx: Context) -> Outcome {
    let read = match reading {
        Reading::NotModified => return Outcome::Unchanged(None),
        Reading::Failed(failure) => {
            return Outcome::Failed {
                failure,
                suspect_hash: None,
            };
        }
        Reading::Text(read) => read,
        // A shrunken text seen on enough checks in a row is the new page.
        Reading::Suspect(read, failure) => {
            if ctx.suspect_streak + 1 < SUSPECT_CONFIRMATIONS {
                return Outcome::Failed {
                    failure,
                    suspect_hash: Some(crate::model::content_hash(&read.text)),
                };
            }
            read
        }
    };
    let Some(previous) = ctx.previous else {
        return Outcome::Baseline(read);
    };
    // A bug in comparing must fail this source, not the run.
    let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compare::compare(previous, &read.text)
    }));
    match compared {
        Ok(None) => Outcome::Unchanged(Some(read)),
        Ok(Some(verdict)) => Outcome::Changed(read, verdict),
        Err(_) => Outcome::Failed {
            failure: Failure {
                reason: Reason::Internal,
                message:
                    "internal error, please report it with the page: comparing with the stored text crashed"
                        .into(),
            },
            suspect_hash: None,
        },
    }
}

/// Wraps an alert with its envelope. The recipients written now are
/// today's; an alert with none waits in the outbox until the config names
/// someone (`notify::deliver` decides again then).
pub fn queued_for(config: &Config, source: &Source, alert: Alert) -> Queued {
    Queued {
        alert,
        from: config.email.from.to_string(),
        recipients: config.recipients(Some(&source.id)),
        hooks: Vec::new(),
    }
}

/// The webhook deliveries an event owes: one body per webhook that wants it.
fn hooks(config: &Config, event: &webhook::Event<'_>) -> Vec<HookQueued> {
    config
        .webhooks
        .iter()
        .filter(|w| w.wants(Some(&event.source.id), event.kind))
        .map(|w| HookQueued {
            webhook: w.name.clone(),
            event: event.kind.as_str(),
            body: webhook::body(w.format, event),
        })
        .collect()
}

/// Source health: one "can no longer read" alert when a source reaches
/// `failure_alert_after` failures in a row, one "recovered" when it reads again.
fn health_alerts(config: &Config, health: &Health, source: &Source, check: &mut Check) {
    let after = config.settings.failure_alert_after;
    if after == 0 {
        return;
    }
    match check.outcome.failure() {
        Some(failure) if health.blind_since.is_none() && health.failures_in_a_row + 1 >= after => {
            let a = alert::blind(
                source,
                &failure.message,
                health.failures_in_a_row + 1,
                health.last_ok_at.as_deref(),
            );
            let mut q = queued_for(config, source, a);
            let at = stamp(&check.started_at);
            let event = webhook::Event::health(HookEvent::SourceDown, source, &at, Some(&failure.message));
            q.hooks = hooks(config, &event);
            check.alerts.push(q);
            check.blind = Some(true);
        }
        Some(_) => {}
        None if health.blind_since.is_some() => {
            let a = alert::recovered(source, health.failures_in_a_row);
            let mut q = queued_for(config, source, a);
            let at = stamp(&check.started_at);
            q.hooks = hooks(
                config,
                &webhook::Event::health(HookEvent::SourceRecovered, source, &at, None),
            );
            check.alerts.push(q);
            check.blind = Some(false);
        }
        None => {}
    }
}

/// Fewest hosts that must be unreachable at once before visawatch blames
/// its own network rather than each source.
pub const NETWORK_MIN_HOSTS: usize = 3;

/// What one run saw of one host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSeen {
    /// Some source of the host was read (or answered at all).
    pub answered: bool,
    /// Some source of the host failed for the network (DNS, connect).
    pub unreachable: bool,
}

/// Whether this machine's network is down, judged from one run: at least
/// [`NETWORK_MIN_HOSTS`] hosts that never answered, and they are most of
/// the hosts checked. Then `Some((unreachable, checked))`. One host down,
/// or a few among many, is the sources' problem and alerted per source.
pub fn network_down<'a>(hosts: impl IntoIterator<Item = &'a HostSeen>) -> Option<(usize, usize)> {
    let (mut unreachable, mut checked) = (0, 0);
    for h in hosts {
        checked += 1;
        unreachable += usize::from(h.unreachable && !h.answered);
    }
    (unreachable >= NETWORK_MIN_HOSTS && unreachable * 2 > checked).then_some((unreachable, checked))
}

/// While the network is down, a source that cannot be reached sends no
/// "can no longer read" of its own (one network alert says it for all) and
/// is not marked blind: if it still fails once the network is back, its
/// own alert goes out then.
pub fn quiet_for_outage(check: &mut Check) {
    if check.outcome.failure().is_some_and(|f| f.reason.is_network()) && check.blind == Some(true) {
        check
            .alerts
            .retain(|q| q.alert.kind != crate::model::AlertKind::Blind);
        check.blind = None;
    }
}

/// The network alert a run owes, if any: "cannot reach the network" when
/// it went down (`down`) and had not been said (`down_since` unset), "again"
/// when a run that read something finds it up after an outage. Addressed
/// to the maintainers of the sources cut off (`affected`: id, error), and
/// the news that it is back to every source's.
pub fn network_news(
    config: &Config,
    down: Option<(usize, usize)>,
    down_since: Option<&str>,
    answered: bool,
    affected: &[(String, String)],
) -> Option<Queued> {
    let alert = match (down, down_since) {
        (Some((unreachable, checked)), None) => {
            let examples: Vec<(String, String)> = affected.iter().take(5).cloned().collect();
            alert::network_down(unreachable, checked, &examples)
        }
        (None, Some(since)) if answered => alert::network_back(since),
        _ => return None,
    };
    let mut recipients: Vec<lettre::Address> = Vec::new();
    // Down: the maintainers of the sources it cut off; back: everyone's.
    let ids: Vec<Option<&str>> = if down.is_some() {
        affected.iter().map(|(id, _)| Some(id.as_str())).collect()
    } else {
        config.sources.iter().map(|s| Some(s.id.as_str())).collect()
    };
    let ids = if ids.is_empty() { vec![None] } else { ids };
    for id in ids {
        for r in config.recipients(id) {
            if !recipients.contains(&r) {
                recipients.push(r);
            }
        }
    }
    Some(Queued {
        alert,
        from: config.email.from.to_string(),
        recipients,
        hooks: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertKind, ChangeKind, Read, Status};

    fn config(extra: &str) -> Config {
        crate::config::parse(
            &format!(
                "[settings]\nfailure_alert_after = 3\n[email]\nfrom = \"vw <a@example.org>\"\nto = [\"ed@example.org\"]\n\
                 [[source]]\nid = \"xk\"\nname = \"Kosovo permit\"\nurl = \"https://example.org/xk\"\n{extra}"
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    const BEFORE: &str = "# Fees\nThe fee is 50 EUR.\n- Passport\n";
    const FEE_CHANGED: &str = "# Fees\nThe fee is 65 EUR.\n- Passport\n";
    const TEXT_CHANGED: &str = "# Fees\nThe fee is 50 EUR.\nApply in person.\n- Passport\n";

    fn failure(reason: Reason) -> Failure {
        Failure {
            reason,
            message: format!("{} happened", reason.as_str()),
        }
    }

    /// One row of the table: the reading, what came before, and what the
    /// judge must decide.
    struct Case {
        name: &'static str,
        reading: Reading,
        previous: Option<&'static str>,
        health: Health,
        streak: usize,
        status: Status,
        material: bool,
        alerts: &'static [AlertKind],
        blind: Option<bool>,
    }

    /// A check that started at 06:00 and took 5 ms.
    fn context<'a>(previous: Option<&'a str>, health: &'a Health, streak: usize) -> Context<'a> {
        Context {
            previous,
            health,
            suspect_streak: streak,
            started_at: "2026-11-30T06:00:00Z".parse().unwrap(),
            duration_ms: 5,
        }
    }

    fn healthy() -> Health {
        Health::default()
    }

    fn failing(n: u32, blind: bool) -> Health {
        Health {
            failures_in_a_row: n,
            blind_since: blind.then(|| "2026-11-01T00:00:00Z".to_string()),
            last_ok_at: Some("2026-10-31T00:00:00Z".into()),
        }
    }

    #[test]
    fn every_branch_of_the_judge() {
        let cases = vec![
            Case {
                name: "first text: baseline, never an alert",
                reading: Reading::Text(Read::of_text(BEFORE)),
                previous: None,
                health: healthy(),
                streak: 0,
                status: Status::Baseline,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "same text: unchanged",
                reading: Reading::Text(Read::of_text(BEFORE)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Unchanged,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "304: unchanged",
                reading: Reading::NotModified,
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Unchanged,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "fee changed: material, one change alert",
                reading: Reading::Text(Read::of_text(FEE_CHANGED)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Changed,
                material: true,
                alerts: &[AlertKind::Change],
                blind: None,
            },
            Case {
                name: "text only: recorded, not alerted",
                reading: Reading::Text(Read::of_text(TEXT_CHANGED)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Changed,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "fetch failed once: failed, no alert yet",
                reading: Reading::Failed(failure(Reason::Timeout)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Failed,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "error page: failed",
                reading: Reading::Failed(failure(Reason::Transient)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Failed,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "suspect shrink, first sight: held back",
                reading: Reading::Suspect(Read::of_text("# Fees\n"), failure(Reason::Suspect)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: 0,
                status: Status::Failed,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "suspect shrink, third sight: accepted as the page",
                reading: Reading::Suspect(Read::of_text("# Fees\n- Passport\n"), failure(Reason::Suspect)),
                previous: Some(BEFORE),
                health: healthy(),
                streak: SUSPECT_CONFIRMATIONS - 1,
                status: Status::Changed,
                material: true,
                alerts: &[AlertKind::Change],
                blind: None,
            },
            Case {
                name: "third failure in a row: can no longer read",
                reading: Reading::Failed(failure(Reason::Dns)),
                previous: Some(BEFORE),
                health: failing(2, false),
                streak: 0,
                status: Status::Failed,
                material: false,
                alerts: &[AlertKind::Blind],
                blind: Some(true),
            },
            Case {
                name: "already blind: no second alert",
                reading: Reading::Failed(failure(Reason::Dns)),
                previous: Some(BEFORE),
                health: failing(5, true),
                streak: 0,
                status: Status::Failed,
                material: false,
                alerts: &[],
                blind: None,
            },
            Case {
                name: "reads again after blind: recovered",
                reading: Reading::NotModified,
                previous: Some(BEFORE),
                health: failing(5, true),
                streak: 0,
                status: Status::Unchanged,
                material: false,
                alerts: &[AlertKind::Recovered],
                blind: Some(false),
            },
        ];
        let config = config("maintainers = [\"k@example.org\"]");
        for c in cases {
            let ctx = context(c.previous, &c.health, c.streak);
            let check = judge(&config, &config.sources[0], c.reading, ctx);
            assert_eq!(check.outcome.status(), c.status, "{}", c.name);
            assert_eq!(
                check.outcome.verdict().is_some_and(|v| v.material),
                c.material,
                "{}",
                c.name
            );
            let kinds: Vec<AlertKind> = check.alerts.iter().map(|q| q.alert.kind).collect();
            assert_eq!(kinds, c.alerts, "{}", c.name);
            assert_eq!(check.blind, c.blind, "{}", c.name);
            for q in &check.alerts {
                let to: Vec<String> = q.recipients.iter().map(ToString::to_string).collect();
                assert_eq!(to, ["k@example.org", "ed@example.org"], "{}", c.name);
            }
        }
    }

    #[test]
    fn a_held_back_suspect_remembers_its_text() {
        let config = config("");
        let healthy = Health::default();
        let ctx = context(Some(BEFORE), &healthy, 0);
        let check = judge(
            &config,
            &config.sources[0],
            Reading::Suspect(Read::of_text("# Fees\n"), failure(Reason::Suspect)),
            ctx,
        );
        match check.outcome {
            Outcome::Failed {
                failure,
                suspect_hash,
            } => {
                assert_eq!(failure.reason, Reason::Suspect);
                assert_eq!(suspect_hash, Some(crate::model::content_hash("# Fees\n")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fee_change_is_reported_with_its_values() {
        let config = config("");
        let healthy = Health::default();
        let ctx = context(Some(BEFORE), &healthy, 0);
        let check = judge(
            &config,
            &config.sources[0],
            Reading::Text(Read::of_text(FEE_CHANGED)),
            ctx,
        );
        let v = check.outcome.verdict().unwrap();
        assert_eq!(v.changes[0].kind, ChangeKind::Fee);
        assert_eq!(
            (v.changes[0].before.as_deref(), v.changes[0].after.as_deref()),
            (Some("50 EUR"), Some("65 EUR"))
        );
        assert_eq!(
            check.alerts[0].recipients[0].to_string(),
            "ed@example.org",
            "no maintainers: [email].to only"
        );
    }

    /// Issue 12: the machine offline is one network alert; a few hosts
    /// down among many is each source's own business.
    #[test]
    fn the_network_is_down_only_when_most_hosts_are_unreachable() {
        let seen = |answered, unreachable| HostSeen {
            answered,
            unreachable,
        };
        let down = [seen(false, true); 3];
        assert_eq!(network_down(&down), Some((3, 3)));
        let two = [seen(false, true), seen(false, true)];
        assert_eq!(
            network_down(&two),
            None,
            "fewer than {NETWORK_MIN_HOSTS} hosts prove nothing"
        );
        let mut half = vec![seen(false, true); 3];
        half.extend([seen(true, false); 3]);
        assert_eq!(
            network_down(&half),
            None,
            "half the hosts answer: not the network"
        );
        half.push(seen(true, true));
        half.push(seen(false, true));
        assert_eq!(
            network_down(&half),
            None,
            "a host that answered once is reachable"
        );
        let mut most = vec![seen(false, true); 5];
        most.push(seen(true, false));
        assert_eq!(network_down(&most), Some((5, 6)));
    }
}
