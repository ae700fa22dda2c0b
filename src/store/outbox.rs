//! The outbox: alerts as rows written with the outcome that caused them, one
//! delivery row per recipient, and their states (pending, sending, sent,
//! rejected). What to send and when is `notify`'s; this records it.

use super::*;

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
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// RFC 3339; when a pending delivery is next tried.
    pub next_attempt_at: String,
    pub last_error: Option<String>,
}

/// Inserts an outbox row and one pending delivery per recipient. The
/// Message-ID is made here and kept through retries; the source's first
/// alert is the thread root every later alert points at.
pub(super) fn queue(
    tx: &rusqlite::Transaction,
    source_id: Option<&str>,
    change_id: Option<i64>,
    q: &Queued,
    created_at: &str,
    message_id: MessageIdFn,
) -> rusqlite::Result<i64> {
    let seq: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM outbox", [], |r| r.get(0))?;
    let message_id = message_id(q, source_id, created_at, seq);
    // Threading is decided when the message is built (`notify`).
    let thread_root: Option<String> = None;
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
            params![outbox_id, r.to_string()],
        )?;
    }
    for h in &q.hooks {
        tx.execute(
            "INSERT INTO hook_deliveries (outbox_id, webhook, event, body, status) VALUES (?1, ?2, ?3, ?4, 'pending')",
            params![outbox_id, h.webhook, h.event, h.body],
        )?;
    }
    Ok(outbox_id)
}

/// A webhook delivery that is due.
#[derive(Debug, Clone)]
pub struct HookDue {
    pub id: i64,
    pub webhook: String,
    pub body: String,
    pub attempts: u32,
}

/// A row of `visawatch outbox` for a webhook delivery not done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookRow {
    pub id: i64,
    pub source_id: Option<String>,
    pub webhook: String,
    pub event: String,
    pub created_at: String,
    /// `pending` or `rejected`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Meta key: when the network alert said the network went down.
const NETWORK_DOWN_SINCE: &str = "network_down_since";

impl Store {
    /// Queues an alert that belongs to no check (a digest).
    pub fn queue(
        &mut self,
        q: &Queued,
        created_at: &str,
        message_id: MessageIdFn,
    ) -> Result<i64, StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        let id = queue(&tx, None, None, q, created_at, message_id).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    /// Since when this machine's network has been down, as the last network
    /// alert said (`None`: up, or never said).
    pub fn network_down_since(&self) -> Result<Option<String>, StoreError> {
        self.meta(NETWORK_DOWN_SINCE)
    }

    /// Queues a network alert and records what it said, in one transaction:
    /// down since `down_since`, or up again (`None`).
    pub fn record_network(
        &mut self,
        q: &Queued,
        down_since: Option<&str>,
        created_at: &str,
        message_id: MessageIdFn,
    ) -> Result<i64, StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        let id = queue(&tx, None, None, q, created_at, message_id).map_err(sql)?;
        match down_since {
            Some(at) => tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![NETWORK_DOWN_SINCE, at],
            ),
            None => tx.execute("DELETE FROM meta WHERE key = ?1", [NETWORK_DOWN_SINCE]),
        }
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    /// The Message-ID of a source's first alert (what later ones thread under).
    pub fn first_message_of(&self, source_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT message_id FROM outbox WHERE source_id = ?1 ORDER BY id LIMIT 1")
            .and_then(|mut st| st.query_row([source_id], |r| r.get(0)).optional())
            .map_err(self.sql())
    }

    /// Alerts waiting for a recipient, per source.
    pub fn unaddressed_by_source(&self) -> Result<HashMap<String, u32>, StoreError> {
        let mut out: HashMap<String, u32> = HashMap::new();
        for (_, source) in self.unaddressed()? {
            *out.entry(source.unwrap_or_default()).or_default() += 1;
        }
        Ok(out)
    }

    /// Outbox messages with deliveries due at `now` (all pending ones when
    /// `force`), oldest first.
    pub fn due(&self, now: i64, force: bool) -> Result<Vec<Outgoing>, StoreError> {
        self.due_after(now, force, 0, i64::MAX)
    }

    /// [`Store::due`], a page at a time: at most `limit` alerts after
    /// outbox row `after`.
    pub fn due_after(
        &self,
        now: i64,
        force: bool,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Outgoing>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.source_id, o.kind, o.created_at, o.message_id, o.thread_root, o.sender,
                        o.subject, o.text_body, o.html_body
                 FROM outbox o WHERE o.id > ?3 AND EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id
                   AND d.status = 'pending' AND (?2 OR d.next_attempt_at <= ?1))
                 ORDER BY o.id LIMIT ?4",
            )
            .map_err(self.sql())?;
        let mut out: Vec<Outgoing> = stmt
            .query_map(params![now, force, after, limit], |r| {
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
                // Validated before it was stored; a hand-edited row is named.
                let rcpt: lettre::Address = rcpt.parse().map_err(|e| StoreError::Sql {
                    path: self.db_path.clone(),
                    source: rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        format!("delivery {id}: recipient `{rcpt}`: {e}").into(),
                    ),
                })?;
                if status == "pending" {
                    o.pending.push((id, rcpt.clone(), attempts));
                }
                o.to.push(rcpt);
            }
        }
        Ok(out)
    }

    /// When the earliest pending delivery (email or webhook) is due (unix
    /// seconds), if any.
    pub fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM deliveries WHERE status = 'pending'
                   UNION ALL SELECT min(next_attempt_at) FROM hook_deliveries WHERE status = 'pending')",
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
    pub fn address(&mut self, outbox_id: i64, recipients: &[lettre::Address]) -> Result<(), StoreError> {
        let path = self.db_path.clone();
        let sql = |source| sql_error(&path, source);
        let tx = self.conn.transaction().map_err(sql)?;
        for r in recipients {
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (outbox_id, recipient, status, next_attempt_at) VALUES (?1, ?2, 'pending', 0)",
                params![outbox_id, r.to_string()],
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

    /// Webhook deliveries due at `now` (every pending one when `force`),
    /// oldest first. One left `sending` by a process that died is due again:
    /// the receiver may see it twice, with the same `webhook-id`.
    pub fn hooks_due(
        &self,
        now: i64,
        force: bool,
        after: i64,
        limit: i64,
    ) -> Result<Vec<HookDue>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, webhook, body, attempts FROM hook_deliveries
                 WHERE id > ?3 AND status IN ('pending', 'sending') AND (?2 OR next_attempt_at <= ?1)
                 ORDER BY id LIMIT ?4",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![now, force, after, limit], |r| {
                Ok(HookDue {
                    id: r.get(0)?,
                    webhook: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Marks a webhook delivery as being sent (before the request).
    pub fn mark_hook_sending(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE hook_deliveries SET status = 'sending' WHERE id = ?1",
                [id],
            )
            .map(drop)
            .map_err(self.sql())
    }

    /// Records a webhook attempt: sent (`Ok`), to retry at `next_at`, or
    /// rejected for good (`next_at` `None`).
    pub fn mark_hook(&self, id: i64, result: Result<&str, (&str, Option<i64>)>) -> Result<(), StoreError> {
        let done = match result {
            Ok(at) => self.conn.execute(
                "UPDATE hook_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?2, last_error = NULL
                 WHERE id = ?1",
                params![id, at],
            ),
            Err((error, next_at)) => self.conn.execute(
                "UPDATE hook_deliveries SET attempts = attempts + 1, last_error = ?2,
                   status = CASE WHEN ?3 IS NULL THEN 'rejected' ELSE 'pending' END,
                   next_attempt_at = coalesce(?3, next_attempt_at)
                 WHERE id = ?1",
                params![id, error, next_at],
            ),
        };
        done.map(drop).map_err(self.sql())
    }

    /// Webhook deliveries not done (pending, sending, rejected), oldest first.
    pub fn hook_outbox(&self) -> Result<Vec<HookRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT h.id, o.source_id, h.webhook, h.event, o.created_at, h.status, h.attempts,
                        h.next_attempt_at, h.last_error
                 FROM hook_deliveries h JOIN outbox o ON o.id = h.outbox_id
                 WHERE h.status != 'sent' ORDER BY h.id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(HookRow {
                    id: r.get(0)?,
                    source_id: r.get(1)?,
                    webhook: r.get(2)?,
                    event: r.get(3)?,
                    created_at: r.get(4)?,
                    status: r.get(5)?,
                    attempts: r.get(6)?,
                    next_attempt_at: r.get(7)?,
                    last_error: r.get(8)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
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
                    status: {
                        let text: String = r.get(6)?;
                        DeliveryStatus::parse(&text).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                6,
                                rusqlite::types::Type::Text,
                                format!("unknown delivery status `{text}`").into(),
                            )
                        })?
                    },
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
            recipients: vec!["e@example.org".parse().unwrap()],
            hooks: Vec::new(),
        };
        let id = store
            .queue(&q, "2026-11-30T00:00:00Z", crate::notify::message_id)
            .unwrap();
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
}
