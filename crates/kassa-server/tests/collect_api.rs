//! End-to-end tests of the `collect` dialect over real HTTP on loopback, against SQLite and
//! PostgreSQL: happy paths, replays, concurrency, and every bad input of the specification
//! (each answered in the envelope with its code, and nothing stored).

mod common;

use common::*;
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::sync::Arc;

async fn apply_and_query(server: Server) {
    let (status, reply) = server
        .post("/eur/collect/apply", &server.apply_body("M-1"))
        .await;
    assert_eq!(status, 200);
    let data = server.verified_data(&reply);
    assert_eq!(data["orderId"], "M-1");
    let order_no = data["orderNo"].as_str().unwrap().to_string();
    assert_eq!(order_no.len(), 16);
    let pay_url = data["payUrl"].as_str().unwrap();
    assert!(
        pay_url.starts_with(&format!("{}/pay/", server.base)),
        "{pay_url}"
    );
    assert!(
        !pay_url.contains(&order_no),
        "the page URL must not reveal the order number"
    );

    let query = json!({"appId": server.eur.0, "orderId": "M-1"});
    let (status, reply) = server.post("/eur/collect/query", &query).await;
    assert_eq!(status, 200);
    let data = server.verified_data(&reply);
    assert_eq!(data["orderNo"], order_no.as_str());
    assert_eq!(data["amount"], "25.00");
    assert_eq!(data["actualAmount"], "0.00");
    assert_eq!(data["fee"], "0.00");
    assert_eq!(data["status"], 0);
    assert!(data.get("payTime").is_none() && data.get("errorMsg").is_none());

    let by_no = json!({"appId": server.eur.0, "orderId": "M-1", "orderNo": order_no});
    let (status, reply) = server.post("/eur/collect/query", &by_no).await;
    assert_eq!(status, 200);
    assert_eq!(server.verified_data(&reply)["orderNo"], order_no.as_str());

    // The stored order holds what was sent.
    let stored = server
        .store
        .order_by_merchant_order_id(server.eur, "M-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.amount_minor.0, 2_500);
    assert_eq!(
        stored.payer.as_ref().unwrap().email.expose(),
        "maria@example.nl"
    );
    assert_eq!(stored.country.as_deref(), Some("528"));
    assert_eq!(
        stored.notify_url.as_deref(),
        Some("https://shop.example/notify")
    );
}

async fn non_cashier_methods(server: Server) {
    for (currency, app, method, pay_type, amount) in [
        ("usd", server.usd, "IDEAL_USD", "BANK_TRANSFER", "1000"),
        ("usd", server.usd, "GOOGLE_PAY", "EWALLET", "0.99"),
        ("usd", server.usd, "APPLE_PAY", "EWALLET", "10.5"),
        ("eur", server.eur, "BANCOMATPAY_EUR", "EWALLET", "1"),
        ("eur", server.eur, "EPS_EUR", "BANK_TRANSFER", "500.00"),
    ] {
        let mut body = server.apply_body(&format!("{method}-1"));
        body["appId"] = json!(app.0);
        body["inBankCode"] = json!(method);
        body["payType"] = json!(pay_type);
        body["amount"] = json!(amount);
        body.as_object_mut().unwrap().remove("country");
        let (status, reply) = server
            .post(&format!("/{currency}/collect/apply"), &body)
            .await;
        assert_eq!(status, 200, "{method}: {reply}");
        server.verified_data(&reply);
    }
}

async fn replays_and_duplicates(server: Server) {
    let body = server.apply_body("M-replay");
    let (_, first) = server.post("/eur/collect/apply", &body).await;
    let (status, second) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200);
    assert_eq!(first, second, "an identical retry gets the identical reply");

    let mut changed = body.clone();
    changed["amount"] = json!("26.00");
    let reply = server.post("/eur/collect/apply", &changed).await;
    assert_error(&reply, 409, "50000001", "M-replay");

    // An identical retry still works after the operator tightened the limits.
    let limits =
        kassa_core::AmountLimits::new(kassa_core::AmountMinor(100), kassa_core::AmountMinor(200));
    server
        .store
        .set_app_limits(server.eur, Some(limits), 2, None)
        .await
        .unwrap();
    let (status, third) = server.post("/eur/collect/apply", &body).await;
    assert_eq!((status, &third), (200, &first));
    let reply = server
        .post("/eur/collect/apply", &server.apply_body("M-new"))
        .await;
    assert_error(&reply, 400, "30000004", "amount");
}

async fn concurrent_identical_requests_create_one_order(server: Server) {
    let server = Arc::new(server);
    let body = signed(&server.apply_body("M-race"), merchant_key());
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let server = server.clone();
            let body = body.clone();
            tokio::spawn(async move { server.post_raw("/eur/collect/apply", body).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        let (status, text) = task.await.unwrap();
        assert_eq!(status, 200, "{text}");
        replies.push(text);
    }
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "every racer gets the same reply"
    );
    let stored = server
        .store
        .order_by_merchant_order_id(server.eur, "M-race")
        .await
        .unwrap()
        .unwrap();
    assert!(replies[0].contains(stored.order_no.as_str()));
}

/// Every bad input of the specification: the code, the HTTP status, a message naming the
/// field, and no order stored.
async fn bad_inputs_are_refused_and_nothing_is_stored(server: Server) {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let set = |field: &'static str, value: Value| -> Mutation {
        Box::new(move |body: &mut Value| body[field] = value.clone())
    };
    let remove = |field: &'static str| -> Mutation {
        Box::new(move |body: &mut Value| {
            body.as_object_mut().unwrap().remove(field);
        })
    };
    let usd_app = server.usd.0;
    let cases: Vec<(&str, &str, Mutation, u16, &str, &str)> = vec![
        (
            "appId as string",
            "eur",
            set("appId", json!("1001")),
            400,
            "10000002",
            "appId",
        ),
        (
            "amount as number",
            "eur",
            set("amount", json!(300)),
            400,
            "10000002",
            "amount",
        ),
        (
            "name missing",
            "eur",
            remove("name"),
            400,
            "10000003",
            "name",
        ),
        (
            "email empty",
            "eur",
            set("email", json!("")),
            400,
            "10000003",
            "email",
        ),
        (
            "phone null",
            "eur",
            set("phone", Value::Null),
            400,
            "10000003",
            "phone",
        ),
        (
            "partnerUserId missing",
            "eur",
            remove("partnerUserId"),
            400,
            "10000003",
            "partnerUserId",
        ),
        (
            "callBackUrl missing",
            "eur",
            remove("callBackUrl"),
            400,
            "10000003",
            "callBackUrl",
        ),
        (
            "name with a direction override",
            "eur",
            set("name", json!("Jane\u{202E}gnp.exe")),
            400,
            "10000005",
            "name",
        ),
        (
            "subject with a line separator",
            "eur",
            set("subject", json!("one\u{2028}two")),
            400,
            "10000005",
            "subject",
        ),
        (
            "unknown appId: answered like a wrong sign",
            "eur",
            set("appId", json!(999_999)),
            401,
            "20000003",
            "999999",
        ),
        (
            "app of the other currency",
            "eur",
            set("appId", json!(usd_app)),
            400,
            "30000001",
            "USD",
        ),
        (
            "amount 1,000",
            "eur",
            set("amount", json!("1,000")),
            400,
            "10000005",
            "amount",
        ),
        (
            "amount 10.001",
            "eur",
            set("amount", json!("10.001")),
            400,
            "10000005",
            "amount",
        ),
        (
            "amount -5",
            "eur",
            set("amount", json!("-5")),
            400,
            "10000005",
            "amount",
        ),
        (
            "amount 1e3",
            "eur",
            set("amount", json!("1e3")),
            400,
            "10000005",
            "amount",
        ),
        (
            "amount with space",
            "eur",
            set("amount", json!(" 5")),
            400,
            "10000005",
            "amount",
        ),
        (
            "amount 500.01 EUR",
            "eur",
            set("amount", json!("500.01")),
            400,
            "30000004",
            "500.01",
        ),
        (
            "amount 0.99 EUR",
            "eur",
            set("amount", json!("0.99")),
            400,
            "30000004",
            "0.99",
        ),
        (
            "inBankCode USA",
            "eur",
            set("inBankCode", json!("USA")),
            400,
            "10000005",
            "inBankCode",
        ),
        (
            "inBankCode PIX",
            "eur",
            set("inBankCode", json!("PIX")),
            400,
            "10000005",
            "inBankCode",
        ),
        (
            "payType unknown",
            "eur",
            set("payType", json!("CARD")),
            400,
            "10000005",
            "payType",
        ),
        (
            "cashier without country",
            "eur",
            remove("country"),
            400,
            "30000005",
            "country",
        ),
        (
            "unknown country",
            "eur",
            set("country", json!("999")),
            400,
            "10000005",
            "country",
        ),
        (
            "country with no EUR method",
            "eur",
            set("country", json!("616")),
            400,
            "30000005",
            "616",
        ),
        (
            "orderId too long",
            "eur",
            set("orderId", json!("x".repeat(49))),
            400,
            "10000004",
            "orderId",
        ),
        (
            "orderId with space",
            "eur",
            set("orderId", json!("a b")),
            400,
            "10000005",
            "orderId",
        ),
        (
            "subject too long",
            "eur",
            set("subject", json!("s".repeat(129))),
            400,
            "10000004",
            "subject",
        ),
        (
            "name too long",
            "eur",
            set("name", json!("n".repeat(129))),
            400,
            "10000004",
            "name",
        ),
        (
            "callBackUrl ftp",
            "eur",
            set("callBackUrl", json!("ftp://shop.example/x")),
            400,
            "10000005",
            "callBackUrl",
        ),
        (
            "callBackFailUrl relative",
            "eur",
            set("callBackFailUrl", json!("/fail")),
            400,
            "10000005",
            "callBackFailUrl",
        ),
        (
            "notifyUrl javascript",
            "eur",
            set("notifyUrl", json!("javascript:alert(1)")),
            400,
            "10000005",
            "notifyUrl",
        ),
        (
            "notifyUrl too long",
            "eur",
            set(
                "notifyUrl",
                json!(format!("https://x.example/{}", "a".repeat(600))),
            ),
            400,
            "10000004",
            "notifyUrl",
        ),
        (
            "email malformed",
            "eur",
            set("email", json!("not-an-email")),
            400,
            "10000005",
            "email",
        ),
        (
            "phone malformed",
            "eur",
            set("phone", json!("call me")),
            400,
            "10000005",
            "phone",
        ),
        (
            "partnerUserId charset",
            "eur",
            set("partnerUserId", json!("a/b")),
            400,
            "10000005",
            "partnerUserId",
        ),
        (
            "nested object",
            "eur",
            set("body", json!({"a": 1})),
            400,
            "10000001",
            "body",
        ),
        (
            "array value",
            "eur",
            set("subject", json!(["a"])),
            400,
            "10000001",
            "subject",
        ),
    ];
    let mut used_ids = Vec::new();
    for (i, (label, currency, mutate, http, code, field)) in cases.iter().enumerate() {
        let order_id = format!("BAD-{i}");
        let mut body = server.apply_body(&order_id);
        mutate(&mut body);
        if body["orderId"] == json!(order_id) {
            used_ids.push(order_id.clone());
        }
        let reply = server
            .post(&format!("/{currency}/collect/apply"), &body)
            .await;
        eprintln!("{label}: {}", reply.1);
        assert_error(&reply, *http, code, field);
    }

    // USD-specific limits and method rules.
    let mut usd_body = server.apply_body("BAD-usd-low");
    usd_body["appId"] = json!(usd_app);
    usd_body["amount"] = json!("0.98");
    assert_error(
        &server.post("/usd/collect/apply", &usd_body).await,
        400,
        "30000004",
        "0.98",
    );
    let mut wrong_currency_method = server.apply_body("BAD-ideal-usd");
    wrong_currency_method["inBankCode"] = json!("IDEAL_USD");
    wrong_currency_method["payType"] = json!("BANK_TRANSFER");
    assert_error(
        &server
            .post("/eur/collect/apply", &wrong_currency_method)
            .await,
        400,
        "30000002",
        "IDEAL_USD",
    );
    // The seed's tables disagree on the wallets' payType: both are taken (collect-api.md).
    let mut wallet_as_bank = server.apply_body("OK-gpay-bank-transfer");
    wallet_as_bank["appId"] = json!(usd_app);
    wallet_as_bank["inBankCode"] = json!("GOOGLE_PAY");
    wallet_as_bank["payType"] = json!("BANK_TRANSFER");
    let (status, reply) = server.post("/usd/collect/apply", &wallet_as_bank).await;
    assert_eq!(status, 200, "{reply}");
    let mut bank_as_wallet = server.apply_body("BAD-ideal-wallet");
    bank_as_wallet["inBankCode"] = json!("IDEAL_EUR");
    bank_as_wallet["payType"] = json!("EWALLET");
    assert_error(
        &server.post("/eur/collect/apply", &bank_as_wallet).await,
        400,
        "30000003",
        "IDEAL_EUR",
    );
    let mut cashier_with_method = server.apply_body("BAD-cashier-ideal");
    cashier_with_method["inBankCode"] = json!("IDEAL_EUR");
    assert_error(
        &server
            .post("/eur/collect/apply", &cashier_with_method)
            .await,
        400,
        "30000003",
        "IDEAL_EUR",
    );
    used_ids.extend(["BAD-ideal-usd", "BAD-cashier-ideal", "BAD-ideal-wallet"].map(String::from));

    // Signatures.
    let body = server.apply_body("BAD-sign");
    let mut unsigned = body.clone();
    unsigned["sign"] = json!("");
    assert_error(
        &server
            .post_json("/eur/collect/apply", unsigned.to_string())
            .await,
        401,
        "20000001",
        "sign",
    );
    assert_error(
        &server
            .post_json("/eur/collect/apply", body.to_string())
            .await,
        401,
        "20000001",
        "sign",
    );
    let mut malformed = body.clone();
    malformed["sign"] = json!("%%%not base64%%%");
    assert_error(
        &server
            .post_json("/eur/collect/apply", malformed.to_string())
            .await,
        401,
        "20000002",
        "sign",
    );
    let tampered = signed(&body, merchant_key()).replace("25.00", "24.00");
    assert_error(
        &server.post_json("/eur/collect/apply", tampered).await,
        401,
        "20000003",
        "sign",
    );
    assert_error(
        &server
            .post_json("/eur/collect/apply", signed(&body, other_key()))
            .await,
        401,
        "20000003",
        "sign",
    );
    // Signed by the other merchant's key but claiming our app, and the reverse.
    let mut theirs = body.clone();
    theirs["appId"] = json!(server.other_eur.0);
    assert_error(
        &server
            .post_json("/eur/collect/apply", signed(&theirs, merchant_key()))
            .await,
        401,
        "20000003",
        "sign",
    );
    let mut keyless = body.clone();
    keyless["appId"] = json!(server.keyless_eur.0);
    let reply = server.post("/eur/collect/apply", &keyless).await;
    assert_error(&reply, 401, "20000005", "public key");
    used_ids.push("BAD-sign".into());

    // Malformed bodies.
    for (raw, http, code) in [
        ("{\"appId\":", 400, "10000001"),
        ("[1,2]", 400, "10000001"),
        ("", 400, "10000001"),
        ("{\"appId\":1,\"appId\":2}", 400, "10000001"),
    ] {
        let (status, text) = server.post_raw("/eur/collect/apply", raw.to_string()).await;
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, reply["error"].as_str().unwrap()),
            (http, code),
            "{raw}: {text}"
        );
    }
    let (status, text) = server
        .post_raw("/eur/collect/apply", vec![0xff_u8, 0xfe])
        .await;
    assert_eq!(status, 400, "{text}");
    let mut huge = server.apply_body("BAD-huge");
    huge["body"] = json!("x".repeat(70 * 1024));
    let (status, text) = server
        .post_raw("/eur/collect/apply", signed(&huge, merchant_key()))
        .await;
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, reply["error"].as_str().unwrap()),
        (413, "10000006"),
        "{text}"
    );
    used_ids.push("BAD-huge".into());

    for order_id in used_ids {
        for app in [server.eur, server.usd, server.other_eur, server.keyless_eur] {
            assert_eq!(
                server
                    .store
                    .order_by_merchant_order_id(app, &order_id)
                    .await
                    .unwrap(),
                None,
                "{order_id} must not be stored"
            );
        }
    }
}

async fn query_errors(server: Server) {
    server
        .post("/eur/collect/apply", &server.apply_body("M-q"))
        .await;
    let missing = json!({"appId": server.eur.0, "orderId": "nope"});
    assert_error(
        &server.post("/eur/collect/query", &missing).await,
        404,
        "40000001",
        "nope",
    );
    let other_app = json!({"appId": server.other_eur.0, "orderId": "M-q"});
    assert_error(
        &server
            .post_json("/eur/collect/query", signed(&other_app, other_key()))
            .await,
        404,
        "40000001",
        "M-q",
    );
    let wrong_no = json!({"appId": server.eur.0, "orderId": "M-q", "orderNo": "1234567890123456"});
    assert_error(
        &server.post("/eur/collect/query", &wrong_no).await,
        404,
        "40000001",
        "1234567890123456",
    );
    let bad_no = json!({"appId": server.eur.0, "orderId": "M-q", "orderNo": "12ab"});
    assert_error(
        &server.post("/eur/collect/query", &bad_no).await,
        400,
        "10000005",
        "orderNo",
    );
    let no_id = json!({"appId": server.eur.0});
    assert_error(
        &server.post("/eur/collect/query", &no_id).await,
        400,
        "10000003",
        "orderId",
    );
    let usd_path = json!({"appId": server.eur.0, "orderId": "M-q"});
    assert_error(
        &server.post("/usd/collect/query", &usd_path).await,
        400,
        "30000001",
        "EUR",
    );
}

async fn unknown_endpoints(server: Server) {
    for path in ["/brl/collect/apply", "/eur/collect/refund", "/"] {
        let (status, text) = server.post_raw(path, "{}").await;
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, reply["error"].as_str().unwrap()),
            (404, "40000002"),
            "{path}"
        );
    }
    // A GET of an API endpoint: 405 in the dialect's envelope, with Allow.
    let client = reqwest::Client::new();
    for (path, code) in [
        ("/eur/collect/apply", json!("40000003")),
        ("/proxyCollectQuery/query", json!(4003)),
    ] {
        let reply = client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 405, "{path}");
        assert_eq!(reply.headers()["allow"], "POST");
        let body: Value = reply.json().await.unwrap();
        let field = if path.starts_with("/eur") {
            "error"
        } else {
            "code"
        };
        assert_eq!(body[field], code, "{path}: {body}");
        assert!(body["msg"].as_str().unwrap().contains("POST"), "{body}");
    }
}

async fn replaced_keys_take_effect(server: Server) {
    let body = server.apply_body("M-key");
    let (status, _) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200);
    server
        .store
        .set_app_public_key(server.eur, &other_key().public_key_pem(), 5, None)
        .await
        .unwrap();
    let query = json!({"appId": server.eur.0, "orderId": "M-key"});
    assert_error(
        &server.post("/eur/collect/query", &query).await,
        401,
        "20000003",
        "sign",
    );
    let (status, _) = server
        .post_raw("/eur/collect/query", signed(&query, other_key()))
        .await;
    assert_eq!(status, 200);
}

async fn cashier_page_escapes_and_hides(server: Server) {
    let mut body = server.apply_body("M-<b>");
    body["orderId"] = json!("M-<b>");
    body["subject"] = json!("<script>alert('x')</script>");
    let (status, reply) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200, "{reply}");
    let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
    let page = server.client.get(&pay_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    // No Accept-Language: the order's country (528) decides, and Dutch writes € 25,00.
    assert!(html.contains("€\u{a0}25,00"), "{html}");
    // Escaped, whatever the entity style: the text shows, the markup does not.
    assert!(
        html.contains("alert(") && !html.contains("<script>"),
        "{html}"
    );
    assert!(html.contains("M-") && !html.contains("M-<b>"), "{html}");
    let unknown = format!("{}/pay/{}", server.base, "A".repeat(43));
    assert_eq!(
        server.client.get(unknown).send().await.unwrap().status(),
        404
    );
    let garbage = format!("{}/pay/..%2F..%2Fetc", server.base);
    assert_eq!(
        server.client.get(garbage).send().await.unwrap().status(),
        404
    );
}

const FORBIDDEN_TARGETS: [(&str, &str); 20] = [
    ("http://127.0.0.1:9/notify", "loopback"),
    ("http://[::1]/notify", "loopback"),
    ("http://localhost:9/notify", "loopback"),
    ("http://10.1.2.3/notify", "private"),
    ("http://192.168.0.10/notify", "private"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://[fe80::1]/notify", "link-local"),
    ("http://[fd00::1]/notify", "unique-local"),
    ("http://224.0.0.1/notify", "multicast"),
    // The IPv6 forms that carry an IPv4 address, and the rest of IANA's special registries.
    ("http://[::127.0.0.1]/notify", "loopback"),
    ("http://[::ffff:0:7f00:1]/notify", "loopback"),
    ("http://[2002:7f00:1::]/notify", "loopback"),
    ("http://[fec0::1]/notify", "site-local"),
    ("http://192.0.0.8/notify", "IETF protocol assignments"),
    ("http://198.18.0.1/notify", "benchmarking"),
    ("http://192.0.2.1/notify", "documentation"),
    ("http://198.51.100.1/notify", "documentation"),
    ("http://203.0.113.1/notify", "documentation"),
    ("http://240.0.0.1/notify", "reserved"),
    ("http://255.255.255.255/notify", "broadcast"),
];

async fn private_targets_are_refused_at_creation(server: Server) {
    for (i, (target, class)) in FORBIDDEN_TARGETS.iter().enumerate() {
        for field in ["notifyUrl", "callBackUrl", "callBackFailUrl"] {
            let order_id = format!("SSRF-{i}-{field}");
            let mut body = server.apply_body(&order_id);
            body[field] = json!(target);
            let reply = server.post("/eur/collect/apply", &body).await;
            assert_error(&reply, 400, "30000006", field);
            assert!(
                reply.1["msg"].as_str().unwrap().contains(class),
                "{target}: {}",
                reply.1
            );
            assert_eq!(
                server
                    .store
                    .order_by_merchant_order_id(server.eur, &order_id)
                    .await
                    .unwrap(),
                None
            );
        }
    }
}

/// With a port allowlist, targets on other ports are refused at creation, private or not.
async fn target_ports_can_be_restricted(db: TestDatabase) {
    let server = Server::start_configured(db, |config| {
        config.allowed_target_ports = vec![443];
    })
    .await;
    let mut body = server.apply_body("PORT-1");
    body["callBackUrl"] = json!("https://shop.example:8443/ok");
    let reply = server.post("/eur/collect/apply", &body).await;
    assert_error(&reply, 400, "30000006", "callBackUrl");
    assert!(
        reply.1["msg"].as_str().unwrap().contains("8443"),
        "{}",
        reply.1
    );
    let (status, reply) = server
        .post("/eur/collect/apply", &server.apply_body("PORT-2"))
        .await;
    assert_eq!(status, 200, "https on 443 passes: {reply}");
}

async fn private_targets_are_allowed_with_the_flag(db: TestDatabase) {
    let server = Server::start_allowing_private_targets(db).await;
    for (i, (target, _)) in FORBIDDEN_TARGETS.iter().enumerate() {
        let mut body = server.apply_body(&format!("PRIVATE-{i}"));
        body["notifyUrl"] = json!(target);
        let (status, reply) = server.post("/eur/collect/apply", &body).await;
        assert_eq!(status, 200, "{target}: {reply}");
    }
}

/// Tests that build their own server take the bare database.
mod with_own_server {
    use super::{
        a_report_day_follows_the_operators_zone_across_summer_time,
        private_targets_are_allowed_with_the_flag, target_ports_can_be_restricted,
    };
    kassa_store::on_both_databases!(
        kassa_store::testing::database;
        private_targets_are_allowed_with_the_flag,
        target_ports_can_be_restricted,
        a_report_day_follows_the_operators_zone_across_summer_time,
    );
}

/// Every signed reply names its app, so that one merchant's signed data (the same orderId and
/// amount at another app included) can never pass for another merchant's.
async fn signed_data_names_its_app(server: Server) {
    let mut created = Vec::new();
    for (app, key) in [
        (server.eur, merchant_key()),
        (server.other_eur, other_key()),
    ] {
        let mut body = server.apply_body("SAME-ID");
        body["appId"] = json!(app.0);
        let (status, reply) = server
            .post_json("/eur/collect/apply", signed(&body, key))
            .await;
        assert_eq!(status, 200, "{reply}");
        let data = server.verified_data(&reply);
        assert_eq!(data["appId"], json!(app.0));
        created.push(data);
    }
    assert_ne!(created[0]["appId"], created[1]["appId"]);
    let query = json!({"appId": server.eur.0, "orderId": "SAME-ID"});
    let (_, reply) = server.post("/eur/collect/query", &query).await;
    assert_eq!(server.verified_data(&reply)["appId"], json!(server.eur.0));
}

/// A value that hides `&key=` of a field the request could carry would let the same signature
/// stand for a differently split request: refused. Query strings a re-split cannot use pass.
async fn ambiguous_values_are_refused(server: Server) {
    let mut hidden = server.apply_body("A-amb");
    hidden["name"] = json!("Maria&notifyUrl=https://evil.example/hook");
    hidden.as_object_mut().unwrap().remove("notifyUrl");
    let reply = server.post("/eur/collect/apply", &hidden).await;
    assert_error(&reply, 400, "10000005", "notifyUrl");
    assert!(
        reply.1["msg"].as_str().unwrap().starts_with("name"),
        "{}",
        reply.1
    );
    assert!(
        server
            .store
            .order_by_merchant_order_id(server.eur, "A-amb")
            .await
            .unwrap()
            .is_none()
    );
    let mut query_string = server.apply_body("A-qs");
    query_string["callBackUrl"] = json!("https://shop.example/ok?order=A-qs&orderId=7&x=1");
    let (status, reply) = server.post("/eur/collect/apply", &query_string).await;
    assert_eq!(status, 200, "{reply}");
}

/// Succeeded orders of `app` paid at `paid_at_ms`, written straight to the store (a report
/// reads what the store holds; paying a thousand orders through the API would only be slower).
async fn paid_orders(server: &Server, app: kassa_core::AppId, count: u64, paid_at_ms: i64) {
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..count {
        let mut order = kassa_core::fixtures::order(&format!("R-{i}"), 1_000, 7_000 + i, 60_000);
        order.app_id = app;
        order.cashier_token = format!("report-{i}");
        order.status = kassa_core::OrderStatus::Succeeded;
        order.actual_amount_minor = kassa_core::AmountMinor(1_000);
        order.fee_minor = kassa_core::AmountMinor(45);
        order.paid_at_ms = Some(paid_at_ms + i as i64 % 7);
        let store = server.store.clone();
        writes.spawn(async move { store.insert_order(&order).await.unwrap() });
    }
    writes.join_all().await;
}

/// The day's settlement report, a signed page of 1,000 lines at a time, and every request it
/// refuses.
async fn settlement_reports_in_pages(server: Server) {
    let today = kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10].to_string();
    let report = |date: &str, after: Option<&str>| {
        let mut body = json!({"appId": server.eur.0, "date": date});
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        body
    };
    // An empty day: totals of zero, the header alone, no next page.
    let (status, reply) = server
        .post("/eur/collect/report", &report(&today, None))
        .await;
    assert_eq!(status, 200, "{reply}");
    let data = server.verified_data(&reply);
    assert_eq!(
        (data["orders"].as_i64(), data["net"].as_str()),
        (Some(0), Some("0.00"))
    );
    assert_eq!(
        data["lines"],
        format!("{}\n", kassa_server::report::CSV_HEADER)
    );
    assert!(data.get("next").is_none());

    paid_orders(&server, server.eur, 1_001, kassa_server::now_ms() - 1_000).await;
    let (status, reply) = server
        .post("/eur/collect/report", &report(&today, None))
        .await;
    assert_eq!(status, 200, "{reply}");
    let first = server.verified_data(&reply);
    assert_eq!(
        (
            first["appId"].as_i64(),
            first["date"].as_str(),
            first["currency"].as_str()
        ),
        (Some(server.eur.0), Some(today.as_str()), Some("EUR"))
    );
    assert_eq!(
        (
            first["orders"].as_i64(),
            first["gross"].as_str(),
            first["fee"].as_str(),
            first["net"].as_str()
        ),
        (
            Some(1_001),
            Some("10010.00"),
            Some("450.45"),
            Some("9559.55")
        )
    );
    assert_eq!(
        first["methods"],
        format!(
            "{}\ntotal,,,IDEAL_EUR,EUR,1001,10010.00,450.45,9559.55,,,,\n",
            kassa_server::report::CSV_HEADER
        )
    );
    let order_nos = |data: &serde_json::Map<String, Value>| -> Vec<String> {
        let lines = data["lines"].as_str().unwrap().lines().skip(1);
        lines
            .map(|l| l.split(',').nth(1).unwrap().to_string())
            .collect()
    };
    let mut seen = order_nos(&first);
    assert_eq!(seen.len(), 1_000);
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, seen.last().unwrap());
    let (status, reply) = server
        .post("/eur/collect/report", &report(&today, Some(next)))
        .await;
    assert_eq!(status, 200, "{reply}");
    let second = server.verified_data(&reply);
    assert!(second.get("next").is_none(), "the last page");
    assert!(
        second.get("orders").is_none() && second.get("methods").is_none(),
        "totals on the first page only"
    );
    seen.extend(order_nos(&second));
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len(), distinct.len()),
        (1_001, 1_001),
        "every order once"
    );

    // What is refused, in the dialect's envelope: days not begun or before the app, dates
    // that are none, pages of another report, another app's id, a wrong signature.
    for (date, named) in [
        ("2999-01-01", "not begun"),
        ("1969-12-30", "before app"),
        ("21-11-2026", "date"),
        ("2026-02-30", "date"),
    ] {
        let refused = server
            .post("/eur/collect/report", &report(date, None))
            .await;
        assert_error(&refused, 400, "10000005", named);
    }
    let missing = json!({"appId": server.eur.0});
    assert_error(
        &server.post("/eur/collect/report", &missing).await,
        400,
        "10000003",
        "date",
    );
    for after in ["1234567890123456", "12ab", next] {
        let yesterday = kassa_core::time::format_datetime(kassa_server::now_ms() - 86_400_000, 0);
        let date = if after == next {
            &yesterday[..10]
        } else {
            today.as_str()
        };
        let refused = server
            .post("/eur/collect/report", &report(date, Some(after)))
            .await;
        assert_error(&refused, 400, "10000005", "after");
    }
    let other_app = json!({"appId": server.other_eur.0, "date": today});
    assert_error(
        &server.post("/eur/collect/report", &other_app).await,
        401,
        "20000003",
        "",
    );
    let mut forged: Value =
        serde_json::from_str(&signed(&report(&today, None), merchant_key())).unwrap();
    forged["date"] = json!("2026-01-01");
    assert_error(
        &server
            .post_json("/eur/collect/report", forged.to_string())
            .await,
        401,
        "20000003",
        "",
    );
    assert_error(
        &server
            .post("/usd/collect/report", &report(&today, None))
            .await,
        400,
        "30000001",
        "EUR",
    );
}

/// The report of a day is the orders paid in that day of the operator's zone: 25 hours on the
/// day summer time ends in Amsterdam, the repeated hour included, and nothing of the days around.
async fn a_report_day_follows_the_operators_zone_across_summer_time(db: TestDatabase) {
    let amsterdam = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    let server = Server::start_in_zone(db, |_| {}, amsterdam).await;
    let at = |text: &str| -> i64 {
        let zoned: jiff::Zoned = text.parse().unwrap();
        zoned.timestamp().as_millisecond()
    };
    let paid_at = [
        (
            "before",
            "2026-10-24T23:59:59+02:00[Europe/Amsterdam]",
            false,
        ),
        ("first", "2026-10-25T00:00:00+02:00[Europe/Amsterdam]", true),
        (
            "summer",
            "2026-10-25T02:30:00+02:00[Europe/Amsterdam]",
            true,
        ),
        (
            "winter",
            "2026-10-25T02:30:00+01:00[Europe/Amsterdam]",
            true,
        ),
        ("last", "2026-10-25T23:59:59+01:00[Europe/Amsterdam]", true),
        (
            "after",
            "2026-10-26T00:00:00+01:00[Europe/Amsterdam]",
            false,
        ),
    ];
    for (i, (id, time, _)) in paid_at.iter().enumerate() {
        let mut order = kassa_core::fixtures::order(id, 1_000, 9_100 + i as u64, 60_000);
        order.app_id = server.eur;
        order.cashier_token = format!("dst-{i}");
        order.status = kassa_core::OrderStatus::Succeeded;
        order.actual_amount_minor = kassa_core::AmountMinor(1_000);
        order.paid_at_ms = Some(at(time));
        server.store.insert_order(&order).await.unwrap();
    }
    let body = json!({"appId": server.eur.0, "date": "2026-10-25"});
    let (status, reply) = server.post("/eur/collect/report", &body).await;
    assert_eq!(status, 200, "{reply}");
    let data = server.verified_data(&reply);
    assert_eq!(data["timeZone"], "Europe/Amsterdam");
    let lines: Vec<String> = data["lines"]
        .as_str()
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l.split(',').nth(2).unwrap()).collect();
    let expected: Vec<&str> = paid_at.iter().filter(|p| p.2).map(|p| p.0).collect();
    assert_eq!(ids, expected, "by payment time, the day's own");
    assert_eq!(data["orders"], 4);
    // Each time with its offset: the repeated hour is told apart.
    assert!(
        lines[1].contains(",2026-10-25T02:30:00+02:00,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",2026-10-25T02:30:00+01:00,"),
        "{}",
        lines[2]
    );
}

kassa_store::on_both_databases!(
    super::Server::start;
    ambiguous_values_are_refused,
    signed_data_names_its_app,
    apply_and_query,
    non_cashier_methods,
    replays_and_duplicates,
    concurrent_identical_requests_create_one_order,
    bad_inputs_are_refused_and_nothing_is_stored,
    query_errors,
    unknown_endpoints,
    replaced_keys_take_effect,
    cashier_page_escapes_and_hides,
    private_targets_are_refused_at_creation,
    settlement_reports_in_pages,
);
