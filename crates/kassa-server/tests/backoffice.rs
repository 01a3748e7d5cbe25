//! The back office over HTTP, on SQLite and PostgreSQL: the authorisation matrix over every
//! route and role (and another merchant's objects by URL), CSRF, escaping, cookies, session
//! fixation, lockout, and the daily tasks — find an order, see its timeline and callbacks,
//! resend, resolve an exception, export CSV — each audited.

mod common;
#[path = "support/office.rs"]
mod office;

use axum::http::Method;
use common::*;
use kassa_core::user::Role;
use kassa_core::{OrderEvent, OrderNo};
use kassa_server::backoffice::{Access, route_table};
use kassa_store::prelude::*;
use kassa_store::testing::TestDatabase;
use office::{Office, Session, cookie_pair, csrf_of};
use serde_json::json;
use std::collections::BTreeSet;

const ROLES: [Role; 4] = [
    Role::OperatorAdmin,
    Role::OperatorSupport,
    Role::MerchantAdmin,
    Role::MerchantDeveloper,
];

/// Who may use each route, written apart from the server's own table: operator admin,
/// operator support, merchant admin, merchant developer. A route missing here fails the test.
const MATRIX: &[(&str, &str, [bool; 4])] = &[
    ("GET", "/admin/", [true; 4]),
    ("GET", "/admin/assets/backoffice.css", [true; 4]),
    ("GET", "/admin/sign-in", [true; 4]),
    ("POST", "/admin/sign-in", [true; 4]),
    ("POST", "/admin/sign-out", [true; 4]),
    ("GET", "/admin/overview", [true; 4]),
    ("GET", "/admin/account", [true; 4]),
    ("POST", "/admin/account/second-factor", [true; 4]),
    (
        "POST",
        "/admin/users/second-factor",
        [true, false, false, false],
    ),
    ("GET", "/admin/orders", [true; 4]),
    ("GET", "/admin/orders.csv", [true; 4]),
    ("GET", "/admin/orders/{order_no}", [true; 4]),
    ("POST", "/admin/orders/{order_no}/resend", [true; 4]),
    (
        "POST",
        "/admin/orders/{order_no}/resolve",
        [true, true, false, false],
    ),
    ("GET", "/admin/exceptions", [true, true, false, false]),
    ("GET", "/admin/callbacks", [true; 4]),
    ("POST", "/admin/callbacks/resend", [true; 4]),
    ("GET", "/admin/apps", [true; 4]),
    ("GET", "/admin/apps/{app_id}", [true; 4]),
    (
        "POST",
        "/admin/apps/{app_id}/key",
        [true, false, true, true],
    ),
    ("GET", "/admin/apps/{app_id}/report.csv", [true; 4]),
    (
        "POST",
        "/admin/apps/{app_id}/webhook-secret",
        [true, false, true, true],
    ),
    (
        "POST",
        "/admin/apps/{app_id}/fees",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/apps/{app_id}/settlement",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/apps/{app_id}/pix",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/apps/{app_id}/brand",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/apps/{app_id}/limits",
        [true, false, false, false],
    ),
    ("GET", "/admin/platform-key.pem", [true; 4]),
    ("GET", "/admin/channels", [true, true, false, false]),
    (
        "POST",
        "/admin/channels/{channel_id}/enable",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/channels/{channel_id}/disable",
        [true, false, false, false],
    ),
    ("POST", "/admin/users/invite", [true, false, false, false]),
    ("GET", "/admin/invitation/{token}", [true; 4]),
    ("POST", "/admin/invitation/{token}", [true; 4]),
    ("GET", "/admin/merchants", [true, true, false, false]),
    ("POST", "/admin/merchants", [true, false, false, false]),
    (
        "POST",
        "/admin/merchants/{merchant_id}/suspend",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/merchants/{merchant_id}/reinstate",
        [true, false, false, false],
    ),
    ("GET", "/admin/audit", [true, true, false, false]),
    ("GET", "/admin/users", [true, false, false, false]),
    (
        "POST",
        "/admin/users/{user_id}/reset-password",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/users/{user_id}/remove-second-factor",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/users/{user_id}/disable",
        [true, false, false, false],
    ),
    (
        "POST",
        "/admin/users/{user_id}/enable",
        [true, false, false, false],
    ),
];

struct World {
    server: Server,
    office: Office,
    shop_merchant: i64,
    other_merchant: i64,
}

async fn world(db: TestDatabase) -> World {
    let server = Server::start(db).await;
    let office = Office::start(&server).await;
    let merchant = |app| {
        let store = server.store.clone();
        async move { store.merchant_of_app(app).await.unwrap().unwrap().id.0 }
    };
    let shop_merchant = merchant(server.eur).await;
    let other_merchant = merchant(server.other_eur).await;
    for (role, email) in ROLES.iter().zip(emails()) {
        let merchant = (!role.is_operator()).then_some(shop_merchant);
        Office::add_user(&server, &email, *role, merchant).await;
    }
    World {
        server,
        office,
        shop_merchant,
        other_merchant,
    }
}

fn emails() -> Vec<String> {
    ROLES
        .iter()
        .map(|r| format!("{}@shop.example", r.as_str()))
        .collect()
}

async fn order(server: &Server, order_id: &str) -> OrderNo {
    let mut body = server.apply_body(order_id);
    body["notifyUrl"] = json!("https://shop.example/notify");
    let (status, reply) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200, "{reply}");
    OrderNo::parse(reply["data"]["orderNo"].as_str().unwrap()).unwrap()
}

async fn audit_has(server: &Server, action: &str) -> bool {
    let entries = server.store.audit_entries(100).await.unwrap();
    entries.iter().any(|e| e.action == action)
}

fn is_sign_in_redirect(answer: &office::Answer) -> bool {
    answer.status == 303 && answer.location.starts_with("/admin/sign-in")
}

/// Every route of the router is in the matrix, and each role gets what the matrix says.
async fn every_route_is_authorised(world: World) {
    let served: BTreeSet<(String, String)> = route_table()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let written: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served, written,
        "a route is missing from the authorisation matrix"
    );
    let (server, office) = (&world.server, &world.office);
    let order_no = order(server, "AUTH-1").await;
    let victim = Office::add_user(server, "victim@psp.example", Role::OperatorSupport, None).await;
    let today = &kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10];
    let concrete = |path: &str| {
        path.replace("{order_no}", order_no.as_str())
            .replace("{app_id}", &server.eur.0.to_string())
            .replace("{user_id}", &victim.to_string())
            .replace("{token}", "no-such-invitation")
            .replace("{merchant_id}", &world.other_merchant.to_string())
            .replace("{channel_id}", "no-such-channel")
            .replace("report.csv", &format!("report.csv?date={today}"))
    };
    let mut sessions = Vec::new();
    for email in emails() {
        sessions.push(office.sign_in(&email).await);
    }
    for route in route_table() {
        let path = concrete(route.path);
        let anonymous = match route.method {
            Method::GET => office.get(&path, None).await,
            _ => office.post_with(&path, None, &[], &[]).await,
        };
        match route.access {
            Access::SignedIn(_) => assert!(
                is_sign_in_redirect(&anonymous),
                "{path}: {}",
                anonymous.status
            ),
            Access::Anyone => assert!(!is_sign_in_redirect(&anonymous), "{path}"),
        }
        let allowed = MATRIX
            .iter()
            .find(|(m, p, _)| *m == route.method.as_str() && *p == route.path)
            .unwrap()
            .2;
        for (i, email) in emails().iter().enumerate() {
            // Signing out ends a session: that route gets one of its own.
            let session = match route.path {
                "/admin/sign-out" => office.sign_in(email).await,
                _ => sessions[i].clone(),
            };
            let answer = match route.method {
                Method::GET => office.get(&path, Some(&session)).await,
                _ => office.post(&path, &session, &[]).await,
            };
            let what = format!("{} {path} as {email}: {}", route.method, answer.status);
            if route.path == "/admin/sign-out" {
                assert_eq!(answer.status, 303, "{what}");
            } else if allowed[i] {
                assert!(
                    answer.status != 403 && !is_sign_in_redirect(&answer),
                    "{what}"
                );
                // The invitation of a made-up token is gone (410); the root redirects.
                let fixed = ["/admin/", "/admin/invitation/{token}"];
                if route.method == Method::GET && !fixed.contains(&route.path) {
                    assert_eq!(answer.status, 200, "{what}");
                }
            } else {
                assert_eq!(answer.status, 403, "{what}");
            }
        }
    }
}

/// A merchant's user reaching another merchant's order, app or callbacks by URL finds nothing.
async fn another_merchants_objects_are_not_found(world: World) {
    let (server, office) = (&world.server, &world.office);
    let order_no = order(server, "IDOR-1").await;
    let outsider = "admin@other.example";
    Office::add_user(
        server,
        outsider,
        Role::MerchantAdmin,
        Some(world.other_merchant),
    )
    .await;
    let session = office.sign_in(outsider).await;
    let order_page = format!("/admin/orders/{order_no}");
    assert_eq!(office.get(&order_page, Some(&session)).await.status, 404);
    let app_page = format!("/admin/apps/{}", server.eur.0);
    assert_eq!(office.get(&app_page, Some(&session)).await.status, 404);
    let resend = format!("/admin/orders/{order_no}/resend");
    assert_eq!(office.post(&resend, &session, &[]).await.status, 404);
    let key = format!("/admin/apps/{}/key", server.eur.0);
    let pem = other_key().public_key_pem();
    assert_eq!(
        office
            .post(&key, &session, &[("public_key", &pem)])
            .await
            .status,
        404
    );
    let bulk = [("order", order_no.as_str())];
    assert_eq!(
        office
            .post("/admin/callbacks/resend", &session, &bulk)
            .await
            .status,
        404
    );
    let list = office
        .get(
            &format!("/admin/orders?app={}", server.eur.0),
            Some(&session),
        )
        .await;
    assert!(!list.body.contains(order_no.as_str()), "{}", list.body);
    let search = office
        .get(&format!("/admin/orders?q={order_no}"), Some(&session))
        .await;
    assert!(
        !search.body.contains(&format!(">{order_no}<")),
        "{}",
        search.body
    );
    let csv = office.get("/admin/orders.csv", Some(&session)).await;
    assert!(!csv.body.contains(order_no.as_str()), "{}", csv.body);
    // The shop's own admin sees it.
    let own = office.sign_in("merchant-admin@shop.example").await;
    assert_eq!(office.get(&order_page, Some(&own)).await.status, 200);
    assert_ne!(world.shop_merchant, world.other_merchant);
    // A bulk resend with one order out of reach resends none, not even the shop's own.
    let failed = OrderEvent::Failed {
        reason: "declined".into(),
    };
    server
        .gateway
        .change_order(&order_no, &OrderEvent::PayerStarted)
        .await
        .unwrap();
    server
        .gateway
        .change_order(&order_no, &failed)
        .await
        .unwrap();
    let mut body = server.apply_body("IDOR-OTHER");
    body["appId"] = json!(server.other_eur.0);
    let (status, reply) = server
        .post_json("/eur/collect/apply", signed(&body, other_key()))
        .await;
    assert_eq!(status, 200, "{reply}");
    let theirs = reply["data"]["orderNo"].as_str().unwrap().to_string();
    let mixed = [("order", order_no.as_str()), ("order", theirs.as_str())];
    let refused = office.post("/admin/callbacks/resend", &own, &mixed).await;
    assert_eq!(refused.status, 404);
    assert!(
        !audit_has(server, "callback.resend").await,
        "nothing was resent"
    );
    let own_only = [("order", order_no.as_str())];
    let resent = office
        .post("/admin/callbacks/resend", &own, &own_only)
        .await;
    assert_eq!(resent.status, 303);
    assert!(audit_has(server, "callback.resend").await);
}

/// Forms need the session's token and a same-origin request; cookies are strict.
async fn forms_are_protected_and_cookies_strict(world: World) {
    let (server, office) = (&world.server, &world.office);
    let order_no = order(server, "CSRF-1").await;
    let answer = office
        .try_sign_in("operator-admin@shop.example", office::PASSWORD, "")
        .await;
    let session_cookie = answer
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-kassa_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(session_cookie.contains(flag), "{session_cookie}");
    }
    let session = office.sign_in("operator-admin@shop.example").await;
    let resend = format!("/admin/orders/{order_no}/resend");
    let without = office.post_with(&resend, Some(&session), &[], &[]).await;
    assert_eq!(without.status, 403, "no token");
    let wrong = [("csrf", "AAAA")];
    assert_eq!(
        office
            .post_with(&resend, Some(&session), &wrong, &[])
            .await
            .status,
        403
    );
    let token = [("csrf", session.csrf.as_str())];
    let cross_site = [("sec-fetch-site", "cross-site")];
    let answer = office
        .post_with(&resend, Some(&session), &token, &cross_site)
        .await;
    assert_eq!(answer.status, 403, "cross-site");
    let other_origin = [("origin", "https://evil.example")];
    let answer = office
        .post_with(&resend, Some(&session), &token, &other_origin)
        .await;
    assert_eq!(answer.status, 403, "another origin");
    // Another session's token is no good either.
    let other = office.sign_in("operator-support@shop.example").await;
    let theirs = [("csrf", other.csrf.as_str())];
    assert_eq!(
        office
            .post_with(&resend, Some(&session), &theirs, &[])
            .await
            .status,
        403
    );
    // The sign-in form's token is bound to its own cookie.
    let page = office.get("/admin/sign-in", None).await;
    let form = [
        ("csrf", csrf_of(&page.body)),
        ("email", "operator-admin@shop.example".into()),
        ("password", office::PASSWORD.into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = office.post_with("/admin/sign-in", None, &form, &[]).await;
    assert_eq!(answer.status, 403, "sign-in without its cookie");
    // Every page is served with a strict policy.
    let overview = reqwest::get(format!("{}/admin/sign-in", office.base))
        .await
        .unwrap();
    let csp = overview.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(overview.headers()["x-frame-options"], "DENY");
}

/// A session the browser brought in is never the one signed in; signing out ends it.
async fn sessions_are_fresh_and_end(world: World) {
    let office = &world.office;
    let first = office.sign_in("operator-support@shop.example").await;
    let page = office.get("/admin/sign-in", None).await;
    let nonce = cookie_pair(&page.set_cookies, "kassa_sign_in");
    let form = [
        ("csrf", csrf_of(&page.body)),
        ("email", "operator-support@shop.example".to_string()),
        ("password", office::PASSWORD.to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cookies = format!("{nonce}; {}", first.cookie);
    let answer = office
        .post_with("/admin/sign-in", None, &form, &[("cookie", &cookies)])
        .await;
    assert_eq!(answer.status, 303);
    let second = cookie_pair(&answer.set_cookies, "__Host-kassa_session");
    assert_ne!(second, first.cookie, "a new token");
    assert!(
        is_sign_in_redirect(&office.get("/admin/overview", Some(&first)).await),
        "the session brought in has ended"
    );
    let second = Session {
        cookie: second,
        csrf: String::new(),
    };
    let overview = office.get("/admin/overview", Some(&second)).await;
    let second = Session {
        csrf: csrf_of(&overview.body),
        ..second
    };
    assert_eq!(
        office.post("/admin/sign-out", &second, &[]).await.status,
        303
    );
    assert!(is_sign_in_redirect(
        &office.get("/admin/overview", Some(&second)).await
    ));
}

/// After five failures, even the right password is refused for a while; the page says the
/// same as for a wrong password.
async fn repeated_failures_lock(world: World) {
    let office = &world.office;
    let email = "merchant-developer@shop.example";
    for _ in 0..6 {
        let answer = office
            .try_sign_in(email, "not the password at all", "")
            .await;
        assert_eq!(answer.status, 401);
        assert!(answer.body.contains("wrong"), "{}", answer.body);
    }
    let answer = office.try_sign_in(email, office::PASSWORD, "").await;
    assert_eq!(answer.status, 401, "locked");
    assert!(
        answer
            .set_cookies
            .iter()
            .all(|c| !c.starts_with("__Host-kassa_session="))
    );
}

/// A second factor: without the code no session; with it, one.
async fn a_second_factor_is_asked_for(world: World) {
    let (server, office) = (&world.server, &world.office);
    let user = server
        .store
        .user_by_email("operator-admin@shop.example")
        .await
        .unwrap()
        .unwrap();
    let (sealed, uri) = kassa_server::accounts::enrol_totp(&office.kek, &user.email);
    let entry = office::cli_entry("user.totp-enrol", format!("user:{}", user.user_id));
    server
        .store
        .set_totp_secret(user.user_id, Some(&sealed), &entry)
        .await
        .unwrap();
    let answer = office.try_sign_in(&user.email, office::PASSWORD, "").await;
    assert_eq!(answer.status, 401);
    assert!(answer.body.contains("one-time code"), "{}", answer.body);
    let secret = kassa_server::totp::secret_of_uri(&uri).unwrap();
    let now_s = (kassa_server::now_ms() / 1_000) as u64;
    let code = kassa_server::totp::code_at(&secret, now_s);
    office.sign_in_with_code(&user.email, &code).await;
}

/// Script in an order's data is shown as text on every page and kept text in the CSV.
async fn hostile_data_stays_text(world: World) {
    let (server, office) = (&world.server, &world.office);
    let mut body = server.apply_body("=HYPERLINK(\"http://evil.example\")");
    body["subject"] = json!("<script>alert('subject')</script>");
    body["name"] = json!("<img src=x onerror=alert(1)>");
    body["email"] = json!("mallory@evil.example");
    let (status, reply) = server.post("/eur/collect/apply", &body).await;
    assert_eq!(status, 200, "{reply}");
    let order_no = reply["data"]["orderNo"].as_str().unwrap().to_string();
    let session = office.sign_in("operator-admin@shop.example").await;
    for path in [
        "/admin/orders".to_string(),
        format!("/admin/orders/{order_no}"),
        format!("/admin/orders/{order_no}?reveal=1"),
    ] {
        let page = office.get(&path, Some(&session)).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>alert"), "{path}");
        assert!(!page.body.contains("<img src=x"), "{path}");
    }
    let revealed = office
        .get(
            &format!("/admin/orders/{order_no}?reveal=1"),
            Some(&session),
        )
        .await;
    assert!(revealed.body.contains("&lt;script&gt;") || revealed.body.contains("&#60;script&#62;"));
    assert!(
        revealed.body.contains("mallory@evil.example"),
        "revealed to an operator admin"
    );
    let masked = office
        .get(&format!("/admin/orders/{order_no}"), Some(&session))
        .await;
    assert!(
        !masked.body.contains("mallory@evil.example"),
        "masked by default"
    );
    let csv = office.get("/admin/orders.csv", Some(&session)).await;
    assert!(
        csv.body
            .contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{}",
        csv.body
    );
    assert!(
        !csv.body.contains("mallory@evil.example"),
        "the CSV masks e-mails"
    );
    let audit = server.store.audit_entries(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "order.view-personal-data"
                && e.target == format!("order:{order_no}")),
        "the unmasked view is audited"
    );
}

/// The daily tasks: find an order, see its timeline and callbacks, resend, resolve an
/// exception; each audited.
async fn an_operator_works_an_order(world: World) {
    let (server, office) = (&world.server, &world.office);
    let order_no = order(server, "WORK-1").await;
    let exception = OrderEvent::RailException {
        reason: "the bank did not answer".into(),
    };
    server
        .gateway
        .change_order(&order_no, &OrderEvent::PayerStarted)
        .await
        .unwrap();
    server
        .gateway
        .change_order(&order_no, &exception)
        .await
        .unwrap();
    let session = office.sign_in("operator-support@shop.example").await;
    let found = office.get("/admin/orders?q=WORK-1", Some(&session)).await;
    assert!(found.body.contains(order_no.as_str()), "{}", found.body);
    let waiting = office.get("/admin/overview", Some(&session)).await;
    assert!(
        waiting
            .body
            .contains("<strong>1</strong> exceptions waiting"),
        "{}",
        waiting.body
    );
    let queue = office.get("/admin/exceptions", Some(&session)).await;
    assert!(queue.body.contains(order_no.as_str()));
    let path = format!("/admin/orders/{order_no}");
    let page = office.get(&path, Some(&session)).await;
    assert!(
        page.body.contains("in_progress → exception"),
        "{}",
        page.body
    );
    assert!(page.body.contains("the bank did not answer"));
    let resolve = format!("{path}/resolve");
    let no_reason = office
        .post(&resolve, &session, &[("outcome", "succeeded")])
        .await;
    assert_eq!(no_reason.status, 400, "a reason is required");
    let form = [
        ("outcome", "succeeded"),
        ("reason", "bank statement 2026-12-02 shows it"),
    ];
    let answer = office.post(&resolve, &session, &form).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let page = office.get(&path, Some(&session)).await;
    assert!(page.body.contains("exception → succeeded"), "{}", page.body);
    assert!(
        page.body.contains("success:"),
        "the success journal is shown"
    );
    assert!(
        page.body.contains("https://shop.example/notify"),
        "its callback is shown"
    );
    let again = office.post(&resolve, &session, &form).await;
    assert_eq!(again.status, 400, "a final order cannot be resolved again");
    // Its callback fails once: the callbacks page shows it under its endpoint.
    let now = kassa_server::now_ms();
    let claimed = server
        .store
        .claim_due_callbacks(now + 1, 10, "test-node", now + 60_000);
    let callback = claimed.await.unwrap().pop().expect("the callback is due");
    let failed = kassa_store::Attempt {
        attempt_no: 0,
        started_at_ms: now,
        latency_ms: 12,
        http_status: Some(500),
        error: None,
        response_excerpt: Some("boom".into()),
        acknowledged: false,
        node: "test-node".into(),
    };
    let retry = kassa_core::AfterAttempt::RetryAt {
        at_ms: now + 60_000,
    };
    let kept = server
        .store
        .finish_attempt(&callback.callback_id, "test-node", &failed, retry);
    assert!(kept.await.unwrap());
    let troubled = office.get("/admin/callbacks", Some(&session)).await;
    assert!(
        troubled.body.contains("https://shop.example/notify"),
        "{}",
        troubled.body
    );
    assert!(
        troubled.body.contains(order_no.as_str()),
        "{}",
        troubled.body
    );
    let page = office.get(&path, Some(&session)).await;
    assert!(page.body.contains("500, not acknowledged"), "{}", page.body);
    let overview = office.get("/admin/overview", Some(&session)).await;
    assert!(
        overview
            .body
            .contains("<strong>1</strong> callbacks failing"),
        "{}",
        overview.body
    );
    assert!(
        overview
            .body
            .contains("<strong>0</strong> exceptions waiting"),
        "resolved: {}",
        overview.body
    );
    let resend = office.post(&format!("{path}/resend"), &session, &[]).await;
    assert_eq!(resend.status, 303);
    let audit = server.store.audit_entries(50).await.unwrap();
    let target = format!("order:{order_no}");
    let resolved = audit
        .iter()
        .find(|e| e.action == "order.resolve" && e.target == target)
        .expect("the resolution is audited");
    assert_eq!(resolved.before.as_deref(), Some("exception"));
    assert!(
        resolved
            .after
            .as_deref()
            .unwrap()
            .contains("bank statement")
    );
    assert!(resolved.actor.starts_with("user:"));
    assert!(
        audit
            .iter()
            .any(|e| e.action == "callback.resend" && e.target == target)
    );
    let log = office.get("/admin/audit", Some(&session)).await;
    assert!(log.body.contains("order.resolve"));
}

/// Filters and keyset pages: every order once, newest first.
async fn orders_page_through_filters(world: World) {
    let (server, office) = (&world.server, &world.office);
    let mut made = Vec::new();
    for i in 0..55 {
        made.push(order(server, &format!("PAGE-{i:02}")).await);
    }
    let session = office.sign_in("merchant-developer@shop.example").await;
    let mut seen = Vec::new();
    let mut path = format!("/admin/orders?app={}&status=created", server.eur.0);
    for _ in 0..10 {
        let page = office.get(&path, Some(&session)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for no in &made {
            if page.body.contains(&format!(">{no}<")) {
                seen.push(no.clone());
            }
        }
        let Some(at) = page.body.find(r#"rel="next""#) else {
            break;
        };
        let start = page.body[..at].rfind("href=\"").unwrap() + 6;
        // As a browser reads the link: the HTML entity of `&` decoded.
        let next = page.body[start..at].split('"').next().unwrap();
        let next = next.replace("&#38;", "&").replace("&amp;", "&");
        assert_ne!(next, path, "the next page starts further on");
        path = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), made.len(), "every order once over the pages");
    let none = office
        .get("/admin/orders?status=succeeded", Some(&session))
        .await;
    assert!(!none.body.contains("PAGE-"), "filtered");
    let bad = office.get("/admin/orders?min=lots", Some(&session)).await;
    assert_eq!(bad.status, 400);
    let csv = office
        .get("/admin/orders.csv?min=10.00", Some(&session))
        .await;
    assert_eq!(csv.body.lines().count(), 1 + made.len(), "{}", csv.body);
}

/// An operator invites a merchant's developer; the link makes an account once, before it
/// expires; the new user signs in.
async fn invitations_are_taken_once(world: World) {
    let (server, office) = (&world.server, &world.office);
    let admin = office.sign_in("operator-admin@shop.example").await;
    let merchant = world.shop_merchant.to_string();
    let form = [
        ("email", "New.Dev@Shop.example"),
        ("role", "merchant-developer"),
        ("merchant", merchant.as_str()),
    ];
    let made = office.post("/admin/users/invite", &admin, &form).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let at = made.body.find("/admin/invitation/").unwrap();
    let path = made.body[at..].split('"').next().unwrap().to_string();
    let page = office.get(&path, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("new.dev@shop.example"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let differ = [
        ("csrf", csrf.as_str()),
        ("password", office::PASSWORD),
        ("again", "something else entirely"),
    ];
    assert_eq!(
        office.post_with(&path, None, &differ, &[]).await.status,
        400
    );
    let short = [
        ("csrf", csrf.as_str()),
        ("password", "short"),
        ("again", "short"),
    ];
    assert_eq!(office.post_with(&path, None, &short, &[]).await.status, 400);
    let forged = [
        ("csrf", "AAAA"),
        ("password", office::PASSWORD),
        ("again", office::PASSWORD),
    ];
    assert_eq!(
        office.post_with(&path, None, &forged, &[]).await.status,
        403
    );
    let good = [
        ("csrf", csrf.as_str()),
        ("password", office::PASSWORD),
        ("again", office::PASSWORD),
    ];
    let taken = office.post_with(&path, None, &good, &[]).await;
    assert_eq!(taken.status, 303, "{}", taken.body);
    assert_eq!(
        office.post_with(&path, None, &good, &[]).await.status,
        410,
        "once"
    );
    assert_eq!(office.get(&path, None).await.status, 410);
    let session = office.sign_in("new.dev@shop.example").await;
    let own = office
        .get(&format!("/admin/apps/{}", server.eur.0), Some(&session))
        .await;
    assert_eq!(own.status, 200);
    let audit = server.store.audit_entries(50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "user.invite"));
    assert!(audit.iter().any(|e| e.action == "user.accept-invitation"));
    // An expired invitation is gone.
    let token = kassa_server::accounts::new_token();
    let expired = kassa_store::Invitation {
        token_hash: kassa_server::accounts::token_hash(&token),
        user: kassa_core::user::NewUser::new("late@psp.example", Role::OperatorSupport, None)
            .unwrap(),
        created_at_ms: 1,
        expires_at_ms: kassa_server::now_ms() - 1,
    };
    let entry = office::cli_entry("user.invite", "invitation:late".into());
    server.store.add_invitation(&expired, &entry).await.unwrap();
    let path = format!("/admin/invitation/{token}");
    assert_eq!(office.get(&path, None).await.status, 410);
    let late = [
        ("csrf", "x"),
        ("password", office::PASSWORD),
        ("again", office::PASSWORD),
    ];
    assert_eq!(office.post_with(&path, None, &late, &[]).await.status, 410);
}

/// The operator sets an app's fee and limits in the browser's forms; both audited and in
/// force for the next order.
async fn fees_and_limits_are_set(world: World) {
    let (server, office) = (&world.server, &world.office);
    let admin = office.sign_in("operator-admin@shop.example").await;
    let app = format!("/admin/apps/{}", server.eur.0);
    let fee = [("method", "*"), ("basis_points", "150"), ("fixed", "0.25")];
    assert_eq!(
        office
            .post(&format!("{app}/fees"), &admin, &fee)
            .await
            .status,
        303
    );
    let rules = server.store.fee_rules(server.eur).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].1.basis_points, rules[0].1.fixed_minor.0),
        (150, 25)
    );
    let wrong = [
        ("method", "NOT_A_METHOD"),
        ("basis_points", "1"),
        ("fixed", "0"),
    ];
    assert_eq!(
        office
            .post(&format!("{app}/fees"), &admin, &wrong)
            .await
            .status,
        400
    );
    let limits = [("min", "5.00"), ("max", "100.00")];
    assert_eq!(
        office
            .post(&format!("{app}/limits"), &admin, &limits)
            .await
            .status,
        303
    );
    let upside_down = [("min", "100.00"), ("max", "5.00")];
    assert_eq!(
        office
            .post(&format!("{app}/limits"), &admin, &upside_down)
            .await
            .status,
        400
    );
    let mut body = server.apply_body("TOO-BIG");
    body["amount"] = json!("250.00");
    let (_, reply) = server.post("/eur/collect/apply", &body).await;
    assert_ne!(reply["status"], json!("1"), "the new limit holds: {reply}");
    let page = office.get(&app, Some(&admin)).await;
    assert!(page.body.contains("5.00 to 100.00"), "{}", page.body);
    let audit = server.store.audit_entries(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "app.set-fee" && e.after.is_some())
    );
    assert!(audit.iter().any(|e| e.action == "app.set-limits"));
    let settle = [("days", "2")];
    assert_eq!(
        office
            .post(&format!("{app}/settlement"), &admin, &settle)
            .await
            .status,
        303
    );
    let terms = server.store.success_terms(server.eur).await.unwrap();
    assert_eq!(terms.settlement_delay_days, 2);
    let never = [("days", "9999")];
    assert_eq!(
        office
            .post(&format!("{app}/settlement"), &admin, &never)
            .await
            .status,
        400
    );
    // The merchant's colour: a readable one is kept, a light one refused, empty clears it.
    for (colour, status) in [("#1f2a44", 303), ("#ffcc00", 400), ("blue", 400)] {
        let form = [("colour", colour)];
        let answer = office.post(&format!("{app}/brand"), &admin, &form).await;
        assert_eq!(answer.status, status, "{colour}");
    }
    let branded = server.store.app(server.eur).await.unwrap().unwrap();
    assert_eq!(branded.brand_colour.unwrap().as_str(), "#1f2a44");
    let page = office.get(&app, Some(&admin)).await;
    assert!(page.body.contains(r##"value="#1f2a44""##), "{}", page.body);
    let cleared = office
        .post(&format!("{app}/brand"), &admin, &[("colour", "")])
        .await;
    assert_eq!(cleared.status, 303);
    let unbranded = server.store.app(server.eur).await.unwrap().unwrap();
    assert!(unbranded.brand_colour.is_none());
    assert!(audit_has(server, "app.set-brand").await);
    let pix = [("key", PIX_KEY), ("name", "Loja Nova"), ("city", "Recife")];
    let eur_pix = office.post(&format!("{app}/pix"), &admin, &pix).await;
    assert_eq!(eur_pix.status, 400, "PIX belongs to BRL apps");
    let brl = format!("/admin/apps/{}", server.brl.0);
    assert_eq!(
        office
            .post(&format!("{brl}/pix"), &admin, &pix)
            .await
            .status,
        303
    );
    let receiver = server
        .store
        .app(server.brl)
        .await
        .unwrap()
        .unwrap()
        .pix
        .unwrap();
    assert_eq!(
        (receiver.name.as_str(), receiver.city.as_str()),
        ("Loja Nova", "Recife")
    );
    assert_eq!(receiver.codes, kassa_core::pix::CodeKind::Static);
    let dynamic = [
        ("key", PIX_KEY),
        ("name", "Loja Nova"),
        ("city", "Recife"),
        ("dynamic", "1"),
    ];
    let answer = office.post(&format!("{brl}/pix"), &admin, &dynamic).await;
    assert_eq!(answer.status, 303);
    let app_now = server.store.app(server.brl).await.unwrap().unwrap();
    assert_eq!(
        app_now.pix.unwrap().codes,
        kassa_core::pix::CodeKind::Dynamic
    );
    let channel = kassa_core::Channel {
        channel_id: "sandbox-2".into(),
        kind: kassa_core::ChannelKind::Sandbox,
        upstream: None,
        methods: Vec::new(),
        currencies: vec![kassa_core::Currency::Eur],
        limits: None,
        priority: 5,
        weight: 1,
        enabled: true,
        connect_timeout_ms: 1_000,
        request_timeout_ms: 1_000,
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    assert!(server.store.insert_channel(&channel).await.unwrap());
    let disable = office
        .post("/admin/channels/sandbox-2/disable", &admin, &[])
        .await;
    assert_eq!(disable.status, 303);
    let stored = server.store.channel("sandbox-2").await.unwrap().unwrap();
    assert!(!stored.enabled);
    let channels = office.get("/admin/channels", Some(&admin)).await;
    assert_eq!(channels.status, 200);
    assert!(
        channels.body.contains("Enable sandbox-2"),
        "{}",
        channels.body
    );
    assert!(audit_has(server, "channel.disable").await);
    let unknown = office
        .post("/admin/channels/nope/enable", &admin, &[])
        .await;
    assert_eq!(unknown.status, 404);
    assert!(
        channels.body.contains("<h1>Channels</h1>"),
        "{}",
        channels.body
    );
}

/// A merchant's admin makes a new webhook secret: shown once, the old one still signing for a
/// day, audited without either secret.
async fn webhook_secrets_rotate(world: World) {
    let (server, office) = (&world.server, &world.office);
    let before = server.store.app(server.eur).await.unwrap().unwrap();
    let session = office.sign_in("merchant-admin@shop.example").await;
    let path = format!("/admin/apps/{}/webhook-secret", server.eur.0);
    let answer = office.post(&path, &session, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let at = answer.body.find("whsec_").expect("the new secret is shown");
    let shown = answer.body[at..].split('"').next().unwrap().to_string();
    let after = server.store.app(server.eur).await.unwrap().unwrap();
    assert_ne!(after.webhook_secret, before.webhook_secret);
    let (retiring, until) = after.retiring_webhook_secret.clone().unwrap();
    assert_eq!(retiring, before.webhook_secret, "the old secret retires");
    let day_ms = 24 * 3_600_000;
    assert!(
        (until - kassa_server::now_ms() - day_ms).abs() < 60_000,
        "for a day"
    );
    let page = office
        .get(&format!("/admin/apps/{}", server.eur.0), Some(&session))
        .await;
    assert!(
        page.body.contains("the previous one signs them too until"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&shown), "shown once only");
    let audit = server.store.audit_entries(20).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == "app.rotate-webhook-secret")
        .unwrap();
    assert!(!format!("{entry:?}").contains("whsec_"), "{entry:?}");
}

/// An app's settlement report of a day, downloaded as CSV: its paid orders, totals and
/// journals; a bad day is refused, another merchant's app not found.
async fn settlement_reports_download(world: World) {
    let (server, office) = (&world.server, &world.office);
    let order_no = order(server, "REPORT-1").await;
    let gateway = &server.gateway;
    gateway
        .change_order(&order_no, &OrderEvent::PayerStarted)
        .await
        .unwrap();
    let amount = kassa_core::AmountMinor(2_500);
    let paid = OrderEvent::Paid {
        requested: amount,
        received: amount,
    };
    gateway.change_order(&order_no, &paid).await.unwrap();
    let session = office.sign_in("merchant-developer@shop.example").await;
    let today = &kassa_core::time::format_datetime(kassa_server::now_ms(), 0)[..10];
    let path = format!("/admin/apps/{}/report.csv?date={today}", server.eur.0);
    let csv = office.get(&path, Some(&session)).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(
        lines[0].starts_with("record,orderNo,orderId"),
        "{}",
        csv.body
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("order,{order_no},REPORT-1,"))),
        "{}",
        csv.body
    );
    assert!(
        lines.iter().any(|l| l.starts_with("total,")),
        "{}",
        csv.body
    );
    assert!(
        csv.body.contains(&format!("success:{order_no}")),
        "the journal: {}",
        csv.body
    );
    let bad = format!("/admin/apps/{}/report.csv?date=yesterday", server.eur.0);
    assert_eq!(office.get(&bad, Some(&session)).await.status, 400);
    let theirs = format!("/admin/apps/{}/report.csv?date={today}", server.other_eur.0);
    assert_eq!(office.get(&theirs, Some(&session)).await.status, 404);
}

/// The operator requires a second factor: a user without one can only enrol it, in the
/// browser, confirmed by a first code; then every page opens and signing in asks for a code.
async fn a_second_factor_can_be_required(world: World) {
    let (server, office) = (&world.server, &world.office);
    let admin = office.sign_in("operator-admin@shop.example").await;
    let require = [("required", "yes")];
    assert_eq!(
        office
            .post("/admin/users/second-factor", &admin, &require)
            .await
            .status,
        303
    );
    let email = "operator-support@shop.example";
    let answer = office.try_sign_in(email, office::PASSWORD, "").await;
    let cookie = cookie_pair(&answer.set_cookies, "__Host-kassa_session");
    let bare = Session {
        cookie,
        csrf: String::new(),
    };
    let orders = office.get("/admin/orders", Some(&bare)).await;
    assert_eq!(
        (orders.status, orders.location.as_str()),
        (303, "/admin/account")
    );
    let page = office.get("/admin/account", Some(&bare)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "a QR code");
    let session = Session {
        csrf: csrf_of(&page.body),
        ..bare
    };
    let sealed_at = page.body.find(r#"name="sealed" value=""#).unwrap() + 21;
    let sealed = page.body[sealed_at..]
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let key_at = page.body.find("Key: <code>").unwrap() + 11;
    let key = page.body[key_at..].split('<').next().unwrap();
    let secret = kassa_server::totp::from_base32(key).unwrap();
    let now_s = (kassa_server::now_ms() / 1_000) as u64;
    let wrong = [("sealed", sealed.as_str()), ("code", "000000")];
    let code = kassa_server::totp::code_at(&secret, now_s);
    if code != "000000" {
        let refused = office
            .post("/admin/account/second-factor", &session, &wrong)
            .await;
        assert_eq!(refused.status, 400);
    }
    let right = [("sealed", sealed.as_str()), ("code", code.as_str())];
    let enrolled = office
        .post("/admin/account/second-factor", &session, &right)
        .await;
    assert_eq!(enrolled.status, 303, "{}", enrolled.body);
    assert_eq!(
        office.get("/admin/orders", Some(&session)).await.status,
        200
    );
    let user = server.store.user_by_email(email).await.unwrap().unwrap();
    assert!(user.totp_secret.is_some());
    let without = office.try_sign_in(email, office::PASSWORD, "").await;
    assert_eq!(without.status, 401, "a code is asked now");
    let audit = server.store.audit_entries(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.totp-enrol" && e.actor == format!("user:{}", user.user_id))
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "backoffice.require-second-factor")
    );
}

/// A suspended merchant takes no new order, in either dialect's words; its queries still
/// answer; reinstated, it takes orders again. Both audited.
async fn merchants_are_suspended_and_reinstated(world: World) {
    let (server, office) = (&world.server, &world.office);
    let before = order(server, "BEFORE-SUSPENSION").await;
    let admin = office.sign_in("operator-admin@shop.example").await;
    let suspend = format!("/admin/merchants/{}/suspend", world.shop_merchant);
    assert_eq!(office.post(&suspend, &admin, &[]).await.status, 303);
    let (status, reply) = server
        .post("/eur/collect/apply", &server.apply_body("DURING"))
        .await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (403, Some("20000006")),
        "{reply}"
    );
    let retry = server.apply_body("BEFORE-SUSPENSION");
    let (status, reply) = server.post("/eur/collect/apply", &retry).await;
    assert_eq!(status, 200, "a retry gets its answer: {reply}");
    assert_eq!(reply["data"]["orderNo"], json!(before.as_str()));
    let query = json!({"appId": server.eur.0, "orderId": "BEFORE-SUSPENSION"});
    let (status, _) = server.post("/eur/collect/query", &query).await;
    assert_eq!(status, 200, "queries still answer");
    let page = office.get("/admin/merchants", Some(&admin)).await;
    assert!(page.body.contains("suspended since"), "{}", page.body);
    let reinstate = format!("/admin/merchants/{}/reinstate", world.shop_merchant);
    assert_eq!(office.post(&reinstate, &admin, &[]).await.status, 303);
    order(server, "AFTER").await;
    let missing = office
        .post("/admin/merchants/999999/suspend", &admin, &[])
        .await;
    assert_eq!(missing.status, 404);
    let audit = server.store.audit_entries(50).await.unwrap();
    for action in ["merchant.suspend", "merchant.reinstate"] {
        assert!(audit.iter().any(|e| e.action == action), "{action}");
    }
}

/// The operator admin gives a user a new password (shown once; the user's sessions end) and
/// removes a lost second factor; both audited.
async fn passwords_and_second_factors_are_reset(world: World) {
    let (server, office) = (&world.server, &world.office);
    let admin = office.sign_in("operator-admin@shop.example").await;
    let email = "merchant-developer@shop.example";
    let theirs = office.sign_in(email).await;
    let user = server.store.user_by_email(email).await.unwrap().unwrap();
    let reset = format!("/admin/users/{}/reset-password", user.user_id);
    let answer = office.post(&reset, &admin, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let marker = r#"id="password" class="wide" readonly value=""#;
    let at = answer.body.find(marker).unwrap() + marker.len();
    let password = answer.body[at..].split('"').next().unwrap().to_string();
    assert!(password.len() >= 12, "{password}");
    assert!(
        is_sign_in_redirect(&office.get("/admin/overview", Some(&theirs)).await),
        "their session ended"
    );
    assert_eq!(
        office.try_sign_in(email, office::PASSWORD, "").await.status,
        401,
        "the old password"
    );
    assert_eq!(
        office.try_sign_in(email, &password, "").await.status,
        303,
        "the new one"
    );
    let mine = format!("/admin/users/{}/reset-password", admin_id(server).await);
    assert_eq!(
        office.post(&mine, &admin, &[]).await.status,
        400,
        "not one's own"
    );
    let (sealed, _) = kassa_server::accounts::enrol_totp(&office.kek, email);
    let entry = office::cli_entry("user.totp-enrol", format!("user:{}", user.user_id));
    server
        .store
        .set_totp_secret(user.user_id, Some(&sealed), &entry)
        .await
        .unwrap();
    let remove = format!("/admin/users/{}/remove-second-factor", user.user_id);
    assert_eq!(office.post(&remove, &admin, &[]).await.status, 303);
    let user = server.store.user_by_email(email).await.unwrap().unwrap();
    assert!(user.totp_secret.is_none());
    assert!(audit_has(server, "user.reset-password").await);
    assert!(audit_has(server, "user.totp-remove").await);
}

async fn admin_id(server: &Server) -> i64 {
    let admin = server
        .store
        .user_by_email("operator-admin@shop.example")
        .await
        .unwrap();
    admin.unwrap().user_id
}

kassa_store::on_both_databases!(
    crate::world;
    every_route_is_authorised,
    another_merchants_objects_are_not_found,
    forms_are_protected_and_cookies_strict,
    sessions_are_fresh_and_end,
    repeated_failures_lock,
    a_second_factor_is_asked_for,
    hostile_data_stays_text,
    an_operator_works_an_order,
    orders_page_through_filters,
    invitations_are_taken_once,
    fees_and_limits_are_set,
    webhook_secrets_rotate,
    settlement_reports_download,
    a_second_factor_can_be_required,
    merchants_are_suspended_and_reinstated,
    passwords_and_second_factors_are_reset,
);
