//! Signing in to the back office: the e-mail and password (argon2id), the lockout after
//! repeated failures, the TOTP code of users who have a second factor, and the session that
//! follows — its token handed to the browser once, only its SHA-256 stored. Every attempt is
//! audited. The pages that call this come with the back office itself.

use crate::passwords;
use crate::sealing::Kek;
use crate::totp;
use base64::Engine;
use kassa_core::user::{LockoutPolicy, is_locked};
use kassa_store::{AuditEntry, Session, Store, StoreError, User};

/// What a sealed TOTP secret is sealed as.
pub const USER_TOTP_SECRET: &str = "user_totp_secret";

/// How sessions last and failures lock.
#[derive(Clone, Copy, Debug)]
pub struct SignInPolicy {
    pub lockout: LockoutPolicy,
    /// A session unused this long ends.
    pub idle_ms: i64,
    /// A session ends this long after it began, however used.
    pub absolute_ms: i64,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy {
            lockout: LockoutPolicy::default(),
            idle_ms: 30 * 60_000,
            absolute_ms: 12 * 3_600_000,
        }
    }
}

/// One attempt to sign in, as the sign-in form sends it.
pub struct Attempt<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub totp_code: Option<&'a str>,
    /// Where it came from (the client's address).
    pub source: &'a str,
}

/// A session begun: the token for the browser's cookie (shown once, never stored).
#[derive(Debug)]
pub struct SignedIn {
    pub token: kassa_core::Secret,
    pub session: Session,
    pub user: User,
}

/// Why a sign-in was refused. The page shows [`SignInError::to_the_person`]: one answer for a
/// wrong e-mail, password or lock, so that accounts cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown e-mail, disabled user or wrong password: one answer for all, so that accounts
    /// cannot be probed.
    #[error("the e-mail or the password is wrong")]
    WrongCredentials,
    #[error("too many failed sign-ins: try again later")]
    Locked,
    #[error("the one-time code is missing or wrong")]
    SecondFactor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the second factor cannot be read: {0}")]
    Sealing(String),
}

impl SignInError {
    /// What the sign-in page says: the same for every refusal a stranger could provoke.
    pub fn to_the_person(&self) -> &'static str {
        match self {
            SignInError::WrongCredentials | SignInError::Locked => {
                "The e-mail or the password is wrong, or the account is locked for a while."
            }
            SignInError::SecondFactor => "The one-time code is missing or wrong.",
            SignInError::Store(_) | SignInError::Sealing(_) => {
                "Signing in is not possible just now; try again in a moment."
            }
        }
    }
}

/// Checks an attempt and, if it holds, begins a session.
pub async fn sign_in(
    store: &dyn Store,
    kek: &Kek,
    policy: &SignInPolicy,
    attempt: &Attempt<'_>,
    now_ms: i64,
) -> Result<SignedIn, SignInError> {
    let found = store.user_by_email(attempt.email).await?;
    let Some(user) = found else {
        // The same work as for a real account: the answer's timing tells nothing either.
        passwords::verify(attempt.password, decoy_hash());
        return Err(SignInError::WrongCredentials);
    };
    if user.disabled {
        passwords::verify(attempt.password, decoy_hash());
        return Err(refused(store, &user, attempt, now_ms, SignInError::WrongCredentials).await);
    }
    if is_locked(user.locked_until_ms, now_ms) {
        return Err(refused(store, &user, attempt, now_ms, SignInError::Locked).await);
    }
    if !passwords::verify(attempt.password, user.password_hash.expose()) {
        let wrong = SignInError::WrongCredentials;
        return Err(failed(store, policy, &user, attempt, now_ms, wrong).await);
    }
    let totp_step = match &user.totp_secret {
        None => None,
        Some(sealed) => match second_factor(kek, sealed.expose(), &user, attempt, now_ms)? {
            Some(step) => Some(step),
            None => {
                let wrong = SignInError::SecondFactor;
                return Err(failed(store, policy, &user, attempt, now_ms, wrong).await);
            }
        },
    };
    let token = new_token();
    let session = Session {
        token_hash: token_hash(&token),
        user_id: user.user_id,
        created_at_ms: now_ms,
        last_seen_at_ms: now_ms,
        idle_ms: policy.idle_ms,
        ends_at_ms: now_ms.saturating_add(policy.absolute_ms),
        source: attempt.source.chars().take(64).collect(),
    };
    let entry = entry(&user, "session.start", None, attempt.source, now_ms);
    store.sign_in(&session, totp_step, &entry).await?;
    Ok(SignedIn {
        token: kassa_core::Secret::new(token),
        session,
        user,
    })
}

/// The TOTP step of the attempt's code, if it is right and not used before.
fn second_factor(
    kek: &Kek,
    sealed: &str,
    user: &User,
    attempt: &Attempt<'_>,
    now_ms: i64,
) -> Result<Option<i64>, SignInError> {
    let Some(code) = attempt.totp_code else {
        return Ok(None);
    };
    code_step(kek, sealed, code, user.totp_last_step, now_ms)
}

/// The TOTP step of `code` under the sealed secret, if the code is right at `now_ms` and
/// later than `last_step`; for signing in and for confirming an enrolment.
pub fn code_step(
    kek: &Kek,
    sealed: &str,
    code: &str,
    last_step: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, SignInError> {
    let hex = kek
        .open(USER_TOTP_SECRET, sealed)
        .map_err(|e| SignInError::Sealing(e.to_string()))?;
    let secret = decode_hex(&hex).ok_or_else(|| SignInError::Sealing("not hex".into()))?;
    let last = last_step.and_then(|s| u64::try_from(s).ok());
    let now_s = u64::try_from(now_ms / 1_000).unwrap_or(0);
    Ok(totp::verify(&secret, code, now_s, last).and_then(|s| i64::try_from(s).ok()))
}

/// Records a failure — a wrong password or code — and the lock it may bring; `error`, to
/// answer with (or the store's, if the failure could not be recorded).
async fn failed(
    store: &dyn Store,
    policy: &SignInPolicy,
    user: &User,
    attempt: &Attempt<'_>,
    now_ms: i64,
    error: SignInError,
) -> SignInError {
    let counted = policy.lockout.after_failure(user.failed_sign_ins, now_ms);
    let wrong = match error {
        SignInError::SecondFactor => "totp",
        _ => "password",
    };
    let after =
        serde_json::json!({"wrong": wrong, "failures": counted.0, "lockedUntilMs": counted.1});
    let entry = entry(
        user,
        "sign-in.failed",
        Some(after.to_string()),
        attempt.source,
        now_ms,
    );
    match store.sign_in_failed(user.user_id, counted, &entry).await {
        Ok(()) => error,
        Err(e) => SignInError::Store(e),
    }
}

/// Audits an attempt refused before any check (the user disabled or locked): it counts no
/// failure — a lock is not lengthened by attempts made during it.
async fn refused(
    store: &dyn Store,
    user: &User,
    attempt: &Attempt<'_>,
    now_ms: i64,
    error: SignInError,
) -> SignInError {
    let why = if user.disabled { "disabled" } else { "locked" };
    let after = serde_json::json!({ "refused": why }).to_string();
    let entry = entry(user, "sign-in.refused", Some(after), attempt.source, now_ms);
    match store.append_audit(&entry).await {
        Ok(()) => error,
        Err(e) => SignInError::Store(e),
    }
}

fn entry(
    user: &User,
    action: &str,
    after: Option<String>,
    source: &str,
    now_ms: i64,
) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms,
        actor: format!("user:{}", user.user_id),
        action: action.into(),
        target: format!("user:{}", user.user_id),
        before: None,
        after,
        source: source.chars().take(64).collect(),
    }
}

/// A fresh session token: 32 random bytes, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    kassa_signature::digest_hex(token.as_bytes())
}

/// A new TOTP secret sealed for the database, and the URI to enrol it in an authenticator.
pub fn enrol_totp(kek: &Kek, email: &str) -> (String, String) {
    let secret = totp::generate_secret();
    let hex = kassa_signature::to_hex(&secret);
    let sealed = kek.seal(USER_TOTP_SECRET, hex.as_bytes());
    (sealed, totp::enrolment_uri("kassa", email, &secret))
}

/// The enrolment URI of a sealed secret (to show its QR code again).
pub fn enrolment_uri_of(kek: &Kek, sealed: &str, email: &str) -> Option<String> {
    let hex = kek.open(USER_TOTP_SECRET, sealed).ok()?;
    Some(totp::enrolment_uri("kassa", email, &decode_hex(&hex)?))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An argon2id hash of nothing anyone knows, for unknown accounts to be checked against.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| passwords::hash(&new_token()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash("abc").len(), 64);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0g"), None);
    }
}
