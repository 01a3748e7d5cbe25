//! Upstream PSPs for the tests of kassa as a gateway: each a `kassa serve` with its own SQLite
//! database and one merchant app — kassa's account there — and the channels that reach them.

use super::{Served, create_shop, json, kassa, run_ok, serve, set_upstream_pix};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An upstream PSP: a `kassa serve` with one merchant app (kassa's account there).
pub struct Upstream {
    pub served: Served,
    pub db: String,
    pub app_id: i64,
    /// kassa's private key at the upstream (PEM file).
    pub key_path: PathBuf,
    /// The upstream's platform public key (PEM file).
    pub platform_path: PathBuf,
}

pub fn upstream(dir: &Path, name: &str, currency: &str) -> Upstream {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let db = format!("sqlite://{}", home.join("kassa.db").display());
    let (app_id, _) = create_shop(&db, currency, &home);
    if currency == "BRL" {
        set_upstream_pix(&db, app_id);
    }
    let platform_path = home.join("platform.pub.pem");
    let platform = run_ok(&mut kassa(&["keys", "platform", "--database-url", &db]));
    std::fs::write(&platform_path, platform).unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db,
        "--allow-private-callbacks",
        "--callback-retry-interval",
        "1s",
    ];
    Upstream {
        served: serve(&args, &home),
        db,
        app_id,
        key_path: home.join("keys/merchant.key.pem"),
        platform_path,
    }
}

impl Upstream {
    /// The payer pays at the upstream's sandbox bank (`amount` differs from the order's when
    /// given).
    pub fn pay(&self, upstream_order_no: &str, amount: Option<&str>) -> Value {
        let mut command = kassa(&["sandbox", "pay", upstream_order_no, "--outcome", "paid"]);
        if let Some(amount) = amount {
            command.args(["--amount", amount]);
        }
        json(&run_ok(command.args(["--database-url", &self.db])))
    }

    /// How many orders kassa's account at the upstream has.
    pub async fn order_count(&self) -> usize {
        use kassa_store::prelude::*;
        let store = kassa_store::SqlStore::connect(&self.db).await.unwrap();
        let app = kassa_core::AppId(self.app_id);
        store.orders_of_app(app, None, 100).await.unwrap().len()
    }
}

/// Adds a channel `(id, kind, base_url)` to the gateway's database for the upstream `up`
/// (reached at `base_url`: its own, or a relay's in front of it), with 1 s timeouts.
pub fn add_channel(
    database_url: &str,
    (id, kind, base_url): (&str, &str, &str),
    up: &Upstream,
    extra: &[&str],
) {
    let (method, currency) = match kind {
        "pix-upstream" => ("PIX=PIX/PIX", "BRL"),
        _ => ("IDEAL_EUR=IDEAL_EUR/BANK_TRANSFER", "EUR"),
    };
    let mut command = kassa(&["channel", "add", id, "--kind", kind, "--base-url", base_url]);
    command
        .args(["--upstream-app-id", &up.app_id.to_string()])
        .arg("--merchant-key")
        .arg(&up.key_path)
        .arg("--upstream-public-key")
        .arg(&up.platform_path)
        .args(["--method", method, "--currency", currency])
        .args(["--connect-timeout", "1s", "--request-timeout", "1s"])
        .args(extra)
        .args(["--allow-private-upstream", "--database-url", database_url]);
    run_ok(&mut command);
}
