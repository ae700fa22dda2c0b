//! The one place that reads the wall clock. Stages that need the time take
//! it as a parameter; the run, the daemon and the CLI ask here.

/// Current time as RFC 3339 (UTC, seconds): how times are stored and shown.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
