//! Every BR Code kassa makes must be accepted by an independent implementation: the npm package
//! `pix-utils` (installed by `.ci/run` into `tools/brcode-validator`). Without Node.js or that
//! package the test is skipped with a printed reason; under `CI=true` it fails instead.

mod common;

use common::*;
use kassa_core::AmountMinor;
use kassa_core::pix::PixReceiver;
use kassa_store::MerchantStore;
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
    validate_with(dir, codes, false)
}

/// What pix-utils makes of each code; with `fetch`, of a dynamic code's charge too, fetched as
/// a payer's bank does and its signature checked.
fn validate_with(dir: &std::path::Path, codes: &[String], fetch: bool) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg(dir.join("validate.js"))
        .env("KASSA_FETCH_DYNAMIC", if fetch { "1" } else { "0" })
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

/// A dynamic code: pix-utils reads its location, fetches the charge there as a payer's bank
/// does, and the charge's JWS verifies with the key set its header names; the payload holds
/// what the bank shows (amount, key, deadline) and follows the order to the end. (Two worker
/// threads: the server answers the validator while the test waits for it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_codes_lead_to_a_signed_charge() {
    let Some(dir) = validator_dir() else { return };
    let server = Server::start(kassa_store::testing::TestDatabase::sqlite().await).await;
    let receiver = PixReceiver::new(PIX_KEY, "Loja São João", "São Paulo")
        .unwrap()
        .with_codes(kassa_core::pix::CodeKind::Dynamic);
    server
        .store
        .set_app_pix(server.brl, Some(&receiver), 2, None)
        .await
        .unwrap();
    let reply = server.create_pix("D-1", "42.10").await;
    let code = reply["data"]["qrCode"].as_str().unwrap().to_string();
    assert!(code.len() <= 200, "{code}");
    let order_no = reply["data"]["orderNo"].as_str().unwrap();

    let verdict = &validate_with(&dir, std::slice::from_ref(&code), true)[0];
    assert_eq!(verdict["ok"], true, "{code}: {verdict}");
    assert_eq!(verdict["type"], "DYNAMIC");
    assert_eq!(verdict["merchantName"], "Loja Sao Joao");
    let url = verdict["url"].as_str().unwrap();
    let host = server.base.trim_start_matches("http://");
    assert!(
        url.starts_with(&format!("{host}/pix/cob/{order_no}")),
        "{url}"
    );
    assert_eq!(verdict["signatureValid"], true, "{verdict}");
    assert_eq!(verdict["header"]["alg"], "PS256");
    assert_eq!(
        verdict["header"]["jku"],
        format!("https://{host}/pix/jwks").as_str()
    );
    let charge = &verdict["payload"];
    assert_eq!(charge["status"], "ATIVA");
    assert_eq!(charge["valor"]["original"], "42.10");
    assert_eq!(charge["chave"], PIX_KEY);
    assert_eq!(charge["calendario"]["expiracao"], 86_400);
    let txid = charge["txid"].as_str().unwrap();
    assert!(
        txid.starts_with(order_no) && (26..=35).contains(&txid.len()),
        "{txid}"
    );

    // Paid: the charge says so, still signed.
    let order_no = kassa_core::OrderNo::parse(order_no).unwrap();
    server
        .gateway
        .change_order(
            &order_no,
            &kassa_core::OrderEvent::Paid {
                requested: AmountMinor(4_210),
                received: AmountMinor(4_210),
            },
        )
        .await
        .unwrap();
    let verdict = &validate_with(&dir, std::slice::from_ref(&code), true)[0];
    assert_eq!(verdict["payload"]["status"], "CONCLUIDA", "{verdict}");
    assert_eq!(verdict["signatureValid"], true);

    // A location whose tag does not hold, or that names another order, has no charge.
    let forged = format!("{}/pix/cob/{order_no}0000000000000000", server.base);
    let response = server.client.get(forged).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = server
        .client
        .get(format!("{}/pix/cob/x", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The validator really checks the signature: the charge verifies as served, and fails
    // with its payload changed.
    let location = format!("{}/pix/cob/{}", server.base, txid);
    let jws = server.client.get(location).send().await.unwrap();
    assert_eq!(jws.headers()["content-type"], "application/jose");
    let jws = jws.text().await.unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"status":"ATIVA","valor":{"original":"0.01"}}"#,
    );
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let verdicts = validate_with(&dir, &[format!("jws {jws}"), format!("jws {forged}")], true);
    assert_eq!(verdicts[0]["signatureValid"], true, "{:?}", verdicts[0]);
    assert_eq!(verdicts[1]["signatureValid"], false, "{:?}", verdicts[1]);
}
