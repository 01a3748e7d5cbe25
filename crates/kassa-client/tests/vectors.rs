//! The shared test vectors of every SDK (`sdks/vectors/vectors.json`): made here by kassa's own
//! signing, canonical-string and BR Code code, checked in, and read back by this client.
//!
//! `checked_in_vectors_are_what_kassa_makes` fails when kassa's rules and the checked-in file
//! part; `KASSA_WRITE_VECTORS=1 cargo test -p kassa-client --test vectors` writes them again
//! (then every SDK's suite says whether it still agrees).

use kassa_client::collect::Status;
use kassa_client::pix::OrderState;
use kassa_client::{
    CallbackHeaders, CallbackVerifier, Dialect, Error, Event, SigningKey, VerifyingKey, brcode,
    verify_answer,
};
use kassa_core::AmountMinor;
use kassa_core::pix::PixReceiver;
use kassa_signature::{canonical_of_map, parse_signed_object, sign_map, webhook};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

const APP_ID: i64 = 1001;
const PIX_APP_ID: i64 = 1003;
const OTHER_APP_ID: i64 = 1002;
/// The receiver's clock for every callback vector.
const NOW_S: i64 = 1_795_000_000;
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROTATED_OUT_SECRET: &str = "whsec_dGhlIG9sZCBzZWNyZXQgb2YgdGhlIGV4YW1wbGUgYXBw";

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn merchant_key() -> SigningKey {
    SigningKey::parse(&read("docs/examples/merchant-example.key.pem")).unwrap()
}

fn platform_key() -> SigningKey {
    SigningKey::parse(&read("sdks/vectors/platform-example.key.pem")).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

/// Signed by the platform key, written as kassa writes it.
fn platform_signed(value: Value) -> String {
    let mut map = object(value);
    sign_map(&platform_key(), &mut map);
    serde_json::to_string(&map).unwrap()
}

fn canonical_vectors() -> Vec<Value> {
    let ok = [
        ("collect request, empty notifyUrl left out", read_example_request()),
        ("keys in byte order: upper case, underscore, lower case", r#"{"b":"2","B":"1","_":"3","a":"0"}"#.into()),
        ("null and empty string left out, sign left out", r#"{"a":null,"b":"","c":"x","sign":"abc="}"#.into()),
        ("numbers exactly as written", r#"{"appId":1054,"f":1.50,"e":1e3,"n":-0,"z":0.10}"#.into()),
        ("booleans", r#"{"t":true,"f":false}"#.into()),
        ("escapes decoded to raw text", r#"{"q":"a\"b\\c\/d","u":"caf\u00e9","nl":"x\ny","tab":"\t"}"#.into()),
        ("no escaping or URL-encoding in values", r#"{"url":"https://shop.example/?a=1&b=2","name":"Tom & Jerry = friends"}"#.into()),
        ("non-ASCII text as UTF-8", r#"{"name":"São João","city":"Łódź","emoji":"💶"}"#.into()),
        ("keys sorted by UTF-8 bytes, not UTF-16 units", "{\"\u{ff5e}\":\"fullwidth\",\"\u{1f4b6}\":\"emoji\",\"é\":\"e-acute\"}".into()),
        ("whitespace between tokens ignored", "{ \"b\" : \"2\" ,\n  \"a\" : 1 }".into()),
        ("a space-only value is kept", r#"{"a":" ","b":"x"}"#.into()),
        ("pix request", r#"{"userOrderNumber":"P1001","submitAmount":"200","paymentType":"PIX","currencyType":"BRL"}"#.into()),
        ("an empty object", "{}".into()),
    ];
    let refused = [
        ("a nested object", r#"{"a":{"b":1}}"#),
        ("an array", r#"{"a":[1,2]}"#),
        ("a duplicate key", r#"{"a":"1","a":"2"}"#),
        ("not an object", r#"["a",1]"#),
        ("a string, not an object", r#""a=1""#),
        ("not JSON", r#"{"a":"1""#),
        ("trailing garbage", r#"{"a":"1"} x"#),
        ("sign is not a string", r#"{"a":"1","sign":5}"#),
    ];
    let mut vectors: Vec<Value> = ok
        .iter()
        .map(|(name, json)| {
            let canonical = parse_signed_object(json)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .canonical;
            json!({"name": name, "json": json, "canonical": canonical})
        })
        .collect();
    for (name, json) in refused {
        assert!(parse_signed_object(json).is_err(), "{name} must be refused");
        vectors.push(json!({"name": name, "json": json, "error": true}));
    }
    vectors
}

fn read_example_request() -> String {
    let doc = read("docs/collect-api.md");
    let after = doc.split("<!-- example-request -->").nth(1).unwrap();
    after
        .split("```json\n")
        .nth(1)
        .unwrap()
        .split("\n```")
        .next()
        .unwrap()
        .to_string()
}

fn signature_vectors() -> Vec<Value> {
    let key = merchant_key();
    let canonicals = [
        "amount=300&appId=1054&callBackFailUrl=https://shop.example/failed&callBackUrl=https://shop.example/paid&email=23423@qq.com&inBankCode=IDEAL_USD&name=Donald John Trump&orderId=M233323000059&partnerUserId=149597870&payType=BANK_TRANSFER&phone=09230219312",
        "currencyType=BRL&paymentType=PIX&submitAmount=200&userOrderNumber=P1001",
        "city=Łódź&name=São João",
        "",
    ];
    canonicals
        .iter()
        .map(|c| json!({"canonical": c, "sign": key.sign_base64(c.as_bytes())}))
        .collect()
}

fn collect_order(app_id: i64, status: i64) -> Value {
    let mut order = json!({
        "appId": app_id, "orderId": "M1", "orderNo": "6023071013539074",
        "amount": "25.00", "actualAmount": "25.00", "fee": "0.63", "status": status,
    });
    match status {
        2 => order["payTime"] = json!("2026-11-22 10:15:00"),
        3 => {
            order["actualAmount"] = json!("0.00");
            order["fee"] = json!("0.00");
            order["errorMsg"] = json!("the order expired");
        }
        _ => {}
    }
    order
}

fn pix_order(app_id: i64, state: i64) -> Value {
    let mut order = json!({
        "appId": app_id, "serialNo": "P1001", "orderNo": "6023071013539075",
        "amount": "12.34", "arrivalAmount": "12.34", "orderState": state,
    });
    if state == 30 {
        order["arrivalAmount"] = json!("0.00");
        order["message"] = json!("the payer's bank declined");
    }
    order
}

fn collect_envelope(data: &str) -> String {
    format!(r#"{{"status":"1","error":"00000000","msg":"","data":{data}}}"#)
}

fn pix_envelope(data: &str) -> String {
    format!(r#"{{"code":0,"msg":"success","data":{data}}}"#)
}

/// The X-Sign of a pix body: the platform key over its canonical string.
fn x_sign(data: &str) -> String {
    let canonical = canonical_of_map(&object(serde_json::from_str(data).unwrap())).unwrap();
    platform_key().sign_base64(canonical.as_bytes())
}

fn answer_vectors() -> Vec<Value> {
    let created = platform_signed(json!({
        "appId": APP_ID, "orderId": "M1", "orderNo": "6023071013539074",
        "payUrl": "http://127.0.0.1:8080/pay/3JxWq9vT2mKp8sLd"}));
    let paid = platform_signed(collect_order(APP_ID, 2));
    let other_app = platform_signed(collect_order(OTHER_APP_ID, 2));
    let tampered = paid.replace("\"25.00\",\"appId\"", "\"2500.00\",\"appId\"");
    assert_ne!(tampered, paid);
    let pix_created = serde_json::to_string(&json!({
        "appId": PIX_APP_ID, "orderNo": "6023071013539075", "url": "http://127.0.0.1:8080/pix/7HnT2kWq",
        "qrCode": pix_code("loja@example.com", "Loja Sao Joao", "Sao Paulo", 1234, "6023071013539075"),
        "orderState": 10, "serialNo": "P1001"})).unwrap();
    let pix_paid = serde_json::to_string(&pix_order(PIX_APP_ID, 20))
        .unwrap()
        .replace(
            "\"orderState\":20",
            "\"orderState\":20,\"transTime\":\"2026-11-22 10:16:00\"",
        );
    let pix_failed = serde_json::to_string(&pix_order(PIX_APP_ID, 30)).unwrap();
    vec![
        answer(
            "collect create",
            Dialect::Collect,
            200,
            None,
            &collect_envelope(&created),
            APP_ID,
        ),
        answer(
            "collect query, paid",
            Dialect::Collect,
            200,
            None,
            &collect_envelope(&paid),
            APP_ID,
        ),
        answer(
            "collect refusal",
            Dialect::Collect,
            400,
            None,
            r#"{"status":"0","error":"10000005","msg":"amount must be digits with at most two decimals"}"#,
            APP_ID,
        ),
        answer(
            "collect overload",
            Dialect::Collect,
            503,
            None,
            r#"{"status":"0","error":"90000002","msg":"kassa is overloaded; retry later"}"#,
            APP_ID,
        ),
        answer(
            "collect data changed after signing",
            Dialect::Collect,
            200,
            None,
            &collect_envelope(&tampered),
            APP_ID,
        ),
        answer(
            "collect data of another app",
            Dialect::Collect,
            200,
            None,
            &collect_envelope(&other_app),
            APP_ID,
        ),
        answer(
            "collect data unsigned",
            Dialect::Collect,
            200,
            None,
            &collect_envelope(&serde_json::to_string(&collect_order(APP_ID, 2)).unwrap()),
            APP_ID,
        ),
        answer(
            "pix create",
            Dialect::Pix,
            200,
            Some(&x_sign(&pix_created)),
            &pix_envelope(&pix_created),
            PIX_APP_ID,
        ),
        answer(
            "pix query, paid",
            Dialect::Pix,
            200,
            Some(&x_sign(&pix_paid)),
            &pix_envelope(&pix_paid),
            PIX_APP_ID,
        ),
        answer(
            "pix query, failed",
            Dialect::Pix,
            200,
            Some(&x_sign(&pix_failed)),
            &pix_envelope(&pix_failed),
            PIX_APP_ID,
        ),
        answer(
            "pix refusal",
            Dialect::Pix,
            400,
            None,
            r#"{"code":1005,"msg":"paymentType must be PIX"}"#,
            PIX_APP_ID,
        ),
        answer(
            "pix answer without X-Sign",
            Dialect::Pix,
            200,
            None,
            &pix_envelope(&pix_paid),
            PIX_APP_ID,
        ),
        answer(
            "pix X-Sign of other data",
            Dialect::Pix,
            200,
            Some(&x_sign(&pix_failed)),
            &pix_envelope(&pix_paid),
            PIX_APP_ID,
        ),
        answer(
            "pix data of another app",
            Dialect::Pix,
            200,
            Some(&x_sign(&pix_paid)),
            &pix_envelope(&pix_paid),
            OTHER_APP_ID,
        ),
    ]
}

/// An answer and what checking it as `app_id` must give, as this client says.
fn answer(
    name: &str,
    dialect: Dialect,
    status: u16,
    sign: Option<&str>,
    body: &str,
    app_id: i64,
) -> Value {
    let dialect_name = match dialect {
        Dialect::Collect => "collect",
        Dialect::Pix => "pix",
    };
    let mut vector = json!({"name": name, "dialect": dialect_name, "http_status": status,
        "body": body, "app_id": app_id});
    if let Some(sign) = sign {
        vector["x_sign"] = json!(sign);
    }
    let platform = VerifyingKey::parse(&read("sdks/vectors/platform-example.pub.pem")).unwrap();
    match verify_answer(dialect, status, sign, body, &platform, app_id) {
        Ok(data) => {
            vector["outcome"] = json!("ok");
            vector["data"] = serde_json::from_str(&data).unwrap();
        }
        Err(error) => outcome_of_error(&mut vector, &error),
    }
    vector
}

fn outcome_of_error(vector: &mut Value, error: &Error) {
    let outcome = match error {
        Error::Api(api) => {
            vector["code"] = json!(api.code);
            "api_error"
        }
        Error::BadSignature(_) => "bad_signature",
        Error::WrongApp { .. } => "wrong_app",
        Error::Malformed(_) => "malformed",
        other => panic!("no vector outcome for {other}"),
    };
    vector["outcome"] = json!(outcome);
}

fn callback_vectors() -> Vec<Value> {
    let collect = platform_signed(collect_order(APP_ID, 2));
    let collect_failed = platform_signed(collect_order(APP_ID, 3));
    let collect_other = platform_signed(collect_order(OTHER_APP_ID, 2));
    let pix = serde_json::to_string(&pix_order(PIX_APP_ID, 20)).unwrap();
    let now = NOW_S.to_string();
    let webhook = |secret: &str, body: &str, at: i64| {
        webhook::signature_header(secret, "msg_2Kq8wXvJ9yLpTn4sRbHc", at, body.as_bytes()).unwrap()
    };
    let rotation = format!(
        "{} {}",
        webhook(ROTATED_OUT_SECRET, &collect, NOW_S),
        webhook(WEBHOOK_SECRET, &collect, NOW_S)
    );
    let tampered = collect.replace("\"M1\"", "\"M2\"");
    vec![
        callback(
            "collect, paid",
            &collect,
            None,
            &webhook(WEBHOOK_SECRET, &collect, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "collect, expired",
            &collect_failed,
            None,
            &webhook(WEBHOOK_SECRET, &collect_failed, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "pix, paid",
            &pix,
            Some(&x_sign(&pix)),
            &webhook(WEBHOOK_SECRET, &pix, NOW_S),
            &now,
            PIX_APP_ID,
        ),
        callback(
            "during a secret rotation: two signatures",
            &collect,
            None,
            &rotation,
            &now,
            APP_ID,
        ),
        callback(
            "signed by the secret that was rotated out only",
            &collect,
            None,
            &webhook(ROTATED_OUT_SECRET, &collect, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "body changed after signing",
            &tampered,
            None,
            &webhook(WEBHOOK_SECRET, &collect, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "RSA sign broken, webhook signature of the broken body",
            &tampered,
            None,
            &webhook(WEBHOOK_SECRET, &tampered, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "another app's genuine callback",
            &collect_other,
            None,
            &webhook(WEBHOOK_SECRET, &collect_other, NOW_S),
            &now,
            APP_ID,
        ),
        callback(
            "timestamp six minutes old",
            &collect,
            None,
            &webhook(WEBHOOK_SECRET, &collect, NOW_S - 360),
            &(NOW_S - 360).to_string(),
            APP_ID,
        ),
        callback(
            "timestamp four minutes old",
            &collect,
            None,
            &webhook(WEBHOOK_SECRET, &collect, NOW_S - 240),
            &(NOW_S - 240).to_string(),
            APP_ID,
        ),
        callback(
            "pix without X-Sign",
            &pix,
            None,
            &webhook(WEBHOOK_SECRET, &pix, NOW_S),
            &now,
            PIX_APP_ID,
        ),
        callback(
            "webhook-signature missing",
            &collect,
            None,
            "",
            &now,
            APP_ID,
        ),
    ]
}

fn callback(
    name: &str,
    body: &str,
    x_sign: Option<&str>,
    signature: &str,
    timestamp: &str,
    app_id: i64,
) -> Value {
    let mut headers =
        json!({"webhook-id": "msg_2Kq8wXvJ9yLpTn4sRbHc", "webhook-timestamp": timestamp});
    if !signature.is_empty() {
        headers["webhook-signature"] = json!(signature);
    }
    if let Some(sign) = x_sign {
        headers["x-sign"] = json!(sign);
    }
    let mut vector =
        json!({"name": name, "body": body, "headers": headers, "app_id": app_id, "now_s": NOW_S});
    let platform = VerifyingKey::parse(&read("sdks/vectors/platform-example.pub.pem")).unwrap();
    let verifier = CallbackVerifier::new(platform, app_id).with_webhook_secret(WEBHOOK_SECRET);
    let parts = CallbackHeaders {
        x_sign,
        webhook_id: Some("msg_2Kq8wXvJ9yLpTn4sRbHc"),
        webhook_timestamp: Some(timestamp),
        webhook_signature: (!signature.is_empty()).then_some(signature),
    };
    match verifier.verify_at(parts, body.as_bytes(), NOW_S) {
        Ok(callback) => {
            vector["outcome"] = json!("ok");
            vector["dialect"] = json!(match callback.event {
                Event::Collect(_) => "collect",
                Event::Pix(_) => "pix",
            });
            vector["data"] = serde_json::from_str(body).unwrap();
        }
        Err(error) => outcome_of_error(&mut vector, &error),
    }
    vector
}

fn pix_code(key: &str, name: &str, city: &str, amount_minor: i64, txid: &str) -> String {
    PixReceiver::new(key, name, city)
        .unwrap()
        .brcode(AmountMinor(amount_minor), txid)
}

fn fields_json(fields: &[brcode::Field]) -> Value {
    let mut map = Map::new();
    for field in fields {
        let value = match &field.value {
            brcode::Value::Text(text) => json!(text),
            brcode::Value::Template(inner) => fields_json(inner),
        };
        map.insert(format!("{:02}", field.id), value);
    }
    Value::Object(map)
}

fn brcode_vectors() -> Vec<Value> {
    let bcb = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    let email = pix_code(
        "loja@example.com",
        "Loja São João",
        "São Paulo",
        1234,
        "6023071013539075",
    );
    let codes = [
        ("the Banco Central's published example", bcb.to_string()),
        ("kassa, e-mail key", email.clone()),
        (
            "kassa, CPF key",
            pix_code(
                "123.456.789-09",
                "Fulano de Tal",
                "Brasilia",
                20000,
                "6023071013539076",
            ),
        ),
        (
            "kassa, phone key",
            pix_code("+5511987654321", "Padaria", "Recife", 1, "6023071013539077"),
        ),
        (
            "kassa, random key",
            pix_code(
                "123e4567-e12b-12d1-a456-426655440000",
                "Loja",
                "Curitiba",
                99999999,
                "6023071013539078",
            ),
        ),
        (
            "a CRC that does not hold",
            format!("{}0000", &email[..email.len() - 4]),
        ),
        ("a length that runs past the end", "0002010102".to_string()),
        ("no CRC field", "000201".to_string()),
        (
            "not starting with 000201",
            "0002025802BR6304ABCD".to_string(),
        ),
        (
            "a lower-case CRC",
            format!(
                "{}{}",
                &email[..email.len() - 4],
                email[email.len() - 4..].to_lowercase()
            ),
        ),
    ];
    codes
        .iter()
        .map(|(name, code)| {
            let mut vector = json!({"name": name, "code": code});
            match brcode::parse(code) {
                Ok(parsed) if parsed.crc_holds() => {
                    vector["outcome"] = json!("ok");
                    vector["fields"] = fields_json(&parsed.fields);
                }
                Ok(_) => vector["outcome"] = json!("crc_mismatch"),
                Err(_) => vector["outcome"] = json!("malformed"),
            }
            vector
        })
        .collect()
}

fn generate() -> Value {
    json!({
        "about": "kassa's test vectors, shared by every SDK. Made by `KASSA_WRITE_VECTORS=1 cargo test -p kassa-client --test vectors`; see README.md. The keys are examples: never use them for anything else.",
        "merchant_private_key_pem": read("docs/examples/merchant-example.key.pem"),
        "merchant_public_key_pem": read("docs/examples/merchant-example.pub.pem"),
        "platform_public_key_pem": read("sdks/vectors/platform-example.pub.pem"),
        "webhook_secret": WEBHOOK_SECRET,
        "canonical": canonical_vectors(),
        "signatures": signature_vectors(),
        "answers": answer_vectors(),
        "callbacks": callback_vectors(),
        "brcodes": brcode_vectors(),
    })
}

#[test]
fn checked_in_vectors_are_what_kassa_makes() {
    let made = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    let path = repo_file("sdks/vectors/vectors.json");
    if std::env::var_os("KASSA_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == made,
        "sdks/vectors/vectors.json is not what kassa makes now; write it again with \
         KASSA_WRITE_VECTORS=1 cargo test -p kassa-client --test vectors and run every SDK's tests"
    );
}

/// The vectors say what they should: each outcome is the one a merchant needs.
#[test]
fn the_vectors_cover_every_outcome() {
    let vectors = generate();
    let outcomes = |kind: &str| -> Vec<(String, String)> {
        vectors[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_string(),
                    v["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let answers = outcomes("answers");
    let expect = |list: &[(String, String)], name: &str, outcome: &str| {
        let found = list
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(found.1, outcome, "{name}");
    };
    expect(&answers, "collect create", "ok");
    expect(&answers, "collect refusal", "api_error");
    expect(
        &answers,
        "collect data changed after signing",
        "bad_signature",
    );
    expect(&answers, "collect data of another app", "wrong_app");
    expect(&answers, "collect data unsigned", "bad_signature");
    expect(&answers, "pix create", "ok");
    expect(&answers, "pix answer without X-Sign", "bad_signature");
    expect(&answers, "pix X-Sign of other data", "bad_signature");
    expect(&answers, "pix data of another app", "wrong_app");
    let callbacks = outcomes("callbacks");
    expect(&callbacks, "collect, paid", "ok");
    expect(&callbacks, "pix, paid", "ok");
    expect(&callbacks, "during a secret rotation: two signatures", "ok");
    expect(
        &callbacks,
        "signed by the secret that was rotated out only",
        "bad_signature",
    );
    expect(&callbacks, "body changed after signing", "bad_signature");
    expect(
        &callbacks,
        "RSA sign broken, webhook signature of the broken body",
        "bad_signature",
    );
    expect(&callbacks, "another app's genuine callback", "wrong_app");
    expect(&callbacks, "timestamp six minutes old", "bad_signature");
    expect(&callbacks, "timestamp four minutes old", "ok");
    expect(&callbacks, "pix without X-Sign", "bad_signature");
    expect(&callbacks, "webhook-signature missing", "bad_signature");
    let codes = outcomes("brcodes");
    expect(&codes, "the Banco Central's published example", "ok");
    expect(&codes, "a CRC that does not hold", "crc_mismatch");
    expect(&codes, "a lower-case CRC", "malformed");
}

/// The client reads typed values out of the vectors' verified data.
#[test]
fn verified_data_reads_as_typed_orders() {
    let platform = VerifyingKey::parse(&read("sdks/vectors/platform-example.pub.pem")).unwrap();
    let body = platform_signed(collect_order(APP_ID, 2));
    let verifier = CallbackVerifier::new(platform, APP_ID);
    let callback = verifier
        .verify_at(CallbackHeaders::default(), body.as_bytes(), NOW_S)
        .unwrap();
    let Event::Collect(order) = callback.event else {
        panic!("a collect callback")
    };
    assert_eq!(order.status, Status::Succeeded);
    assert_eq!(order.fee, AmountMinor(63));
    assert_eq!(order.pay_time.as_deref(), Some("2026-11-22 10:15:00"));
    let pix = serde_json::to_string(&pix_order(PIX_APP_ID, 30)).unwrap();
    let platform = VerifyingKey::parse(&read("sdks/vectors/platform-example.pub.pem")).unwrap();
    let verifier = CallbackVerifier::new(platform, PIX_APP_ID);
    let headers = CallbackHeaders {
        x_sign: Some(&x_sign(&pix)),
        ..Default::default()
    };
    let Event::Pix(order) = verifier
        .verify_at(headers, pix.as_bytes(), NOW_S)
        .unwrap()
        .event
    else {
        panic!("a pix callback")
    };
    assert_eq!(order.order_state, OrderState::Failed);
    assert_eq!(order.arrival_amount, AmountMinor(0));
}
