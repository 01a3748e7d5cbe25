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

/// What a user may do in the back office. Merchant roles do it within their own merchant only;
/// which objects are theirs is checked apart, on every object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// The overview, orders, callbacks, apps and balances, reports.
    Read,
    /// See a payer's personal data unmasked (each view audited).
    ViewPersonalData,
    /// Queue a callback again.
    ResendCallbacks,
    /// Decide an order in exception (succeeded or failed, with a reason).
    ResolveExceptions,
    /// Set an app's public key.
    ManageKeys,
    /// Set an app's fees and amount limits.
    ManageTerms,
    /// Every merchant and channel, the audit log.
    ViewPlatform,
    /// Merchants: create them with their apps.
    ManageMerchants,
    /// Users: invite, disable, enable.
    ManageUsers,
}

impl Role {
    /// The one table of who may do what.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::OperatorAdmin => true,
            Role::OperatorSupport => !matches!(
                permission,
                ManageKeys | ManageTerms | ManageMerchants | ManageUsers
            ),
            Role::MerchantAdmin => matches!(
                permission,
                Read | ViewPersonalData | ResendCallbacks | ManageKeys
            ),
            Role::MerchantDeveloper => matches!(permission, Read | ResendCallbacks | ManageKeys),
        }
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
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
}

impl std::fmt::Debug for NewUser {
    /// The e-mail is personal data: masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &crate::Personal::new(self.email.clone()))
            .field("role", &self.role)
            .field("merchant_id", &self.merchant_id)
            .finish()
    }
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

/// How failed sign-ins lock an account: the first `free_failures` in a row cost nothing; each
/// one after locks the account for `first_lock_ms`, doubled with every further failure, at most
/// `max_lock_ms`. A success (or a password reset) clears the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub free_failures: i64,
    pub first_lock_ms: i64,
    pub max_lock_ms: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            free_failures: 5,
            first_lock_ms: 30_000,
            max_lock_ms: 3_600_000,
        }
    }
}

impl LockoutPolicy {
    /// The count of failures in a row and the end of the lock after one more failure at
    /// `now_ms` (0: not locked).
    pub fn after_failure(&self, failures_before: i64, now_ms: i64) -> (i64, i64) {
        let failures = failures_before.saturating_add(1);
        let beyond = failures - self.free_failures;
        if beyond <= 0 {
            return (failures, 0);
        }
        let doublings = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(32);
        let lock_ms = self
            .first_lock_ms
            .saturating_mul(1_i64 << doublings)
            .min(self.max_lock_ms);
        (failures, now_ms.saturating_add(lock_ms))
    }
}

/// Whether an account locked until `locked_until_ms` is still locked at `now_ms`.
pub fn is_locked(locked_until_ms: i64, now_ms: i64) -> bool {
    now_ms < locked_until_ms
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

    #[test]
    fn failures_lock_longer_each_time_up_to_the_most() {
        let policy = LockoutPolicy::default();
        let mut failures = 0;
        let mut locks = Vec::new();
        for _ in 0..12 {
            let (count, until) = policy.after_failure(failures, 1_000);
            failures = count;
            locks.push(if until == 0 { 0 } else { until - 1_000 });
        }
        assert_eq!(
            locks,
            [
                0, 0, 0, 0, 0, 30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000
            ]
        );
        assert_eq!(policy.after_failure(40, 0).1, 3_600_000, "at most an hour");
        assert_eq!(policy.after_failure(i64::MAX, 0).1, 3_600_000);
        assert!(is_locked(2_000, 1_999) && !is_locked(2_000, 2_000));
    }
}
