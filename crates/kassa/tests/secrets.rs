//! Secrets at rest: the database's secrets are sealed under a key-encryption key kept apart
//! from it; without that key, or with another, no command uses the database; keys stored in
//! clear by earlier versions are sealed in place.

mod common;

use common::{TEST_KEK, kassa};
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use std::path::Path;
use std::process::Output;

/// `kassa keys platform` on `url`, with `kek` as KASSA_KEK (or none).
fn platform_key(url: &str, kek: Option<&str>) -> Output {
    let mut command = kassa(&["keys", "platform", "--database-url", url]);
    match kek {
        Some(kek) => command.env("KASSA_KEK", kek),
        None => command.env_remove("KASSA_KEK"),
    };
    command.output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output, why: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "{why:?} not in {stderr}");
}

/// Every byte the database keeps on disk (its file, journal and WAL).
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("k.db")
        {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

#[test]
fn a_sqlite_database_gets_a_kek_beside_it_and_keeps_no_key_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let first = platform_key(&url, None);
    let public_pem = stdout(&first);
    assert!(public_pem.contains("PUBLIC KEY"));
    assert!(String::from_utf8_lossy(&first.stderr).contains("created the key-encryption key"));
    let kek_path = dir.path().join("kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the KEK");
    }
    let on_disk = database_bytes(dir.path());
    assert!(!on_disk.is_empty());
    let needle = b"PRIVATE KEY";
    assert!(
        !on_disk.windows(needle.len()).any(|w| w == needle),
        "a private key in clear in the database"
    );
    // The KEK beside the database opens it again; the same key comes back.
    assert_eq!(stdout(&platform_key(&url, None)), public_pem);
    // Another KEK is refused, and so is a malformed one; nothing is changed by either.
    refused(
        &platform_key(&url, Some(TEST_KEK)),
        "not the one this database",
    );
    refused(&platform_key(&url, Some("c2hvcnQ=")), "32 random bytes");
    // Without its KEK, a sealed database is not used (no new KEK is made for it).
    std::fs::remove_file(&kek_path).unwrap();
    refused(&platform_key(&url, None), "secrets are sealed");
    assert!(!kek_path.exists());
}

#[tokio::test]
async fn a_platform_key_stored_in_clear_is_sealed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    // A database as an earlier version left it: the platform key as plain PEM.
    let key = kassa_signature::SigningKey::generate().unwrap();
    {
        let store = SqlStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let setting = kassa_server::keys::PLATFORM_KEY_SETTING;
        store
            .set_setting(setting, &key.to_pkcs8_pem(), 1, None)
            .await
            .unwrap();
        store.close().await;
    }
    assert_eq!(
        stdout(&platform_key(&url, Some(TEST_KEK))),
        key.public_key_pem()
    );
    let store = SqlStore::connect(&url).await.unwrap();
    let stored = store
        .setting(kassa_server::keys::PLATFORM_KEY_SETTING)
        .await
        .unwrap()
        .unwrap();
    assert!(kassa_server::sealing::is_sealed(&stored), "{stored}");
    // And it is still the same key.
    assert_eq!(
        stdout(&platform_key(&url, Some(TEST_KEK))),
        key.public_key_pem()
    );
}

#[tokio::test]
async fn postgresql_needs_its_kek_given() {
    let Some(db) =
        kassa_store::testing::TestDatabase::postgres("postgresql_needs_its_kek_given").await
    else {
        eprintln!("SKIPPED: no PostgreSQL (set KASSA_TEST_POSTGRES_URL)");
        return;
    };
    refused(
        &platform_key(&db.url, None),
        "PostgreSQL database needs its key-encryption key",
    );
    stdout(&platform_key(&db.url, Some(TEST_KEK)));
}

#[tokio::test]
async fn webhook_secrets_are_sealed_and_shown_only_for_one_app() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let (app_id, _) = common::create_shop(&url, "EUR", dir.path());
    let store = SqlStore::connect(&url).await.unwrap();
    let app = store.app(kassa_core::AppId(app_id)).await.unwrap().unwrap();
    let stored = app.webhook_secret.expose().to_string();
    assert!(kassa_server::sealing::is_sealed(&stored), "{stored}");
    let app_arg = app_id.to_string();
    let shown = common::json(&common::run_ok(&mut kassa(&[
        "app",
        "show",
        &app_arg,
        "--show-secrets",
        "--database-url",
        &url,
    ])));
    let secret = shown["webhookSecret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // Listing every merchant shows no secret.
    let listed = common::run_ok(&mut kassa(&["merchant", "list", "--database-url", &url]));
    assert!(
        !listed.contains("whsec_") && !listed.contains("sealed:"),
        "{listed}"
    );

    // A secret an earlier version stored in clear is sealed when the server starts, unchanged.
    let plain = kassa_core::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let app = kassa_core::AppId(app_id);
    store.set_webhook_secret(app, &plain, 2).await.unwrap();
    let server = common::serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    drop(server);
    let stored = store.app(app).await.unwrap().unwrap().webhook_secret;
    assert!(kassa_server::sealing::is_sealed(stored.expose()));
    let shown = common::json(&common::run_ok(&mut kassa(&[
        "app",
        "show",
        &app_arg,
        "--show-secrets",
        "--database-url",
        &url,
    ])));
    assert_eq!(shown["webhookSecret"], plain.expose());
}
