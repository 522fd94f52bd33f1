//! argon2id password hashing on a bounded pool.
//!
//! Guarantees: at most `concurrency` hashes run at once, on blocking threads, and at
//! most `queue` more wait; beyond that callers are told the server is busy at once,
//! so a flood of sign-ins cannot starve the server. Verification of an unknown
//! account still spends one hash, so timing does not reveal which emails exist.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the server is busy; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        let dummy = hash_blocking(&params, b"not a real password, only spends time")?;
        Ok(Self {
            params,
            running: Arc::new(Semaphore::new(concurrency)),
            waiting: Arc::new(Semaphore::new(concurrency * 16)),
            dummy: Arc::new(dummy),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Params) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _queued = self
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let _running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || f(params))
            .await
            .map_err(|e| HashError::Internal(e.to_string()))?
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        self.run(move |params| hash_blocking(&params, &pw)).await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no
    /// account, so both paths cost the same.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let pw = Zeroizing::new(password.as_bytes().to_vec());
        let (hash, real) = match stored {
            Some(h) => (h.to_string(), true),
            None => (self.dummy.as_ref().clone(), false),
        };
        self.run(move |_| Ok(verify_blocking(&pw, &hash) && real))
            .await
    }

    /// For the CLI, which has no runtime: hash on the current thread.
    pub fn hash_now(&self, password: &str) -> Result<String, HashError> {
        hash_blocking(&self.params, password.as_bytes())
    }
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, HashError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

fn verify_blocking(password: &[u8], stored: &str) -> bool {
    // Parameters come from the stored hash, so older hashes keep verifying.
    Argon2::default().verify_password(password, stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let h = Hasher::new(64, 1, 2).unwrap();
        let stored = h.hash("correct horse battery staple").await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            h.verify("correct horse battery staple", Some(&stored))
                .await
                .unwrap()
        );
        assert!(
            !h.verify("correct horse battery stapl", Some(&stored))
                .await
                .unwrap()
        );
        assert!(!h.verify("anything", None).await.unwrap());
    }
}
