//! Every BR Code kassa makes must be accepted by an independent implementation: the npm package
//! `pix-utils` (installed by `.ci/run` into `tools/brcode-validator`). Without Node.js or that
//! package the test is skipped with a printed reason; under `CI=true` it fails instead.

mod common;

use common::*;
use kassa_core::AmountMinor;
use kassa_core::pix::PixReceiver;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn validator_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/brcode-validator");
    let ready = dir.join("node_modules/pix-utils").exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must validate BR Codes: run `npm ci` in tools/brcode-validator"
        );
        eprintln!(
            "skipped: Node.js or tools/brcode-validator/node_modules is missing (npm ci there)"
        );
    }
    ready.then_some(dir)
}

/// What pix-utils makes of each code.
fn validate(dir: &std::path::Path, codes: &[String]) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg(dir.join("validate.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(codes.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn an_independent_implementation_accepts_every_code() {
    let Some(dir) = validator_dir() else { return };
    let receivers = [
        (
            "7d9f0335-8dcc-4054-9bf9-0dbd61d36906",
            "Loja São João",
            "São Paulo",
        ),
        ("529.982.247-25", "Fulano de Tal", "BRASILIA"),
        ("11.222.333/0001-81", "Comércio Ação Ltda", "Florianópolis"),
        ("pagamentos@loja.com.br", "Café & Cia", "Rio de Janeiro"),
        ("+5511987654321", "A", "X"),
        (
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "Nome Com Vinte E Cinco Ch",
            "Quinze Letras X",
        ),
    ];
    let amounts = [1, 1_234, 99_999_999, 100_000];
    let mut codes = Vec::new();
    let mut expected = Vec::new();
    for (i, (key, name, city)) in receivers.iter().enumerate() {
        let receiver = PixReceiver::new(key, name, city).unwrap();
        for (j, amount) in amounts.iter().enumerate() {
            let txid = format!("{}", 1_000_000_000_000_000u64 + (i * 10 + j) as u64);
            codes.push(receiver.brcode(AmountMinor(*amount), &txid));
            expected.push((
                receiver.clone(),
                AmountMinor(*amount).to_decimal_string(),
                txid,
            ));
        }
    }
    // And a code as the API hands it out.
    let server = Server::start(kassa_store::testing::TestDatabase::sqlite().await).await;
    let reply = server.create_pix("V-1", "7.50").await;
    let api_code = reply["data"]["qrCode"].as_str().unwrap().to_string();
    codes.push(api_code);
    let receiver = PixReceiver::new(PIX_KEY, "Loja São João", "São Paulo").unwrap();
    expected.push((
        receiver,
        "7.50".into(),
        reply["data"]["orderNo"].as_str().unwrap().into(),
    ));

    let verdicts = validate(&dir, &codes);
    assert_eq!(verdicts.len(), codes.len());
    for ((verdict, code), (receiver, amount, txid)) in verdicts.iter().zip(&codes).zip(&expected) {
        assert_eq!(verdict["ok"], true, "{code}: {verdict}");
        assert_eq!(verdict["type"], "STATIC");
        assert_eq!(verdict["pixKey"], receiver.key.as_str());
        assert_eq!(verdict["merchantName"], receiver.name.as_str());
        assert_eq!(verdict["merchantCity"], receiver.city.as_str());
        assert_eq!(
            format!("{:.2}", verdict["transactionAmount"].as_f64().unwrap()),
            *amount
        );
        assert_eq!(
            (
                verdict["transactionCurrency"].as_str(),
                verdict["countryCode"].as_str()
            ),
            (Some("986"), Some("BR"))
        );
        assert_eq!(verdict["txid"], txid.as_str());
    }

    // The validator really checks: a corrupted CRC is refused.
    let mut corrupted = codes[0].clone();
    let last = corrupted.pop().unwrap();
    corrupted.push(if last == '0' { '1' } else { '0' });
    assert_eq!(validate(&dir, &[corrupted])[0]["ok"], false);
}
