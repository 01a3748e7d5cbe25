//! The `collect-upstream` connector against a real upstream: a second `kassa serve` (its own
//! database), reached over HTTP exactly as a PSP would be. Create (and its idempotent replay),
//! query before and after the payer pays at the upstream, and each way the upstream can fail.

mod common;

use common::{create_shop, json, kassa, run_ok, serve, set_upstream_pix};
use kassa_core::{
    AmountMinor, Channel, ChannelKind, Currency, MethodRoute, Payer, PaymentMethod, Personal,
    RailOutcome, Secret, Upstream,
};
use kassa_server::rails::collect_upstream::CollectUpstream;
use kassa_server::rails::collect_upstream::transformers::{
    ApplyFields, UpstreamStatus, apply_request,
};
use kassa_server::rails::upstream::UpstreamError;
use kassa_signature::SigningKey;

fn channel(base_url: &str, app_id: i64, upstream_public_key: String) -> Channel {
    Channel {
        channel_id: "upstream-a".into(),
        kind: ChannelKind::CollectUpstream,
        upstream: Some(Upstream {
            base_url: base_url.into(),
            app_id,
            merchant_key: Secret::new("sealed elsewhere"),
            platform_public_key: upstream_public_key,
        }),
        methods: vec![route()],
        currencies: vec![Currency::Eur],
        limits: None,
        priority: 1,
        weight: 1,
        enabled: true,
        connect_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn route() -> MethodRoute {
    MethodRoute {
        method: PaymentMethod::by_code("IDEAL_EUR").unwrap(),
        upstream_in_bank_code: "IDEAL_EUR".into(),
        upstream_pay_type: "BANK_TRANSFER".into(),
    }
}

/// A create for 25.00 EUR at the upstream, as the rail will make it.
fn create_request(
    app_id: i64,
    order_id: &str,
    route: &MethodRoute,
    notify_url: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let payer = Payer {
        name: Personal::new("Jane Doe"),
        phone: Personal::new("+31612345678"),
        email: Personal::new("jane@example.com"),
        partner_user_id: "u1".into(),
    };
    apply_request(&ApplyFields {
        upstream_app_id: app_id,
        upstream_order_id: order_id.into(),
        amount: AmountMinor(2_500),
        payer: &payer,
        route,
        return_url: "https://kassa.example/pay/token".into(),
        notify_url: notify_url.into(),
        country: None,
    })
}

#[tokio::test]
async fn kassa_creates_and_follows_an_order_at_a_real_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upstream.db").display());
    let (app_id, key_there) = create_shop(&url, "EUR", dir.path());
    let upstream_platform = run_ok(&mut kassa(&["keys", "platform", "--database-url", &url]));
    let upstream = serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    let channel = channel(&upstream.base, app_id, upstream_platform.clone());
    let connector = CollectUpstream::new(&channel, key_there, true).unwrap();

    let route = route();
    let notify_url = "https://kassa.example/rails/upstream-a/callback";
    let fields =
        |order_id: &str, route: &MethodRoute| create_request(app_id, order_id, route, notify_url);
    let created = connector
        .create(Currency::Eur, fields("kassa-1", &route))
        .await
        .unwrap();
    let pay_url = created
        .pay_url
        .clone()
        .expect("the upstream gives its page");
    assert!(pay_url.starts_with(&upstream.base), "{pay_url}");
    // A retried create is a replay at the upstream: the same order.
    let again = connector
        .create(Currency::Eur, fields("kassa-1", &route))
        .await
        .unwrap();
    assert_eq!(again, created);

    let before = connector.query(Currency::Eur, "kassa-1").await.unwrap();
    assert_eq!(before.upstream_order_no, created.upstream_order_no);
    assert!(matches!(
        before.status,
        UpstreamStatus::NotStarted | UpstreamStatus::InProgress
    ));
    assert_eq!(before.outcome(), None);
    // The payer pays at the upstream (its sandbox bank); kassa's query sees it.
    let paid = json(&run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &created.upstream_order_no,
        "--outcome",
        "paid",
        "--amount",
        "24.00",
        "--database-url",
        &url,
    ])));
    assert_eq!(
        paid["status"], "exception",
        "the upstream itself flags the short payment"
    );
    let after = connector.query(Currency::Eur, "kassa-1").await.unwrap();
    assert_eq!(after.status, UpstreamStatus::Exception);
    assert!(matches!(
        after.outcome(),
        Some(RailOutcome::Exception { .. })
    ));
    let second = connector
        .create(Currency::Eur, fields("kassa-2", &route))
        .await
        .unwrap();
    run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &second.upstream_order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ]));
    let full = connector.query(Currency::Eur, "kassa-2").await.unwrap();
    assert_eq!(
        full.outcome(),
        Some(RailOutcome::Paid {
            received: AmountMinor(2_500)
        })
    );

    // Failures, each its own error.
    let mut unknown_method = route.clone();
    unknown_method.upstream_in_bank_code = "NOPE".into();
    let refused = connector
        .create(Currency::Eur, fields("kassa-3", &unknown_method))
        .await;
    assert!(
        matches!(refused, Err(UpstreamError::Refused { .. })),
        "{refused:?}"
    );
    let impostor = SigningKey::generate().unwrap().public_key_pem();
    let wrong_key = CollectUpstream::new(
        &self::channel(&upstream.base, app_id, impostor),
        SigningKey::parse(
            &std::fs::read_to_string(dir.path().join("keys/merchant.key.pem")).unwrap(),
        )
        .unwrap(),
        true,
    )
    .unwrap();
    let forged = wrong_key.query(Currency::Eur, "kassa-1").await;
    assert!(
        matches!(forged, Err(UpstreamError::BadSignature)),
        "{forged:?}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = CollectUpstream::new(
        &self::channel(&closed_url, app_id, upstream_platform),
        SigningKey::generate().unwrap(),
        true,
    )
    .unwrap();
    let unreachable = down.query(Currency::Eur, "kassa-1").await;
    assert!(
        matches!(unreachable, Err(UpstreamError::NotConnected(_))),
        "{unreachable:?}"
    );
}

#[tokio::test]
async fn kassa_creates_and_follows_a_pix_order_at_a_real_upstream() {
    use kassa_server::rails::pix_upstream::PixUpstream;
    use kassa_server::rails::pix_upstream::transformers::PixState;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upstream.db").display());
    let (app_id, key_there) = create_shop(&url, "BRL", dir.path());
    set_upstream_pix(&url, app_id);
    let upstream_platform = run_ok(&mut kassa(&["keys", "platform", "--database-url", &url]));
    let upstream = serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    let mut pix_channel = channel(&upstream.base, app_id, upstream_platform);
    pix_channel.kind = ChannelKind::PixUpstream;
    pix_channel.currencies = vec![Currency::Brl];
    let connector = PixUpstream::new(&pix_channel, key_there, true).unwrap();
    let notify = "https://kassa.example/rails/upstream-a/callback";

    let created = connector
        .create("kassa-pix-1", AmountMinor(1_234), notify)
        .await
        .unwrap();
    assert_eq!(created.state, PixState::Processing);
    assert!(created.qr_code.starts_with("000201"), "{}", created.qr_code);
    let again = connector
        .create("kassa-pix-1", AmountMinor(1_234), notify)
        .await
        .unwrap();
    assert_eq!(
        again.upstream_order_no, created.upstream_order_no,
        "a replay, not a second order"
    );
    assert_eq!(
        connector.query("kassa-pix-1").await.unwrap().outcome(),
        None
    );
    run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &created.upstream_order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ]));
    let paid = connector.query("kassa-pix-1").await.unwrap();
    assert_eq!(
        paid.outcome(),
        Some(RailOutcome::Paid {
            received: AmountMinor(1_234)
        })
    );
    let unknown = connector.query("kassa-pix-none").await;
    assert!(
        matches!(unknown, Err(UpstreamError::NotFound)),
        "{unknown:?}"
    );
}

#[test]
fn channel_test_calls_the_upstream_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upstream.db").display());
    let (app_id, _) = create_shop(&url, "EUR", dir.path());
    let platform_path = dir.path().join("upstream-platform.pem");
    let platform = run_ok(&mut kassa(&["keys", "platform", "--database-url", &url]));
    std::fs::write(&platform_path, platform).unwrap();
    let upstream = serve(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &url],
        dir.path(),
    );
    let gateway = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let key = dir.path().join("keys/merchant.key.pem");
    let add = |id: &str, base_url: &str| {
        run_ok(
            kassa(&["channel", "add", id, "--kind", "collect-upstream"])
                .args([
                    "--base-url",
                    base_url,
                    "--upstream-app-id",
                    &app_id.to_string(),
                ])
                .arg("--merchant-key")
                .arg(&key)
                .arg("--upstream-public-key")
                .arg(&platform_path)
                .args([
                    "--method",
                    "IDEAL_EUR=IDEAL_EUR/BANK_TRANSFER",
                    "--currency",
                    "EUR",
                ])
                .args(["--allow-private-upstream", "--database-url", &gateway]),
        );
    };
    add("up", &upstream.base);
    let test = |id: &str| {
        kassa(&[
            "channel",
            "test",
            id,
            "--allow-private-upstream",
            "--database-url",
            &gateway,
        ])
        .output()
        .unwrap()
    };
    let tested = test("up");
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&tested.stdout).unwrap();
    assert_eq!(report["reachable"], true, "{report}");
    assert!(
        report["answer"]
            .as_str()
            .unwrap()
            .contains("does not know the probe's order"),
        "{report}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    add("down", &closed_url);
    let failed = test("down");
    assert!(!failed.status.success());
    let report: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(report["reachable"], false, "{report}");
}

/// A merchant endpoint at kassa's side of the hop: keeps each callback's `X-Sign` and body.
async fn callback_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Option<String>, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                let sign = headers
                    .get("x-sign")
                    .map(|v| v.to_str().unwrap().to_string());
                let _ = tx.send((sign, body));
                "success"
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn upstream_callbacks_are_verified_before_they_are_believed() {
    use kassa_server::rails::pix_upstream::PixUpstream;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upstream.db").display());
    let (eur_app, eur_key) = create_shop(&url, "EUR", dir.path().join("eur").as_path());
    let (brl_app, brl_key) = create_shop(&url, "BRL", dir.path().join("brl").as_path());
    set_upstream_pix(&url, brl_app);
    let platform = run_ok(&mut kassa(&["keys", "platform", "--database-url", &url]));
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--allow-private-callbacks",
        "--callback-retry-interval",
        "1s",
    ];
    let upstream = serve(&args, dir.path());
    let (notify_url, mut callbacks) = callback_receiver().await;

    // collect: the upstream's callback verifies with its key and names kassa's account.
    let collect = CollectUpstream::new(
        &channel(&upstream.base, eur_app, platform.clone()),
        eur_key,
        true,
    )
    .unwrap();
    let request = create_request(eur_app, "kassa-cb-1", &route(), &notify_url);
    let created = collect.create(Currency::Eur, request).await.unwrap();
    run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &created.upstream_order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ]));
    let (_, body) = next_callback(&mut callbacks).await;
    let told = collect.verify_callback(&body).unwrap();
    assert_eq!(told.upstream_order_id, "kassa-cb-1");
    assert_eq!(
        told.outcome(),
        Some(RailOutcome::Paid {
            received: AmountMinor(2_500)
        })
    );
    let forged = body.replace("25.00", "2500.00");
    assert_eq!(
        collect.verify_callback(&forged),
        Err(UpstreamError::BadSignature)
    );
    // Another account's genuine callback is not kassa's.
    let elsewhere = CollectUpstream::new(
        &channel(&upstream.base, eur_app + 1, platform.clone()),
        SigningKey::generate().unwrap(),
        true,
    )
    .unwrap();
    assert!(matches!(
        elsewhere.verify_callback(&body),
        Err(UpstreamError::Malformed(_))
    ));

    // pix: the callback's X-Sign verifies; without it, or altered, it does not.
    let mut pix_channel = channel(&upstream.base, brl_app, platform);
    pix_channel.kind = ChannelKind::PixUpstream;
    pix_channel.currencies = vec![Currency::Brl];
    let pix = PixUpstream::new(&pix_channel, brl_key, true).unwrap();
    let created = pix
        .create("kassa-cb-2", AmountMinor(1_234), &notify_url)
        .await
        .unwrap();
    run_ok(&mut kassa(&[
        "sandbox",
        "pay",
        &created.upstream_order_no,
        "--outcome",
        "paid",
        "--database-url",
        &url,
    ]));
    let (sign, body) = next_callback(&mut callbacks).await;
    let told = pix.verify_callback(&body, sign.as_deref()).unwrap();
    assert_eq!(told.upstream_order_id, "kassa-cb-2");
    assert_eq!(
        told.outcome(),
        Some(RailOutcome::Paid {
            received: AmountMinor(1_234)
        })
    );
    assert_eq!(
        pix.verify_callback(&body, None),
        Err(UpstreamError::BadSignature)
    );
    let forged = body.replace("12.34", "99.99");
    assert_eq!(
        pix.verify_callback(&forged, sign.as_deref()),
        Err(UpstreamError::BadSignature)
    );
}

async fn next_callback(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Option<String>, String)>,
) -> (Option<String>, String) {
    let wait = tokio::time::timeout(std::time::Duration::from_secs(15), rx.recv());
    wait.await.expect("the upstream calls back").unwrap()
}
