//! `visawatch user …` and `visawatch token …`: the desk's accounts and API
//! tokens. Passwords are read from stdin when it is not a terminal (for
//! scripts), else prompted twice without echo; only hashes are stored. A
//! new token is printed once, alone on stdout.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::store::{Access, Store};
use crate::web::auth;

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add an editor; the password comes from stdin (or a prompt).
    Add {
        /// Sign-in name: letters, digits, `.`, `_`, `-`, `@`; up to 64.
        name: String,
        /// May manage accounts (recorded; every editor can review).
        #[arg(long)]
        admin: bool,
    },
    /// List the editors.
    List,
    /// Remove an editor and end their sessions.
    Remove {
        /// The editor's sign-in name.
        name: String,
    },
    /// Set an editor's password (ends their sessions).
    Passwd {
        /// The editor's sign-in name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a read-only API token; printed once, only its hash is kept.
    Add {
        /// What the token is for (e.g. `cms`, `prometheus`).
        name: String,
    },
    /// List the tokens (names and dates, never the secrets).
    List,
    /// Revoke a token.
    Remove {
        /// The token's name.
        name: String,
    },
}

/// Shortest password accepted.
const MIN_PASSWORD: usize = 10;

fn valid_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    anyhow::ensure!(
        ok,
        "name `{name}`: use 1-64 letters, digits, `.`, `_`, `-` or `@`"
    );
    Ok(())
}

fn open(data: &Path) -> anyhow::Result<Store> {
    Store::open(data, Access::Desk).with_context(|| format!("opening data folder {}", data.display()))
}

/// The password: one line of stdin, or typed twice at a prompt.
fn read_password(name: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt(&format!("Password for {name}: "))?;
        let again = prompt("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD,
        "the password must have at least {MIN_PASSWORD} characters"
    );
    Ok(password)
}

/// Reads a line from the terminal with echo off (`stty`), so the password
/// is not shown.
fn prompt(text: &str) -> anyhow::Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::fs::File::open("/dev/tty")?)
            .status()
    };
    eprint!("{text}");
    std::io::stderr().flush().ok();
    let hidden = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        let _ = stty("echo");
        eprintln!();
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn user(data: &Path, action: UserAction) -> anyhow::Result<()> {
    let store = open(data)?;
    let at = crate::clock::now_stamp();
    match action {
        UserAction::Add { name, admin } => {
            valid_name(&name)?;
            anyhow::ensure!(
                store.password_hash(&name)?.is_none(),
                "there is already an editor `{name}`; `visawatch user passwd {name}` changes the password"
            );
            let hash = auth::hash_password(&read_password(&name)?)?;
            anyhow::ensure!(
                store.add_user(&name, &hash, admin, &at)?,
                "there is already an editor `{name}`"
            );
            eprintln!("editor `{name}` added{}", if admin { " (admin)" } else { "" });
        }
        UserAction::List => {
            let users = store.users()?;
            if users.is_empty() {
                println!("no editors yet: `visawatch user add NAME`");
            }
            for u in users {
                println!(
                    "{}  {}{}",
                    u.name,
                    u.created_at,
                    if u.admin { "  admin" } else { "" }
                );
            }
        }
        UserAction::Remove { name } => {
            anyhow::ensure!(store.remove_user(&name)?, "there is no editor `{name}`");
            eprintln!("editor `{name}` removed; their sessions are ended");
        }
        UserAction::Passwd { name } => {
            anyhow::ensure!(
                store.password_hash(&name)?.is_some(),
                "there is no editor `{name}`"
            );
            let hash = auth::hash_password(&read_password(&name)?)?;
            store.set_password(&name, &hash)?;
            eprintln!("password of `{name}` changed; their sessions are ended");
        }
    }
    Ok(())
}

pub fn token(data: &Path, action: TokenAction) -> anyhow::Result<()> {
    let store = open(data)?;
    match action {
        TokenAction::Add { name } => {
            valid_name(&name)?;
            let secret = auth::new_secret()?;
            anyhow::ensure!(
                store.add_token(&name, &auth::secret_hash(&secret), &crate::clock::now_stamp())?,
                "there is already a token `{name}`; remove it first"
            );
            // Alone on stdout, for `TOKEN=$(visawatch token add cms)`.
            println!("{secret}");
            eprintln!("token `{name}` made; it is shown only now. Send it as `Authorization: Bearer TOKEN`.");
        }
        TokenAction::List => {
            for (name, at) in store.tokens()? {
                println!("{name}  {at}");
            }
        }
        TokenAction::Remove { name } => {
            anyhow::ensure!(store.remove_token(&name)?, "there is no token `{name}`");
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(())
}
