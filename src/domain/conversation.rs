//! Conversation vocabulary: which thread of an order a message or document is in,
//! and what a message body may hold.
//!
//! Guarantees: a thread name parses to exactly one `Thread` and prints back to the
//! same name (`facility`, `internal`, `provider:<org-id>`); its 17-byte key form is
//! fixed-length, so index keys built from it sort and split cleanly. Message bodies
//! are checked like every other free text (no control characters but newline and
//! tab, at most 4,000 characters) and errors never repeat the text.

use uuid::Uuid;

use super::validate::check_text;

/// Longest message body, in characters.
pub const BODY_MAX: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Thread {
    /// The referring facility and the agency.
    Facility,
    /// Agency-only notes.
    Internal,
    /// One provider organization and the agency.
    Provider(Uuid),
}

const TAG_FACILITY: u8 = b'F';
const TAG_INTERNAL: u8 = b'I';
const TAG_PROVIDER: u8 = b'P';

/// Length of a thread's key form.
pub const THREAD_KEY_LEN: usize = 17;

impl Thread {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "facility" => Some(Thread::Facility),
            "internal" => Some(Thread::Internal),
            other => other
                .strip_prefix("provider:")
                .and_then(|id| Uuid::parse_str(id).ok())
                .map(Thread::Provider),
        }
    }

    pub fn name(self) -> String {
        match self {
            Thread::Facility => "facility".into(),
            Thread::Internal => "internal".into(),
            Thread::Provider(org) => format!("provider:{org}"),
        }
    }

    pub fn key(self) -> [u8; THREAD_KEY_LEN] {
        let (tag, id) = match self {
            Thread::Facility => (TAG_FACILITY, Uuid::nil()),
            Thread::Internal => (TAG_INTERNAL, Uuid::nil()),
            Thread::Provider(org) => (TAG_PROVIDER, org),
        };
        let mut out = [0u8; THREAD_KEY_LEN];
        out[0] = tag;
        out[1..].copy_from_slice(id.as_bytes());
        out
    }

    pub fn from_key(key: &[u8]) -> Option<Self> {
        let (tag, id) = key.split_first()?;
        let id = Uuid::from_slice(id).ok()?;
        match *tag {
            TAG_FACILITY => Some(Thread::Facility),
            TAG_INTERNAL => Some(Thread::Internal),
            TAG_PROVIDER => Some(Thread::Provider(id)),
            _ => None,
        }
    }
}

impl serde::Serialize for Thread {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Thread {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Thread::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown thread"))
    }
}

/// A message body that passed `MessageBody::parse`: trimmed, CRLF normalized,
/// not empty, at most 4,000 characters, no control characters but newline and tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let body = check_text(raw, BODY_MAX, true)?;
        if body.is_empty() {
            return Err("is required");
        }
        Ok(Self(body))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_and_keys_round_trip() {
        let org = Uuid::now_v7();
        for t in [Thread::Facility, Thread::Internal, Thread::Provider(org)] {
            assert_eq!(Thread::parse(&t.name()), Some(t));
            assert_eq!(Thread::from_key(&t.key()), Some(t));
        }
        for bad in ["", "provider:", "provider:nope", "Facility", "other"] {
            assert_eq!(Thread::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_are_required_bounded_and_free_of_control_characters() {
        let parse = MessageBody::parse;
        assert_eq!(
            parse("  hi\r\nthere  ").map(|b| b.0),
            Ok("hi\nthere".into())
        );
        assert!(parse("   ").is_err());
        assert!(parse(&"x".repeat(4_001)).is_err());
        assert!(parse(&"x".repeat(4_000)).is_ok());
        assert!(parse("bell\u{7}").is_err());
    }
}
