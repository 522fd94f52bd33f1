//! The order state machine of the domain, written once as a pure function.
//!
//! Guarantees: `next` is the only place that decides whether an order-level step is
//! allowed: which state it may start from, which side may take it, what it needs
//! (a question, an answer, a reason, a date), and the state it leads to. Anything
//! else is a `Refusal` that says why. It reads no clock and does no I/O.

use serde::{Deserialize, Serialize};

use super::Status;

/// Which side of an order the actor is on (derived from the caller and the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Agency admin or intake staff.
    Agency,
    /// A user of the order's referring facility.
    Facility,
    /// A user of a provider with an open or awarded offer on the order.
    Provider,
}

impl Side {
    /// The side a user of `role` acts on, for an order they can see.
    pub fn of(role: super::Role) -> Side {
        match role {
            super::Role::Admin | super::Role::Staff => Side::Agency,
            super::Role::FacilityUser => Side::Facility,
            super::Role::ProviderUser => Side::Provider,
        }
    }
}

/// An order-level step. Line-level facts (whether every line is awarded) are
/// worked out by the caller and passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Staff take a submitted order into review.
    Review,
    /// Staff ask the facility for more information.
    AskFacility { question: String },
    /// The facility (or staff on its behalf) answers.
    Answer { text: String },
    /// Staff offer a line to providers (the first offer starts placement).
    Offer,
    /// Staff award a line; `all_awarded` says whether every line now has a provider.
    Award { all_awarded: bool },
    /// The awarded provider confirms start of care or delivery.
    Start { date: Option<String> },
    /// Staff close an order whose care has started.
    Complete,
    /// Staff or the facility cancel an order before it is completed.
    Cancel { reason: String },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Review => "review",
            Step::AskFacility { .. } => "ask_facility",
            Step::Answer { .. } => "answer",
            Step::Offer => "offer",
            Step::Award { .. } => "award",
            Step::Start { .. } => "start",
            Step::Complete => "complete",
            Step::Cancel { .. } => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this step is not possible while the order is {0}")]
    WrongState(&'static str),
    #[error("only {0} may take this step")]
    WrongSide(&'static str),
    #[error("{0} is required")]
    Missing(&'static str),
}

impl Refusal {
    /// The field a refusal is about, for forms and problem JSON.
    pub fn field(&self) -> &'static str {
        match self {
            Refusal::Missing(field) => field,
            _ => "status",
        }
    }
}

fn require(text: &str, what: &'static str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        Err(Refusal::Missing(what))
    } else {
        Ok(())
    }
}

fn side(actual: Side, allowed: &[Side], label: &'static str) -> Result<(), Refusal> {
    if allowed.contains(&actual) {
        Ok(())
    } else {
        Err(Refusal::WrongSide(label))
    }
}

/// The state an order moves to when `who` takes `step` in state `from`.
pub fn next(from: Status, who: Side, step: &Step) -> Result<Status, Refusal> {
    use Status::*;
    let wrong = || Refusal::WrongState(from.label_lower());
    match step {
        Step::Review => {
            side(who, &[Side::Agency], "agency staff")?;
            (from == Submitted).then_some(InReview).ok_or_else(wrong)
        }
        Step::AskFacility { question } => {
            side(who, &[Side::Agency], "agency staff")?;
            if from != InReview {
                return Err(wrong());
            }
            require(question, "question")?;
            Ok(NeedsInfo)
        }
        Step::Answer { text } => {
            side(
                who,
                &[Side::Agency, Side::Facility],
                "the facility or agency staff",
            )?;
            if from != NeedsInfo {
                return Err(wrong());
            }
            require(text, "answer")?;
            Ok(InReview)
        }
        Step::Offer => {
            side(who, &[Side::Agency], "agency staff")?;
            matches!(from, InReview | PendingPlacement)
                .then_some(PendingPlacement)
                .ok_or_else(wrong)
        }
        Step::Award { all_awarded } => {
            side(who, &[Side::Agency], "agency staff")?;
            if from != PendingPlacement {
                return Err(wrong());
            }
            Ok(if *all_awarded {
                Placed
            } else {
                PendingPlacement
            })
        }
        Step::Start { date } => {
            side(who, &[Side::Provider], "the awarded provider")?;
            if !matches!(from, Placed | InService) {
                return Err(wrong());
            }
            require(date.as_deref().unwrap_or(""), "date")?;
            Ok(InService)
        }
        Step::Complete => {
            side(who, &[Side::Agency], "agency staff")?;
            (from == InService).then_some(Completed).ok_or_else(wrong)
        }
        Step::Cancel { reason } => {
            side(
                who,
                &[Side::Agency, Side::Facility],
                "the facility or agency staff",
            )?;
            if matches!(from, Completed | Cancelled) {
                return Err(wrong());
            }
            require(reason, "reason")?;
            Ok(Cancelled)
        }
    }
}

impl Status {
    /// The label in a sentence ("in review").
    pub fn label_lower(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::InReview => "in review",
            Status::NeedsInfo => "waiting for information",
            Status::PendingPlacement => "pending placement",
            Status::Placed => "placed",
            Status::InService => "in service",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the order is still being worked.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Completed | Status::Cancelled)
    }
}

#[cfg(test)]
mod tests;
