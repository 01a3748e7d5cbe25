//! The HTTP client callbacks go out with: hyper's pooled HTTP/1.1 client over rustls, which
//! resolves names through [`ssrf::connectable`] (only permitted addresses, unless private
//! targets are allowed), follows no redirect, takes no proxy and bounds every attempt in time.
//!
//! Callbacks are kassa's one outbound path as busy as its API, so they go out on hyper alone:
//! reqwest on top of the same client cost about ten microseconds more per post here (its URL
//! parsed again for the redirect layer and the response, its headers copied, its layers of
//! timeouts and redirects), a fifth of a delivery's CPU (docs/performance.md, "A delivery
//! client of hyper's"). Upstream PSPs are still called through reqwest ([`ssrf::outbound_client`]):
//! one call per order there, and its JSON conveniences are worth more than the microseconds.

use crate::ssrf;
use crate::telemetry::AttemptOutcome;
use http_body_util::BodyExt;
/// A callback's target, parsed.
pub use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long an idle connection to a merchant is kept for the next callback.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a merchant answered: the status and at most the first bytes of the body asked for.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why an attempt brought no answer: its class for the metrics, and the error chain.
pub type NoAnswer = (AttemptOutcome, String);

/// The resolver of [`CallbackClient`]'s connector: [`ssrf::connectable`] as a service.
#[derive(Clone)]
struct Resolver {
    guarded: bool,
}

type Resolved = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for Resolver {
    type Response = Resolved;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guarded = self.guarded;
        Box::pin(async move {
            let addresses = ssrf::connectable(name.as_str(), guarded).await?;
            Ok(addresses.into_iter())
        })
    }
}

/// The callbacks' client; cheap to share, its connections pooled per endpoint.
pub struct CallbackClient {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, String>,
    user_agent: HeaderValue,
    timeout: Duration,
}

impl CallbackClient {
    /// A client whose connections open within `connect_timeout` and whose attempts end within
    /// `timeout`, keeping at most `idle_per_endpoint` idle connections to each endpoint.
    pub fn new(
        user_agent: &'static str,
        (connect_timeout, timeout): (Duration, Duration),
        allow_private: bool,
        idle_per_endpoint: usize,
    ) -> Result<CallbackClient, String> {
        let mut http = HttpConnector::new_with_resolver(Resolver {
            guarded: !allow_private,
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(idle_per_endpoint)
            .build(https);
        Ok(CallbackClient {
            client,
            user_agent: HeaderValue::from_static(user_agent),
            timeout,
        })
    }

    /// Posts `body` with `headers` to `target` and reads at most `max_read` bytes of the
    /// answer, all within the client's timeout.
    pub async fn post(
        &self,
        target: Uri,
        headers: &[(&str, &str)],
        body: String,
        max_read: usize,
    ) -> Result<Answer, NoAnswer> {
        let request = self.request(target, headers, body)?;
        let attempt = async {
            let response = self.client.request(request).await.map_err(classified)?;
            let status = response.status().as_u16();
            let body = read_at_most(response.into_body(), max_read).await?;
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(answered) => answered,
            Err(_) => Err((
                AttemptOutcome::Timeout,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    /// The request: the callback's own headers, then kassa's user agent and `accept: */*`
    /// where it has none of those (as reqwest sent callbacks); hyper adds `host` and
    /// `content-length`.
    fn request(
        &self,
        target: Uri,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<hyper::Request<String>, NoAnswer> {
        let mut request = hyper::Request::post(target).body(body).map_err(|e| {
            let why = format!("cannot build the request: {e}");
            (AttemptOutcome::Error, why)
        })?;
        let sent = request.headers_mut();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes());
            let (Ok(header), Ok(value)) = (header, HeaderValue::from_str(value)) else {
                let why = format!("header {name:?} cannot be sent");
                return Err((AttemptOutcome::Error, why));
            };
            sent.append(header, value);
        }
        let user_agent = sent.entry(hyper::header::USER_AGENT);
        user_agent.or_insert_with(|| self.user_agent.clone());
        let accept = sent.entry(hyper::header::ACCEPT);
        accept.or_insert_with(|| HeaderValue::from_static("*/*"));
        Ok(request)
    }
}

/// The rustls configuration reqwest used for callbacks: the platform's certificate verifier
/// (the system's roots on Linux), aws-lc-rs, TLS 1.2 and 1.3; the connector offers HTTP/1.1
/// by ALPN.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot load the certificate verifier: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .dangerous() // only to plug in the platform's verifier, as reqwest does
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// At most `max_read` bytes of `body`; what follows is not read (the connection then closes
/// rather than go back to the pool with an answer half read).
async fn read_at_most(
    mut body: hyper::body::Incoming,
    max_read: usize,
) -> Result<Vec<u8>, NoAnswer> {
    let mut read = Vec::new();
    while read.len() < max_read {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
            }
            Some(Err(e)) => return Err((AttemptOutcome::Error, error_chain(&e))),
            None => break,
        }
    }
    read.truncate(max_read);
    Ok(read)
}

/// Why a request failed, for the attempt metrics, and its error chain for the attempt log.
fn classified(error: hyper_util::client::legacy::Error) -> NoAnswer {
    let text = error_chain(&error);
    let outcome = if text.contains(ssrf::REFUSAL_MARK) {
        AttemptOutcome::Blocked
    } else if timed_out(&error) {
        AttemptOutcome::Timeout
    } else if error.is_connect() {
        AttemptOutcome::ConnectError
    } else {
        AttemptOutcome::Error
    };
    (outcome, text)
}

/// Whether an error or one of its causes is an I/O time-out (the connector's connect timeout
/// is one, whose own text says only that a deadline elapsed).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>();
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Most characters of an error kept in the attempt log.
const MAX_ERROR_CHARS: usize = 500;

/// An error with its causes, which is where the client puts the useful part.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let texts: Vec<String> = causes(error).map(|cause| cause.to_string()).collect();
    texts.join(": ").chars().take(MAX_ERROR_CHARS).collect()
}

/// An error, then each of its causes in turn.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client() -> CallbackClient {
        client_with(true, Duration::from_secs(5))
    }

    fn client_with(allow_private: bool, timeout: Duration) -> CallbackClient {
        let timeouts = (Duration::from_secs(1), timeout);
        CallbackClient::new("kassa-test", timeouts, allow_private, 4).unwrap()
    }

    /// Why a post of nothing to `url` brought no answer (a panic if one came).
    async fn refused(client: &CallbackClient, url: &str) -> NoAnswer {
        let posted = client.post(url.parse().unwrap(), &[], String::new(), 64);
        posted.await.err().expect("no answer")
    }

    /// A loopback server that answers every connection's first request with `success`, in
    /// plain HTTP, and hands what it read to the test.
    async fn plain_server() -> (u16, tokio::sync::mpsc::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (read, requests) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let read = read.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nsuccess";
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = read
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .await;
                });
            }
        });
        (port, requests)
    }

    #[tokio::test]
    async fn a_post_carries_its_headers_and_reads_the_answer() {
        let (port, mut requests) = plain_server().await;
        let target: Uri = format!("http://127.0.0.1:{port}/notify").parse().unwrap();
        let headers = [("content-type", "application/json"), ("webhook-id", "cb_1")];
        let answer = client()
            .post(target, &headers, r#"{"a":1}"#.into(), 1024)
            .await
            .unwrap_or_else(|(_, why)| panic!("{why}"));
        assert_eq!((answer.status, &answer.body[..]), (200, &b"success"[..]));
        let request = requests.recv().await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("post /notify http/1.1\r\n"),
            "{request}"
        );
        for line in [
            "user-agent: kassa-test",
            "accept: */*",
            "content-type: application/json",
            "webhook-id: cb_1",
            "content-length: 7",
            &format!("host: 127.0.0.1:{port}"),
        ] {
            assert!(
                request.contains(&format!("{line}\r\n")),
                "{line}: {request}"
            );
        }
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    }

    #[tokio::test]
    async fn a_callback_header_of_kassas_default_name_replaces_the_default() {
        let (port, mut requests) = plain_server().await;
        let target: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let headers = [("accept", "application/json")];
        let posted = client().post(target, &headers, String::new(), 64).await;
        assert!(posted.is_ok());
        let request = requests.recv().await.unwrap().to_ascii_lowercase();
        assert_eq!(request.matches("accept:").count(), 1, "{request}");
        assert!(
            request.contains("accept: application/json\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_answer_is_read_only_as_far_as_asked() {
        let (port, _requests) = plain_server().await;
        let target: Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let answer = client().post(target, &[], String::new(), 3).await;
        assert_eq!(answer.map(|a| a.body).ok(), Some(b"suc".to_vec()));
    }

    /// An `https` target is sent over TLS or not at all: the plain server above cannot answer
    /// a handshake, so nothing it says is taken for an answer.
    #[tokio::test]
    async fn https_is_never_sent_in_the_clear() {
        let (port, _requests) = plain_server().await;
        let url = format!("https://127.0.0.1:{port}/");
        let (outcome, why) = refused(&client(), &url).await;
        assert_eq!(outcome, AttemptOutcome::ConnectError, "{why}");
    }

    /// A certificate no trusted authority issued is refused: the platform's verifier is on.
    #[tokio::test]
    async fn a_self_signed_certificate_is_refused() {
        let port = self_signed_tls_server().await;
        let url = format!("https://localhost:{port}/");
        let (outcome, why) = refused(&client(), &url).await;
        assert_eq!(outcome, AttemptOutcome::ConnectError, "{why}");
        assert!(why.contains("certificate"), "{why}");
    }

    #[tokio::test]
    async fn the_guarded_resolver_hands_out_no_forbidden_address() {
        let guarded = client_with(false, Duration::from_secs(2));
        let (outcome, why) = refused(&guarded, "http://localhost:9/").await;
        assert_eq!(outcome, AttemptOutcome::Blocked, "{why}");
        assert!(why.contains("loopback"), "{why}");
    }

    #[tokio::test]
    async fn an_attempt_ends_at_its_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and never answers.
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let short = client_with(true, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let (outcome, why) = refused(&short, &format!("http://127.0.0.1:{port}/")).await;
        assert_eq!(outcome, AttemptOutcome::Timeout, "{why}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// A connection that does not open within the connect timeout is a time-out, not a
    /// connection error: a listener on loopback whose queue of unaccepted connections is full
    /// drops further handshakes unanswered.
    #[tokio::test]
    async fn a_connection_that_does_not_open_in_time_is_a_timeout() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let address = listener.local_addr().unwrap();
        // Fill the queue (never accepted); the kernel takes one more than the backlog.
        let mut queued = Vec::new();
        for _ in 0..4 {
            let connect = tokio::net::TcpStream::connect(address);
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), connect).await
            {
                queued.push(stream);
            }
        }
        let timeouts = (Duration::from_millis(300), Duration::from_secs(5));
        let client = CallbackClient::new("kassa-test", timeouts, true, 1).unwrap();
        let started = std::time::Instant::now();
        let (outcome, why) = refused(&client, &format!("http://{address}/")).await;
        assert_eq!(outcome, AttemptOutcome::Timeout, "{why}");
        assert!(started.elapsed() < Duration::from_secs(3), "{why}");
        drop((listener, queued));
    }

    /// A TLS server on loopback with a certificate for `localhost` that it signed itself.
    async fn self_signed_tls_server() -> u16 {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nsuccess";
                        let _ = tls.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        port
    }
}
