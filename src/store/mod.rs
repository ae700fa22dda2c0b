//! The data folder: a SQLite database (WAL, versioned migrations) holding
//! sources, deduplicated snapshots, checks and changes, the outbox, plus
//! `<id>.txt` per source with its latest canonical text, readable and
//! git-diffable.
//!
//! - this file: opening (the lock, migrations, the integrity check), errors;
//! - `write`: each check's outcome in one transaction, the `<id>.txt` files;
//! - `outbox`: alerts and their per-recipient deliveries;
//! - `prune`: history retention (old unchanged checks) and vacuum;
//! - `query`: the read side (status, history, changes, what a run needs).
//!
//! A crash leaves either a whole outcome or none of it. A lock file keeps
//! two writers out of one folder; readers ([`Access::Read`]) take no lock
//! and read while another process writes (WAL). The store records what it
//! is handed and prints nothing; deciding is `judge`'s and `notify`'s.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{
    AlertKind, Change, Check, DeliveryStatus, Health, Known, MessageIdFn, Outcome, Outgoing, Previous,
    Queued, Status, Time, Validators,
};

mod desk;
mod migrations;
mod outbox;
mod prune;
mod query;
mod write;

pub use desk::{
    Attention, ChangeDetail, Counts, DURATION_BUCKETS_MS, ReviewAction, ReviewRow, SnapshotRow, SourceRow,
    UserRow,
};
pub use outbox::{HookDue, HookRow, OutboxRow};
pub use prune::Pruned;
pub use query::{ChangeRow, HistoryRow, LastCheck, Marks};
pub use write::text_file_is_stale;

use migrations::MIGRATIONS;
use write::file_stamp;

pub const DB_FILE: &str = "visawatch.db";

/// What to do about a database that fails `PRAGMA quick_check`.
const RECOVERY: &str = "visawatch will not write to it. Restore the data folder from a backup, \
    or keep what SQLite can still read: `sqlite3 visawatch.db .recover | sqlite3 recovered.db`, \
    check it with `sqlite3 recovered.db 'PRAGMA integrity_check'`, and put it in place of visawatch.db \
    (remove visawatch.db-wal and visawatch.db-shm with the old file)";

/// Meta key: size and modification time of `visawatch.db` when it was last
/// known good. A writer that finds the file changed since (by anything but
/// itself) checks its integrity before writing.
const DB_STAMP: &str = "db_stamp";
const LOCK_FILE: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {cause}")]
    // `cause`, not `source`: the message holds it, and an error chain
    // would print the OS error a second time.
    Io { path: PathBuf, cause: std::io::Error },
    /// Only for a file SQLite cannot read as a database: the one case where
    /// moving it away is the right advice.
    #[error("{path} is not a usable visawatch database ({detail}); move it away to start a new history")]
    Corrupt { path: PathBuf, detail: String },
    /// The folder or its files belong to someone else (or sit on a
    /// read-only mount): the history is fine, the user or mount is wrong.
    #[error("cannot {verb} {path}: {detail}; run as the service user{owner} or fix the ownership")]
    Permission {
        verb: &'static str,
        path: PathBuf,
        detail: String,
        owner: String,
    },
    #[error("{path} failed its integrity check ({detail}); {RECOVERY}")]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{dir} was written by a newer visawatch (schema {version}; this one knows {known}): upgrade visawatch; the data folder is fine"
    )]
    Newer { dir: PathBuf, version: i64, known: i64 },
    #[error(
        "{path} was written by an older visawatch (schema {version}): run `visawatch check` once to bring it up to date; the data is fine"
    )]
    Older { path: PathBuf, version: i64 },
    #[error("no database at {path}: run `visawatch check` first, or pass the right --data folder")]
    Missing { path: PathBuf },
    #[error(
        "{path} is missing but {dir} holds snapshot files ({example}): the history was lost or --data points at the wrong folder; restore the database, or delete the .txt and visawatch.db-wal files to start over"
    )]
    Lost {
        path: PathBuf,
        dir: PathBuf,
        example: String,
    },
    #[error(
        "another visawatch process holds the lock on {dir} ({holder}); stop it first, or read with `visawatch status`"
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
}

/// How to open the data folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A writer that waits for the folder's lock (a second `check`).
    WriteWait,
    /// A writer that fails at once when the folder is locked (a second daemon).
    WriteNoWait,
    /// A reader: no lock; WAL lets it read while a writer works.
    Read,
    /// The editors' desk and account commands: no folder lock (they run
    /// beside a `check` or the daemon), short transactions on their own
    /// tables (reviews, users, sessions, tokens) that SQLite serialises with
    /// the checks' writes. Never migrates: the schema must be current.
    Desk,
}

impl Access {
    /// Whether this access holds the folder's lock (the runs' writers).
    fn locks(self) -> bool {
        matches!(self, Access::WriteWait | Access::WriteNoWait)
    }
}

pub struct Store {
    conn: Connection,
    dir: PathBuf,
    db_path: PathBuf,
    /// A writer whose database was verified (or unchanged since it was):
    /// it records the file's stamp when it closes.
    known_good: std::cell::Cell<bool>,
    /// `verify` passed on this handle (opening may already have run it).
    verified: std::cell::Cell<bool>,
    /// Held for the store's life; the OS releases it if the process dies.
    _lock: Option<File>,
    /// A reader's private copy of a folder it may not write (see `open_reader`).
    _copy: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens (creating if needed, for writers) the data folder.
    pub fn open(dir: &Path, access: Access) -> Result<Store, StoreError> {
        let io = |cause| StoreError::Io {
            path: dir.to_path_buf(),
            cause,
        };
        let db_path = dir.join(DB_FILE);
        if !access.locks() {
            match std::fs::metadata(&db_path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Missing { path: db_path });
                }
                Err(e) => return Err(permission_or_io("read", dir, e)),
            }
        }
        let lock = if !access.locks() {
            None
        } else {
            std::fs::create_dir_all(dir).map_err(|e| permission_or_io("write to", dir, e))?;
            Some(take_lock(dir, access)?)
        };
        if access.locks() && !db_path.exists() {
            // Snapshot files without their database: refuse rather than
            // silently start a new baseline over a lost history.
            if let Some(example) = std::fs::read_dir(dir).map_err(io)?.flatten().find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                // The WAL outlives runs (see `open`): without its database it
                // is half a history, which SQLite would replay into a new file.
                (n.ends_with(".txt") || n == format!("{DB_FILE}-wal")).then_some(n)
            }) {
                return Err(StoreError::Lost {
                    path: db_path,
                    dir: dir.to_path_buf(),
                    example,
                });
            }
        }
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let (conn, copy) = if access == Access::Read {
            open_reader(dir, &db_path)?
        } else {
            (Connection::open(&db_path).map_err(sql)?, None)
        };
        let corrupt = |e: rusqlite::Error| open_error(dir, &db_path, access, e);
        // A check's batch commit is short; the desk's requests wait less.
        let patience = if access == Access::Desk { 5 } else { 30 };
        conn.busy_timeout(std::time::Duration::from_secs(patience))
            .map_err(sql)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if access.locks() {
            if version == 0 {
                // Before WAL and the first table, or it takes a full VACUUM (see `prune`).
                conn.pragma_update(None, "auto_vacuum", prune::INCREMENTAL)
                    .map_err(corrupt)?;
            }
            conn.pragma_update(None, "journal_mode", "WAL").map_err(corrupt)?;
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
            // SQLite folds the WAL into the database every 1,000 pages; doing
            // it at every close as well cost an fsync of the whole database
            // file, the slowest step of an unchanged round. The WAL is part
            // of the database: visawatch.db-wal is copied with it.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .map_err(sql)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Newer {
                dir: dir.to_path_buf(),
                version,
                known,
            });
        }
        if access.locks() {
            for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                let tx = conn.unchecked_transaction().map_err(sql)?;
                tx.execute_batch(m).map_err(corrupt)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
            }
        } else if version < known {
            return Err(StoreError::Older {
                path: db_path,
                version,
            });
        }
        // A garbage file can pass the pragma; a real query settles it.
        conn.query_row("SELECT count(*) FROM sources", [], |r| r.get::<_, i64>(0))
            .map_err(corrupt)?;
        let store = Store {
            conn,
            dir: dir.to_path_buf(),
            db_path,
            known_good: std::cell::Cell::new(false),
            verified: std::cell::Cell::new(false),
            _lock: lock,
            _copy: copy,
        };
        if access.locks() {
            // Changed behind our back (or never verified): check it first.
            if store.meta(DB_STAMP)? != store.db_stamp() {
                tracing::info!(path = %store.db_path.display(), "database file changed since visawatch last left it; checking its integrity");
                store.verify()?;
            }
            store.known_good.set(true);
        }
        Ok(store)
    }

    /// `PRAGMA quick_check`: every page and index readable and consistent.
    /// A writer refuses a database that fails it (and says how to recover).
    pub fn verify(&self) -> Result<(), StoreError> {
        let damaged = |detail: String| StoreError::Damaged {
            path: self.db_path.clone(),
            detail,
        };
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(5)")
            .map_err(|e| damaged(e.to_string()))?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| damaged(e.to_string()))?;
        if problems.len() == 1 && problems[0] == "ok" {
            self.verified.set(true);
            Ok(())
        } else {
            self.known_good.set(false);
            Err(damaged(problems.join("; ")))
        }
    }

    /// Whether this handle's database passed `verify` since it was opened.
    pub fn verified(&self) -> bool {
        self.verified.get()
    }

    /// Size and modification time of the database file.
    fn db_stamp(&self) -> Option<String> {
        file_stamp(&self.db_path)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| {
            let e = sql_error(&self.db_path, source);
            if matches!(e, StoreError::Damaged { .. }) {
                self.known_good.set(false);
            }
            e
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.sql())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(self.sql())
    }
}

impl Drop for Store {
    /// Remembers the file as this writer leaves it, so the next run checks
    /// integrity only when something else touched it. Best effort: a killed
    /// process skips this and the next writer verifies.
    fn drop(&mut self) {
        if self.known_good.get() {
            let stamp = self.db_stamp();
            if let Some(stamp) = stamp.filter(|s| self.meta(DB_STAMP).ok().flatten().as_ref() != Some(s)) {
                let _ = self.set_meta(DB_STAMP, &stamp);
            }
        }
    }
}

/// Opens the database read-only. SQLite reads a WAL database only through
/// its `-shm` index, which it must create when it is missing; in a folder
/// this user may not write (another user's service folder, a read-only
/// mount) that fails. Then the database and its WAL are read from a private
/// copy: slower, but the history is read whole, and nothing is written.
fn open_reader(dir: &Path, db_path: &Path) -> Result<(Connection, Option<tempfile::TempDir>), StoreError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let sql = |source| StoreError::Sql {
        path: db_path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(db_path, flags).map_err(sql)?;
    // Opening is lazy: the first read is where a missing -shm shows.
    let cannot_open = matches!(
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| e.sqlite_error_code()),
        Err(Some(
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly
        ))
    );
    let shm = dir.join(format!("{DB_FILE}-shm"));
    if !cannot_open || shm.exists() {
        return Ok((conn, None));
    }
    drop(conn);
    tracing::debug!(dir = %dir.display(), "folder not writable and no -shm file: reading a private copy");
    let copy = tempfile::Builder::new()
        .prefix("visawatch-read-")
        .tempdir()
        .map_err(|cause| StoreError::Io {
            path: std::env::temp_dir(),
            cause,
        })?;
    for name in [DB_FILE.to_string(), format!("{DB_FILE}-wal")] {
        let from = dir.join(&name);
        match std::fs::copy(&from, copy.path().join(&name)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name != DB_FILE => {}
            Err(e) => return Err(permission_or_io("read", &from, e)),
        }
    }
    let conn = Connection::open(copy.path().join(DB_FILE)).map_err(sql)?;
    Ok((conn, Some(copy)))
}

/// An error while opening: damage, permissions and the rest told apart, so
/// only a file that really is not a database is called one.
fn open_error(dir: &Path, db_path: &Path, access: Access, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, PermissionDenied, ReadOnly};
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Corrupt {
                path: db_path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        Some(CannotOpen | PermissionDenied | ReadOnly) => StoreError::Permission {
            verb: if access == Access::Read {
                "read"
            } else {
                "write to"
            },
            path: dir.to_path_buf(),
            detail: format!("{e} (permission denied or a read-only file system)"),
            owner: owner_of(dir),
        },
        _ => StoreError::Sql {
            path: db_path.to_path_buf(),
            source: e,
        },
    }
}

/// An I/O error on the data folder, a permission problem named as one.
fn permission_or_io(verb: &'static str, path: &Path, cause: std::io::Error) -> StoreError {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match cause.kind() {
        PermissionDenied | ReadOnlyFilesystem => StoreError::Permission {
            verb,
            detail: if cause.kind() == PermissionDenied {
                "permission denied".into()
            } else {
                "read-only file system".into()
            },
            owner: owner_of(path),
            path: path.to_path_buf(),
        },
        _ => StoreError::Io {
            path: path.to_path_buf(),
            cause,
        },
    }
}

/// " (owner: NAME)" of a path, for permission messages; empty when unknown.
fn owner_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Some(uid) = path
        .ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.uid())
    else {
        return String::new();
    };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    format!(" (owner: {})", name.unwrap_or_else(|| format!("uid {uid}")))
}

/// A SQLite error as the store reports it: damage named as such.
fn sql_error(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_damage(&source) {
        return StoreError::Damaged {
            path: path.to_path_buf(),
            detail: source.to_string(),
        };
    }
    StoreError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

/// SQLite's own words for a damaged file.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

pub use crate::model::content_hash;

/// Who holds a data folder's lock, as written in the lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A one-shot writer (`check`, `outbox --retry`, `verify`): others wait.
    Run,
    /// The daemon holds the folder for its whole life: waiting would hang.
    Daemon,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Run => "check",
            Role::Daemon => "daemon",
        }
    }

    /// The role in a lock file's first word (`daemon pid 42`).
    fn of_holder(holder: &str) -> Option<Role> {
        match holder.split_whitespace().next()? {
            "daemon" => Some(Role::Daemon),
            "check" => Some(Role::Run),
            _ => None,
        }
    }
}

fn take_lock(dir: &Path, access: Access) -> Result<File, StoreError> {
    use std::io::{Read, Seek, Write};
    let role = if access == Access::WriteNoWait {
        Role::Daemon
    } else {
        Role::Run
    };
    let path = dir.join(LOCK_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| StoreError::Io { path, cause }
    };
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| permission_or_io("write to", dir, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().to_string();
            if role == Role::Daemon || Role::of_holder(&holder) == Some(Role::Daemon) {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            tracing::warn!(
                "another run ({holder}) is using {}; waiting for it to finish",
                dir.display()
            );
            file.lock().map_err(io(&path))?;
        }
        Err(std::fs::TryLockError::Error(cause)) => return Err(StoreError::Io { path, cause }),
    }
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    writeln!(file, "{} pid {}", role.word(), std::process::id()).map_err(io(&path))?;
    Ok(file)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A check of `id` with `status` and `text`, for the store's tests.
    pub(crate) fn outcome(id: &str, status: Status, text: &str) -> Check {
        let read = crate::model::Read::of_text(text);
        let outcome = match status {
            Status::Baseline => Outcome::Baseline(read),
            Status::Changed => Outcome::Changed(
                read,
                crate::model::Verdict {
                    changes: Vec::new(),
                    material: false,
                    diff: String::new(),
                    word_diff: String::new(),
                },
            ),
            _ => Outcome::Unchanged(Some(read)),
        };
        Check {
            source_id: id.into(),
            name: id.into(),
            url: "http://127.0.0.1/x".into(),
            started_at: "2026-11-30T00:00:00Z".parse().unwrap(),
            duration_ms: 1,
            outcome,
            alerts: Vec::new(),
            blind: None,
        }
    }

    /// A data folder written by the version before `last_ok_at` moved out
    /// of `sources` keeps its health: the last good check and the failures
    /// since come from its checks.
    #[test]
    fn a_version_5_folder_migrates_and_keeps_its_health() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            for m in &MIGRATIONS[..5] {
                conn.execute_batch(m).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute_batch(
                "INSERT INTO snapshots VALUES ('h1', 'text', '2026-11-01T06:00:00Z');
                 INSERT INTO sources (id, name, url, current_hash, last_ok_at)
                   VALUES ('xk', 'Kosovo', 'http://127.0.0.1/xk', 'h1', '2026-11-02T06:00:00Z');
                 INSERT INTO checks (source_id, started_at, duration_ms, status, snapshot_hash)
                   VALUES ('xk', '2026-11-01T06:00:00Z', 5, 'baseline', 'h1'),
                          ('xk', '2026-11-02T06:00:00Z', 5, 'unchanged', 'h1'),
                          ('xk', '2026-11-03T06:00:00Z', 5, 'failed', NULL),
                          ('xk', '2026-11-04T06:00:00Z', 5, 'failed', NULL);",
            )
            .unwrap();
        }
        let store = Store::open(dir.path(), Access::WriteWait).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let health = store.health("xk").unwrap();
        assert_eq!(health.failures_in_a_row, 2);
        assert_eq!(health.last_ok_at.as_deref(), Some("2026-11-02T06:00:00Z"));
        let (known, all) = store.prefetch(&["xk", "new-source"]).unwrap();
        let xk = all[0].as_ref().expect("its last check failed: in trouble");
        assert_eq!(xk.failures_in_a_row, 2);
        assert_eq!(xk.last_ok_at.as_deref(), Some("2026-11-02T06:00:00Z"));
        assert_eq!(known[0].as_ref().map(|k| k.text_len), Some(4));
        assert!(known[1].is_none());
        assert!(all[1].is_none(), "never checked: clean");
    }

    /// Issue 12: a folder from a newer visawatch was called unusable, with
    /// advice to move it away; it is fine, visawatch is old.
    #[test]
    fn a_folder_from_a_newer_visawatch_asks_for_an_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Access::WriteWait).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        for access in [Access::Read, Access::WriteWait] {
            let e = Store::open(dir.path(), access)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                e.contains("newer visawatch (schema 99") && e.contains("upgrade"),
                "{e}"
            );
            assert!(!e.contains("move it away"), "{e}");
        }
    }

    /// A WAL left without its database is refused, not replayed into a new one.
    #[test]
    fn a_wal_without_its_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("visawatch.db-wal"), b"frames").unwrap();
        let err = Store::open(dir.path(), Access::WriteWait).err().expect("refused");
        assert!(
            matches!(err, StoreError::Lost { ref example, .. } if example == "visawatch.db-wal"),
            "{err}"
        );
        assert!(!dir.path().join(DB_FILE).exists());
    }
}
