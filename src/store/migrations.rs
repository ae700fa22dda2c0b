//! The schema, as migrations in order; `PRAGMA user_version` counts how
//! many ran.

/// Migrations in order; `PRAGMA user_version` counts how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // The editors' desk: accounts, sessions, API tokens (only hashes of
    // secrets), and reviews. A change's current review state is kept on the
    // change (NULL: awaiting review) so the queue is one indexed query; the
    // `reviews` rows are its history.
    r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
ALTER TABLE changes ADD COLUMN review_state TEXT;
CREATE INDEX changes_awaiting ON changes(material, review_state, id);
CREATE TABLE reviews (
    id         INTEGER PRIMARY KEY,
    change_id  INTEGER NOT NULL REFERENCES changes(id),
    action     TEXT NOT NULL,
    reason     TEXT,
    note       TEXT,
    user_name  TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX reviews_by_change ON reviews(change_id, id);
"#,
    // 9: webhook deliveries beside the emails (issue 16). The body is
    // fixed when queued, so every retry sends the same bytes.
    r#"
CREATE TABLE hook_deliveries (
    id              INTEGER PRIMARY KEY,
    outbox_id       INTEGER NOT NULL REFERENCES outbox(id),
    webhook         TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX hook_deliveries_due ON hook_deliveries(status, next_attempt_at);
"#,
    // 10: robots.txt per origin, fetched at most once a day (issue 17).
    r#"
CREATE TABLE robots (
    origin     TEXT PRIMARY KEY,
    fetched_at TEXT NOT NULL,
    status     INTEGER NOT NULL,
    body       BLOB NOT NULL
);
"#,
    // 11 (issue 17): each source's last check status on the source itself,
    // so the desk orders and filters 100,000 sources without a lookup into
    // `checks` for each (written only when it changes); changes by check.
    r#"
ALTER TABLE sources ADD COLUMN last_status TEXT;
UPDATE sources SET last_status =
  (SELECT status FROM checks WHERE id = (SELECT max(id) FROM checks WHERE source_id = sources.id));
CREATE INDEX sources_by_id_status ON sources(id, last_status);
-- A check's change: the history pages join on it, and prune asks of
-- every old check whether a change needs it.
CREATE INDEX changes_by_check ON changes(check_id);
"#,
];
