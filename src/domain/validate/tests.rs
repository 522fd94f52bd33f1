//! Validation tests: every fixture order passes, every invalid fixture is refused
//! naming exactly its field, and messages never echo submitted values.

use super::*;
use serde::Deserialize;
use time::macros::date;

const TODAY: Date = date!(2026 - 12 - 03);
const VALID: &str = include_str!("../../../../shared/fixtures/discharge-orders.json");
const INVALID: &str = include_str!("../../../../shared/fixtures/invalid-orders.json");

#[derive(Deserialize)]
struct InvalidCase {
    field: String,
    why: String,
    order: OrderInput,
}

fn valid_orders() -> Vec<OrderInput> {
    serde_json::from_str(VALID).expect("valid fixtures parse")
}

fn invalid_cases() -> Vec<InvalidCase> {
    serde_json::from_str(INVALID).expect("invalid fixtures parse")
}

/// A valid Medicare order with home health, DME and caregiver lines (order-005).
fn base() -> OrderInput {
    let mut orders = valid_orders();
    let i = orders
        .iter()
        .position(|o| o.fixture_id.as_deref() == Some("order-005"));
    orders.swap_remove(i.expect("order-005 exists"))
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

fn errors_of(order: &OrderInput) -> Vec<FieldError> {
    validate(order, TODAY).expect_err("order is refused")
}

#[test]
fn every_fixture_order_is_valid() {
    let orders = valid_orders();
    assert!(!orders.is_empty());
    for order in &orders {
        if let Err(errors) = validate(order, TODAY) {
            panic!("{:?} refused: {errors:?}", order.fixture_id);
        }
    }
}

#[test]
fn every_invalid_case_is_refused_on_exactly_its_field() {
    let valid = valid_orders();
    let cases = invalid_cases();
    assert!(!cases.is_empty());
    for case in &cases {
        let errors = errors_of(&case.order);
        assert_eq!(fields(&errors), [case.field.as_str()], "{}", case.why);
        // Its valid twin (same patient) has no error there, nor anywhere else.
        let twin = valid
            .iter()
            .find(|o| o.patient.mrn == case.order.patient.mrn);
        let twin = twin.unwrap_or_else(|| panic!("no valid twin for {}", case.why));
        assert!(validate(twin, TODAY).is_ok(), "{}", case.why);
    }
}

#[test]
fn messages_never_echo_the_submitted_value() {
    for case in invalid_cases() {
        let json = serde_json::to_value(&case.order).expect("order serializes");
        let pointer = format!("/{}", case.field.replace(['.', '['], "/").replace(']', ""));
        let submitted = match json.pointer(&pointer) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if submitted.trim().is_empty() {
            continue;
        }
        for error in errors_of(&case.order) {
            assert!(
                !error.message.contains(submitted.trim()),
                "{}: {error:?}",
                case.why
            );
        }
    }
    let mut order = base();
    order.patient.address.state = "Florida".into();
    order.patient.sex = "female".into();
    order.diagnoses[0].code = "250.00".into();
    order.services[0].disciplines[1] = "XRAY".into();
    for error in errors_of(&order) {
        for value in ["Florida", "female", "250.00", "XRAY"] {
            assert!(!error.message.contains(value), "{error:?}");
        }
    }
}

#[test]
fn valid_order_is_normalized() {
    let mut order = base();
    order.patient.first_name = "  Lucia ".into();
    order.patient.sex = "m".into();
    order.patient.phone = "+1 727.555.0170".into();
    order.patient.address.state = "fl".into();
    order.diagnoses[0].code = "j189".into();
    order.insurance[0].member_id = "5dq4-pp2-ng65".into();
    order.services[0].disciplines = vec!["sn".into(), "Pt".into()];
    order.services[1].items[0].hcpcs = "k0001".into();
    order.notes = "line one\r\nline two".into();
    let (data, warnings) = validate(&order, TODAY).expect("valid");
    assert!(warnings.is_empty());
    assert_eq!(data.patient.first_name, "Lucia");
    assert_eq!(data.patient.sex, "M");
    assert_eq!(data.patient.phone, "(727) 555-0170");
    assert_eq!(data.patient.address.state, "FL");
    assert_eq!(data.diagnoses[0].code, "J18.9");
    assert_eq!(data.insurance[0].member_id, "5DQ4PP2NG65");
    assert_eq!(data.notes, "line one\nline two");
    let ServiceLine::HomeHealth { disciplines, .. } = &data.services[0] else {
        panic!("home health first: {:?}", data.services[0]);
    };
    assert_eq!(disciplines, &[Discipline::SN, Discipline::PT]);
    let ServiceLine::Dme { items, .. } = &data.services[1] else {
        panic!("dme second: {:?}", data.services[1]);
    };
    assert_eq!(items[0].hcpcs, "K0001");
}

#[test]
fn primary_plan_comes_first() {
    let mut order = base();
    order.insurance[0].rank = "secondary".into();
    order.insurance.push(InsuranceInput {
        rank: "primary".into(),
        plan_type: "commercial".into(),
        payer: "Acme Health".into(),
        member_id: "ACM123".into(),
    });
    let (data, _) = validate(&order, TODAY).expect("valid");
    let ranks: Vec<_> = data.insurance.iter().map(|p| p.rank).collect();
    assert_eq!(ranks, [PlanRank::Primary, PlanRank::Secondary]);
    assert_eq!(data.insurance[0].plan_type, PlanType::Commercial);
}

#[test]
fn all_errors_are_reported_at_once() {
    let mut order = base();
    order.priority = String::new();
    order.patient.phone = "555-0170".into();
    order.patient.caregiver = Some(CaregiverInput::default());
    order.insurance.clear();
    order.diagnoses[0].primary = false;
    order.ordering_physician.npi = String::new();
    order.services[1].items[1].quantity = 100;
    order.services[2].hours_per_week = None;
    order.services[2].tasks = vec![" ".into()];
    let errors = errors_of(&order);
    assert_eq!(
        fields(&errors),
        [
            "priority",
            "patient.phone",
            "patient.caregiver.name",
            "patient.caregiver.phone",
            "insurance",
            "diagnoses",
            "ordering_physician.npi",
            "services[1].items[1].quantity",
            "services[2].hours_per_week",
            "services[2].tasks[0]",
        ]
    );
    assert!(errors.iter().all(|e| !e.message.is_empty()));
}

#[test]
fn list_rules_name_the_list() {
    let mut order = base();
    order.insurance[0].rank = "secondary".into();
    order.diagnoses = (0..26)
        .map(|i| DiagnosisInput {
            code: "I10".into(),
            description: "x".into(),
            primary: i == 0,
        })
        .collect();
    order.services[2].kind = "home_health".into();
    order.services[0].disciplines = vec!["SN".into(), "sn".into()];
    order.services[1].items.clear();
    let errors = errors_of(&order);
    assert_eq!(
        fields(&errors),
        [
            "insurance",
            "diagnoses",
            "services[0].disciplines[1]",
            "services[1].items",
            "services[2].kind",
        ]
    );
}

#[test]
fn birth_date_is_within_130_years_and_not_in_the_future() {
    let mut order = base();
    for (dob, ok) in [
        ("1896-12-03", true),
        ("1896-12-02", false),
        ("2026-12-03", false), // discharged before birth
        ("2026-12-04", false),
        ("1942-02-30", false),
        ("", false),
    ] {
        order.patient.dob = dob.into();
        assert_eq!(validate(&order, TODAY).is_ok(), ok, "{dob}");
    }
    order.patient.dob = "2026-12-04".into();
    assert_eq!(fields(&errors_of(&order)), ["patient.dob"]);
    order.patient.dob = "2026-12-03".into();
    assert_eq!(fields(&errors_of(&order)), ["discharge_date"]);
}

#[test]
fn medicare_home_health_face_to_face_window() {
    let mut order = base(); // discharged 2026-12-02
    for (f2f, ok) in [
        ("2026-09-03", true),
        ("2026-09-02", false),
        ("2027-01-01", true),
        ("2027-01-02", false),
        ("12/01/2026", false),
    ] {
        order.face_to_face_date = Some(f2f.into());
        let result = validate(&order, TODAY);
        assert_eq!(result.is_ok(), ok, "{f2f}");
        if let Err(errors) = result {
            assert_eq!(fields(&errors), ["face_to_face_date"]);
        }
    }
    for missing in [None, Some(String::new()), Some("  ".into())] {
        order.face_to_face_date = missing;
        let (data, warnings) = validate(&order, TODAY).expect("missing is not an error");
        assert_eq!(data.face_to_face_date, None);
        let warned: Vec<_> = warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(warned, ["face_to_face_date"]);
    }
}

#[test]
fn face_to_face_window_applies_only_to_medicare_home_health() {
    let mut commercial = base();
    commercial.insurance[0].plan_type = "commercial".into();
    commercial.insurance[0].member_id = "ACM123".into();
    commercial.face_to_face_date = Some("2025-01-01".into());
    assert!(validate(&commercial, TODAY).is_ok());

    let mut no_home_health = base();
    no_home_health.services.remove(0);
    no_home_health.face_to_face_date = None;
    let (_, warnings) = validate(&no_home_health, TODAY).expect("valid");
    assert!(warnings.is_empty());
}

#[test]
fn member_id_is_an_mbi_only_for_medicare() {
    let mut order = base();
    order.insurance[0].member_id = "ACM123".into();
    assert_eq!(fields(&errors_of(&order)), ["insurance[0].member_id"]);
    order.insurance[0].plan_type = "medicaid".into();
    assert!(validate(&order, TODAY).is_ok());
    order.insurance[0].member_id = "x".repeat(101);
    assert_eq!(fields(&errors_of(&order)), ["insurance[0].member_id"]);
}

#[test]
fn numbers_and_lengths_have_bounds() {
    let mut order = base();
    for (hours, quantity, ok) in [
        (1, 1, true),
        (168, 99, true),
        (0, 1, false),
        (169, 1, false),
        (1, 100, false),
    ] {
        order.services[2].hours_per_week = Some(hours);
        order.services[1].items[0].quantity = quantity;
        assert_eq!(validate(&order, TODAY).is_ok(), ok, "{hours} {quantity}");
    }
    let mut order = base();
    order.patient.address.city = "é".repeat(100);
    order.services[0].notes = "é".repeat(4_000);
    assert!(validate(&order, TODAY).is_ok());
    order.patient.address.city.push('x');
    order.services[0].notes.push('x');
    let errors = errors_of(&order);
    assert_eq!(
        fields(&errors),
        ["patient.address.city", "services[0].notes"]
    );
}

#[test]
fn optional_fields_may_be_empty_and_caregiver_may_be_absent() {
    let mut order = base();
    order.patient.address.line2 = String::new();
    order.patient.language = String::new();
    order.patient.caregiver = None;
    order.notes = String::new();
    order.services[0].frequency = String::new();
    let (data, _) = validate(&order, TODAY).expect("valid");
    assert_eq!(data.patient.caregiver, None);
}

#[test]
fn invisible_and_direction_changing_characters_are_refused_in_names() {
    for bad in [
        "Ann\u{202E}a",
        "An\u{200B}na",
        "An\u{2028}na",
        "An\u{FEFF}na",
    ] {
        assert!(check_text(bad, 100, false).is_err(), "{bad:?}");
    }
    assert!(check_text("Zoë O'Brien-Łukasz", 100, false).is_ok());
}

#[test]
fn lists_inside_a_line_are_bounded() {
    let mut input: OrderInput =
        serde_json::from_str::<Vec<OrderInput>>(VALID).expect("fixtures")[0].clone();
    input.services[0].kind = "caregiver".into();
    input.services[0].hours_per_week = Some(10);
    input.services[0].tasks = vec!["bathing".into(); 26];
    let errors = validate(&input, TODAY).expect_err("too many tasks");
    assert!(
        errors.iter().any(|e| e.field == "services[0].tasks"),
        "{errors:?}"
    );
}
