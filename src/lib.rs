//! visawatch watches official visa and residence-permit pages and tells
//! editors, by email, when a fee, a duration or a document list changes.
//!
//! # Layout
//! Data flows one way: config → fetch → extract → facts → compare → judge →
//! store → notify. One module per stage; `pipeline` only sequences them.
//!
//! - [`model`]: plain data every stage shares (Source, Page, Read, Verdict,
//!   Outcome, Check, Alert, Queued, Health…). Imports nothing of ours.
//! - [`config`]: `sources.toml` → validated [`model::Source`]s and settings.
//! - [`fetch`]: HTTP with limits, retries, conditional GET, content types,
//!   private-network guard and charset decoding → [`model::Page`].
//! - [`extract`]: PURE. HTML (or plain text) → canonical requirement text.
//! - [`pdf`]: PURE. a PDF → canonical text (lines, table rows, headings).
//! - [`facts`]: PURE. canonical text → fees, durations, documents; noise and error pages.
//! - [`compare`]: PURE. previous vs new text → [`model::Verdict`] with a diff.
//! - [`render`]: script-rendered pages loaded in headless Chromium (WebDriver).
//! - [`read`]: one source fetched and extracted into a [`model::Reading`]
//!   (the transient re-fetch, the identical-body shortcut).
//! - [`judge`]: PURE. what was read, the previous text and the health → the
//!   [`model::Outcome`] to record and the alerts it causes, for whom.
//! - [`alert`]: PURE. verdict or source health → subject, text and HTML.
//! - [`webhook`]: PURE. the same events as JSON (Standard Webhooks, signed),
//!   Slack and Teams bodies.
//! - [`store`]: the data folder: SQLite (WAL), `<id>.txt` files, the outbox;
//!   `store::query` is its read side.
//! - [`notify`]: the outbox → SMTP (lettre) or `.eml` files, and webhook
//!   POSTs, with retries.
//! - [`clock`]: the one place that reads the wall clock.
//! - [`memory`]: freed memory handed back to the system (daemon rounds, a
//!   large catalog read on two threads).
//! - [`dispatch`]: PURE. which source of a run starts next (hosts take
//!   turns, each host's sources spread over the daemon's jitter window).
//! - [`pipeline`]: one run: the stages in order, concurrently, in batches.
//! - [`daemon`]: when to run the pipeline (cron schedules, digest), told to
//!   stop or reload through a channel.
//! - [`web`]: the editors' desk (axum, maud): the sources' facts, the review
//!   queue, accounts, JSON, feeds, metrics. Reads the store's query side,
//!   writes only reviews and sessions.
//! - [`report`], [`cli`] (with `probe`, `accounts`): what the user sees;
//!   [`demo`]: the product offline in one command.
//!
//! Who may import whom: a stage imports only `model`, `config` and the stages
//! it builds on; nothing below `pipeline` imports `pipeline`, `daemon`, `report`,
//! `cli` or `demo`; there are no cycles.

pub mod alert;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dispatch;
pub mod extract;
pub mod facts;
pub mod fetch;
pub mod judge;
pub mod memory;
pub mod model;
pub mod notify;
pub mod pdf;
pub mod pipeline;
pub mod read;
pub mod render;
pub mod report;
pub mod store;
pub mod web;
pub mod webhook;
