//! The payer's side over real HTTP: cashier and direct orders through every outcome, the
//! operator's resolution, expiry, fees, payTime in the operator's zone, and the bad input of
//! the specification (tampered tokens, CSRF, double submissions, methods not offered).

mod common;

use common::*;
use kassa_core::{AmountMinor, FeeRule, OrderEvent, OrderNo};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use serde_json::{Value, json};

/// A browser that shows every redirect instead of following it, of a payer who reads
/// English (the pages' language tests set their own).
fn browser() -> reqwest::Client {
    let mut english = reqwest::header::HeaderMap::new();
    english.insert("accept-language", "en-GB,en;q=0.9".parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(english)
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    location: Option<String>,
    html: String,
}

async fn get(url: &str) -> Page {
    let response = browser().get(url).send().await.unwrap();
    page_of(response).await
}

async fn page_of(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    Page {
        status,
        location,
        html: response.text().await.unwrap(),
    }
}

async fn post_form(url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
    let mut request = browser().post(url).form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    page_of(request.send().await.unwrap()).await
}

/// The hidden form token of a page.
fn csrf(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a form token") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

impl Server {
    /// Creates an order over the API; returns its payUrl and order number.
    async fn order(&self, order_id: &str, edit: impl FnOnce(&mut Value)) -> (String, OrderNo) {
        let mut body = self.apply_body(order_id);
        edit(&mut body);
        let (status, reply) = self.post("/eur/collect/apply", &body).await;
        assert_eq!(status, 200, "{reply}");
        let data = self.verified_data(&reply);
        (
            data["payUrl"].as_str().unwrap().to_string(),
            OrderNo::parse(data["orderNo"].as_str().unwrap()).unwrap(),
        )
    }

    /// The query `data` of an order.
    async fn queried(&self, order_id: &str) -> serde_json::Map<String, Value> {
        let (status, reply) = self
            .post(
                "/eur/collect/query",
                &json!({"appId": self.eur.0, "orderId": order_id}),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        self.verified_data(&reply)
    }
}

/// Opens the page of a direct order (it starts) and submits an outcome.
async fn settle_direct(
    server: &Server,
    order_id: &str,
    outcome: &str,
    amount: &str,
) -> (String, Page) {
    let (pay_url, _) = server
        .order(order_id, |b| {
            b["payType"] = json!("BANK_TRANSFER");
            b["inBankCode"] = json!("IDEAL_EUR");
        })
        .await;
    let page = get(&pay_url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("iDEAL"),
        "the method page opens directly"
    );
    let after = post_form(
        &format!("{pay_url}/outcome"),
        &[
            ("outcome", outcome),
            ("amount", amount),
            ("csrf", &csrf(&page.html)),
        ],
        &[],
    )
    .await;
    (pay_url, after)
}

async fn cashier_order_is_paid(server: Server) {
    let (pay_url, _) = server.order("C-1", |_| {}).await;
    let token = pay_url.rsplit('/').next().unwrap().to_string();
    let methods = get(&pay_url).await;
    assert_eq!(methods.status, 200);
    assert!(
        methods.html.contains(r#"value="IDEAL_EUR""#),
        "country 528 offers iDEAL"
    );
    assert!(
        !methods.html.contains(r#"value="BANCONTACT_EUR""#),
        "but not Bancontact"
    );
    assert!(methods.html.contains("Shop") && methods.html.contains("€25.00"));
    assert_eq!(server.queried("C-1").await["status"], 0);

    let chosen = post_form(
        &format!("{pay_url}/method"),
        &[("method", "IDEAL_EUR"), ("csrf", &csrf(&methods.html))],
        &[],
    )
    .await;
    assert_eq!(
        (chosen.status, chosen.location.as_deref()),
        (303, Some(format!("../{token}").as_str()))
    );
    assert_eq!(
        server.queried("C-1").await["status"],
        1,
        "in progress once a method page opens"
    );

    let method_page = get(&pay_url).await;
    assert!(method_page.html.contains("iDEAL") && method_page.html.contains(r#"value="paid""#));
    let paid = post_form(
        &format!("{pay_url}/outcome"),
        &[
            ("outcome", "paid"),
            ("amount", "25.00"),
            ("csrf", &csrf(&method_page.html)),
        ],
        &[],
    )
    .await;
    assert_eq!(
        paid.location.as_deref(),
        Some(format!("../{token}?done=1").as_str())
    );
    let result = get(&format!("{pay_url}?done=1")).await;
    assert!(result.html.contains("Paid"));
    assert!(
        result
            .html
            .contains(r#"http-equiv="refresh" content="1;url=https://shop.example/ok""#),
        "back to callBackUrl: {}",
        result.html
    );
    let data = server.queried("C-1").await;
    assert_eq!(
        (data["status"].as_i64(), data["actualAmount"].as_str()),
        (Some(2), Some("25.00"))
    );
    assert!(data["payTime"].is_string());
    let stored = server
        .store
        .order_by_merchant_order_id(server.eur, "C-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.chosen_method.map(|m| m.code), Some("IDEAL_EUR"));
    // The order had a notifyUrl: its callback is queued with the change.
    assert_eq!(
        server
            .store
            .callbacks_of_order(&stored.order_no)
            .await
            .unwrap()
            .len(),
        1
    );
    // A final page shows the result and offers no form.
    let again = get(&pay_url).await;
    assert!(again.html.contains("Paid") && !again.html.contains("<form"));
}

/// Every page speaks the payer's language: the browser's when kassa speaks it, else the order's
/// country's; with the amount written as that locale writes it and `lang` set.
async fn pages_speak_the_payers_language(server: Server) {
    use kassa_core::{AmountMinor, Currency, Locale};
    use kassa_server::payer_text::Texts;
    let (pay_url, _) = server.order("L-1", |_| {}).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page_in = |language: Option<&'static str>| {
        let mut request = plain.get(&pay_url);
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    for locale in Locale::ALL {
        let html = page_in(Some(locale.tag())).await;
        let t = Texts::of(locale);
        assert!(
            html.contains(&format!(r#"<html lang="{}""#, locale.tag())),
            "{locale:?}"
        );
        let money = locale.money(AmountMinor(2500), Currency::Eur);
        assert!(html.contains(&money), "{locale:?} writes {money:?}: {html}");
        assert!(
            html.contains(t.choose_method) && html.contains(t.order),
            "{locale:?}"
        );
        // The deadline in text, readable without JavaScript, in the locale's date format.
        assert!(
            html.contains(t.pay_by) && html.contains("<time datetime="),
            "{locale:?}"
        );
    }
    // No language kassa speaks in the browser: the order's country (528, the Netherlands).
    let dutch = page_in(Some("ja, zh;q=0.5")).await;
    assert!(dutch.contains(r#"<html lang="nl""#) && dutch.contains("€\u{a0}25,00"));
    let unsaid = page_in(None).await;
    assert!(unsaid.contains(r#"<html lang="nl""#));
    // A page without an order speaks the browser's language.
    let missing = plain
        .get(format!("{}/pay/{}", server.base, "A".repeat(43)))
        .header("accept-language", "pl-PL")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        missing.contains(Texts::of(Locale::Pl).not_found_title),
        "{missing}"
    );
    // The merchant's `language` beats the browser; a tag kassa does not speak falls back; a
    // malformed one is refused.
    let (polish_url, _) = server.order("L-2", |b| b["language"] = json!("pl")).await;
    let polish = get(&polish_url).await;
    assert!(
        polish.html.contains(r#"<html lang="pl""#),
        "{}",
        polish.html
    );
    let (japanese_url, _) = server
        .order("L-3", |b| b["language"] = json!("ja-JP"))
        .await;
    assert!(get(&japanese_url).await.html.contains(r#"<html lang="en""#));
    let mut bad = server.apply_body("L-4");
    bad["language"] = json!("pt BR");
    let (status, reply) = server.post("/eur/collect/apply", &bad).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (400, Some("10000005")),
        "{reply}"
    );
    // The merchant's colour, where the operator set one.
    let navy = kassa_core::BrandColour::parse("#1f2a44").unwrap();
    server
        .store
        .set_app_brand(server.eur, Some(&navy), 1, None)
        .await
        .unwrap();
    let (branded_url, _) = server.order("L-5", |_| {}).await;
    // The app cache may hold the app for its lifetime: look until the colour shows.
    let mut branded = String::new();
    for _ in 0..50 {
        branded = get(&branded_url).await.html;
        if branded.contains("--accent: #1f2a44") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(branded.contains("--accent: #1f2a44"), "{branded}");
}

/// A PNG of `width` × `height` pixels, as a merchant's designer would export it.
fn png_logo(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    bytes
}

/// The merchant's logo: served by kassa itself (never from a third party), with its type and
/// a `nosniff` guard, cached for good under an address that changes with each new logo; the
/// pages show it beside the merchant's name; without one, no image at all.
async fn the_merchants_logo_is_served_by_kassa(server: Server) {
    let (plain_url, _) = server.order("G-1", |_| {}).await;
    assert!(!get(&plain_url).await.html.contains("/assets/logo/"));
    let logo = kassa_server::logo::check(png_logo(120, 40)).unwrap();
    server
        .store
        .set_app_logo(server.eur, Some(&logo), 77, None)
        .await
        .unwrap();
    let (pay_url, _) = server.order("G-2", |_| {}).await;
    let address = format!("/assets/logo/{}/77", server.eur);
    let html = get(&pay_url).await.html;
    assert!(
        html.contains(&format!(r#"<img src="{address}" alt="""#)),
        "{html}"
    );
    let image = browser()
        .get(format!("{}{address}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    let header = |name: &str| image.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("cache-control").contains("immutable"));
    assert_eq!(image.bytes().await.unwrap().as_ref(), logo.bytes.as_slice());
    // An old address gets the current logo, briefly cached; nonsense and logo-less apps get
    // the payer's "not found" page.
    let old = browser()
        .get(format!("{}/assets/logo/{}/1", server.base, server.eur))
        .send()
        .await
        .unwrap();
    assert_eq!(old.headers()["cache-control"], "public, max-age=60");
    for path in [
        format!("/assets/logo/{}/77", server.usd),
        "/assets/logo/x/1".to_string(),
        "/assets/logo/1/%27".to_string(),
    ] {
        let page = get(&format!("{}{path}", server.base)).await;
        assert_eq!(page.status, 404, "{path}");
    }
    // Removed: the pages stop showing it.
    server
        .store
        .set_app_logo(server.eur, None, 78, None)
        .await
        .unwrap();
    assert!(server.store.app_logo(server.eur).await.unwrap().is_none());
    let (after_url, _) = server.order("G-3", |_| {}).await;
    assert!(!get(&after_url).await.html.contains("/assets/logo/"));
}

/// "Back to the shop": confirmed on a page of its own, the order fails as cancelled by the payer
/// (the merchant hears it) and the payer lands on the shop's failure page; a PIX order, whose
/// code stays payable at the bank, offers no such way.
async fn the_payer_can_go_back_to_the_shop(server: Server) {
    let (pay_url, _) = server.order("B-1", |_| {}).await;
    let token = pay_url.rsplit('/').next().unwrap().to_string();
    let methods = get(&pay_url).await;
    assert!(methods.html.contains("?cancel=1") && methods.html.contains("Back to the shop"));
    let asked = get(&format!("{pay_url}?cancel=1")).await;
    assert!(asked.html.contains("Cancel this payment"), "{}", asked.html);
    assert_eq!(
        server.queried("B-1").await["status"],
        0,
        "asking changes nothing"
    );
    let forged = post_form(&format!("{pay_url}/cancel"), &[("csrf", "forged")], &[]).await;
    assert_eq!(forged.status, 403);
    let cancelled = post_form(
        &format!("{pay_url}/cancel"),
        &[("csrf", &csrf(&asked.html))],
        &[],
    )
    .await;
    assert_eq!(cancelled.status, 303);
    assert_eq!(
        cancelled.location.as_deref(),
        Some("https://shop.example/fail")
    );
    let data = server.queried("B-1").await;
    assert_eq!(
        (data["status"].as_i64(), data["errorMsg"].as_str()),
        (Some(3), Some("cancelled by the payer"))
    );
    // Once final, the page shows the result and offers no way back.
    let result = get(&pay_url).await;
    assert!(!result.html.contains("?cancel=1"));
    let again = post_form(
        &format!("{pay_url}/cancel"),
        &[("csrf", &csrf(&asked.html))],
        &[],
    )
    .await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("../{token}").as_str())
    );
}

/// A payer who started one method goes back to the list and pays with another: the order stays
/// in progress meanwhile and succeeds with the method finally used.
async fn the_payer_can_choose_another_method(server: Server) {
    let (pay_url, order_no) = server.order("S-1", |b| b["country"] = json!("000")).await;
    let methods = get(&pay_url).await;
    let chosen = post_form(
        &format!("{pay_url}/method"),
        &[("method", "IDEAL_EUR"), ("csrf", &csrf(&methods.html))],
        &[],
    )
    .await;
    assert_eq!(chosen.status, 303);
    let bank = get(&pay_url).await;
    assert!(bank.html.contains("?methods=1") && bank.html.contains("Choose another method"));
    let list = get(&format!("{pay_url}?methods=1")).await;
    assert!(list.html.contains(r#"value="EPS_EUR""#), "{}", list.html);
    assert_eq!(
        server.queried("S-1").await["status"],
        1,
        "still in progress"
    );
    let switched = post_form(
        &format!("{pay_url}/method"),
        &[("method", "EPS_EUR"), ("csrf", &csrf(&list.html))],
        &[],
    )
    .await;
    assert_eq!(switched.status, 303);
    let bank = get(&pay_url).await;
    assert!(bank.html.contains("<h1>EPS</h1>"), "{}", bank.html);
    let paid = post_form(
        &format!("{pay_url}/outcome"),
        &[("outcome", "paid"), ("csrf", &csrf(&bank.html))],
        &[],
    )
    .await;
    assert_eq!(paid.status, 303);
    let stored = server.store.order_by_no(&order_no).await.unwrap().unwrap();
    assert_eq!(stored.status, kassa_core::OrderStatus::Succeeded);
    assert_eq!(stored.chosen_method.map(|m| m.code), Some("EPS_EUR"));
    // Final: no way back to the list.
    let result = get(&format!("{pay_url}?methods=1")).await;
    assert!(!result.html.contains(r#"name="method""#));
}

async fn every_outcome_path(server: Server) {
    for (outcome, status, reason, back_to) in [
        ("failed", 3, "declined", "https://shop.example/fail"),
        ("cancelled", 3, "cancelled", "https://shop.example/fail"),
        ("expired", 3, "expired", "https://shop.example/fail"),
        ("exception", -1, "could not confirm", ""),
    ] {
        let order_id = format!("D-{outcome}");
        let (pay_url, after) = settle_direct(&server, &order_id, outcome, "").await;
        assert_eq!(after.status, 303);
        let data = server.queried(&order_id).await;
        assert_eq!(data["status"], status, "{outcome}");
        assert!(
            data["errorMsg"].as_str().unwrap().contains(reason),
            "{outcome}: {data:?}"
        );
        let page = get(&format!("{pay_url}?done=1")).await;
        if status == -1 {
            assert!(
                page.html.contains("Confirming your payment") && !page.html.contains("refresh")
            );
        } else {
            assert!(
                page.html.contains("Not paid") && page.html.contains(back_to),
                "{outcome}"
            );
        }
    }
    // A different amount received puts the order in exception; the operator settles it.
    let (_, after) = settle_direct(&server, "D-short", "paid", "20.00").await;
    assert_eq!(after.status, 303);
    let data = server.queried("D-short").await;
    assert_eq!(
        (data["status"].as_i64(), data["actualAmount"].as_str()),
        (Some(-1), Some("20.00"))
    );
    let order_no = OrderNo::parse(data["orderNo"].as_str().unwrap()).unwrap();
    server
        .gateway
        .lifecycle()
        .apply_event(&order_no, &OrderEvent::OperatorSucceeded, 1)
        .await
        .unwrap();
    assert_eq!(server.queried("D-short").await["status"], 2);
    let (_, _) = settle_direct(&server, "D-exc", "exception", "").await;
    let order = server
        .store
        .order_by_merchant_order_id(server.eur, "D-exc")
        .await
        .unwrap()
        .unwrap();
    let failed = OrderEvent::OperatorFailed {
        reason: "no money arrived".into(),
    };
    server
        .gateway
        .lifecycle()
        .apply_event(&order.order_no, &failed, 1)
        .await
        .unwrap();
    let data = server.queried("D-exc").await;
    assert_eq!(
        (data["status"].as_i64(), data["errorMsg"].as_str()),
        (Some(3), Some("no money arrived"))
    );
}

async fn double_submissions_settle_once(server: Server) {
    let (pay_url, _) = server
        .order("X-1", |b| {
            b["payType"] = json!("BANK_TRANSFER");
            b["inBankCode"] = json!("IDEAL_EUR");
        })
        .await;
    let page = get(&pay_url).await;
    let token = csrf(&page.html);
    let outcome_url = format!("{pay_url}/outcome");
    let paid_form = [("outcome", "paid"), ("csrf", token.as_str())];
    let failed_form = [("outcome", "failed"), ("csrf", token.as_str())];
    let (a, b) = tokio::join!(
        post_form(&outcome_url, &paid_form, &[]),
        post_form(&outcome_url, &failed_form, &[]),
    );
    let done: Vec<bool> = [&a, &b]
        .iter()
        .map(|p| p.location.as_deref().unwrap().ends_with("?done=1"))
        .collect();
    assert_eq!(
        done.iter().filter(|d| **d).count(),
        1,
        "one outcome wins: {done:?}"
    );
    let status = server.queried("X-1").await["status"].as_i64().unwrap();
    assert!(status == 2 || status == 3);
    // A replayed form for the final order changes nothing and shows the result.
    let replay = post_form(
        &outcome_url,
        &[("outcome", "exception"), ("csrf", &token)],
        &[],
    )
    .await;
    assert_eq!(replay.status, 303);
    assert!(!replay.location.unwrap().contains("done"));
    assert_eq!(
        server.queried("X-1").await["status"].as_i64().unwrap(),
        status
    );
    let order = server
        .store
        .order_by_merchant_order_id(server.eur, "X-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server
            .store
            .callbacks_of_order(&order.order_no)
            .await
            .unwrap()
            .len(),
        1,
        "one callback"
    );
}

async fn forged_and_foreign_forms_are_refused(server: Server) {
    let (pay_url, _) = server.order("F-1", |_| {}).await;
    let page = get(&pay_url).await;
    let token = csrf(&page.html);
    let method_url = format!("{pay_url}/method");
    for (form, headers, status) in [
        (
            vec![("method", "IDEAL_EUR"), ("csrf", "forged")],
            vec![],
            403,
        ),
        (vec![("method", "IDEAL_EUR")], vec![], 400),
        (
            vec![("method", "IDEAL_EUR"), ("csrf", token.as_str())],
            vec![("origin", "https://evil.example")],
            403,
        ),
        (
            vec![("method", "IDEAL_EUR"), ("csrf", token.as_str())],
            vec![("sec-fetch-site", "cross-site")],
            403,
        ),
        (
            vec![("method", "BANCONTACT_EUR"), ("csrf", token.as_str())],
            vec![],
            400,
        ),
        (
            vec![("method", "GOOGLE_PAY"), ("csrf", token.as_str())],
            vec![],
            400,
        ),
        (
            vec![("method", "NOPE"), ("csrf", token.as_str())],
            vec![],
            400,
        ),
    ] {
        let refused = post_form(&method_url, &form, &headers).await;
        assert_eq!(refused.status, status, "{form:?} {headers:?}");
        assert_eq!(server.queried("F-1").await["status"], 0, "nothing changed");
    }
    // The token of another order's page does not open this one.
    let (other_url, _) = server.order("F-2", |_| {}).await;
    let other_token = csrf(&get(&other_url).await.html);
    let refused = post_form(
        &method_url,
        &[("method", "IDEAL_EUR"), ("csrf", &other_token)],
        &[],
    )
    .await;
    assert_eq!(refused.status, 403);
    // The outcome form is guarded the same way.
    let origin = server.base.clone();
    let chosen = post_form(
        &method_url,
        &[("method", "IDEAL_EUR"), ("csrf", &token)],
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(chosen.status, 303);
    let outcome_url = format!("{pay_url}/outcome");
    let forged = post_form(&outcome_url, &[("outcome", "paid"), ("csrf", "x")], &[]).await;
    assert_eq!(forged.status, 403);
    let bad_amount = post_form(
        &outcome_url,
        &[("outcome", "paid"), ("amount", "1,00"), ("csrf", &token)],
        &[],
    )
    .await;
    assert_eq!(bad_amount.status, 400);
    let unknown = post_form(
        &outcome_url,
        &[("outcome", "refunded"), ("csrf", &token)],
        &[],
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(server.queried("F-1").await["status"], 1);
}

async fn unknown_and_tampered_tokens_reveal_nothing(server: Server) {
    let (pay_url, order_no) = server.order("T-1", |_| {}).await;
    let token = pay_url.rsplit('/').next().unwrap();
    let mut tampered = token.to_string();
    let last = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(last);
    for path in [
        format!("/pay/{tampered}"),
        format!("/pay/{}", &token[..20]),
        format!("/pay/{}", order_no.as_str()),
        "/pay/%3Cscript%3E".to_string(),
    ] {
        let page = get(&format!("{}{path}", server.base)).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            !page.html.contains("T-1") && !page.html.contains("25.00"),
            "{path} reveals the order"
        );
        let posted = post_form(
            &format!("{}{path}/outcome", server.base),
            &[("outcome", "paid"), ("csrf", "x")],
            &[],
        )
        .await;
        assert_eq!(posted.status, 404);
    }
}

async fn orders_expire(server: Server) {
    // Lifetime of 1 ms: every order is due at once.
    let (_, _) = server.order("E-2", |_| {}).await;
    assert_eq!(kassa_server::sweeper::sweep_once(&server.gateway).await, 1);
    let data = server.queried("E-2").await;
    assert_eq!(
        (data["status"].as_i64(), data["errorMsg"].as_str()),
        (Some(3), Some("the order expired"))
    );
    assert_eq!(
        kassa_server::sweeper::sweep_once(&server.gateway).await,
        0,
        "final stays final"
    );
    // The page of an expired order shows the result, even before a sweep came by.
    let (pay_url, _) = server.order("E-1", |_| {}).await;
    let page = get(&pay_url).await;
    assert!(page.html.contains("Not paid") && page.html.contains("expired"));
    assert_eq!(server.queried("E-1").await["status"], 3);
}

/// An overdue order takes no payment and no method, whether or not the sweep came by: it is
/// expired then, and its merchant hears "failed, expired" once.
async fn overdue_orders_refuse_payment(server: Server) {
    // Lifetime of 1 ms: the order is overdue before anything reaches it; no sweep runs here.
    let (_, order_no) = server
        .order("X-1", |b| {
            b["payType"] = json!("BANK_TRANSFER");
            b["inBankCode"] = json!("IDEAL_EUR");
        })
        .await;
    let paid = OrderEvent::Paid {
        requested: AmountMinor(2_500),
        received: AmountMinor(2_500),
    };
    let refused = server.gateway.change_order(&order_no, &paid).await;
    assert!(
        matches!(
            refused,
            Err(kassa_server::lifecycle::LifecycleError::Expired(_))
        ),
        "{refused:?}"
    );
    let data = server.queried("X-1").await;
    assert_eq!(
        (data["status"].as_i64(), data["errorMsg"].as_str()),
        (Some(3), Some("the order expired"))
    );
    assert_eq!(
        server
            .store
            .callbacks_of_order(&order_no)
            .await
            .unwrap()
            .len(),
        1
    );
    // A cashier order: choosing a method after expiry shows the result, nothing starts.
    let (pay_url, _) = server.order("X-2", |_| {}).await;
    let token = pay_url.rsplit('/').next().unwrap();
    let csrf = server.gateway.form_key.token_for(token);
    let chosen = post_form(
        &format!("{pay_url}/method"),
        &[("method", "IDEAL_EUR"), ("csrf", &csrf)],
        &[],
    )
    .await;
    assert_ne!(chosen.status, 500);
    assert_eq!(server.queried("X-2").await["status"], 3);
}

/// More overdue orders than one sweep batch are all expired at once, not one batch per interval.
async fn the_sweep_keeps_up_with_a_backlog(server: Server) {
    let app = server.store.app(server.eur).await.unwrap().unwrap();
    let inserts = (0..600).map(|i| {
        let (store, app) = (server.store.clone(), app.clone());
        tokio::spawn(async move {
            let new = kassa_core::NewOrder {
                app_id: app.app_id,
                merchant_order_id: format!("B-{i}"),
                amount_minor: AmountMinor(1_000),
                method: kassa_core::PaymentMethod::by_code("IDEAL_EUR").unwrap(),
                country: None,
                payer: None,
                subject: None,
                body: None,
                callback_url: None,
                callback_fail_url: None,
                notify_url: None,
                language: None,
                request_fingerprint: format!("fp-{i}"),
                dialect: "collect",
            };
            let now = kassa_server::now_ms();
            let ids = kassa_server::ids::new_order_ids(now);
            let mut order = kassa_core::Order::create(&app, new, ids, now - 10, 1).unwrap();
            order.route_to("sandbox", "sandbox");
            store.insert_order(&order).await.unwrap();
        })
    });
    for insert in inserts.collect::<Vec<_>>() {
        insert.await.unwrap();
    }
    // An hour between sweeps: only looping while batches come back full can clear 600.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(kassa_server::sweeper::run(
        server.gateway.clone(),
        3_600_000,
        stopped,
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = server.store.expired_orders(kassa_server::now_ms(), 1).await;
        if left.unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep fell behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    sweeper.await.unwrap();
}

async fn fees_and_local_pay_time(server: Server) {
    let rule = FeeRule::new(150, AmountMinor(25)).unwrap();
    server
        .store
        .set_fee_rule(server.eur, "IDEAL_EUR", Some(rule), 1, None)
        .await
        .unwrap();
    let (_, _) = settle_direct(&server, "P-1", "paid", "").await;
    let data = server.queried("P-1").await;
    assert_eq!(
        (data["fee"].as_str(), data["actualAmount"].as_str()),
        (Some("0.63"), Some("25.00"))
    );
    // São Paulo is UTC−3 all year.
    let order = server
        .store
        .order_by_merchant_order_id(server.eur, "P-1")
        .await
        .unwrap()
        .unwrap();
    let expected = kassa_core::time::format_datetime(order.paid_at_ms.unwrap(), -3 * 3600);
    assert_eq!(data["payTime"].as_str(), Some(expected.as_str()));
}

async fn short_lived(db: TestDatabase) -> Server {
    Server::start_configured(db, |config| config.collect_order_lifetime_ms = 1).await
}

async fn in_sao_paulo(db: TestDatabase) -> Server {
    let zone = kassa_server::notary::parse_timezone("America/Sao_Paulo").unwrap();
    Server::start_in_zone(db, |_| {}, zone).await
}

kassa_store::on_both_databases!(
    super::Server::start;
    cashier_order_is_paid,
    pages_speak_the_payers_language,
    the_merchants_logo_is_served_by_kassa,
    the_payer_can_go_back_to_the_shop,
    the_payer_can_choose_another_method,
    every_outcome_path,
    double_submissions_settle_once,
    forged_and_foreign_forms_are_refused,
    unknown_and_tampered_tokens_reveal_nothing,
);

mod expiring {
    use super::orders_expire;
    use super::{overdue_orders_refuse_payment, the_sweep_keeps_up_with_a_backlog};
    kassa_store::on_both_databases!(
        super::super::short_lived;
        orders_expire,
        overdue_orders_refuse_payment,
        the_sweep_keeps_up_with_a_backlog,
    );
}

mod timezone {
    use super::fees_and_local_pay_time;
    kassa_store::on_both_databases!(super::super::in_sao_paulo; fees_and_local_pay_time);
}
