//! How many document uploads and downloads may run at once.
//!
//! Guarantees: one user has at most `per_user` transfers running, and the whole
//! service at most `TOTAL`; one more is answered 429 with `Retry-After` before any
//! of its body is read or any file opened. Each transfer holds a blocking thread
//! (encryption or decryption), so stalled or slow clients can never take the
//! threads that sign-ins and every other request need. A slot is given back when
//! its `Slot` drops: the transfer finished, failed, or its client went away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use super::error::AppError;

/// Transfers running at once across all users.
pub const TOTAL: usize = 64;

#[derive(Default)]
struct Counts {
    total: usize,
    by_user: HashMap<Uuid, usize>,
}

#[derive(Clone)]
pub struct Transfers {
    counts: Arc<Mutex<Counts>>,
    per_user: usize,
}

/// One running transfer; dropping it frees the slot.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    user: Uuid,
}

impl Transfers {
    pub fn new(per_user: usize) -> Self {
        Self {
            counts: Arc::default(),
            per_user,
        }
    }

    /// A slot for `user`, or 429 when they (or everyone) already use all of theirs.
    pub fn take(&self, user: Uuid) -> Result<Slot, AppError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.by_user.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user || counts.total >= TOTAL {
            return Err(AppError::Transfers);
        }
        counts.total += 1;
        counts.by_user.insert(user, mine + 1);
        Ok(Slot {
            counts: self.counts.clone(),
            user,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_per_user_slots_and_each_comes_back_when_dropped() {
        let t = Transfers::new(2);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = t.take(a).expect("first");
        let _second = t.take(a).expect("second");
        assert!(matches!(t.take(a), Err(AppError::Transfers)));
        let _other = t.take(b).expect("another user is not held up");
        drop(first);
        assert!(t.take(a).is_ok(), "a freed slot is usable again");
    }

    #[test]
    fn the_whole_service_stops_at_total() {
        let t = Transfers::new(TOTAL);
        let user = Uuid::now_v7();
        let held: Vec<Slot> = (0..TOTAL).map(|_| t.take(user).expect("slot")).collect();
        assert!(matches!(t.take(Uuid::now_v7()), Err(AppError::Transfers)));
        drop(held);
        assert_eq!(t.counts.lock().expect("lock").total, 0);
        assert!(t.counts.lock().expect("lock").by_user.is_empty());
    }
}
