//! Tests of the `kassa` binary as an operator and a merchant's developer use it: operator
//! commands, configuration precedence, `sign`/`verify`, and `serve --demo` end to end.

mod common;

use common::{
    assert_books_hold, create_shop, eur_order_body, json, kassa, run_ok, run_with_stdin, serve,
    serve_with,
};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use std::process::Command;

async fn operator_commands(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let url = db.url.as_str();
    // --database-url between the command and its subcommand.
    let created = json(&run_ok(
        kassa(&[
            "merchant",
            "--database-url",
            url,
            "create",
            "--name",
            "Shop",
            "--currency",
            "EUR",
            "--currency",
            "USD",
            "--generate-keys",
        ])
        .arg(&keys),
    ));
    let apps = created["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0]["currency"], "EUR");
    assert_eq!(apps[1]["currency"], "USD");
    let eur_app = apps[0]["appId"].as_i64().unwrap();
    assert!(created["merchantId"].as_i64().unwrap() > 0);
    // A fingerprint, not the PEM, unless asked.
    let fingerprint = created["platformKeyFingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");

    let private_key = keys.join("merchant.key.pem");
    assert!(
        std::fs::read_to_string(&private_key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key must be readable by its owner only"
        );
    }
    // Refuses to overwrite an existing key pair.
    let again = kassa(&[
        "merchant",
        "create",
        "--name",
        "X",
        "--currency",
        "EUR",
        "--database-url",
        url,
        "--generate-keys",
    ])
    .arg(&keys)
    .output()
    .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));

    // --database-url after the subcommand; the platform key is stable.
    let platform_pem = run_ok(&mut kassa(&["keys", "platform", "--database-url", url]));
    assert!(platform_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let platform_key = kassa_signature::VerifyingKey::parse(&platform_pem).unwrap();
    assert_eq!(platform_key.fingerprint(), fingerprint);

    let app_show = |secrets: bool| {
        let mut command = kassa(&["app", "show", &eur_app.to_string(), "--database-url", url]);
        if secrets {
            command.arg("--show-secrets");
        }
        json(&run_ok(&mut command))
    };
    // Without --show-secrets: no secret, no PEM, times as dates.
    let hidden = app_show(false);
    assert!(
        hidden["webhookSecret"]
            .as_str()
            .unwrap()
            .contains("--show-secrets")
    );
    assert!(
        hidden["publicKey"]
            .as_str()
            .unwrap()
            .starts_with("SHA-256 ")
    );
    let created_at = hidden["createdAt"].as_str().unwrap();
    assert!(
        created_at.parse::<jiff::Timestamp>().is_ok(),
        "{created_at}"
    );
    assert!(hidden.get("createdAtMs").is_none());
    // The merchant's colour on the payer's pages: dark enough for white text, or refused.
    let brand = |colour: &str| {
        kassa(&[
            "app",
            "set-brand",
            &eur_app.to_string(),
            "--database-url",
            url,
        ])
        .args(["--colour", colour])
        .output()
        .unwrap()
    };
    let light = brand("#ffcc00");
    assert!(!light.status.success());
    assert!(String::from_utf8_lossy(&light.stderr).contains("too light"));
    let navy = brand("#1F2A44");
    assert!(navy.status.success());
    assert_eq!(
        json(&String::from_utf8_lossy(&navy.stdout))["brandColour"],
        "#1f2a44"
    );
    // The merchant's logo: a real image is taken, an SVG is refused, and it can be removed.
    let logo_file = dir.path().join("logo.png");
    let mut logo = Vec::new();
    let mut encoder = png::Encoder::new(&mut logo, 48, 24);
    encoder.set_color(png::ColorType::Grayscale);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[0x80; 48 * 24]).unwrap();
    writer.finish().unwrap();
    std::fs::write(&logo_file, &logo).unwrap();
    let svg_file = dir.path().join("logo.svg");
    std::fs::write(&svg_file, r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#).unwrap();
    let set_logo = |extra: &[&str]| {
        kassa(&[
            "app",
            "set-logo",
            &eur_app.to_string(),
            "--database-url",
            url,
        ])
        .args(extra)
        .output()
        .unwrap()
    };
    let svg = set_logo(&["--file", svg_file.to_str().unwrap()]);
    assert!(!svg.status.success());
    assert!(String::from_utf8_lossy(&svg.stderr).contains("SVG is not accepted"));
    let png = set_logo(&["--file", logo_file.to_str().unwrap()]);
    assert!(
        png.status.success(),
        "{}",
        String::from_utf8_lossy(&png.stderr)
    );
    let shown = json(&String::from_utf8_lossy(&png.stdout));
    assert!(shown["logoSetAt"].as_str().is_some(), "{shown}");
    let cleared = set_logo(&["--clear"]);
    assert!(cleared.status.success());
    assert!(json(&String::from_utf8_lossy(&cleared.stdout))["logoSetAt"].is_null());
    let shown = app_show(true);
    assert_eq!(shown["currency"], "EUR");
    assert!(
        shown["webhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(
        shown["publicKey"].as_str().unwrap(),
        std::fs::read_to_string(keys.join("merchant.pub.pem")).unwrap()
    );

    // set-key with a bare base64 DER key (as Java back ends hand them out).
    let other_dir = dir.path().join("other");
    run_ok(
        kassa(&[
            "merchant",
            "create",
            "--name",
            "Tmp",
            "--currency",
            "EUR",
            "--database-url",
            url,
            "--generate-keys",
        ])
        .arg(&other_dir),
    );
    let pem = std::fs::read_to_string(other_dir.join("merchant.pub.pem")).unwrap();
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    std::fs::write(dir.path().join("bare.txt"), &bare).unwrap();
    let updated = json(&run_ok(
        kassa(&[
            "app",
            "set-key",
            &eur_app.to_string(),
            "--show-secrets",
            "--database-url",
            url,
            "--public-key",
        ])
        .arg(dir.path().join("bare.txt")),
    ));
    assert_eq!(updated["publicKey"].as_str().unwrap(), pem);
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    let refused = kassa(&[
        "app",
        "set-key",
        &eur_app.to_string(),
        "--database-url",
        url,
        "--public-key",
    ])
    .arg(dir.path().join("junk.pem"))
    .output()
    .unwrap();
    assert!(!refused.status.success());

    let limited = json(&run_ok(&mut kassa(&[
        "app",
        "set-limits",
        &eur_app.to_string(),
        "--min",
        "5",
        "--max",
        "250.00",
        "--database-url",
        url,
    ])));
    assert_eq!(limited["limits"]["min"], "5.00");
    assert_eq!(limited["limits"]["max"], "250.00");
    let cleared = json(&run_ok(&mut kassa(&[
        "app",
        "set-limits",
        &eur_app.to_string(),
        "--clear",
        "--database-url",
        url,
    ])));
    assert!(cleared["limits"].is_null());

    let listed = json(&run_ok(&mut kassa(&[
        "merchant",
        "list",
        "--database-url",
        url,
    ])));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["name"], "Shop");

    let unknown = kassa(&["app", "show", "999999", "--database-url", url])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no app has appId 999999"));
    let bad_currency = kassa(&[
        "merchant",
        "create",
        "--name",
        "X",
        "--currency",
        "JPY",
        "--database-url",
        url,
    ])
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&bad_currency.stderr).contains("unknown currency JPY"));
}

async fn demo_flow(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--data-dir",
        "data",
    ];
    let first = serve(&args, dir.path());
    let printed = first.stdout_lines.join("");
    let app_line = first
        .stdout_lines
        .iter()
        .find(|l| l.trim_start().starts_with("EUR appId"))
        .unwrap();
    let app_id: i64 = app_line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(
        printed.contains("sign --key data/demo/merchant.key.pem"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{}/eur/collect/apply", first.base)),
        "{printed}"
    );
    let key = dir.path().join("data/demo/merchant.key.pem");
    let platform = dir.path().join("data/demo/platform.pub.pem");

    // The printed example, step by step: sign, send, verify the reply.
    let request = format!(
        r#"{{"appId":{app_id},"orderId":"demo-1","name":"Jane Doe","phone":"+31612345678","email":"jane@example.com","amount":"25.00","payType":"CASHIER","inBankCode":"CASHIER","country":"000","callBackUrl":"https://shop.example/paid","callBackFailUrl":"https://shop.example/failed","partnerUserId":"demo-user"}}"#
    );
    let signed = run_with_stdin(kassa(&["sign", "--key"]).arg(&key), &request);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let client = reqwest::Client::new();
    let reply = client
        .post(format!("{}/eur/collect/apply", first.base))
        .body(signed.stdout)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply_text = reply.text().await.unwrap();
    let verified = run_with_stdin(kassa(&["verify", "--key"]).arg(&platform), &reply_text);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        "signature valid"
    );
    // A tampered reply fails verification.
    let tampered = reply_text.replace("demo-1", "demo-2");
    let refused = run_with_stdin(kassa(&["verify", "--key"]).arg(&platform), &tampered);
    assert!(!refused.status.success());

    // The query of the example, signed from a file argument this time.
    std::fs::write(
        dir.path().join("q.json"),
        format!(r#"{{"appId":{app_id},"orderId":"demo-1"}}"#),
    )
    .unwrap();
    let query = run_ok(
        kassa(&["sign", "--key"])
            .arg(&key)
            .arg(dir.path().join("q.json")),
    );
    let reply = client
        .post(format!("{}/eur/collect/query", first.base))
        .body(query)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(json(&reply.text().await.unwrap())["data"]["status"], 0);
    drop(first);

    // A second start reuses the demo merchant and its key.
    let second = serve(&args, dir.path());
    let printed_again = second.stdout_lines.join("");
    assert!(
        printed_again.contains(&format!("EUR appId {app_id}")),
        "{printed_again}"
    );
    let listed = json(&run_ok(&mut kassa(&[
        "merchant",
        "list",
        "--database-url",
        &db.url,
    ])));
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the demo merchant is created once"
    );
}

/// Inserts a EUR iDEAL order of 20.00 for the app, as the API would, and returns its number.
async fn insert_order(url: &str, app_id: i64, order_id: &str) -> String {
    insert_order_notifying(url, app_id, order_id, None).await
}

/// [`insert_order`] with a callback address.
async fn insert_order_notifying(
    url: &str,
    app_id: i64,
    order_id: &str,
    notify_url: Option<&str>,
) -> String {
    use kassa_core::{
        AmountMinor, AppId, NewOrder, Order, OrderIds, OrderNo, Payer, PaymentMethod, Personal,
    };
    use kassa_store::SqlStore;
    let store = SqlStore::connect(url).await.unwrap();
    let app = store.app(AppId(app_id)).await.unwrap().unwrap();
    let new = NewOrder {
        app_id: app.app_id,
        merchant_order_id: order_id.into(),
        amount_minor: AmountMinor(2_000),
        method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
        country: None,
        payer: Some(Payer {
            name: Personal::new("Maria Jansen"),
            phone: Personal::new("+31612345678"),
            email: Personal::new("maria@example.nl"),
            partner_user_id: "u1".into(),
        }),
        subject: None,
        body: None,
        callback_url: Some("https://shop.example/ok".into()),
        callback_fail_url: Some("https://shop.example/fail".into()),
        notify_url: notify_url.map(str::to_string),
        language: None,
        request_fingerprint: "fp".into(),
        dialect: "collect",
    };
    let number = format!(
        "{:0>16}",
        1_000_000_000_000_000u64
            + order_id.len() as u64 * 7919
            + order_id.bytes().map(u64::from).sum::<u64>()
    );
    let ids = OrderIds {
        order_no: OrderNo::parse(&number).unwrap(),
        cashier_token: format!("t-{order_id}"),
    };
    let mut order = Order::create(&app, new, ids, kassa_server::now_ms(), 3_600_000).unwrap();
    order.route_to("sandbox", "sandbox");
    store.insert_order(&order).await.unwrap();
    number
}

async fn pix_settings(db: TestDatabase) {
    let url = db.url.as_str();
    let created = json(&run_ok(&mut kassa(&[
        "merchant",
        "create",
        "--name",
        "Loja",
        "--currency",
        "BRL",
        "--currency",
        "EUR",
        "--database-url",
        url,
    ])));
    let brl = created["apps"][0]["appId"].as_i64().unwrap().to_string();
    let eur = created["apps"][1]["appId"].as_i64().unwrap().to_string();
    let shown = json(&run_ok(&mut kassa(&[
        "app",
        "set-pix",
        &brl,
        "--key",
        "529.982.247-25",
        "--name",
        "Padaria São Jorge",
        "--city",
        "Belém",
        "--database-url",
        url,
    ])));
    assert_eq!(
        shown["pix"],
        serde_json::json!({"key": "52998224725", "keyType": "cpf", "name": "Padaria Sao Jorge",
            "city": "Belem", "codes": "static"})
    );
    let dynamic = json(&run_ok(&mut kassa(&[
        "app",
        "set-pix",
        &brl,
        "--key",
        "529.982.247-25",
        "--name",
        "Padaria São Jorge",
        "--city",
        "Belém",
        "--dynamic",
        "--database-url",
        url,
    ])));
    assert_eq!(dynamic["pix"]["codes"], "dynamic");
    for (args, words) in [
        (
            vec!["--key", "52998224724", "--name", "X", "--city", "Y"],
            "not a PIX key",
        ),
        (
            vec!["--key", "+1415555", "--name", "X", "--city", "Y"],
            "not a PIX key",
        ),
        (
            vec!["--key", "random-text", "--name", "X", "--city", "Y"],
            "not a PIX key",
        ),
        (
            vec!["--key", "a@b.co", "--name", &"n".repeat(26), "--city", "Y"],
            "merchant name",
        ),
        (
            vec![
                "--key",
                "a@b.co",
                "--name",
                "X",
                "--city",
                "São José dos Campos",
            ],
            "merchant city",
        ),
        (
            vec!["--key", "a@b.co", "--name", "東京", "--city", "Y"],
            "ASCII",
        ),
    ] {
        let mut command = kassa(&["app", "set-pix", &brl, "--database-url", url]);
        let out = command.args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = kassa(&[
        "app",
        "set-pix",
        &eur,
        "--key",
        "a@b.co",
        "--name",
        "X",
        "--city",
        "Y",
        "--database-url",
        url,
    ])
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("BRL apps"));
}

async fn order_and_sandbox_commands(db: TestDatabase) {
    let url = db.url.as_str();
    let created = json(&run_ok(&mut kassa(&[
        "merchant",
        "create",
        "--name",
        "Shop",
        "--currency",
        "EUR",
        "--database-url",
        url,
    ])));
    let app_id = created["apps"][0]["appId"].as_i64().unwrap();
    let app = app_id.to_string();

    // Fees show on the app and apply on success.
    let shown = json(&run_ok(&mut kassa(&[
        "app",
        "set-fee",
        &app,
        "--method",
        "IDEAL_EUR",
        "--basis-points",
        "200",
        "--fixed",
        "0.10",
        "--database-url",
        url,
    ])));
    assert_eq!(shown["fees"][0]["method"], "IDEAL_EUR");
    assert_eq!(shown["fees"][0]["basisPoints"], 200);
    let bad = kassa(&[
        "app",
        "set-fee",
        &app,
        "--method",
        "NOPE",
        "--basis-points",
        "1",
        "--database-url",
        url,
    ])
    .output()
    .unwrap();
    assert!(!bad.status.success());
    let before = json(&run_ok(&mut kassa(&[
        "app",
        "show",
        &app,
        "--show-secrets",
        "--database-url",
        url,
    ])))["webhookSecret"]
        .clone();
    let rotated = json(&run_ok(&mut kassa(&[
        "app",
        "rotate-webhook-secret",
        &app,
        "--show-secrets",
        "--database-url",
        url,
    ])))["webhookSecret"]
        .clone();
    assert_ne!(before, rotated);
    assert!(rotated.as_str().unwrap().starts_with("whsec_"));

    for (order_id, outcome, amount, status, actual, fee) in [
        ("S-paid", "paid", None, "succeeded", "20.00", "0.50"),
        (
            "S-short",
            "paid",
            Some("15.00"),
            "exception",
            "15.00",
            "0.00",
        ),
        ("S-failed", "failed", None, "failed", "0.00", "0.00"),
        ("S-cancelled", "cancelled", None, "failed", "0.00", "0.00"),
        ("S-expired", "expired", None, "failed", "0.00", "0.00"),
        (
            "S-exception",
            "exception",
            None,
            "exception",
            "0.00",
            "0.00",
        ),
    ] {
        let order_no = insert_order(url, app_id, order_id).await;
        let mut args = vec![
            "sandbox",
            "pay",
            order_no.as_str(),
            "--outcome",
            outcome,
            "--database-url",
            url,
        ];
        if let Some(amount) = amount {
            args.extend(["--amount", amount]);
        }
        let paid = json(&run_ok(&mut kassa(&args)));
        assert_eq!(
            (
                paid["status"].as_str(),
                paid["actualAmount"].as_str(),
                paid["fee"].as_str()
            ),
            (Some(status), Some(actual), Some(fee)),
            "{order_id}"
        );
        // A final order takes no second outcome.
        if status != "exception" {
            let again = kassa(&[
                "sandbox",
                "pay",
                &order_no,
                "--outcome",
                "paid",
                "--database-url",
                url,
            ])
            .output()
            .unwrap();
            assert!(!again.status.success());
            let why = String::from_utf8_lossy(&again.stderr);
            assert!(why.contains("final states never change"), "{why}");
            // Only an exception is the operator's to resolve, and the refusal says so.
            let resolve = [
                "order",
                "resolve",
                &order_no,
                "--succeed",
                "--database-url",
                url,
            ];
            let refused = kassa(&resolve).output().unwrap();
            assert!(!refused.status.success());
            let why = String::from_utf8_lossy(&refused.stderr);
            assert!(why.contains("not in exception"), "{why}");
        }
    }

    // The operator settles exceptions; nothing else.
    let exception = insert_order(url, app_id, "S-exception").await;
    let resolved = json(&run_ok(&mut kassa(&[
        "order",
        "resolve",
        &exception,
        "--succeed",
        "--database-url",
        url,
    ])));
    assert_eq!(
        (
            resolved["status"].as_str(),
            resolved["actualAmount"].as_str(),
            resolved["fee"].as_str()
        ),
        (Some("succeeded"), Some("20.00"), Some("0.50"))
    );
    // Two successes are in the books: the paid order and the resolved exception.
    let balance = json(&run_ok(&mut kassa(&[
        "balance",
        &app,
        "--database-url",
        url,
    ])));
    assert_eq!(balance["balances"][0]["currency"], "EUR", "{balance}");
    assert_eq!(balance["balances"][0]["pending"], "39.00", "{balance}");
    assert_eq!(balance["balances"][0]["available"], "0.00", "{balance}");
    assert_eq!(balance["feesPaid"]["EUR"], "1.00", "{balance}");
    assert_books_hold(url);
    // T+1 by default: nothing settles today. At T+0 a new success settles at once, once.
    let settle = || {
        json(&run_ok(&mut kassa(&[
            "ledger",
            "settle",
            "--database-url",
            url,
        ])))
    };
    assert_eq!(settle()["settled"], 0);
    let absurd = [
        "app",
        "set-settlement",
        &app,
        "--days",
        "-1",
        "--database-url",
        url,
    ];
    assert!(!kassa(&absurd).output().unwrap().status.success());
    let set = [
        "app",
        "set-settlement",
        &app,
        "--days",
        "0",
        "--database-url",
        url,
    ];
    assert_eq!(json(&run_ok(&mut kassa(&set)))["settlementDelayDays"], 0);
    let today = insert_order(url, app_id, "S-today").await;
    let pay = [
        "sandbox",
        "pay",
        &today,
        "--outcome",
        "paid",
        "--database-url",
        url,
    ];
    run_ok(&mut kassa(&pay));
    assert_eq!(settle()["settled"], 1);
    assert_eq!(settle()["settled"], 0, "settled once");
    let balance = json(&run_ok(&mut kassa(&[
        "balance",
        &app,
        "--database-url",
        url,
    ])));
    assert_eq!(balance["balances"][0]["pending"], "39.00", "{balance}");
    assert_eq!(balance["balances"][0]["available"], "19.50", "{balance}");
    assert_books_hold(url);
    // Today's settlement report: the three successes, as CSV and as JSON.
    let today = kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10].to_string();
    let report = |format: &str, date: &str| {
        kassa(&[
            "report",
            "settlement",
            "--app",
            &app,
            "--date",
            date,
            "--format",
            format,
            "--database-url",
            url,
        ])
        .output()
        .unwrap()
    };
    let csv = String::from_utf8(report("csv", &today).stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], kassa_server::report::CSV_HEADER);
    assert_eq!(lines[1], "total,,,IDEAL_EUR,EUR,3,60.00,1.50,58.50,,,,");
    assert_eq!(lines[2], "total,,,,EUR,3,60.00,1.50,58.50,,,,");
    let records = |kind: &str| lines.iter().filter(|l| l.starts_with(kind)).count();
    // Three successes of 4 entries each (gross, fee), one settlement of 2.
    assert_eq!(
        (records("order,"), records("entry,")),
        (3, 3 * 4 + 2),
        "{csv}"
    );
    assert_eq!(lines.len(), 3 + 3 + 14, "{csv}");
    let json_report = json(&String::from_utf8(report("json", &today).stdout).unwrap());
    assert_eq!(json_report["orders"].as_array().unwrap().len(), 3);
    assert_eq!(json_report["journals"].as_array().unwrap().len(), 4);
    assert_eq!(json_report["total"]["net"], "58.50");
    assert_eq!(json_report["byMethod"]["IDEAL_EUR"]["orders"], 3);
    for refused in ["2999-01-01", "2000-01-01", "yesterday"] {
        let out = report("csv", refused);
        assert!(!out.status.success(), "{refused}");
    }
    let short = insert_order(url, app_id, "S-short").await;
    let failed = json(&run_ok(&mut kassa(&[
        "order",
        "resolve",
        &short,
        "--fail",
        "--reason",
        "amount mismatch",
        "--database-url",
        url,
    ])));
    assert_eq!(
        (failed["status"].as_str(), failed["errorMsg"].as_str()),
        (Some("failed"), Some("amount mismatch"))
    );
    let paid = insert_order(url, app_id, "S-paid").await;
    let refused = kassa(&["order", "resolve", &paid, "--fail", "--database-url", url])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a succeeded order is final");
    let neither = kassa(&["order", "resolve", &paid, "--database-url", url])
        .output()
        .unwrap();
    assert!(!neither.status.success());

    // order show masks personal data unless asked.
    let shown = json(&run_ok(&mut kassa(&[
        "order",
        "show",
        &paid,
        "--database-url",
        url,
    ])));
    assert_eq!(shown["payer"]["email"], "m***@example.nl");
    assert_eq!(shown["chosenMethod"], serde_json::Value::Null);
    let revealed = json(&run_ok(&mut kassa(&[
        "order",
        "show",
        &paid,
        "--show-personal-data",
        "--database-url",
        url,
    ])));
    assert_eq!(revealed["payer"]["email"], "maria@example.nl");
    let unknown = kassa(&["order", "show", "1234567890123456", "--database-url", url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no order has number"));
    let malformed = kassa(&["order", "show", "12", "--database-url", url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("16-digit"));
}

/// `kassa user`: the first operator and merchant users from the command line, passwords shown
/// once and stored as argon2id hashes, every change in the audit log.
async fn users_from_the_command_line(db: TestDatabase) {
    use kassa_store::prelude::*;
    let url = db.url.as_str();
    let user = |args: &[&str]| {
        let mut command = kassa(&[&["user"][..], args, &["--database-url", url][..]].concat());
        command.output().unwrap()
    };
    let ok = |args: &[&str]| {
        let out = user(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&String::from_utf8(out.stdout).unwrap())
    };
    let admin = ok(&[
        "add",
        "--email",
        "Ops@PSP.example",
        "--role",
        "operator-admin",
    ]);
    assert_eq!(
        (admin["email"].as_str(), admin["role"].as_str()),
        (Some("ops@psp.example"), Some("operator-admin"))
    );
    let password = admin["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 20);
    let store = kassa_store::SqlStore::connect(url).await.unwrap();
    let stored = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.password_hash.expose().starts_with("$argon2id$"));
    assert!(kassa_server::passwords::verify(
        &password,
        stored.password_hash.expose()
    ));

    let shop = json(&run_ok(&mut kassa(&[
        "merchant",
        "create",
        "--name",
        "Shop",
        "--currency",
        "EUR",
        "--database-url",
        url,
    ])));
    let merchant = shop["merchantId"].to_string();
    for refused in [
        vec![
            "add",
            "--email",
            "ops@psp.example",
            "--role",
            "operator-support",
        ],
        vec![
            "add",
            "--email",
            "dev@shop.example",
            "--role",
            "merchant-developer",
        ],
        vec![
            "add",
            "--email",
            "dev@shop.example",
            "--role",
            "merchant-developer",
            "--merchant",
            "999",
        ],
        vec!["add", "--email", "dev@shop.example", "--role", "root"],
        vec![
            "add",
            "--email",
            "not-an-address",
            "--role",
            "operator-support",
        ],
        vec!["disable", "999"],
    ] {
        assert!(!user(&refused).status.success(), "{refused:?}");
    }
    let mut add_dev = kassa(&[
        "user",
        "add",
        "--email",
        "dev@shop.example",
        "--role",
        "merchant-developer",
    ]);
    add_dev.args([
        "--merchant",
        &merchant,
        "--password-stdin",
        "--database-url",
        url,
    ]);
    assert!(!run_with_stdin(&mut add_dev, "too short\n").status.success());
    let out = run_with_stdin(&mut add_dev, "a long enough passphrase\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        dev["password"],
        serde_json::Value::Null,
        "a password typed in is not shown"
    );

    let id = admin["userId"].to_string();
    ok(&["disable", &id]);
    let reset = ok(&["reset-password", &id]);
    let new_password = reset["password"].as_str().unwrap();
    let stored = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.disabled);
    assert!(kassa_server::passwords::verify(
        new_password,
        stored.password_hash.expose()
    ));
    assert!(!kassa_server::passwords::verify(
        &password,
        stored.password_hash.expose()
    ));
    let listed = user(&["list"]);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(
        !text.contains("argon2") && !text.contains(new_password),
        "{text}"
    );
    assert_eq!(json(&text).as_array().unwrap().len(), 2);
    // A second factor from the command line: the URI shown once, the secret stored sealed.
    let enrolled = ok(&["totp-enrol", &id]);
    let uri = enrolled["otpauthUri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/kassa%3Aops%40psp.example?secret="),
        "{uri}"
    );
    let secret = &uri[uri.find("secret=").unwrap() + 7..uri.find("&issuer").unwrap()];
    let stored = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.totp_secret.unwrap();
    assert!(sealed.expose().starts_with("sealed:") && !sealed.expose().contains(secret));
    assert!(!user(&["totp-enrol", "999"]).status.success());
    ok(&["totp-remove", &id]);
    let removed = store
        .user_by_email("ops@psp.example")
        .await
        .unwrap()
        .unwrap();
    assert!(removed.totp_secret.is_none());
    let log = store.audit_entries(10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.totp-remove",
            "user.totp-enrol",
            "user.reset-password",
            "user.disable",
            "user.add",
            // The merchant the merchant's user belongs to, made on the command line too.
            "merchant.create",
            "user.add"
        ]
    );
    assert!(
        log.iter()
            .all(|e| e.actor.starts_with("cli:") && e.source == "cli")
    );
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    operator_commands,
    demo_flow,
    order_and_sandbox_commands,
    pix_settings,
    users_from_the_command_line,
);

#[test]
fn configuration_precedence_flag_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let config = dir.path().join("kassa.toml");
    std::fs::write(&config, format!("database_url = \"{}\"\n", db("file.db"))).unwrap();
    let platform_of = |command: &mut Command| run_ok(command);

    // The file alone.
    let from_file = platform_of(kassa(&["keys", "platform", "--config"]).arg(&config));
    assert!(dir.path().join("file.db").exists());
    // The environment beats the file.
    let from_env = platform_of(
        kassa(&["keys", "platform", "--config"])
            .arg(&config)
            .env("KASSA_DATABASE_URL", db("env.db")),
    );
    assert!(dir.path().join("env.db").exists());
    assert_ne!(
        from_env, from_file,
        "another database has another platform key"
    );
    // The flag beats both.
    platform_of(
        kassa(&[
            "keys",
            "platform",
            "--database-url",
            &db("flag.db"),
            "--config",
        ])
        .arg(&config)
        .env("KASSA_DATABASE_URL", db("env.db")),
    );
    assert!(dir.path().join("flag.db").exists());
    // The environment names the config file too.
    let via_env_config = platform_of(kassa(&["keys", "platform"]).env("KASSA_CONFIG", &config));
    assert_eq!(via_env_config, from_file);

    std::fs::write(&config, "databse_url = \"x\"\n").unwrap();
    let typo = kassa(&["keys", "platform", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("databse_url"));
}

/// The bench instrument keeps working and reports every field its interface promises (short
/// runs: figures are not judged here, only their presence).
#[test]
fn the_bench_plain_client_counts_no_failed_post_as_a_fast_one() {
    // A port nothing listens on: every post fails, and the reference must say so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let receiver = format!("http://{}/notify", closed.local_addr().unwrap());
    drop(closed);
    // The reference (reqwest) and kassa's own delivery client alike.
    for client in ["reqwest", "kassa"] {
        let args = ["--receiver", &receiver, "--count", "20", "--client", client];
        let out = kassa(&["plain-client"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{client}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("20 of 20 posts"), "{client}: {stderr}");
        assert!(out.stdout.is_empty(), "{client}: {out:?}");
    }
    let out = kassa(&["plain-client", "--receiver", &receiver, "--count", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn bench_reports_every_promised_field() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--scenario", "create", "--rate", "40"],
        vec!["--scenario", "query", "--connections", "2"],
        vec![
            "--scenario",
            "callbacks",
            "--backlog",
            "200",
            "--rounds",
            "2",
        ],
        vec![
            "--scenario",
            "upstream",
            "--connections",
            "2",
            "--awaiting",
            "50",
        ],
        vec!["--scenario", "pay", "--connections", "2", "--rounds", "1"],
        vec!["--scenario", "report", "--preload", "3000"],
        vec!["--scenario", "backoffice", "--preload", "3000"],
        vec!["--scenario", "limit", "--connections", "2", "--rounds", "1"],
        vec!["--scenario", "prune", "--preload", "3000", "--rounds", "1"],
        vec![
            "--scenario",
            "preloaded",
            "--preload",
            "3000",
            "--rounds",
            "1",
            "--connections",
            "2",
        ],
    ] {
        let mut command = kassa(&["bench", "--duration", "1", "--json"]);
        command.args(&args).current_dir(dir.path());
        let line = run_ok(&mut command);
        let report = json(line.lines().next().unwrap());
        for field in [
            "scenario",
            "requests_per_second",
            "errors",
            "server_cpu_us_per_request",
            "server_peak_rss_mb",
            "crypto_floor_us",
            "cpu_to_floor_ratio",
        ] {
            assert!(
                report.get(field).is_some(),
                "{args:?}: no {field} in {report}"
            );
        }
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(report["latency_ms"][p].is_number(), "{args:?}: {report}");
        }
        assert_eq!(report["errors"], 0, "{args:?}: {report}");
        assert!(
            report["requests_per_second"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        assert!(
            report["server_peak_rss_mb"].as_f64().unwrap() > 1.0,
            "{report}"
        );
        if report["scenario"] == "create-kassa" {
            // Measured against the null gateway in the same run.
            let ratio = report["rps_to_null"].as_f64().unwrap();
            assert!(ratio > 0.0, "{report}");
            assert!(report["cpu_to_null"].as_f64().unwrap() > 0.0, "{report}");
            // Each round against its own baseline too: the median lies within min and max.
            for field in ["rps_to_null_by_round", "cpu_to_null_by_round"] {
                let by_round = &report[field];
                let [min, median, max] = ["min", "median", "max"].map(|k| by_round[k].as_f64());
                let (min, median, max) = (min.unwrap(), median.unwrap(), max.unwrap());
                assert!(
                    0.0 < min && min <= median && median <= max,
                    "{field}: {report}"
                );
            }
            // How idle the cores were in both servers' runs: a share of the machine.
            for field in ["machine_idle_pct", "baseline_machine_idle_pct"] {
                let idle = report[field].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&idle), "{field}: {report}");
            }
        }
        if report["scenario"] == "callbacks" {
            // Against a plain client posting the same bodies, in the same run.
            assert!(
                report["to_plain_client"].as_f64().unwrap() > 0.0,
                "{report}"
            );
            assert_eq!(report["rounds"], 2, "{report}");
            let by_round = report["to_plain_client_by_round"]["median"].as_f64();
            assert!(by_round.unwrap() > 0.0, "{report}");
            // The reference client ran in a process of its own, and in the receiver's too;
            // kassa's delivery client alone in a process of its own.
            for field in [
                "plain_client_per_second",
                "plain_client_in_process_per_second",
                "kassa_client_per_second",
                "to_kassa_client",
            ] {
                assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
            }
            // Each side's CPU per post: kassa's receiver during its drain, the two reference
            // clients in their processes, the receiver while the plain client posts.
            for field in [
                "receiver_cpu_us_per_delivery",
                "plain_client_cpu_us_per_post",
                "kassa_client_cpu_us_per_post",
                "receiver_cpu_us_per_plain_post",
            ] {
                assert!(report[field].as_f64().unwrap() >= 0.0, "{field}: {report}");
            }
            // How idle the cores were during kassa's drains and the plain client's posts.
            for field in ["machine_idle_pct", "plain_client_machine_idle_pct"] {
                let idle = report[field].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&idle), "{field}: {report}");
            }
            // The store's share of a delivery, measured without HTTP.
            for field in [
                "store_claim_cpu_us_per_callback",
                "store_record_cpu_us_per_callback",
            ] {
                assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
            }
        }
        if report["scenario"] == "create" {
            // SQLite's writer thread: every create is written by it.
            assert!(report["writer_cpu_us_per_request"].is_i64(), "{report}");
            let calls = report["writer_write_calls_per_request"].as_f64().unwrap();
            assert!(calls > 0.0, "{report}");
            let bytes = report["writer_bytes_written_per_request"].as_i64().unwrap();
            assert!(bytes > 1_000, "{report}");
        }
        if args[1] == "preloaded" {
            assert_eq!(report["scenario"], "create-preloaded", "{report}");
        }
        if report["scenario"] == "create-preloaded" {
            // Against a server on an empty database, in the same run.
            assert!(report["rps_to_empty"].as_f64().unwrap() > 0.0, "{report}");
            assert!(report["cpu_to_empty"].as_f64().unwrap() > 0.0, "{report}");
            assert_eq!(report["preloaded"], 3_000, "{report}");
        }
        if report["scenario"] == "create-pruning" {
            // Archived while the load ran, against a server that was not archiving.
            assert!(report["rps_to_idle"].as_f64().unwrap() > 0.0, "{report}");
            let rate = report["orders_archived_per_second"].as_f64().unwrap();
            assert!(rate > 0.0, "{report}");
            let archived = report["archived_in_run"].as_i64().unwrap();
            assert!(archived > 0, "{report}");
            assert_eq!(report["left_to_archive"], 3_000 - archived, "{report}");
        }
        if report["scenario"] == "pay-with-books" {
            let ratio = report["rps_with_to_without_books"].as_f64().unwrap();
            assert!(ratio > 0.0, "{report}");
        }
        if report["scenario"] == "report" {
            // The header, two totals and a line per order.
            assert!(
                report["report_bytes"].as_u64().unwrap() > 3_000 * 60,
                "{report}"
            );
        }
        if report["scenario"] == "backoffice-list" {
            let filters = report["by_filter"].as_object().unwrap();
            assert_eq!(filters.len(), 10, "{report}");
            assert!(
                filters.values().all(|f| f["p99_ms"].is_number()),
                "{report}"
            );
            let export = json(line.lines().nth(1).unwrap());
            assert_eq!(export["scenario"], "backoffice-export", "{export}");
            assert!(
                export["export_bytes"].as_u64().unwrap() > 3_000 * 60,
                "{export}"
            );
        }
        if report["scenario"] == "upstream-create" {
            assert!(
                report["awaiting_reconciliation"].as_i64().unwrap() >= 50,
                "{report}"
            );
            assert!(
                report["upstream_cpu_us_per_request"].is_number(),
                "{report}"
            );
            let memory = &report["gateway_rss_mb_awaiting"];
            assert!(
                memory["after_reconciling"].as_f64().unwrap() > 1.0,
                "{report}"
            );
        }
    }
}

/// A shop (one EUR app and its merchant key) on a fresh SQLite database, served with
/// `KASSA_LOG=level` and `args`, its log written to a file.
struct LoggedShop {
    dir: tempfile::TempDir,
    url: String,
    app_id: i64,
    key: kassa_signature::SigningKey,
    server: common::Served,
}

impl LoggedShop {
    fn serve(level: &str, args: &[&str]) -> LoggedShop {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let (app_id, key) = create_shop(&url, "EUR", dir.path());
        let mut command = kassa(&["serve", "--listen", "127.0.0.1:0", "--database-url", &url]);
        command.args(args).env("KASSA_LOG", level);
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let server = serve_with(command, dir.path(), log);
        LoggedShop {
            dir,
            url,
            app_id,
            key,
            server,
        }
    }

    /// Stops the server (killed and reaped) and reads everything it logged.
    fn stop_and_read_log(self) -> String {
        drop(self.server);
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap()
    }
}

/// Even at debug level the server's logs hold no payer's name, e-mail or phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_hold_no_personal_data() {
    let shop = LoggedShop::serve("debug", &["--allow-private-callbacks"]);
    let (app_id, key, url) = (shop.app_id, &shop.key, shop.url.clone());
    let base = shop.server.base.clone();
    let (name, email, phone) = (
        "Wilhelmina Vandersloot",
        "wilhelmina.vandersloot@example.nl",
        "+31687654321",
    );
    let mut body = serde_json::json!({
        "appId": app_id, "orderId": "PII-1", "name": name, "phone": phone, "email": email,
        "amount": "25.00", "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
        "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
        "notifyUrl": "http://127.0.0.1:9/notify", "partnerUserId": "u1",
    })
    .as_object()
    .unwrap()
    .clone();
    kassa_signature::sign_map(key, &mut body);
    let client = reqwest::Client::new();
    let reply: serde_json::Value = client
        .post(format!("{base}/eur/collect/apply"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
    // A retry, a bad request with the same data, a page view and a payment: every path logs.
    client
        .post(format!("{base}/eur/collect/apply"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut tampered = body.clone();
    tampered.insert("amount".into(), "26.00".into());
    client
        .post(format!("{base}/eur/collect/apply"))
        .json(&tampered)
        .send()
        .await
        .unwrap();
    client.get(&pay_url).send().await.unwrap();
    let order_no = reply["data"]["orderNo"].as_str().unwrap();
    let mut pay = kassa(&[
        "sandbox",
        "pay",
        order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ]);
    run_ok(pay.env("KASSA_LOG", "debug"));
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await; // the callback is attempted
    let log = shop.stop_and_read_log();
    assert!(
        log.contains("order created") && log.contains("DEBUG"),
        "debug logs were written: {log}"
    );
    for secret in [name, "Vandersloot", email, "wilhelmina", phone, "687654321"] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    // Written to a file, not a terminal: no colour codes in the text.
    assert!(!log.contains('\u{1b}'), "escape codes in a log file: {log}");
}

#[test]
fn serve_refuses_an_unknown_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let out = kassa(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--timezone",
        "Mars/Olympus",
        "--database-url",
        &url,
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone"));
}

#[test]
fn pix_decode_prints_fields_and_the_crc_verdict() {
    let example = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    let out = run_ok(&mut kassa(&["pix", "decode", example]));
    assert!(
        out.contains("26\n  00 br.gov.bcb.pix\n  01 123e4567-e12b-12d1-a456-426655440000"),
        "{out}"
    );
    assert!(out.contains("59 Fulano de Tal"));
    assert!(
        out.trim_end()
            .ends_with("63 1D3D (computed 1D3D: the CRC holds)"),
        "{out}"
    );
    let corrupted = example.replace("1D3D", "1D3E");
    let out = kassa(&["pix", "decode", &corrupted]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("does NOT hold"));
    let garbage = kassa(&["pix", "decode", "hello"]).output().unwrap();
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("not a BR Code"));
    // Without an argument the code comes from standard input, spaces and all.
    let mut piped = kassa(&["pix", "decode"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = piped.stdin.take().unwrap();
    stdin.write_all(format!("{example}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = piped.wait_with_output().unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("59 Fulano de Tal") && shown.contains("the CRC holds"),
        "{shown}"
    );
}

#[test]
fn migrate_creates_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/dir/kassa.db").display()
    );
    let out = run_ok(&mut kassa(&["migrate", "--database-url", &url]));
    assert_eq!(out.trim(), "database is up to date");
    let path = dir.path().join("nested/dir/kassa.db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database holds the platform key");
    }
    let bad = kassa(&["migrate", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

#[test]
fn sign_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(
        &key,
        kassa_signature::SigningKey::generate()
            .unwrap()
            .to_pkcs8_pem(),
    )
    .unwrap();
    for bad in ["{", "[1]", r#"{"a":{"b":1}}"#] {
        let out = run_with_stdin(kassa(&["sign", "--key"]).arg(&key), bad);
        assert!(!out.status.success(), "{bad}");
    }
    let missing = kassa(&["sign", "--key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// The connection and request limits reach the running server from the TOML file, and a zero
/// timeout is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_its_limits_from_the_config_file() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let (app_id, key) = create_shop(&url, "EUR", dir.path());
    let config = dir.path().join("kassa.toml");
    std::fs::write(
        &config,
        "header_read_timeout = \"300ms\"\napp_rate_limit = 2\nmax_connections = 64\n",
    )
    .unwrap();
    let config_text = config.display().to_string();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--config",
        &config_text,
    ];
    let server = serve(&args, dir.path());

    // An idle connection is closed after the header-read timeout.
    let address = server.base.trim_start_matches("http://");
    let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        idle.read_to_end(&mut sink),
    )
    .await;
    assert!(closed.is_ok(), "the idle connection stayed open");

    // Two queries a second for the app; the third is refused with 429.
    let mut body = serde_json::json!({"appId": app_id, "orderId": "none"})
        .as_object()
        .unwrap()
        .clone();
    kassa_signature::sign_map(&key, &mut body);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(format!("{}/eur/collect/query", server.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 429]);
    drop(server);

    let refused = kassa(&[
        "serve",
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--request-timeout",
        "0s",
    ])
    .output()
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--request-timeout"));
}

/// The `payTime` of an order's latest callback, as `kassa callback list` shows it.
fn callback_pay_time(url: &str, order_no: &str) -> String {
    let listed = json(&run_ok(&mut kassa(&[
        "callback",
        "list",
        "--order",
        order_no,
        "--database-url",
        url,
    ])));
    let callbacks = listed["callbacks"].as_array().unwrap();
    let body = callbacks.last().unwrap()["body"].as_str().unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    body["payTime"].as_str().unwrap().to_string()
}

/// The milliseconds of an RFC 3339 time an operator command printed.
fn at_ms(printed: &serde_json::Value) -> i64 {
    let text = printed
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {printed}"));
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// `kassa serve --timezone` keeps the operator's zone in the database, and the operator's
/// commands date callbacks in it as the server does (they used UTC whatever the server said).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_date_in_the_operators_zone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let (app_id, _) = create_shop(&url, "EUR", dir.path());
    let args = ["serve", "--listen", "127.0.0.1:0", "--database-url", &url];
    drop(serve(
        &[&args[..], &["--timezone", "Asia/Tokyo"]].concat(),
        dir.path(),
    ));
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let in_tokyo = |ms: i64| {
        let at = jiff::Timestamp::from_millisecond(ms).unwrap();
        at.to_zoned(tokyo.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let hook = Some("https://shop.example/hook");

    let paid_no = insert_order_notifying(&url, app_id, "TZ-paid", hook).await;
    let pay = [
        "sandbox",
        "pay",
        &paid_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ];
    let paid = json(&run_ok(&mut kassa(&pay)));
    let paid_at_ms = at_ms(&paid["paidAt"]);
    let printed = paid["paidAt"].as_str().unwrap();
    assert!(
        printed.ends_with("+09:00"),
        "dated in the operator's zone: {printed}"
    );
    assert_eq!(callback_pay_time(&url, &paid_no), in_tokyo(paid_at_ms));

    let resolved_no = insert_order_notifying(&url, app_id, "TZ-resolved", hook).await;
    // `kassa trigger` is `kassa sandbox pay` by a shorter name.
    let exception = ["trigger", &resolved_no, "--outcome", "exception"];
    run_ok(kassa(&exception).args(["--database-url", &url]));
    let resolve = [
        "order",
        "resolve",
        &resolved_no,
        "--succeed",
        "--database-url",
        &url,
    ];
    let resolved = json(&run_ok(&mut kassa(&resolve)));
    let resolved_at_ms = at_ms(&resolved["paidAt"]);
    assert_eq!(
        callback_pay_time(&url, &resolved_no),
        in_tokyo(resolved_at_ms)
    );

    // A later start without the option keeps the zone; the commands still agree with it.
    drop(serve(&args, dir.path()));
    let later_no = insert_order_notifying(&url, app_id, "TZ-later", hook).await;
    let pay = [
        "sandbox",
        "pay",
        &later_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ];
    let later = json(&run_ok(&mut kassa(&pay)));
    let later_at_ms = at_ms(&later["paidAt"]);
    assert_eq!(callback_pay_time(&url, &later_no), in_tokyo(later_at_ms));
}

/// A one-shot command whose reader goes away (`kassa … | head`) ends by SIGPIPE, silently,
/// not with a panic and a backtrace.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    run_ok(&mut kassa(&["openapi"]));
    // A command without a database takes no database options.
    let refused = kassa(&["openapi", "--database-url", &url])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let mut child = kassa(&["openapi"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first write
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

/// A database kassa cannot reach is reported at once with its cause, not after the pool's
/// timeout as "pool timed out".
#[test]
fn an_unreachable_database_is_reported_with_its_cause() {
    let started = std::time::Instant::now();
    let out = kassa(&[
        "migrate",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/test",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// `/readyz` says whether a node should get traffic: ready when serving; on SIGTERM it turns
/// 503 first while requests are still served (`--drain-period`), then the node stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_off_before_the_node_stops() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let args = ["serve", "--listen", "127.0.0.1:0", "--database-url", &url];
    let server = serve(&[&args[..], &["--drain-period", "3s"]].concat(), dir.path());
    let client = reqwest::Client::new();
    let get = async |path: &str| {
        let response = client.get(format!("{}{path}", server.base)).send().await;
        response.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!((get("/readyz").await, get("/healthz").await), (200, 200));
    // SAFETY: a signal to a child process this test started and still owns.
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(get("/readyz").await, 503, "draining");
    assert_eq!(get("/healthz").await, 200, "still serving while draining");
}

/// The servers `kassa bench` starts exit by themselves on SIGTERM, and successfully: the bench
/// ends them so, and a build instrumented for profile-guided optimisation (tools/perf/pgo.sh)
/// writes a process's counts only as it exits.
#[test]
fn the_bench_servers_exit_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let args = ["serve", "--listen", "127.0.0.1:0", "--drain-period", "0s"];
    let server = serve(&[&args[..], &["--database-url", &url]].concat(), dir.path());
    let key = kassa_signature::SigningKey::generate().unwrap();
    let (merchant, platform) = (dir.path().join("m.pem"), dir.path().join("p.pem"));
    std::fs::write(&merchant, key.public_key_pem()).unwrap();
    std::fs::write(&platform, key.to_pkcs8_pem()).unwrap();
    let child = kassa(&["null-gateway", "--merchant-key"])
        .arg(&merchant)
        .arg("--platform-key")
        .arg(&platform)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Owned by a `Served` at once, so that a failed assertion still kills and reaps it.
    let mut null_gateway = common::Served {
        child,
        base: String::new(),
        admin: String::new(),
        stdout_lines: Vec::new(),
    };
    use std::io::BufRead;
    let mut line = String::new();
    let stdout = null_gateway.child.stdout.take().unwrap();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("null gateway listening on "), "{line}");
    let mut served = server;
    for (name, child) in [
        ("kassa serve", &mut served.child),
        ("null-gateway", &mut null_gateway.child),
    ] {
        // SAFETY: a signal to a child process this test started and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name} did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "{name} exited with {status}");
    }
}

/// `--log-format json`: every line is one JSON object; every line of a request carries its
/// request id (the client's when sane, echoed in `X-Request-Id`; a fresh one otherwise); no
/// payer's data appears unmasked. At info the formatter names the request from its task; with
/// debug lines on, a span does (kassa-server's request_id.rs): both are read here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_personal_data() {
    json_logs_at("info").await;
    json_logs_at("debug").await;
}

async fn json_logs_at(level: &str) {
    let shop = LoggedShop::serve(
        level,
        &["--log-format", "json", "--allow-private-callbacks"],
    );
    let (app_id, key, server) = (shop.app_id, &shop.key, &shop.server);
    // The merchant's endpoint: acknowledges, and keeps the request id each callback carries.
    let (notify_tx, mut notified) = tokio::sync::mpsc::unbounded_channel::<String>();
    let receiver = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let id = headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_string());
            let _ = notify_tx.send(id.unwrap_or_default());
            "success"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify_url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let (name, email, phone) = ("Johanna Blaauwbroek", "johanna@example.nl", "+31612398765");
    let mut body = serde_json::json!({
        "appId": app_id, "orderId": "JSON-1", "name": name, "phone": phone, "email": email,
        "amount": "25.00", "payType": "BANK_TRANSFER", "inBankCode": "IDEAL_EUR",
        "callBackUrl": "https://shop.example/ok", "callBackFailUrl": "https://shop.example/fail",
        "notifyUrl": notify_url, "partnerUserId": "u1",
    })
    .as_object()
    .unwrap()
    .clone();
    kassa_signature::sign_map(key, &mut body);
    let client = reqwest::Client::new();
    let post = |request_id: String| {
        client
            .post(format!("{}/eur/collect/apply", server.base))
            .header("x-request-id", request_id)
            .json(&body)
            .send()
    };
    let created = post("shop-req-42".into()).await.unwrap();
    assert_eq!(created.headers()["x-request-id"], "shop-req-42");
    let insane = post("x".repeat(200)).await.unwrap();
    let replaced = insane.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        replaced.len() <= 128 && !replaced.contains("xxxx"),
        "{replaced}"
    );
    // The rest of the order's life: the payer opens the page and pays; the merchant is told.
    let reply: serde_json::Value = created.json().await.unwrap();
    let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
    let page = client
        .get(&pay_url)
        .header("x-request-id", "payer-view-7")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the bank page has its form");
    let paid = client
        .post(format!("{pay_url}/outcome"))
        .header("x-request-id", "payer-pay-8")
        .header("origin", &server.base)
        .form(&[("csrf", csrf), ("outcome", "paid")])
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success() || paid.status().is_redirection());
    let told = tokio::time::timeout(std::time::Duration::from_secs(10), notified.recv())
        .await
        .expect("the callback arrives")
        .unwrap();
    assert_eq!(
        told, "payer-pay-8",
        "the callback carries the paying request's id"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = shop.stop_and_read_log();
    let (mut of_the_request, mut changes_seen, mut attempts_seen) = (0, 0, 0);
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(entry.get(field).is_some(), "{field} missing: {line}");
        }
        let ids: Vec<&str> = entry["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|span| span["request_id"].as_str())
            .collect();
        if ids.contains(&"shop-req-42") {
            of_the_request += 1;
        }
        if entry["fields"]["message"] == "order created" {
            assert_eq!(
                ids,
                ["shop-req-42"],
                "the creation is logged with its request: {line}"
            );
        }
        if entry["fields"]["message"] == "order changed" && entry["fields"]["to"] == "succeeded" {
            assert_eq!(
                ids,
                ["payer-pay-8"],
                "the payment is logged with its request: {line}"
            );
            changes_seen += 1;
        }
        if entry["fields"]["message"] == "callback attempt" {
            assert_eq!(entry["fields"]["request_id"], "payer-pay-8", "{line}");
            attempts_seen += 1;
        }
        for secret in [name, "Blaauwbroek", email, phone, "612398765"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
    // At info the creation is the request's one line; debug adds its look-ups and attempt.
    let (least, attempts) = if level == "debug" { (2, 1) } else { (1, 0) };
    assert!(
        of_the_request >= least,
        "the request's lines carry its id:\n{log}"
    );
    assert_eq!((changes_seen, attempts_seen), (1, attempts), "{log}");
}

/// Text logs at info, the default: a request's line names the request as its span once did,
/// between the level and the target; a line of no request names none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_name_the_request_of_a_line() {
    let shop = LoggedShop::serve("info", &[]);
    let mut body = eur_order_body(shop.app_id, "TEXT-1", "25.00", None);
    kassa_signature::sign_map(&shop.key, body.as_object_mut().unwrap());
    let created = reqwest::Client::new()
        .post(format!("{}/eur/collect/apply", shop.server.base))
        .header("x-request-id", "shop-req-7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let log = shop.stop_and_read_log();
    let created_line = log
        .lines()
        .find(|line| line.contains("order created"))
        .unwrap_or_else(|| panic!("no creation logged:\n{log}"));
    let named = " INFO request{request_id=shop-req-7 method=POST path=/eur/collect/apply}: \
        kassa_server::dialect: order created ";
    assert!(created_line.contains(named), "{created_line}");
    let ready = log
        .lines()
        .find(|line| line.contains("database ready"))
        .unwrap_or_else(|| panic!("no start logged:\n{log}"));
    assert!(
        ready.contains(" INFO kassa::serve: database ready"),
        "{ready}"
    );
}

/// `serve` on a database without merchants says what to do next; with one it does not.
#[test]
fn serve_without_merchants_says_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let args = ["serve", "--listen", "127.0.0.1:0", "--database-url", &url];
    let empty = serve(&args, dir.path());
    let printed = empty.stdout_lines.join("");
    assert!(printed.contains("No merchant yet"), "{printed}");
    assert!(printed.contains("merchant create --name"), "{printed}");
    drop(empty);
    create_shop(&url, "EUR", dir.path());
    let later = serve(&args, dir.path());
    assert!(!later.stdout_lines.join("").contains("No merchant yet"));
}

/// The bundled SQLite syncs its commits with `fdatasync`, as SQLite's own configured builds do
/// on Linux (`.cargo/config.toml` sets `HAVE_FDATASYNC`): without the flag every sync would be
/// an `fsync`, which also writes the file's times. Counted with strace around a migration, whose
/// commits are SQLite's only syncs in that process.
#[test]
fn sqlite_commits_sync_with_fdatasync() {
    let strace = std::path::Path::new("/usr/bin/strace");
    if !strace.exists() {
        eprintln!("skipped: strace is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let migrate = kassa(&["migrate", "--database-url", &url]);
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(migrate.get_program())
        .args(migrate.get_args());
    for (name, value) in migrate.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    run_ok(&mut command);
    let calls = std::fs::read_to_string(&trace).unwrap();
    let count = |name: &str| {
        let call = format!(" {name}(");
        calls.lines().filter(|line| line.contains(&call)).count()
    };
    assert!(count("fdatasync") > 0, "no fdatasync in:\n{calls}");
    assert_eq!(count("fsync"), 0, "an fsync in:\n{calls}");
}

/// The server's runtime threads run with short time slices (`kassa_store::scheduling::SHORT_SLICE`), so a
/// thread that wakes on the same cores — the SQLite writer, a database's process — preempts a
/// worker that is signing sooner. Where the kernel keeps no custom slices (before Linux 6.12)
/// or shows none, the test says so and checks nothing.
#[test]
fn the_runtime_threads_run_with_short_slices() {
    if let Err(why) = kassa_store::testing::custom_slices_kept() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let server = serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    let tasks = std::path::PathBuf::from(format!("/proc/{}/task", server.child.id()));
    let workers: Vec<Option<u64>> = std::fs::read_dir(tasks)
        .unwrap()
        .map(|task| task.unwrap().path())
        .filter(|task| {
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            name.trim() == "tokio-rt-worker"
        })
        .map(|task| kassa_store::testing::thread_slice_ns(&task))
        .collect();
    assert!(!workers.is_empty(), "no runtime worker thread found");
    if workers.iter().all(Option::is_none) {
        eprintln!("skipped: this kernel shows no time slices (se.slice)");
        return;
    }
    let short = kassa_store::scheduling::SHORT_SLICE.as_nanos() as u64;
    assert!(
        workers.iter().all(|slice| *slice == Some(short)),
        "the workers' slices: {workers:?}"
    );
}
