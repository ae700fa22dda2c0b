//! `visawatch daemon`: the long-running service. Decides *when* to run the
//! same pipeline as `check` (cron schedules, catch-up after a restart, the
//! weekly digest, the weekly integrity check and prune); *what* a run does stays in
//! `pipeline`.
//!
//! It is told what to do through a channel of [`Signal`]s, which the CLI
//! feeds from the OS (SIGTERM/SIGINT → stop, SIGHUP → reload) and a test
//! feeds directly:
//! - stop: take no new work, give in-flight sources and the message being
//!   sent `grace_secs` to finish and be recorded, return.
//! - reload: re-read `sources.toml`; a bad file is logged and the running
//!   configuration kept.
//!
//! All schedules are evaluated in UTC.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::alert;
use crate::config::{self, Config};
use crate::model::Queued;
use crate::notify::{self, Mailer};
use crate::pipeline::{self, RunOptions};
use crate::render::Renderer;
use crate::store::{Access, Marks, Store};

const LAST_DIGEST: &str = "last_digest_at";
/// Meta key: the history marks the last digest covered up to.
const DIGEST_MARKS: &str = "digest_marks";

/// Opens a data folder for the daemon: its lock for the process's life,
/// and a database that passes its integrity check (else the start fails).
pub async fn open(data: &Path) -> anyhow::Result<Store> {
    let dir = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, Access::WriteNoWait)?;
        // Opening checks a changed file already; once is enough.
        if !store.verified() {
            store.verify()?;
        }
        Ok::<_, crate::store::StoreError>(store)
    })
    .await?
    .with_context(|| format!("opening data folder {}", data.display()))
}

/// Runs until told to stop through `signals` (the CLI turns SIGTERM and
/// SIGINT into [`Signal::Stop`], SIGHUP into [`Signal::Reload`]; a closed
/// channel is a stop). `config_path` is re-read on reload. Errors before the
/// loop starts (an `[email]` that cannot be set up) are returned. Once
/// running, a failing step (a full disk, say) is logged and retried after a
/// pause; the daemon stays up.
pub async fn run(
    config_path: &Path,
    data: &Path,
    mut config: Config,
    mut store: Store,
    signals: Signals,
) -> anyhow::Result<()> {
    let mut mailer = mailer(&config, data)?;
    let (stop_tx, _) = watch::channel(false);
    let mut ctl = Control {
        signals,
        stop: stop_tx,
        reload_wanted: false,
        renderer: None,
    };
    tracing::info!(
        config = %config_path.display(), data = %data.display(), sources = config.sources.len(),
        alerts_to = %mailer.describe(), "daemon started"
    );
    let mut next: Option<Vec<DateTime<Utc>>> = None;
    let mut failures = 0u32;
    while !ctl.stopping() {
        let step = tick(
            config_path,
            data,
            &mut config,
            &mut store,
            &mut mailer,
            &mut next,
            &mut ctl,
        )
        .await;
        let Err(e) = step else {
            failures = 0;
            continue;
        };
        // Whatever was not recorded is due again when the plan is rebuilt
        // from the store (a source whose last check is older than its
        // schedule's latest firing is due at once).
        next = None;
        failures += 1;
        let pause = Duration::from_secs((5u64 << failures.min(8)).min(MAX_PAUSE_SECS));
        tracing::error!(
            error = format!("{e:#}"),
            retry_in_secs = pause.as_secs(),
            "daemon step failed; staying up and retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            sig = next_signal(&mut ctl.signals) => match sig {
                Signal::Stop => ctl.request_stop(),
                Signal::Reload => reload(config_path, data, &mut config, &mut mailer),
            }
        }
    }
    if let Some((_, renderer)) = ctl.renderer.take() {
        renderer.close().await;
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// Longest pause after a failing step (a full disk, a damaged database).
const MAX_PAUSE_SECS: u64 = 600;

/// How often the database's integrity is checked while the daemon runs.
const VERIFY_EVERY: chrono::Duration = chrono::Duration::days(7);
const LAST_VERIFY: &str = "last_verified_at";
const PRUNE_EVERY: chrono::Duration = chrono::Duration::days(7);
const LAST_PRUNE: &str = "last_pruned_at";

/// What the daemon can be told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop taking new work; what is in flight gets `grace_secs`.
    Stop,
    /// Re-read the configuration (kept as it is when the new one is bad).
    Reload,
}

/// Where the daemon hears [`Signal`]s from.
pub type Signals = tokio::sync::mpsc::Receiver<Signal>;

/// The next signal; nobody left to send one means stop.
async fn next_signal(signals: &mut Signals) -> Signal {
    signals.recv().await.unwrap_or(Signal::Stop)
}

/// The daemon's side of the signals: a stop request reaches running work
/// through `stop` (in-flight checks and the message being sent finish within
/// the grace); a reload asked for meanwhile is remembered.
struct Control {
    signals: Signals,
    stop: watch::Sender<bool>,
    reload_wanted: bool,
    /// The browser for rendered pages, kept across runs (started on the
    /// first rendered page, again if it died, anew when its settings change).
    renderer: Option<(crate::config::Settings, Arc<Renderer>)>,
}

impl Control {
    /// The renderer for a run under `settings`.
    fn renderer(&mut self, settings: &crate::config::Settings) -> Arc<Renderer> {
        let same = |s: &crate::config::Settings| {
            (s.browser.as_ref(), s.browser_tabs, s.timeout_secs, &s.user_agent)
                == (
                    settings.browser.as_ref(),
                    settings.browser_tabs,
                    settings.timeout_secs,
                    &settings.user_agent,
                )
        };
        match &self.renderer {
            Some((s, r)) if same(s) => r.clone(),
            _ => {
                let r = Arc::new(Renderer::new(settings));
                self.renderer = Some((settings.clone(), r.clone()));
                r
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Runs `work` while listening for signals.
    async fn guard<F: std::future::Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => return r,
                sig = next_signal(&mut self.signals) => match sig {
                    Signal::Stop => self.request_stop(),
                    Signal::Reload => self.reload_wanted = true,
                },
            }
        }
    }
}

/// One turn of the service: sleep until something is due (or a signal),
/// then run the due checks, deliver the outbox, send the digest, verify the
/// database weekly. Any storage error is returned to the caller's retry.
#[allow(clippy::too_many_arguments)]
async fn tick(
    config_path: &Path,
    data: &Path,
    config: &mut Config,
    store: &mut Store,
    mailer: &mut Mailer,
    next: &mut Option<Vec<DateTime<Utc>>>,
    ctl: &mut Control,
) -> anyhow::Result<()> {
    let stop = notify::Stop {
        rx: Some(ctl.stop.subscribe()),
        grace: Duration::from_secs(config.settings.grace_secs),
    };
    ctl.reload_wanted = false;
    if next.is_none() {
        // (Re)starting: deliver what the outbox owes, then plan.
        ctl.guard(deliver(store, mailer, config, &stop)).await?;
        if store.meta(LAST_DIGEST)?.is_none() {
            // First start: the first digest covers the week from now on.
            store.set_meta(LAST_DIGEST, &crate::clock::now_stamp())?;
            store.set_meta(DIGEST_MARKS, &store.marks()?.encode())?;
        }
        *next = Some(plan(config, store, Utc::now())?);
        // Reading the catalog and the last checks left their scratch behind.
        crate::memory::give_back_freed();
    }
    let plan_now = next.as_mut().expect("planned above");
    let now = Utc::now();
    let digest_at = next_digest(config, store, now)?;
    // Also wake for the outbox's next retry: a failed alert must not wait
    // for the next day's check.
    let retry_at = store
        .next_delivery_at()?
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|t| t.max(now + chrono::Duration::seconds(1)));
    let wake = plan_now
        .iter()
        .copied()
        .chain([digest_at])
        .chain(retry_at)
        .min()
        .unwrap_or(digest_at);
    let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        _ = tokio::time::sleep(sleep) => {}
        sig = next_signal(&mut ctl.signals) => {
            match sig {
                Signal::Stop => ctl.request_stop(),
                Signal::Reload => {
                    reload(config_path, data, config, mailer);
                    *next = Some(plan(config, store, Utc::now())?);
                }
            }
            return Ok(());
        }
    }

    let now = Utc::now();
    // Positions in `config.sources`, as the plan is.
    let due: Vec<usize> = (0..plan_now.len()).filter(|&i| plan_now[i] <= now).collect();
    if !due.is_empty() {
        let opts = RunOptions {
            // Every source due (a shared schedule's daily round): no list
            // of 100,000 ids to hold and look up, "all" says it.
            only: if due.len() == config.sources.len() {
                Vec::new()
            } else {
                due.iter().map(|&i| config.sources[i].id.clone()).collect()
            },
            renderer: Some(ctl.renderer(&config.settings)),
            stop: Some(ctl.stop.subscribe()),
            grace: Duration::from_secs(config.settings.grace_secs),
            jitter: Duration::from_secs(config.settings.jitter_secs),
            counts_only: true,
            ..RunOptions::default()
        };
        let report = ctl
            .guard(pipeline::run(config, store, Some(mailer), &opts))
            .await?;
        tracing::info!(
            checked = report.checked,
            failed = report.failed,
            alerts_queued = report.alerts.queued,
            alerts_sent = report.alerts.sent,
            alerts_failed = report.alerts.failed,
            "run finished"
        );
        if ctl.stopping() {
            return Ok(());
        }
        let after = Utc::now();
        // The default schedule's next firing, once for all its sources.
        let default_next = config.schedule.after(&after).next().unwrap_or(far_future());
        for i in due {
            plan_now[i] = match &config.sources[i].schedule {
                None => default_next,
                Some(own) => own.after(&after).next().unwrap_or(far_future()),
            };
        }
        drop(report);
        crate::memory::give_back_freed();
    } else {
        // Nothing due: a wake-up for the outbox's retries and the digest.
        ctl.guard(deliver(store, mailer, config, &stop)).await?;
    }
    if !ctl.stopping() && next_digest(config, store, Utc::now())? <= Utc::now() {
        let queued = digest(config, store)?;
        if queued {
            ctl.guard(deliver(store, mailer, config, &stop)).await?;
        }
    }
    let verified = store
        .meta(LAST_VERIFY)?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    if !ctl.stopping() && verified.is_none_or(|t| Utc::now() - t >= VERIFY_EVERY) {
        store.verify()?;
        store.set_meta(LAST_VERIFY, &crate::clock::now_stamp())?;
        tracing::info!("database integrity verified");
    }
    let pruned = store
        .meta(LAST_PRUNE)?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    if !ctl.stopping() && pruned.is_none_or(|t| Utc::now() - t >= PRUNE_EVERY) {
        let keep = config.settings.keep_checks_days;
        let p = store.prune(Utc::now(), keep)?;
        store.set_meta(LAST_PRUNE, &crate::clock::now_stamp())?;
        tracing::info!(
            keep_checks_days = keep,
            checks = p.checks,
            snapshots = p.snapshots,
            alerts = p.alerts,
            bytes_before = p.bytes_before,
            bytes_after = p.bytes_after,
            "history pruned"
        );
    }
    if ctl.reload_wanted {
        reload(config_path, data, config, mailer);
        *next = Some(plan(config, store, Utc::now())?);
    }
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

/// Delivers what the outbox owes; a storage error goes to the caller.
async fn deliver(
    store: &mut Store,
    mailer: &Mailer,
    config: &Config,
    stop: &notify::Stop,
) -> anyhow::Result<()> {
    let d = notify::deliver(store, mailer, config, false, stop).await?;
    if d.sent + d.failed > 0 {
        tracing::info!(sent = d.sent, failed = d.failed, "outbox delivered");
    }
    let h = notify::deliver_hooks(store, config, false, stop).await?;
    if h.sent + h.failed > 0 {
        tracing::info!(sent = h.sent, failed = h.failed, "webhooks delivered");
    }
    if d.unaddressed > 0 {
        tracing::warn!(
            waiting = d.unaddressed,
            "alerts wait for recipients: add maintainers or [email].to"
        );
    }
    Ok(())
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

/// When each source is next due, by its position in `config.sources`. A
/// source never checked, or whose last check is older than its schedule's
/// latest firing (the daemon was down), is due now: a restart never skips
/// a day.
pub fn plan(config: &Config, store: &Store, now: DateTime<Utc>) -> anyhow::Result<Vec<DateTime<Utc>>> {
    Ok(plan_from(config, &store.last_checks()?, now))
}

/// [`plan`] from the latest checks already read.
pub fn plan_from(
    config: &Config,
    last: &HashMap<String, crate::store::LastCheck>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    // The default schedule's last and next firing, worked out once: with
    // 100,000 sources, asking cron for each took most of `status`'s second.
    let around = |schedule: &cron::Schedule| {
        (
            schedule.after(&now).next_back(),
            schedule.after(&now).next().unwrap_or(far_future()),
        )
    };
    let default = around(&config.schedule);
    let mut next = Vec::with_capacity(config.sources.len());
    for source in &config.sources {
        let (fired, upcoming) = match &source.schedule {
            None => default,
            Some(own) => around(own),
        };
        let last_at = last.get(&source.id).map(|l| l.started_at);
        let missed = match (last_at, fired) {
            (None, _) => true,
            (Some(last), Some(fired)) => fired > last,
            (Some(_), None) => false,
        };
        next.push(if missed { now } else { upcoming });
    }
    next
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
fn digest(config: &Config, store: &mut Store) -> anyhow::Result<bool> {
    let since = store.meta(LAST_DIGEST)?.unwrap_or_else(crate::clock::now_stamp);
    let now = crate::clock::now_stamp();
    // What the last digest covered, as history marks (a folder from before
    // marks: the marks at the last digest's time, once).
    let after = match store.meta(DIGEST_MARKS)?.as_deref().and_then(Marks::decode) {
        Some(m) => m,
        None => store.marks_at(&since)?,
    };
    let upto = store.marks()?;
    if config.email.to.is_empty() {
        tracing::warn!("digest skipped: [email].to is empty");
        store.set_meta(LAST_DIGEST, &now)?;
        store.set_meta(DIGEST_MARKS, &upto.encode())?;
        return Ok(false);
    }
    let max = alert::DIGEST_LIST_MAX;
    let changes = store.text_changes_after(&after, max)?;
    let alerted = store.material_changes_after(&after, max)?;
    let troubled = store.troubled_after(&after, max)?;
    let q = Queued {
        alert: alert::digest(&since, &now, &troubled, &alerted, &changes),
        from: config.email.from.to_string(),
        recipients: config.recipients(None),
        hooks: Vec::new(),
    };
    store.queue(&q, &now, notify::message_id)?;
    store.set_meta(LAST_DIGEST, &now)?;
    store.set_meta(DIGEST_MARKS, &upto.encode())?;
    tracing::info!(
        troubled = troubled.total,
        alerted = alerted.total,
        text_changes = changes.total,
        "digest queued"
    );
    Ok(true)
}
