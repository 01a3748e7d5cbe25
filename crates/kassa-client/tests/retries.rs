//! The client's timeouts and retries against a local server that misbehaves on purpose:
//! overload answers are retried (after `Retry-After`), a slow server ends in a timeout after
//! the allowed attempts, and every attempt carries the identical signed body.

use axum::http::StatusCode;
use kassa_client::collect::Status;
use kassa_client::{Client, Currency, Error, RetryPolicy, SigningKey, VerifyingKey};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

const APP_ID: i64 = 1001;

struct Fake {
    calls: AtomicUsize,
    bodies: Mutex<Vec<String>>,
    overloaded_calls: usize,
    delay: Duration,
    platform: SigningKey,
}

fn order_data(platform: &SigningKey) -> String {
    let mut data = serde_json::json!({
        "appId": APP_ID, "orderId": "M1", "orderNo": "6023071013539074", "amount": "25.00",
        "actualAmount": "25.00", "fee": "0.00", "status": 2, "payTime": "2026-11-22 10:15:00",
    })
    .as_object()
    .unwrap()
    .clone();
    kassa_signature::sign_map(platform, &mut data);
    serde_json::to_string(&data).unwrap()
}

async fn start(fake: Arc<Fake>) -> String {
    let app = axum::Router::new().route(
        "/eur/collect/query",
        axum::routing::post(move |body: String| {
            let fake = fake.clone();
            async move {
                let call = fake.calls.fetch_add(1, Ordering::SeqCst);
                fake.bodies.lock().await.push(body);
                tokio::time::sleep(fake.delay).await;
                if call < fake.overloaded_calls {
                    let busy = r#"{"status":"0","error":"90000002","msg":"overloaded"}"#;
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "0")],
                        busy.to_string(),
                    );
                }
                let data = order_data(&fake.platform);
                let answer =
                    format!(r#"{{"status":"1","error":"00000000","msg":"","data":{data}}}"#);
                (StatusCode::OK, [("retry-after", "")], answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn fake(overloaded_calls: usize, delay: Duration) -> Arc<Fake> {
    Arc::new(Fake {
        calls: AtomicUsize::new(0),
        bodies: Mutex::new(Vec::new()),
        overloaded_calls,
        delay,
        platform: SigningKey::generate().unwrap(),
    })
}

fn client(base: &str, fake: &Fake, timeout: Duration, retries: u32) -> Client {
    let platform = VerifyingKey::parse(&fake.platform.public_key_pem()).unwrap();
    Client::builder(base, APP_ID, SigningKey::generate().unwrap(), platform)
        .timeout(timeout)
        .retry(RetryPolicy {
            max_retries: retries,
            first_pause: Duration::from_millis(10),
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn overload_is_retried_with_the_identical_request() {
    let fake = fake(2, Duration::ZERO);
    let base = start(fake.clone()).await;
    let order = client(&base, &fake, Duration::from_secs(5), 2)
        .collect(Currency::Eur)
        .unwrap()
        .query("M1", None)
        .await
        .unwrap();
    assert_eq!(order.status, Status::Succeeded);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    let bodies = fake.bodies.lock().await;
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "retries resend the same signed body"
    );
}

#[tokio::test]
async fn retries_end_with_kassas_refusal() {
    let fake = fake(10, Duration::ZERO);
    let base = start(fake.clone()).await;
    let error = client(&base, &fake, Duration::from_secs(5), 1)
        .collect(Currency::Eur)
        .unwrap()
        .query("M1", None)
        .await
        .unwrap_err();
    let Error::Api(api) = error else {
        panic!("expected kassa's refusal, got {error}")
    };
    assert_eq!((api.code.as_str(), api.http_status), ("90000002", 503));
    assert!(api.is_retryable());
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_server_ends_in_a_timeout() {
    let fake = fake(0, Duration::from_secs(5));
    let base = start(fake.clone()).await;
    let started = std::time::Instant::now();
    let error = client(&base, &fake, Duration::from_millis(200), 1)
        .collect(Currency::Eur)
        .unwrap()
        .query("M1", None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout(200)), "{error}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let fake = fake(0, Duration::ZERO);
    let error = client("http://127.0.0.1:9", &fake, Duration::from_secs(1), 0)
        .collect(Currency::Eur)
        .unwrap()
        .query("M1", None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error}");
}
