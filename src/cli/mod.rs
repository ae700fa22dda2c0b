//! The command line: clap definitions and one function per command, each
//! composing config, store and pipeline. Printing happens here and in
//! `report`; the stages never print.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::compare;

mod accounts;
mod probe;
use crate::config::{self, Config};
use crate::model::Source;
use crate::notify::{self, Mailer};
use crate::pipeline::{self, RunOptions};
use crate::report;
use crate::store::{Access, Store};

#[derive(Debug, Parser)]
#[command(
    name = "visawatch",
    version,
    about = "Watches official visa pages; tells editors when a fee, a duration or a document list changes"
)]
pub struct Cli {
    /// The sources file.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "sources.toml"
    )]
    pub config: PathBuf,
    /// The data folder (database and latest texts).
    #[arg(long, global = true, help_heading = "Global options", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Create the data folder if it does not exist (the default `snapshots`
    /// is always created): a mistyped --data must not start a new history.
    #[arg(long, global = true, help_heading = "Global options")]
    pub init: bool,
    /// Log lines on stderr as text or as JSON objects (for machines).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try visawatch offline: example pages on a loopback server, a change, the alert.
    /// Its data is temporary unless --data names a new or empty folder to keep it in.
    Demo,
    /// Run as a service: check sources on their cron schedules until SIGTERM
    /// (and serve the editors' desk when sources.toml has a [web] section).
    Daemon,
    /// Serve the editors' desk over the data folder until SIGTERM (for teams
    /// that run `check` from cron); listens on [web] listen, default 127.0.0.1:8080.
    Serve,
    /// The desk's editor accounts: add, list, remove, passwd.
    User {
        #[command(subcommand)]
        action: accounts::UserAction,
    },
    /// Read-only API tokens for JSON, feeds and metrics: add, list, remove.
    Token {
        #[command(subcommand)]
        action: accounts::TokenAction,
    },
    /// Per source: last check, status, next due time, failures in a row, pending alerts.
    Status {
        /// Print a JSON array on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch every source once, compare with the stored snapshot, record the result.
    Check {
        /// Only this source (repeatable).
        #[arg(long = "source", value_name = "ID")]
        sources: Vec<String>,
        /// Print one JSON object on stdout instead of lines.
        #[arg(long)]
        json: bool,
        /// Test hook, hidden: abort the process after recording and before
        /// delivering, to prove that the outbox survives a kill.
        #[arg(long, hide = true)]
        test_abort_before_delivery: bool,
    },
    /// Validate the sources file and list its sources.
    Sources,
    /// Print a source's latest canonical text (or its facts).
    Show {
        /// The source's id in sources.toml (`visawatch sources` lists them).
        id: String,
        /// Print the fees, durations and documents instead of the text.
        #[arg(long)]
        facts: bool,
        /// Print the text and the facts as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a URL or read a file and print its canonical text and facts; stores nothing.
    Probe {
        /// An http(s) URL or a path to an HTML or text file.
        target: String,
        /// CSS selector of the requirement sections (repeatable).
        #[arg(long)]
        select: Vec<String>,
        /// CSS selector to remove first (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Heading text where the section starts.
        #[arg(long)]
        section: Option<String>,
        /// Load the page in headless Chromium and read what its scripts wrote.
        #[arg(long)]
        render: bool,
        /// With --render: wait for this CSS selector to appear.
        #[arg(long, value_name = "CSS", requires = "render")]
        wait_for: Option<String>,
        /// Print the text and the facts as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A source's checks and changes, newest first.
    History {
        /// The source's id in sources.toml (`visawatch sources` lists them).
        id: String,
        /// Show at most this many checks.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print a JSON array on stdout instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Alerts not yet delivered (pending or rejected), oldest first.
    Outbox {
        /// Send every pending alert now, ignoring the backoff schedule.
        #[arg(long)]
        retry: bool,
        /// Print JSON on stdout instead of lines: `{"emails": […], "webhooks": […]}`.
        #[arg(long)]
        json: bool,
    },
    /// Send a signed test event to a `[[webhook]]` and print the receiver's answer.
    TestWebhook {
        /// The webhook's name in sources.toml.
        name: String,
    },
    /// Send a test message through the configured transport and print the outcome.
    TestEmail {
        /// Recipient (default: `[email].to`).
        #[arg(long)]
        to: Vec<String>,
    },
    /// Check the database's integrity (SQLite quick_check); exit 2 with the
    /// recovery steps when it is damaged.
    Verify,
    /// Delete unchanged and failed checks older than `keep_checks_days`
    /// (changes, their snapshots and reviews stay) and shrink the file.
    /// The daemon does this weekly.
    Prune {
        /// Keep this many days of checks instead of `keep_checks_days`.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
        keep_days: Option<u32>,
        /// Print what was removed as a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The latest change's diff.
    Diff {
        /// The source's id in sources.toml (`visawatch sources` lists them).
        id: String,
        /// Word-level diff (`[-old-]{+new+}`) instead of the unified diff.
        #[arg(long)]
        words: bool,
    },
}

/// How a command ends, as the process's exit code. An `Err` from [`run`]
/// is [`Exit::Usage`] (main prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (every source checked, changed or not; every alert sent).
    Done,
    /// 1: some source failed, or some alert was not delivered; the rest was
    /// still done and recorded.
    Partial,
    /// 2: a usage or config error, or a data folder that cannot be used.
    Usage,
}

impl Exit {
    fn partial_if(failed: bool) -> Exit {
        if failed { Exit::Partial } else { Exit::Done }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(match e {
            Exit::Done => 0,
            Exit::Partial => 1,
            Exit::Usage => 2,
        })
    }
}

/// The data folder when `--data` is not given; created when missing.
const DEFAULT_DATA: &str = "snapshots";

/// A writing command may create its data folder only when it is the default
/// one or `--init` asks: a mistyped `--data` must not silently start a new,
/// empty history (every source a new baseline).
fn ensure_data_folder(cli: &Cli) -> anyhow::Result<()> {
    if cli.data.exists() || cli.init || cli.data == std::path::Path::new(DEFAULT_DATA) {
        return Ok(());
    }
    anyhow::bail!(
        "data folder {} does not exist; pass --init to create it (a new, empty history), or check the --data path",
        cli.data.display()
    )
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    if matches!(
        cli.command,
        Command::Check { .. } | Command::Daemon | Command::Verify | Command::TestEmail { .. }
    ) || matches!(cli.command, Command::Outbox { retry: true, .. })
    {
        ensure_data_folder(&cli)?;
    }
    match cli.command {
        Command::Demo => {
            // The default data folder may hold a real history: never the demo's.
            let target = if cli.data == std::path::Path::new(DEFAULT_DATA) {
                crate::demo::DemoData::Temporary
            } else {
                crate::demo::DemoData::Keep(cli.data.clone())
            };
            crate::demo::run(target).await?;
            Ok(Exit::Done)
        }
        Command::Daemon => {
            let config = config::load(&cli.config)?;
            // Listen before anything can take long: an unhandled SIGTERM kills.
            let signals = os_signals()?;
            let store = match crate::daemon::open(&cli.data).await {
                Ok(store) => store,
                // A disk that is full or failing now may not be so in a
                // minute: exit 1, which the service unit restarts (exit 2
                // is for what a person must fix: config, lock, damage).
                Err(e) if is_passing_storage_error(&e) => {
                    eprintln!("visawatch: error: {e:#} (will be retried)");
                    return Ok(Exit::Partial);
                }
                Err(e) => return Err(e),
            };
            // The desk runs beside the scheduler and stops after it.
            let desk = match config.web.clone() {
                None => None,
                Some(web) => {
                    let alive = Arc::new(AtomicBool::new(true));
                    let desk = Arc::new(crate::web::Desk::new(
                        cli.data.clone(),
                        Arc::new(config.clone()),
                        Some(alive.clone()),
                    ));
                    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                    let server = tokio::spawn(async move {
                        crate::web::serve(&web, desk, async {
                            let _ = done_rx.await;
                        })
                        .await
                    });
                    Some((alive, done_tx, server))
                }
            };
            let ran = crate::daemon::run(&cli.config, &cli.data, config, store, signals).await;
            if let Some((alive, done_tx, server)) = desk {
                alive.store(false, Ordering::Relaxed);
                let _ = done_tx.send(());
                match server.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "the editors' desk stopped with an error"),
                    Err(e) => tracing::error!(error = %e, "the editors' desk crashed"),
                }
            }
            ran?;
            Ok(Exit::Done)
        }
        Command::Serve => {
            let config = config::load(&cli.config)?;
            let web = config.web.clone().unwrap_or_default();
            // Fail now, not at the first request, on a folder that cannot serve.
            let data = cli.data.clone();
            tokio::task::spawn_blocking(move || Store::open(&data, Access::Desk).map(drop))
                .await?
                .with_context(|| format!("opening data folder {}", cli.data.display()))?;
            let desk = Arc::new(crate::web::Desk::new(cli.data.clone(), Arc::new(config), None));
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            crate::web::serve(&web, desk, async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("stopping: finishing the requests in flight");
            })
            .await?;
            Ok(Exit::Done)
        }
        Command::User { action } => {
            let data = cli.data.clone();
            tokio::task::spawn_blocking(move || accounts::user(&data, action)).await??;
            Ok(Exit::Done)
        }
        Command::Token { action } => {
            let data = cli.data.clone();
            tokio::task::spawn_blocking(move || accounts::token(&data, action)).await??;
            Ok(Exit::Done)
        }
        Command::Status { json } => {
            // Reading 100,000 sources from sources.toml and their state
            // from the database take about as long each: on two cores.
            let path = cli.config.clone();
            let config = tokio::task::spawn_blocking(move || config::load(&path));
            let store = Store::open(&cli.data, Access::Read)?;
            let last = store.last_checks()?;
            let pending = store.pending_by_source()?;
            let waiting = store.unaddressed_by_source()?;
            // Failures in a row: none unless the last check failed.
            let mut health = HashMap::new();
            for (id, l) in &last {
                if l.status == crate::model::Status::Failed {
                    health.insert(id.clone(), store.health(id)?);
                }
            }
            let config = config.await??;
            let rows = status_rows(&config, &last, &pending, &waiting, &health);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", report::status(&rows));
            }
            Ok(Exit::Done)
        }
        Command::Check {
            sources,
            json,
            test_abort_before_delivery,
        } => {
            let config = config::load(&cli.config)?;
            // Reading a large catalog on two threads left its scratch in two
            // arenas: returned before the run's own memory comes on top.
            crate::memory::give_back_freed();
            let data = cli.data.clone();
            let mut store = tokio::task::spawn_blocking(move || Store::open(&data, Access::WriteWait))
                .await?
                .with_context(|| format!("opening data folder {}", cli.data.display()))?;
            let mailer = mailer(&config, &cli.data)?;
            let opts = RunOptions {
                only: sources,
                progress: !json,
                reported: true,
                crash_before_delivery: test_abort_before_delivery,
                ..RunOptions::default()
            };
            let report = pipeline::run(&config, &mut store, Some(&mailer), &opts).await?;
            if json {
                // Written as it is serialised: a report of 100,000
                // sources is never a second copy in memory.
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
                out.flush()?;
            } else {
                print!("{}", report::human(&report));
            }
            Ok(Exit::partial_if(report.any_failed()))
        }
        Command::Sources => {
            let config = config::load(&cli.config)?;
            print!("{}", report::sources(&config, crate::clock::now()));
            Ok(Exit::Done)
        }
        Command::Show { id, facts, json } => {
            let store = Store::open(&cli.data, Access::Read)?;
            let prev = store
                .previous(&id)?
                .with_context(|| format!("no snapshot of source `{id}` in {}", cli.data.display()))?;
            let f = compare::facts_of(&prev.text);
            match (facts, json) {
                (_, true) => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"id": id, "text": prev.text, "facts": f})
                    )?
                ),
                (true, false) => print!("{}", report::facts(&f)),
                (false, false) => print!("{}", prev.text),
            }
            Ok(Exit::Done)
        }
        Command::Probe {
            target,
            select,
            exclude,
            section,
            render,
            wait_for,
            json,
        } => {
            for s in select.iter().chain(&exclude).chain(&wait_for) {
                crate::extract::parse_selector(s).map_err(|e| anyhow::anyhow!("--select/--exclude: {e}"))?;
            }
            // The config file's settings when there is one (user agent, limits).
            let settings = config::load(&cli.config).map(|c| c.settings).unwrap_or_default();
            let url = reqwest::Url::parse(&target)
                .unwrap_or_else(|_| reqwest::Url::parse("file:///probe").expect("static URL"));
            let source = Source {
                id: "probe".into(),
                title: Some(target.clone()),
                url,
                select: select.into(),
                exclude: exclude.into(),
                section,
                maintainers: Vec::new().into(),
                language: None,
                ignore: Vec::new(),
                schedule: None,
                allow_private: false,
                render: render.then_some(crate::model::Render { wait_for }),
            };
            let probe = probe::probe(&target, source, &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&probe)?);
            } else {
                println!(
                    "{}\n--- facts ---\n{}",
                    probe.text.trim_end(),
                    report::facts(&probe.facts)
                );
            }
            Ok(Exit::Done)
        }
        Command::History { id, limit, json } => {
            let store = Store::open(&cli.data, Access::Read)?;
            anyhow::ensure!(
                store.knows(&id)?,
                "no history of source `{id}` in {}",
                cli.data.display()
            );
            let rows = store.history(&id, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", report::history(&rows));
            }
            Ok(Exit::Done)
        }
        Command::Outbox { retry, json } => {
            let config = config::load(&cli.config)?;
            let mut code = Exit::Done;
            if retry {
                let mut store = Store::open(&cli.data, Access::WriteWait)?;
                let mailer = mailer(&config, &cli.data)?;
                let d = notify::deliver(&mut store, &mailer, &config, true, &notify::Stop::default()).await?;
                // Nothing was owed: the listing below says so, once.
                if d.sent + d.failed > 0 {
                    let mut line = format!(
                        "{} sent, {} not delivered ({})",
                        d.sent,
                        d.failed,
                        mailer.describe()
                    );
                    if d.unaddressed > 0 {
                        line += &format!(
                            "; {} wait for recipients: add maintainers or [email].to",
                            d.unaddressed
                        );
                    }
                    if d.rejected > 0 {
                        line += &format!(
                            "; {} refused for good by the mail server, not retried",
                            d.rejected
                        );
                    }
                    eprintln!("{line}");
                }
                let h = notify::deliver_hooks(&mut store, &config, true, &notify::Stop::default()).await?;
                if h.sent + h.failed > 0 {
                    eprintln!(
                        "webhooks: {} delivered, {} not delivered ({} refused for good, not retried)",
                        h.sent, h.failed, h.rejected
                    );
                }
                if d.failed + h.failed > 0 {
                    code = Exit::Partial;
                }
            }
            let store = Store::open(&cli.data, Access::Read)?;
            let rows = store.outbox()?;
            let hooks = store.hook_outbox()?;
            if json {
                let both = serde_json::json!({"emails": rows, "webhooks": hooks});
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else {
                print!("{}", report::outbox(&rows, &hooks));
            }
            Ok(code)
        }
        Command::TestWebhook { name } => {
            let config = config::load(&cli.config)?;
            let Some(hook) = config.webhooks.iter().find(|w| w.name == name) else {
                let names: Vec<&str> = config.webhooks.iter().map(|w| w.name.as_str()).collect();
                anyhow::bail!(
                    "no [[webhook]] named `{name}` in {} (there are: {})",
                    config.path.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            };
            let body = crate::webhook::test_body(hook.format, &crate::clock::now_stamp());
            let id = format!("msg_visawatch_test_{}", chrono::Utc::now().timestamp());
            match notify::post(&notify::hook_client(&config), hook, &id, &body).await {
                notify::Posted::Sent(status) => {
                    println!(
                        "webhook {name} ({}): HTTP {status}, delivered",
                        hook.redacted_url()
                    );
                    Ok(Exit::Done)
                }
                notify::Posted::Retry { error, .. } | notify::Posted::Rejected(error) => {
                    println!("webhook {name} ({}): NOT delivered: {error}", hook.redacted_url());
                    Ok(Exit::Partial)
                }
            }
        }
        Command::TestEmail { to } => {
            let config = config::load(&cli.config)?;
            let to: Vec<lettre::Address> = if to.is_empty() {
                config.email.to.clone()
            } else {
                to.iter()
                    .map(|t| {
                        t.parse()
                            .with_context(|| format!("--to `{t}` is not an email address"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            anyhow::ensure!(!to.is_empty(), "no recipient: pass --to ADDR or set [email].to");
            let mailer = mailer(&config, &cli.data)?;
            let list = to.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            let now = crate::clock::now_stamp();
            let queued = crate::model::Queued {
                alert: crate::alert::test(&list, &now),
                from: config.email.from.to_string(),
                recipients: to.clone(),
                hooks: Vec::new(),
            };
            // Not queued (it reports at once), but made as any alert is.
            let msg = notify::build(&crate::model::Outgoing {
                outbox_id: 0,
                source_id: None,
                kind: queued.alert.kind.as_str().into(),
                message_id: notify::message_id(&queued, None, &now, chrono::Utc::now().timestamp_millis()),
                created_at: now,
                thread_root: None,
                from: queued.from,
                subject: queued.alert.subject,
                text: queued.alert.text,
                html: queued.alert.html,
                to: queued.recipients,
                pending: Vec::new(),
            })?;
            match mailer.send(&msg, &to).await {
                Ok(reply) => {
                    println!("sent to {list} via {}: {reply}", mailer.describe());
                    Ok(Exit::Done)
                }
                Err(e) => {
                    println!("NOT sent to {list} via {}: {}", mailer.describe(), e.detail);
                    Ok(Exit::Partial)
                }
            }
        }
        Command::Verify => {
            let data = cli.data.clone();
            // A writer's open verifies first; the lock keeps a run out meanwhile.
            tokio::task::spawn_blocking(move || {
                let store = Store::open(&data, Access::WriteWait)?;
                store.verify()
            })
            .await?
            .with_context(|| format!("verifying data folder {}", cli.data.display()))?;
            println!("{}: ok", cli.data.join(crate::store::DB_FILE).display());
            Ok(Exit::Done)
        }
        Command::Prune { keep_days, json } => {
            let config = config::load(&cli.config)?;
            let keep = keep_days.unwrap_or(config.settings.keep_checks_days);
            let data = cli.data.clone();
            let db = data.join(crate::store::DB_FILE);
            if !db.exists() {
                return Err(crate::store::StoreError::Missing { path: db }.into());
            }
            let pruned = tokio::task::spawn_blocking(move || {
                let mut store = Store::open(&data, Access::WriteWait)?;
                store.prune(crate::clock::now(), keep)
            })
            .await?
            .with_context(|| format!("pruning data folder {}", cli.data.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pruned)?);
            } else {
                print!("{}", report::pruned(&pruned, keep));
            }
            Ok(Exit::Done)
        }
        Command::Diff { id, words } => {
            let store = Store::open(&cli.data, Access::Read)?;
            let change = store
                .latest_change(&id)?
                .with_context(|| format!("source `{id}` has no recorded change"))?;
            println!(
                "# {} ({})",
                change.created_at,
                if change.material { "material" } else { "text only" }
            );
            print!("{}", if words { &change.word_diff } else { &change.diff });
            Ok(Exit::Done)
        }
    }
}

/// A full disk (or a failing one) while opening the data folder: it may
/// pass by itself, unlike a missing, locked, damaged or unwritable folder.
fn is_passing_storage_error(e: &anyhow::Error) -> bool {
    use crate::store::StoreError;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const EIO: i32 = 5;
    e.chain().any(|c| match c.downcast_ref::<StoreError>() {
        Some(StoreError::Io { cause, .. }) => {
            matches!(cause.raw_os_error(), Some(ENOSPC | EDQUOT | EIO))
        }
        Some(StoreError::Sql { source, .. }) => matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
        ),
        _ => false,
    })
}

/// SIGTERM and SIGINT as [`daemon::Signal::Stop`], SIGHUP as
/// [`daemon::Signal::Reload`], forwarded to the daemon for as long as it listens.
fn os_signals() -> std::io::Result<crate::daemon::Signals> {
    use crate::daemon::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
            if tx.send(sig).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// The configured transport; `[email]` problems are config errors (exit 2).
fn mailer(config: &Config, data: &std::path::Path) -> anyhow::Result<Mailer> {
    Mailer::new(
        &config.email,
        data,
        std::time::Duration::from_secs(config.settings.timeout_secs),
    )
    .with_context(|| format!("[email] in {}", config.path.display()))
}

/// `status`'s rows, in the file's order, from what the store said.
fn status_rows(
    config: &Config,
    last: &HashMap<String, crate::store::LastCheck>,
    pending: &HashMap<String, u32>,
    waiting: &HashMap<String, u32>,
    health: &HashMap<String, crate::model::Health>,
) -> Vec<report::StatusRow> {
    let next = crate::daemon::plan_from(config, last, chrono::Utc::now());
    let mut rows = Vec::with_capacity(config.sources.len());
    for (s, next_due) in config.sources.iter().zip(next) {
        let l = last.get(&s.id);
        rows.push(report::StatusRow {
            id: s.id.clone(),
            last_check: l.map(|l| crate::model::stamp(&l.started_at)),
            status: l.map(|l| l.status),
            error: l.and_then(|l| l.error.clone()),
            next_due: next_due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            failures_in_a_row: health.get(&s.id).map_or(0, |h| h.failures_in_a_row),
            pending_alerts: pending.get(&s.id).copied().unwrap_or(0),
            waiting_for_recipients: waiting.get(&s.id).copied().unwrap_or(0),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Issue 12: `--json`, `<ID>` and `--limit` had no description, and the
    /// global options were mixed into each command's own.
    #[test]
    fn every_option_and_argument_is_described_and_globals_stand_apart() {
        let mut cli = super::Cli::command();
        // Building propagates the global options into every command.
        cli.build();
        let mut globals_seen = 0;
        for cmd in cli.get_subcommands().filter(|c| c.get_name() != "help") {
            assert!(
                cmd.get_about().is_some(),
                "`{}` has no description",
                cmd.get_name()
            );
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id == "help" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().trim().is_empty()),
                    "`{} {id}` has no description",
                    cmd.get_name()
                );
                let global = ["config", "data", "init", "log_format"].contains(&id);
                globals_seen += usize::from(global);
                assert_eq!(
                    arg.get_help_heading() == Some("Global options"),
                    global,
                    "`{} {id}`: global options, and only they, under \"Global options\"",
                    cmd.get_name()
                );
            }
        }
        assert!(
            globals_seen > 4,
            "the global options were checked in the commands"
        );
    }
}
