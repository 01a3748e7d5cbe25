//! Where the key-encryption key (KEK) of the database's secrets comes from, for every command:
//! `KASSA_KEK` (its base64 text), else the file `--kek-file` (`KASSA_KEK_FILE`), else, for a
//! SQLite database, the file `kek` beside it — created there, readable by its owner alone, the
//! first time a database that has sealed nothing is opened without a KEK. A PostgreSQL database
//! (shared by nodes that must agree on one KEK) needs it given. A database whose secrets are
//! sealed is never used without its KEK, and a different KEK is refused (see
//! `kassa_server::sealing`).

use crate::Failure;
use kassa_core::Secret;
use kassa_server::now_ms;
use kassa_server::sealing::{self, Kek};
use kassa_signature::SigningKey;
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The KEK file's name beside a SQLite database.
pub const KEK_FILE: &str = "kek";

/// How this process finds its KEK.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The KEK itself (`KASSA_KEK`).
    pub text: Option<String>,
    /// A file holding it (`--kek-file`).
    pub file: Option<PathBuf>,
    /// The database the commands use: a SQLite one keeps its KEK file beside it by default.
    pub database_url: String,
}

static SOURCE: RwLock<Option<Source>> = RwLock::new(None);

/// Set once at start (and by `bench`, for the databases it makes).
pub fn configure(source: Source) {
    *SOURCE.write().expect("KEK source lock poisoned") = Some(source);
}

/// The KEK of the databases a bench makes (one per process), as text for its servers.
pub fn bench_kek() -> String {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let text = Kek::generate().1;
        configure(Source {
            text: Some(text.clone()),
            ..source()
        });
        text
    })
    .clone()
}

fn source() -> Source {
    SOURCE
        .read()
        .expect("KEK source lock poisoned")
        .clone()
        .unwrap_or_default()
}

/// The KEK of `store`'s database, checked against it.
pub async fn unlock(store: &SqlStore) -> Result<Kek, Failure> {
    let source = source();
    let kek = find(&source, store).await?;
    sealing::check_kek(store, &kek, now_ms())
        .await
        .map_err(|e| {
            Failure(format!(
                "{e}; give this database's KEK with KASSA_KEK or --kek-file"
            ))
        })?;
    Ok(kek)
}

/// The platform signing key, unsealed with the database's KEK.
pub async fn platform_key(store: &SqlStore) -> Result<SigningKey, Failure> {
    let kek = unlock(store).await?;
    Ok(kassa_server::keys::load_or_create_platform_key(store, &kek, now_ms()).await?)
}

/// Seals the webhook secrets an earlier version stored in clear (`serve` calls it at start).
pub async fn seal_plain_webhook_secrets(store: &SqlStore, kek: &Kek) -> Result<(), Failure> {
    let mut sealed = 0;
    for merchant in store.list_merchants().await? {
        for app in merchant.apps {
            let stored = app.webhook_secret.expose();
            if sealing::is_sealed(stored) {
                continue;
            }
            let secret = Secret::new(kek.seal(sealing::WEBHOOK_SECRET, stored.as_bytes()));
            store
                .set_webhook_secret(app.app_id, &secret, now_ms())
                .await?;
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(apps = sealed, "webhook secrets stored in clear were sealed");
    }
    Ok(())
}

async fn find(source: &Source, store: &SqlStore) -> Result<Kek, Failure> {
    if let Some(text) = &source.text {
        return Kek::parse(text).map_err(|e| Failure(format!("KASSA_KEK: {e}")));
    }
    if let Some(path) = &source.file {
        return read(path).map_err(|e| Failure(format!("--kek-file {}: {e}", path.display())));
    }
    let Some(database_file) = kassa_store::sqlite_path(&source.database_url) else {
        return Err(Failure(
            "a PostgreSQL database needs its key-encryption key given (KASSA_KEK or --kek-file), \
             the same on every node; `openssl rand -base64 32` makes one"
                .into(),
        ));
    };
    let path = database_file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(KEK_FILE);
    if path.exists() {
        return read(&path).map_err(|e| Failure(format!("{}: {e}", path.display())));
    }
    if sealing::database_is_sealed(store).await? {
        return Err(Failure(format!(
            "this database's secrets are sealed and its key-encryption key is not at {}; \
             give it with KASSA_KEK or --kek-file",
            path.display()
        )));
    }
    create(&path)
}

fn read(path: &Path) -> Result<Kek, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Kek::parse(&text).map_err(|e| e.to_string())
}

/// A new KEK in a file only its owner can read.
fn create(path: &Path) -> Result<Kek, Failure> {
    use std::io::Write;
    let (kek, text) = Kek::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()?;
    eprintln!(
        "kassa: created the key-encryption key {}; keep a copy apart from the database's backups \
         (without it the database's secrets cannot be read)",
        path.display()
    );
    Ok(kek)
}
