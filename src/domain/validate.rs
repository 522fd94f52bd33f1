//! Validation of discharge orders: the only way from a loose [`OrderInput`] to an
//! [`OrderData`].
//!
//! Guarantees: every problem in an order is reported at once, each as a [`FieldError`]
//! whose `field` is the JSON path of the offending value (`services[1].items[0].hcpcs`)
//! or of the list a whole-list rule is about (`insurance`). Messages are fixed
//! (`&'static str`) texts, so they can never echo a submitted value (values are
//! protected health information). An `Ok` order has every text trimmed and within its
//! limits, every code normalized, and its primary insurance plan first. Nothing here
//! panics, reads a clock or does I/O: the current date is passed in.

mod rules;

pub use rules::{
    check_text, is_deceptive, is_invisible, normalize_hcpcs, normalize_icd10, normalize_mbi,
    normalize_phone, normalize_zip, parse_date, valid_npi, valid_state,
};

use super::order::{
    Address, AddressInput, Caregiver, CaregiverInput, Diagnosis, DiagnosisInput, Discipline,
    DmeItem, FieldError, FieldWarning, Insurance, InsuranceInput, OrderData, OrderInput, Patient,
    PatientInput, Physician, PhysicianInput, PlanRank, PlanType, Priority, ServiceInput,
    ServiceLine,
};
use rules::{NOTES_MAX, SHORT_TEXT_MAX};
use time::Date;

const REQUIRED: &str = "is required";
const MAX_DIAGNOSES: usize = 25;
/// The most DME items or caregiver tasks on one line, and insurance plans on one order.
const MAX_LIST: usize = 25;
/// Oldest accepted birth date, in years before today.
const MAX_AGE_YEARS: i32 = 130;
/// Medicare home health: the face-to-face encounter falls within this many days
/// around the start of care (before, after).
const FACE_TO_FACE_WINDOW: std::ops::RangeInclusive<i64> = -90..=30;

const PRIORITIES: &[(&str, Priority)] =
    &[("routine", Priority::Routine), ("urgent", Priority::Urgent)];
const RANKS: &[(&str, PlanRank)] = &[
    ("primary", PlanRank::Primary),
    ("secondary", PlanRank::Secondary),
];
const PLAN_TYPES: &[(&str, PlanType)] = &[
    ("medicare", PlanType::Medicare),
    ("medicare_advantage", PlanType::MedicareAdvantage),
    ("medicaid", PlanType::Medicaid),
    ("commercial", PlanType::Commercial),
    ("va", PlanType::Va),
    ("self_pay", PlanType::SelfPay),
];
const SEXES: &[(&str, &str)] = &[("F", "F"), ("M", "M"), ("X", "X"), ("U", "U")];
const DISCIPLINES: &[(&str, Discipline)] = &[
    ("SN", Discipline::SN),
    ("PT", Discipline::PT),
    ("OT", Discipline::OT),
    ("ST", Discipline::ST),
    ("MSW", Discipline::MSW),
    ("HHA", Discipline::HHA),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HomeHealth,
    Dme,
    Caregiver,
}
const KINDS: &[(&str, Kind)] = &[
    ("home_health", Kind::HomeHealth),
    ("dme", Kind::Dme),
    ("caregiver", Kind::Caregiver),
];

/// The entry of `table` named by `value` (trimmed, exact case).
fn lookup<T: Copy>(table: &[(&str, T)], value: &str) -> Option<T> {
    let value = value.trim();
    table
        .iter()
        .find(|(name, _)| *name == value)
        .map(|&(_, t)| t)
}

/// Validates and normalizes an order. `today` is the current UTC date (injected for tests).
///
/// # Errors
/// Every problem found, each naming the JSON path of its field.
pub fn validate(
    input: &OrderInput,
    today: Date,
) -> Result<(OrderData, Vec<FieldWarning>), Vec<FieldError>> {
    let mut c = Checker::default();
    let priority = c.choice(
        "priority",
        &input.priority,
        PRIORITIES,
        "must be routine or urgent",
    );
    let (patient, dob) = c.patient(&input.patient, today);
    let insurance = c.insurance(&input.insurance);
    let diagnoses = c.diagnoses(&input.diagnoses);
    let ordering_physician = c.physician(&input.ordering_physician);
    // Cross-field rules only compare with values that are valid themselves, so that one
    // mistake is reported once, on the field that holds it.
    let discharge = c.discharge_date(&input.discharge_date, dob);
    let face_to_face_date = c.face_to_face(input, discharge);
    let services = c.services(&input.services);
    let notes = c.text("notes", &input.notes, Text::Notes);

    let order = (|| {
        Some(OrderData {
            priority: priority?,
            patient: patient?,
            insurance: insurance?,
            diagnoses: diagnoses?,
            ordering_physician: ordering_physician?,
            discharge_date: discharge.map(|_| input.discharge_date.trim().to_owned())?,
            face_to_face_date: face_to_face_date?,
            services: services?,
            notes: notes?,
        })
    })();
    match order {
        Some(order) if c.errors.is_empty() => Ok((order, c.warnings)),
        _ => Err(c.errors),
    }
}

/// How a text field is checked.
#[derive(Clone, Copy)]
enum Text {
    Required,
    Optional,
    Notes,
}

/// Collects errors and warnings. Every method that returns `None` has recorded at least
/// one error, so a `Some` from every part means a valid order.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    warnings: Vec<FieldWarning>,
}

impl Checker {
    /// Records an error and returns `None`. Messages are `'static` so that they cannot
    /// carry a submitted value.
    fn refuse<T>(&mut self, field: impl Into<String>, message: &'static str) -> Option<T> {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.to_owned(),
        });
        None
    }

    /// Checks every item, so that all their errors are recorded, and keeps the results
    /// when all passed.
    fn each<T, U>(
        &mut self,
        items: &[T],
        mut check: impl FnMut(&mut Self, usize, &T) -> Option<U>,
    ) -> Option<Vec<U>> {
        let checked: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| check(self, i, item))
            .collect();
        checked.into_iter().collect()
    }

    /// `Some(())` when `ok`, otherwise records the error.
    fn require(&mut self, ok: bool, field: &str, message: &'static str) -> Option<()> {
        if ok {
            Some(())
        } else {
            self.refuse(field, message)
        }
    }

    fn text(&mut self, field: &str, value: &str, kind: Text) -> Option<String> {
        let (max, multiline) = match kind {
            Text::Required | Text::Optional => (SHORT_TEXT_MAX, false),
            Text::Notes => (NOTES_MAX, true),
        };
        match check_text(value, max, multiline) {
            Ok(text) if text.is_empty() && matches!(kind, Text::Required) => {
                self.refuse(field, REQUIRED)
            }
            Ok(text) => Some(text),
            Err(message) => self.refuse(field, message),
        }
    }

    /// A required value that `normalize` accepts.
    fn code(
        &mut self,
        field: &str,
        value: &str,
        normalize: impl Fn(&str) -> Option<String>,
        message: &'static str,
    ) -> Option<String> {
        if value.trim().is_empty() {
            return self.refuse(field, REQUIRED);
        }
        normalize(value.trim()).or_else(|| self.refuse(field, message))
    }

    /// A required value from a fixed list.
    fn choice<T: Copy>(
        &mut self,
        field: &str,
        value: &str,
        table: &[(&str, T)],
        message: &'static str,
    ) -> Option<T> {
        if value.trim().is_empty() {
            return self.refuse(field, REQUIRED);
        }
        lookup(table, value).or_else(|| self.refuse(field, message))
    }

    /// A required `YYYY-MM-DD` date.
    fn date(&mut self, field: &str, value: &str) -> Option<Date> {
        if value.trim().is_empty() {
            return self.refuse(field, REQUIRED);
        }
        parse_date(value).or_else(|| self.refuse(field, "must be a date (YYYY-MM-DD)"))
    }

    /// A required whole number in `min..=max`.
    fn count(
        &mut self,
        field: &str,
        value: Option<i64>,
        min: i64,
        max: i64,
        messages: [&'static str; 2],
    ) -> Option<u32> {
        let [too_small, too_large] = messages;
        match value {
            None => self.refuse(field, REQUIRED),
            Some(n) if n < min => self.refuse(field, too_small),
            Some(n) if n > max => self.refuse(field, too_large),
            Some(n) => u32::try_from(n)
                .ok()
                .or_else(|| self.refuse(field, too_large)),
        }
    }

    fn phone(&mut self, field: &str, value: &str) -> Option<String> {
        self.code(
            field,
            value,
            normalize_phone,
            "must be a 10-digit US phone number",
        )
    }

    /// The patient, and the birth date when it is valid.
    fn patient(&mut self, p: &PatientInput, today: Date) -> (Option<Patient>, Option<Date>) {
        let first_name = self.text("patient.first_name", &p.first_name, Text::Required);
        let last_name = self.text("patient.last_name", &p.last_name, Text::Required);
        let dob = self.birth_date(&p.dob, today);
        let sex = self.choice(
            "patient.sex",
            &p.sex.to_ascii_uppercase(),
            SEXES,
            "must be F, M, X or U",
        );
        let mrn = self.text("patient.mrn", &p.mrn, Text::Required);
        let phone = self.phone("patient.phone", &p.phone);
        let address = self.address(&p.address);
        let language = self.text("patient.language", &p.language, Text::Optional);
        let caregiver = p.caregiver.as_ref().map(|cg| self.caregiver(cg));
        let patient = (|| {
            Some(Patient {
                first_name: first_name?,
                last_name: last_name?,
                dob: dob.map(|_| p.dob.trim().to_owned())?,
                sex: sex?.to_owned(),
                mrn: mrn?,
                phone: phone?,
                address: address?,
                language: language?,
                caregiver: caregiver.map_or(Some(None), |cg| cg.map(Some))?,
            })
        })();
        (patient, dob)
    }

    fn birth_date(&mut self, value: &str, today: Date) -> Option<Date> {
        const FIELD: &str = "patient.dob";
        let dob = self.date(FIELD, value)?;
        // Compared as (year, month, day) so that a 29 February needs no special case.
        let oldest = (
            today.year() - MAX_AGE_YEARS,
            u8::from(today.month()),
            today.day(),
        );
        if dob > today {
            self.refuse(FIELD, "must not be in the future")
        } else if (dob.year(), u8::from(dob.month()), dob.day()) < oldest {
            self.refuse(FIELD, "must be within the last 130 years")
        } else {
            Some(dob)
        }
    }

    /// The discharge date (the start of care), when valid and not before `dob`.
    fn discharge_date(&mut self, value: &str, dob: Option<Date>) -> Option<Date> {
        const FIELD: &str = "discharge_date";
        let date = self.date(FIELD, value)?;
        match dob {
            Some(dob) if date < dob => self.refuse(FIELD, "must not be before the birth date"),
            _ => Some(date),
        }
    }

    fn address(&mut self, a: &AddressInput) -> Option<Address> {
        let line1 = self.text("patient.address.line1", &a.line1, Text::Required);
        let line2 = self.text("patient.address.line2", &a.line2, Text::Optional);
        let city = self.text("patient.address.city", &a.city, Text::Required);
        let state = self.code(
            "patient.address.state",
            &a.state,
            |s| valid_state(s).then(|| s.to_ascii_uppercase()),
            "must be a two-letter US state code",
        );
        let zip = self.code(
            "patient.address.zip",
            &a.zip,
            normalize_zip,
            "must be 5 digits or ZIP+4",
        );
        Some(Address {
            line1: line1?,
            line2: line2?,
            city: city?,
            state: state?,
            zip: zip?,
        })
    }

    fn caregiver(&mut self, cg: &CaregiverInput) -> Option<Caregiver> {
        let name = self.text("patient.caregiver.name", &cg.name, Text::Required);
        let relationship = self.text(
            "patient.caregiver.relationship",
            &cg.relationship,
            Text::Optional,
        );
        let phone = self.phone("patient.caregiver.phone", &cg.phone);
        Some(Caregiver {
            name: name?,
            relationship: relationship?,
            phone: phone?,
        })
    }

    /// Plans in input order except that the primary comes first.
    fn insurance(&mut self, plans: &[InsuranceInput]) -> Option<Vec<Insurance>> {
        const FIELD: &str = "insurance";
        let checked = self.each(plans, Self::plan);
        let primaries = plans
            .iter()
            .filter(|p| lookup(RANKS, &p.rank) == Some(PlanRank::Primary))
            .count();
        let list_ok = if plans.is_empty() {
            self.refuse(FIELD, "must list at least one plan")
        } else {
            self.require(primaries == 1, FIELD, "must have exactly one primary plan")
        };
        let mut plans = checked?;
        list_ok?;
        plans.sort_by_key(|p| p.rank != PlanRank::Primary);
        Some(plans)
    }

    fn plan(&mut self, i: usize, p: &InsuranceInput) -> Option<Insurance> {
        let rank = self.choice(
            &format!("insurance[{i}].rank"),
            &p.rank,
            RANKS,
            "must be primary or secondary",
        );
        let plan_type = self.choice(
            &format!("insurance[{i}].plan_type"),
            &p.plan_type,
            PLAN_TYPES,
            "must be medicare, medicare_advantage, medicaid, commercial, va or self_pay",
        );
        let payer = self.text(&format!("insurance[{i}].payer"), &p.payer, Text::Required);
        let member_field = format!("insurance[{i}].member_id");
        let member_id = match plan_type {
            Some(PlanType::Medicare) => self.code(
                &member_field,
                &p.member_id,
                normalize_mbi,
                "must be a Medicare Beneficiary Identifier (11 characters, no S, L, O, I, B or Z)",
            ),
            _ => self.text(&member_field, &p.member_id, Text::Required),
        };
        Some(Insurance {
            rank: rank?,
            plan_type: plan_type?,
            payer: payer?,
            member_id: member_id?,
        })
    }

    fn diagnoses(&mut self, list: &[DiagnosisInput]) -> Option<Vec<Diagnosis>> {
        const FIELD: &str = "diagnoses";
        let checked = self.each(list, Self::diagnosis);
        if list.is_empty() {
            return self.refuse(FIELD, "must list at least one diagnosis");
        }
        let size_ok = self.require(
            list.len() <= MAX_DIAGNOSES,
            FIELD,
            "must list at most 25 diagnoses",
        );
        let primaries = list.iter().filter(|d| d.primary).count();
        let primary_ok = self.require(
            primaries == 1,
            FIELD,
            "must have exactly one primary diagnosis",
        );
        size_ok?;
        primary_ok?;
        checked
    }

    fn diagnosis(&mut self, i: usize, d: &DiagnosisInput) -> Option<Diagnosis> {
        let code = self.code(
            &format!("diagnoses[{i}].code"),
            &d.code,
            normalize_icd10,
            "must be an ICD-10-CM code, such as I50.9",
        );
        let description = self.text(
            &format!("diagnoses[{i}].description"),
            &d.description,
            Text::Required,
        );
        Some(Diagnosis {
            code: code?,
            description: description?,
            primary: d.primary,
        })
    }

    fn physician(&mut self, p: &PhysicianInput) -> Option<Physician> {
        let name = self.text("ordering_physician.name", &p.name, Text::Required);
        let npi = self.code(
            "ordering_physician.npi",
            &p.npi,
            |s| valid_npi(s).then(|| s.to_owned()),
            "must be 10 digits with a valid check digit",
        );
        Some(Physician {
            name: name?,
            npi: npi?,
        })
    }

    /// The face-to-face date (optional), checked against the start of care for
    /// Medicare home health. `start_of_care` is `None` when the discharge date is
    /// itself refused, and then the window is not checked. `Some(None)`: no date given.
    fn face_to_face(
        &mut self,
        input: &OrderInput,
        start_of_care: Option<Date>,
    ) -> Option<Option<String>> {
        const FIELD: &str = "face_to_face_date";
        let value = input
            .face_to_face_date
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let date = match value {
            Some(value) => Some(self.date(FIELD, value)?),
            None => None,
        };
        if needs_face_to_face(input) {
            match (date, start_of_care) {
                (None, _) => self.warnings.push(FieldWarning {
                    field: FIELD.to_owned(),
                    message: "is missing: Medicare home health needs a face-to-face encounter \
                              within 90 days before or 30 days after the start of care"
                        .to_owned(),
                }),
                (Some(date), Some(start))
                    if !FACE_TO_FACE_WINDOW.contains(&(date - start).whole_days()) =>
                {
                    return self.refuse(
                        FIELD,
                        "must be within 90 days before or 30 days after the discharge date",
                    );
                }
                _ => {}
            }
        }
        Some(value.map(str::to_owned))
    }

    fn services(&mut self, lines: &[ServiceInput]) -> Option<Vec<ServiceLine>> {
        let mut seen = Vec::new();
        let checked = self.each(lines, |c, i, line| {
            let at = format!("services[{i}]");
            let field = format!("{at}.kind");
            let kind = c.choice(
                &field,
                &line.kind,
                KINDS,
                "must be home_health, dme or caregiver",
            )?;
            if seen.contains(&kind) {
                // The whole line is refused; its contents are not worth reporting.
                return c.refuse(field, "must not repeat the kind of an earlier service line");
            }
            seen.push(kind);
            let notes = c.text(&format!("{at}.notes"), &line.notes, Text::Notes);
            match kind {
                Kind::HomeHealth => c.home_health(&at, line, notes),
                Kind::Dme => c.dme(&at, line, notes),
                Kind::Caregiver => c.caregiver_line(&at, line, notes),
            }
        });
        let present = self.require(
            !lines.is_empty(),
            "services",
            "must have at least one service line",
        );
        present?;
        checked
    }

    fn home_health(
        &mut self,
        at: &str,
        line: &ServiceInput,
        notes: Option<String>,
    ) -> Option<ServiceLine> {
        let present = self.require(
            !line.disciplines.is_empty(),
            &format!("{at}.disciplines"),
            "must list at least one discipline",
        );
        let mut disciplines = Vec::new();
        let mut all_valid = Some(());
        for (j, d) in line.disciplines.iter().enumerate() {
            let field = format!("{at}.disciplines[{j}]");
            match self.choice(
                &field,
                &d.to_ascii_uppercase(),
                DISCIPLINES,
                "must be SN, PT, OT, ST, MSW or HHA",
            ) {
                Some(d) if disciplines.contains(&d) => {
                    all_valid = self.refuse(field, "is listed more than once");
                }
                Some(d) => disciplines.push(d),
                None => all_valid = None,
            }
        }
        let frequency = self.text(&format!("{at}.frequency"), &line.frequency, Text::Optional);
        present?;
        all_valid?;
        Some(ServiceLine::HomeHealth {
            disciplines,
            frequency: frequency?,
            notes: notes?,
        })
    }

    fn dme(&mut self, at: &str, line: &ServiceInput, notes: Option<String>) -> Option<ServiceLine> {
        let present = self.require(
            !line.items.is_empty(),
            &format!("{at}.items"),
            "must list at least one item",
        );
        let bounded = self.require(
            line.items.len() <= MAX_LIST,
            &format!("{at}.items"),
            "must list at most 25 items",
        );
        let items = self.each(&line.items, |c, j, item| {
            let at = format!("{at}.items[{j}]");
            let hcpcs = c.code(
                &format!("{at}.hcpcs"),
                &item.hcpcs,
                normalize_hcpcs,
                "must be a HCPCS code: one letter and four digits",
            );
            let description = c.text(
                &format!("{at}.description"),
                &item.description,
                Text::Required,
            );
            let quantity = c.count(
                &format!("{at}.quantity"),
                Some(item.quantity),
                1,
                99,
                ["must be at least 1", "must be at most 99"],
            );
            Some(DmeItem {
                hcpcs: hcpcs?,
                description: description?,
                quantity: quantity?,
            })
        });
        present?;
        bounded?;
        Some(ServiceLine::Dme {
            items: items?,
            notes: notes?,
        })
    }

    fn caregiver_line(
        &mut self,
        at: &str,
        line: &ServiceInput,
        notes: Option<String>,
    ) -> Option<ServiceLine> {
        let hours_per_week = self.count(
            &format!("{at}.hours_per_week"),
            line.hours_per_week,
            1,
            168,
            ["must be at least 1", "must be at most 168"],
        );
        let present = self.require(
            !line.tasks.is_empty(),
            &format!("{at}.tasks"),
            "must list at least one task",
        );
        let bounded = self.require(
            line.tasks.len() <= MAX_LIST,
            &format!("{at}.tasks"),
            "must list at most 25 tasks",
        );
        let tasks = self.each(&line.tasks, |c, j, task| {
            c.text(&format!("{at}.tasks[{j}]"), task, Text::Required)
        });
        present?;
        bounded?;
        Some(ServiceLine::Caregiver {
            hours_per_week: hours_per_week?,
            tasks: tasks?,
            notes: notes?,
        })
    }
}

/// True when the primary plan is Medicare and a home health line is requested, the case
/// where Medicare requires a face-to-face encounter.
fn needs_face_to_face(input: &OrderInput) -> bool {
    let mut primaries = input
        .insurance
        .iter()
        .filter(|p| lookup(RANKS, &p.rank) == Some(PlanRank::Primary));
    let medicare_primary = match (primaries.next(), primaries.next()) {
        (Some(plan), None) => lookup(PLAN_TYPES, &plan.plan_type) == Some(PlanType::Medicare),
        _ => false,
    };
    medicare_primary
        && input
            .services
            .iter()
            .any(|s| lookup(KINDS, &s.kind) == Some(Kind::HomeHealth))
}

#[cfg(test)]
mod tests;
