//! The data folder: a SQLite database (WAL, versioned migrations) holding
//! sources, deduplicated snapshots, checks and changes, plus `<id>.txt` per
//! source with its latest canonical text, readable and git-diffable.
//!
//! Each source's outcome is written in one transaction, so a crash leaves
//! either the whole outcome or none of it. A lock file keeps two writers out
//! of one folder. This module decides nothing: it records what the pipeline
//! hands it.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{Change, Status, Validators, Verdict};

pub const DB_FILE: &str = "visawatch.db";
const LOCK_FILE: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable visawatch database ({detail}); move it away to start a new history")]
    Corrupt { path: PathBuf, detail: String },
    #[error("no database at {path}: run `visawatch check` first, or pass the right --data folder")]
    Missing { path: PathBuf },
    #[error(
        "{path} is missing but {dir} holds snapshot files ({example}): the history was lost or --data points at the wrong folder; restore the database, or delete the .txt files to start over"
    )]
    Lost {
        path: PathBuf,
        dir: PathBuf,
        example: String,
    },
    #[error("another visawatch process holds the lock on {dir}")]
    Locked { dir: PathBuf },
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

/// What the store remembers of a source's last good check.
#[derive(Debug, Clone)]
pub struct Previous {
    pub text: String,
    pub hash: String,
    pub validators: Validators,
}

/// One source's outcome, written in one transaction.
#[derive(Debug)]
pub struct CheckRecord<'a> {
    pub source_id: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub started_at: &'a str,
    pub duration_ms: u64,
    pub status: Status,
    pub error: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// The new canonical text (absent on failure and on 304).
    pub text: Option<&'a str>,
    pub validators: Option<&'a Validators>,
    pub http_status: Option<u16>,
    pub charset: Option<&'a str>,
    pub verdict: Option<&'a Verdict>,
    /// Hash of a text held back as suspect.
    pub suspect_hash: Option<&'a str>,
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
    /// Held for the store's life; the OS releases it if the process dies.
    _lock: Option<File>,
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
                n.ends_with(".txt").then_some(n)
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
        Ok(Store {
            conn,
            dir: dir.to_path_buf(),
            db_path,
            _lock: lock,
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.db_path.clone(),
            source,
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

    /// Writes one source's outcome in a single transaction, then refreshes `<id>.txt`.
    pub fn record(&mut self, rec: &CheckRecord) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO sources (id, name, url) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, url = excluded.url",
            params![rec.source_id, rec.name, rec.url],
        )
        .map_err(sql)?;
        let hash = rec.text.map(content_hash);
        if let (Some(text), Some(hash)) = (rec.text, &hash) {
            tx.execute(
                "INSERT OR IGNORE INTO snapshots (hash, text, created_at) VALUES (?1, ?2, ?3)",
                params![hash, text, rec.started_at],
            )
            .map_err(sql)?;
        }
        let snapshot_hash: Option<String> = match &hash {
            Some(h) => Some(h.clone()),
            None => tx
                .query_row(
                    "SELECT current_hash FROM sources WHERE id = ?1",
                    [rec.source_id],
                    |r| r.get(0),
                )
                .map_err(sql)?,
        };
        tx.execute(
            "INSERT INTO checks (source_id, started_at, duration_ms, status, reason, error, http_status, charset, snapshot_hash, suspect_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                rec.source_id,
                rec.started_at,
                rec.duration_ms as i64,
                rec.status.as_str(),
                rec.reason,
                rec.error,
                rec.http_status,
                rec.charset,
                if rec.status == Status::Failed { None } else { snapshot_hash.clone() },
                rec.suspect_hash,
            ],
        )
        .map_err(sql)?;
        let check_id = tx.last_insert_rowid();
        if rec.status != Status::Failed {
            let v = rec.validators;
            tx.execute(
                "UPDATE sources SET current_hash = ?2, last_ok_at = ?3,
                   etag = CASE WHEN ?4 THEN ?5 ELSE etag END,
                   last_modified = CASE WHEN ?4 THEN ?6 ELSE last_modified END
                 WHERE id = ?1",
                params![
                    rec.source_id,
                    snapshot_hash,
                    rec.started_at,
                    v.is_some(),
                    v.and_then(|v| v.etag.clone()),
                    v.and_then(|v| v.last_modified.clone()),
                ],
            )
            .map_err(sql)?;
        }
        if let (Some(verdict), Some(after)) = (rec.verdict, &hash) {
            let before: String = tx
                .query_row(
                    "SELECT snapshot_hash FROM checks WHERE source_id = ?1 AND id < ?2 AND snapshot_hash IS NOT NULL ORDER BY id DESC LIMIT 1",
                    params![rec.source_id, check_id],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            tx.execute(
                "INSERT INTO changes (check_id, source_id, created_at, before_hash, after_hash, material, changes, diff, word_diff)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    check_id,
                    rec.source_id,
                    rec.started_at,
                    before,
                    after,
                    verdict.material,
                    serde_json::to_string(&verdict.changes).expect("changes serialize"),
                    verdict.diff,
                    verdict.word_diff,
                ],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        if let Some(text) = rec.text {
            self.write_text_file(rec.source_id, text)?;
        }
        Ok(())
    }

    /// `<id>.txt`: written to a temporary file and renamed, so a reader never sees half.
    fn write_text_file(&self, id: &str, text: &str) -> Result<(), StoreError> {
        let path = self.dir.join(format!("{id}.txt"));
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        let tmp = self.dir.join(format!(".{id}.txt.tmp"));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
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

    /// Whether the source has any check on record.
    pub fn knows(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM sources WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(self.sql())
    }
}

/// Content hash of a canonical text (snapshots are deduplicated by it).
pub fn content_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

fn take_lock(dir: &Path, wait: bool) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) if wait => {
            eprintln!(
                "visawatch: another run is using {}; waiting for it to finish…",
                dir.display()
            );
            file.lock().map_err(|source| StoreError::Io { path, source })?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}
