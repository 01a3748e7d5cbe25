//! Signing in to the back office against a real store (SQLite and PostgreSQL): passwords,
//! the lockout, the TOTP second factor, the session that follows, and the audit of each.

use kassa_core::user::{NewUser, Role};
use kassa_server::accounts::{Attempt, SignInError, SignInPolicy, enrol_totp, sign_in, token_hash};
use kassa_server::sealing::Kek;
use kassa_server::{passwords, totp};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use kassa_store::{AuditEntry, SqlStore};

const PASSWORD: &str = "a long enough passphrase";

async fn user(store: &SqlStore) -> i64 {
    let entry = AuditEntry {
        at_ms: 1,
        actor: "cli:test".into(),
        action: "user.add".into(),
        target: String::new(),
        before: None,
        after: None,
        source: "cli".into(),
    };
    let new = NewUser::new("ops@psp.example", Role::OperatorAdmin, None).unwrap();
    let hash = passwords::hash(PASSWORD).unwrap();
    store.add_user(&new, &hash, &entry).await.unwrap().user_id
}

fn attempt<'a>(password: &'a str, code: Option<&'a str>) -> Attempt<'a> {
    Attempt {
        email: "OPS@psp.example",
        password,
        totp_code: code,
        source: "192.0.2.7",
    }
}

async fn passwords_lockout_and_sessions(db: TestDatabase) {
    let store = db.store().await;
    let (kek, _) = Kek::generate();
    let policy = SignInPolicy::default();
    let user_id = user(&store).await;
    let now = 1_800_000_000_000;

    let signed_in = sign_in(&store, &kek, &policy, &attempt(PASSWORD, None), now)
        .await
        .unwrap();
    let hash = token_hash(signed_in.token.expose());
    assert_eq!(signed_in.session.token_hash, hash);
    let (session, owner) = store
        .live_session(&hash, now + 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (owner.user_id, session.ends_at_ms),
        (user_id, now + policy.absolute_ms)
    );
    assert!(
        store
            .live_session(signed_in.token.expose(), now)
            .await
            .unwrap()
            .is_none(),
        "the token itself is not stored"
    );

    let unknown = Attempt {
        email: "nobody@psp.example",
        ..attempt(PASSWORD, None)
    };
    assert!(matches!(
        sign_in(&store, &kek, &policy, &unknown, now).await,
        Err(SignInError::WrongCredentials)
    ));
    // Five failures are free; the sixth locks for 30 s, during which even the right password fails.
    for _ in 0..6 {
        let wrong = sign_in(
            &store,
            &kek,
            &policy,
            &attempt("not the passphrase", None),
            now,
        )
        .await;
        assert!(
            matches!(wrong, Err(SignInError::WrongCredentials)),
            "{wrong:?}"
        );
    }
    let locked = sign_in(
        &store,
        &kek,
        &policy,
        &attempt(PASSWORD, None),
        now + 29_000,
    )
    .await;
    assert!(matches!(locked, Err(SignInError::Locked)), "{locked:?}");
    sign_in(
        &store,
        &kek,
        &policy,
        &attempt(PASSWORD, None),
        now + 30_000,
    )
    .await
    .unwrap();
    let cleared = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cleared.failed_sign_ins, cleared.locked_until_ms), (0, 0));

    // A second factor: no code or a wrong one fails; a right one signs in, once.
    let (sealed, uri) = enrol_totp(&kek, "ops@psp.example");
    assert!(uri.starts_with("otpauth://totp/kassa%3Aops%40psp.example?secret="));
    assert!(
        !sealed.contains(&uri[uri.find("secret=").unwrap() + 7..][..16]),
        "sealed, not in clear"
    );
    let entry = AuditEntry {
        at_ms: now,
        actor: "cli:test".into(),
        action: "user.totp".into(),
        target: format!("user:{user_id}"),
        before: None,
        after: None,
        source: "cli".into(),
    };
    assert!(
        store
            .set_totp_secret(user_id, Some(&sealed), &entry)
            .await
            .unwrap()
    );
    let later = now + 60_000;
    let missing = sign_in(&store, &kek, &policy, &attempt(PASSWORD, None), later).await;
    assert!(
        matches!(missing, Err(SignInError::SecondFactor)),
        "{missing:?}"
    );
    let secret = totp::secret_of_uri(&uri).unwrap();
    let code = totp::code_at(&secret, (later / 1_000) as u64);
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    assert!(matches!(
        sign_in(
            &store,
            &kek,
            &policy,
            &attempt(PASSWORD, Some(wrong_code)),
            later
        )
        .await,
        Err(SignInError::SecondFactor)
    ));
    sign_in(
        &store,
        &kek,
        &policy,
        &attempt(PASSWORD, Some(&code)),
        later,
    )
    .await
    .unwrap();
    let replayed = sign_in(
        &store,
        &kek,
        &policy,
        &attempt(PASSWORD, Some(&code)),
        later,
    )
    .await;
    assert!(
        matches!(replayed, Err(SignInError::SecondFactor)),
        "a code is taken once"
    );

    // A disabled user cannot sign in, and their sessions ended.
    let disable = AuditEntry {
        action: "user.disable".into(),
        ..entry.clone()
    };
    store
        .set_user_disabled(user_id, true, &disable)
        .await
        .unwrap();
    assert!(
        store
            .live_session(&hash, now + 2_000)
            .await
            .unwrap()
            .is_none()
    );
    let code_now = totp::code_at(&secret, (later / 1_000) as u64 + 30);
    let disabled = sign_in(
        &store,
        &kek,
        &policy,
        &attempt(PASSWORD, Some(&code_now)),
        later + 30_000,
    )
    .await;
    assert!(
        matches!(disabled, Err(SignInError::WrongCredentials)),
        "{disabled:?}"
    );

    let log = store.audit_entries(50).await.unwrap();
    let count = |action: &str| log.iter().filter(|e| e.action == action).count();
    assert_eq!((count("session.start"), count("sign-in.failed")), (3, 9));
    assert!(
        log.iter()
            .filter(|e| e.action == "sign-in.failed")
            .all(|e| e.source == "192.0.2.7")
    );
    // Attempts refused before any check (locked, disabled) are audited without counting as
    // failures, and the page cannot tell a lock from a wrong password.
    assert_eq!(count("sign-in.refused"), 2);
    let refusals: Vec<&str> = (log.iter().filter(|e| e.action == "sign-in.refused"))
        .filter_map(|e| e.after.as_deref())
        .collect();
    assert_eq!(
        refusals,
        [r#"{"refused":"disabled"}"#, r#"{"refused":"locked"}"#]
    );
    assert_eq!(
        SignInError::Locked.to_the_person(),
        SignInError::WrongCredentials.to_the_person()
    );
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    passwords_lockout_and_sessions,
);
