//! People who use the back office: their roles, what each role may do, and the rules a new
//! user or password must meet. Pure: hashing, sessions and storage live elsewhere.

use crate::app::MerchantId;
use crate::validate;

/// What a user is for. Operator roles see every merchant; merchant roles only their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything, keys, fees and users included.
    OperatorAdmin,
    /// Reads, resends callbacks, resolves exceptions; no keys, fees or users.
    OperatorSupport,
    /// Their own merchant: apps, keys, reports, users of that merchant.
    MerchantAdmin,
    /// Their own merchant's orders, callbacks and keys.
    MerchantDeveloper,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::OperatorAdmin,
        Role::OperatorSupport,
        Role::MerchantAdmin,
        Role::MerchantDeveloper,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OperatorAdmin => "operator-admin",
            Role::OperatorSupport => "operator-support",
            Role::MerchantAdmin => "merchant-admin",
            Role::MerchantDeveloper => "merchant-developer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether the role belongs to the operator (not to one merchant).
    pub fn is_operator(self) -> bool {
        matches!(self, Role::OperatorAdmin | Role::OperatorSupport)
    }
}

/// The most characters of a password (argon2 takes any length; a bound keeps hashing cheap to
/// refuse).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// The fewest characters of a password.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("email: {0}")]
    Email(String),
    #[error("a {role} belongs to one merchant: give its merchant")]
    MerchantMissing { role: &'static str },
    #[error("an {role} belongs to no merchant")]
    MerchantNotAllowed { role: &'static str },
    #[error("the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    PasswordLength,
    #[error("the password must not contain control characters")]
    PasswordCharacters,
}

/// A user about to be added: the e-mail they sign in with (lower-cased), their role, and for a
/// merchant role the merchant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
}

impl NewUser {
    pub fn new(
        email: &str,
        role: Role,
        merchant_id: Option<MerchantId>,
    ) -> Result<NewUser, UserError> {
        let email = email.trim().to_ascii_lowercase();
        validate::email("email", &email).map_err(|e| UserError::Email(e.to_string()))?;
        match (role.is_operator(), merchant_id) {
            (true, Some(_)) => Err(UserError::MerchantNotAllowed {
                role: role.as_str(),
            }),
            (false, None) => Err(UserError::MerchantMissing {
                role: role.as_str(),
            }),
            _ => Ok(NewUser {
                email,
                role,
                merchant_id,
            }),
        }
    }
}

/// Checks a password before it is hashed: long enough to resist guessing, bounded, and free of
/// control characters (which no keyboard types and some terminals swallow).
pub fn check_password(password: &str) -> Result<(), UserError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(UserError::PasswordLength);
    }
    if password.chars().any(char::is_control) {
        return Err(UserError::PasswordCharacters);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_and_say_whose_they_are() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert!(Role::OperatorSupport.is_operator());
        assert!(!Role::MerchantDeveloper.is_operator());
    }

    #[test]
    fn a_merchant_role_needs_its_merchant_and_an_operator_none() {
        let shop = Some(MerchantId(1));
        let user = NewUser::new(" Ana@Shop.Example ", Role::MerchantAdmin, shop).unwrap();
        assert_eq!(user.email, "ana@shop.example");
        assert!(matches!(
            NewUser::new("ana@shop.example", Role::MerchantAdmin, None),
            Err(UserError::MerchantMissing { .. })
        ));
        assert!(matches!(
            NewUser::new("ops@psp.example", Role::OperatorAdmin, shop),
            Err(UserError::MerchantNotAllowed { .. })
        ));
        assert!(NewUser::new("not an address", Role::OperatorAdmin, None).is_err());
    }

    #[test]
    fn passwords_are_bounded() {
        assert_eq!(check_password("short"), Err(UserError::PasswordLength));
        assert_eq!(
            check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Err(UserError::PasswordLength)
        );
        assert_eq!(
            check_password("twelve chars\u{7}"),
            Err(UserError::PasswordCharacters)
        );
        assert_eq!(check_password("correct horse battery"), Ok(()));
    }
}
