//! The payer's pages in every language kassa speaks, in a real browser: headless Chromium set to
//! the payer's language opens a cashier order's method list, the sandbox bank's page, the result,
//! a PIX order's page and a missing page; each shows the page's language in `lang` and the
//! amount as that locale writes it, and axe-core finds no serious or critical WCAG 2.2 AA
//! violation, at 320 px wide without sideways scrolling. Screenshots per page, language and
//! width (390 px, 1280 px) are kept in `target/test-artifacts/`.
//!
//! Without chromium, chromedriver or axe-core the test is skipped with a printed reason; under
//! `CI=true` a missing one fails it.

#[path = "support/axe.rs"]
mod axe;
mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use axe::{accessible, axe_source};
use common::*;
use kassa_core::{AmountMinor, Currency, Locale};
use kassa_server::payer_text::Texts;
use kassa_store::MerchantStore;
use kassa_store::testing::TestDatabase;
use serde_json::json;
use webdriver::{Browser, browser_available};

async fn page_text(browser: &Browser) -> String {
    let text = browser.execute("return document.body.innerText;").await;
    text.as_str().unwrap_or_default().to_string()
}

/// Checks the open page: its language, a text, axe; keeps a screenshot.
/// Waits (up to 10 s: a submitted form's answer comes to the same address) for `wanted`.
async fn check(browser: &Browser, axe: &str, locale: Locale, wanted: &str, name: &str) {
    // innerText turns no-break spaces into spaces on some platforms: compare without them.
    let plain = |s: &str| s.replace(['\u{a0}', '\u{202f}'], " ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = page_text(browser).await;
        if plain(&text).contains(&plain(wanted)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} in {locale:?} lacks {wanted:?}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Nothing wider than the screen (320 px: the narrowest phones, and reflow at high zoom).
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        )
        .await;
    assert_eq!(overflow, json!(0), "{name} in {locale:?} scrolls sideways");
    // The page and everything it loaded (its script, the merchant's logo).
    let weight = browser
        .execute(
            "return document.documentElement.outerHTML.length + performance \
             .getEntriesByType('resource').reduce((sum, r) => sum + r.encodedBodySize, 0);",
        )
        .await;
    assert!(
        weight.as_u64().unwrap() < 50 * 1024,
        "{name} weighs {weight}"
    );
    let lang = browser
        .execute("return document.documentElement.lang;")
        .await;
    assert_eq!(lang, json!(locale.tag()), "{name} in {locale:?}");
    accessible(browser, axe, &format!("{name} ({})", locale.tag())).await;
    // Screenshots as a phone (390 px) and a desktop (1280 px) show it; checks ran at 320 px.
    for width in [390, 1280] {
        resize(browser, width).await;
        let file = format!("payer-{name}-{}-{width}.png", locale.tag());
        browser.screenshot(&file).await;
    }
    resize(browser, 320).await;
}

/// A shop's logo: a 240 × 72 PNG (drawn at 2× for sharp screens), a plum band with a light
/// circle.
fn logo_png() -> Vec<u8> {
    let (width, height) = (240u32, 72u32);
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let (dx, dy) = (x as i64 - 36, y as i64 - 36);
            let inside = dx * dx + dy * dy < 28 * 28;
            let pixel = match (inside, x < 80) {
                (true, _) => [0xf3, 0xd9, 0xe8, 0xff],
                (false, true) => [0x6b, 0x2d, 0x5c, 0xff],
                (false, false) => [0, 0, 0, 0],
            };
            pixels.extend_from_slice(&pixel);
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgba);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    bytes
}

async fn resize(browser: &Browser, width: u32) {
    let rect = json!({"width": width, "height": 900});
    browser
        .session(reqwest::Method::POST, "/window/rect", Some(rect))
        .await;
}

async fn pix_url(server: &Server, number: &str) -> String {
    let reply = server.create_pix(number, "12.34").await;
    reply["data"]["url"]
        .as_str()
        .expect("a PIX order")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payer_page_in_every_language() {
    if !browser_available() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let server = Server::start(TestDatabase::sqlite().await).await;
    // The merchant's logo and colour, as a shop would set them (the pages weigh them too).
    let logo = kassa_server::logo::check(logo_png()).unwrap();
    let colour = kassa_core::BrandColour::parse("#6b2d5c").unwrap();
    for app in [server.eur, server.brl] {
        server
            .store
            .set_app_logo(app, Some(&logo), 5, None)
            .await
            .unwrap();
        server
            .store
            .set_app_brand(app, Some(&colour), 5, None)
            .await
            .unwrap();
    }
    for locale in Locale::ALL {
        let t = Texts::of(locale);
        let browser = Browser::start_speaking(locale.tag()).await;
        resize(&browser, 320).await;
        let mut body = server.apply_body(&format!("lang-{}", locale.tag()));
        body["country"] = json!("000");
        let (status, reply) = server.post("/eur/collect/apply", &body).await;
        assert_eq!(status, 200, "{reply}");
        let pay_url = reply["data"]["payUrl"].as_str().unwrap().to_string();
        let euros = locale.money(AmountMinor(2500), Currency::Eur);

        browser.open(&format!("{pay_url}?cancel=1")).await;
        check(&browser, &axe, locale, t.cancel_confirm, "cancel").await;
        browser.open(&pay_url).await;
        check(&browser, &axe, locale, &euros, "methods").await;
        browser.click("button[name=method]").await;
        check(&browser, &axe, locale, t.sandbox_note, "bank").await;
        browser.click("button[value=paid]").await;
        // The result page sends the payer on to the shop; the page itself, opened again, stays.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        browser.open(&pay_url).await;
        check(&browser, &axe, locale, t.paid, "result").await;

        let pix = pix_url(&server, &format!("pix-{}", locale.tag())).await;
        browser.open(&pix).await;
        let reais = locale.money(AmountMinor(1234), Currency::Brl);
        check(&browser, &axe, locale, &reais, "pix").await;
        // The countdown runs (hh:mm:ss left of the PIX order's 24 hours).
        let left = browser
            .execute("return document.getElementById('countdown').textContent;")
            .await;
        let left = left.as_str().unwrap_or_default();
        assert!(
            left.starts_with("(23:") || left.starts_with("(24:"),
            "{left:?}"
        );

        browser
            .open(&format!("{}/pay/{}", server.base, "A".repeat(43)))
            .await;
        check(&browser, &axe, locale, t.not_found_title, "not-found").await;
        browser.quit().await;
    }
}
