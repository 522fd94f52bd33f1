//! Authentication building blocks: password hashing with bounded work, and sign-in
//! throttling.

pub mod password;
pub mod throttle;
pub mod window;
