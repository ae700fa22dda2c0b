//! The read side of the data folder: what a run needs up front, and what
//! `status`, `history`, `show`, `diff`, the digest (and the coming web desk)
//! show. Plain reads; they work on a read-only handle while another process
//! writes (WAL readers never block the writer, nor it them).

use super::*;
use crate::model::Listed;

/// A source's latest check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastCheck {
    pub started_at: Time,
    pub status: Status,
    pub error: Option<String>,
}

/// A row of `visawatch history`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    pub started_at: String,
    pub status: Status,
    pub error: Option<String>,
    pub material: Option<bool>,
    pub changes: Vec<Change>,
}

/// A point in the history: the newest check and change ids at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub check: i64,
    pub change: i64,
}

impl Marks {
    /// `"check:change"`, as kept in `meta`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.check, self.change)
    }

    pub fn decode(s: &str) -> Option<Marks> {
        let (a, b) = s.split_once(':')?;
        Some(Marks {
            check: a.parse().ok()?,
            change: b.parse().ok()?,
        })
    }
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

/// A stored time, typed at the boundary.
pub(super) fn time_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Time> {
    let text: String = r.get(i)?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// A stored check status, typed at the boundary.
pub(super) fn status_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Status> {
    let text: String = r.get(i)?;
    Status::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown status `{text}`").into(),
        )
    })
}

impl Store {
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

    /// The robots.txt files fetched since `since` (a stored time).
    pub fn robots_since(&self, since: &str) -> Result<Vec<crate::model::RobotsFile>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT origin, fetched_at, status, body FROM robots WHERE fetched_at >= ?1")
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([since], |r| {
                Ok(crate::model::RobotsFile {
                    origin: r.get(0)?,
                    fetched_at: r.get(1)?,
                    status: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// What a run needs to know of its sources up front, read in one
    /// transaction with two queries over all sources (a query per source
    /// costs more than the whole unchanged round's network time): the last
    /// good check of each, in the order of `ids`, and the health of those
    /// in trouble (last check failed, or "cannot be read" alerted): a
    /// `None` is a source whose last check read the page (its health is
    /// clean but for when that was, which [`Store::health`] reads when a
    /// check fails). Ids never checked get no [`Known`].
    #[allow(clippy::type_complexity)]
    pub fn prefetch(
        &self,
        ids: &[&str],
    ) -> Result<(Vec<Option<Known>>, Vec<Option<Box<Health>>>), StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(self.sql())?;
        // Vectors by position, not maps by id: a run of 100,000 sources
        // keeps no second copy of every id.
        let position: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut known: Vec<Option<Known>> = std::iter::repeat_with(|| None).take(ids.len()).collect();
        let mut health: Vec<Option<Box<Health>>> = std::iter::repeat_with(|| None).take(ids.len()).collect();
        // octet_length reads the text's size from its record header, not the text.
        let mut known_stmt = tx
            .prepare(
                "SELECT src.id, src.etag, src.last_modified, octet_length(s.text), src.body_hash, f.stamp
                 FROM sources src JOIN snapshots s ON s.hash = src.current_hash
                 LEFT JOIN text_files f ON f.source_id = src.id",
            )
            .map_err(self.sql())?;
        let mut rows = known_stmt.query([]).map_err(self.sql())?;
        while let Some(r) = rows.next().map_err(self.sql())? {
            let id = r.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(self.sql())?;
            let Some(&i) = position.get(id) else { continue };
            let k = (|| {
                Ok(Known {
                    validators: Validators {
                        etag: r.get(1)?,
                        last_modified: r.get(2)?,
                    },
                    text_len: r.get::<_, i64>(3)? as usize,
                    body_hash: r
                        .get_ref(4)?
                        .as_str_or_null()?
                        .and_then(|h| blake3::Hash::from_hex(h).ok()),
                    file_stamp: r.get(5)?,
                })
            })()
            .map_err(self.sql())?;
            known[i] = Some(k);
        }
        drop(rows);
        drop(known_stmt);
        // Health of the sources in trouble only: the rest are clean.
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT src.blind_since, {HEALTH_COLUMNS}, src.id FROM sources src
                 WHERE src.last_status = 'failed' OR src.blind_since IS NOT NULL"
            ))
            .map_err(self.sql())?;
        let mut rows = stmt.query([]).map_err(self.sql())?;
        while let Some(r) = rows.next().map_err(self.sql())? {
            let id = r.get_ref(3).and_then(|v| Ok(v.as_str()?)).map_err(self.sql())?;
            if let Some(&i) = position.get(id) {
                health[i] = Some(Box::new(health_row(r).map_err(self.sql())?));
            }
        }
        tx.commit().map_err(self.sql())?;
        Ok((known, health))
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
                    status: status_at(r, 1)?,
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
                        started_at: time_at(r, 1)?,
                        status: status_at(r, 2)?,
                        error: r.get(3)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Where the history ends now: the newest check's and change's ids. A
    /// digest covers what came after the marks of the previous one (ids,
    /// not times: compared as numbers and found through the primary key).
    pub fn marks(&self) -> Result<Marks, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT coalesce(max(id), 0) FROM checks), (SELECT coalesce(max(id), 0) FROM changes)",
                [],
                |r| Ok(Marks { check: r.get(0)?, change: r.get(1)? }),
            )
            .map_err(self.sql())
    }

    /// The marks at a time (for a data folder whose last digest was
    /// remembered by its time, before marks existed).
    pub fn marks_at(&self, at: &str) -> Result<Marks, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT coalesce(max(id), 0) FROM checks WHERE started_at < ?1),
                        (SELECT coalesce(max(id), 0) FROM changes WHERE created_at < ?1)",
                [at],
                |r| {
                    Ok(Marks {
                        check: r.get(0)?,
                        change: r.get(1)?,
                    })
                },
            )
            .map_err(self.sql())
    }

    /// Non-material (text-only) changes after a mark: (source id, when,
    /// word diff), the first `limit` by source, and how many there are.
    pub fn text_changes_after(
        &self,
        mark: &Marks,
        limit: usize,
    ) -> Result<Listed<(String, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_id, created_at, word_diff FROM changes WHERE id > ?1 AND material = 0
                 ORDER BY source_id, id LIMIT ?2",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![mark.change, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        let total = self.count(
            "SELECT count(*) FROM changes WHERE id > ?1 AND material = 0",
            mark.change,
        )?;
        Ok(Listed { rows, total })
    }

    /// Alerted (material) changes after a mark: (source id, when, the
    /// changes in words), for the digest's look back at the week; the
    /// first `limit` by source, and how many there are.
    pub fn material_changes_after(
        &self,
        mark: &Marks,
        limit: usize,
    ) -> Result<Listed<(String, String, Vec<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_id, created_at, changes FROM changes WHERE id > ?1 AND material = 1
                 ORDER BY source_id, id LIMIT ?2",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![mark.change, limit as i64], |r| {
                let changes: String = r.get(2)?;
                let changes: Vec<crate::model::Change> = serde_json::from_str(&changes).unwrap_or_default();
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    changes
                        .iter()
                        .filter(|c| c.kind.is_material())
                        .map(crate::model::Change::describe)
                        .collect(),
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        let total = self.count(
            "SELECT count(*) FROM changes WHERE id > ?1 AND material = 1",
            mark.change,
        )?;
        Ok(Listed { rows, total })
    }

    /// Sources with failed checks after a mark: (id, failed checks, last
    /// error), the first `limit` by id, and how many there are.
    pub fn troubled_after(
        &self,
        mark: &Marks,
        limit: usize,
    ) -> Result<Listed<(String, u32, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_id, count(*), (SELECT error FROM checks c2 WHERE c2.source_id = c.source_id
                   AND c2.status = 'failed' ORDER BY id DESC LIMIT 1)
                 FROM checks c WHERE id > ?1 AND status = 'failed' GROUP BY source_id ORDER BY source_id
                 LIMIT ?2",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![mark.check, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        let total = self.count(
            "SELECT count(DISTINCT source_id) FROM checks WHERE id > ?1 AND status = 'failed'",
            mark.check,
        )?;
        Ok(Listed { rows, total })
    }

    /// A `count(*)` query with one id parameter.
    fn count(&self, sql: &str, after: i64) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row(sql, [after], |r| r.get(0))
            .map_err(self.sql())?;
        Ok(n as usize)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::outcome;

    /// The digest covers what came after the last one's marks: ids, not
    /// times compared as text.
    #[test]
    fn the_digest_reads_what_came_after_its_marks() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        let failed = |id: &str| {
            let mut c = outcome(id, Status::Unchanged, "x\n");
            c.outcome = Outcome::Failed {
                failure: crate::model::Failure {
                    reason: crate::model::Reason::Timeout,
                    message: "timeout".into(),
                },
                suspect_hash: None,
            };
            c
        };
        let mid = crate::notify::message_id;
        store
            .record_all(&[outcome("a", Status::Baseline, "x\n"), failed("b")], mid)
            .unwrap();
        let marks = store.marks().unwrap();
        assert_eq!(Marks::decode(&marks.encode()), Some(marks));
        assert!(store.troubled_after(&marks, 10).unwrap().rows.is_empty());
        store
            .record_all(&[failed("a"), failed("a"), failed("c")], mid)
            .unwrap();
        let troubled = store.troubled_after(&marks, 10).unwrap();
        assert_eq!(troubled.total, 2);
        assert_eq!(
            troubled.rows,
            [
                ("a".to_string(), 2, "timeout".to_string()),
                ("c".to_string(), 1, "timeout".to_string())
            ]
        );
        // A list cut short still says how long it is.
        let first = store.troubled_after(&marks, 1).unwrap();
        assert_eq!((first.rows.len(), first.total), (1, 2));
        assert!(
            store
                .text_changes_after(&store.marks().unwrap(), 10)
                .unwrap()
                .rows
                .is_empty()
        );
    }
}
