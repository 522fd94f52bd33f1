//! The retention job (domain.md, "Retention and requests").
use crate::config::Config;
use crate::store::{Result, Store};

pub fn run(_store: &Store, _cfg: &Config, _now_ms: i64) -> Result<usize> {
    Ok(0)
}
