//! Recording checks: each outcome in one transaction (batched), then the
//! `<id>.txt` files and what they look like, so a stale one is found with
//! one `stat`.

use super::outbox::queue;
use super::*;

/// One source's outcome: its check row, snapshot, change and alerts.
pub(super) fn write_outcome(
    tx: &rusqlite::Transaction,
    rec: &Check,
    message_id: MessageIdFn,
) -> rusqlite::Result<()> {
    let status = rec.outcome.status();
    let at = crate::model::stamp(&rec.started_at);
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
            .and_then(|mut st| st.execute(params![hash, text, at]))?;
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
            at,
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
            "UPDATE sources SET current_hash = ?2, last_status = ?6,
               etag = CASE WHEN ?3 THEN ?4 ELSE etag END,
               last_modified = CASE WHEN ?3 THEN ?5 ELSE last_modified END
             WHERE id = ?1 AND (current_hash IS NOT ?2 OR last_status IS NOT ?6
               OR (?3 AND (etag IS NOT ?4 OR last_modified IS NOT ?5)))",
        )
        .and_then(|mut st| {
            st.execute(params![
                rec.source_id,
                snapshot_hash,
                v.is_some(),
                v.and_then(|v| v.etag.clone()),
                v.and_then(|v| v.last_modified.clone()),
                status.as_str(),
            ])
        })?;
    } else {
        tx.prepare_cached(
            "UPDATE sources SET last_status = 'failed' WHERE id = ?1 AND last_status IS NOT 'failed'",
        )
        .and_then(|mut st| st.execute([&rec.source_id]))?;
    }
    if let (Some(verdict), Some(after)) = (rec.outcome.verdict(), &hash) {
        let before: String = tx.prepare_cached("SELECT snapshot_hash FROM checks WHERE source_id = ?1 AND id < ?2 AND snapshot_hash IS NOT NULL ORDER BY id DESC LIMIT 1").and_then(|mut st| st.query_row(params![rec.source_id, check_id],
                |r| r.get(0),))
            ?;
        tx.prepare_cached("INSERT INTO changes (check_id, source_id, created_at, before_hash, after_hash, material, changes, diff, word_diff)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)").and_then(|mut st| st.execute(params![
                check_id,
                rec.source_id,
                at,
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
            .and_then(|mut st| st.execute(params![rec.source_id, at])),
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
        queue(tx, Some(&rec.source_id), linked, q, &at, message_id)?;
    }
    Ok(())
}

/// Whether a source's `<id>.txt` in `dir` no longer looks as visawatch
/// left it, given its recorded stamp: missing, changed since, or never
/// written after its text changed (a kill between the commit and the
/// file). One `stat`.
pub fn text_file_is_stale(dir: &Path, id: &str, stamp: Option<&str>) -> bool {
    stamp.is_none() || file_stamp(&dir.join(format!("{id}.txt"))).as_deref() != stamp
}

/// Size and modification time of a file, as text.
pub(super) fn file_stamp(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}:{}", m.len(), t.as_nanos()))
}

impl Store {
    /// Writes several sources' outcomes in one transaction: each outcome is
    /// whole or absent after a crash, and a run of 1,000 unchanged sources
    /// costs a few commits instead of 1,000. Then refreshes the `<id>.txt` files.
    pub fn record_all(&mut self, recs: &[Check], message_id: MessageIdFn) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for rec in recs {
            write_outcome(&tx, rec, message_id).map_err(sql)?;
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

    /// Keeps the robots.txt files a run fetched, for the rest of the day.
    pub fn save_robots(&mut self, files: &[crate::model::RobotsFile]) -> Result<(), StoreError> {
        if files.is_empty() {
            return Ok(());
        }
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for f in files {
            tx.prepare_cached(
                "INSERT INTO robots (origin, fetched_at, status, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(origin) DO UPDATE SET fetched_at = excluded.fetched_at,
                   status = excluded.status, body = excluded.body",
            )
            .and_then(|mut st| st.execute(params![f.origin, f.fetched_at, f.status, f.body]))
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
        let io = |cause| StoreError::Io {
            path: path.clone(),
            cause,
        };
        if !std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            let tmp = self.dir.join(format!(".{id}.txt.tmp"));
            std::fs::write(&tmp, text).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
        }
        file_stamp(&path).ok_or_else(|| io(std::io::Error::other("written, then not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::outcome;

    /// Issue 10 (4): a kill between the commit of a new text and the write
    /// of `<id>.txt` left the file stale until the page's next change. The
    /// commit marks the file; the next run sees the mark and repairs it.
    #[test]
    fn a_text_file_not_written_before_a_kill_is_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::WriteWait).unwrap();
        store
            .record_all(
                &[outcome("xk", Status::Baseline, "Fee 50 EUR\n")],
                crate::notify::message_id,
            )
            .unwrap();
        let file = dir.path().join("xk.txt");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "Fee 50 EUR\n");
        let stale = |store: &Store| {
            let (known, _) = store.prefetch(&["xk"]).unwrap();
            let stamp = known[0].as_ref().unwrap().file_stamp.clone();
            text_file_is_stale(dir.path(), "xk", stamp.as_deref())
        };
        assert!(!stale(&store), "just written");

        // The commit of a change, then the process dies before the file.
        let tx = store.conn.transaction().unwrap();
        write::write_outcome(
            &tx,
            &outcome("xk", Status::Changed, "Fee 65 EUR\n"),
            crate::notify::message_id,
        )
        .unwrap();
        tx.commit().unwrap();
        assert!(stale(&store));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "Fee 50 EUR\n",
            "same length, old text"
        );

        store.repair_text_file("xk").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "Fee 65 EUR\n");
        assert!(!stale(&store));
    }
}
