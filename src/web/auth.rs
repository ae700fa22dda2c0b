//! Who may use the desk: passwords (argon2id), sessions (random tokens,
//! only their hashes stored), API tokens, CSRF tokens and the sign-in rate
//! limit. Secrets never reach a log line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "visawatch_session";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "visawatch_login";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

/// Failed sign-ins allowed per account and per address in [`WINDOW`].
const MAX_FAILURES: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// An argon2id hash of `password`, salted, in PHC form.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches a stored hash.
pub fn password_matches(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Verifying against this when the user does not exist takes as long as a
/// real check: the answer's timing tells nothing about which part was wrong.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// A new random secret (a session or API token), 32 bytes as hex.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the database keeps of a secret.
pub fn secret_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The CSRF token of forms shown to the holder of `secret` (a session or a
/// sign-in cookie): a keyed hash of it, so it cannot be made without the
/// cookie, which another site cannot read or set (SameSite=Strict).
pub fn csrf_token(secret: &str) -> String {
    blake3::keyed_hash(blake3::hash(secret.as_bytes()).as_bytes(), b"visawatch csrf")
        .to_hex()
        .to_string()
}

/// Whether a form's token belongs to `secret`, compared in constant time.
pub fn csrf_ok(secret: &str, token: &str) -> bool {
    let Ok(given) = blake3::Hash::from_hex(token) else {
        return false;
    };
    let want = blake3::keyed_hash(blake3::hash(secret.as_bytes()).as_bytes(), b"visawatch csrf");
    given == want
}

/// Failed sign-ins per account and per address, forgotten after `WINDOW`.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Limiter {
    /// Whether any of `keys` has had too many failures lately; then how long to wait.
    pub fn blocked(&self, keys: &[String]) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for k in keys {
            if let Some(times) = map.get_mut(k) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= MAX_FAILURES {
                    let left = WINDOW - now.duration_since(times[0]);
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Bounded: an attacker cycling names must not grow it forever.
        if map.len() > 10_000 {
            map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        for k in keys {
            map.entry(k.clone()).or_default().push(now);
        }
    }

    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("user:{account}"));
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when
/// the desk is served over https; `max_age` in seconds (0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_csrf_tokens_check_out() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse", &h));
        assert!(!password_matches("correct hors", &h));
        let s = new_secret().unwrap();
        assert_eq!(s.len(), 64);
        assert!(csrf_ok(&s, &csrf_token(&s)));
        assert!(!csrf_ok(&new_secret().unwrap(), &csrf_token(&s)));
        assert!(!csrf_ok(&s, "") && !csrf_ok(&s, "zz"));
    }

    #[test]
    fn five_failures_block_the_account_for_a_while() {
        let l = Limiter::default();
        let keys = ["user:ana".to_string(), "ip:1.2.3.4".to_string()];
        for _ in 0..4 {
            l.failed(&keys);
        }
        assert!(l.blocked(&keys).is_none());
        l.failed(&keys);
        assert!(l.blocked(&["user:ana".to_string()]).is_some());
        assert!(l.blocked(&["ip:1.2.3.4".to_string()]).is_some());
        assert!(l.blocked(&["user:bo".to_string()]).is_none());
    }
}
