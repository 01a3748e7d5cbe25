//! The one error of the client: what kassa answered (its dialect's code), or why no believable
//! answer came.

use std::fmt;

/// Which of kassa's APIs an answer came from; their error codes differ in form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `/{usd|eur}/collect/*`: eight-digit string codes such as `"10000005"`.
    Collect,
    /// `/accountProxyCollect/*`, `/proxyCollectQuery/*`: integer codes such as `1005`.
    Pix,
}

/// kassa refused the request: the dialect's code, its message, the HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub dialect: Dialect,
    /// The code as the dialect writes it (`"10000005"`, `"1005"`).
    pub code: String,
    pub message: String,
    pub http_status: u16,
    /// Seconds kassa asked to wait before a retry (`Retry-After`), if it said.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// The code's family, its first digit: 1 format, 2 signature and app, 3 business rule,
    /// 4 not found, 5 duplicate, 9 internal.
    pub fn family(&self) -> u8 {
        self.code.bytes().next().map_or(0, |b| b.wrapping_sub(b'0'))
    }

    /// Whether sending the identical request again may succeed (overload, rate limit, an
    /// internal error — nothing was stored).
    pub fn is_retryable(&self) -> bool {
        matches!(self.http_status, 429 | 500 | 502 | 503 | 504)
    }
}

impl std::error::Error for ApiError {}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kassa refused the request: {} {} (HTTP {})",
            self.code, self.message, self.http_status
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(ApiError),
    /// No answer within the client's timeout. A create may have been stored: send the
    /// identical request again (an idempotent replay) or query the order.
    #[error("kassa did not answer within {0} ms")]
    Timeout(u64),
    /// The connection failed or broke.
    #[error("cannot reach kassa: {0}")]
    Transport(String),
    /// The answer is not signed by the platform key the client was given.
    #[error("the answer's signature does not verify with the platform key: {0}")]
    BadSignature(String),
    /// Genuinely signed data about another app than this client's: never trust it.
    #[error("the signed data belongs to app {got:?}, not to app {expected}")]
    WrongApp { expected: i64, got: Option<i64> },
    /// The answer is not what the API promises (not JSON, fields missing, too large).
    #[error("kassa's answer is malformed: {0}")]
    Malformed(String),
    /// The call cannot be made as asked (for example a collect call in BRL).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The dialect's code when kassa refused the request.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Api(api) => Some(&api.code),
            _ => None,
        }
    }
}
