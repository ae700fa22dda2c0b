//! The one place that reads the wall clock. Stages that need the time take
//! it as a parameter; the run, the daemon and the CLI ask here.

use crate::model::{Time, stamp};

/// The current time.
pub fn now() -> Time {
    chrono::Utc::now()
}

/// The current time as stored and shown (RFC 3339, UTC, seconds).
pub fn now_stamp() -> String {
    stamp(&now())
}
