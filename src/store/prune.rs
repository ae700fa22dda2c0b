//! History retention: the rows that only said "still the same" (or "could
//! not read it") go once they are old; everything an editor may still
//! need stays.
//!
//! Pruned: unchanged and failed checks older than `keep_checks_days`,
//! snapshots no longer referenced by anything, alerts older than a year
//! (and than `keep_checks_days`) whose every delivery was sent, expired
//! desk sessions. Never pruned: changes and the snapshots on either side of
//! them, the check that recorded each change, baselines, each source's last
//! good check (its current text and health are read from it), reviews,
//! alerts still owed or rejected.
//!
//! The file shrinks by incremental vacuum; a database created before
//! visawatch used it is converted once by a full `VACUUM`.

use super::*;

/// Checks deleted per transaction: the daemon's writes and the desk's
/// reads interleave with a long prune instead of waiting for all of it.
const BATCH: i64 = 10_000;
/// Sent alerts are kept at least this long, whatever `keep_checks_days` says.
const KEEP_SENT_ALERTS_DAYS: u32 = 365;

/// What a prune removed, and the database's size around it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub checks: u64,
    pub snapshots: u64,
    pub alerts: u64,
    pub sessions: u64,
    /// The database and its WAL, in bytes.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Store {
    /// Prunes what is older than `keep_checks_days` before `now` (see the
    /// module's list), then gives the freed pages back to the file system.
    pub fn prune(&mut self, now: Time, keep_checks_days: u32) -> Result<Pruned, StoreError> {
        let mut done = Pruned {
            bytes_before: self.size_on_disk(),
            ..Pruned::default()
        };
        let cutoff = stamp_before(now, keep_checks_days);
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        // Rows are written in time order, so ids below the last old check
        // are the candidates: one scan for the bound, then id ranges.
        let last_old: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM checks WHERE started_at < ?1",
                [&cutoff],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut from = 0;
        while from < last_old {
            let to = (from + BATCH).min(last_old);
            let tx = self.conn.transaction().map_err(sql)?;
            let n = tx
                .execute(
                    "DELETE FROM checks WHERE id IN (
                       SELECT c.id FROM checks c
                       WHERE c.id > ?1 AND c.id <= ?2 AND c.started_at < ?3
                         AND c.status IN ('unchanged', 'failed')
                         AND NOT EXISTS (SELECT 1 FROM changes ch WHERE ch.check_id = c.id)
                         AND c.id < coalesce((SELECT g.id FROM checks g
                               WHERE g.source_id = c.source_id AND g.status != 'failed'
                               ORDER BY g.id DESC LIMIT 1), 0))",
                    params![from, to, cutoff],
                )
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
            done.checks += n as u64;
            from = to;
        }

        let tx = self.conn.transaction().map_err(sql)?;
        let alerts_cutoff = stamp_before(now, keep_checks_days.max(KEEP_SENT_ALERTS_DAYS));
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_outbox (id INTEGER PRIMARY KEY);
             DELETE FROM prune_outbox;",
        )
        .map_err(sql)?;
        // Only alerts that reached everyone: a pending or rejected one is
        // still something an operator has to see in `visawatch outbox`.
        tx.execute(
            "INSERT INTO prune_outbox (id)
             SELECT o.id FROM outbox o
             WHERE o.created_at < ?1
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id)
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id AND d.status != 'sent')
               AND o.id NOT IN (SELECT outbox_id FROM hook_deliveries WHERE status != 'sent')",
            [&alerts_cutoff],
        )
        .map_err(sql)?;
        tx.execute_batch(
            "DELETE FROM deliveries WHERE outbox_id IN (SELECT id FROM prune_outbox);
             DELETE FROM hook_deliveries WHERE outbox_id IN (SELECT id FROM prune_outbox);",
        )
        .map_err(sql)?;
        done.alerts = tx
            .execute("DELETE FROM outbox WHERE id IN (SELECT id FROM prune_outbox)", [])
            .map_err(sql)? as u64;
        tx.execute_batch("DROP TABLE prune_outbox;").map_err(sql)?;
        // Every hash something still points at, gathered once: the
        // references have no index by hash, and one scan beats one per snapshot.
        done.snapshots = tx
            .execute(
                "DELETE FROM snapshots WHERE hash NOT IN (
                   SELECT snapshot_hash FROM checks WHERE snapshot_hash IS NOT NULL
                   UNION SELECT before_hash FROM changes
                   UNION SELECT after_hash FROM changes
                   UNION SELECT current_hash FROM sources WHERE current_hash IS NOT NULL)",
                [],
            )
            .map_err(sql)? as u64;
        done.sessions = tx
            .execute(
                "DELETE FROM sessions WHERE expires_at < ?1",
                [crate::model::stamp(&now)],
            )
            .map_err(sql)? as u64;
        tx.commit().map_err(sql)?;

        self.shrink()?;
        done.bytes_after = self.size_on_disk();
        Ok(done)
    }

    /// Hands free pages back to the file system and folds the WAL in.
    fn shrink(&mut self) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let mode: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(sql)?;
        if mode == INCREMENTAL {
            // Each step frees a page: step it to the end.
            let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum").map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while rows.next().map_err(sql)?.is_some() {}
        } else {
            // Takes effect only through a VACUUM, which rewrites the whole
            // file: once, from then on the cheap incremental kind.
            tracing::info!(path = %self.db_path.display(), "converting the database to incremental vacuum (once; rewrites the file)");
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
                .map_err(sql)?;
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql)
    }

    /// The database file and its WAL, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        len(&self.db_path) + len(&self.dir.join(format!("{DB_FILE}-wal")))
    }
}

/// `PRAGMA auto_vacuum` value of incremental mode.
pub(super) const INCREMENTAL: i64 = 2;

/// The stored form of `days` before `now` (stored times compare as text:
/// all are RFC 3339 in UTC, to the second).
fn stamp_before(now: Time, days: u32) -> String {
    crate::model::stamp(&(now - chrono::Duration::days(days.into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::outcome;

    fn auto_vacuum(store: &Store) -> i64 {
        store
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap()
    }

    /// A year of daily checks of 40 sources, written as runs write them.
    fn a_year(store: &mut Store) -> Time {
        let start: Time = "2025-01-01T06:00:00Z".parse().unwrap();
        let ids: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        for day in 0..365 {
            let recs: Vec<Check> = ids
                .iter()
                .map(|id| {
                    let status = if day == 0 {
                        Status::Baseline
                    } else {
                        Status::Unchanged
                    };
                    let mut c = outcome(id, status, "Fee 50 EUR\n");
                    c.started_at = start + chrono::Duration::days(day);
                    c
                })
                .collect();
            store.record_all(&recs, crate::notify::message_id).unwrap();
        }
        start + chrono::Duration::days(365)
    }

    /// Issue 17: pruning a year down to 30 days gives the space back to the
    /// file system (incremental vacuum), and keeps each source whole.
    #[test]
    fn a_prune_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        assert_eq!(
            auto_vacuum(&store),
            INCREMENTAL,
            "a new database vacuums incrementally"
        );
        let now = a_year(&mut store);
        let p = store.prune(now, 30).unwrap();
        // Kept per source: the baseline and the last 30 days.
        assert_eq!(p.checks, 40 * (365 - 1 - 30), "{p:?}");
        assert!(
            p.bytes_after * 5 < p.bytes_before,
            "the file shrank: {} -> {} bytes",
            p.bytes_before,
            p.bytes_after
        );
        assert_eq!(store.previous("s7").unwrap().unwrap().text, "Fee 50 EUR\n");
    }

    /// A database from before incremental vacuum is converted by its first
    /// prune (a full VACUUM, once), and shrinks too.
    #[test]
    fn a_prune_converts_an_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        store
            .conn
            .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
        assert_eq!(auto_vacuum(&store), 0);
        let now = a_year(&mut store);
        let p = store.prune(now, 30).unwrap();
        assert_eq!(auto_vacuum(&store), INCREMENTAL, "converted");
        assert!(p.bytes_after * 3 < p.bytes_before, "{p:?}");
        assert_eq!(store.previous("s7").unwrap().unwrap().text, "Fee 50 EUR\n");
    }
}
