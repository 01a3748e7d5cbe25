//! `kassa listen`: a callback receiver for a merchant's developer. It prints each callback,
//! checks both of its signatures — the platform key's RSA `sign`/`X-Sign` and the Standard
//! Webhooks signature by the app's secret — and answers `success`, a chosen failure (to watch
//! kassa retry), or whatever the developer's own endpoint answers when it forwards there.
//! Loopback only; bodies, answers and the forward are bounded.

use crate::checks::{Message, app_id_of, check_rsa, check_webhook};
use crate::operator::open_store;
use crate::{Failure, Outcome};
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kassa_core::AppId;
use kassa_server::sealing::{Kek, WEBHOOK_SECRET};
use kassa_signature::VerifyingKey;
use kassa_store::SqlStore;
use kassa_store::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The largest callback read (kassa's are a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most of the forward target's answer passed back to kassa (kassa reads 16 KiB).
const MAX_FORWARD_ANSWER_BYTES: usize = 16 * 1024;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers of a callback that the forward carries on.
const FORWARDED_HEADERS: [&str; 5] = [
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-sign",
];

#[derive(clap::Args)]
pub struct ListenArgs {
    /// The loopback port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Also post each callback, with its headers, to your own endpoint; its answer is what
    /// kassa gets.
    #[arg(long, value_name = "URL")]
    forward_to: Option<String>,
    /// Answer every callback with this HTTP status instead of `success`, to watch kassa retry.
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u16).range(400..=599))]
    fail_with: Option<u16>,
    /// The platform public key to check with. [default: the database's]
    #[arg(long)]
    key: Option<PathBuf>,
    /// The webhook secret (`whsec_…`) to check with. [default: the app's, from the database]
    #[arg(long)]
    secret: Option<String>,
    /// Stop after this many callbacks.
    #[arg(long, value_name = "N")]
    exit_after: Option<u64>,
}

/// Where the checks get their keys.
struct Keys {
    platform: VerifyingKey,
    secret: Option<String>,
    database: Option<(SqlStore, Kek)>,
}

impl Keys {
    async fn load(args: &ListenArgs, database_url: &str) -> Result<Keys, Failure> {
        let database = match (&args.key, &args.secret) {
            (Some(_), Some(_)) => None,
            _ => {
                let store = open_store(database_url).await?;
                let kek = crate::kek::unlock(&store).await?;
                Some((store, kek))
            }
        };
        let platform = match (&args.key, &database) {
            (Some(path), _) => VerifyingKey::parse(&crate::keyfiles::read_key_text(path)?)
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?,
            (None, Some((store, _))) => crate::kek::platform_key(store)
                .await?
                .verifying_key()
                .clone(),
            (None, None) => unreachable!("the database is opened when no key is given"),
        };
        Ok(Keys {
            platform,
            secret: args.secret.clone(),
            database,
        })
    }

    /// The secrets that may sign an app's callbacks: the given one, or the app's (and the one
    /// it replaced while that still signs).
    async fn secrets_of(&self, app_id: Option<i64>) -> Result<Vec<String>, String> {
        if let Some(secret) = &self.secret {
            return Ok(vec![secret.clone()]);
        }
        let (Some((store, kek)), Some(app_id)) = (&self.database, app_id) else {
            return Err("no appId in the body to find its secret by (give --secret)".into());
        };
        let app = store
            .app(AppId(app_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no app {app_id} in this database (give --secret)"))?;
        let mut sealed = vec![app.webhook_secret.expose().to_string()];
        if let Some((retiring, _)) = &app.retiring_webhook_secret {
            sealed.push(retiring.expose().to_string());
        }
        sealed
            .iter()
            .map(|s| kek.open(WEBHOOK_SECRET, s).map_err(|e| e.to_string()))
            .collect()
    }
}

struct Listener {
    keys: Keys,
    args: ListenArgs,
    http: reqwest::Client,
    received: AtomicU64,
    done: tokio::sync::Notify,
}

pub async fn run(args: ListenArgs, database_url: &str) -> Outcome {
    let keys = Keys::load(&args, database_url).await?;
    let socket = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| Failure(format!("cannot listen on 127.0.0.1:{}: {e}", args.port)))?;
    let bound = socket.local_addr()?;
    let answer = match (&args.forward_to, args.fail_with) {
        (Some(url), _) => format!("forwarding to {url}"),
        (None, Some(status)) => format!("answering HTTP {status} (a failure)"),
        (None, None) => "answering success".to_string(),
    };
    println!(
        "kassa listen on http://{bound} ({answer}); use \"notifyUrl\":\"http://{bound}/notify\""
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FORWARD_TIMEOUT)
        .build()?;
    let listener = Arc::new(Listener {
        keys,
        args,
        http,
        received: AtomicU64::new(0),
        done: tokio::sync::Notify::new(),
    });
    let handler = listener.clone();
    let app = axum::Router::new().fallback(move |method, uri, headers, body| {
        let listener = handler.clone();
        async move { listener.receive(method, uri, headers, body).await }
    });
    let stop = listener.clone();
    axum::serve(socket, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = stop.done.notified() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}

impl Listener {
    async fn receive(&self, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
        if method != Method::POST {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                "kassa listen takes POSTed callbacks\n",
            )
                .into_response();
        }
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "too large for a callback\n").into_response();
        };
        let message = Message {
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        let mut report = self.checks(&uri, &message).await;
        let (status, answer) = self.answer(&message, &mut report).await;
        report.push_str(&format!(
            "  answered     HTTP {} {}\n",
            status.as_u16(),
            answer.trim()
        ));
        print!("{report}");
        let count = self.received.fetch_add(1, Ordering::SeqCst) + 1;
        if self.args.exit_after.is_some_and(|n| count >= n) {
            self.done.notify_one();
        }
        (status, answer).into_response()
    }

    /// The printed block of one callback: when, the body, each check's verdict.
    async fn checks(&self, uri: &Uri, message: &Message) -> String {
        let now_ms = kassa_server::now_ms();
        let at = jiff::Timestamp::from_millisecond(now_ms)
            .map_or_else(|_| String::new(), |t| t.to_string());
        let mut out = format!("\n--- {at} POST {uri}");
        if let Some(id) = message.header("webhook-id") {
            out.push_str(&format!(" webhook-id {id}"));
        }
        out.push('\n');
        let body = serde_json::from_str::<serde_json::Value>(&message.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| message.body.clone());
        out.push_str(&body);
        out.push('\n');
        let verdict = |result: Result<String, String>| match result {
            Ok(fine) => format!("valid ({fine})"),
            Err(why) => format!("INVALID: {why}"),
        };
        let rsa =
            check_rsa(&self.keys.platform, message).map(|place| format!("{place}, platform key"));
        out.push_str(&format!("  RSA          {}\n", verdict(rsa)));
        let app_id = app_id_of(&message.body);
        let webhook = match self.keys.secrets_of(app_id).await {
            Ok(secrets) => {
                let results: Vec<_> = secrets
                    .iter()
                    .map(|s| check_webhook(s, message, now_ms / 1000))
                    .collect();
                match results.iter().any(Result::is_ok) {
                    true => Ok("webhook-signature, the app's secret".to_string()),
                    false => Err(results
                        .into_iter()
                        .find_map(Result::err)
                        .unwrap_or_default()),
                }
            }
            Err(why) => Err(why),
        };
        out.push_str(&format!("  webhooks     {}\n", verdict(webhook)));
        let named = app_id.map_or("none".to_string(), |id| id.to_string());
        out.push_str(&format!("  appId        {named} (check it is yours)\n"));
        out
    }

    /// What kassa gets: the forward target's answer, a chosen failure, or `success`.
    async fn answer(&self, message: &Message, report: &mut String) -> (StatusCode, String) {
        if let Some(url) = &self.args.forward_to {
            return match self.forward(url, message).await {
                Ok((status, body)) => {
                    report.push_str(&format!("  forwarded    {url}: HTTP {}\n", status.as_u16()));
                    (status, body)
                }
                Err(why) => {
                    report.push_str(&format!("  forwarded    {url}: FAILED: {why}\n"));
                    (StatusCode::BAD_GATEWAY, format!("forward failed: {why}\n"))
                }
            };
        }
        match self.args.fail_with {
            Some(code) => (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "failing on purpose (kassa listen --fail-with)\n".to_string(),
            ),
            None => (StatusCode::OK, "success".to_string()),
        }
    }

    async fn forward(&self, url: &str, message: &Message) -> Result<(StatusCode, String), String> {
        let mut request = self.http.post(url).body(message.body.clone());
        for name in FORWARDED_HEADERS {
            if let Some(value) = message.header(name) {
                request = request.header(name, value);
            }
        }
        let mut response = request.send().await.map_err(|e| e.to_string())?;
        let status = StatusCode::from_u16(response.status().as_u16()).map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            let room = MAX_FORWARD_ANSWER_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_FORWARD_ANSWER_BYTES {
                break;
            }
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
