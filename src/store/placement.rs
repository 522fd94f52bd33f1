//! The workflow state kept on each order (coverage, lines, offers, timeline) and
//! `WorkflowScope`, the only way to change it.
//!
//! Guarantees: every step loads the order inside one write transaction, answers
//! `NotFound` when the caller may not see the order (callers audit refusals), asks
//! the pure rules in `domain::workflow` and `domain::placement` whether the step is
//! allowed, stamps who and when on the timeline, keeps `provider_access` equal to
//! the providers with a live offer, and commits the change with its audit entry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::Org;
use super::audit::{self, Event, Outcome};
use super::orders::{OrderRecord, put_record, visible_to};
use super::stats;
use super::{ORDERS, ORGS, Store, StoreError, WriteTx, now_ms};
use crate::domain::placement::{
    self as rules, CoverageMethod, CoverageResult, DeclineReason, OfferStatus, Response,
};
use crate::domain::workflow::{self, Refusal, Side, Step};
use crate::domain::{Caller, Party, Role, Status};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workflow {
    /// The latest coverage check per insurance plan (by index in `data.insurance`).
    pub coverage: Vec<Option<Coverage>>,
    pub coverage_override: Option<String>,
    /// The open question to the facility, while the order needs information.
    pub question: Option<String>,
    /// One per service line, in the order of `data.services`.
    pub lines: Vec<Line>,
    pub cancel_reason: Option<String>,
    pub events: Vec<TimelineEvent>,
    pub placed_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub result: CoverageResult,
    pub method: CoverageMethod,
    pub reference: String,
    pub by: Uuid,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Line {
    pub offers: Vec<Offer>,
    pub awarded: Option<Uuid>,
    pub start_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: Uuid,
    pub provider: Uuid,
    pub status: OfferStatus,
    pub offered_ms: i64,
    pub answered_ms: Option<i64>,
    pub decline_reason: Option<DeclineReason>,
    pub decline_text: Option<String>,
    pub question: Option<String>,
    pub reply: Option<String>,
    /// Whether this offer's acceptance has been counted in the provider's figures.
    #[serde(default)]
    pub counted_accept: bool,
}

/// One stamped step on the order's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: i64,
    pub by: Uuid,
    pub role: Role,
    pub what: String,
    pub line: Option<usize>,
    /// The provider the step concerns; such steps are shown to that provider only.
    pub provider: Option<Uuid>,
    pub note: Option<String>,
    /// Agency-only steps (coverage checks and overrides).
    #[serde(default)]
    pub internal: bool,
}

impl Workflow {
    /// Providers with a live (open, asked, accepted or awarded) offer.
    pub fn live_providers(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = self
            .lines
            .iter()
            .flat_map(|l| l.offers.iter())
            .filter(|o| o.status.is_live())
            .map(|o| o.provider)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn offer_mut(&mut self, id: Uuid) -> Option<(usize, &mut Offer)> {
        self.lines
            .iter_mut()
            .enumerate()
            .find_map(|(i, l)| l.offers.iter_mut().find(|o| o.id == id).map(|o| (i, o)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("not found")]
    NotFound,
    #[error("{1}")]
    Refused(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for StepError {
    fn from(r: Refusal) -> Self {
        StepError::Refused(r.field(), r.to_string())
    }
}

fn refuse(field: &'static str, message: &str) -> StepError {
    StepError::Refused(field, message.to_string())
}

type StepResult<T = ()> = Result<T, StepError>;

/// What a caller may do to orders' workflow.
pub struct WorkflowScope<'s> {
    store: &'s Store,
    caller: &'s Caller,
}

/// A loaded order inside its write transaction, with the caller's side.
struct Open<'t> {
    tx: WriteTx<'t>,
    rec: OrderRecord,
    side: Side,
}

impl<'s> WorkflowScope<'s> {
    pub fn new(store: &'s Store, caller: &'s Caller) -> Self {
        Self { store, caller }
    }

    fn open(&self, id: Uuid) -> StepResult<Open<'s>> {
        let tx = self.store.write()?;
        let rec = tx.get::<OrderRecord>(ORDERS, id.as_bytes())?;
        let party = self.caller.party();
        match rec.filter(|r| visible_to(party, r)) {
            Some(rec) => {
                let side = Side::of(self.caller.role());
                Ok(Open { tx, rec, side })
            }
            // The caller (`web::steps::run`) audits every refused step.
            None => Err(StepError::NotFound),
        }
    }

    fn stamp(
        &self,
        rec: &mut OrderRecord,
        what: &str,
        line: Option<usize>,
        provider: Option<Uuid>,
        note: Option<String>,
    ) {
        rec.workflow.events.push(TimelineEvent {
            at_ms: now_ms(),
            by: self.caller.user_id(),
            role: self.caller.role(),
            what: what.to_string(),
            line,
            provider,
            note,
            internal: matches!(what, "Coverage checked" | "Coverage overridden"),
        });
    }

    /// Saves the record (refreshing provider access) and audits the step.
    fn finish(&self, mut o: Open<'_>, action: &'static str) -> StepResult {
        o.rec.provider_access = o.rec.workflow.live_providers();
        o.rec.updated_ms = now_ms();
        put_record(&o.tx, &o.rec)?;
        audit::append(
            &o.tx,
            Event::by(self.caller, action, Some(o.rec.id.to_string()), Outcome::Ok),
        )?;
        o.tx.commit()?;
        Ok(())
    }

    /// Applies an order-level step through the state machine.
    fn step(&self, o: &mut Open<'_>, step: &Step) -> StepResult {
        let to = workflow::next(o.rec.status, o.side, step)?;
        o.rec.status = to;
        Ok(())
    }

    pub fn review(&self, id: Uuid) -> StepResult {
        let mut o = self.open(id)?;
        self.step(&mut o, &Step::Review)?;
        self.stamp(&mut o.rec, "Taken into review", None, None, None);
        self.finish(o, "order.review")
    }

    pub fn ask_facility(&self, id: Uuid, question: &str) -> StepResult {
        let mut o = self.open(id)?;
        self.step(
            &mut o,
            &Step::AskFacility {
                question: question.into(),
            },
        )?;
        o.rec.workflow.question = Some(question.trim().to_string());
        self.stamp(
            &mut o.rec,
            "Asked the facility for information",
            None,
            None,
            Some(question.trim().into()),
        );
        self.finish(o, "order.ask")
    }

    pub fn answer_facility(&self, id: Uuid, text: &str) -> StepResult {
        let mut o = self.open(id)?;
        self.step(&mut o, &Step::Answer { text: text.into() })?;
        o.rec.workflow.question = None;
        self.stamp(
            &mut o.rec,
            "Information provided",
            None,
            None,
            Some(text.trim().into()),
        );
        self.finish(o, "order.answer")
    }

    pub fn record_coverage(
        &self,
        id: Uuid,
        plan: usize,
        result: CoverageResult,
        method: CoverageMethod,
        reference: &str,
    ) -> StepResult {
        let mut o = self.open(id)?;
        if o.side != Side::Agency {
            return Err(refuse("status", "only agency staff record coverage"));
        }
        if !o.rec.status.is_open() {
            return Err(refuse("status", "the order is closed"));
        }
        if plan >= o.rec.data.insurance.len() {
            return Err(refuse(
                "plan",
                "there is no such insurance plan on this order",
            ));
        }
        let cov = &mut o.rec.workflow.coverage;
        cov.resize(o.rec.data.insurance.len(), None);
        cov[plan] = Some(Coverage {
            result,
            method,
            reference: reference.trim().to_string(),
            by: self.caller.user_id(),
            at_ms: now_ms(),
        });
        let note = format!("Plan {}: {:?} by {:?}", plan + 1, result, method);
        self.stamp(&mut o.rec, "Coverage checked", None, None, Some(note));
        self.finish(o, "order.coverage")
    }

    pub fn override_coverage(&self, id: Uuid, reason: &str) -> StepResult {
        let mut o = self.open(id)?;
        if o.side != Side::Agency {
            return Err(refuse("status", "only agency staff override coverage"));
        }
        if !o.rec.status.is_open() {
            return Err(refuse("status", "the order is closed"));
        }
        if reason.trim().is_empty() {
            return Err(refuse("reason", "reason is required"));
        }
        o.rec.workflow.coverage_override = Some(reason.trim().to_string());
        self.stamp(
            &mut o.rec,
            "Coverage overridden",
            None,
            None,
            Some(reason.trim().into()),
        );
        self.finish(o, "order.coverage_override")
    }

    /// Offers line `line` to each of `providers` (each must fit the line).
    pub fn offer(&self, id: Uuid, line: usize, providers: &[Uuid]) -> StepResult {
        let mut o = self.open(id)?;
        let Some(service) = o.rec.data.services.get(line).cloned() else {
            return Err(refuse("line", "there is no such service line"));
        };
        if providers.is_empty() {
            return Err(refuse("providers", "choose at least one provider"));
        }
        let primary = o.rec.data.insurance.first().map(|p| p.plan_type);
        let eligible = o
            .rec
            .workflow
            .coverage
            .first()
            .and_then(|c| c.as_ref())
            .map(|c| c.result)
            == Some(CoverageResult::Eligible);
        if !eligible && o.rec.workflow.coverage_override.is_none() {
            return Err(refuse(
                "coverage",
                "the primary plan must be checked eligible, or coverage overridden with a reason",
            ));
        }
        self.step(&mut o, &Step::Offer)?;
        o.rec
            .workflow
            .lines
            .resize(o.rec.data.services.len(), Line::default());
        if o.rec.workflow.lines[line].awarded.is_some() {
            return Err(refuse("line", "this line is already awarded"));
        }
        let zip = o.rec.data.patient.address.zip.clone();
        for provider in providers {
            let org: Org =
                o.tx.get(ORGS, provider.as_bytes())?
                    .ok_or_else(|| refuse("providers", "unknown provider"))?;
            let why = match primary {
                Some(plan) => {
                    rules::fit(&service, &zip, plan, org.kind, org.disabled, &org.profile)
                }
                None => vec!["has no primary plan to check".into()],
            };
            if !why.is_empty() {
                return Err(StepError::Refused(
                    "providers",
                    format!("{} {}", org.name, why.join("; ")),
                ));
            }
            if o.rec.workflow.lines[line]
                .offers
                .iter()
                .any(|x| x.provider == *provider && x.status.is_live())
            {
                return Err(StepError::Refused(
                    "providers",
                    format!("{} already has this offer", org.name),
                ));
            }
            let offer = Offer {
                id: Uuid::now_v7(),
                provider: *provider,
                status: OfferStatus::Open,
                offered_ms: now_ms(),
                answered_ms: None,
                decline_reason: None,
                decline_text: None,
                question: None,
                reply: None,
                counted_accept: false,
            };
            stats::offer_opened(&o.tx, &o.rec, &offer)?;
            o.rec.workflow.lines[line].offers.push(offer);
            self.stamp(&mut o.rec, "Offered", Some(line), Some(*provider), None);
        }
        self.finish(o, "offer.create")
    }

    /// A provider answers its own offer.
    pub fn respond(&self, id: Uuid, offer: Uuid, response: Response) -> StepResult {
        let mut o = self.open(id)?;
        let Party::Provider(me) = self.caller.party() else {
            return Err(refuse(
                "status",
                "only the offered provider answers an offer",
            ));
        };
        let (line, found) = o.rec.workflow.offer_mut(offer).ok_or(StepError::NotFound)?;
        if found.provider != me {
            return Err(StepError::NotFound);
        }
        let before = found.clone();
        found.status = rules::respond(found.status, &response)?;
        let first_answer = found.answered_ms.is_none();
        found.answered_ms.get_or_insert(now_ms());
        let (what, note) = match &response {
            Response::Accept => ("Accepted", None),
            Response::NeedInfo { question } => {
                found.question = Some(question.trim().to_string());
                ("Asked a question", Some(question.trim().to_string()))
            }
            Response::Decline { reason, text } => {
                found.decline_reason = *reason;
                found.decline_text = Some(text.trim().to_string()).filter(|t| !t.is_empty());
                ("Declined", reason.map(|r| r.label().to_string()))
            }
        };
        let after = found.clone();
        stats::offer_answered(&o.tx, &o.rec, &before, &after, first_answer)?;
        if after.status == OfferStatus::Accepted
            && let Some((_, x)) = o.rec.workflow.offer_mut(offer)
        {
            x.counted_accept = true;
        }
        self.stamp(&mut o.rec, what, Some(line), Some(me), note);
        self.finish(o, "offer.respond")
    }

    /// Staff answer a provider's question on an offer.
    pub fn reply(&self, id: Uuid, offer: Uuid, text: &str) -> StepResult {
        let mut o = self.open(id)?;
        if o.side != Side::Agency {
            return Err(refuse("status", "only agency staff reply to a provider"));
        }
        let (line, found) = o.rec.workflow.offer_mut(offer).ok_or(StepError::NotFound)?;
        found.status = rules::reply(found.status, text)?;
        found.reply = Some(text.trim().to_string());
        let provider = found.provider;
        self.stamp(
            &mut o.rec,
            "Agency replied",
            Some(line),
            Some(provider),
            Some(text.trim().into()),
        );
        self.finish(o, "offer.reply")
    }

    pub fn withdraw(&self, id: Uuid, offer: Uuid) -> StepResult {
        let mut o = self.open(id)?;
        if o.side != Side::Agency {
            return Err(refuse("status", "only agency staff withdraw an offer"));
        }
        let (line, found) = o.rec.workflow.offer_mut(offer).ok_or(StepError::NotFound)?;
        let before = found.clone();
        found.status = rules::withdraw(found.status)?;
        let (after, provider) = (found.clone(), found.provider);
        stats::offer_answered(&o.tx, &o.rec, &before, &after, false)?;
        self.stamp(
            &mut o.rec,
            "Offer withdrawn",
            Some(line),
            Some(provider),
            None,
        );
        self.finish(o, "offer.withdraw")
    }

    /// Awards a line to the provider of an accepted offer; the line's other offers close.
    pub fn award(&self, id: Uuid, offer: Uuid) -> StepResult {
        let mut o = self.open(id)?;
        let (line, found) = o.rec.workflow.offer_mut(offer).ok_or(StepError::NotFound)?;
        if o.side != Side::Agency {
            return Err(refuse("status", "only agency staff award a line"));
        }
        let next = rules::award(found.status)?;
        let provider = found.provider;
        let lines = o.rec.data.services.len();
        let all_awarded = (0..lines).all(|i| {
            i == line
                || o.rec
                    .workflow
                    .lines
                    .get(i)
                    .is_some_and(|l| l.awarded.is_some())
        });
        self.step(&mut o, &Step::Award { all_awarded })?;
        for other in o.rec.workflow.lines[line].offers.clone() {
            let status = if other.id == offer {
                next
            } else if other.status.is_live() {
                OfferStatus::Closed
            } else {
                other.status
            };
            if status != other.status {
                let after = Offer {
                    status,
                    ..other.clone()
                };
                stats::offer_answered(&o.tx, &o.rec, &other, &after, false)?;
                if let Some((_, x)) = o.rec.workflow.offer_mut(other.id) {
                    x.status = status;
                }
            }
        }
        o.rec.workflow.lines[line].awarded = Some(provider);
        if o.rec.status == Status::Placed {
            o.rec.workflow.placed_ms = Some(now_ms());
            stats::placed(&o.tx, &o.rec)?;
        }
        self.stamp(&mut o.rec, "Awarded", Some(line), Some(provider), None);
        self.finish(o, "offer.award")
    }

    /// The awarded provider confirms start of care or delivery on its line.
    pub fn start(&self, id: Uuid, line: usize, date: &str) -> StepResult {
        let mut o = self.open(id)?;
        let Party::Provider(me) = self.caller.party() else {
            return Err(refuse(
                "status",
                "only the awarded provider confirms the start",
            ));
        };
        let Some(this) = o.rec.workflow.lines.get(line) else {
            return Err(StepError::NotFound);
        };
        if this.awarded != Some(me) {
            // A line the provider was offered can be named, but not started yet;
            // any other line is none of its business.
            if this
                .offers
                .iter()
                .any(|x| x.provider == me && x.status.is_live())
            {
                return Err(refuse("status", "this line is not awarded to you (yet)"));
            }
            return Err(StepError::NotFound);
        }
        if o.rec.workflow.lines[line].start_date.is_some() {
            return Err(refuse(
                "status",
                "the start of this line is already confirmed",
            ));
        }
        let raw = date.trim();
        if !raw.is_empty() {
            let Some(d) = crate::domain::validate::parse_date(raw) else {
                return Err(refuse("date", "must be a date (YYYY-MM-DD)"));
            };
            let today = time::OffsetDateTime::now_utc().date();
            if (d - today).whole_days().abs() > 366 {
                return Err(refuse("date", "must be within a year of today"));
            }
        }
        let date = (!raw.is_empty()).then(|| raw.to_string());
        self.step(&mut o, &Step::Start { date: date.clone() })?;
        o.rec.workflow.lines[line].start_date = date.clone();
        self.stamp(&mut o.rec, "Care started", Some(line), Some(me), date);
        self.finish(o, "order.start")
    }

    pub fn complete(&self, id: Uuid) -> StepResult {
        let mut o = self.open(id)?;
        let lines = o.rec.data.services.len();
        let all_started = (0..lines).all(|i| {
            o.rec
                .workflow
                .lines
                .get(i)
                .is_some_and(|l| l.start_date.is_some())
        });
        if o.rec.status == Status::InService && !all_started {
            return Err(refuse(
                "status",
                "every line must have its start confirmed first",
            ));
        }
        self.step(&mut o, &Step::Complete)?;
        self.stamp(&mut o.rec, "Completed", None, None, None);
        self.finish(o, "order.complete")
    }

    pub fn cancel(&self, id: Uuid, reason: &str) -> StepResult {
        let mut o = self.open(id)?;
        self.step(
            &mut o,
            &Step::Cancel {
                reason: reason.into(),
            },
        )?;
        o.rec.workflow.cancel_reason = Some(reason.trim().to_string());
        // Cancelling closes every live offer, so providers lose access.
        for line in o.rec.workflow.lines.clone() {
            for offer in line.offers {
                if matches!(
                    offer.status,
                    OfferStatus::Open | OfferStatus::NeedInfo | OfferStatus::Accepted
                ) {
                    let after = Offer {
                        status: OfferStatus::Closed,
                        ..offer.clone()
                    };
                    stats::offer_answered(&o.tx, &o.rec, &offer, &after, false)?;
                    if let Some((_, x)) = o.rec.workflow.offer_mut(offer.id) {
                        x.status = OfferStatus::Closed;
                    }
                }
            }
        }
        self.stamp(
            &mut o.rec,
            "Cancelled",
            None,
            None,
            Some(reason.trim().into()),
        );
        self.finish(o, "order.cancel")
    }
}
