//! The one password policy, used by every path that sets a password (first-admin
//! setup, admin user creation on the web and the API, change password, reset links,
//! sign-up).
//!
//! Guarantees: at least 15 characters (12 for a user with a second factor), at most
//! 128, counted as characters, any Unicode, no composition rules, never truncated;
//! refused when zxcvbn (bundled dictionaries, offline) scores it below 3 with the
//! user's name and email as user inputs, or when it contains the user's own email.
//! Error messages never repeat the password.

use super::order::FieldError;

pub const MIN_WITH_SECOND_FACTOR: usize = 12;
pub const MIN_WITHOUT_SECOND_FACTOR: usize = 15;
pub const MAX: usize = 128;
/// zxcvbn scores 0 to 4; 3 is "safely unguessable" against online attacks and
/// throttled offline ones.
const MIN_SCORE: u8 = 3;

/// Who the password is for: their own words are the first an attacker tries.
#[derive(Debug, Clone, Copy)]
pub struct PasswordContext<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub has_second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {min} characters{}", if *.min == MIN_WITHOUT_SECOND_FACTOR { " (12 once you use a second factor)" } else { "" })]
    TooShort { min: usize },
    #[error("must be at most {MAX} characters")]
    TooLong,
    #[error("must not contain your email address")]
    OwnEmail,
    #[error("is too easy to guess{0}")]
    TooGuessable(String),
}

impl PasswordError {
    /// The error as a form or API field error naming `password`.
    pub fn field_error(&self) -> FieldError {
        FieldError {
            field: "password".into(),
            message: self.to_string(),
        }
    }
}

/// Words of the user's own that zxcvbn should treat as known to an attacker.
fn user_inputs<'a>(ctx: &PasswordContext<'a>) -> Vec<&'a str> {
    let mut words: Vec<&str> = vec![ctx.name.trim(), ctx.email.trim()];
    words.extend(ctx.name.split_whitespace());
    if let Some((local, domain)) = ctx.email.split_once('@') {
        words.push(local);
        words.extend(local.split(['.', '_', '-', '+']));
        words.extend(domain.split('.'));
    }
    words.extend(["ihms", "ihmsconnect", "connect"]);
    words.retain(|w| w.chars().count() >= 3);
    words
}

/// Checks a new password against the policy.
pub fn check(password: &str, ctx: &PasswordContext<'_>) -> Result<(), PasswordError> {
    let n = password.chars().count();
    let min = if ctx.has_second_factor {
        MIN_WITH_SECOND_FACTOR
    } else {
        MIN_WITHOUT_SECOND_FACTOR
    };
    if n < min {
        return Err(PasswordError::TooShort { min });
    }
    if n > MAX {
        return Err(PasswordError::TooLong);
    }
    let email = ctx.email.trim().to_lowercase();
    if !email.is_empty() && password.to_lowercase().contains(&email) {
        return Err(PasswordError::OwnEmail);
    }
    let inputs = user_inputs(ctx);
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if u8::from(estimate.score()) >= MIN_SCORE {
        return Ok(());
    }
    let mut advice = String::new();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            advice.push_str(&format!(": {warning}"));
        }
        for suggestion in feedback.suggestions() {
            advice.push_str(&format!(" {suggestion}"));
        }
    }
    if advice.is_empty() {
        advice.push_str(". Try a few unrelated words, or a longer phrase.");
    }
    Err(PasswordError::TooGuessable(advice))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: PasswordContext<'static> = PasswordContext {
        name: "Ada Admin",
        email: "ada.admin@ihms.test",
        has_second_factor: false,
    };

    #[test]
    fn a_long_phrase_of_common_words_is_accepted() {
        assert_eq!(check("correct horse battery staple", &ADA), Ok(()));
        let planner = PasswordContext {
            name: "User planner@gulfcoast.test",
            email: "planner@gulfcoast.test",
            has_second_factor: false,
        };
        assert_eq!(check("correct horse battery staple", &planner), Ok(()));
    }

    #[test]
    fn sixty_four_unicode_characters_are_accepted_and_counted_as_characters() {
        let pw = "ÄßçðéﬁГдеж漢字かなカナ😀🙂🚀-".repeat(3) + "Ωμέ🌊";
        assert_eq!(pw.chars().count(), 64);
        assert_eq!(check(&pw, &ADA), Ok(()));
        let long = "ä".repeat(129);
        assert_eq!(check(&long, &ADA), Err(PasswordError::TooLong));
    }

    #[test]
    fn common_and_personal_passwords_are_refused_with_advice() {
        let with_factor = PasswordContext {
            has_second_factor: true,
            ..ADA
        };
        assert!(matches!(
            check("Password1234", &with_factor),
            Err(PasswordError::TooGuessable(_))
        ));
        assert_eq!(
            check("ada.admin@ihms.test", &ADA),
            Err(PasswordError::OwnEmail)
        );
        assert!(check("AdaAdminAdaAdmin", &ADA).is_err());
        let err = check("passwordpassword", &ADA).unwrap_err().to_string();
        assert!(err.starts_with("is too easy to guess"), "{err}");
        assert!(!err.contains("passwordpassword"));
    }

    #[test]
    fn the_minimum_is_twelve_with_a_second_factor_and_fifteen_without() {
        let pw = "vqx7 lumo brik"; // 14 characters, random enough
        assert_eq!(
            check(pw, &ADA),
            Err(PasswordError::TooShort {
                min: MIN_WITHOUT_SECOND_FACTOR
            })
        );
        let with_factor = PasswordContext {
            has_second_factor: true,
            ..ADA
        };
        assert_eq!(check(pw, &with_factor), Ok(()));
        assert!(check("vqx7 lumo b", &with_factor).is_err());
    }

    #[test]
    fn error_messages_name_the_password_field() {
        let e = check("short", &ADA).unwrap_err().field_error();
        assert_eq!(e.field, "password");
        assert!(e.message.contains("at least 15"));
    }
}
