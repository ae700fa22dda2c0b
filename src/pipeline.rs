//! One run over the sources: the only module that knows the order of the
//! stages and calls them. It sequences and decides nothing: it reads what
//! the run needs from the store, has each source read (`read`: fetch and
//! extract) concurrently within the fetcher's limits, hands each reading to
//! `judge` as it arrives, records the checks in batches (every outcome whole
//! in one transaction, a batch at most every 200 ms), then delivers the
//! outbox. A failed source is a line in the report, never an abort.
//! `daemon` only decides when to call [`run`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::clock::now;
use crate::config::Config;
use crate::dispatch::{Dispatch, Next};
use crate::facts::noise;
use crate::fetch::{FetchError, Fetcher};
use crate::judge::{self, Context};
use crate::model::stamp;
use crate::model::{Check, Reading, Reason, Source};
use crate::notify::{self, Mailer, NotifyError};
use crate::read::{internal_failure, read_source};
use crate::report::{AlertCounts, RunReport, SourceReport, progress_bar};
use crate::store::{Store, StoreError, content_hash};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown source id `{0}` (see `visawatch sources`)")]
    UnknownSource(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] FetchError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these source ids (all when empty).
    pub only: Vec<String>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// The caller prints the report, which names every failure: log them
    /// at `info`, not as warnings too (`check`). The daemon has no report.
    pub reported: bool,
    /// Test hook: abort the process after recording, before delivering
    /// (`check --test-abort-before-delivery`), to prove the outbox survives.
    pub crash_before_delivery: bool,
    /// Daemon: becomes `true` on SIGTERM: sources not yet started are
    /// skipped, in-flight ones get `grace` to finish and be recorded.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    pub grace: Duration,
    /// Daemon: each host's sources start spread evenly over this window
    /// (from a random start per host), not all at its first second.
    pub jitter: Duration,
    /// Daemon: its browser for rendered pages, kept across runs (else a run
    /// starts one on its first rendered page and closes it at its end).
    pub renderer: Option<Arc<crate::render::Renderer>>,
    /// Daemon: the report counts the sources checked and failed but has no
    /// line per source. A round of 100,000 sources would otherwise hold a
    /// line for each, with every changed page's diff, until it ends.
    pub counts_only: bool,
}

/// Checks the selected sources once, records every outcome with the alerts
/// it causes, then delivers what the outbox owes (when given a mailer).
pub async fn run(
    config: &Config,
    store: &mut Store,
    mailer: Option<&Mailer>,
    opts: &RunOptions,
) -> Result<RunReport, RunError> {
    let started_at = stamp(&now());
    // Sets, not lists: the daemon names every due source, maybe 100,000.
    let only: std::collections::HashSet<&str> = opts.only.iter().map(String::as_str).collect();
    let sources: Vec<&Source> = config
        .sources
        .iter()
        .filter(|s| only.is_empty() || only.contains(s.id.as_str()))
        .collect();
    if sources.len() < only.len() {
        let known: std::collections::HashSet<&str> = sources.iter().map(|s| s.id.as_str()).collect();
        if let Some(id) = opts.only.iter().find(|id| !known.contains(id.as_str())) {
            return Err(RunError::UnknownSource(id.clone()));
        }
    }
    drop(only);

    // Building the client reads the system's root certificates: let that
    // happen on another core while the store is read.
    let settings = config.settings.clone();
    // One source of each kind tells which clients to build.
    let private = |s: &&&Source| s.allow_private || crate::fetch::host_is_private(&s.url);
    let targets: Vec<(reqwest::Url, bool)> =
        [sources.iter().find(private), sources.iter().find(|s| !private(s))]
            .into_iter()
            .flatten()
            .map(|s| (s.url.clone(), s.allow_private))
            .collect();
    let fetcher =
        tokio::task::spawn_blocking(move || Fetcher::new(&settings, targets.iter().map(|(u, p)| (u, *p))));
    let recheck = Duration::from_millis(config.settings.retry_backoff_ms.max(100));
    // What each task needs of the last good check; the previous text itself
    // is read only when there is a new text to compare it with.
    let ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    let (mut known, health) = store.prefetch(&ids)?;
    // Each task also looks at its source's `<id>.txt` (one `stat`): a kill
    // or a hand may have left it stale.
    let dir: Arc<std::path::Path> = store.dir().into();
    let mut stale_files: Vec<usize> = Vec::new();
    let mut fetcher = fetcher
        .await
        .map_err(|e| FetchError::Other {
            url: String::new(),
            detail: format!("building the HTTP client crashed: {e}"),
        })??
        .with_stop(opts.stop.clone());
    if config.settings.respect_robots {
        // Each host's robots.txt is read at most once a day.
        let since = stamp(&(now() - chrono::Duration::days(1)));
        fetcher = fetcher.with_robots(store.robots_since(&since)?);
    }
    let fetcher = Arc::new(fetcher);

    // Started on the first rendered page, stopped when the run ends.
    let own_renderer = opts.renderer.is_none();
    let renderer = match &opts.renderer {
        Some(r) => Some(r.clone()),
        None => sources
            .iter()
            .any(|s| s.render.is_some())
            .then(|| Arc::new(crate::render::Renderer::new(&config.settings))),
    };
    let bar = progress_bar(opts.progress, sources.len());
    // At most `concurrency` sources are in flight, each from its fetch to
    // the end of its extraction: that many page bodies in memory at once,
    // and that many tasks, however many sources the run has.
    let concurrency = config.settings.concurrency;
    let mut dispatch = Dispatch::new(
        sources.iter().map(|s| crate::fetch::host_key(&s.url)),
        config.settings.per_host,
        opts.jitter,
        fastrand::u64(..),
    );
    let run_clock = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    // Which source a task checks, for a task that crashes.
    let mut task_source = HashMap::new();
    let mut reports = Reports {
        lines: (!opts.counts_only).then(|| vec![None; sources.len()]),
        checked: 0,
        failed: 0,
    };
    let mut queued = 0;
    let mut stop = opts.stop.clone();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut stop_gone = false;
    // Outcomes wait here until a batch is full or `FLUSH_EVERY` has passed
    // since the oldest: sources finish one by one, and a commit per source
    // would cost more than an unchanged source's whole check.
    let mut pending: Vec<(usize, Check)> = Vec::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    // Sources that could not be reached wait for the end of the run: if most
    // hosts could not be, the network is down, and one alert says so.
    let mut unreachable: Vec<(usize, Check)> = Vec::new();
    let mut hosts: HashMap<&str, judge::HostSeen> = HashMap::new();
    loop {
        // Start what may start (none once stopping).
        let mut start_at = None;
        while deadline.is_none() && !stop.as_ref().is_some_and(|s| *s.borrow()) && tasks.len() < concurrency {
            let index = match dispatch.next(run_clock.elapsed()) {
                Next::Start(index) => index,
                Next::Wait(at) => {
                    start_at = Some(run_clock + at);
                    break;
                }
                Next::Busy | Next::Done => break,
            };
            let source = sources[index].clone();
            let mut k = known[index].take();
            let fetcher = fetcher.clone();
            let renderer = renderer.clone();
            let dir = dir.clone();
            let handle = tasks.spawn(async move {
                let stale = k.as_mut().is_some_and(|k| {
                    crate::store::text_file_is_stale(&dir, &source.id, k.file_stamp.take().as_deref())
                });
                let started = (now(), Instant::now());
                let validators = k.as_ref().map(|k| k.validators.clone());
                let prev_len = k.as_ref().map(|k| k.text_len);
                let prev_body = k.and_then(|k| k.body_hash);
                let result = read_source(
                    &fetcher,
                    renderer.as_deref(),
                    &source,
                    validators,
                    prev_len,
                    prev_body,
                    recheck,
                )
                .await;
                (index, started, result, stale)
            });
            task_source.insert(handle.id(), index);
        }
        if tasks.is_empty() && start_at.is_none() {
            // Everything started has ended, and nothing more will start.
            break;
        }
        let event = tokio::select! {
            joined = tasks.join_next_with_id() => Event::Joined(joined),
            () = sleep_until(start_at) => Event::StartDue,
            () = sleep_until(flush_at) => Event::FlushDue,
            () = sleep_until(deadline) => Event::GraceOver,
            stopping = wait_for_stop(stop.as_mut().filter(|_| deadline.is_none() && !stop_gone)) => Event::Stop(stopping),
        };
        let joined = match event {
            Event::Joined(Some(joined)) => joined,
            Event::Joined(None) | Event::StartDue => continue,
            Event::FlushDue => {
                flush(store, &mut pending, &mut reports, &bar)?;
                flush_at = None;
                continue;
            }
            Event::GraceOver => {
                tracing::warn!(
                    abandoned = tasks.len(),
                    "grace period over; unfinished checks are not recorded"
                );
                tasks.abort_all();
                break;
            }
            Event::Stop(true) => {
                tracing::info!(
                    in_flight = tasks.len(),
                    grace_secs = opts.grace.as_secs(),
                    "stopping: finishing in-flight checks"
                );
                deadline = Some(tokio::time::Instant::now() + opts.grace);
                continue;
            }
            Event::Stop(false) => {
                stop_gone = true;
                continue;
            }
        };
        // Whatever else has finished joins it.
        let mut ready = vec![joined];
        while let Some(j) = tasks.try_join_next_with_id() {
            ready.push(j);
        }
        for joined in ready {
            if let Ok((id, _)) = &joined {
                task_source.remove(id);
            }
            if let Ok((_, (index, _, _, true))) = &joined {
                stale_files.push(*index);
            }
            let (index, (started_at, clock), result) = match joined {
                // Never started because the run is stopping: left for the next run.
                Ok((_, (index, _, Reading::Failed(f), _))) if f.reason == crate::model::Reason::Stopped => {
                    dispatch.finished(index);
                    continue;
                }
                Ok((_, (index, started, result, _))) => {
                    dispatch.finished(index);
                    (index, started, result)
                }
                Err(crash) => match task_source.remove(&crash.id()) {
                    Some(index) if crash.is_panic() => {
                        dispatch.finished(index);
                        (
                            index,
                            (now(), Instant::now()),
                            Reading::Failed(internal_failure(format!("check crashed: {crash}"))),
                        )
                    }
                    _ => continue,
                },
            };
            let source = sources[index];
            if let Reading::Failed(f) = &result {
                if opts.reported {
                    tracing::info!(source = %source.id, error = %f.message, "check failed");
                } else {
                    tracing::warn!(source = %source.id, error = %f.message, "check failed");
                }
            }
            let rec = outcome(
                config,
                store,
                source,
                health[index].as_deref(),
                started_at,
                clock,
                result,
            )?;
            let seen = hosts
                .entry(source.url.host_str().unwrap_or_default())
                .or_default();
            match rec.outcome.failure() {
                Some(f) if f.reason.is_network() => {
                    seen.unreachable = true;
                    unreachable.push((index, rec));
                }
                failure => {
                    // A timeout or a crash says nothing of the network either way.
                    seen.answered |= failure.is_none_or(|f| {
                        !matches!(f.reason, Reason::Timeout | Reason::Internal | Reason::Other)
                    });
                    queued += rec.alerts.len();
                    pending.push((index, rec));
                }
            }
        }
        // A stopping daemon records at once: the process may be gone soon.
        let stopping = deadline.is_some();
        if pending.len() >= BATCH || stopping {
            flush(store, &mut pending, &mut reports, &bar)?;
            flush_at = None;
        } else if flush_at.is_none() && !pending.is_empty() {
            flush_at = Some(tokio::time::Instant::now() + FLUSH_EVERY);
        }
    }
    let down = judge::network_down(hosts.values());
    let affected: Vec<(String, String)> = unreachable
        .iter()
        .map(|(_, c)| {
            (
                c.source_id.clone(),
                c.outcome.failure().map(|f| f.message.clone()).unwrap_or_default(),
            )
        })
        .collect();
    for (index, mut rec) in unreachable {
        if down.is_some() {
            judge::quiet_for_outage(&mut rec);
        }
        queued += rec.alerts.len();
        pending.push((index, rec));
    }
    flush(store, &mut pending, &mut reports, &bar)?;
    bar.finish_and_clear();
    if let Some(renderer) = renderer.as_ref().filter(|_| own_renderer) {
        renderer.close().await;
    }
    let down_since = store.network_down_since()?;
    let answered = hosts.values().any(|h| h.answered);
    if let Some(q) = judge::network_news(config, down, down_since.as_deref(), answered, &affected) {
        let at = stamp(&now());
        let since = down.map(|_| at.as_str());
        tracing::warn!(down = down.is_some(), "{}", q.alert.subject);
        store.record_network(&q, since, &at, notify::message_id)?;
        queued += 1;
    }
    store.save_robots(&fetcher.fetched_robots())?;
    // A convenience copy: failing to repair one is worth a warning, not the run.
    for id in stale_files.into_iter().map(|i| &sources[i].id) {
        tracing::info!(source = %id, "repairing a stale text file from the latest snapshot");
        if let Err(e) = store.repair_text_file(id) {
            tracing::warn!(source = %id, error = %e, "cannot repair the text file");
        }
    }
    if opts.crash_before_delivery {
        eprintln!("visawatch: --test-abort-before-delivery: aborting before delivery");
        std::process::abort();
    }
    let mut alerts = AlertCounts {
        queued,
        ..AlertCounts::default()
    };
    let stop = notify::Stop {
        rx: opts.stop.clone(),
        grace: opts.grace,
    };
    // When stopping, alerts wait in the outbox for the next start.
    if let Some(mailer) = mailer.filter(|_| !stop.requested()) {
        let d = notify::deliver(store, mailer, config, false, &stop).await?;
        alerts.sent = d.sent;
        alerts.failed = d.failed;
        alerts.unaddressed = d.unaddressed;
        alerts.rejected = d.rejected;
        // Also with no [[webhook]] left: deliveries owed to a removed one
        // are rejected, not left pending.
        let h = notify::deliver_hooks(store, config, false, &stop).await?;
        if !config.webhooks.is_empty() || h.sent + h.failed > 0 {
            alerts.webhooks_sent = Some(h.sent);
            alerts.webhooks_failed = Some(h.failed);
        }
    }
    // `filter_map`, not `flatten`: it collects in place, into the same
    // allocation, instead of a second vector as long as the run.
    #[allow(clippy::filter_map_identity)]
    let sources: Vec<SourceReport> = reports
        .lines
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r)
        .collect();
    Ok(RunReport {
        started_at,
        finished_at: stamp(&now()),
        sources,
        checked: reports.checked,
        failed: reports.failed,
        alerts,
        delivered_to: mailer.map(Mailer::describe),
    })
}

/// Most outcomes written in one transaction.
const BATCH: usize = 128;

/// Longest an outcome waits for others to share its commit.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What the run loop woke up for.
enum Event<T> {
    Joined(Option<T>),
    /// A source's start time (in the jitter window) has come.
    StartDue,
    FlushDue,
    GraceOver,
    /// `true`: asked to stop; `false`: whoever could ask is gone.
    Stop(bool),
}

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits until asked to stop (`true`) or the sender is gone (`false`);
/// forever when there is nobody to ask.
async fn wait_for_stop(stop: Option<&mut tokio::sync::watch::Receiver<bool>>) -> bool {
    match stop {
        Some(rx) => rx.wait_for(|stopping| *stopping).await.is_ok(),
        None => std::future::pending().await,
    }
}

/// What a run keeps of the outcomes it recorded.
struct Reports {
    /// A line per source, by position (`None` when only counted).
    lines: Option<Vec<Option<SourceReport>>>,
    checked: usize,
    failed: usize,
}

/// Writes the waiting outcomes in one transaction, then reports them.
fn flush(
    store: &mut Store,
    pending: &mut Vec<(usize, Check)>,
    reports: &mut Reports,
    bar: &indicatif::ProgressBar,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let (indices, checks): (Vec<usize>, Vec<Check>) = std::mem::take(pending).into_iter().unzip();
    store.record_all(&checks, notify::message_id)?;
    for (index, check) in indices.into_iter().zip(checks) {
        let status = check.outcome.status();
        tracing::info!(source = %check.source_id, status = status.as_str(), ms = check.duration_ms, "checked");
        reports.checked += 1;
        reports.failed += usize::from(status == crate::model::Status::Failed);
        bar.inc(1);
        let Some(lines) = reports.lines.as_mut() else {
            continue;
        };
        let verdict = check.outcome.verdict();
        lines[index] = Some(SourceReport {
            status,
            material: verdict.is_some_and(|v| v.material),
            error: check.outcome.failure().map(|f| f.message.clone()),
            changes: verdict.map(|v| v.changes.clone()).unwrap_or_default(),
            diff: verdict.map(|v| v.diff.clone()),
            id: check.source_id,
            url: check.url,
        });
    }
    Ok(())
}

/// Reads from the store what judging one source needs (the previous text,
/// the suspect streak) and has `judge` decide.
fn outcome(
    config: &Config,
    store: &Store,
    source: &Source,
    health: Option<&crate::model::Health>,
    started_at: crate::model::Time,
    clock: Instant,
    reading: Reading,
) -> Result<Check, StoreError> {
    // A source whose last check read the page has a clean health; when it
    // fails now, the alert needs when it was last read: asked only then.
    let asked;
    let health = match health {
        Some(h) => h,
        None if matches!(reading, Reading::Failed(_) | Reading::Suspect(..)) => {
            asked = store.health(&source.id)?;
            &asked
        }
        None => {
            asked = crate::model::Health::default();
            &asked
        }
    };
    // Clean the stored text again: the source's ignore patterns may have changed.
    let previous = match &reading {
        Reading::Text(_) | Reading::Suspect(..) => store
            .previous(&source.id)?
            .map(|p| noise::clean(&p.text, &source.ignore)),
        _ => None,
    };
    let suspect_streak = match &reading {
        Reading::Suspect(read, _) => store.suspect_streak(&source.id, &content_hash(&read.text))?,
        _ => 0,
    };
    let ctx = Context {
        previous: previous.as_deref(),
        health,
        suspect_streak,
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
    };
    Ok(judge::judge(config, source, reading, ctx))
}
