//! Reading kassa's answers: the two dialects' envelopes, refusals as [`ApiError`]s, and the
//! check every piece of signed data passes before it is believed — the platform key's
//! signature over its canonical string, and `appId` naming this client's app.

use crate::Error;
use crate::error::{ApiError, Dialect};
use crate::transport::Answer;
use kassa_signature::{VerifyingKey, parse_signed_object};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The collect dialect's "no error".
const COLLECT_OK: &str = "00000000";

#[derive(Deserialize)]
struct CollectEnvelope<'a> {
    status: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    msg: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PixEnvelope<'a> {
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn api_error(answer: &Answer, dialect: Dialect, code: String, message: String) -> Error {
    Error::Api(ApiError {
        dialect,
        code,
        message,
        http_status: answer.status,
        retry_after_s: answer.retry_after_s(),
    })
}

/// A refusal of either dialect (for answers retried before their dialect is looked at).
pub fn refusal(answer: &Answer) -> Error {
    if let Ok(envelope) = serde_json::from_str::<CollectEnvelope>(&answer.body) {
        return api_error(answer, Dialect::Collect, envelope.error, envelope.msg);
    }
    if let Ok(envelope) = serde_json::from_str::<PixEnvelope>(&answer.body) {
        return api_error(
            answer,
            Dialect::Pix,
            envelope.code.to_string(),
            envelope.msg,
        );
    }
    Error::Malformed(format!("HTTP {} without kassa's envelope", answer.status))
}

/// The verified `data` text of a collect answer (`sign` inside it).
pub fn collect_data(answer: &Answer, key: &VerifyingKey, app_id: i64) -> Result<String, Error> {
    let envelope: CollectEnvelope = serde_json::from_str(&answer.body)
        .map_err(|e| Error::Malformed(format!("not the collect envelope: {e}")))?;
    if envelope.status != "1" || envelope.error != COLLECT_OK {
        return Err(api_error(
            answer,
            Dialect::Collect,
            envelope.error,
            envelope.msg,
        ));
    }
    let data = envelope
        .data
        .ok_or_else(|| Error::Malformed("no data in a successful answer".into()))?;
    verify_signed(data.get(), None, key, app_id)?;
    Ok(data.get().to_string())
}

/// The verified `data` text of a pix answer (`X-Sign` over it).
pub fn pix_data(answer: &Answer, key: &VerifyingKey, app_id: i64) -> Result<String, Error> {
    let envelope: PixEnvelope = serde_json::from_str(&answer.body)
        .map_err(|e| Error::Malformed(format!("not the pix envelope: {e}")))?;
    if envelope.code != 0 {
        let code = envelope.code.to_string();
        return Err(api_error(answer, Dialect::Pix, code, envelope.msg));
    }
    let data = envelope
        .data
        .ok_or_else(|| Error::Malformed("no data in a successful answer".into()))?;
    let sign = answer
        .header("x-sign")
        .ok_or_else(|| Error::BadSignature("the answer has no X-Sign header".into()))?;
    verify_signed(data.get(), Some(sign), key, app_id)?;
    Ok(data.get().to_string())
}

/// Checks signed data: the platform key's signature (`sign` in it, or `header_sign` from
/// `X-Sign`) over its canonical string, and that its `appId` is `app_id`.
pub fn verify_signed(
    data: &str,
    header_sign: Option<&str>,
    key: &VerifyingKey,
    app_id: i64,
) -> Result<(), Error> {
    let object = parse_signed_object(data).map_err(|e| Error::Malformed(e.to_string()))?;
    let sign = header_sign
        .or(object.sign.as_deref())
        .ok_or_else(|| Error::BadSignature("the data carries no sign".into()))?;
    key.verify_base64(object.canonical.as_bytes(), sign)
        .map_err(|e| Error::BadSignature(e.to_string()))?;
    let named = object
        .fields
        .get("appId")
        .and_then(|raw| raw.get().parse::<i64>().ok());
    if named != Some(app_id) {
        return Err(Error::WrongApp {
            expected: app_id,
            got: named,
        });
    }
    Ok(())
}
