//! `visawatch daemon`: the long-running service. Decides *when* to run the
//! same pipeline as `check` (cron schedules, catch-up after a restart, the
//! weekly digest) and handles signals; *what* a run does stays in `pipeline`.
//!
//! - SIGTERM / SIGINT: stop taking new work, give in-flight sources
//!   `grace_secs` to finish and be recorded, exit 0.
//! - SIGHUP: reload `sources.toml`; a bad file is logged and the running
//!   configuration kept.
//!
//! All schedules are evaluated in UTC.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::alert::{self, AlertKind};
use crate::config::{self, Config};
use crate::notify::{self, Mailer};
use crate::pipeline::{self, RunOptions};
use crate::store::{Access, Queued, Store};

const LAST_DIGEST: &str = "last_digest_at";

/// Runs until SIGTERM or SIGINT. Errors before the loop starts (bad
/// config, data folder locked by another daemon) are returned: the service
/// refuses to start.
pub async fn run(config_path: &Path, data: &Path) -> anyhow::Result<()> {
    let mut config = config::load(config_path)?;
    let dir = data.to_path_buf();
    let mut store = tokio::task::spawn_blocking(move || Store::open(&dir, Access::WriteNoWait))
        .await?
        .with_context(|| format!("opening data folder {}", data.display()))?;
    let mut mailer = mailer(&config, data)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tracing::info!(
        config = %config_path.display(), data = %data.display(), sources = config.sources.len(),
        alerts_to = %mailer.describe(), "daemon started"
    );

    deliver(&mut store, &mailer, &config).await;
    let mut next = plan(&config, &store, Utc::now())?;
    if store.meta(LAST_DIGEST)?.is_none() {
        // First start: the first digest covers the week from now on.
        store.set_meta(LAST_DIGEST, &pipeline::now())?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);

    loop {
        let now = Utc::now();
        let digest_at = next_digest(&config, &store, now)?;
        // Also wake for the outbox's next retry: a failed alert must not wait
        // for the next day's check.
        let retry_at = store
            .next_delivery_at()?
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| t.max(now + chrono::Duration::seconds(1)));
        let wake = next
            .values()
            .copied()
            .chain([digest_at])
            .chain(retry_at)
            .min()
            .unwrap_or(digest_at);
        let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                reload(config_path, data, &mut config, &mut mailer);
                next = plan(&config, &store, Utc::now())?;
                continue;
            }
        }

        let now = Utc::now();
        let due: Vec<String> = next
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !due.is_empty() {
            let opts = RunOptions {
                only: due.clone(),
                stop: Some(stop_rx.clone()),
                grace: Duration::from_secs(config.settings.grace_secs),
                jitter: Duration::from_secs(config.settings.jitter_secs),
                ..RunOptions::default()
            };
            let mut stopping = false;
            let mut reload_wanted = false;
            let result = {
                let run = pipeline::run(&config, &mut store, Some(&mailer), &opts);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        r = &mut run => break r,
                        _ = term.recv(), if !stopping => { stopping = true; let _ = stop_tx.send(true); }
                        _ = int.recv(), if !stopping => { stopping = true; let _ = stop_tx.send(true); }
                        _ = hup.recv() => reload_wanted = true,
                    }
                }
            };
            match result {
                Ok(report) => {
                    let failed = report
                        .sources
                        .iter()
                        .filter(|s| s.status == crate::model::Status::Failed)
                        .count();
                    tracing::info!(
                        checked = report.sources.len(),
                        failed,
                        alerts_queued = report.alerts.queued,
                        alerts_sent = report.alerts.sent,
                        alerts_failed = report.alerts.failed,
                        "run finished"
                    );
                }
                Err(e) => tracing::error!(error = %e, "run failed"),
            }
            if stopping {
                break;
            }
            let after = Utc::now();
            for id in &due {
                if let Some(source) = config.sources.iter().find(|s| &s.id == id) {
                    let upcoming = config.schedule_of(source).after(&after).next();
                    next.insert(id.clone(), upcoming.unwrap_or(far_future()));
                }
            }
            if reload_wanted {
                reload(config_path, data, &mut config, &mut mailer);
                next = plan(&config, &store, Utc::now())?;
            }
        } else {
            // Nothing due: a wake-up for the outbox's retries and the digest.
            deliver(&mut store, &mailer, &config).await;
        }
        if next_digest(&config, &store, Utc::now())? <= Utc::now() {
            digest(&config, &mut store, &mailer).await?;
        }
    }
    tracing::info!("daemon stopped");
    Ok(())
}

fn mailer(config: &Config, data: &Path) -> anyhow::Result<Mailer> {
    Mailer::new(
        &config.email,
        data,
        Duration::from_secs(config.settings.timeout_secs),
    )
    .with_context(|| format!("[email] in {}", config.path.display()))
}

async fn deliver(store: &mut Store, mailer: &Mailer, config: &Config) {
    match notify::deliver(store, mailer, config.email.retry_backoff_secs, false).await {
        Ok(d) if d.sent + d.failed > 0 => {
            tracing::info!(sent = d.sent, failed = d.failed, "outbox delivered")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "outbox delivery failed"),
    }
}

/// SIGHUP: the new file replaces the running config only when it loads.
fn reload(path: &Path, data: &Path, config: &mut Config, mailer: &mut Mailer) {
    match config::load(path).map_err(anyhow::Error::from).and_then(|c| {
        let m = self::mailer(&c, data)?;
        Ok((c, m))
    }) {
        Ok((c, m)) => {
            tracing::info!(sources = c.sources.len(), "configuration reloaded");
            *config = c;
            *mailer = m;
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "reload failed; keeping the running configuration"
        ),
    }
}

/// When each source is next due. A source never checked, or whose last
/// check is older than its schedule's latest firing (the daemon was down),
/// is due now: a restart never skips a day.
pub fn plan(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<HashMap<String, DateTime<Utc>>> {
    let last = store.last_checks()?;
    let mut next = HashMap::new();
    for source in &config.sources {
        let schedule = config.schedule_of(source);
        let last_at = last
            .get(&source.id)
            .and_then(|l| DateTime::parse_from_rfc3339(&l.started_at).ok())
            .map(|t| t.with_timezone(&Utc));
        let missed = match (last_at, schedule.after(&now).next_back()) {
            (None, _) => true,
            (Some(last), Some(fired)) => fired > last,
            (Some(_), None) => false,
        };
        let at = if missed {
            now
        } else {
            schedule.after(&now).next().unwrap_or(far_future())
        };
        next.insert(source.id.clone(), at);
    }
    Ok(next)
}

/// The next digest time after the last one sent.
fn next_digest(config: &Config, store: &Store, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let last = store
        .meta(LAST_DIGEST)?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    Ok(config.digest_schedule.after(&last).next().unwrap_or(far_future()))
}

fn far_future() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(3650)
}

/// The weekly digest to `[email].to`: text-only changes and sources in
/// trouble since the last digest, so nothing is silently swallowed.
async fn digest(config: &Config, store: &mut Store, mailer: &Mailer) -> anyhow::Result<()> {
    let since = store.meta(LAST_DIGEST)?.unwrap_or_else(pipeline::now);
    let now = pipeline::now();
    if config.email.to.is_empty() {
        tracing::warn!("digest skipped: [email].to is empty");
        store.set_meta(LAST_DIGEST, &now)?;
        return Ok(());
    }
    let changes = store.text_changes_since(&since)?;
    let troubled = store.troubled_since(&since)?;
    let mut text = format!("visawatch weekly digest, {since} to {now}\n\n");
    if troubled.is_empty() {
        text.push_str("Sources in trouble: none.\n");
    } else {
        text.push_str("Sources in trouble (failed checks):\n");
        for (id, n, err) in &troubled {
            text.push_str(&format!(
                "  - {id}: {n} failed checks; last error: {}\n",
                alert::one_line(err)
            ));
        }
    }
    if changes.is_empty() {
        text.push_str("\nText-only changes (not alerted): none.\n");
    } else {
        text.push_str("\nText-only changes (not alerted; `visawatch diff ID` for details):\n");
        for (id, at, word_diff) in &changes {
            text.push_str(&format!("\n  {id} at {at}:\n"));
            for line in word_diff.lines().filter(|l| l.starts_with(['-', '+'])).take(20) {
                text.push_str(&format!("    {line}\n"));
            }
        }
    }
    let subject = alert::subject(&format!(
        "weekly digest: {} sources in trouble, {} text-only changes",
        troubled.len(),
        changes.len()
    ));
    let q = Queued {
        alert: alert::plain_alert(AlertKind::Digest, subject, "visawatch weekly digest", text),
        from: config.email.from.to_string(),
        recipients: config.email.to.iter().map(|a| a.to_string()).collect(),
    };
    store.queue(&q, &now)?;
    store.set_meta(LAST_DIGEST, &now)?;
    tracing::info!(
        troubled = troubled.len(),
        text_changes = changes.len(),
        "digest queued"
    );
    deliver(store, mailer, config).await;
    Ok(())
}
