//! `kassa channel`: the operator's channels, their settings checked, kassa's upstream key sealed
//! and never printed, on SQLite and PostgreSQL.

mod common;

use common::{json, kassa, run_ok};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use std::path::Path;

fn channel(url: &str, args: &[&str]) -> std::process::Output {
    kassa(&["channel"])
        .args(args)
        .args(["--database-url", url])
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("PRIVATE KEY"),
        "a private key printed: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

fn refused(out: std::process::Output, why: &str) {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "{why:?} not in {stderr}");
}

/// An upstream's key files: kassa's private key there, and the upstream's public key.
fn key_files(dir: &Path) -> (String, String, String) {
    let made = json(&run_ok(
        kassa(&["merchant", "create", "--name", "Keys", "--currency", "EUR"])
            .args([
                "--database-url",
                &format!("sqlite://{}", dir.join("keys.db").display()),
            ])
            .arg("--generate-keys")
            .arg(dir.join("k")),
    ));
    let private = made["keyFiles"]["privateKey"].as_str().unwrap().to_string();
    let public = made["keyFiles"]["publicKey"].as_str().unwrap().to_string();
    let public_pem = std::fs::read_to_string(&public).unwrap();
    (private, public, public_pem)
}

async fn channels_are_managed_and_keep_their_key_sealed(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, public_pem) = key_files(dir.path());
    let url = db.url.as_str();
    let add = [
        "add",
        "acme-eu",
        "--kind",
        "collect-upstream",
        "--base-url",
        "https://psp.example",
        "--upstream-app-id",
        "1001",
        "--merchant-key",
        &private,
        "--upstream-public-key",
        &public,
        "--method",
        "IDEAL_EUR=IDEAL/BANK_TRANSFER",
        "--method",
        "CASHIER=CASHIER/CASHIER",
        "--currency",
        "EUR",
        "--min",
        "1.00",
        "--max",
        "500.00",
        "--priority",
        "10",
    ];
    let added = ok(channel(url, &[&add[..], &["--show-secrets"]].concat()));
    assert_eq!(added["channelId"], "acme-eu");
    assert_eq!(added["methods"][1]["inBankCode"], "IDEAL");
    assert_eq!(added["limits"]["max"], "500.00");
    // The public half of kassa's key, to register at the upstream.
    assert_eq!(added["upstream"]["merchantPublicKey"], public_pem.as_str());
    refused(channel(url, &add), "exists");
    let store = db.store().await;
    let stored = store.channel("acme-eu").await.unwrap().unwrap();
    let sealed = stored.upstream.unwrap().merchant_key;
    assert!(
        kassa_server::sealing::is_sealed(sealed.expose()),
        "the key is sealed at rest"
    );

    ok(channel(
        url,
        &[
            "add",
            "sandbox",
            "--currency",
            "EUR",
            "--currency",
            "USD",
            "--priority",
            "50",
        ],
    ));
    let listed = ok(channel(url, &["list"]));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channelId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-eu", "sandbox"], "by priority");

    let disabled = ok(channel(url, &["disable", "acme-eu"]));
    assert_eq!(disabled["enabled"], false);
    let updated = ok(channel(
        url,
        &["update", "acme-eu", "--weight", "30", "--clear-limits"],
    ));
    assert_eq!(
        (updated["weight"].as_i64(), updated["enabled"].as_bool()),
        (Some(30), Some(false))
    );
    assert!(updated["limits"].is_null());
    assert_eq!(
        updated["methods"].as_array().unwrap().len(),
        2,
        "untouched settings stay"
    );
    assert_eq!(ok(channel(url, &["enable", "acme-eu"]))["enabled"], true);
    assert_eq!(
        ok(channel(url, &["show", "acme-eu", "--show-secrets"]))["upstream"]["merchantPublicKey"],
        public_pem.as_str()
    );
    // Without --show-secrets: fingerprints, no PEM.
    let shown = ok(channel(url, &["show", "acme-eu"]));
    let fingerprint = shown["upstream"]["merchantPublicKey"].as_str().unwrap();
    assert!(fingerprint.starts_with("SHA-256 "), "{shown}");
    assert!(!shown.to_string().contains("BEGIN"), "{shown}");
    refused(channel(url, &["show", "nobody"]), "no channel nobody");
}

async fn bad_channel_settings_are_refused(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, _) = key_files(dir.path());
    let url = db.url.as_str();
    let base = |id: &'static str, base_url: &'static str| {
        vec![
            "add".to_string(),
            id.into(),
            "--kind".into(),
            "collect-upstream".into(),
            "--base-url".into(),
            base_url.into(),
            "--upstream-app-id".into(),
            "1001".into(),
            "--merchant-key".into(),
            private.clone(),
            "--upstream-public-key".into(),
            public.clone(),
            "--method".into(),
            "IDEAL_EUR=IDEAL/BANK_TRANSFER".into(),
            "--currency".into(),
            "EUR".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        channel(url, &args)
    };
    refused(
        run(base("Bad Id", "https://psp.example")),
        "lowercase letters",
    );
    refused(
        run(base("local", "http://127.0.0.1:9000")),
        "--allow-private-upstream",
    );
    let mut private_ok = base("local", "http://127.0.0.1:9000");
    private_ok.push("--allow-private-upstream".into());
    ok(run(private_ok));
    refused(run(base("slash", "https://psp.example/")), "trailing slash");
    refused(run(base("ftp", "ftp://psp.example")), "http");
    let mut wrong_currency = base("usd", "https://psp.example");
    *wrong_currency.last_mut().unwrap() = "USD".into(); // IDEAL_EUR takes no USD
    refused(
        run(wrong_currency),
        "takes none of the channel's currencies",
    );
    let mut swapped = base("swapped", "https://psp.example");
    let key_at = swapped.iter().position(|a| a == "--merchant-key").unwrap();
    swapped[key_at + 1] = public.clone();
    refused(run(swapped), "--merchant-key");
    let mut unknown_method = base("unknown", "https://psp.example");
    unknown_method.extend(["--method".into(), "PAYPAL=PP/EWALLET".into()]);
    refused(run(unknown_method), "no method PAYPAL");
    refused(
        channel(
            url,
            &[
                "add",
                "halfway",
                "--kind",
                "pix-upstream",
                "--currency",
                "BRL",
            ],
        ),
        "needs --base-url",
    );
    let none = ok(channel(url, &["list"]));
    assert_eq!(
        none.as_array().unwrap().len(),
        1,
        "only the allowed private one was added"
    );
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    channels_are_managed_and_keep_their_key_sealed,
    bad_channel_settings_are_refused,
);
