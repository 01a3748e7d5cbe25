//! Key files and the developer's tools: writing a merchant key pair, `kassa sign` and
//! `kassa verify`. Signing works on the received text's fields, so numbers keep their exact
//! literals and the printed JSON verifies byte for byte.

use crate::checks::{Message, check_rsa, check_webhook};
use crate::{Failure, Outcome};
use kassa_signature::{SigningKey, VerifyingKey, parse_signed_object};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest JSON document the tools read.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

pub const PRIVATE_KEY_FILE: &str = "merchant.key.pem";
pub const PUBLIC_KEY_FILE: &str = "merchant.pub.pem";

fn read_input(input: Option<&Path>) -> Result<String, Failure> {
    let mut text = String::new();
    match input {
        None => std::io::stdin()
            .take(MAX_INPUT_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| Failure(format!("cannot read standard input: {e}")))?,
        Some(path) if path == Path::new("-") => std::io::stdin()
            .take(MAX_INPUT_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| Failure(format!("cannot read standard input: {e}")))?,
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT_BYTES).read_to_string(&mut text))
            .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?,
    };
    Ok(text)
}

pub fn read_key_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))
}

/// Writes a private file readable by its owner only; refuses to overwrite.
fn write_private(path: &Path, contents: &str) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))
}

/// Generates a merchant key pair into `dir` (`merchant.key.pem`, PKCS#8, mode 0600;
/// `merchant.pub.pem`). Existing files are never overwritten.
pub fn write_key_pair(dir: &Path) -> Result<(PathBuf, PathBuf, SigningKey), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(Failure(format!(
                "{} exists already; not overwriting it",
                path.display()
            )));
        }
    }
    let key = SigningKey::generate()?;
    write_private(&private_path, &key.to_pkcs8_pem())?;
    std::fs::write(&public_path, key.public_key_pem())
        .map_err(|e| Failure(format!("cannot write {}: {e}", public_path.display())))?;
    Ok((private_path, public_path, key))
}

/// The object with `sign` set: the received fields in key order, each with its exact JSON
/// text, and the signature of their canonical string.
pub fn sign_text(key: &SigningKey, text: &str) -> Result<String, Failure> {
    let object = parse_signed_object(text)?;
    let mut out = String::from("{");
    for (name, raw) in object.fields.iter().filter(|(name, _)| *name != "sign") {
        out.push_str(&serde_json::to_string(name)?);
        out.push(':');
        out.push_str(raw.get());
        out.push(',');
    }
    out.push_str("\"sign\":");
    out.push_str(&serde_json::to_string(
        &key.sign_base64(object.canonical.as_bytes()),
    )?);
    out.push('}');
    Ok(out)
}

pub fn sign(key_path: &Path, input: Option<&Path>) -> Outcome {
    let key = SigningKey::parse(&read_key_text(key_path)?)
        .map_err(|e| Failure(format!("{}: {e}", key_path.display())))?;
    println!("{}", sign_text(&key, &read_input(input)?)?);
    Ok(())
}

/// `kassa verify`: the platform key's signature of a reply or callback (collect `sign`, or pix
/// `X-Sign` from `--header` or a saved exchange), and with `secret` its Standard Webhooks
/// signature.
pub fn verify(
    key_path: &Path,
    input: Option<&Path>,
    headers: &[String],
    secret: Option<&str>,
) -> Outcome {
    let key = VerifyingKey::parse(&read_key_text(key_path)?)
        .map_err(|e| Failure(format!("{}: {e}", key_path.display())))?;
    let message = Message::parse(&read_input(input)?, headers).map_err(Failure)?;
    check_rsa(&key, &message).map_err(|e| Failure(format!("signature invalid: {e}")))?;
    println!("signature valid");
    if let Some(secret) = secret {
        let now_s = kassa_server::now_ms() / 1000;
        check_webhook(secret, &message, now_s)
            .map_err(|e| Failure(format!("webhook signature invalid: {e}")))?;
        println!("webhook signature valid");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_keeps_literals_and_verifies() {
        let key = SigningKey::generate().unwrap();
        let signed = sign_text(&key, r#"{"b":1.50,"a":"x\"y","sign":"old","n":null}"#).unwrap();
        assert!(signed.starts_with(r#"{"a":"x\"y","b":1.50,"n":null,"sign":""#));
        kassa_signature::verify_json(key.verifying_key(), &signed).unwrap();
        let envelope = format!(r#"{{"status":"1","error":"00000000","msg":"","data":{signed}}}"#);
        let message = Message::parse(&envelope, &[]).unwrap();
        assert_eq!(check_rsa(key.verifying_key(), &message), Ok("sign"));
    }
}
