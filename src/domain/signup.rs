//! The life of an account (`AccountState`) and the input of sign-up and of the
//! self-service account page.
//!
//! Guarantees: each error names its field and never repeats the submitted value; a
//! new password is judged by `new_password_problem` alone, so the password policy
//! changes in one place; a sign-up can only ask for a partner role (never agency).

use serde::{Deserialize, Serialize};

use super::account::normalize_email;
use super::order::FieldError;
use super::validate::{check_text, normalize_phone};
use super::{OrgKind, Role};

/// Where an account is in its life. Records written before this field existed read
/// as `Active`. Disabling is the separate `disabled` flag on the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AccountState {
    #[default]
    Active,
    /// Signed up, waiting for agency staff to link it to an organization.
    Pending {
        kind: OrgKind,
        organization: String,
        requested_ms: i64,
    },
    /// Refused by agency staff; the reason is shown to staff only.
    Rejected { reason: String, at_ms: i64 },
    /// Deleted at the user's request: personal fields erased, id kept.
    Deleted { at_ms: i64 },
}

impl AccountState {
    pub fn is_pending(&self) -> bool {
        matches!(self, AccountState::Pending { .. })
    }

    pub fn label(&self) -> &'static str {
        match self {
            AccountState::Active => "Active",
            AccountState::Pending { .. } => "Awaiting approval",
            AccountState::Rejected { .. } => "Rejected",
            AccountState::Deleted { .. } => "Deleted",
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Pending { .. } => "pending",
            AccountState::Rejected { .. } => "rejected",
            AccountState::Deleted { .. } => "deleted",
        }
    }
}

/// The name shown for an account whose personal fields were erased.
pub const DELETED_NAME: &str = "Deleted account";

/// The kinds of organization a person may ask to join at sign-up.
pub const REQUESTABLE: [OrgKind; 4] = [
    OrgKind::ReferringFacility,
    OrgKind::HomeHealth,
    OrgKind::Dme,
    OrgKind::Caregiver,
];

/// The role a sign-up for an organization of `kind` gets once approved.
pub fn role_for(kind: OrgKind) -> Role {
    match kind {
        OrgKind::Agency => Role::Staff,
        OrgKind::ReferringFacility => Role::FacilityUser,
        _ => Role::ProviderUser,
    }
}

/// Why a new password is not acceptable, if it is not. Every form that sets a
/// password asks here, so the policy lives in one place.
pub fn new_password_problem(password: &str, name: &str, email: &str) -> Option<String> {
    let ctx = super::password::PasswordContext {
        name,
        email,
        has_second_factor: false,
    };
    super::password::check(password, &ctx)
        .err()
        .map(|e| e.to_string())
}

fn err(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn text(field: &str, value: &str, required: bool, errors: &mut Vec<FieldError>) -> String {
    match check_text(value, 100, false) {
        Ok(v) if v.is_empty() && required => {
            errors.push(err(field, "is required"));
            v
        }
        Ok(v) => v,
        Err(m) => {
            errors.push(err(field, m));
            String::new()
        }
    }
}

fn phone(value: &str, required: bool, errors: &mut Vec<FieldError>) -> String {
    if value.trim().is_empty() {
        if required {
            errors.push(err("phone", "is required"));
        }
        return String::new();
    }
    normalize_phone(value).unwrap_or_else(|| {
        errors.push(err("phone", "must be a 10-digit US phone number"));
        String::new()
    })
}

/// The sign-up form as typed.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct SignupInput {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub kind: String,
    pub organization: String,
    pub password: String,
    pub password_confirm: String,
}

/// A checked sign-up (the password is hashed by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Signup {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub kind: OrgKind,
    pub organization: String,
}

impl SignupInput {
    pub fn parse(&self) -> Result<Signup, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = text("name", &self.name, true, &mut errors);
        let email = normalize_email(&self.email);
        if email.is_none() {
            errors.push(err("email", "must be an email address"));
        }
        let phone = phone(&self.phone, true, &mut errors);
        let kind = OrgKind::parse(self.kind.trim()).filter(|k| REQUESTABLE.contains(k));
        if kind.is_none() {
            errors.push(err(
                "kind",
                "choose referring facility, home health, DME or caregiver",
            ));
        }
        let organization = text("organization", &self.organization, true, &mut errors);
        let typed_email = email.as_deref().unwrap_or(self.email.trim());
        if let Some(problem) = new_password_problem(&self.password, &name, typed_email) {
            errors.push(err("password", &problem));
        } else if self.password != self.password_confirm {
            errors.push(err("password_confirm", "does not match the password"));
        }
        match (email, kind) {
            (Some(email), Some(kind)) if errors.is_empty() => Ok(Signup {
                name,
                email,
                phone,
                kind,
                organization,
            }),
            _ => Err(errors),
        }
    }
}

/// The corrections a user may make to their own profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileChange {
    pub name: String,
    pub phone: String,
}

/// Checks a profile correction: a name is required, a phone is optional.
pub fn parse_profile(name: &str, phone_raw: &str) -> Result<ProfileChange, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = text("name", name, true, &mut errors);
    let phone = phone(phone_raw, false, &mut errors);
    if errors.is_empty() {
        Ok(ProfileChange { name, phone })
    } else {
        Err(errors)
    }
}

/// Checks a rejection reason: required, up to 1,000 characters, lines allowed.
pub fn parse_reason(raw: &str) -> Result<String, FieldError> {
    match check_text(raw, 1_000, true) {
        Ok(r) if r.is_empty() => Err(err("reason", "is required")),
        Ok(r) => Ok(r),
        Err(m) => Err(err("reason", m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SignupInput {
        SignupInput {
            name: "Maria Lopez".into(),
            email: " Maria@GulfCoast.test ".into(),
            phone: "727-555-0142".into(),
            kind: "referring_facility".into(),
            organization: "Gulf Coast Medical".into(),
            password: "a long enough password".into(),
            password_confirm: "a long enough password".into(),
        }
    }

    #[test]
    fn a_complete_sign_up_is_normalized() {
        let s = input().parse().expect("valid");
        assert_eq!(s.email, "maria@gulfcoast.test");
        assert_eq!(s.phone, "(727) 555-0142");
        assert_eq!(s.kind, OrgKind::ReferringFacility);
        assert_eq!(role_for(s.kind), Role::FacilityUser);
        assert_eq!(role_for(OrgKind::Dme), Role::ProviderUser);
    }

    #[test]
    fn sign_up_errors_name_their_fields_and_never_the_values() {
        let bad = SignupInput {
            name: String::new(),
            email: "not-an-email".into(),
            phone: "12".into(),
            kind: "agency".into(),
            organization: "x\u{0007}".into(),
            password: "short".into(),
            password_confirm: "short".into(),
        };
        let errors = bad.parse().expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "email", "phone", "kind", "organization", "password"]
        );
        assert!(errors.iter().all(|e| !e.message.contains("not-an-email")));
    }

    #[test]
    fn a_mismatched_confirmation_is_named() {
        let mut i = input();
        i.password_confirm = "something else entirely".into();
        let errors = i.parse().expect_err("invalid");
        assert_eq!(errors[0].field, "password_confirm");
    }

    #[test]
    fn old_records_without_a_state_read_as_active() {
        #[derive(Deserialize)]
        struct Rec {
            #[serde(default)]
            state: AccountState,
        }
        let r: Rec = serde_json::from_str("{}").expect("json");
        assert_eq!(r.state, AccountState::Active);
        let p = AccountState::Pending {
            kind: OrgKind::Dme,
            organization: "Bay DME".into(),
            requested_ms: 1,
        };
        let back: AccountState =
            serde_json::from_str(&serde_json::to_string(&p).expect("ser")).expect("de");
        assert_eq!(back, p);
    }

    #[test]
    fn profile_corrections_need_a_name_and_allow_no_phone() {
        assert!(parse_profile("Ann", "").is_ok());
        assert_eq!(parse_profile("", "").expect_err("name")[0].field, "name");
        assert_eq!(
            parse_profile("Ann", "5").expect_err("phone")[0].field,
            "phone"
        );
        assert!(parse_reason("  ").is_err());
        assert_eq!(
            parse_reason("Not a partner\n").as_deref(),
            Ok("Not a partner")
        );
    }
}
