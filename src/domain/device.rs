//! A short description of the browser a session was signed in from, for the user's
//! list of their sessions.
//!
//! Guarantees: the summary is built only from the names in the User-Agent parser's
//! own tables (browser and operating system families), never from free text copied
//! out of the header, so it carries no versions, build strings or anything a client
//! chose to put there; it is at most `MAX_LEN` characters.

use std::sync::OnceLock;

const MAX_LEN: usize = 60;
pub const UNKNOWN: &str = "Unknown device";

fn parser() -> &'static woothee::parser::Parser {
    static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
    PARSER.get_or_init(woothee::parser::Parser::new)
}

/// Keeps letters, digits, spaces and a little punctuation; drops everything else.
fn clean(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '/'))
        .take(MAX_LEN / 2)
        .collect::<String>()
        .trim()
        .to_string()
}

/// "Firefox on Linux", "Safari on iPhone", or "Unknown device".
pub fn summary(user_agent: Option<&str>) -> String {
    let Some(found) = user_agent
        .filter(|ua| ua.len() <= 1024)
        .and_then(|ua| parser().parse(ua))
    else {
        return UNKNOWN.to_string();
    };
    let known = |s: &str| s != woothee::woothee::VALUE_UNKNOWN && !s.is_empty();
    let name = known(found.name).then(|| clean(found.name));
    let os = known(found.os).then(|| clean(found.os));
    let text = match (name, os) {
        (Some(n), Some(o)) => format!("{n} on {o}"),
        (Some(n), None) => n,
        (None, Some(o)) => o,
        (None, None) => return UNKNOWN.to_string(),
    };
    text.chars().take(MAX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named_without_versions() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(summary(Some(firefox)), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let s = summary(Some(chrome));
        assert!(s.starts_with("Chrome on Windows"), "{s}");
        assert!(!s.contains("131"));
    }

    #[test]
    fn anything_else_is_an_unknown_device() {
        assert_eq!(summary(None), UNKNOWN);
        assert_eq!(summary(Some("")), UNKNOWN);
        assert_eq!(summary(Some("<script>alert(1)</script>")), UNKNOWN);
        assert_eq!(summary(Some(&"A".repeat(5000))), UNKNOWN);
    }
}
