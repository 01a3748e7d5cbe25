//! The back office in a real browser (headless Chromium through chromedriver): an operator
//! signs in with a TOTP code, finds an order made through the API, sees its timeline and
//! callbacks, resends its callback, resolves an exception, adds a merchant and invites its
//! admin; the admin takes the invitation, signs in, uploads a key and finds an order made with
//! it through the API. axe-core (npm, `tools/axe`) is injected into every page on the way and must
//! report no serious or critical violation. Screenshots go to `target/test-artifacts/`.
//!
//! Without chromium, chromedriver or axe-core the test is skipped with a printed reason;
//! `.ci/run` installs them, and under `CI=true` a missing piece fails the test instead.

#[path = "support/axe.rs"]
mod axe;
mod common;
#[path = "support/office.rs"]
mod office;
#[path = "support/webdriver.rs"]
mod webdriver;

use axe::{accessible, axe_source};
use common::*;
use kassa_core::OrderEvent;
use kassa_core::user::Role;
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use office::Office;
use serde_json::json;
use webdriver::{Browser, browser_available};

/// Waits (up to 10 s) until the page shows `wanted`: a form posted to the page it came from
/// leaves the address as it was, so the address cannot tell that the answer came.
async fn wait_for_text(browser: &Browser, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = text(browser).await;
        if page.contains(wanted) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {wanted:?} in {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn text(browser: &Browser) -> String {
    let text = browser.execute("return document.body.innerText;").await;
    text.as_str().unwrap_or_default().to_string()
}

/// Opens a page, checks it with axe, keeps a screenshot.
async fn visit(browser: &Browser, axe: &str, url: &str, name: &str) {
    browser.open(url).await;
    browser.wait_for_url(url).await;
    accessible(browser, axe, name).await;
    browser.screenshot(&format!("backoffice-{name}.png")).await;
}

async fn sign_in(browser: &Browser, base: &str, email: &str, code: Option<&str>) {
    browser.open(&format!("{base}/admin/overview")).await;
    browser.wait_for_url(&format!("{base}/admin/sign-in")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", office::PASSWORD).await;
    if let Some(code) = code {
        browser.type_into("#code", code).await;
    }
    browser.click("button.primary").await;
    browser
        .wait_for_url(&format!("{base}/admin/overview"))
        .await;
}

/// The shop's callback endpoint: answers `success`.
async fn shop_endpoint() -> String {
    let app = axum::Router::new().route("/notify", axum::routing::post(|| async { "success" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A dispatcher delivering the server's callbacks (to loopback, as the shop is here).
fn dispatcher(server: &Server) -> tokio::sync::watch::Sender<bool> {
    use kassa_server::dispatcher::{Dispatcher, DispatcherConfig};
    let config = DispatcherConfig {
        allow_private_targets: true,
        idle_poll_ms: 50,
        ..DispatcherConfig::default()
    };
    let wake = server.gateway.dispatcher_wake.clone();
    let store: std::sync::Arc<dyn kassa_store::Store> = server.store.clone();
    let dispatcher = std::sync::Arc::new(Dispatcher::new(store, config, wake).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(dispatcher.run(stopped));
    stop
}

async fn an_operator_and_a_merchant_work_in_a_real_browser(db: TestDatabase) {
    if !browser_available() {
        return;
    }
    let Some(axe) = axe_source() else {
        return;
    };
    let server = Server::start_allowing_private_targets(db).await;
    let _dispatching = dispatcher(&server);
    let notify_url = shop_endpoint().await;
    let office = Office::start(&server).await;
    let base = office.base.clone();
    let shop = server
        .store
        .merchant_of_app(server.eur)
        .await
        .unwrap()
        .unwrap();
    let ops = Office::add_user(&server, "ops@psp.example", Role::OperatorAdmin, None).await;
    Office::add_user(
        &server,
        "dev@shop.example",
        Role::MerchantAdmin,
        Some(shop.id.0),
    )
    .await;
    let (sealed, uri) = kassa_server::accounts::enrol_totp(&office.kek, "ops@psp.example");
    let enrolled = office::cli_entry("user.totp-enrol", format!("user:{ops}"));
    server
        .store
        .set_totp_secret(ops, Some(&sealed), &enrolled)
        .await
        .unwrap();
    // An order made through the API, and one the rail could not confirm.
    let mut body = server.apply_body("WEB-1");
    body["notifyUrl"] = json!(notify_url);
    let (status, reply) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200, "{reply}");
    let paid = kassa_core::OrderNo::parse(reply["data"]["orderNo"].as_str().unwrap()).unwrap();
    let (_, reply) = server
        .post("/eur/collect/apply", &server.apply_body("WEB-2"))
        .await;
    let stuck = kassa_core::OrderNo::parse(reply["data"]["orderNo"].as_str().unwrap()).unwrap();
    let paid_event = OrderEvent::Paid {
        requested: kassa_core::AmountMinor(2_500),
        received: kassa_core::AmountMinor(2_500),
    };
    server
        .gateway
        .change_order(&paid, &OrderEvent::PayerStarted)
        .await
        .unwrap();
    let _ = server.gateway.change_order(&paid, &paid_event).await;
    server
        .gateway
        .change_order(&stuck, &OrderEvent::PayerStarted)
        .await
        .unwrap();
    let unsure = OrderEvent::RailException {
        reason: "no answer from the bank".into(),
    };
    server.gateway.change_order(&stuck, &unsure).await.unwrap();
    // The paid order's callback is delivered before anyone looks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server
        .store
        .callbacks_of_order(&paid)
        .await
        .unwrap()
        .iter()
        .all(|c| c.attempts.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the callback was not attempted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let browser = Browser::start().await;
    // The operator: signed out, the sign-in page; then with the second factor.
    browser.open(&format!("{base}/admin/orders")).await;
    browser.wait_for_url(&format!("{base}/admin/sign-in")).await;
    accessible(&browser, &axe, "sign-in").await;
    browser
        .screenshot(&format!(
            "backoffice-sign-in-{}.png",
            server.store.backend().name()
        ))
        .await;
    let secret = kassa_server::totp::secret_of_uri(&uri).unwrap();
    let code = kassa_server::totp::code_at(&secret, (kassa_server::now_ms() / 1_000) as u64);
    sign_in(&browser, &base, "ops@psp.example", Some(&code)).await;
    accessible(&browser, &axe, "overview").await;
    browser.screenshot("backoffice-overview.png").await;

    // A new merchant with a EUR app, and an invitation for its admin.
    visit(
        &browser,
        &axe,
        &format!("{base}/admin/merchants"),
        "merchants",
    )
    .await;
    browser.type_into("#merchant-name", "Nieuwe Winkel").await;
    browser
        .click(r#"input[name="currency"][value="EUR"]"#)
        .await;
    browser
        .click(r#"form[action="/admin/merchants"] button"#)
        .await;
    browser
        .wait_for_url(&format!("{base}/admin/merchants"))
        .await;
    wait_for_text(&browser, "Nieuwe Winkel").await;
    let merchants = server.store.list_merchants().await.unwrap();
    let winkel = merchants
        .iter()
        .find(|m| m.merchant.name == "Nieuwe Winkel")
        .unwrap();
    let winkel_app = winkel.apps[0].app_id;
    visit(&browser, &axe, &format!("{base}/admin/users"), "users").await;
    browser
        .type_into("#invite-email", "admin@winkel.example")
        .await;
    browser
        .click(r#"#invite-role option[value="merchant-admin"]"#)
        .await;
    browser
        .type_into("#invite-merchant", &winkel.merchant.id.0.to_string())
        .await;
    browser
        .click(r#"form[action="/admin/users/invite"] button"#)
        .await;
    browser
        .wait_for_url(&format!("{base}/admin/users/invite"))
        .await;
    accessible(&browser, &axe, "invited").await;
    let link = browser
        .execute("return document.getElementById('link').value;")
        .await;
    let link = link.as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("{base}/admin/invitation/")),
        "{link}"
    );

    // Finds the order by its orderId, opens it, resends its callback.
    visit(&browser, &axe, &format!("{base}/admin/orders"), "orders").await;
    browser.type_into("#q", "WEB-1").await;
    browser.click(".filters button.primary").await;
    browser
        .wait_for_url(&format!("{base}/admin/orders?q=WEB-1"))
        .await;
    browser
        .click(&format!(r#"a[href="/admin/orders/{paid}"]"#))
        .await;
    browser
        .wait_for_url(&format!("{base}/admin/orders/{paid}"))
        .await;
    accessible(&browser, &axe, "order").await;
    let page = text(&browser).await;
    assert!(page.contains("in_progress → succeeded"), "{page}");
    assert!(page.contains(&notify_url), "{page}");
    assert!(page.contains("200, acknowledged"), "its attempt: {page}");
    browser.click(r#"form[action$="/resend"] button"#).await;
    // The page comes back as it was: the store tells when the resend is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server
        .store
        .audit_entries(20)
        .await
        .unwrap()
        .iter()
        .any(|e| e.action == "callback.resend")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the resend did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.screenshot("backoffice-order.png").await;

    // Resolves the exception from the queue.
    visit(
        &browser,
        &axe,
        &format!("{base}/admin/exceptions"),
        "exceptions",
    )
    .await;
    browser
        .click(&format!(r#"a[href="/admin/orders/{stuck}"]"#))
        .await;
    browser
        .wait_for_url(&format!("{base}/admin/orders/{stuck}"))
        .await;
    accessible(&browser, &axe, "exception").await;
    browser.click(r#"input[value="succeeded"]"#).await;
    browser
        .type_into("#reason", "the bank's statement shows the payment")
        .await;
    browser.click(r#"form[action$="/resolve"] button"#).await;
    browser
        .wait_for_url(&format!("{base}/admin/orders/{stuck}"))
        .await;
    wait_for_text(&browser, "exception → succeeded").await;
    for (path, name) in [
        ("/admin/callbacks", "callbacks"),
        ("/admin/apps", "apps"),
        (&format!("/admin/apps/{}", server.eur.0) as &str, "app"),
        ("/admin/channels", "channels"),
        ("/admin/audit", "audit"),
    ] {
        visit(&browser, &axe, &format!("{base}{path}"), name).await;
    }
    let audit = text(&browser).await;
    assert!(
        audit.contains("order.resolve") && audit.contains("callback.resend"),
        "{audit}"
    );
    browser.click(".who button").await;
    browser.wait_for_url(&format!("{base}/admin/sign-in")).await;

    // The invited admin takes the invitation, signs in and uploads the merchant's key.
    browser.open(&link).await;
    browser.wait_for_url(&link).await;
    accessible(&browser, &axe, "invitation").await;
    browser.screenshot("backoffice-invitation.png").await;
    browser.type_into("#password", office::PASSWORD).await;
    browser.type_into("#again", office::PASSWORD).await;
    browser.click("button.primary").await;
    browser.wait_for_url(&format!("{base}/admin/sign-in")).await;
    sign_in(&browser, &base, "admin@winkel.example", None).await;
    visit(&browser, &axe, &format!("{base}/admin/account"), "account").await;
    let app = format!("{base}/admin/apps/{}", winkel_app.0);
    visit(&browser, &axe, &app, "merchant-app").await;
    let key = kassa_signature::SigningKey::generate().unwrap();
    let fingerprint = key.verifying_key().fingerprint();
    browser
        .type_into("#public_key", &key.public_key_pem())
        .await;
    browser.click(r#"form[action$="/key"] button"#).await;
    browser.wait_for_url(&app).await;
    wait_for_text(&browser, &fingerprint).await;
    browser.screenshot("backoffice-merchant-key.png").await;

    // An order through the API, signed with that key, found by its orderId in the portal.
    let mut body = server.apply_body("WINKEL-1");
    body["appId"] = json!(winkel_app.0);
    let (status, reply) = server
        .post_json("/eur/collect/apply", signed(&body, &key))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], json!("1"), "{reply}");
    visit(
        &browser,
        &axe,
        &format!("{base}/admin/orders"),
        "merchant-orders",
    )
    .await;
    browser.type_into("#q", "WINKEL-1").await;
    browser.click(".filters button.primary").await;
    browser
        .wait_for_url(&format!("{base}/admin/orders?q=WINKEL-1"))
        .await;
    let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();
    browser
        .click(&format!(r#"a[href="/admin/orders/{order_no}"]"#))
        .await;
    browser
        .wait_for_url(&format!("{base}/admin/orders/{order_no}"))
        .await;
    let page = text(&browser).await;
    assert!(
        page.contains("created") && page.contains("WINKEL-1"),
        "{page}"
    );
    // The shop's orders are not the new merchant's to see.
    browser.open(&format!("{base}/admin/orders/{paid}")).await;
    let page = text(&browser).await;
    assert!(page.contains("Not found"), "{page}");
    browser.quit().await;
}

kassa_store::on_both_databases!(
    kassa_store::testing::database;
    an_operator_and_a_merchant_work_in_a_real_browser,
);
