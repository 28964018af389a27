//! People's accounts: what a login and a password must be, how passwords are hashed
//! (Argon2id with OWASP's parameters), the one-time passwords an administrator hands out, the
//! lockout after failed sign-ins, and the secrets of sessions. Pure: the rows are in
//! `store::accounts`, the routes in `api::session` and `api::users`.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most characters a password may have (hashing is the cost; this bounds it).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest login, in characters.
pub const MAX_LOGIN_CHARS: usize = 64;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Failed sign-ins in a row that lock a login.
pub const MAX_FAILED_SIGN_INS: i32 = 5;
/// How long a login stays locked after them.
pub const LOCKOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// The cookie that carries a session's secret.
pub const SESSION_COOKIE: &str = "yimen_session";
/// The header a state-changing request of a session carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// OWASP's Argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// What went wrong hashing or reading a stored hash.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn hasher() -> Result<Argon2<'static>, HashError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The stored form of `password`: an Argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt: [u8; 16] = rand::random();
    let hash = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` is the one `stored` was made from. A stored text that is not a hash
/// matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    // The parameters are read from `stored`, so a hash made with others still verifies.
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), stored).is_ok())
}

/// A hash no password is known to match, verified against for a login that names no account,
/// so that such an attempt takes as long as one for an account.
pub fn verify_nothing(password: &str) {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let secret: [u8; 32] = rand::random();
        hash_password(&hex::encode(secret)).unwrap_or_default()
    });
    let _ = verify_password(password, &DUMMY);
}

/// Letters of one-time passwords: no 0/O, 1/l/I, so that one read aloud or copied by hand
/// comes out right.
const ONE_TIME_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A random password for a new account or a reset, shown once: four groups of four
/// (`Kp3x-9mRt-…`, about 92 bits).
pub fn one_time_password() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let at = rng.random_range(0..ONE_TIME_ALPHABET.len());
        out.push(char::from(ONE_TIME_ALPHABET[at]));
    }
    out
}

/// Why a password will not do, if so (`login`: the account's, which it may not be).
pub fn password_problem(password: &str, login: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Some(format!(
            "must have at least {MIN_PASSWORD_CHARS} characters (it has {chars})"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Some(format!("must have at most {MAX_PASSWORD_CHARS} characters"));
    }
    if password.trim().to_lowercase() == login {
        return Some("may not be the login".into());
    }
    None
}

/// A login as stored and compared: trimmed, in lower case.
pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Why a (normalized) login will not do, if so: 1 to [`MAX_LOGIN_CHARS`] letters, digits and
/// `.`, `_`, `-`, `@`.
pub fn login_problem(login: &str) -> Option<String> {
    let chars = login.chars().count();
    if chars == 0 || chars > MAX_LOGIN_CHARS {
        return Some(format!(
            "give a login of 1 to {MAX_LOGIN_CHARS} characters, like `wangfang`"
        ));
    }
    if !login
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Some(
            "use letters, digits and `.`, `_`, `-`, `@` only (no spaces), like `wangfang`".into(),
        );
    }
    None
}

/// A new session: `secret` goes into the cookie, `id` (its SHA-256) into the database, `csrf`
/// to the client in the sign-in's answer.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub id: String,
    pub csrf: String,
}

pub fn new_session() -> NewSession {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    NewSession {
        id: session_id(&secret),
        secret,
        csrf: hex::encode(rand::random::<[u8; 32]>()),
    }
}

/// The stored id of a session whose cookie holds `secret`.
pub fn session_id(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal texts, compared in a time that depends on their lengths only.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session secret of a `Cookie` header's value, if it has one that could be ours.
pub fn session_cookie(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name.trim() == SESSION_COOKIE)
            .then(|| value.trim().trim_matches('"'))
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// The `Set-Cookie` value of a session (`max_age`: seconds the browser keeps it; 0 clears it).
pub fn set_cookie(secret: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// What a sign-in attempt came to, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInResult {
    Ok,
    BadPassword,
    Locked,
    Disabled,
    UnknownLogin,
    /// Signed in through the identity provider.
    Oidc,
    /// A sign-in through the identity provider refused (the answer's code says why).
    OidcFailed,
}

impl SignInResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInResult::Ok => "ok",
            SignInResult::BadPassword => "bad_password",
            SignInResult::Locked => "locked",
            SignInResult::Disabled => "disabled",
            SignInResult::UnknownLogin => "unknown_login",
            SignInResult::Oidc => "oidc",
            SignInResult::OidcFailed => "oidc_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_owasp_parameters() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn one_time_passwords_are_long_enough_and_differ() {
        let a = one_time_password();
        assert_eq!(a.len(), 19);
        assert_eq!(password_problem(&a, "someone"), None);
        assert_ne!(a, one_time_password());
    }

    #[test]
    fn short_passwords_say_the_minimum() {
        let why = password_problem("short", "x").unwrap();
        assert!(why.contains("at least 10 characters"), "{why}");
        // Characters, not bytes: ten Chinese characters will do.
        assert_eq!(password_problem("一二三四五六七八九十", "x"), None);
        assert!(password_problem("wangfang12", "wangfang12").is_some());
    }

    #[test]
    fn logins_are_plain_words() {
        assert_eq!(normalize_login(" WangFang "), "wangfang");
        assert_eq!(login_problem("wang.fang-2"), None);
        assert!(login_problem("wang fang").is_some());
        assert!(login_problem("").is_some());
        assert!(login_problem(&"a".repeat(65)).is_some());
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let secret = "ab".repeat(32);
        let header = format!("theme=dark; {SESSION_COOKIE}={secret}; other=1");
        assert_eq!(session_cookie(&header), Some(secret.as_str()));
        assert_eq!(session_cookie("yimen_session=short"), None);
        assert_eq!(session_cookie("theme=dark"), None);
        let set = set_cookie(&secret, 60, true);
        assert!(set.contains("HttpOnly; SameSite=Lax; Path=/; Max-Age=60; Secure"));
        assert!(!set_cookie(&secret, 60, false).contains("Secure"));
    }

    #[test]
    fn sessions_are_stored_by_hash() {
        let s = new_session();
        assert_eq!(s.id, session_id(&s.secret));
        assert_ne!(s.id, s.secret);
        assert!(constant_time_eq(&s.csrf, &s.csrf.clone()));
        assert!(!constant_time_eq(&s.csrf, &s.csrf[1..]));
        assert!(!constant_time_eq("abc", "abd"));
    }
}
