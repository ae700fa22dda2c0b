//! Script-rendered pages (`render = "browser"`): the page is loaded in
//! headless Chromium, driven over WebDriver (Debian's `chromium-driver`,
//! with thirtyfour: the crate the desk's browser tests already build, where
//! a DevTools client such as chromiumoxide would add minutes to a clean
//! build on 2 cores), and its rendered DOM is handed to the same extraction.
//!
//! The browser starts on the first rendered page of a run and stops with the
//! run. It never outlives visawatch: chromedriver and its Chromium run in a
//! process group of their own, killed when the run ends, and a small
//! watchdog kills that group as soon as visawatch's process is gone, even
//! after a SIGKILL. At most `browser_tabs` pages load at once.
//!
//! Not for: deciding whether the page is reachable (the plain fetch before
//! rendering does that, with the private-network guard and the retries).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thirtyfour::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::model::{Failure, Reason, Render};

/// Why a page could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("browser not found: {0}")]
    NotFound(String),
    #[error("the browser did not start: {0}")]
    Start(String),
    #[error("rendering {url} timed out after {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("wait_for `{selector}` matched nothing within {secs} s")]
    WaitFor { selector: String, secs: u64 },
    #[error("rendering {url} failed: {detail}")]
    Page { url: String, detail: String },
}

impl From<RenderError> for Failure {
    fn from(e: RenderError) -> Self {
        Failure {
            reason: Reason::Browser,
            message: e.to_string(),
        }
    }
}

/// The browser, started on first use: for one run (`check`), or kept by the
/// daemon across runs and started again when it has died.
pub struct Renderer {
    settings: Settings,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
enum State {
    #[default]
    Idle,
    Running(Arc<Browser>),
    /// The last start failed: said to every rendered page until `retry`.
    Failed(RenderError, std::time::Instant),
}

/// How long a failed start is believed before trying again.
const RETRY_START: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(settings: &Settings) -> Renderer {
        Renderer {
            settings: settings.clone(),
            state: tokio::sync::Mutex::new(State::Idle),
        }
    }

    /// The running browser, started (again) when there is none.
    async fn browser(&self) -> Result<Arc<Browser>, RenderError> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Running(b) if b.alive() => return Ok(b.clone()),
            State::Running(_) => tracing::warn!("the browser died; starting it again"),
            State::Failed(e, at) if at.elapsed() < RETRY_START => return Err(e.clone()),
            _ => {}
        }
        match Browser::start(&self.settings).await {
            Ok(b) => {
                let b = Arc::new(b);
                *state = State::Running(b.clone());
                Ok(b)
            }
            Err(e) => {
                *state = State::Failed(e.clone(), std::time::Instant::now());
                Err(e)
            }
        }
    }

    /// Ends the browser's sessions politely, then the browser.
    pub async fn close(&self) {
        let state = std::mem::take(&mut *self.state.lock().await);
        if let State::Running(browser) = state {
            let idle: Vec<WebDriver> =
                std::mem::take(&mut *browser.idle.lock().unwrap_or_else(|e| e.into_inner()));
            for session in idle {
                let _ = tokio::time::timeout(Duration::from_secs(5), session.quit()).await;
            }
        }
    }

    /// The rendered DOM of `url` as HTML.
    pub async fn render(&self, url: &str, how: &Render) -> Result<String, RenderError> {
        let browser = self.browser().await?;
        browser
            .render(url, how, Duration::from_secs(self.settings.timeout_secs))
            .await
    }
}

/// chromedriver, the Chromium sessions it runs, and their watchdog.
struct Browser {
    driver: Mutex<tokio::process::Child>,
    watchdog: Option<std::process::Child>,
    port: u16,
    binary: PathBuf,
    user_agent: String,
    tabs: Semaphore,
    idle: Mutex<Vec<WebDriver>>,
    /// Chromium's profiles, removed with the browser.
    profiles: tempfile::TempDir,
}

/// The first of `names` on the PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    async fn start(settings: &Settings) -> Result<Browser, RenderError> {
        let binary = match &settings.browser {
            Some(b) if b.is_file() => b.clone(),
            Some(b) => {
                return Err(RenderError::NotFound(format!(
                    "{} (settings.browser)",
                    b.display()
                )));
            }
            None => on_path(&["chromium", "chromium-browser", "google-chrome"]).ok_or_else(|| {
                RenderError::NotFound("no chromium on the PATH; install it or set [settings] browser".into())
            })?,
        };
        let driver_path = binary
            .parent()
            .map(|d| d.join("chromedriver"))
            .filter(|p| p.is_file())
            .or_else(|| on_path(&["chromedriver"]))
            .ok_or_else(|| {
                RenderError::NotFound("no chromedriver beside the browser or on the PATH".into())
            })?;
        let profiles = tempfile::Builder::new()
            .prefix("visawatch-browser-")
            .tempdir()
            .map_err(|e| RenderError::Start(format!("a profile folder: {e}")))?;
        let mut driver = tokio::process::Command::new(&driver_path)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            // Its own group: the browsers it starts die with it (see Drop).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RenderError::Start(format!("{}: {e}", driver_path.display())))?;
        let pgid = driver.id().unwrap_or_default();
        let watchdog = watchdog(pgid);
        let mut lines = BufReader::new(driver.stdout.take().expect("piped")).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| RenderError::Start("chromedriver did not say its port".into()))?;
        // Keep draining its output, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tracing::info!(browser = %binary.display(), port, "browser started for rendered pages");
        Ok(Browser {
            driver: Mutex::new(driver),
            watchdog,
            port,
            binary,
            user_agent: settings.user_agent.clone(),
            tabs: Semaphore::new(settings.browser_tabs),
            idle: Mutex::new(Vec::new()),
            profiles,
        })
    }

    /// Whether chromedriver still runs.
    fn alive(&self) -> bool {
        let mut driver = self.driver.lock().unwrap_or_else(|e| e.into_inner());
        matches!(driver.try_wait(), Ok(None))
    }

    async fn session(&self) -> Result<WebDriver, RenderError> {
        if let Some(s) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(s);
        }
        let mut caps = DesiredCapabilities::chrome();
        let profile = tempfile::Builder::new()
            .prefix("profile-")
            .tempdir_in(self.profiles.path())
            .map_err(|e| RenderError::Start(format!("a profile folder: {e}")))?
            .keep();
        let start = |e: WebDriverError| RenderError::Start(e.to_string());
        caps.set_binary(&self.binary.to_string_lossy()).map_err(start)?;
        for arg in [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            // Its crash handler would run in a session of its own, outside
            // the group that is killed with the run.
            "--disable-crash-reporter".into(),
            "--disable-breakpad".into(),
            format!("--user-agent={}", self.user_agent),
            format!("--user-data-dir={}", profile.display()),
        ] {
            caps.add_arg(&arg).map_err(start)?;
        }
        WebDriver::new(format!("http://127.0.0.1:{}", self.port), caps)
            .await
            .map_err(start)
    }

    async fn render(&self, url: &str, how: &Render, timeout: Duration) -> Result<String, RenderError> {
        let _tab = self.tabs.acquire().await.expect("never closed");
        let session = self.session().await?;
        let secs = timeout.as_secs();
        let page = |e: WebDriverError| RenderError::Page {
            url: url.to_string(),
            detail: e.to_string(),
        };
        let loaded = tokio::time::timeout(timeout, async {
            session.goto(url).await.map_err(page)?;
            match &how.wait_for {
                Some(selector) => {
                    session
                        .query(By::Css(selector.as_str()))
                        .wait(timeout, Duration::from_millis(100))
                        .first()
                        .await
                        .map_err(|_| RenderError::WaitFor {
                            selector: selector.clone(),
                            secs,
                        })?;
                }
                None => quiet(&session).await,
            }
            session.source().await.map_err(page)
        })
        .await;
        let result = match loaded {
            Ok(r) => r,
            Err(_) => Err(RenderError::Timeout {
                url: url.to_string(),
                secs,
            }),
        };
        // A session that failed may be stuck: it is closed, not reused.
        if result.is_ok() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(session);
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(5), session.quit()).await;
        }
        result
    }
}

/// Waits until the page has loaded and fetched nothing new for half a
/// second (at most the caller's timeout): "the network went idle".
async fn quiet(session: &WebDriver) {
    let mut last = -1i64;
    let mut still = 0;
    loop {
        let seen = session
            .execute(
                "return document.readyState === 'complete' ? performance.getEntriesByType('resource').length : -1;",
                Vec::new(),
            )
            .await
            .ok()
            .and_then(|r| r.convert::<i64>().ok())
            .unwrap_or(-1);
        if seen >= 0 && seen == last {
            still += 1;
            if still >= 5 {
                return;
            }
        } else {
            still = 0;
        }
        last = seen;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process outside the browser's group that kills the group once
/// visawatch is gone (a SIGKILL runs no destructor) or the group is done.
fn watchdog(pgid: u32) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    if pgid == 0 {
        return None;
    }
    // dash's kill takes no `--`; a negative number is a process group.
    let script = "while kill -0 \"$0\" 2>/dev/null && kill -0 \"-$1\" 2>/dev/null; do sleep 0.5; done; \
                  kill -KILL \"-$1\" 2>/dev/null";
    std::process::Command::new("sh")
        .args(["-c", script, &std::process::id().to_string(), &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Sessions not closed (a run cut short): their browser dies with the
        // group below; dropping them would block on a goodbye to a dead driver.
        for session in std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner())) {
            std::mem::forget(session);
        }
        if let Some(pid) = self.driver.lock().unwrap_or_else(|e| e.into_inner()).id() {
            let _ = kill_group(pid);
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn kill_group(pgid: u32) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
}
