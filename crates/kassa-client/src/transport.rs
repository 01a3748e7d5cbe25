//! One signed POST to kassa with a timeout, bounded reading of the answer, and retries where a
//! retry is safe: every call of both APIs is (an identical create is replayed, never doubled),
//! so a lost connection, a timeout, 429, 500 and 503 are retried with backoff.

use crate::Error;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// The most of an answer the client reads: a report page of 1,000 lines, signed.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The longest pause between two attempts, whatever `Retry-After` asks.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// The first pause; each later one doubles, up to ten seconds.
    pub first_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            first_pause: Duration::from_millis(250),
        }
    }
}

/// What kassa answered.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        self.header("retry-after")?.trim().parse().ok()
    }
}

/// Where an attempt left the call.
enum Attempt {
    Done(Result<Answer, Error>),
    Retry {
        error: Error,
        pause: Option<Duration>,
    },
}

pub async fn post(
    http: &reqwest::Client,
    timeout: Duration,
    policy: RetryPolicy,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<Answer, Error> {
    let mut pause = policy.first_pause;
    let mut attempt = 0;
    loop {
        let (error, asked) = match post_once(http, timeout, url, headers, body).await {
            Attempt::Done(outcome) => return outcome,
            Attempt::Retry { error, pause } => (error, pause),
        };
        if attempt >= policy.max_retries {
            return Err(error);
        }
        attempt += 1;
        tokio::time::sleep(asked.unwrap_or(pause).min(MAX_PAUSE)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

async fn post_once(
    http: &reqwest::Client,
    timeout: Duration,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Attempt {
    let mut request = http
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let answer = match request.send().await {
        Ok(response) => read(response).await,
        Err(error) => Err(transport_error(error, timeout)),
    };
    match answer {
        Err(error @ (Error::Timeout(_) | Error::Transport(_))) => {
            Attempt::Retry { error, pause: None }
        }
        Err(error) => Attempt::Done(Err(error)),
        Ok(answer) if matches!(answer.status, 429 | 500 | 502 | 503 | 504) => {
            let pause = answer.retry_after_s().map(Duration::from_secs);
            Attempt::Retry {
                error: crate::envelope::refusal(&answer),
                pause,
            }
        }
        Ok(answer) => Attempt::Done(Ok(answer)),
    }
}

async fn read(mut response: reqwest::Response) -> Result<Answer, Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Error::Malformed(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).map_err(|_| Error::Malformed("not UTF-8".into()))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn transport_error(error: reqwest::Error, timeout: Duration) -> Error {
    if error.is_timeout() {
        Error::Timeout(timeout.as_millis() as u64)
    } else {
        Error::Transport(error.to_string())
    }
}
