//! Passwords of back-office users: hashed with argon2id (its recommended parameters: 19 MiB,
//! two passes, one lane) under a fresh random salt, in the PHC string format that records the
//! parameters with the hash; checked in constant time by the argon2 crate.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use kassa_core::user::{UserError, check_password};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error(transparent)]
    Refused(#[from] UserError),
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// The PHC string of `password`'s argon2id hash, if the password meets the rules.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored` (a PHC string of an argon2id hash); false for anything
/// else stored, so that a hash of another kind never signs anyone in.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A password to hand a new user once: 20 characters from a 57-letter alphabet without
/// look-alikes (~116 bits), drawn without bias (bytes past the last whole alphabet are redrawn).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let limit = 256 - 256 % ALPHABET.len();
    let mut password = String::with_capacity(20);
    while password.len() < 20 {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
        let usable = bytes.iter().filter(|b| usize::from(**b) < limit);
        for b in usable.take(20 - password.len()) {
            password.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let one = hash("correct horse battery").unwrap();
        let two = hash("correct horse battery").unwrap();
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{one}");
        assert_ne!(one, two, "a fresh salt each time");
        assert!(verify("correct horse battery", &one));
        assert!(!verify("correct horse batterY", &one));
        assert!(!verify("correct horse battery", "plain text"));
        let argon2i = one.replacen("argon2id", "argon2i", 1);
        assert!(!verify("correct horse battery", &argon2i));
        assert!(matches!(hash("short"), Err(PasswordError::Refused(_))));
    }

    #[test]
    fn generated_passwords_meet_the_rules_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(check_password(&a).is_ok());
    }
}
