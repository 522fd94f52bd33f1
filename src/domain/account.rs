//! Parsing of account and organization input: each error names its field and never
//! repeats the submitted value.

use serde::Deserialize;
use uuid::Uuid;

use super::order::FieldError;
use super::order::{Discipline, PlanType};
use super::password::{self, PasswordContext};
use super::placement::ProviderProfile;
use super::validate::{check_text, normalize_hcpcs, normalize_zip, valid_npi, valid_state};
use super::{OrgKind, Role};

fn err(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Trims and lower-cases an email and checks its shape (`local@domain.tld`).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && email.chars().count() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        // Invisible and direction-changing characters would let an email pose as
        // another one in the sign-up queue and the users list (as names cannot).
        && check_text(&email, 254, false).is_ok()
        && !domain.contains('@');
    ok.then_some(email)
}

fn required_text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    match check_text(value, max, false) {
        Ok(v) if v.is_empty() => {
            errors.push(err(field, "is required"));
            v
        }
        Ok(v) => v,
        Err(msg) => {
            errors.push(err(field, msg));
            String::new()
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct NewOrgInput {
    pub name: String,
    pub kind: String,
    pub npi: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    #[serde(flatten)]
    pub profile: ProfileInput,
}

/// A provider's directory entry as typed (lists of codes).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ProfileInput {
    pub service_zips: Vec<String>,
    pub payers_accepted: Vec<String>,
    pub disciplines: Vec<String>,
    pub hcpcs: Vec<String>,
    pub paused: bool,
}

impl ProfileInput {
    /// Splits comma, space or newline separated text (from a form) into codes.
    pub fn split(text: &str) -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn parse(&self) -> Result<ProviderProfile, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut profile = ProviderProfile {
            paused: self.paused,
            ..ProviderProfile::default()
        };
        for (i, z) in self.service_zips.iter().enumerate() {
            match normalize_zip(z) {
                Some(z) => profile.service_zips.push(z.chars().take(5).collect()),
                None => errors.push(err(&format!("service_zips[{i}]"), "must be 5 digits")),
            }
        }
        for (i, p) in self.payers_accepted.iter().enumerate() {
            match serde_json::from_value::<PlanType>(serde_json::Value::String(
                p.trim().to_string(),
            )) {
                Ok(p) => profile.payers_accepted.push(p),
                Err(_) => errors.push(err(&format!("payers_accepted[{i}]"), "is not a plan type")),
            }
        }
        for (i, d) in self.disciplines.iter().enumerate() {
            match serde_json::from_value::<Discipline>(serde_json::Value::String(
                d.trim().to_uppercase(),
            )) {
                Ok(d) => profile.disciplines.push(d),
                Err(_) => errors.push(err(
                    &format!("disciplines[{i}]"),
                    "is not a home health discipline",
                )),
            }
        }
        for (i, h) in self.hcpcs.iter().enumerate() {
            match normalize_hcpcs(h) {
                Some(h) => profile.hcpcs.push(h),
                None => errors.push(err(&format!("hcpcs[{i}]"), "is a letter and four digits")),
            }
        }
        profile.service_zips.dedup();
        if errors.is_empty() {
            Ok(profile)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewOrg {
    pub name: String,
    pub kind: OrgKind,
    pub npi: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub profile: ProviderProfile,
}

impl NewOrgInput {
    pub fn parse(&self) -> Result<NewOrg, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = required_text("name", &self.name, 100, &mut errors);
        let kind = OrgKind::parse(self.kind.trim());
        if kind.is_none() {
            errors.push(err(
                "kind",
                "must be one of referring_facility, home_health, dme, caregiver",
            ));
        }
        if kind == Some(OrgKind::Agency) {
            errors.push(err("kind", "there is exactly one agency organization"));
        }
        let npi = self.npi.trim().to_string();
        if !npi.is_empty() && !valid_npi(&npi) {
            errors.push(err("npi", "must be 10 digits with a valid check digit"));
        }
        let city = match check_text(&self.city, 100, false) {
            Ok(v) => v,
            Err(m) => {
                errors.push(err("city", m));
                String::new()
            }
        };
        let state = self.state.trim().to_uppercase();
        if !state.is_empty() && !valid_state(&state) {
            errors.push(err("state", "must be a two-letter US state code"));
        }
        let zip = if self.zip.trim().is_empty() {
            String::new()
        } else {
            normalize_zip(&self.zip).unwrap_or_else(|| {
                errors.push(err("zip", "must be 5 digits or ZIP+4"));
                String::new()
            })
        };
        let profile = self
            .profile
            .parse()
            .map_err(|mut e| errors.append(&mut e))
            .unwrap_or_default();
        match kind {
            Some(kind) if errors.is_empty() => Ok(NewOrg {
                name,
                kind,
                npi,
                city,
                state,
                zip,
                profile,
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct NewUserInput {
    pub email: String,
    pub name: String,
    pub role: String,
    pub organization_id: String,
    pub password: String,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub org_id: Uuid,
    pub phone: String,
}

impl NewUserInput {
    /// Checks the shape of every field and the password policy (a new user has no
    /// second factor yet); the caller checks that the organization exists and fits
    /// the role, and hashes the password.
    pub fn parse(&self) -> Result<NewUser, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email = normalize_email(&self.email);
        if email.is_none() {
            errors.push(err("email", "must be an email address"));
        }
        let name = required_text("name", &self.name, 100, &mut errors);
        let role = Role::parse(self.role.trim());
        if role.is_none() {
            errors.push(err(
                "role",
                "must be one of admin, staff, facility_user, provider_user",
            ));
        }
        let org_id = Uuid::parse_str(self.organization_id.trim()).ok();
        if org_id.is_none() {
            errors.push(err("organization_id", "must be the id of an organization"));
        }
        let context = PasswordContext {
            name: self.name.trim(),
            email: email.as_deref().unwrap_or(self.email.trim()),
            has_second_factor: false,
        };
        if let Err(e) = password::check(&self.password, &context) {
            errors.push(e.field_error());
        }
        let phone = match check_text(&self.phone, 40, false) {
            Ok(v) => v,
            Err(m) => {
                errors.push(err("phone", m));
                String::new()
            }
        };
        match (email, role, org_id) {
            (Some(email), Some(role), Some(org_id)) if errors.is_empty() => Ok(NewUser {
                email,
                name,
                role,
                org_id,
                phone,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.ORG ").as_deref(),
            Some("ann@example.org")
        );
        assert!(normalize_email("ann").is_none());
        assert!(normalize_email("ann@localhost").is_none());
        assert!(normalize_email("a b@example.org").is_none());
    }

    #[test]
    fn emails_with_invisible_or_direction_changing_characters_are_refused() {
        for sneaky in [
            "ada.admin\u{200B}@ihms.test",
            "ada.admin@ihms\u{2060}.test",
            "\u{202E}tset.smhi@nimda.ada",
            "ada\u{FEFF}@ihms.test",
        ] {
            assert!(normalize_email(sneaky).is_none(), "{sneaky:?}");
        }
        assert_eq!(
            normalize_email("José@Example.org").as_deref(),
            Some("josé@example.org"),
            "other Unicode stays allowed"
        );
    }
}
