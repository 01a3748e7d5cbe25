//! RSA keys for SHA256withRSA: generating, reading and writing them, signing and verifying.
//!
//! Private-key operations run in aws-lc-rs (constant time). A [`VerifyingKey`] holds the
//! parsed key, so callers that keep it pay for parsing once, not per request.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKey};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaParameters,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;

pub const MIN_KEY_BITS: u32 = 2048;
pub const MAX_KEY_BITS: u32 = 4096;
/// Longest key text accepted (a 4096-bit PEM is about 800 bytes).
const MAX_KEY_TEXT: usize = 16 * 1024;
/// Longest base64 signature accepted: a 4096-bit signature is 684 characters.
const MAX_SIGNATURE_BASE64: usize = 684;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is too long")]
    TooLong,
    #[error("the key is neither PEM nor base64 DER: {0}")]
    Encoding(String),
    #[error("the PEM block is {0}, expected PUBLIC KEY or RSA PUBLIC KEY")]
    UnexpectedPublicPem(String),
    #[error("the PEM block is {0}, expected PRIVATE KEY or RSA PRIVATE KEY")]
    UnexpectedPrivatePem(String),
    #[error("the key is not a valid RSA key")]
    NotRsa,
    #[error("the key has {0} bits; kassa accepts RSA keys of 2048 to 4096 bits")]
    Size(u32),
    #[error("could not generate a key")]
    Generate,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("sign is missing")]
    MissingSign,
    #[error("sign is not standard base64 with padding")]
    Base64,
    #[error("sign does not match the message")]
    Mismatch,
    #[error(transparent)]
    Canonical(crate::canonical::CanonicalError),
}

fn check_bits(bits: u32) -> Result<(), KeyError> {
    if (MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::Size(bits))
    }
}

/// Reads a key's DER bytes from PEM (checking its label) or from bare base64.
fn der_from_text(text: &str, accepted_labels: &[&str]) -> Result<(Vec<u8>, bool), KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if text.len() > MAX_KEY_TEXT {
        return Err(KeyError::TooLong);
    }
    if text.starts_with("-----BEGIN") {
        let pem = pem::parse(text).map_err(|e| KeyError::Encoding(e.to_string()))?;
        if !accepted_labels.contains(&pem.tag()) {
            return Err(if accepted_labels[0].contains("PUBLIC") {
                KeyError::UnexpectedPublicPem(pem.tag().to_string())
            } else {
                KeyError::UnexpectedPrivatePem(pem.tag().to_string())
            });
        }
        let pkcs1 = pem.tag().starts_with("RSA ");
        return Ok((pem.into_contents(), pkcs1));
    }
    // Bare base64 DER, as Java back ends hand keys out; line breaks are tolerated.
    let compact: String = text.split_whitespace().collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|e| KeyError::Encoding(e.to_string()))?;
    Ok((der, false))
}

fn pem_of(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A public key that verifies SHA256withRSA signatures. Parsed once.
#[derive(Clone)]
pub struct VerifyingKey {
    parsed: ParsedPublicKey,
    spki_der: Vec<u8>,
    bits: u32,
}

impl VerifyingKey {
    /// Accepts `BEGIN PUBLIC KEY` (SPKI), `BEGIN RSA PUBLIC KEY` (PKCS#1) or bare base64 DER
    /// of either.
    pub fn parse(text: &str) -> Result<VerifyingKey, KeyError> {
        let (der, _) = der_from_text(text, &["PUBLIC KEY", "RSA PUBLIC KEY"])?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let public = PublicKey::from_der(der).map_err(|_| KeyError::NotRsa)?;
        let bits =
            RsaParameters::public_modulus_len(public.as_ref()).map_err(|_| KeyError::NotRsa)?;
        check_bits(bits)?;
        let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public.as_ref())
            .map_err(|_| KeyError::NotRsa)?;
        let spki_der = public
            .as_der()
            .map_err(|_| KeyError::NotRsa)?
            .as_ref()
            .to_vec();
        Ok(VerifyingKey {
            parsed,
            spki_der,
            bits,
        })
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The SHA-256 of the key's SPKI DER, as colon-separated hex pairs: what two people
    /// compare to know they hold the same key.
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.spki_der);
        let pairs: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }

    /// `-----BEGIN PUBLIC KEY-----` (SPKI) PEM.
    pub fn to_pem(&self) -> String {
        pem_of("PUBLIC KEY", &self.spki_der)
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        self.parsed
            .verify_sig(message, signature)
            .map_err(|_| VerifyError::Mismatch)
    }

    /// Verifies a signature given as standard padded base64.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> Result<(), VerifyError> {
        if signature_b64.is_empty() {
            return Err(VerifyError::MissingSign);
        }
        if signature_b64.len() > MAX_SIGNATURE_BASE64 {
            return Err(VerifyError::Base64);
        }
        let signature = STANDARD
            .decode(signature_b64)
            .map_err(|_| VerifyError::Base64)?;
        self.verify(message, &signature)
    }
}

/// Two keys are equal when their public key material is.
impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for VerifyingKey {}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey(RSA-{})", self.bits)
    }
}

/// A private key that signs with SHA256withRSA. `Debug` never shows key material.
pub struct SigningKey {
    key_pair: KeyPair,
    verifying: VerifyingKey,
    rng: SystemRandom,
}

impl SigningKey {
    /// A fresh RSA-2048 key.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        Self::from_key_pair(key_pair)
    }

    /// Accepts `BEGIN PRIVATE KEY` (PKCS#8), `BEGIN RSA PRIVATE KEY` (PKCS#1) or bare base64
    /// PKCS#8 DER.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let (der, pkcs1) = der_from_text(text, &["PRIVATE KEY", "RSA PRIVATE KEY"])?;
        let key_pair = if pkcs1 {
            KeyPair::from_der(&der)
        } else {
            KeyPair::from_pkcs8(&der)
        }
        .map_err(|_| KeyError::NotRsa)?;
        Self::from_key_pair(key_pair)
    }

    fn from_key_pair(key_pair: KeyPair) -> Result<SigningKey, KeyError> {
        let verifying = VerifyingKey::from_der(key_pair.public_key().as_ref())?;
        Ok(SigningKey {
            key_pair,
            verifying,
            rng: SystemRandom::new(),
        })
    }

    /// PKCS#8 PEM of the private key. Handle with care: this is the secret.
    pub fn to_pkcs8_pem(&self) -> String {
        let der: Pkcs8V1Der = self
            .key_pair
            .as_der()
            .expect("an in-memory RSA key always encodes");
        pem_of("PRIVATE KEY", der.as_ref())
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    pub fn public_key_pem(&self) -> String {
        self.verifying.to_pem()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .expect("signing with a valid RSA key and a sized buffer cannot fail");
        signature
    }

    /// The signature as standard padded base64, as it travels in `sign` and `X-Sign`.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.sign(message))
    }

    /// RSASSA-PSS with SHA-256 (salt of 32 bytes): JWS `PS256`, as PIX payloads are signed.
    pub fn sign_pss(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PSS_SHA256, &self.rng, message, &mut signature)
            .expect("signing with a valid RSA key and a sized buffer cannot fail");
        signature
    }

    /// The public key's modulus and exponent, big-endian without leading zeros (a JWK's `n`
    /// and `e`).
    pub fn public_components(&self) -> (Vec<u8>, Vec<u8>) {
        let public = self.key_pair.public_key();
        (
            public.modulus().big_endian_without_leading_zero().to_vec(),
            public.exponent().big_endian_without_leading_zero().to_vec(),
        )
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(RSA-{}, private part hidden)",
            self.verifying.bits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::OnceLock;

    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap())
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = key();
        let sig = key.sign_base64(b"amount=300&appId=1054");
        assert_eq!(sig.len(), 344); // 256 bytes, padded base64
        key.verifying_key()
            .verify_base64(b"amount=300&appId=1054", &sig)
            .unwrap();
        assert_eq!(
            key.verifying_key()
                .verify_base64(b"amount=301&appId=1054", &sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            key.verifying_key().verify_base64(b"x", "not base64!"),
            Err(VerifyError::Base64)
        );
        assert_eq!(
            key.verifying_key()
                .verify_base64(b"x", sig.trim_end_matches('=')),
            Err(VerifyError::Base64)
        );
        assert_eq!(
            key.verifying_key().verify_base64(b"x", ""),
            Err(VerifyError::MissingSign)
        );
    }

    #[test]
    fn pem_round_trips_and_bare_base64_is_accepted() {
        let key = key();
        let private = SigningKey::parse(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(private.public_key_pem(), key.public_key_pem());
        let pem = key.public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let from_bare = VerifyingKey::parse(&bare).unwrap();
        assert_eq!(from_bare.to_pem(), pem);
        let sig = key.sign(b"m");
        from_bare.verify(b"m", &sig).unwrap();
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(VerifyingKey::parse(""), Err(KeyError::Empty));
        assert!(matches!(
            VerifyingKey::parse("%%%"),
            Err(KeyError::Encoding(_))
        ));
        assert_eq!(VerifyingKey::parse("AAAA"), Err(KeyError::NotRsa));
        assert!(matches!(
            VerifyingKey::parse(&key().to_pkcs8_pem()),
            Err(KeyError::UnexpectedPublicPem(_))
        ));
        assert!(matches!(
            SigningKey::parse(&key().public_key_pem()),
            Err(KeyError::UnexpectedPrivatePem(_))
        ));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let shown = format!("{:?}", key());
        assert_eq!(shown, "SigningKey(RSA-2048, private part hidden)");
    }

    fn openssl() -> Option<&'static str> {
        let ok = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("skipped: the openssl command is not installed");
        }
        ok.then_some("openssl")
    }

    fn run(cmd: &mut Command) -> std::process::Output {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// An RSA key pair of `bits` made by openssl: private key at `private`, public at `public`.
    fn openssl_key_pair(
        openssl: &str,
        bits: u32,
        private: &std::path::Path,
        public: &std::path::Path,
    ) {
        let size = format!("rsa_keygen_bits:{bits}");
        run(Command::new(openssl)
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", &size, "-out"])
            .arg(private));
        run(Command::new(openssl)
            .args(["pkey", "-pubout", "-in"])
            .arg(private)
            .arg("-out")
            .arg(public));
    }

    /// openssl signs, kassa verifies; kassa signs, openssl verifies. Also PKCS#1 keys and a
    /// 4096-bit key made by openssl, and a 1024-bit key that must be refused.
    #[test]
    fn interoperates_with_openssl() {
        let Some(openssl) = openssl() else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let message = "amount=300&appId=1054&orderId=M233323000059";
        std::fs::write(path("msg"), message).unwrap();

        // openssl → kassa, with a 4096-bit key.
        openssl_key_pair(openssl, 4096, &path("k4096.pem"), &path("p4096.pem"));
        run(Command::new(openssl)
            .args(["dgst", "-sha256", "-sign"])
            .arg(path("k4096.pem"))
            .arg("-out")
            .arg(path("sig"))
            .arg(path("msg")));
        let public =
            VerifyingKey::parse(&std::fs::read_to_string(path("p4096.pem")).unwrap()).unwrap();
        assert_eq!(public.bits(), 4096);
        public
            .verify(message.as_bytes(), &std::fs::read(path("sig")).unwrap())
            .unwrap();
        // The openssl private key signs the same bytes in kassa (deterministic PKCS#1 v1.5).
        let private =
            SigningKey::parse(&std::fs::read_to_string(path("k4096.pem")).unwrap()).unwrap();
        assert_eq!(
            private.sign(message.as_bytes()),
            std::fs::read(path("sig")).unwrap()
        );

        // kassa → openssl.
        std::fs::write(path("kassa.pub.pem"), key().public_key_pem()).unwrap();
        std::fs::write(path("kassa.sig"), key().sign(message.as_bytes())).unwrap();
        run(Command::new(openssl)
            .args(["dgst", "-sha256", "-verify"])
            .arg(path("kassa.pub.pem"))
            .arg("-signature")
            .arg(path("kassa.sig"))
            .arg(path("msg")));

        // PKCS#1 ("RSA PUBLIC KEY" / "RSA PRIVATE KEY") forms.
        run(Command::new(openssl)
            .args(["rsa", "-pubin", "-in"])
            .arg(path("kassa.pub.pem"))
            .args(["-RSAPublicKey_out", "-out"])
            .arg(path("pkcs1.pub.pem")));
        let pkcs1 = std::fs::read_to_string(path("pkcs1.pub.pem")).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PUBLIC KEY"));
        assert_eq!(
            VerifyingKey::parse(&pkcs1).unwrap().to_pem(),
            key().public_key_pem()
        );
        std::fs::write(path("kassa.key.pem"), key().to_pkcs8_pem()).unwrap();
        run(Command::new(openssl)
            .args(["rsa", "-traditional", "-in"])
            .arg(path("kassa.key.pem"))
            .arg("-out")
            .arg(path("pkcs1.key.pem")));
        let pkcs1_private = std::fs::read_to_string(path("pkcs1.key.pem")).unwrap();
        assert!(pkcs1_private.contains("BEGIN RSA PRIVATE KEY"));
        assert_eq!(
            SigningKey::parse(&pkcs1_private).unwrap().public_key_pem(),
            key().public_key_pem()
        );

        // Too small.
        openssl_key_pair(openssl, 1024, &path("k1024.pem"), &path("p1024.pem"));
        assert_eq!(
            VerifyingKey::parse(&std::fs::read_to_string(path("p1024.pem")).unwrap()).map(|_| ()),
            Err(KeyError::Size(1024))
        );
    }
}
