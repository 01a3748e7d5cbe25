//! End-to-end tests of the `pix` dialect over HTTP on SQLite and PostgreSQL: orders with valid
//! BR Codes, replies signed in `X-Sign`, the PIX page and its sandbox, callbacks, and every bad
//! input of the specification (each answered in the envelope with its code, nothing stored).

mod common;

use common::*;
use kassa_core::brcode;
use kassa_signature::{SigningKey, canonical_of_map, parse_signed_object};
use kassa_store::prelude::*;
use serde_json::{Map, Value, json};

/// Signs a body as a pix merchant does: the canonical string of the body, in `X-Sign`.
fn x_sign(body: &str, key: &SigningKey) -> String {
    key.sign_base64(parse_signed_object(body).unwrap().canonical.as_bytes())
}

impl Server {
    async fn pix_raw(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let sign = response
            .headers()
            .get("x-sign")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        (
            status,
            sign,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    /// Posts as the shop's BRL app with a correct signature.
    async fn pix(&self, path: &str, body: &Value) -> (u16, Option<String>, Value) {
        let text = body.to_string();
        let sign = x_sign(&text, merchant_key());
        let app = self.brl.0.to_string();
        self.pix_raw(path, &text, &[("x-app-id", &app), ("x-sign", &sign)])
            .await
    }

    /// The `data` of a success reply, its `X-Sign` checked against the platform key.
    fn pix_data(&self, reply: &(u16, Option<String>, Value)) -> Map<String, Value> {
        let (status, sign, body) = reply;
        assert_eq!(
            (*status, &body["code"], &body["msg"]),
            (200, &json!(0), &json!("success")),
            "{body}"
        );
        let data = body["data"].as_object().unwrap().clone();
        let canonical = canonical_of_map(&data).unwrap();
        self.platform
            .verify_base64(canonical.as_bytes(), sign.as_deref().unwrap())
            .unwrap();
        data
    }

    async fn pix_query(&self, number: &str) -> Map<String, Value> {
        let reply = self
            .pix(
                "/proxyCollectQuery/query",
                &json!({"userOrderNumber": number}),
            )
            .await;
        self.pix_data(&reply)
    }
}

fn init_body(number: &str, amount: &str) -> Value {
    json!({
        "userOrderNumber": number,
        "submitAmount": amount,
        "paymentType": "PIX",
        "currencyType": "BRL",
        "notifyUrl": "https://shop.example/pix/notify",
    })
}

fn pix_error(reply: &(u16, Option<String>, Value), http: u16, code: u64, words: &str) {
    let (status, sign, body) = reply;
    assert_eq!(
        (*status, body["code"].as_u64()),
        (http, Some(code)),
        "{body}"
    );
    assert!(body.get("data").is_none() && sign.is_none(), "{body}");
    let msg = body["msg"].as_str().unwrap();
    assert!(msg.contains(words), "msg {msg:?} should name {words:?}");
}

async fn create_and_query(server: Server) {
    let reply = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-1", "12.34"),
        )
        .await;
    let data = server.pix_data(&reply);
    assert_eq!(data["serialNo"], "P-1");
    assert_eq!(data["orderState"], 10);
    let order_no = data["orderNo"].as_str().unwrap().to_string();
    assert!(
        data["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/pay/", server.base))
    );
    let code = data["qrCode"].as_str().unwrap();
    assert!(
        code.len() <= 200,
        "the seed allows 200 characters: {}",
        code.len()
    );
    let parsed = brcode::decode(code).unwrap();
    assert_eq!(parsed.text(&[26, 0]), Some("br.gov.bcb.pix"));
    assert_eq!(parsed.text(&[26, 1]), Some(PIX_KEY));
    assert_eq!(parsed.text(&[53]), Some("986"));
    assert_eq!(parsed.text(&[54]), Some("12.34"));
    assert_eq!(parsed.text(&[58]), Some("BR"));
    assert_eq!(parsed.text(&[59]), Some("Loja Sao Joao"));
    assert_eq!(parsed.text(&[60]), Some("Sao Paulo"));
    assert_eq!(
        parsed.text(&[62, 5]),
        Some(order_no.as_str()),
        "the txid is the order number"
    );

    let queried = server.pix_query("P-1").await;
    assert_eq!(
        (
            queried["orderNo"].as_str(),
            queried["orderState"].as_i64(),
            queried["amount"].as_str(),
            queried["arrivalAmount"].as_str()
        ),
        (
            Some(order_no.as_str()),
            Some(10),
            Some("12.34"),
            Some("0.00")
        )
    );
    assert!(queried.get("transTime").is_none() && queried.get("message").is_none());

    // An identical retry gets the identical reply; other parameters are a duplicate.
    let again = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-1", "12.34"),
        )
        .await;
    assert_eq!((&again.1, &again.2), (&reply.1, &reply.2));
    let changed = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-1", "12.35"),
        )
        .await;
    pix_error(&changed, 409, 5001, "P-1");
}

async fn the_pix_page_pays_and_callbacks_follow(server: Server) {
    let reply = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-page", "50"),
        )
        .await;
    let data = server.pix_data(&reply);
    let url = data["url"].as_str().unwrap().to_string();
    let code = data["qrCode"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&url).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<svg") && html.contains(&code) && html.contains(r#"src="/assets/pix.js""#)
    );
    // A BRL order speaks Brazilian Portuguese unless the browser says otherwise.
    assert!(
        html.contains(r#"<html lang="pt-BR""#) && html.contains("R$\u{a0}50,00"),
        "{html}"
    );
    assert!(html.contains("Pix Copia e Cola") && html.contains(r#"data-copied="Código copiado""#));
    // The recipient as the code names it, and instructions; light enough for a slow phone.
    assert!(html.contains("Recebedor"), "{html}");
    assert!(
        html.len() < 50 * 1024,
        "the PIX page weighs {} bytes",
        html.len()
    );
    let status: Value = http
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status, json!({"state": "in_progress", "final": false}));
    // The long poll: a state other than the order's answers at once; nonsense is refused.
    let asked = std::time::Instant::now();
    let other: Value = http
        .get(format!("{url}/status?wait=created"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["state"], "in_progress");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5));
    for bad in [
        "wait=paid",
        "wait=created&x=1",
        "x=1",
        "wait=created&wait=created",
    ] {
        let refused = http
            .get(format!("{url}/status?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{bad}: {body}");
    }
    let png = http.get(format!("{url}/qr.png")).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    let script = http
        .get(format!("{}/assets/pix.js", server.base))
        .send()
        .await
        .unwrap();
    assert!(script.text().await.unwrap().contains("clipboard"));

    // The sandbox pays with any amount: the full one succeeds.
    let start = html.find(r#"name="csrf" value=""#).unwrap() + 19;
    let csrf = html[start..].split('"').next().unwrap().to_string();
    let paid = http
        .post(format!("{url}/outcome"))
        .form(&[
            ("outcome", "paid"),
            ("amount", "50.00"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let queried = server.pix_query("P-page").await;
    assert_eq!(
        (
            queried["orderState"].as_i64(),
            queried["arrivalAmount"].as_str()
        ),
        (Some(20), Some("50.00"))
    );
    assert!(queried["transTime"].as_str().unwrap().len() == 19);
    let status: Value = http
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["final"], true);

    // Its callback: the seed's body, X-Sign by the platform key over it.
    let order = server
        .store
        .order_by_merchant_order_id(server.brl, "P-page")
        .await
        .unwrap()
        .unwrap();
    let history = server
        .store
        .callbacks_of_order(&order.order_no)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let callback = &history[0].callback;
    let body: Map<String, Value> = serde_json::from_str(&callback.body).unwrap();
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "amount",
            "appId",
            "arrivalAmount",
            "orderNo",
            "orderState",
            "serialNo"
        ]
    );
    assert_eq!(body["orderState"], 20);
    let sign = callback
        .headers
        .iter()
        .find(|(n, _)| n == "X-Sign")
        .map(|(_, v)| v.clone())
        .unwrap();
    server
        .platform
        .verify_base64(canonical_of_map(&body).unwrap().as_bytes(), &sign)
        .unwrap();
}

async fn other_amounts_need_the_operator(server: Server) {
    let reply = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-short", "20"),
        )
        .await;
    let order_no = server.pix_data(&reply)["orderNo"]
        .as_str()
        .unwrap()
        .to_string();
    let order_no = kassa_core::OrderNo::parse(&order_no).unwrap();
    let paid = kassa_core::OrderEvent::Paid {
        requested: kassa_core::AmountMinor(2_000),
        received: kassa_core::AmountMinor(1_999),
    };
    server
        .gateway
        .lifecycle()
        .apply_event(&order_no, &paid, 1)
        .await
        .unwrap();
    let queried = server.pix_query("P-short").await;
    assert_eq!(
        (
            queried["orderState"].as_i64(),
            queried["arrivalAmount"].as_str()
        ),
        (Some(10), Some("19.99"))
    );
    assert!(
        server
            .store
            .callbacks_of_order(&order_no)
            .await
            .unwrap()
            .is_empty(),
        "pix hears final states only"
    );
    let failed = kassa_core::OrderEvent::OperatorFailed {
        reason: "received less than asked".into(),
    };
    server
        .gateway
        .lifecycle()
        .apply_event(&order_no, &failed, 2)
        .await
        .unwrap();
    let queried = server.pix_query("P-short").await;
    assert_eq!(
        (queried["orderState"].as_i64(), queried["message"].as_str()),
        (Some(30), Some("received less than asked"))
    );
}

async fn bad_inputs_are_refused_and_nothing_is_stored(server: Server) {
    let init = "/accountProxyCollect/initCollect";
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |field: &'static str, value: Value| -> Edit {
        Box::new(move |b: &mut Value| b[field] = value.clone())
    };
    let remove = |field: &'static str| -> Edit {
        Box::new(move |b: &mut Value| {
            b.as_object_mut().unwrap().remove(field);
        })
    };
    let cases: Vec<(Edit, u16, u64, &str)> = vec![
        (set("paymentType", json!("CARD")), 400, 1005, "paymentType"),
        (set("currencyType", json!("USD")), 400, 1005, "currencyType"),
        (remove("paymentType"), 400, 1003, "paymentType"),
        (
            set("submitAmount", json!("1,000")),
            400,
            1005,
            "submitAmount",
        ),
        (
            set("submitAmount", json!("10.001")),
            400,
            1005,
            "submitAmount",
        ),
        (set("submitAmount", json!("-5")), 400, 1005, "submitAmount"),
        (set("submitAmount", json!("1e3")), 400, 1005, "submitAmount"),
        (set("submitAmount", json!(" 5")), 400, 1005, "submitAmount"),
        (set("submitAmount", json!("0")), 400, 3002, "submitAmount"),
        (
            set("submitAmount", json!("0.00")),
            400,
            3002,
            "submitAmount",
        ),
        (
            set("submitAmount", json!("1234567890.12")),
            400,
            1004,
            "submitAmount",
        ),
        (set("submitAmount", json!(12)), 400, 1002, "submitAmount"),
        (remove("userOrderNumber"), 400, 1003, "userOrderNumber"),
        (
            set("userOrderNumber", json!("u".repeat(51))),
            400,
            1004,
            "userOrderNumber",
        ),
        (
            set("paymentType", json!("P".repeat(21))),
            400,
            1004,
            "paymentType",
        ),
        (
            set(
                "notifyUrl",
                json!(format!("https://x.example/{}", "n".repeat(240))),
            ),
            400,
            1004,
            "notifyUrl",
        ),
        (
            set("notifyUrl", json!("ftp://x.example/")),
            400,
            1005,
            "notifyUrl",
        ),
        (
            set("notifyUrl", json!("http://127.0.0.1:9/n")),
            400,
            3004,
            "notifyUrl",
        ),
        (
            set("notifyUrl", json!("http://169.254.169.254/")),
            400,
            3004,
            "notifyUrl",
        ),
        (set("extra", json!({"nested": 1})), 400, 1001, "extra"),
    ];
    for (i, (edit, http, code, words)) in cases.iter().enumerate() {
        let number = format!("BAD-{i}");
        let mut body = init_body(&number, "10.00");
        edit(&mut body);
        let text = body.to_string();
        let sign = if text.contains("nested") {
            "x".to_string()
        } else {
            x_sign(&text, merchant_key())
        };
        let app = server.brl.0.to_string();
        let reply = server
            .pix_raw(init, &text, &[("x-app-id", &app), ("x-sign", &sign)])
            .await;
        pix_error(&reply, *http, *code, words);
        assert_eq!(
            server
                .store
                .order_by_merchant_order_id(server.brl, &number)
                .await
                .unwrap(),
            None
        );
    }

    // Authentication and apps.
    let text = init_body("BAD-auth", "10.00").to_string();
    let good = x_sign(&text, merchant_key());
    let brl = server.brl.0.to_string();
    let eur = server.eur.0.to_string();
    let other_brl = server.other_brl.0.to_string();
    let tampered = text.replace("10.00", "11.00");
    for (body, headers, http, code, words) in [
        (&text, vec![("x-app-id", brl.as_str())], 401, 2001, "X-Sign"),
        (
            &text,
            vec![("x-app-id", brl.as_str()), ("x-sign", "%%%")],
            401,
            2002,
            "X-Sign",
        ),
        (
            &tampered,
            vec![("x-app-id", brl.as_str()), ("x-sign", good.as_str())],
            401,
            2003,
            "X-Sign",
        ),
        (
            &text,
            vec![("x-sign", good.as_str())],
            401,
            2004,
            "X-App-Id",
        ),
        (
            &text,
            vec![("x-app-id", "abc"), ("x-sign", good.as_str())],
            401,
            2004,
            "X-App-Id",
        ),
        (
            &text,
            vec![("x-app-id", "999999"), ("x-sign", good.as_str())],
            401,
            2003,
            "999999",
        ),
        (
            &text,
            vec![("x-app-id", &format!("0{brl}")), ("x-sign", good.as_str())],
            401,
            2004,
            "leading zeros",
        ),
        (
            &text,
            // (Spaces around a header value never reach kassa: HTTP strips them.)
            vec![("x-app-id", &format!("{brl} 1")), ("x-sign", good.as_str())],
            401,
            2004,
            "spaces",
        ),
        (
            &text,
            vec![("x-app-id", eur.as_str()), ("x-sign", good.as_str())],
            400,
            3001,
            "EUR",
        ),
    ] {
        let reply = server.pix_raw(init, body, &headers).await;
        pix_error(&reply, http, code, words);
    }
    let other_sign = x_sign(&text, other_key());
    let reply = server
        .pix_raw(
            init,
            &text,
            &[("x-app-id", &other_brl), ("x-sign", &other_sign)],
        )
        .await;
    pix_error(&reply, 400, 3003, "PIX key");
    let reply = server
        .pix_raw(
            init,
            "{\"userOrderNumber\":",
            &[("x-app-id", &brl), ("x-sign", &good)],
        )
        .await;
    pix_error(&reply, 400, 1001, "JSON");
    let huge = init_body(&"h".repeat(10), &"9".repeat(8))
        .to_string()
        .replace("}", &format!(",\"pad\":\"{}\"}}", "p".repeat(70_000)));
    let reply = server
        .pix_raw(init, &huge, &[("x-app-id", &brl), ("x-sign", &good)])
        .await;
    pix_error(&reply, 413, 1006, "64 KiB");
    assert_eq!(
        server
            .store
            .order_by_merchant_order_id(server.brl, "BAD-auth")
            .await
            .unwrap(),
        None
    );

    // Queries.
    let reply = server
        .pix(
            "/proxyCollectQuery/query",
            &json!({"userOrderNumber": "nope"}),
        )
        .await;
    pix_error(&reply, 404, 4001, "nope");
    let reply = server.pix("/proxyCollectQuery/query", &json!({})).await;
    pix_error(&reply, 400, 1003, "userOrderNumber");
}

/// The day's settlement report in the pix style: `X-Sign` over its data, the dialect's errors.
async fn settlement_report(server: Server) {
    let reply = server
        .pix(
            "/accountProxyCollect/initCollect",
            &init_body("P-report", "12.34"),
        )
        .await;
    let order_no = server.pix_data(&reply)["orderNo"]
        .as_str()
        .unwrap()
        .to_string();
    let order_no = kassa_core::OrderNo::parse(&order_no).unwrap();
    let paid = kassa_core::OrderEvent::Paid {
        requested: kassa_core::AmountMinor(1_234),
        received: kassa_core::AmountMinor(1_234),
    };
    server.gateway.change_order(&order_no, &paid).await.unwrap();
    let today = kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10].to_string();
    let reply = server
        .pix("/proxyCollectQuery/report", &json!({"date": today}))
        .await;
    let data = server.pix_data(&reply);
    assert_eq!(
        (
            data["appId"].as_i64(),
            data["currency"].as_str(),
            data["orders"].as_i64(),
            data["gross"].as_str()
        ),
        (Some(server.brl.0), Some("BRL"), Some(1), Some("12.34"))
    );
    let lines: Vec<&str> = data["lines"].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].starts_with(&format!("order,{order_no},P-report,PIX,BRL,1,12.34,")),
        "{}",
        lines[1]
    );
    assert!(data.get("next").is_none());

    for date in ["2999-01-01", "1969-12-30", "2026/11/21"] {
        let refused = server
            .pix("/proxyCollectQuery/report", &json!({"date": date}))
            .await;
        pix_error(&refused, 400, 1005, "date");
    }
    let body = json!({"date": today}).to_string();
    let sign = x_sign(&body, merchant_key());
    let other = server.other_brl.0.to_string();
    let as_other = server
        .pix_raw(
            "/proxyCollectQuery/report",
            &body,
            &[("x-app-id", &other), ("x-sign", &sign)],
        )
        .await;
    pix_error(&as_other, 401, 2003, &other);
    let brl = server.brl.0.to_string();
    let wrong = x_sign(&json!({"date": "2026-01-01"}).to_string(), merchant_key());
    let forged = server
        .pix_raw(
            "/proxyCollectQuery/report",
            &body,
            &[("x-app-id", &brl), ("x-sign", &wrong)],
        )
        .await;
    pix_error(&forged, 401, 2003, &brl);
}

kassa_store::on_both_databases!(
    super::Server::start;
    create_and_query,
    the_pix_page_pays_and_callbacks_follow,
    other_amounts_need_the_operator,
    bad_inputs_are_refused_and_nothing_is_stored,
    settlement_report,
);
