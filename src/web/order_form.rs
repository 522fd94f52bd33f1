//! The new-order web form: turns posted fields into the same `OrderInput` the API
//! takes (so both go through one validation), and maps validation paths back to the
//! form's field names so every error shows beside what the user typed.

use std::collections::BTreeMap;

use crate::domain::order::{
    AddressInput, CaregiverInput, DiagnosisInput, DmeItemInput, FieldError, InsuranceInput,
    OrderInput, PatientInput, PhysicianInput, ServiceInput,
};
use crate::web::extract::FormFields;

pub const DIAGNOSIS_ROWS: usize = 4;
pub const DME_ROWS: usize = 4;
pub const INSURANCE_ROWS: usize = 2;

/// Validation path prefixes and the form names they came from, longest first.
#[derive(Default)]
pub struct PathMap(Vec<(String, String)>);

impl PathMap {
    fn add(&mut self, from: String, to: String) {
        self.0.push((from, to));
    }

    /// The form field for a validation path (`services[1].items[0].hcpcs` →
    /// `svc.dme.items[2].hcpcs`).
    pub fn to_form(&self, path: &str) -> String {
        let best = self
            .0
            .iter()
            .filter(|(from, _)| {
                path == from
                    || path.starts_with(&format!("{from}."))
                    || path.starts_with(&format!("{from}["))
            })
            .max_by_key(|(from, _)| from.len());
        match best {
            Some((from, to)) => format!("{to}{}", &path[from.len()..]),
            None => path.to_string(),
        }
    }
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Whole numbers typed in number fields; anything else becomes a field error.
fn number(form: &FormFields, name: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    let raw = form.get(name).trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError {
                field: name.into(),
                message: "must be a whole number".into(),
            });
            None
        }
    }
}

/// Builds the order input; errors found while reading numbers use form names.
pub fn read(form: &FormFields) -> (OrderInput, PathMap, Vec<FieldError>) {
    let mut map = PathMap::default();
    let mut errors = Vec::new();
    let g = |n: &str| form.get(n).to_string();

    let caregiver = CaregiverInput {
        name: g("patient.caregiver.name"),
        relationship: g("patient.caregiver.relationship"),
        phone: g("patient.caregiver.phone"),
    };
    let has_caregiver = [&caregiver.name, &caregiver.relationship, &caregiver.phone]
        .iter()
        .any(|s| !s.trim().is_empty());

    let mut insurance = Vec::new();
    for i in 0..INSURANCE_ROWS {
        let p = format!("insurance[{i}]");
        let plan = InsuranceInput {
            rank: g(&format!("{p}.rank")),
            plan_type: g(&format!("{p}.plan_type")),
            payer: g(&format!("{p}.payer")),
            member_id: g(&format!("{p}.member_id")),
        };
        let filled = [&plan.plan_type, &plan.payer, &plan.member_id]
            .iter()
            .any(|s| !s.trim().is_empty());
        if i == 0 || filled {
            map.add(format!("insurance[{}]", insurance.len()), p);
            insurance.push(plan);
        }
    }

    // Exactly one primary row must be chosen; anything else leaves none marked, so
    // validation reports it on `diagnoses`.
    let primaries = form.all("diagnoses_primary");
    let primary_row = match primaries.as_slice() {
        [one] => one.parse::<usize>().ok(),
        _ => None,
    };
    let mut diagnoses = Vec::new();
    for i in 0..DIAGNOSIS_ROWS {
        let p = format!("diagnoses[{i}]");
        let d = DiagnosisInput {
            code: g(&format!("{p}.code")),
            description: g(&format!("{p}.description")),
            primary: primary_row == Some(i),
        };
        if !d.code.trim().is_empty() || !d.description.trim().is_empty() {
            map.add(format!("diagnoses[{}]", diagnoses.len()), p);
            diagnoses.push(d);
        }
    }

    let mut services = Vec::new();
    let mut add_service = |kind: &str, s: ServiceInput, map: &mut PathMap| {
        map.add(
            format!("services[{}]", services.len()),
            format!("svc.{kind}"),
        );
        services.push(s);
    };
    if !form.get("svc.home_health").is_empty() {
        let s = ServiceInput {
            kind: "home_health".into(),
            disciplines: form.all("svc.home_health.disciplines"),
            frequency: g("svc.home_health.frequency"),
            notes: g("svc.home_health.notes"),
            ..ServiceInput::default()
        };
        add_service("home_health", s, &mut map);
    }
    if !form.get("svc.dme").is_empty() {
        let mut items = Vec::new();
        let index = services_len_hint(&map);
        for j in 0..DME_ROWS {
            let p = format!("svc.dme.items[{j}]");
            let hcpcs = g(&format!("{p}.hcpcs"));
            let description = g(&format!("{p}.description"));
            let qty_name = format!("{p}.quantity");
            let quantity = number(form, &qty_name, &mut errors);
            if hcpcs.trim().is_empty() && description.trim().is_empty() && quantity.is_none() {
                continue;
            }
            map.add(format!("services[{index}].items[{}]", items.len()), p);
            items.push(DmeItemInput {
                hcpcs,
                description,
                quantity: quantity.unwrap_or(0),
            });
        }
        let s = ServiceInput {
            kind: "dme".into(),
            items,
            notes: g("svc.dme.notes"),
            ..ServiceInput::default()
        };
        add_service("dme", s, &mut map);
    }
    if !form.get("svc.caregiver").is_empty() {
        let s = ServiceInput {
            kind: "caregiver".into(),
            hours_per_week: number(form, "svc.caregiver.hours_per_week", &mut errors),
            tasks: form
                .get("svc.caregiver.tasks")
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            notes: g("svc.caregiver.notes"),
            ..ServiceInput::default()
        };
        add_service("caregiver", s, &mut map);
    }

    let input = OrderInput {
        fixture_id: None,
        referring_facility: opt(form.get("referring_facility")),
        priority: g("priority"),
        patient: PatientInput {
            first_name: g("patient.first_name"),
            last_name: g("patient.last_name"),
            dob: g("patient.dob"),
            sex: g("patient.sex"),
            mrn: g("patient.mrn"),
            phone: g("patient.phone"),
            address: AddressInput {
                line1: g("patient.address.line1"),
                line2: g("patient.address.line2"),
                city: g("patient.address.city"),
                state: g("patient.address.state"),
                zip: g("patient.address.zip"),
            },
            language: g("patient.language"),
            caregiver: has_caregiver.then_some(caregiver),
        },
        insurance,
        diagnoses,
        ordering_physician: PhysicianInput {
            name: g("ordering_physician.name"),
            npi: g("ordering_physician.npi"),
        },
        discharge_date: g("discharge_date"),
        face_to_face_date: opt(form.get("face_to_face_date")),
        services,
        notes: g("notes"),
    };
    (input, map, errors)
}

/// The index the next service line will get (home health may precede DME).
fn services_len_hint(map: &PathMap) -> usize {
    map.0
        .iter()
        .filter(|(from, _)| from.starts_with("services[") && !from.contains('.'))
        .count()
}

/// What the user typed, to show again after a refused submit (never passwords).
pub fn values(form: &FormFields) -> BTreeMap<String, String> {
    form.0
        .iter()
        .filter(|(k, _)| k != "csrf" && k != "svc.home_health.disciplines")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A readable label for an error summary.
pub fn label(field: &str) -> String {
    let cleaned = field
        .replace("svc.home_health", "Home health")
        .replace("svc.dme", "DME")
        .replace("svc.caregiver", "Caregiver")
        .replace("patient.address.", "Patient address ")
        .replace("patient.caregiver.", "Caregiver contact ")
        .replace("patient.", "Patient ")
        .replace("ordering_physician.", "Physician ")
        .replace("dob", "date of birth")
        .replace("npi", "NPI")
        .replace("mrn", "MRN")
        .replace("hcpcs", "HCPCS code")
        .replace("zip", "ZIP")
        .replace("member_id", "member ID")
        .replace('_', " ");
    let mut out = String::new();
    for part in cleaned.split('.') {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    // Rows are shown to people counting from 1.
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(start) = rest.find('[') {
        result.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(']') {
            Some(end) => {
                let n = after[..end].parse::<usize>().map(|n| n + 1).unwrap_or(0);
                result.push_str(&format!(" {n}"));
                rest = &after[end + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    result.push_str(rest);
    let mut c = result.trim().chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormFields {
        FormFields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn validation_paths_map_back_to_the_rows_the_user_filled() {
        let f = form(&[
            ("svc.dme", "on"),
            ("svc.dme.items[2].hcpcs", "E026"),
            ("svc.dme.items[2].quantity", "1"),
            ("svc.caregiver", "on"),
            ("diagnoses[1].code", "I10"),
            ("diagnoses_primary", "1"),
        ]);
        let (input, map, errors) = read(&f);
        assert!(errors.is_empty());
        assert_eq!(input.services.len(), 2);
        assert_eq!(
            map.to_form("services[0].items[0].hcpcs"),
            "svc.dme.items[2].hcpcs"
        );
        assert_eq!(
            map.to_form("services[1].hours_per_week"),
            "svc.caregiver.hours_per_week"
        );
        assert_eq!(map.to_form("diagnoses[0].code"), "diagnoses[1].code");
        assert!(input.diagnoses[0].primary);
        assert_eq!(map.to_form("patient.dob"), "patient.dob");
    }

    #[test]
    fn non_numbers_are_reported_on_their_field() {
        let f = form(&[
            ("svc.caregiver", "on"),
            ("svc.caregiver.hours_per_week", "twelve"),
        ]);
        let (_, _, errors) = read(&f);
        assert_eq!(errors[0].field, "svc.caregiver.hours_per_week");
    }

    #[test]
    fn labels_count_rows_from_one() {
        assert_eq!(label("svc.dme.items[0].hcpcs"), "DME items 1 HCPCS code");
        assert_eq!(label("patient.dob"), "Patient date of birth");
    }
}
