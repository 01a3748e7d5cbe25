//! The OpenAPI description: served at `/openapi.json` equal to the checked-in
//! `docs/openapi.json` (regenerate with `kassa openapi > docs/openapi.json`), Swagger UI served
//! from kassa itself at `/docs`, and the documented limits equal to the ones the handlers
//! enforce.

mod common;

use common::*;
use kassa_store::testing::TestDatabase;
use serde_json::Value;
use std::path::PathBuf;

fn checked_in() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_served_description_is_the_checked_in_one() {
    let server = Server::start(TestDatabase::sqlite().await).await;
    let served: Value = server
        .client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Compared as JSON values; the message stays short (the documents are long).
    assert!(
        served == checked_in(),
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    for path in [
        "/{currency}/collect/apply",
        "/{currency}/collect/query",
        "/accountProxyCollect/initCollect",
        "/proxyCollectQuery/query",
        "/pay/{token}/status",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
}

/// `/docs` comes with a content security policy that allows kassa's own files only.
#[tokio::test]
async fn swagger_ui_has_a_strict_content_security_policy() {
    let server = Server::start(TestDatabase::sqlite().await).await;
    for path in ["/docs/", "/docs/swagger-initializer.js"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_without_a_cdn() {
    let server = Server::start(TestDatabase::sqlite().await).await;
    let get = |path: &'static str| {
        let client = server.client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, page) = get("/docs/").await;
    assert_eq!(status, 200);
    assert!(page.contains("swagger-ui"), "{page}");
    // Every script and style comes from kassa itself.
    for attribute in ["src=\"", "href=\""] {
        for value in page.split(attribute).skip(1) {
            let target = value.split('"').next().unwrap();
            assert!(!target.contains("//"), "{target} is loaded from elsewhere");
        }
    }
    let (status, script) = get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, 200);
    assert!(script.len() > 100_000);
    let (status, initializer) = get("/docs/swagger-initializer.js").await;
    assert_eq!(status, 200);
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}

fn max_length(document: &Value, schema: &str, field: &str) -> u64 {
    document["components"]["schemas"][schema]["properties"][field]["maxLength"]
        .as_u64()
        .unwrap_or_else(|| panic!("{schema}.{field} has no maxLength"))
}

#[test]
fn documented_value_lists_are_the_accepted_ones() {
    let document = serde_json::to_value(kassa_server::openapi::document()).unwrap();
    let schemas = &document["components"]["schemas"];
    let countries: Vec<&str> = kassa_core::Country::LIST.iter().map(|c| c.code).collect();
    assert_eq!(
        schemas["ApplyRequest"]["properties"]["country"]["pattern"],
        format!("^(|{})$", countries.join("|"))
    );
    let pay_types: Vec<&str> = [
        kassa_core::PayType::Cashier,
        kassa_core::PayType::BankTransfer,
        kassa_core::PayType::Ewallet,
    ]
    .iter()
    .map(|p| p.code())
    .collect();
    assert_eq!(
        schemas["CollectPayType"]["enum"],
        serde_json::json!(pay_types)
    );
}

#[test]
fn documented_limits_are_the_enforced_ones() {
    let document = serde_json::to_value(kassa_server::openapi::document()).unwrap();
    let url = kassa_core::validate::MAX_URL_CHARS as u64;
    for (schema, field, limit) in [
        (
            "ApplyRequest",
            "orderId",
            kassa_server::collect::MAX_ORDER_ID_CHARS as u64,
        ),
        (
            "QueryRequest",
            "orderId",
            kassa_server::collect::MAX_ORDER_ID_CHARS as u64,
        ),
        (
            "ApplyRequest",
            "amount",
            kassa_core::AmountMinor::MAX_TEXT_LEN as u64,
        ),
        ("ApplyRequest", "callBackUrl", url),
        ("ApplyRequest", "callBackFailUrl", url),
        ("ApplyRequest", "notifyUrl", url),
        ("QueryRequest", "orderNo", kassa_core::OrderNo::LEN as u64),
        (
            "InitCollectRequest",
            "userOrderNumber",
            kassa_server::pix::MAX_ORDER_NUMBER_CHARS as u64,
        ),
        (
            "PixQueryRequest",
            "userOrderNumber",
            kassa_server::pix::MAX_ORDER_NUMBER_CHARS as u64,
        ),
    ] {
        assert_eq!(
            max_length(&document, schema, field),
            limit,
            "{schema}.{field}"
        );
    }
}
