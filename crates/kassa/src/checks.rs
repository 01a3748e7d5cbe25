//! What the developer tools (`kassa verify`, `kassa listen`) check of a message kassa sent: the
//! platform key's RSA signature — `sign` inside a collect body or envelope `data`, or the
//! `X-Sign` header of a pix answer or callback — and the Standard Webhooks signature of a
//! callback. Messages come as a bare body, or as a saved HTTP exchange (`curl -si` output, or
//! a request as received) whose headers are read too.

use kassa_signature::{VerifyingKey, parse_signed_object, webhook};
use serde_json::value::RawValue;

/// A message: its headers (names in lower case) and body.
#[derive(Debug, Default)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A bare JSON body, or a saved HTTP exchange: a start line (`HTTP/1.1 200 OK`, `POST
    /// /notify HTTP/1.1`), headers, a blank line, the body. `extra` headers (`Name: value`)
    /// are added to those of the exchange.
    pub fn parse(text: &str, extra: &[String]) -> Result<Message, String> {
        let mut message = Message::default();
        let first_line = text.lines().next().unwrap_or_default();
        if first_line.starts_with("HTTP/") || first_line.ends_with(" HTTP/1.1") {
            let normalised = text.replace("\r\n", "\n");
            let (head, body) = normalised
                .split_once("\n\n")
                .ok_or("the exchange has no blank line between headers and body")?;
            for line in head.lines().skip(1) {
                message.headers.push(header_of(line)?);
            }
            message.body = body.to_string();
        } else {
            message.body = text.to_string();
        }
        for line in extra {
            message.headers.push(header_of(line)?);
        }
        Ok(message)
    }
}

fn header_of(line: &str) -> Result<(String, String), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("not a header (Name: value): {line:?}"))?;
    Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
}

/// The signed part of a body: an answer envelope's `data`, or the body itself (a callback, or
/// `data` saved alone).
fn signed_part(body: &str) -> &str {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        data: Option<&'a RawValue>,
        sign: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope {
            data: Some(data),
            sign: None,
        }) if data.get().starts_with('{') => data.get(),
        _ => body,
    }
}

/// Checks the platform key's signature; says where it was found.
pub fn check_rsa(key: &VerifyingKey, message: &Message) -> Result<&'static str, String> {
    let signed = signed_part(message.body.trim());
    let object = parse_signed_object(signed).map_err(|e| e.to_string())?;
    let (sign, place) = match message.header("x-sign") {
        Some(sign) => (sign, "X-Sign"),
        None => (
            object
                .sign
                .as_deref()
                .ok_or("no sign in the body and no X-Sign header (give it with --header)")?,
            "sign",
        ),
    };
    key.verify_base64(object.canonical.as_bytes(), sign)
        .map(|()| place)
        .map_err(|e| format!("{place}: {e}"))
}

/// Checks a callback's Standard Webhooks signature with `secret` at `now_s`.
pub fn check_webhook(secret: &str, message: &Message, now_s: i64) -> Result<(), String> {
    let header = |name| {
        message
            .header(name)
            .ok_or_else(|| format!("the {name} header is missing"))
    };
    webhook::verify(
        secret,
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
        message.body.as_bytes(),
        now_s,
    )
    .map_err(|e| e.to_string())
}

/// The `appId` a body names (its `data`'s for an envelope).
pub fn app_id_of(body: &str) -> Option<i64> {
    let object = parse_signed_object(signed_part(body.trim())).ok()?;
    object.fields.get("appId")?.get().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_signature::SigningKey;

    #[test]
    fn reads_exchanges_and_finds_the_signature_where_it_is() {
        let key = SigningKey::generate().unwrap();
        let data = r#"{"appId":1003,"orderNo":"6023071013539075","orderState":20}"#;
        let canonical = parse_signed_object(data).unwrap().canonical;
        let sign = key.sign_base64(canonical.as_bytes());
        let answer = format!(r#"{{"code":0,"msg":"success","data":{data}}}"#);
        let exchange = format!(
            "HTTP/1.1 200 OK\r\nX-Sign: {sign}\r\nContent-Type: application/json\r\n\r\n{answer}"
        );
        let message = Message::parse(&exchange, &[]).unwrap();
        assert_eq!(check_rsa(key.verifying_key(), &message), Ok("X-Sign"));
        assert_eq!(app_id_of(&message.body), Some(1003));
        // A bare body with the header given apart; a wrong header fails.
        let bare = Message::parse(&answer, &[format!("X-Sign: {sign}")]).unwrap();
        assert_eq!(check_rsa(key.verifying_key(), &bare), Ok("X-Sign"));
        let other = key.sign_base64(b"other");
        let wrong = Message::parse(&answer, &[format!("x-sign:{other}")]).unwrap();
        assert!(check_rsa(key.verifying_key(), &wrong).is_err());
        assert!(check_rsa(key.verifying_key(), &Message::parse(&answer, &[]).unwrap()).is_err());
        assert!(Message::parse("HTTP/1.1 200 OK\nno blank line", &[]).is_err());
    }
}
