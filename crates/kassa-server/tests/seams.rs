//! The seams hold: a third dialect and a third rail, written here in the test, are added to a
//! gateway by one registration line each, and the shared machinery — the create pipeline,
//! idempotent retries, callbacks rendered by the order's dialect, answers to unknown paths,
//! the OpenAPI description, routing to a rail, the payer's page — serves them without any
//! change to production code.

mod common;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::*;
use kassa_core::{
    AmountMinor, App, AppId, Currency, NewOrder, Order, OrderEvent, OrderNo, OrderStatus,
    PaymentMethod,
};
use kassa_server::dialect::{self, ApiError, Dialect, Dialects, ErrorKind, Incoming, Words};
use kassa_server::notary::{Notary, Signature, Signed};
use kassa_server::rails::{Rail, RailError, RailStart, Rails, SandboxRail};
use kassa_server::wire::Fields;
use kassa_server::{Gateway, ServerConfig};
use kassa_signature::{SignedObject, verify_json};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// A made-up dialect: `POST /echo/orders` with `appId`, `ref`, `amount`, `hookUrl` and `sign`
/// in the body; replies are the signed data alone; errors are `{"echoError":KIND,"msg":…}`.
struct Echo;

static ECHO_WORDS: Words = Words {
    app: "app",
    app_id: "appId",
    sign: "sign",
    order_id: "ref",
    order_id_max_chars: 40,
    amount: "amount",
    success_url: "returnUrl",
    fail_url: "returnUrl",
    notify_url: "hookUrl",
    fields: &["appId", "ref", "amount", "hookUrl"],
};

async fn echo_create(State(gateway): State<Arc<Gateway>>, incoming: Incoming) -> Response {
    dialect::respond(&Echo, dialect::create(&Echo, &gateway, &incoming).await)
}

#[async_trait]
impl Dialect for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn routes(&self) -> Router<Arc<Gateway>> {
        Router::new().route("/echo/orders", post(echo_create))
    }

    fn owns_path(&self, path: &str) -> bool {
        path.starts_with("/echo/")
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
        let operation = OperationBuilder::new()
            .summary(Some("Create an echo order"))
            .build();
        let paths =
            PathsBuilder::new().path("/echo/orders", PathItem::new(HttpMethod::Post, operation));
        utoipa::openapi::OpenApiBuilder::new().paths(paths).build()
    }

    fn words(&self) -> &'static Words {
        &ECHO_WORDS
    }

    fn error_response(&self, error: ApiError) -> Response {
        let status = match error.kind {
            ErrorKind::UnknownEndpoint | ErrorKind::OrderNotFound => StatusCode::NOT_FOUND,
            ErrorKind::MissingSign | ErrorKind::WrongSign | ErrorKind::UnknownApp => {
                StatusCode::UNAUTHORIZED
            }
            ErrorKind::DuplicateOrder => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({"echoError": format!("{:?}", error.kind), "msg": error.msg});
        (status, axum::Json(body)).into_response()
    }

    fn signature(&self) -> Signature {
        Signature::Embedded
    }

    fn success_response(&self, reply: &Signed) -> Response {
        (StatusCode::OK, reply.data.clone()).into_response()
    }

    fn notifies(&self, status: OrderStatus) -> bool {
        status.is_final()
    }

    fn callback(&self, notary: &Notary, order: &Order) -> (String, Vec<(String, String)>) {
        let mut data = Map::new();
        data.insert("ref".into(), order.merchant_order_id.clone().into());
        data.insert("state".into(), order.status.as_str().into());
        let headers = vec![("Content-Type".into(), "application/json".into())];
        (notary.sign(data), headers)
    }

    async fn identify_app(
        &self,
        _gateway: &Gateway,
        _incoming: &Incoming,
        object: &SignedObject<'_>,
    ) -> Result<(AppId, String), ApiError> {
        let app_id = AppId(Fields::new(&object.fields).positive_integer("appId")?);
        Ok((app_id, object.sign.clone().unwrap_or_default()))
    }

    fn check_app(&self, _app: &App, _incoming: &Incoming) -> Result<(), ApiError> {
        Ok(())
    }

    fn new_order(
        &self,
        app: &App,
        fields: &Fields,
        merchant_order_id: String,
    ) -> Result<NewOrder, ApiError> {
        let amount = fields.required("amount", 12)?;
        let amount_minor = AmountMinor::parse(&amount)
            .map_err(|e| ApiError::new(ErrorKind::InvalidField, format!("amount {e}")))?;
        Ok(NewOrder {
            app_id: app.app_id,
            merchant_order_id,
            amount_minor,
            method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
            country: None,
            payer: None,
            subject: None,
            body: None,
            callback_url: None,
            callback_fail_url: None,
            notify_url: dialect::url_field(fields, "hookUrl", 200, false)?,
            language: None,
            request_fingerprint: String::new(),
            dialect: "",
        })
    }

    fn order_lifetime_ms(&self, _config: &ServerConfig) -> i64 {
        60_000
    }

    fn created(&self, gateway: &Gateway, _app: &App, order: &mut Order) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("ref".into(), order.merchant_order_id.clone().into());
        data.insert("orderNo".into(), order.order_no.as_str().into());
        let pay_url = kassa_server::cashier::pay_url(&gateway.config, order);
        data.insert("payUrl".into(), pay_url.into());
        data
    }
}

impl Server {
    async fn echo(&self, body: &Value) -> (u16, String) {
        self.post_raw("/echo/orders", signed(body, merchant_key()))
            .await
    }
}

async fn a_third_dialect_needs_one_registration_line(db: TestDatabase) {
    let dialects = Dialects::standard().with(Echo); // the registration line
    let server = Server::start_registered(db, dialects, Rails::standard()).await;
    let body = json!({"appId": server.eur.0, "ref": "E-1", "amount": "12.50",
        "hookUrl": "https://shop.example/hook"});

    // The shared pipeline creates, signs, and replays an identical retry byte for byte.
    let (status, reply) = server.echo(&body).await;
    assert_eq!(status, 200, "{reply}");
    verify_json(&server.platform, &reply).unwrap();
    let data: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(data["ref"], "E-1");
    assert_eq!(server.echo(&body).await, (200, reply.clone()));
    let mut changed = body.clone();
    changed["amount"] = json!("13.00");
    let (status, refused) = server.echo(&changed).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains("DuplicateOrder") && refused.contains("ref E-1"),
        "{refused}"
    );
    let mut forged = serde_json::from_str::<Value>(&signed(&body, merchant_key())).unwrap();
    forged["amount"] = json!("99.00");
    let (status, refused) = server.post_raw("/echo/orders", forged.to_string()).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused.contains("WrongSign"), "{refused}");

    // The order records its dialect; its callback is rendered by that dialect.
    let order_no = OrderNo::parse(data["orderNo"].as_str().unwrap()).unwrap();
    let order = server.store.order_by_no(&order_no).await.unwrap().unwrap();
    assert_eq!(
        (order.dialect.as_str(), order.rail.as_str()),
        ("echo", "sandbox")
    );
    let paid = OrderEvent::Paid {
        requested: order.amount_minor,
        received: order.amount_minor,
    };
    server.gateway.change_order(&order_no, &paid).await.unwrap();
    let callbacks = server.store.callbacks_of_order(&order_no).await.unwrap();
    assert_eq!(callbacks.len(), 1);
    let callback: Value = serde_json::from_str(&callbacks[0].callback.body).unwrap();
    assert_eq!(
        (&callback["ref"], &callback["state"]),
        (&json!("E-1"), &json!("succeeded"))
    );
    verify_json(&server.platform, &callbacks[0].callback.body).unwrap();

    // Paths are answered in the envelope of the dialect they belong to.
    let (status, unknown) = server.post_raw("/echo/nothing", "{}").await;
    assert_eq!(status, 404);
    assert!(unknown.contains("UnknownEndpoint"), "{unknown}");
    let (status, unknown) = server.post_json("/nothing", "{}").await;
    assert_eq!((status, unknown["error"].as_str()), (404, Some("40000002")));
    let (status, unknown) = server.post_json("/accountProxyCollect/nothing", "{}").await;
    assert_eq!((status, unknown["code"].as_u64()), (404, Some(4002)));

    // The description lists the new operation beside the seeds'.
    let document: Value = server
        .client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/echo/orders",
        "/{currency}/collect/apply",
        "/proxyCollectQuery/query",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
}

/// A made-up upstream rail: takes EUR orders on one channel, sends the payer to its own page,
/// and reports outcomes by itself (none by hand).
struct Moon;

#[async_trait]
impl Rail for Moon {
    fn name(&self) -> &'static str {
        "moon"
    }

    fn channel_for(&self, order: &Order) -> Option<String> {
        (order.currency == Currency::Eur).then(|| "moon-eur".into())
    }

    async fn start(
        &self,
        order: &Order,
        _method: &'static PaymentMethod,
    ) -> Result<RailStart, RailError> {
        Ok(RailStart::Redirect(format!(
            "https://moon.example/pay/{}",
            order.order_no
        )))
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Server {
    async fn direct_order(&self, order_id: &str, app: AppId, path: &str) -> (String, OrderNo) {
        let mut body = self.apply_body(order_id);
        body["appId"] = json!(app.0);
        body["payType"] = json!("BANK_TRANSFER");
        body["inBankCode"] = json!(if path.starts_with("/usd") {
            "IDEAL_USD"
        } else {
            "IDEAL_EUR"
        });
        let (status, reply) = self.post(path, &body).await;
        assert_eq!(status, 200, "{reply}");
        let data = self.verified_data(&reply);
        let order_no = OrderNo::parse(data["orderNo"].as_str().unwrap()).unwrap();
        (data["payUrl"].as_str().unwrap().to_string(), order_no)
    }
}

async fn a_third_rail_needs_one_registration_line(db: TestDatabase) {
    let rails = Rails::default().with(Moon).with(SandboxRail); // the registration line
    let server = Server::start_registered(db, Dialects::standard(), rails).await;

    // EUR orders go to the moon, and the payer's page sends the payer there.
    let (pay_url, order_no) = server
        .direct_order("R-1", server.eur, "/eur/collect/apply")
        .await;
    let order = server.store.order_by_no(&order_no).await.unwrap().unwrap();
    assert_eq!(
        (order.rail.as_str(), order.channel.as_str()),
        ("moon", "moon-eur")
    );
    let page = browser().get(&pay_url).send().await.unwrap();
    assert!(page.status().is_redirection(), "{}", page.status());
    let location = page.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("https://moon.example/pay/{order_no}"));

    // The moon takes no outcome from kassa's page.
    let token = pay_url.rsplit('/').next().unwrap();
    let csrf = server.gateway.form_key.token_for(token);
    let refused = browser()
        .post(format!("{pay_url}/outcome"))
        .form(&[("outcome", "paid"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let order = server.store.order_by_no(&order_no).await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::InProgress, "nothing was settled");

    // USD orders fall through to the sandbox, whose bank page offers its outcomes.
    let (usd_url, usd_no) = server
        .direct_order("R-2", server.usd, "/usd/collect/apply")
        .await;
    let usd = server.store.order_by_no(&usd_no).await.unwrap().unwrap();
    assert_eq!(usd.rail, "sandbox");
    let page = browser().get(&usd_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // (IDEAL_USD serves the Netherlands: the bank's answers are in Dutch.)
    assert!(page.text().await.unwrap().contains("Uitzondering"));
}

async fn an_order_of_a_rail_this_node_lacks_is_unavailable(db: TestDatabase) {
    let server = Server::start(db).await;
    let (pay_url, order_no) = server
        .direct_order("G-1", server.eur, "/eur/collect/apply")
        .await;
    // As if the order had been routed by a node that runs a rail this one does not.
    let sql = format!("UPDATE orders SET rail = 'gone' WHERE order_no = '{order_no}'");
    let pool = sqlx::AnyPool::connect(&server.database_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let page = browser().get(&pay_url).send().await.unwrap();
    assert_eq!(page.status(), 503, "the payer is asked to try again");
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    a_third_dialect_needs_one_registration_line,
    a_third_rail_needs_one_registration_line,
    an_order_of_a_rail_this_node_lacks_is_unavailable,
);

/// The modules of `src/` and the other modules each one names (`crate::NAME`), the crate root
/// (which declares and wires them all) left out.
fn module_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                files.push(inner.unwrap().path());
            }
        } else if path.file_name().unwrap() != "lib.rs" {
            files.push(path);
        }
    }
    let module_of = |path: &std::path::Path| {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: std::collections::BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut imports: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let module = module_of(path);
        let text = std::fs::read_to_string(path).unwrap();
        let named = imports.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != module {
                named.insert(name);
            }
        }
        // `use crate::{a, b::c}` names several at once.
        for (i, _) in text.match_indices("use crate::{") {
            let list = &text[i..i + text[i..].find("};").unwrap_or(0)];
            for name in list.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if modules.contains(name) && name != module {
                    named.insert(name.to_string());
                }
            }
        }
    }
    imports
}

#[test]
fn no_module_imports_itself_through_others() {
    let imports = module_imports();
    fn reaches(
        imports: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        from: &str,
        target: &str,
        seen: &mut std::collections::BTreeSet<String>,
    ) -> bool {
        imports.get(from).into_iter().flatten().any(|next| {
            next == target || (seen.insert(next.clone()) && reaches(imports, next, target, seen))
        })
    }
    for module in imports.keys() {
        let mut seen = Default::default();
        assert!(
            !reaches(&imports, module, module, &mut seen),
            "{module} imports itself through {:?}",
            imports[module]
        );
    }
    assert!(
        imports["collect"].contains("dialect"),
        "the scan sees imports"
    );
}

#[test]
fn the_machinery_names_no_dialect_and_no_rail() {
    let imports = module_imports();
    for module in [
        "dialect",
        "lifecycle",
        "shed",
        "cashier",
        "openapi",
        "dispatcher",
        "sweeper",
    ] {
        for dialect in ["collect", "pix"] {
            assert!(
                !imports[module].contains(dialect),
                "{module} names {dialect}"
            );
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "src/cashier.rs",
        "src/lifecycle.rs",
        "../kassa/src/operator.rs",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            !text.contains("SandboxRail"),
            "{file} names the sandbox rail"
        );
    }
}
