//! `visawatch demo`: the whole product offline in one command. Serves three
//! bundled example pages (English, Albanian, Serbian Cyrillic) on a loopback
//! HTTP server, checks them into a temporary data folder, changes a fee, a
//! duration and a document list, checks again, and shows the report and the
//! alerts written to the outbox.
//!
//! Its data goes to a temporary folder removed at the end, or to the folder
//! `--data` names (new or empty), kept for `history`, `diff` and `status`.
//!
//! Not for production use and not a test fixture server: it serves exactly
//! the pages below and nothing else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::config;
use crate::notify::Mailer;
use crate::pipeline::{self, RunOptions};
use crate::report;
use crate::store::{Access, Store};

const US: &str = include_str!("../tests/fixtures/pages/us-state-kosovo-entry/v1.html");
const XK: &str = include_str!("../tests/fixtures/pages/xk-mpb-temporary-residence/v1.html");
const RS: &str = include_str!("../tests/fixtures/pages/rs-mup-cyrillic/v1.html");

type Pages = Arc<RwLock<HashMap<String, String>>>;

/// Where the demo writes: a folder of the user's to keep, or a temporary one.
pub enum DemoData {
    Keep(PathBuf),
    Temporary,
}

pub async fn run(target: DemoData) -> anyhow::Result<()> {
    // The temporary folder lives until the end of this function.
    let temporary;
    let data = match &target {
        DemoData::Keep(dir) => {
            let used = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if used {
                anyhow::bail!(
                    "{} is not empty: the demo writes a new history; name a new or empty folder with --data",
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        DemoData::Temporary => {
            temporary = tempfile::Builder::new().prefix("visawatch-demo-").tempdir()?;
            temporary.path().join("data")
        }
    };
    let pages: Pages = Arc::new(RwLock::new(HashMap::from([
        ("/us-kosovo".to_string(), US.to_string()),
        ("/xk-residence".to_string(), XK.to_string()),
        ("/rs-boravak".to_string(), RS.to_string()),
    ])));
    let addr = serve(pages.clone()).await?;

    // The config lives in the data folder: the demo's folder is all it leaves.
    let config_path = data.join("demo-sources.toml");
    std::fs::create_dir_all(&data)?;
    std::fs::write(
        &config_path,
        format!(
            r#"[[source]]
id = "us-kosovo-entry"
name = "Kosovo: entry, exit and visa requirements (example)"
url = "http://{addr}/us-kosovo"
section = "Entry, Exit and Visa Requirements"
maintainers = ["kosovo@example.org"]

[[source]]
id = "xk-temporary-residence"
name = "Kosovo temporary residence permit (example)"
url = "http://{addr}/xk-residence"
select = ".content"
maintainers = ["kosovo@example.org"]

[[source]]
id = "rs-privremeni-boravak"
name = "Serbia: temporary residence (example, Cyrillic)"
url = "http://{addr}/rs-boravak"
maintainers = ["serbia@example.org"]
"#
        ),
    )?;
    let config = config::load(&config_path)?;
    let mut store = Store::open(&data, Access::WriteWait)?;
    let mailer = Mailer::new(&config.email, &data, std::time::Duration::from_secs(10))?;
    let opts = RunOptions::default();

    println!(
        "visawatch demo: 3 example pages served on http://{addr}/, data in {}\n",
        data.display()
    );
    println!("== 1. First check: every source gets its baseline\n");
    let r = pipeline::run(&config, &mut store, Some(&mailer), &opts).await?;
    print!("{}", report::human(&r));

    println!("\n== 2. The pages change: a fee, a duration, a document list (and a date and a counter)\n");
    {
        let mut p = pages.write().expect("pages lock");
        let edit = |p: &mut HashMap<String, String>, path: &str, from: &str, to: &str| {
            let page = p.get_mut(path).expect("known page");
            *page = page.replacen(from, to, 1);
        };
        edit(&mut p, "/xk-residence", "<td>50 €</td>", "<td>65 €</td>");
        edit(
            &mut p,
            "/xk-residence",
            "Përditësuar: 23.06.2026",
            "Përditësuar: 22.11.2026",
        );
        edit(
            &mut p,
            "/us-kosovo",
            "trips lasting up to 90 days within",
            "trips lasting up to 60 days within",
        );
        edit(
            &mut p,
            "/rs-boravak",
            "<li>Доказ о обезбеђеном смештају</li>",
            "<li>Доказ о обезбеђеном смештају</li>\n<li>Извод из казнене евиденције</li>",
        );
        edit(&mut p, "/rs-boravak", "Прегледа: 3.218", "Прегледа: 3.305");
    }
    println!("== 3. Second check\n");
    let r = pipeline::run(&config, &mut store, Some(&mailer), &opts).await?;
    print!("{}", report::human(&r));

    println!("\n== 4. The alerts, as the editors receive them\n");
    for (subject, text) in store.alerts(10)? {
        println!("Subject: {subject}\n\n{}\n{}\n", text.trim_end(), "-".repeat(72));
    }
    match target {
        DemoData::Keep(_) => println!(
            "The alerts are in {} (one .eml file per message); look around with\n  visawatch --config {} --data {} history xk-temporary-residence",
            data.join("outbox").display(),
            config_path.display(),
            data.display()
        ),
        DemoData::Temporary => println!(
            "The demo's data was temporary and is now removed. To keep it (the .eml files, the history), run\n  visawatch demo --data visawatch-demo"
        ),
    }
    Ok(())
}

/// Serves the pages on 127.0.0.1 (any free port) until the process ends.
async fn serve(pages: Pages) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("demo server: cannot bind 127.0.0.1")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let page = pages.read().expect("pages lock").get(req.uri().path()).cloned();
                    async move {
                        let resp = match page {
                            Some(html) => Response::builder()
                                .header("content-type", "text/html; charset=utf-8")
                                .body(Full::new(Bytes::from(html))),
                            None => Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(b"not found"))),
                        };
                        Ok::<_, Infallible>(resp.expect("valid response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
