//! The second factor's building blocks: TOTP (RFC 6238: HMAC-SHA-1, 6 digits,
//! 30-second steps, through `totp-rs`), the QR code for enrolment, and recovery codes.
//!
//! Guarantees: secrets are 160 random bits; a code is accepted for at most one step
//! either side of now and only for a step later than the last one accepted (the
//! caller keeps that step, in the same transaction, so a code works once); codes are
//! compared in constant time; recovery codes carry 100 random bits and only their
//! SHA-256 is kept. Nothing here logs or stores anything.

use totp_rs::{Algorithm, Builder, Totp};

use crate::crypto::{self, CryptoError};

pub const STEP_SECS: u64 = 30;
pub const RECOVERY_CODES: usize = 10;
const ISSUER: &str = "IHMS Connect";
/// Crockford-style base32 without look-alike letters, for codes typed by people.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new random TOTP secret (160 bits, as RFC 4226 recommends).
pub fn new_secret() -> Result<Vec<u8>, CryptoError> {
    Ok(crypto::random_bytes::<20>()?.to_vec())
}

fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', ""))
        .build()
        .ok()
}

/// The secret as base32 (RFC 4648, no padding) in groups of four, for typing into
/// an authenticator app by hand.
pub fn secret_base32(secret: &[u8]) -> String {
    let plain = totp(secret, "")
        .map(|t| t.secret().to_base32())
        .unwrap_or_default();
    let chars: Vec<char> = plain.trim_end_matches('=').chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn otpauth_uri(secret: &[u8], account: &str) -> Option<String> {
    totp(secret, account)?.to_url().ok()
}

/// The URI as an inline SVG QR code (no XML prolog, so it can sit in HTML).
pub fn qr_svg(uri: &str) -> Option<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // The picture is described by the element around it; screen readers skip it.
    let start = image.find("<svg")? + "<svg".len();
    Some(format!(
        "<svg aria-hidden=\"true\" focusable=\"false\"{}",
        &image[start..]
    ))
}

/// Whether the text typed looks like a TOTP code (six digits, spaces ignored).
pub fn looks_like_code(typed: &str) -> bool {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The step `typed` is the code of, within one step of `now_ms`, if that step is
/// later than `after` (the last accepted step: a replay is refused).
pub fn accept(secret: &[u8], typed: &str, now_ms: i64, after: Option<u64>) -> Option<u64> {
    if !looks_like_code(typed) {
        return None;
    }
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = totp(secret, "")?;
    let now = u64::try_from(now_ms).ok()? / 1000 / STEP_SECS;
    let mut accepted = None;
    // Every candidate is computed and compared, so the time taken does not say which.
    for step in now.saturating_sub(1)..=now + 1 {
        let code = totp.generate(step * STEP_SECS).to_string();
        let fresh = after.is_none_or(|last| step > last);
        if crypto::ct_eq(code.as_bytes(), typed.as_bytes()) && fresh && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

/// The code for the step holding `now_ms` (tests and the enrolment check use it).
pub fn code_at(secret: &[u8], now_ms: i64) -> Option<String> {
    let secs = u64::try_from(now_ms).ok()? / 1000;
    Some(totp(secret, "")?.generate(secs).to_string())
}

/// Ten new recovery codes, `xxxx-xxxx-xxxx-xxxx-xxxx` (100 random bits each).
pub fn new_recovery_codes() -> Result<Vec<String>, CryptoError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let bytes = crypto::random_bytes::<20>()?;
        let chars: Vec<char> = bytes
            .iter()
            .map(|b| RECOVERY_ALPHABET[usize::from(b & 31)] as char)
            .collect();
        let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
        codes.push(groups.join("-"));
    }
    Ok(codes)
}

/// What is kept of a recovery code: the SHA-256 of its normalized form (case,
/// dashes and spaces ignored, look-alike letters read as the digit they stand for).
pub fn recovery_hash(typed: &str) -> [u8; 32] {
    let normalized: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    crypto::sha256(normalized.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_match() {
        // RFC 6238 appendix B, SHA-1, last six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59_000).as_deref(), Some("287082"));
        assert_eq!(
            code_at(secret, 1_111_111_109_000).as_deref(),
            Some("081804")
        );
        assert_eq!(
            code_at(secret, 1_234_567_890_000).as_deref(),
            Some("005924")
        );
    }

    #[test]
    fn a_code_is_accepted_once_within_one_step_and_never_for_an_older_step() {
        let secret = new_secret().unwrap();
        let now = 1_800_000_000_000;
        let code = code_at(&secret, now).unwrap();
        let step = accept(&secret, &code, now, None).expect("fresh code");
        assert_eq!(accept(&secret, &code, now, Some(step)), None, "replay");
        assert_eq!(
            accept(&secret, &code, now + 30_000, None),
            Some(step),
            "one step late"
        );
        assert_eq!(accept(&secret, &code, now + 90_000, None), None, "too late");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(accept(&secret, &spaced, now, None).is_some());
        assert_eq!(accept(&secret, "12345", now, None), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_the_same_however_typed() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(c.len(), 24);
        assert_eq!(
            recovery_hash(c),
            recovery_hash(&c.to_uppercase().replace('-', " "))
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_of_the_otpauth_uri() {
        let secret = new_secret().unwrap();
        let uri = otpauth_uri(&secret, "ada@ihms.test").unwrap();
        assert!(uri.starts_with("otpauth://totp/"));
        assert!(uri.contains("secret="));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg"));
        assert_eq!(secret_base32(&secret).replace(' ', "").len(), 32);
    }
}
