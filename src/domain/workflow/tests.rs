//! Every pair of states, every side, every step: the table below is the whole
//! allowed set; everything else must be refused.

use super::*;
use Status::*;

fn steps() -> Vec<Step> {
    vec![
        Step::Review,
        Step::AskFacility {
            question: "Which pharmacy?".into(),
        },
        Step::Answer {
            text: "CVS on Main".into(),
        },
        Step::Offer,
        Step::Award { all_awarded: true },
        Step::Award { all_awarded: false },
        Step::Start {
            date: Some("2026-12-05".into()),
        },
        Step::Complete,
        Step::Cancel {
            reason: "Patient moved".into(),
        },
    ]
}

/// The allowed transitions: (from, side, step name, extra) -> to.
fn allowed(from: Status, who: Side, step: &Step) -> Option<Status> {
    let agency = who == Side::Agency;
    match (step, from) {
        (Step::Review, Submitted) if agency => Some(InReview),
        (Step::AskFacility { .. }, InReview) if agency => Some(NeedsInfo),
        (Step::Answer { .. }, NeedsInfo) if who != Side::Provider => Some(InReview),
        (Step::Offer, InReview | PendingPlacement) if agency => Some(PendingPlacement),
        (Step::Award { all_awarded: true }, PendingPlacement) if agency => Some(Placed),
        (Step::Award { all_awarded: false }, PendingPlacement) if agency => Some(PendingPlacement),
        (Step::Start { .. }, Placed | InService) if who == Side::Provider => Some(InService),
        (Step::Complete, InService) if agency => Some(Completed),
        (Step::Cancel { .. }, s) if who != Side::Provider && s.is_open() => Some(Cancelled),
        _ => None,
    }
}

#[test]
fn every_state_role_and_step_matches_the_table() {
    let mut checked = 0;
    for from in Status::ALL {
        for role in crate::domain::Role::ALL {
            let who = Side::of(role);
            for step in steps() {
                let got = next(from, who, &step);
                match allowed(from, who, &step) {
                    Some(to) => assert_eq!(got, Ok(to), "{from:?} {who:?} {step:?}"),
                    None => assert!(
                        got.is_err(),
                        "{from:?} {who:?} {step:?} should be refused, got {got:?}"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8 * 4 * 9);
}

#[test]
fn steps_that_need_text_or_a_date_say_which() {
    assert_eq!(
        next(
            InReview,
            Side::Agency,
            &Step::AskFacility {
                question: " ".into()
            }
        ),
        Err(Refusal::Missing("question"))
    );
    assert_eq!(
        next(
            NeedsInfo,
            Side::Facility,
            &Step::Answer {
                text: String::new()
            }
        ),
        Err(Refusal::Missing("answer"))
    );
    assert_eq!(
        next(Placed, Side::Provider, &Step::Start { date: None }),
        Err(Refusal::Missing("date"))
    );
    assert_eq!(
        next(
            Submitted,
            Side::Facility,
            &Step::Cancel { reason: "".into() }
        ),
        Err(Refusal::Missing("reason"))
    );
    assert_eq!(Refusal::Missing("reason").field(), "reason");
}

#[test]
fn refusals_name_the_side_or_the_state() {
    let side = next(Submitted, Side::Facility, &Step::Review).unwrap_err();
    assert_eq!(side.to_string(), "only agency staff may take this step");
    let state = next(
        Completed,
        Side::Agency,
        &Step::Cancel { reason: "x".into() },
    )
    .unwrap_err();
    assert_eq!(
        state.to_string(),
        "this step is not possible while the order is completed"
    );
    assert_eq!(state.field(), "status");
}
