//! The editors' desk's side of the store: what its pages read (sources at a
//! glance, a change, the review queue, snapshots, metrics) and the only
//! things it writes: reviews, accounts, sessions and API tokens.
//!
//! Reads see a consistent snapshot of the WAL and never block a check.
//! Writes are one short transaction each on the desk's own tables (and a
//! change's `review_state`), serialised by SQLite with the checks' writes:
//! they cannot lose or corrupt a check's outcome.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};
use crate::model::{Change, Status};

/// A source as the overview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    pub id: String,
    pub name: String,
    pub url: String,
    /// The last check: when, its status, its error.
    pub last_check_at: Option<String>,
    pub last_status: Option<Status>,
    pub last_error: Option<String>,
    /// The last check that read the page.
    pub last_ok_at: Option<String>,
    /// Set while the source "cannot be read" (the alert went out).
    pub blind_since: Option<String>,
    /// Material changes awaiting review.
    pub awaiting_review: u32,
    pub last_material_at: Option<String>,
}

/// What orders and filters the desk's overview (see
/// [`Store::desk_attention`]); each list in the order of the ids, so the
/// overview merges them with the configuration in one pass.
#[derive(Debug, Default)]
pub struct Attention {
    /// Every source the store knows, with its last check's status.
    pub sources: Vec<(String, Option<Status>)>,
    /// Sources that "cannot be read" (the alert went out).
    pub blind: Vec<String>,
    /// Material changes awaiting review, by source.
    pub awaiting: Vec<(String, u32)>,
}

/// The overview's row of a source `s`, by per-source index lookups.
const SOURCE_ROW: &str = "SELECT s.id, s.name, s.url, s.blind_since, c.started_at, c.status, c.error,
       (SELECT started_at FROM checks k WHERE k.source_id = s.id AND k.status != 'failed'
          ORDER BY k.id DESC LIMIT 1),
       (SELECT count(*) FROM changes ch WHERE ch.source_id = s.id AND ch.material = 1
          AND ch.review_state IS NULL),
       (SELECT max(created_at) FROM changes ch WHERE ch.source_id = s.id AND ch.material = 1)
     FROM sources s
     LEFT JOIN checks c ON c.id = (SELECT max(id) FROM checks WHERE source_id = s.id)";

fn source_row(r: &rusqlite::Row) -> rusqlite::Result<SourceRow> {
    let status: Option<String> = r.get(5)?;
    Ok(SourceRow {
        id: r.get(0)?,
        name: r.get(1)?,
        url: r.get(2)?,
        blind_since: r.get(3)?,
        last_check_at: r.get(4)?,
        last_status: status.as_deref().and_then(Status::parse),
        last_error: r.get(6)?,
        last_ok_at: r.get(7)?,
        awaiting_review: r.get(8)?,
        last_material_at: r.get(9)?,
    })
}

/// A recorded change with what the desk shows of it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeDetail {
    pub id: i64,
    pub source_id: String,
    pub source_name: String,
    pub url: String,
    /// When the check that found it fetched the page.
    pub fetched_at: String,
    pub material: bool,
    pub changes: Vec<Change>,
    /// `None`: awaiting review; else `applied` or `not_relevant`.
    pub review_state: Option<String>,
    #[serde(skip)]
    pub diff: String,
    #[serde(skip)]
    pub before_hash: String,
    #[serde(skip)]
    pub after_hash: String,
}

/// One entry of a change's review history.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewRow {
    pub action: String,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub user: String,
    pub at: String,
}

/// A text the source showed, from when it became current.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    pub hash: String,
    pub since: String,
}

/// What `/metrics` reports, read in one go.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub checks_by_status: Vec<(String, i64)>,
    pub changes_by_kind: Vec<(String, i64)>,
    pub deliveries_by_status: Vec<(String, i64)>,
    pub outbox_pending: i64,
    pub sources_unreadable: i64,
    /// Check durations: (upper bound in ms, checks at or below it), cumulative.
    pub duration_buckets: Vec<(u64, i64)>,
    pub duration_count: i64,
    pub duration_sum_ms: i64,
    pub last_check_at: Option<String>,
    pub awaiting_review: i64,
}

/// Upper bounds of the check-duration histogram, in milliseconds.
pub const DURATION_BUCKETS_MS: [u64; 9] = [50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/// What a review does to a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAction {
    /// The site was updated.
    Applied,
    /// Nothing to do (with a reason).
    NotRelevant,
    /// Back to the queue.
    Reopen,
}

impl ReviewAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewAction::Applied => "applied",
            ReviewAction::NotRelevant => "not_relevant",
            ReviewAction::Reopen => "reopened",
        }
    }

    pub fn parse(s: &str) -> Option<ReviewAction> {
        Some(match s {
            "applied" => ReviewAction::Applied,
            "not_relevant" => ReviewAction::NotRelevant,
            "reopen" | "reopened" => ReviewAction::Reopen,
            _ => return None,
        })
    }
}

/// A desk account.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub name: String,
    pub admin: bool,
    pub created_at: String,
}

const CHANGE_COLUMNS: &str = "ch.id, ch.source_id, s.name, s.url, k.started_at, ch.material, ch.changes, \
     ch.review_state, ch.diff, ch.before_hash, ch.after_hash";

fn change_row(r: &rusqlite::Row) -> rusqlite::Result<ChangeDetail> {
    let changes: String = r.get(6)?;
    Ok(ChangeDetail {
        id: r.get(0)?,
        source_id: r.get(1)?,
        source_name: r.get(2)?,
        url: r.get(3)?,
        fetched_at: r.get(4)?,
        material: r.get(5)?,
        changes: serde_json::from_str(&changes).unwrap_or_default(),
        review_state: r.get(7)?,
        diff: r.get(8)?,
        before_hash: r.get(9)?,
        after_hash: r.get(10)?,
    })
}

impl Store {
    /// Every source the store knows, by id, as the overview's rows (the
    /// JSON API's list). The overview itself reads only a page of them.
    pub fn desk_sources(&self) -> Result<Vec<SourceRow>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("{SOURCE_ROW} ORDER BY s.id"))
            .map_err(self.sql())?;
        let rows = st
            .query_map([], source_row)
            .and_then(|rows| rows.collect())
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// One source's row, if it was ever checked.
    pub fn desk_source(&self, id: &str) -> Result<Option<SourceRow>, StoreError> {
        self.conn
            .prepare_cached(&format!("{SOURCE_ROW} WHERE s.id = ?1"))
            .and_then(|mut st| st.query_row([id], source_row).optional())
            .map_err(self.sql())
    }

    /// What orders and filters the overview, read from indexes only (a
    /// few milliseconds at 100,000 sources): every source's last status,
    /// the unreadable ones, and the material changes awaiting review.
    pub fn desk_attention(&self) -> Result<Attention, StoreError> {
        let mut att = Attention::default();
        // Read from the (id, last_status) index alone, already in id order.
        let mut st = self
            .conn
            .prepare_cached("SELECT id, last_status FROM sources ORDER BY id")
            .map_err(self.sql())?;
        att.sources = st
            .query_map([], |r| {
                let status: Option<String> = r.get(1)?;
                Ok((r.get(0)?, status.as_deref().and_then(Status::parse)))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.sql())?;
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM sources WHERE blind_since IS NOT NULL ORDER BY id")
            .map_err(self.sql())?;
        att.blind = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(self.sql())?;
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT source_id, count(*) FROM changes WHERE material = 1 AND review_state IS NULL
                 GROUP BY source_id ORDER BY source_id",
            )
            .map_err(self.sql())?;
        att.awaiting = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.sql())?;
        Ok(att)
    }

    /// One change, by its number.
    pub fn desk_change(&self, id: i64) -> Result<Option<ChangeDetail>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM changes ch JOIN sources s ON s.id = ch.source_id
                 JOIN checks k ON k.id = ch.check_id WHERE ch.id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], change_row).optional())
            .map_err(self.sql())
    }

    /// The change a source's check at `started_at` found (alert links name
    /// the check, whose change number is not known when the alert is written).
    pub fn change_at(&self, source_id: &str, started_at: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT ch.id FROM changes ch JOIN checks k ON k.id = ch.check_id
                 WHERE ch.source_id = ?1 AND k.started_at = ?2 ORDER BY ch.id DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![source_id, started_at], |r| r.get(0))
                    .optional()
            })
            .map_err(self.sql())
    }

    /// Changes, newest first: those after `before_id` (paging), of one source
    /// or all, material only or all, found at or after `since`.
    pub fn desk_changes(
        &self,
        source: Option<&str>,
        material_only: bool,
        since: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ChangeDetail>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM changes ch JOIN sources s ON s.id = ch.source_id
                 JOIN checks k ON k.id = ch.check_id
                 WHERE (?1 IS NULL OR ch.source_id = ?1) AND (NOT ?2 OR ch.material = 1)
                   AND (?3 IS NULL OR ch.created_at >= ?3) AND (?4 IS NULL OR ch.id < ?4)
                 ORDER BY ch.id DESC LIMIT ?5"
            ))
            .and_then(|mut st| {
                st.query_map(
                    params![source, material_only, since, before_id, limit as i64],
                    change_row,
                )
                .and_then(|rows| rows.collect())
            })
            .map_err(self.sql())
    }

    /// Material changes awaiting review, oldest first.
    pub fn review_queue(&self) -> Result<Vec<ChangeDetail>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CHANGE_COLUMNS} FROM changes ch JOIN sources s ON s.id = ch.source_id
                 JOIN checks k ON k.id = ch.check_id
                 WHERE ch.material = 1 AND ch.review_state IS NULL ORDER BY ch.id"
            ))
            .and_then(|mut st| st.query_map([], change_row).and_then(|rows| rows.collect()))
            .map_err(self.sql())
    }

    /// A change's review history, oldest first.
    pub fn reviews_of(&self, change_id: i64) -> Result<Vec<ReviewRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT action, reason, note, user_name, at FROM reviews WHERE change_id = ?1 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map([change_id], |r| {
                    Ok(ReviewRow {
                        action: r.get(0)?,
                        reason: r.get(1)?,
                        note: r.get(2)?,
                        user: r.get(3)?,
                        at: r.get(4)?,
                    })
                })
                .and_then(|rows| rows.collect())
            })
            .map_err(self.sql())
    }

    /// Records a review; `false` when there is no such change.
    pub fn record_review(
        &mut self,
        change_id: i64,
        action: ReviewAction,
        reason: Option<&str>,
        note: Option<&str>,
        user: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let state = match action {
            ReviewAction::Reopen => None,
            a => Some(a.as_str()),
        };
        let path = self.db_path.clone();
        let sql = |source| super::sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        let found = tx
            .execute(
                "UPDATE changes SET review_state = ?2 WHERE id = ?1",
                params![change_id, state],
            )
            .map_err(sql)?;
        if found == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO reviews (change_id, action, reason, note, user_name, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![change_id, action.as_str(), reason, note, user, at],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(true)
    }

    /// The texts a source showed, oldest first: its baseline, then each
    /// change's new text.
    pub fn snapshots_of(&self, source_id: &str) -> Result<Vec<SnapshotRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT hash, since FROM (
                   SELECT k.snapshot_hash AS hash, k.started_at AS since, k.id AS ord FROM checks k
                     WHERE k.id = (SELECT min(id) FROM checks WHERE source_id = ?1 AND status = 'baseline')
                   UNION ALL
                   SELECT ch.after_hash, k.started_at, k.id FROM changes ch JOIN checks k ON k.id = ch.check_id
                     WHERE ch.source_id = ?1)
                 WHERE hash IS NOT NULL ORDER BY ord",
            )
            .and_then(|mut st| {
                st.query_map([source_id], |r| {
                    Ok(SnapshotRow {
                        hash: r.get(0)?,
                        since: r.get(1)?,
                    })
                })
                .and_then(|rows| rows.collect())
            })
            .map_err(self.sql())
    }

    /// A snapshot's text.
    pub fn snapshot_text(&self, hash: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT text FROM snapshots WHERE hash = ?1")
            .and_then(|mut st| st.query_row([hash], |r| r.get(0)).optional())
            .map_err(self.sql())
    }

    /// Everything `/metrics` reports.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let sql = self.sql();
        let pairs = |q: &str| -> Result<Vec<(String, i64)>, StoreError> {
            self.conn
                .prepare_cached(q)
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .and_then(|rows| rows.collect())
                })
                .map_err(self.sql())
        };
        let mut c = Counts {
            checks_by_status: pairs("SELECT status, count(*) FROM checks GROUP BY status ORDER BY status")?,
            deliveries_by_status: pairs(
                "SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status",
            )?,
            ..Counts::default()
        };
        let mut kinds: std::collections::BTreeMap<String, i64> = Default::default();
        for (json, n) in pairs("SELECT changes, 1 FROM changes")? {
            for change in serde_json::from_str::<Vec<Change>>(&json).unwrap_or_default() {
                let kind = serde_json::to_value(change.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *kinds.entry(kind).or_default() += n;
            }
        }
        c.changes_by_kind = kinds.into_iter().collect();
        let one = |q: &str| -> Result<i64, StoreError> {
            self.conn.query_row(q, [], |r| r.get(0)).map_err(self.sql())
        };
        c.outbox_pending =
            one("SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending', 'no_recipients')")?;
        c.sources_unreadable = one("SELECT count(*) FROM sources WHERE blind_since IS NOT NULL")?;
        c.awaiting_review = one("SELECT count(*) FROM changes WHERE material = 1 AND review_state IS NULL")?;
        let buckets: Vec<String> = DURATION_BUCKETS_MS
            .iter()
            .map(|b| format!("sum(duration_ms <= {b})"))
            .collect();
        let (counts, n, sum): (Vec<i64>, i64, i64) = self
            .conn
            .query_row(
                &format!(
                    "SELECT {}, count(*), coalesce(sum(duration_ms), 0) FROM checks",
                    buckets.join(", ")
                ),
                [],
                |r| {
                    let mut v = Vec::new();
                    for i in 0..DURATION_BUCKETS_MS.len() {
                        v.push(r.get::<_, Option<i64>>(i)?.unwrap_or(0));
                    }
                    Ok((
                        v,
                        r.get(DURATION_BUCKETS_MS.len())?,
                        r.get(DURATION_BUCKETS_MS.len() + 1)?,
                    ))
                },
            )
            .map_err(sql)?;
        c.duration_buckets = DURATION_BUCKETS_MS.iter().copied().zip(counts).collect();
        c.duration_count = n;
        c.duration_sum_ms = sum;
        c.last_check_at = self
            .conn
            .query_row(
                "SELECT started_at FROM checks ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        Ok(c)
    }

    // Accounts.

    /// Adds a user; `false` when the name is taken.
    pub fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        admin: bool,
        at: &str,
    ) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO users (name, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, password_hash, admin, at],
            )
            .map(|n| n == 1)
            .map_err(self.sql())
    }

    pub fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.conn
            .prepare_cached("SELECT name, admin, created_at FROM users ORDER BY name")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(UserRow {
                        name: r.get(0)?,
                        admin: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect())
            })
            .map_err(self.sql())
    }

    /// Removes a user and their sessions; `false` when there is none.
    pub fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE user_name = ?1", [name])
            .and_then(|_| self.conn.execute("DELETE FROM users WHERE name = ?1", [name]))
            .map(|n| n == 1)
            .map_err(self.sql())
    }

    /// Sets a user's password and ends their sessions; `false` when there is none.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let found = self
            .conn
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(self.sql())?;
        self.conn
            .execute("DELETE FROM sessions WHERE user_name = ?1", [name])
            .map_err(self.sql())?;
        Ok(found == 1)
    }

    /// A user's password hash, if the user exists.
    pub fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT password_hash FROM users WHERE name = ?1")
            .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
            .map_err(self.sql())
    }

    /// Opens a session (and forgets expired ones).
    pub fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        at: &str,
        expires: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE expires_at < ?1", [at])
            .and_then(|_| {
                self.conn.execute(
                    "INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![token_hash, user, at, expires],
                )
            })
            .map(drop)
            .map_err(self.sql())
    }

    /// The user of a live session: (name, admin).
    pub fn session_user(&self, token_hash: &str, now: &str) -> Result<Option<(String, bool)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT u.name, u.admin FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![token_hash, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(self.sql())
    }

    pub fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
            .map(drop)
            .map_err(self.sql())
    }

    /// Adds an API token (its hash); `false` when the name is taken.
    pub fn add_token(&self, name: &str, token_hash: &str, at: &str) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO api_tokens (name, token_hash, created_at) VALUES (?1, ?2, ?3)",
                params![name, token_hash, at],
            )
            .map(|n| n == 1)
            .map_err(self.sql())
    }

    /// Token names and when they were made.
    pub fn tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.conn
            .prepare_cached("SELECT name, created_at FROM api_tokens ORDER BY name")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
            })
            .map_err(self.sql())
    }

    pub fn remove_token(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM api_tokens WHERE name = ?1", [name])
            .map(|n| n == 1)
            .map_err(self.sql())
    }

    /// The name of the token with this hash, if any.
    pub fn token_named(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT name FROM api_tokens WHERE token_hash = ?1")
            .and_then(|mut st| st.query_row([token_hash], |r| r.get(0)).optional())
            .map_err(self.sql())
    }
}
