//! Order submission shared by the web form and the API: resolve the referring
//! facility for the caller, validate, store. Nothing is stored unless every check
//! passes.

use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use crate::domain::order::{FieldError, OrderInput};
use crate::domain::validate::validate;
use crate::domain::{Caller, OrgKind, Party};
use crate::store::accounts;
use crate::store::orders::{OrderRecord, OrderScope};

fn field(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Which facility an order is for: a facility user's own (a different one is
/// refused); for agency staff, the one named, which must be an active referring
/// facility.
fn facility_for(
    state: &AppState,
    caller: &Caller,
    named: Option<&str>,
) -> Result<Uuid, FieldError> {
    let parsed = named.map(|s| Uuid::parse_str(s.trim()));
    match caller.party() {
        Party::Facility(own) => match parsed {
            None => Ok(own),
            Some(Ok(id)) if id == own => Ok(own),
            _ => Err(field("referring_facility", "must be your own facility")),
        },
        Party::Agency => {
            let id = match parsed {
                Some(Ok(id)) => id,
                None => return Err(field("referring_facility", "is required")),
                Some(Err(_)) => {
                    return Err(field(
                        "referring_facility",
                        "must be the id of a referring facility",
                    ));
                }
            };
            let org = state
                .store
                .read()
                .ok()
                .and_then(|tx| accounts::org(&tx, id).ok().flatten());
            match org {
                Some(o) if o.kind == OrgKind::ReferringFacility && !o.disabled => Ok(id),
                _ => Err(field(
                    "referring_facility",
                    "must be the id of an active referring facility",
                )),
            }
        }
        Party::Provider(_) => Err(field(
            "referring_facility",
            "providers cannot submit orders",
        )),
    }
}

pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Validates and stores an order; every problem is returned with its field.
pub fn submit(
    state: &AppState,
    caller: &Caller,
    input: &OrderInput,
) -> Result<OrderRecord, AppError> {
    if matches!(caller.party(), Party::Provider(_)) {
        return Err(AppError::NotFound);
    }
    let mut errors = Vec::new();
    let facility = facility_for(state, caller, input.referring_facility.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    let validated = validate(input, today())
        .map_err(|mut e| errors.append(&mut e))
        .ok();
    match (facility, validated) {
        (Some(facility), Some((data, warnings))) if errors.is_empty() => {
            Ok(OrderScope::new(&state.store, caller).create(facility, data, warnings)?)
        }
        _ => Err(AppError::Invalid(errors)),
    }
}
