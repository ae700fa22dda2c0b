//! The data folder: a SQLite database (WAL, versioned migrations) holding
//! sources, deduplicated snapshots, checks and changes, plus `<id>.txt` per
//! source with its latest canonical text, readable and git-diffable.
//!
//! Each source's outcome is written in one transaction, so a crash leaves
//! either the whole outcome or none of it. A lock file keeps two writers out
//! of one folder. This module decides nothing: it records what the pipeline
//! hands it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{
    AlertKind, Change, Check, Health, Known, Outcome, Outgoing, Previous, Queued, Status, Validators,
};

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
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable visawatch database ({detail}); move it away to start a new history")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} failed its integrity check ({detail}); {RECOVERY}")]
    Damaged { path: PathBuf, detail: String },
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
}

/// A row of `visawatch outbox`: one recipient's delivery that is not done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    pub outbox_id: i64,
    pub source_id: Option<String>,
    pub kind: String,
    pub subject: String,
    pub created_at: String,
    pub recipient: String,
    /// `pending`, `rejected`, or `no recipients` (a source without
    /// maintainers while `[email].to` is empty: add one and re-run).
    pub status: String,
    pub attempts: u32,
    /// RFC 3339; when a pending delivery is next tried.
    pub next_attempt_at: String,
    pub last_error: Option<String>,
}

/// A source's latest check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastCheck {
    pub started_at: String,
    pub status: String,
    pub error: Option<String>,
}

/// A row of `visawatch history`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub started_at: String,
    pub status: String,
    pub error: Option<String>,
    pub material: Option<bool>,
    pub changes: Vec<Change>,
}

/// A stored change with its diffs.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub created_at: String,
    pub material: bool,
    pub changes: Vec<Change>,
    pub diff: String,
    pub word_diff: String,
}

pub struct Store {
    conn: Connection,
    dir: PathBuf,
    db_path: PathBuf,
    /// A writer whose database was verified (or unchanged since it was):
    /// it records the file's stamp when it closes.
    known_good: std::cell::Cell<bool>,
    /// Held for the store's life; the OS releases it if the process dies.
    _lock: Option<File>,
}

/// SQL columns of source `src`'s health: when its last good check started,
/// and how many checks failed since. Derived from `checks`, so that an
/// unchanged check writes one row and touches nothing else. Both walk the
/// source's checks backwards from the newest (`ORDER BY id DESC LIMIT 1`,
/// not `max(id)`, which would read a year of history on every run).
const HEALTH_COLUMNS: &str =
    "(SELECT g.started_at FROM checks g WHERE g.source_id = src.id AND g.status != 'failed'
        ORDER BY g.id DESC LIMIT 1),
    (SELECT count(*) FROM checks c WHERE c.source_id = src.id AND c.status = 'failed'
        AND c.id > coalesce((SELECT g.id FROM checks g WHERE g.source_id = src.id AND g.status != 'failed'
            ORDER BY g.id DESC LIMIT 1), 0))";

/// A [`Health`] from a row that starts with `blind_since, HEALTH_COLUMNS`.
fn health_row(r: &rusqlite::Row) -> rusqlite::Result<Health> {
    Ok(Health {
        blind_since: r.get(0)?,
        last_ok_at: r.get(1)?,
        failures_in_a_row: r.get::<_, i64>(2)? as u32,
    })
}

/// Migrations in order; `PRAGMA user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sources (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    current_hash  TEXT REFERENCES snapshots(hash),
    etag          TEXT,
    last_modified TEXT,
    last_ok_at    TEXT
);
CREATE TABLE snapshots (
    hash       TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE checks (
    id            INTEGER PRIMARY KEY,
    source_id     TEXT NOT NULL REFERENCES sources(id),
    started_at    TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT,
    error         TEXT,
    http_status   INTEGER,
    charset       TEXT,
    snapshot_hash TEXT REFERENCES snapshots(hash)
);
CREATE INDEX checks_by_source ON checks(source_id, id);
CREATE TABLE changes (
    id          INTEGER PRIMARY KEY,
    check_id    INTEGER NOT NULL REFERENCES checks(id),
    source_id   TEXT NOT NULL REFERENCES sources(id),
    created_at  TEXT NOT NULL,
    before_hash TEXT NOT NULL REFERENCES snapshots(hash),
    after_hash  TEXT NOT NULL REFERENCES snapshots(hash),
    material    INTEGER NOT NULL,
    changes     TEXT NOT NULL,
    diff        TEXT NOT NULL,
    word_diff   TEXT NOT NULL
);
CREATE INDEX changes_by_source ON changes(source_id, id);
"#,
    // Hash of a text held back as suspect (a sudden shrink), to accept it
    // once it has been seen on several checks in a row.
    "ALTER TABLE checks ADD COLUMN suspect_hash TEXT;",
    // The transactional outbox: alerts are written with the change that
    // causes them; deliveries track each recipient separately so that one
    // rejected address never blocks the others.
    r#"
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    source_id   TEXT REFERENCES sources(id),
    change_id   INTEGER REFERENCES changes(id),
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    message_id  TEXT NOT NULL UNIQUE,
    thread_root TEXT,
    sender      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL
);
CREATE INDEX outbox_by_source ON outbox(source_id, id);
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    outbox_id       INTEGER NOT NULL REFERENCES outbox(id),
    recipient       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    sent_at         TEXT,
    UNIQUE (outbox_id, recipient)
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
ALTER TABLE sources ADD COLUMN blind_since TEXT;
"#,
    // Small facts about the service itself (the last digest's time).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // Fingerprint of the body behind the current snapshot: an identical page
    // is unchanged without parsing it again.
    "ALTER TABLE sources ADD COLUMN body_hash TEXT;",
    // Derived from `checks` instead (see HEALTH_COLUMNS): keeping it here
    // rewrote every source's row on every unchanged check.
    "ALTER TABLE sources DROP COLUMN last_ok_at;",
    // How each `<id>.txt` looked when visawatch last wrote it (size and
    // modification time), NULL from the commit of a new text until its file
    // is written: a run finds a stale file with one stat, not by reading it.
    "CREATE TABLE text_files (source_id TEXT PRIMARY KEY REFERENCES sources(id), stamp TEXT);",
];

impl Store {
    /// Opens (creating if needed, for writers) the data folder.
    pub fn open(dir: &Path, access: Access) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let db_path = dir.join(DB_FILE);
        if access == Access::Read && !db_path.exists() {
            return Err(StoreError::Missing { path: db_path });
        }
        let lock = if access == Access::Read {
            None
        } else {
            std::fs::create_dir_all(dir).map_err(io)?;
            Some(take_lock(dir, access == Access::WriteWait)?)
        };
        if access != Access::Read && !db_path.exists() {
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
        let conn = Connection::open(&db_path).map_err(sql)?;
        let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
            path: db_path.clone(),
            detail: e.to_string(),
        };
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if access != Access::Read {
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
            return Err(StoreError::Corrupt {
                path: db_path,
                detail: format!("schema version {version} is newer than this visawatch ({known})"),
            });
        }
        if access != Access::Read {
            for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                let tx = conn.unchecked_transaction().map_err(sql)?;
                tx.execute_batch(m).map_err(corrupt)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
            }
        } else if version < known {
            return Err(StoreError::Corrupt {
                path: db_path,
                detail: format!("schema version {version}; run `visawatch check` once to migrate"),
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
            _lock: lock,
        };
        if access != Access::Read {
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
    /// A writer refuses a database that fails it (see [`RECOVERY`]).
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
            Ok(())
        } else {
            self.known_good.set(false);
            Err(damaged(problems.join("; ")))
        }
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

    /// The last good snapshot of a source, with its HTTP validators.
    pub fn previous(&self, id: &str) -> Result<Option<Previous>, StoreError> {
        self.conn
            .query_row(
                "SELECT s.text, s.hash, src.etag, src.last_modified
                 FROM sources src JOIN snapshots s ON s.hash = src.current_hash WHERE src.id = ?1",
                [id],
                |r| {
                    Ok(Previous {
                        text: r.get(0)?,
                        hash: r.get(1)?,
                        validators: Validators {
                            etag: r.get(2)?,
                            last_modified: r.get(3)?,
                        },
                    })
                },
            )
            .optional()
            .map_err(self.sql())
    }

    /// What a run needs to know of its sources up front, read in one
    /// transaction with two queries over all sources (a query per source
    /// costs more than the whole unchanged round's network time): the last
    /// good check of each, and its health. Ids never checked get no
    /// [`Known`] and a clean [`Health`].
    #[allow(clippy::type_complexity)]
    pub fn prefetch(
        &self,
        ids: &[&str],
    ) -> Result<(HashMap<String, Option<Known>>, HashMap<String, Health>), StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(self.sql())?;
        let mut known: HashMap<String, Option<Known>> = ids.iter().map(|id| (id.to_string(), None)).collect();
        let mut health: HashMap<String, Health> =
            ids.iter().map(|id| (id.to_string(), Health::default())).collect();
        // octet_length reads the text's size from its record header, not the text.
        let mut known_stmt = tx
            .prepare(
                "SELECT src.id, src.etag, src.last_modified, octet_length(s.text), src.body_hash, f.stamp
                 FROM sources src JOIN snapshots s ON s.hash = src.current_hash
                 LEFT JOIN text_files f ON f.source_id = src.id",
            )
            .map_err(self.sql())?;
        let rows = known_stmt
            .query_map([], |r| {
                let k = Known {
                    validators: Validators {
                        etag: r.get(1)?,
                        last_modified: r.get(2)?,
                    },
                    text_len: r.get::<_, i64>(3)? as usize,
                    body_hash: r.get(4)?,
                    file_stamp: r.get(5)?,
                };
                Ok((r.get::<_, String>(0)?, k))
            })
            .map_err(self.sql())?;
        for row in rows {
            let (id, k) = row.map_err(self.sql())?;
            if let Some(slot) = known.get_mut(&id) {
                *slot = Some(k);
            }
        }
        let mut health_stmt = tx
            .prepare(&format!(
                "SELECT src.blind_since, {HEALTH_COLUMNS}, src.id FROM sources src"
            ))
            .map_err(self.sql())?;
        let rows = health_stmt
            .query_map([], |r| Ok((r.get::<_, String>(3)?, health_row(r)?)))
            .map_err(self.sql())?;
        for row in rows {
            let (id, h) = row.map_err(self.sql())?;
            if let Some(slot) = health.get_mut(&id) {
                *slot = h;
            }
        }
        drop((known_stmt, health_stmt));
        tx.commit().map_err(self.sql())?;
        Ok((known, health))
    }

    /// Writes several sources' outcomes in one transaction: each outcome is
    /// whole or absent after a crash, and a run of 1,000 unchanged sources
    /// costs a few commits instead of 1,000. Then refreshes the `<id>.txt` files.
    pub fn record_all(&mut self, recs: &[Check]) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for rec in recs {
            write_outcome(&tx, rec).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        let mut written = Vec::new();
        for rec in recs {
            if let Some(text) = rec.outcome.new_text() {
                written.push((
                    rec.source_id.as_str(),
                    self.write_text_file(&rec.source_id, text)?,
                ));
            }
        }
        self.record_file_stamps(&written)
    }

    /// Remembers how the `<id>.txt` files look now that they are written.
    fn record_file_stamps(&mut self, written: &[(&str, String)]) -> Result<(), StoreError> {
        if written.is_empty() {
            return Ok(());
        }
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for (id, stamp) in written {
            tx.prepare_cached(
                "INSERT INTO text_files (source_id, stamp) VALUES (?1, ?2)
                 ON CONFLICT(source_id) DO UPDATE SET stamp = excluded.stamp",
            )
            .and_then(|mut st| st.execute(params![id, stamp]))
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rewrites `<id>.txt` from the latest snapshot (a kill between the
    /// commit and the file, a deleted or edited file left it stale).
    pub fn repair_text_file(&mut self, id: &str) -> Result<(), StoreError> {
        if let Some(prev) = self.previous(id)? {
            let stamp = self.write_text_file(id, &prev.text)?;
            self.record_file_stamps(&[(id, stamp)])?;
        }
        Ok(())
    }

    /// `<id>.txt`: written to a temporary file and renamed, so a reader
    /// never sees half. Returns the file's stamp.
    fn write_text_file(&self, id: &str, text: &str) -> Result<String, StoreError> {
        let path = self.dir.join(format!("{id}.txt"));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if !std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            let tmp = self.dir.join(format!(".{id}.txt.tmp"));
            std::fs::write(&tmp, text).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
        }
        file_stamp(&path).ok_or_else(|| io(std::io::Error::other("written, then not found")))
    }

    /// Checks and changes of a source, newest first.
    pub fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.started_at, c.status, c.error, ch.material, ch.changes
                 FROM checks c LEFT JOIN changes ch ON ch.check_id = c.id
                 WHERE c.source_id = ?1 ORDER BY c.id DESC LIMIT ?2",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![id, limit as i64], |r| {
                let changes: Option<String> = r.get(4)?;
                Ok(HistoryRow {
                    started_at: r.get(0)?,
                    status: r.get(1)?,
                    error: r.get(2)?,
                    material: r.get(3)?,
                    changes: changes
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or_default(),
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The latest change of a source.
    pub fn latest_change(&self, id: &str) -> Result<Option<ChangeRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT created_at, material, changes, diff, word_diff FROM changes
                 WHERE source_id = ?1 ORDER BY id DESC LIMIT 1",
                [id],
                |r| {
                    let changes: String = r.get(2)?;
                    Ok(ChangeRow {
                        created_at: r.get(0)?,
                        material: r.get(1)?,
                        changes: serde_json::from_str(&changes).unwrap_or_default(),
                        diff: r.get(3)?,
                        word_diff: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(self.sql())
    }

    /// How many of the source's latest checks in a row held back this same
    /// suspect text.
    pub fn suspect_streak(&self, id: &str, hash: &str) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT suspect_hash FROM checks WHERE source_id = ?1 ORDER BY id DESC LIMIT 10")
            .map_err(self.sql())?;
        let hashes: Vec<Option<String>> = stmt
            .query_map([id], |r| r.get(0))
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        Ok(hashes.iter().take_while(|h| h.as_deref() == Some(hash)).count())
    }

    /// Queues an alert that belongs to no check (a test message, a digest).
    pub fn queue(&mut self, q: &Queued, created_at: &str) -> Result<i64, StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        let id = queue(&tx, None, None, q, created_at).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    /// Alerts waiting for a recipient, per source.
    pub fn unaddressed_by_source(&self) -> Result<HashMap<String, u32>, StoreError> {
        let mut out: HashMap<String, u32> = HashMap::new();
        for (_, source) in self.unaddressed()? {
            *out.entry(source.unwrap_or_default()).or_default() += 1;
        }
        Ok(out)
    }

    /// Failed checks since the source's last good one, and its blind flag
    /// (for `status`; a run reads every source's at once in [`Store::prefetch`]).
    pub fn health(&self, id: &str) -> Result<Health, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT src.blind_since, {HEALTH_COLUMNS} FROM sources src WHERE src.id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], health_row))
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(self.sql())
    }

    /// Outbox messages with deliveries due at `now` (all pending ones when
    /// `force`), oldest first.
    pub fn due(&self, now: i64, force: bool) -> Result<Vec<Outgoing>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, o.source_id, o.kind, o.created_at, o.message_id, o.thread_root, o.sender,
                        o.subject, o.text_body, o.html_body
                 FROM outbox o WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id
                   AND d.status = 'pending' AND (?2 OR d.next_attempt_at <= ?1))
                 ORDER BY o.id",
            )
            .map_err(self.sql())?;
        let mut out: Vec<Outgoing> = stmt
            .query_map(params![now, force], |r| {
                Ok(Outgoing {
                    outbox_id: r.get(0)?,
                    source_id: r.get(1)?,
                    kind: r.get(2)?,
                    created_at: r.get(3)?,
                    message_id: r.get(4)?,
                    thread_root: r.get(5)?,
                    from: r.get(6)?,
                    subject: r.get(7)?,
                    text: r.get(8)?,
                    html: r.get(9)?,
                    to: Vec::new(),
                    pending: Vec::new(),
                })
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, recipient, status, attempts FROM deliveries WHERE outbox_id = ?1 ORDER BY id",
            )
            .map_err(self.sql())?;
        for o in &mut out {
            let rows: Vec<(i64, String, String, u32)> = stmt
                .query_map([o.outbox_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(self.sql())?
                .collect::<Result<_, _>>()
                .map_err(self.sql())?;
            for (id, rcpt, status, attempts) in rows {
                if status == "pending" {
                    o.pending.push((id, rcpt.clone(), attempts));
                }
                o.to.push(rcpt);
            }
        }
        Ok(out)
    }

    /// When the earliest pending delivery is due (unix seconds), if any.
    pub fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())
    }

    /// Outbox messages nobody was owed when they were queued (no
    /// maintainers, no `[email].to`): (outbox id, source id).
    pub fn unaddressed(&self) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, o.source_id FROM outbox o
                 WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id) ORDER BY o.id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Gives a waiting outbox message its recipients (pending, due now).
    pub fn address(&mut self, outbox_id: i64, recipients: &[String]) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for r in recipients {
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (outbox_id, recipient, status, next_attempt_at) VALUES (?1, ?2, 'pending', 0)",
                params![outbox_id, r],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Marks deliveries as handed to the server: if the process dies before
    /// the answer is recorded, [`Store::recover_sending`] knows that these may
    /// have arrived.
    pub fn mark_sending(&self, delivery_ids: &[i64]) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE deliveries SET status = 'sending' WHERE id = ?1")
            .map_err(self.sql())?;
        for id in delivery_ids {
            stmt.execute([id]).map_err(self.sql())?;
        }
        Ok(())
    }

    /// Deliveries left `sending` by a process that died (or stopped) while a
    /// server had the message: pending again, with a note that a duplicate
    /// (same Message-ID) is possible. Returns their (recipient, Message-ID).
    pub fn recover_sending(&self, note: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "UPDATE deliveries SET status = 'pending', last_error = ?1 WHERE status = 'sending'
                 RETURNING recipient, (SELECT message_id FROM outbox o WHERE o.id = outbox_id)",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([note], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Records that a recipient accepted a message.
    pub fn mark_sent(&self, delivery_id: i64, at: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?2, last_error = NULL WHERE id = ?1",
                params![delivery_id, at],
            )
            .map(drop)
            .map_err(self.sql())
    }

    /// Records a failed attempt: `next_at` for a retry, or `None` when the
    /// server rejected the recipient for good.
    pub fn mark_failed(&self, delivery_id: i64, error: &str, next_at: Option<i64>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2,
                   status = CASE WHEN ?3 IS NULL THEN 'rejected' ELSE 'pending' END,
                   next_attempt_at = coalesce(?3, next_attempt_at)
                 WHERE id = ?1",
                params![delivery_id, error, next_at],
            )
            .map(drop)
            .map_err(self.sql())
    }

    /// Deliveries not done: pending and rejected, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, o.source_id, o.kind, o.subject, o.created_at, coalesce(d.recipient, ''),
                        coalesce(d.status, 'no recipients'), coalesce(d.attempts, 0),
                        coalesce(d.next_attempt_at, 0), d.last_error
                 FROM outbox o LEFT JOIN deliveries d ON o.id = d.outbox_id
                 WHERE d.id IS NULL OR d.status != 'sent' ORDER BY o.id, d.id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                let next: i64 = r.get(8)?;
                Ok(OutboxRow {
                    outbox_id: r.get(0)?,
                    source_id: r.get(1)?,
                    kind: r.get(2)?,
                    subject: r.get(3)?,
                    created_at: r.get(4)?,
                    recipient: r.get(5)?,
                    status: r.get(6)?,
                    attempts: r.get(7)?,
                    next_attempt_at: chrono::DateTime::from_timestamp(next, 0)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default(),
                    last_error: r.get(9)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The latest check of every source: id → (started_at, status, error).
    pub fn last_checks(&self) -> Result<HashMap<String, LastCheck>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                // One index lookup per source, not a pass over every check ever made.
                "SELECT c.source_id, c.started_at, c.status, c.error FROM sources src
                 JOIN checks c ON c.id = (SELECT max(id) FROM checks WHERE source_id = src.id)",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    LastCheck {
                        started_at: r.get(1)?,
                        status: r.get(2)?,
                        error: r.get(3)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Undelivered (pending) recipients per source.
    pub fn pending_by_source(&self) -> Result<HashMap<String, u32>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT coalesce(o.source_id, ''), count(*) FROM deliveries d JOIN outbox o ON o.id = d.outbox_id
                 WHERE d.status IN ('pending', 'sending') GROUP BY 1",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Non-material (text-only) changes since `since`: (source id, when, word diff).
    pub fn text_changes_since(&self, since: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_id, created_at, word_diff FROM changes WHERE material = 0 AND created_at >= ?1
                 ORDER BY source_id, id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Sources with failed checks since `since`: (id, failed checks, last error).
    pub fn troubled_since(&self, since: &str) -> Result<Vec<(String, u32, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_id, count(*), (SELECT error FROM checks c2 WHERE c2.source_id = c.source_id
                   AND c2.status = 'failed' ORDER BY id DESC LIMIT 1)
                 FROM checks c WHERE status = 'failed' AND started_at >= ?1 GROUP BY source_id ORDER BY source_id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([since], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
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

    /// The latest alerts (subject, plain text), oldest first.
    pub fn alerts(&self, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT subject, text_body FROM (SELECT * FROM outbox ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Whether the source has any check on record.
    pub fn knows(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM sources WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
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

/// One source's outcome: its check row, snapshot, change and alerts.
fn write_outcome(tx: &rusqlite::Transaction, rec: &Check) -> rusqlite::Result<()> {
    let status = rec.outcome.status();
    let read = rec.outcome.read();
    let failure = rec.outcome.failure();
    let suspect_hash = match &rec.outcome {
        Outcome::Failed { suspect_hash, .. } => suspect_hash.as_deref(),
        _ => None,
    };
    // Rows are rewritten only when something in them changes: an unchanged
    // check should cost its `checks` row and no more pages.
    tx.prepare_cached(
        "INSERT INTO sources (id, name, url) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, url = excluded.url
         WHERE name IS NOT excluded.name OR url IS NOT excluded.url",
    )
    .and_then(|mut st| st.execute(params![rec.source_id, rec.name, rec.url]))?;
    let hash = read.map(|r| content_hash(&r.text));
    if let (Some(text), Some(hash)) = (read.map(|r| &r.text), &hash) {
        tx.prepare_cached("INSERT OR IGNORE INTO snapshots (hash, text, created_at) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![hash, text, rec.started_at]))?;
    }
    let snapshot_hash: Option<String> = match &hash {
        Some(h) => Some(h.clone()),
        None => tx
            .prepare_cached("SELECT current_hash FROM sources WHERE id = ?1")
            .and_then(|mut st| st.query_row([&rec.source_id], |r| r.get(0)))?,
    };
    tx.prepare_cached("INSERT INTO checks (source_id, started_at, duration_ms, status, reason, error, http_status, charset, snapshot_hash, suspect_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)").and_then(|mut st| st.execute(params![
            rec.source_id,
            rec.started_at,
            rec.duration_ms as i64,
            status.as_str(),
            failure.map(|f| f.reason.as_str()),
            failure.map(|f| f.message.as_str()),
            read.map(|r| r.http_status),
            read.map(|r| r.charset),
            if status == Status::Failed { None } else { snapshot_hash.clone() },
            suspect_hash,
        ],))
    ?;
    let check_id = tx.last_insert_rowid();
    let mut change_id = None;
    if let Some(body) = read.map(|r| r.body_hash.as_str()) {
        tx.prepare_cached("UPDATE sources SET body_hash = ?2 WHERE id = ?1 AND body_hash IS NOT ?2")
            .and_then(|mut st| st.execute(params![rec.source_id, body]))?;
    }
    if status != Status::Failed {
        let v = read.map(|r| &r.validators);
        tx.prepare_cached(
            "UPDATE sources SET current_hash = ?2,
               etag = CASE WHEN ?3 THEN ?4 ELSE etag END,
               last_modified = CASE WHEN ?3 THEN ?5 ELSE last_modified END
             WHERE id = ?1 AND (current_hash IS NOT ?2 OR (?3 AND (etag IS NOT ?4 OR last_modified IS NOT ?5)))",
        )
        .and_then(|mut st| {
            st.execute(params![
                rec.source_id,
                snapshot_hash,
                v.is_some(),
                v.and_then(|v| v.etag.clone()),
                v.and_then(|v| v.last_modified.clone()),
            ])
        })?;
    }
    if let (Some(verdict), Some(after)) = (rec.outcome.verdict(), &hash) {
        let before: String = tx.prepare_cached("SELECT snapshot_hash FROM checks WHERE source_id = ?1 AND id < ?2 AND snapshot_hash IS NOT NULL ORDER BY id DESC LIMIT 1").and_then(|mut st| st.query_row(params![rec.source_id, check_id],
                |r| r.get(0),))
            ?;
        tx.prepare_cached("INSERT INTO changes (check_id, source_id, created_at, before_hash, after_hash, material, changes, diff, word_diff)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)").and_then(|mut st| st.execute(params![
                check_id,
                rec.source_id,
                rec.started_at,
                before,
                after,
                verdict.material,
                serde_json::to_string(&verdict.changes).expect("changes serialize"),
                verdict.diff,
                verdict.word_diff,
            ],))
        ?;
        change_id = Some(tx.last_insert_rowid());
    }
    if rec.outcome.new_text().is_some() {
        // Until its file is written: a kill before that leaves it marked.
        tx.prepare_cached(
            "INSERT INTO text_files (source_id, stamp) VALUES (?1, NULL)
             ON CONFLICT(source_id) DO UPDATE SET stamp = NULL",
        )
        .and_then(|mut st| st.execute([&rec.source_id]))?;
    }
    match rec.blind {
        Some(true) => tx
            .prepare_cached("UPDATE sources SET blind_since = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![rec.source_id, rec.started_at])),
        Some(false) => tx
            .prepare_cached("UPDATE sources SET blind_since = NULL WHERE id = ?1")
            .and_then(|mut st| st.execute([&rec.source_id])),
        None => Ok(0),
    }?;
    for q in &rec.alerts {
        let linked = if q.alert.kind == AlertKind::Change {
            change_id
        } else {
            None
        };
        queue(tx, Some(&rec.source_id), linked, q, &rec.started_at)?;
    }
    Ok(())
}

/// Inserts an outbox row and one pending delivery per recipient. The
/// Message-ID is made here and kept through retries; the source's first
/// alert is the thread root every later alert points at.
fn queue(
    tx: &rusqlite::Transaction,
    source_id: Option<&str>,
    change_id: Option<i64>,
    q: &Queued,
    created_at: &str,
) -> rusqlite::Result<i64> {
    let domain = q
        .from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("visawatch.localhost");
    let seq: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM outbox", [], |r| r.get(0))?;
    let nonce =
        blake3::hash(format!("{seq}\0{created_at}\0{source_id:?}\0{}", q.alert.subject).as_bytes()).to_hex();
    let message_id = format!(
        "<{}.{}.{}@{domain}>",
        q.alert.kind.as_str(),
        source_id.unwrap_or("visawatch"),
        &nonce[..16]
    );
    let thread_root: Option<String> = match source_id {
        Some(id) => tx
            .query_row(
                "SELECT message_id FROM outbox WHERE source_id = ?1 ORDER BY id LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?,
        None => None,
    };
    tx.execute(
        "INSERT INTO outbox (source_id, change_id, kind, created_at, message_id, thread_root, sender, subject, text_body, html_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            source_id,
            change_id,
            q.alert.kind.as_str(),
            created_at,
            message_id,
            thread_root,
            q.from,
            q.alert.subject,
            q.alert.text,
            q.alert.html
        ],
    )?;
    let outbox_id = tx.last_insert_rowid();
    for r in &q.recipients {
        tx.execute(
            "INSERT OR IGNORE INTO deliveries (outbox_id, recipient, status, next_attempt_at) VALUES (?1, ?2, 'pending', 0)",
            params![outbox_id, r],
        )?;
    }
    Ok(outbox_id)
}

/// The sources whose `<id>.txt` in `dir` no longer looks as visawatch left
/// it, given (id, recorded stamp): missing, changed since, or never written
/// after its text changed (a kill between the commit and the file). One
/// `stat` a source; runs beside the fetches, off the async threads.
pub fn stale_text_files(dir: &Path, expected: Vec<(String, Option<String>)>) -> Vec<String> {
    expected
        .into_iter()
        .filter(|(id, stamp)| stamp.is_none() || file_stamp(&dir.join(format!("{id}.txt"))) != *stamp)
        .map(|(id, _)| id)
        .collect()
}

/// Size and modification time of a file, as text.
fn file_stamp(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}:{}", m.len(), t.as_nanos()))
}

pub use crate::model::content_hash;

fn take_lock(dir: &Path, wait: bool) -> Result<File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // The holder wrote who it is; a daemon holds the folder for its
            // whole life, so waiting for it would hang.
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().to_string();
            if !wait || holder.contains("daemon") {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            eprintln!(
                "visawatch: another run ({holder}) is using {}; waiting for it to finish…",
                dir.display()
            );
            file.lock().map_err(io(&path))?;
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
    }
    let role = if wait { "check" } else { "daemon" };
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    writeln!(file, "{role} pid {}", std::process::id()).map_err(io(&path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(all["xk"].failures_in_a_row, 2);
        assert_eq!(all["xk"].last_ok_at.as_deref(), Some("2026-11-02T06:00:00Z"));
        assert_eq!(known["xk"].as_ref().map(|k| k.text_len), Some(4));
        assert!(known["new-source"].is_none());
        assert_eq!(all["new-source"].failures_in_a_row, 0);
    }

    /// Issue 10 (14): a kill while the server had the message (the kernel
    /// flushes the final `.`) left no trace of it. A delivery marked
    /// `sending` is found by the next round, pending again, with a note that
    /// a duplicate (same Message-ID) is possible.
    #[test]
    fn a_delivery_killed_while_sending_is_recovered_knowingly() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        let q = Queued {
            alert: crate::alert::plain_alert(AlertKind::Digest, "s".into(), "t", "body".into()),
            from: "vw <a@example.org>".into(),
            recipients: vec!["e@example.org".into()],
        };
        let id = store.queue(&q, "2026-11-30T00:00:00Z").unwrap();
        let due = store.due(0, false).unwrap();
        let message_id = due[0].message_id.clone();
        let (delivery, _, _) = due[0].pending[0].clone();
        store.mark_sending(&[delivery]).unwrap();
        assert!(
            store.due(i64::MAX, true).unwrap().is_empty(),
            "not sent twice while in flight"
        );
        drop(store); // the process dies here

        let store = Store::open(dir.path(), Access::WriteWait).unwrap();
        let recovered = store.recover_sending("interrupted").unwrap();
        assert_eq!(recovered, [("e@example.org".to_string(), message_id.clone())]);
        let due = store.due(0, false).unwrap();
        assert_eq!(
            (due[0].outbox_id, &due[0].message_id),
            (id, &message_id),
            "same Message-ID"
        );
        assert!(store.recover_sending("interrupted").unwrap().is_empty());
    }

    fn outcome(id: &str, status: Status, text: &str) -> Check {
        let read = crate::judge::read_of(text);
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
            started_at: "2026-11-30T00:00:00Z".into(),
            duration_ms: 1,
            outcome,
            alerts: Vec::new(),
            blind: None,
        }
    }

    /// Issue 10 (4): a kill between the commit of a new text and the write
    /// of `<id>.txt` left the file stale until the page's next change. The
    /// commit marks the file; the next run sees the mark and repairs it.
    #[test]
    fn a_text_file_not_written_before_a_kill_is_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        store
            .record_all(&[outcome("xk", Status::Baseline, "Fee 50 EUR\n")])
            .unwrap();
        let file = dir.path().join("xk.txt");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "Fee 50 EUR\n");
        let stale = |store: &Store| {
            let (known, _) = store.prefetch(&["xk"]).unwrap();
            let stamp = known["xk"].as_ref().unwrap().file_stamp.clone();
            stale_text_files(dir.path(), vec![("xk".into(), stamp)])
        };
        assert!(stale(&store).is_empty(), "just written");

        // The commit of a change, then the process dies before the file.
        let tx = store.conn.transaction().unwrap();
        write_outcome(&tx, &outcome("xk", Status::Changed, "Fee 65 EUR\n")).unwrap();
        tx.commit().unwrap();
        assert_eq!(stale(&store), ["xk"]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "Fee 50 EUR\n",
            "same length, old text"
        );

        store.repair_text_file("xk").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "Fee 65 EUR\n");
        assert!(stale(&store).is_empty());
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
