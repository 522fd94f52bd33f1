//! Discharge order shapes: the loose input a form or API client sends, and the
//! normalized, validated data the store keeps.
//!
//! Input types accept anything JSON-shaped (strings, optional fields) so that every
//! problem can be reported by `validate` with the path of its field, instead of a
//! deserializer's generic complaint. `OrderData` is only built by `validate`.

use serde::{Deserialize, Serialize};

/// An order as submitted (API body or web form), before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderInput {
    /// A caller's label; never interpreted.
    pub fixture_id: Option<String>,
    /// Organization id of the referring facility.
    pub referring_facility: Option<String>,
    pub priority: String,
    pub patient: PatientInput,
    pub insurance: Vec<InsuranceInput>,
    pub diagnoses: Vec<DiagnosisInput>,
    pub ordering_physician: PhysicianInput,
    pub discharge_date: String,
    pub face_to_face_date: Option<String>,
    pub services: Vec<ServiceInput>,
    pub notes: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PatientInput {
    pub first_name: String,
    pub last_name: String,
    pub dob: String,
    pub sex: String,
    pub mrn: String,
    pub phone: String,
    pub address: AddressInput,
    pub language: String,
    pub caregiver: Option<CaregiverInput>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressInput {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CaregiverInput {
    pub name: String,
    pub relationship: String,
    pub phone: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InsuranceInput {
    pub rank: String,
    pub plan_type: String,
    pub payer: String,
    pub member_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiagnosisInput {
    pub code: String,
    pub description: String,
    pub primary: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicianInput {
    pub name: String,
    pub npi: String,
}

/// One requested service line; `kind` selects which of the other fields apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceInput {
    pub kind: String,
    // home_health
    pub disciplines: Vec<String>,
    pub frequency: String,
    // dme
    pub items: Vec<DmeItemInput>,
    // caregiver
    pub hours_per_week: Option<i64>,
    pub tasks: Vec<String>,
    pub notes: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DmeItemInput {
    pub hcpcs: String,
    pub description: String,
    pub quantity: i64,
}

// ---------------------------------------------------------------------------
// Validated data: what the store keeps and the API returns.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Routine,
    Urgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanRank {
    Primary,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanType {
    Medicare,
    MedicareAdvantage,
    Medicaid,
    Commercial,
    Va,
    SelfPay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discipline {
    SN,
    PT,
    OT,
    ST,
    MSW,
    HHA,
}

/// The validated order. Dates are ISO `YYYY-MM-DD` strings already checked to be real
/// dates; codes are normalized (ICD-10 upper case with dot, MBI without dashes,
/// HCPCS upper case, phones as `(NNN) NNN-NNNN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderData {
    pub priority: Priority,
    pub patient: Patient,
    pub insurance: Vec<Insurance>,
    pub diagnoses: Vec<Diagnosis>,
    pub ordering_physician: Physician,
    pub discharge_date: String,
    pub face_to_face_date: Option<String>,
    pub services: Vec<ServiceLine>,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub first_name: String,
    pub last_name: String,
    pub dob: String,
    pub sex: String,
    pub mrn: String,
    pub phone: String,
    pub address: Address,
    pub language: String,
    pub caregiver: Option<Caregiver>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Caregiver {
    pub name: String,
    pub relationship: String,
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insurance {
    pub rank: PlanRank,
    pub plan_type: PlanType,
    pub payer: String,
    pub member_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: String,
    pub description: String,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Physician {
    pub name: String,
    pub npi: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceLine {
    HomeHealth {
        disciplines: Vec<Discipline>,
        frequency: String,
        notes: String,
    },
    Dme {
        items: Vec<DmeItem>,
        notes: String,
    },
    Caregiver {
        hours_per_week: u32,
        tasks: Vec<String>,
        notes: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmeItem {
    pub hcpcs: String,
    pub description: String,
    pub quantity: u32,
}

/// One problem with an input, named by the path of its field
/// (`services[1].items[0].hcpcs`, `patient.dob`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A non-blocking remark (for example a missing face-to-face date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldWarning {
    pub field: String,
    pub message: String,
}
