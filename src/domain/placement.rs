//! Placement vocabulary and rules: the provider directory, service fit, coverage
//! checks, and the life of an offer.
//!
//! Guarantees: `fit` is the one definition of which providers fit a service line
//! (kind, service ZIP, accepted plan type, every requested discipline or HCPCS item,
//! accepting new referrals), and says why for every provider that does not; `respond`
//! and friends are the one definition of which offer states allow which answers. Pure:
//! no clock, no I/O.

use serde::{Deserialize, Serialize};

use super::OrgKind;
use super::order::{Discipline, PlanType, ServiceLine};
use super::workflow::Refusal;

/// What a provider organization offers, kept by agency admins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderProfile {
    pub service_zips: Vec<String>,
    pub payers_accepted: Vec<PlanType>,
    pub disciplines: Vec<Discipline>,
    pub hcpcs: Vec<String>,
    /// Whether the provider takes new referrals (defaults to yes).
    pub paused: bool,
}

pub fn line_kind(line: &ServiceLine) -> OrgKind {
    match line {
        ServiceLine::HomeHealth { .. } => OrgKind::HomeHealth,
        ServiceLine::Dme { .. } => OrgKind::Dme,
        ServiceLine::Caregiver { .. } => OrgKind::Caregiver,
    }
}

pub fn line_label(line: &ServiceLine) -> &'static str {
    match line {
        ServiceLine::HomeHealth { .. } => "Home health",
        ServiceLine::Dme { .. } => "DME",
        ServiceLine::Caregiver { .. } => "Caregiver",
    }
}

/// Why a provider does not fit a line; empty when it fits.
pub fn fit(
    line: &ServiceLine,
    patient_zip: &str,
    primary_plan: PlanType,
    kind: OrgKind,
    disabled: bool,
    profile: &ProviderProfile,
) -> Vec<String> {
    let mut why = Vec::new();
    if kind != line_kind(line) {
        why.push(format!(
            "is not a {} provider",
            line_label(line).to_lowercase()
        ));
        return why;
    }
    if disabled {
        why.push("is disabled".into());
    }
    if profile.paused {
        why.push("is not accepting new referrals".into());
    }
    let zip5: String = patient_zip.chars().take(5).collect();
    if !profile.service_zips.iter().any(|z| z.trim() == zip5) {
        why.push(format!("does not serve ZIP {zip5}"));
    }
    if !profile.payers_accepted.contains(&primary_plan) {
        why.push(format!("does not accept {}", plan_label(primary_plan)));
    }
    match line {
        ServiceLine::HomeHealth { disciplines, .. } => {
            let missing: Vec<String> = disciplines
                .iter()
                .filter(|d| !profile.disciplines.contains(d))
                .map(|d| format!("{d:?}"))
                .collect();
            if !missing.is_empty() {
                why.push(format!("does not offer {}", missing.join(", ")));
            }
        }
        ServiceLine::Dme { items, .. } => {
            let missing: Vec<&str> = items
                .iter()
                .filter(|i| {
                    !profile
                        .hcpcs
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(&i.hcpcs))
                })
                .map(|i| i.hcpcs.as_str())
                .collect();
            if !missing.is_empty() {
                why.push(format!("does not supply {}", missing.join(", ")));
            }
        }
        ServiceLine::Caregiver { .. } => {}
    }
    why
}

pub fn plan_label(p: PlanType) -> &'static str {
    match p {
        PlanType::Medicare => "Medicare",
        PlanType::MedicareAdvantage => "Medicare Advantage",
        PlanType::Medicaid => "Medicaid",
        PlanType::Commercial => "commercial plans",
        PlanType::Va => "VA",
        PlanType::SelfPay => "self-pay",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageResult {
    Eligible,
    NotEligible,
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageMethod {
    Portal,
    Phone,
    Electronic270271,
}

impl CoverageResult {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "eligible" => Some(Self::Eligible),
            "not_eligible" => Some(Self::NotEligible),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

impl CoverageMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "portal" => Some(Self::Portal),
            "phone" => Some(Self::Phone),
            "electronic_270_271" | "electronic270271" => Some(Self::Electronic270271),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    OutOfServiceArea,
    PayerNotAccepted,
    NoCapacity,
    ClinicalNeedsExceedCapability,
    NotHomebound,
    NoSkilledNeed,
    PatientDeclined,
    SafetyConcern,
    Other,
}

impl DeclineReason {
    pub const ALL: [DeclineReason; 9] = [
        DeclineReason::OutOfServiceArea,
        DeclineReason::PayerNotAccepted,
        DeclineReason::NoCapacity,
        DeclineReason::ClinicalNeedsExceedCapability,
        DeclineReason::NotHomebound,
        DeclineReason::NoSkilledNeed,
        DeclineReason::PatientDeclined,
        DeclineReason::SafetyConcern,
        DeclineReason::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeclineReason::OutOfServiceArea => "out_of_service_area",
            DeclineReason::PayerNotAccepted => "payer_not_accepted",
            DeclineReason::NoCapacity => "no_capacity",
            DeclineReason::ClinicalNeedsExceedCapability => "clinical_needs_exceed_capability",
            DeclineReason::NotHomebound => "not_homebound",
            DeclineReason::NoSkilledNeed => "no_skilled_need",
            DeclineReason::PatientDeclined => "patient_declined",
            DeclineReason::SafetyConcern => "safety_concern",
            DeclineReason::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeclineReason::OutOfServiceArea => "Out of service area",
            DeclineReason::PayerNotAccepted => "Payer not accepted",
            DeclineReason::NoCapacity => "No capacity or staffing",
            DeclineReason::ClinicalNeedsExceedCapability => "Clinical needs exceed capability",
            DeclineReason::NotHomebound => "Patient not homebound",
            DeclineReason::NoSkilledNeed => "No skilled need",
            DeclineReason::PatientDeclined => "Patient or family declined",
            DeclineReason::SafetyConcern => "Safety concern",
            DeclineReason::Other => "Other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Waiting for the provider's answer.
    Open,
    /// The provider asked a question; waiting for the agency.
    NeedInfo,
    Accepted,
    Declined,
    Withdrawn,
    Awarded,
    /// Another provider was awarded the line.
    Closed,
}

impl OfferStatus {
    pub fn label(self) -> &'static str {
        match self {
            OfferStatus::Open => "Awaiting answer",
            OfferStatus::NeedInfo => "Provider asked a question",
            OfferStatus::Accepted => "Accepted",
            OfferStatus::Declined => "Declined",
            OfferStatus::Withdrawn => "Withdrawn",
            OfferStatus::Awarded => "Awarded",
            OfferStatus::Closed => "Closed",
        }
    }

    /// Whether the provider still has access to the order through this offer.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            OfferStatus::Open
                | OfferStatus::NeedInfo
                | OfferStatus::Accepted
                | OfferStatus::Awarded
        )
    }
}

/// A provider's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Accept,
    NeedInfo {
        question: String,
    },
    Decline {
        reason: Option<DeclineReason>,
        text: String,
    },
}

/// The offer state after a provider's answer.
pub fn respond(from: OfferStatus, response: &Response) -> Result<OfferStatus, Refusal> {
    if !matches!(
        from,
        OfferStatus::Open | OfferStatus::NeedInfo | OfferStatus::Accepted
    ) {
        return Err(Refusal::WrongState("closed"));
    }
    match response {
        Response::Accept => Ok(OfferStatus::Accepted),
        Response::NeedInfo { question } if question.trim().is_empty() => {
            Err(Refusal::Missing("question"))
        }
        Response::NeedInfo { .. } => Ok(OfferStatus::NeedInfo),
        Response::Decline { reason: None, .. } => Err(Refusal::Missing("reason")),
        Response::Decline {
            reason: Some(DeclineReason::Other),
            text,
        } if text.trim().is_empty() => Err(Refusal::Missing("reason_text")),
        Response::Decline { .. } => Ok(OfferStatus::Declined),
    }
}

/// Staff answer a provider's question: the offer is open again.
pub fn reply(from: OfferStatus, text: &str) -> Result<OfferStatus, Refusal> {
    if from != OfferStatus::NeedInfo {
        return Err(Refusal::WrongState("not waiting for the agency"));
    }
    if text.trim().is_empty() {
        return Err(Refusal::Missing("answer"));
    }
    Ok(OfferStatus::Open)
}

/// Staff withdraw an offer that is still live and not awarded.
pub fn withdraw(from: OfferStatus) -> Result<OfferStatus, Refusal> {
    match from {
        OfferStatus::Open | OfferStatus::NeedInfo | OfferStatus::Accepted => {
            Ok(OfferStatus::Withdrawn)
        }
        _ => Err(Refusal::WrongState("no longer open")),
    }
}

/// Only an accepted offer can be awarded.
pub fn award(from: OfferStatus) -> Result<OfferStatus, Refusal> {
    if from == OfferStatus::Accepted {
        Ok(OfferStatus::Awarded)
    } else {
        Err(Refusal::WrongState("not accepted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::DmeItem;

    fn dme(codes: &[&str]) -> ServiceLine {
        ServiceLine::Dme {
            items: codes
                .iter()
                .map(|c| DmeItem {
                    hcpcs: c.to_string(),
                    description: "x".into(),
                    quantity: 1,
                })
                .collect(),
            notes: String::new(),
        }
    }

    fn supplier() -> ProviderProfile {
        ProviderProfile {
            service_zips: vec!["33755".into(), "33770".into()],
            payers_accepted: vec![PlanType::Medicare],
            hcpcs: vec!["E0260".into(), "K0001".into()],
            ..ProviderProfile::default()
        }
    }

    #[test]
    fn a_fitting_provider_has_no_reasons_and_others_say_why() {
        let p = supplier();
        assert!(
            fit(
                &dme(&["E0260"]),
                "33755-1234",
                PlanType::Medicare,
                OrgKind::Dme,
                false,
                &p
            )
            .is_empty()
        );
        let why = fit(
            &dme(&["E0260", "E0431"]),
            "34689",
            PlanType::Medicaid,
            OrgKind::Dme,
            false,
            &p,
        );
        assert_eq!(
            why,
            vec![
                "does not serve ZIP 34689",
                "does not accept Medicaid",
                "does not supply E0431"
            ]
        );
        let why = fit(
            &dme(&["E0260"]),
            "33755",
            PlanType::Medicare,
            OrgKind::HomeHealth,
            false,
            &p,
        );
        assert_eq!(why, vec!["is not a dme provider"]);
        let paused = ProviderProfile { paused: true, ..p };
        assert_eq!(
            fit(
                &dme(&["E0260"]),
                "33755",
                PlanType::Medicare,
                OrgKind::Dme,
                true,
                &paused
            ),
            vec!["is disabled", "is not accepting new referrals"]
        );
    }

    #[test]
    fn offers_follow_their_life() {
        use OfferStatus::*;
        assert_eq!(respond(Open, &Response::Accept), Ok(Accepted));
        assert_eq!(
            respond(
                Open,
                &Response::NeedInfo {
                    question: "".into()
                }
            ),
            Err(Refusal::Missing("question"))
        );
        assert_eq!(
            respond(
                Open,
                &Response::Decline {
                    reason: None,
                    text: "".into()
                }
            ),
            Err(Refusal::Missing("reason"))
        );
        assert_eq!(
            respond(
                Open,
                &Response::Decline {
                    reason: Some(DeclineReason::Other),
                    text: " ".into()
                }
            ),
            Err(Refusal::Missing("reason_text"))
        );
        assert_eq!(
            respond(
                NeedInfo,
                &Response::Decline {
                    reason: Some(DeclineReason::NoCapacity),
                    text: "".into()
                }
            ),
            Ok(Declined)
        );
        for closed in [Declined, Withdrawn, Awarded, Closed] {
            assert!(respond(closed, &Response::Accept).is_err());
            assert!(withdraw(closed).is_err());
        }
        assert_eq!(reply(NeedInfo, "Yes, ramp present"), Ok(Open));
        assert!(reply(Open, "x").is_err());
        assert_eq!(award(Accepted), Ok(Awarded));
        assert!(award(Open).is_err());
        assert!(
            Awarded.is_live() && !Declined.is_live() && !Withdrawn.is_live() && !Closed.is_live()
        );
    }
}
