//! Workflow steps shared by the pages and the API: parse a step's input, run it
//! through `WorkflowScope`, map its refusal to a field error.

use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use crate::domain::Caller;
use crate::domain::placement::{CoverageMethod, CoverageResult, DeclineReason, Response};
use crate::store::placement::{StepError, WorkflowScope};

impl From<StepError> for AppError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::NotFound => AppError::NotFound,
            StepError::Refused(field, message) => AppError::field(field, &message),
            StepError::Store(s) => s.into(),
        }
    }
}

/// A workflow step with its input, as a form or JSON body names it.
pub enum Action {
    Review,
    Ask {
        question: String,
    },
    Answer {
        text: String,
    },
    Coverage {
        plan: String,
        result: String,
        method: String,
        reference: String,
    },
    Override {
        reason: String,
    },
    Offer {
        line: usize,
        providers: Vec<String>,
    },
    Respond {
        offer: Uuid,
        answer: String,
        question: String,
        reason: String,
        text: String,
    },
    Reply {
        offer: Uuid,
        text: String,
    },
    Withdraw {
        offer: Uuid,
    },
    Award {
        offer: Uuid,
    },
    Start {
        line: usize,
        date: String,
    },
    Complete,
    Cancel {
        reason: String,
    },
}

/// A line index from a path: anything but a small whole number is named as `line`.
pub fn line_index(raw: &str) -> Result<usize, AppError> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| *n < 100)
        .ok_or_else(|| {
            AppError::field("line", "must be the number of a service line of this order")
        })
}

fn text(field: &str, value: &str) -> Result<String, AppError> {
    crate::domain::validate::check_text(value, 4000, true).map_err(|m| AppError::field(field, m))
}

impl Action {
    /// The audit action of this step.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Review => "order.review",
            Action::Ask { .. } => "order.ask",
            Action::Answer { .. } => "order.answer",
            Action::Coverage { .. } => "order.coverage",
            Action::Override { .. } => "order.coverage_override",
            Action::Offer { .. } => "offer.create",
            Action::Respond { .. } => "offer.respond",
            Action::Reply { .. } => "offer.reply",
            Action::Withdraw { .. } => "offer.withdraw",
            Action::Award { .. } => "offer.award",
            Action::Start { .. } => "order.start",
            Action::Complete => "order.complete",
            Action::Cancel { .. } => "order.cancel",
        }
    }
}

/// Runs `action` on order `id` as `caller`; a refused step (404 or 422) is audited.
pub fn run(state: &AppState, caller: &Caller, id: Uuid, action: Action) -> Result<(), AppError> {
    let name = action.name();
    let result = apply(state, caller, id, action);
    if let Err(AppError::NotFound | AppError::Invalid(_)) = &result {
        let event = crate::store::audit::Event::by(
            caller,
            name,
            Some(id.to_string()),
            crate::store::audit::Outcome::Refused,
        );
        crate::store::audit::record(&state.store, event)?;
    }
    result
}

fn apply(state: &AppState, caller: &Caller, id: Uuid, action: Action) -> Result<(), AppError> {
    let scope = WorkflowScope::new(&state.store, caller);
    match action {
        Action::Review => scope.review(id)?,
        Action::Ask { question } => scope.ask_facility(id, &text("question", &question)?)?,
        Action::Answer { text: t } => scope.answer_facility(id, &text("answer", &t)?)?,
        Action::Coverage {
            plan,
            result,
            method,
            reference,
        } => {
            let plan = plan
                .trim()
                .parse::<usize>()
                .map_err(|_| AppError::field("plan", "must be a plan number"))?;
            let result = CoverageResult::parse(result.trim()).ok_or_else(|| {
                AppError::field("result", "must be eligible, not_eligible or pending")
            })?;
            let method = CoverageMethod::parse(method.trim()).ok_or_else(|| {
                AppError::field("method", "must be portal, phone or electronic_270_271")
            })?;
            let reference = crate::domain::validate::check_text(&reference, 100, false)
                .map_err(|m| AppError::field("reference", m))?;
            scope.record_coverage(id, plan, result, method, &reference)?
        }
        Action::Override { reason } => scope.override_coverage(id, &text("reason", &reason)?)?,
        Action::Offer { line, providers } => {
            let ids: Vec<Uuid> = providers
                .iter()
                .map(|p| Uuid::parse_str(p.trim()))
                .collect::<Result<_, _>>()
                .map_err(|_| AppError::field("providers", "must be provider ids"))?;
            scope.offer(id, line, &ids)?
        }
        Action::Respond {
            offer,
            answer,
            question,
            reason,
            text: t,
        } => {
            let response =
                match answer.trim() {
                    "accepted" | "accept" => Response::Accept,
                    "need_info" => Response::NeedInfo {
                        question: text("question", &question)?,
                    },
                    "declined" | "decline" => Response::Decline {
                        reason: if reason.trim().is_empty() {
                            None
                        } else {
                            Some(DeclineReason::parse(reason.trim()).ok_or_else(|| {
                                AppError::field("reason", "is not a decline reason")
                            })?)
                        },
                        text: text("reason_text", &t)?,
                    },
                    _ => {
                        return Err(AppError::field(
                            "answer",
                            "must be accepted, need_info or declined",
                        ));
                    }
                };
            scope.respond(id, offer, response)?
        }
        Action::Reply { offer, text: t } => scope.reply(id, offer, &text("answer", &t)?)?,
        Action::Withdraw { offer } => scope.withdraw(id, offer)?,
        Action::Award { offer } => scope.award(id, offer)?,
        Action::Start { line, date } => scope.start(id, line, &date)?,
        Action::Complete => scope.complete(id)?,
        Action::Cancel { reason } => scope.cancel(id, &text("reason", &reason)?)?,
    }
    Ok(())
}
