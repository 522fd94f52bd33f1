//! Field-level rules of the domain reference: code formats (NPI, ICD-10-CM, HCPCS,
//! MBI), contact formats (phone, state, ZIP), dates and free text.
//!
//! Each function looks at one value and either normalizes it or refuses it; none of
//! them knows where the value came from, and none returns or formats the value in an
//! error, so callers can show the result to anyone.

use time::Date;
use time::macros::format_description;

/// Maximum characters of a single-line text field (names, payer, tasks, ...).
pub(super) const SHORT_TEXT_MAX: usize = 100;
/// Maximum characters of a notes field.
pub(super) const NOTES_MAX: usize = 4_000;

/// Normalizes an ICD-10-CM code: letter, digit, letter-or-digit, then optionally a dot
/// and 1 to 4 letters or digits. Lower case and a missing dot are accepted; the result
/// is upper case with the dot after the third character (`i509` → `I50.9`).
pub fn normalize_icd10(s: &str) -> Option<String> {
    let code = s.trim().to_ascii_uppercase();
    let (category, extension) = match code.split_once('.') {
        Some((category, extension)) if !extension.is_empty() => (category, extension),
        Some(_) => return None,
        None => code.split_at_checked(3)?,
    };
    let category_ok = matches!(category.as_bytes(), [a, b, c]
        if a.is_ascii_uppercase() && b.is_ascii_digit() && c.is_ascii_alphanumeric());
    let extension_ok = extension.len() <= 4 && extension.bytes().all(|b| b.is_ascii_alphanumeric());
    if !(category_ok && extension_ok) {
        return None;
    }
    Some(if extension.is_empty() {
        category.to_owned()
    } else {
        format!("{category}.{extension}")
    })
}

/// True when `s` is a 10-digit NPI starting with 1 or 2 whose last digit is the Luhn
/// check digit of `80840` followed by the first nine digits.
pub fn valid_npi(s: &str) -> bool {
    let digits: Option<Vec<u32>> = s.chars().map(|c| c.to_digit(10)).collect();
    let Some([first @ (1 | 2), body @ .., check]) = digits.as_deref() else {
        return false;
    };
    if body.len() != 8 {
        return false;
    }
    // Walk right to left over the prefixed payload (check digit excluded), so the
    // rightmost payload digit is the first one doubled.
    let payload = [8, 0, 8, 4, 0, *first]
        .into_iter()
        .chain(body.iter().copied());
    let sum: u32 = payload
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2 == 0, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    (10 - sum % 10) % 10 == *check
}

/// Normalizes a HCPCS Level II code (one letter and four digits) to upper case.
pub fn normalize_hcpcs(s: &str) -> Option<String> {
    let code = s.trim().to_ascii_uppercase();
    let ok = matches!(code.as_bytes(), [letter, digits @ ..]
        if letter.is_ascii_uppercase() && digits.len() == 4 && digits.iter().all(u8::is_ascii_digit));
    ok.then_some(code)
}

/// Normalizes a Medicare Beneficiary Identifier: dashes and spaces are ignored, lower
/// case is accepted, and the result is 11 upper-case characters without dashes.
pub fn normalize_mbi(s: &str) -> Option<String> {
    let mbi: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    // MBI letters exclude S, L, O, I, B and Z so they cannot be misread as digits.
    let letter = |c: char| c.is_ascii_uppercase() && !"SLOIBZ".contains(c);
    let digit = |c: char| c.is_ascii_digit();
    let chars: Vec<char> = mbi.chars().collect();
    let ok = chars.len() == 11
        && chars.iter().enumerate().all(|(i, &c)| match i + 1 {
            1 => matches!(c, '1'..='9'),
            4 | 7 | 10 | 11 => digit(c),
            2 | 5 | 8 | 9 => letter(c),
            _ => letter(c) || digit(c),
        });
    ok.then_some(mbi)
}

/// Normalizes a 10-digit NANP phone number to `(NNN) NNN-NNNN`. Accepts the formatting
/// characters `()- .+` and a leading country code 1 (`+1` or `1`); area code and
/// exchange must start with 2-9.
pub fn normalize_phone(s: &str) -> Option<String> {
    let s = s.trim();
    let after_plus = s.strip_prefix('+');
    let body = after_plus.unwrap_or(s);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || "()- .".contains(c))
    {
        return None;
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    let national = match (after_plus.is_some(), digits.len()) {
        (_, 11) => digits.strip_prefix('1')?,
        (false, 10) => digits.as_str(),
        _ => return None,
    };
    let (area, rest) = national.split_at_checked(3)?;
    let (exchange, line) = rest.split_at_checked(3)?;
    let leads_2_to_9 = |part: &str| part.starts_with(|c| matches!(c, '2'..='9'));
    (leads_2_to_9(area) && leads_2_to_9(exchange)).then(|| format!("({area}) {exchange}-{line}"))
}

/// Two-letter codes of the US states, DC and the inhabited territories.
const STATES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI",
];

/// True when `s` (trimmed, any case) is the two-letter code of a US state, DC or a
/// territory (AS, GU, MP, PR, VI).
pub fn valid_state(s: &str) -> bool {
    let code = s.trim().to_ascii_uppercase();
    STATES.contains(&code.as_str())
}

/// Normalizes a ZIP code: 5 digits or ZIP+4 (`33755-1234`), trimmed.
pub fn normalize_zip(s: &str) -> Option<String> {
    let zip = s.trim();
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    let ok = match zip.split_once('-') {
        Some((five, four)) => digits(five, 5) && digits(four, 4),
        None => digits(zip, 5),
    };
    ok.then(|| zip.to_owned())
}

/// Checks free text: trims surrounding whitespace, refuses control characters (notes,
/// `multiline`, may hold newlines and tabs; CRLF and CR line ends become LF) and
/// refuses more than `max_chars` characters. Empty text is accepted; whether a field is
/// required is the caller's rule.
///
/// # Errors
/// A short message for end users (never containing the text) when the text is refused.
/// Invisible and direction-changing characters, which let one name pose as another
/// (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
pub fn is_deceptive(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Characters that draw nothing (or only change a neighbour's look), beyond the
/// deceptive ones: filenames drop them all, so what a user sees is the whole name.
/// Free text keeps them (a variation selector belongs in many emoji).
pub fn is_invisible(c: char) -> bool {
    is_deceptive(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

pub fn check_text(s: &str, max_chars: usize, multiline: bool) -> Result<String, &'static str> {
    let text = if multiline {
        s.trim().replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.trim().to_owned()
    };
    let allowed = |c: char| multiline && matches!(c, '\n' | '\t');
    if text
        .chars()
        .any(|c| (c.is_control() && !allowed(c)) || is_deceptive(c))
    {
        return Err(if multiline {
            "must not contain control characters"
        } else {
            "must be a single line without control characters"
        });
    }
    if text.chars().count() > max_chars {
        return Err(too_long(max_chars));
    }
    Ok(text)
}

/// The message for text over `max_chars`; messages are static so that they can never
/// carry a submitted value.
fn too_long(max_chars: usize) -> &'static str {
    match max_chars {
        SHORT_TEXT_MAX => "must be at most 100 characters",
        NOTES_MAX => "must be at most 4,000 characters",
        _ => "is too long",
    }
}

/// Parses a `YYYY-MM-DD` calendar date (surrounding whitespace ignored).
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return None;
    }
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn icd10_is_normalized_to_upper_case_with_a_dot() {
        assert_eq!(normalize_icd10("i509").as_deref(), Some("I50.9"));
        assert_eq!(normalize_icd10("e11621").as_deref(), Some("E11.621"));
        assert_eq!(normalize_icd10("E11.621").as_deref(), Some("E11.621"));
        assert_eq!(normalize_icd10("I10").as_deref(), Some("I10"));
        assert_eq!(normalize_icd10(" s72.001a ").as_deref(), Some("S72.001A"));
        assert_eq!(normalize_icd10("M1A0110").as_deref(), Some("M1A.0110"));
    }

    #[test]
    fn icd10_refuses_other_shapes() {
        for bad in [
            "250.00",
            "I5",
            "I50.",
            "I50.12345",
            "I5012345",
            "150.9",
            "IX0.9",
            "I50.9.1",
            "I50-9",
            "",
            "É50.9",
        ] {
            assert_eq!(normalize_icd10(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn npi_check_digit_follows_the_luhn_rule_with_prefix_80840() {
        assert!(valid_npi("1234567893"));
        assert!(valid_npi("1814340182"));
        assert!(!valid_npi("1814340183"));
        assert!(!valid_npi("1234567890"));
    }

    #[test]
    fn npi_refuses_wrong_length_first_digit_or_characters() {
        // 3234567899 has a matching check digit; it fails only on its first digit.
        for bad in [
            "123456789",
            "12345678930",
            "3234567899",
            "0234567893",
            "12345-7893",
            "123456789x",
            " 1234567893",
            "",
        ] {
            assert!(!valid_npi(bad), "{bad:?}");
        }
    }

    #[test]
    fn hcpcs_is_one_letter_and_four_digits() {
        assert_eq!(normalize_hcpcs("E0260").as_deref(), Some("E0260"));
        assert_eq!(normalize_hcpcs(" k0001 ").as_deref(), Some("K0001"));
        for bad in ["E026", "E02600", "00260", "EE260", "E02 6", ""] {
            assert_eq!(normalize_hcpcs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mbi_ignores_dashes_and_spaces_and_is_stored_upper_case() {
        assert_eq!(normalize_mbi("4E81FN6RN23").as_deref(), Some("4E81FN6RN23"));
        assert_eq!(
            normalize_mbi("1EG4-TE5-MK72").as_deref(),
            Some("1EG4TE5MK72")
        );
        assert_eq!(
            normalize_mbi("1eg4 te5 mk72").as_deref(),
            Some("1EG4TE5MK72")
        );
    }

    #[test]
    fn mbi_refuses_forbidden_letters_and_misplaced_characters() {
        for bad in [
            "1EG4-TE5-MK7S", // S anywhere
            "1EG4TE5MK7",    // 10 characters
            "0EG4TE5MK72",   // position 1 is 0
            "11G4TE5MK72",   // position 2 a digit
            "1EGATE5MK72",   // position 4 a letter
            "1BG4TE5MK72",   // B
            "1EG4TE5MK7A",   // position 11 a letter
            "1EG4_TE5_MK72", // other separators
        ] {
            assert_eq!(normalize_mbi(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn phone_is_normalized_to_nanp_format() {
        for ok in [
            "(813) 555-0180",
            "813-555-0180",
            "813.555.0180",
            "8135550180",
            "+1 813 555 0180",
            "1-813-555-0180",
        ] {
            assert_eq!(
                normalize_phone(ok).as_deref(),
                Some("(813) 555-0180"),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn phone_refuses_bad_numbers() {
        for bad in [
            "555-0180",
            "(113) 555-0180",
            "(813) 155-0180",
            "2-813-555-0180",
            "+44 20 7946 0958",
            "+813 555 0180",
            "813 555 0180 x12",
            "813-555-018O",
            "",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn state_is_a_two_letter_code_of_a_state_dc_or_territory() {
        for ok in ["FL", "fl", "DC", "PR", "GU", "VI", "AS", "MP", " NY "] {
            assert!(valid_state(ok), "{ok:?}");
        }
        for bad in ["Florida", "F", "XX", "FLA", ""] {
            assert!(!valid_state(bad), "{bad:?}");
        }
    }

    #[test]
    fn zip_is_five_digits_or_zip_plus_four() {
        assert_eq!(normalize_zip("33755").as_deref(), Some("33755"));
        assert_eq!(normalize_zip(" 33755-1234 ").as_deref(), Some("33755-1234"));
        for bad in [
            "3375",
            "337555",
            "33755-123",
            "337551234",
            "3375a",
            "33755 1234",
            "",
        ] {
            assert_eq!(normalize_zip(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn text_is_trimmed_and_counted_in_characters() {
        assert_eq!(check_text("  Ann  ", 100, false), Ok("Ann".to_owned()));
        assert_eq!(check_text("", 100, false), Ok(String::new()));
        // 100 two-byte characters fit in a 100-character field.
        let accented = "é".repeat(100);
        assert_eq!(check_text(&accented, 100, false), Ok(accented.clone()));
        assert_eq!(
            check_text(&"é".repeat(101), 100, false),
            Err("must be at most 100 characters")
        );
        assert_eq!(
            check_text(&"a".repeat(4_001), NOTES_MAX, true),
            Err("must be at most 4,000 characters")
        );
    }

    #[test]
    fn text_refuses_control_characters_and_line_breaks_in_single_line_fields() {
        assert!(check_text("Ann\0a", 100, false).is_err());
        assert!(check_text("Ann\nLee", 100, false).is_err());
        assert!(check_text("Ann\tLee", 100, false).is_err());
        assert!(check_text("Ann\u{7f}", 100, false).is_err());
        assert!(check_text("a\u{1b}b", NOTES_MAX, true).is_err());
        assert_eq!(
            check_text("line 1\n\tline 2", NOTES_MAX, true),
            Ok("line 1\n\tline 2".to_owned())
        );
        assert_eq!(
            check_text("a\r\nb\rc", NOTES_MAX, true),
            Ok("a\nb\nc".to_owned())
        );
    }

    #[test]
    fn dates_are_strict_iso_calendar_dates() {
        assert_eq!(parse_date("2026-12-03"), Some(date!(2026 - 12 - 03)));
        assert_eq!(parse_date("2024-02-29"), Some(date!(2024 - 02 - 29)));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-03",
            "12/03/2026",
            "+026-12-03",
            "20261203",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }
}
