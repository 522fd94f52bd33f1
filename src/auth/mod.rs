//! Authentication building blocks: password hashing with bounded work, TOTP and
//! recovery codes, and sign-in throttling.

pub mod password;
pub mod throttle;
pub mod totp;
pub mod window;
