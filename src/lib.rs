//! visawatch watches official visa and residence-permit pages and tells
//! editors, by email, when a fee, a duration or a document list changes.
//!
//! # Layout
//! Data flows one way through one module per stage:
//!
//! - [`config`]: `sources.toml` → validated [`model::Source`]s and settings.
//! - [`fetch`]: HTTP with limits, retries, conditional GET and charset decoding → [`model::Page`].
//! - [`extract`]: PURE. HTML → canonical requirement text.
//! - [`facts`]: PURE. canonical text → fees, durations, documents; noise and error pages.
//! - [`compare`]: PURE. previous vs new text → [`model::Verdict`] with a diff.
//! - [`judge`]: PURE. what was read, the previous text and the health → the
//!   [`model::Outcome`] to record and the alerts it causes, for whom.
//! - [`store`]: the data folder: SQLite (WAL), `<id>.txt` files, the outbox.
//! - [`alert`]: PURE. verdict or source health → subject, text and HTML.
//! - [`notify`]: the outbox → SMTP (lettre) or `.eml` files, with retries.
//! - [`pipeline`]: the one place that runs the stages in order, for one run.
//! - [`daemon`]: when to run the pipeline (cron schedules, signals, digest).
//! - [`report`], [`cli`]: what the user sees; [`demo`]: the product offline in one command.
//! - [`clock`]: the one place that reads the wall clock.

pub mod alert;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod extract;
pub mod facts;
pub mod fetch;
pub mod judge;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod report;
pub mod store;
