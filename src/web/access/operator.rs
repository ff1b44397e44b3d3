//! The operator token (`VERDICT_ADMIN_TOKEN`): scripts send it as a bearer token, a browser
//! enters it once and gets a server-side session. Wrong guesses are throttled per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The operator token, kept only as a digest so comparisons take the same time whatever the
/// guess.
#[derive(Clone)]
pub struct OperatorToken {
    digest: [u8; 32],
}

impl OperatorToken {
    /// `None` when no token is configured.
    pub fn new(token: Option<&str>) -> Option<OperatorToken> {
        let token = token.map(str::trim).filter(|t| !t.is_empty())?;
        Some(OperatorToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.trim().as_bytes()).into();
        constant_time_eq(&digest, &self.digest)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Wrong operator tokens allowed from one address before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// How long an address waits after its free failures, doubled with each further one.
pub const FIRST_WAIT: Duration = Duration::from_secs(30);
/// Addresses remembered at most (the oldest are forgotten first).
const REMEMBERED: usize = 10_000;

/// Failed operator-token attempts per client address.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// How long `addr` must still wait before its next attempt counts, if at all.
    pub fn wait(&self, addr: IpAddr) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, last) = *map.get(&addr)?;
        if count < FREE_FAILURES {
            return None;
        }
        let wait = FIRST_WAIT.saturating_mul(1 << (count - FREE_FAILURES).min(10));
        wait.checked_sub(last.elapsed())
    }

    pub fn failed(&self, addr: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= REMEMBERED {
            let oldest = map.iter().min_by_key(|(_, (_, at))| *at).map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(addr).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    pub fn succeeded(&self, addr: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let t = OperatorToken::new(Some("s3cret")).unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(OperatorToken::new(Some("  ")).is_none());
        assert!(OperatorToken::new(None).is_none());
    }

    #[test]
    fn an_address_waits_after_its_free_failures_and_is_forgiven_on_success() {
        let throttle = Throttle::default();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.wait(addr), None);
            throttle.failed(addr);
        }
        let wait = throttle.wait(addr).expect("must wait now");
        assert!(wait > FIRST_WAIT - Duration::from_secs(1) && wait <= FIRST_WAIT);
        throttle.failed(addr);
        assert!(
            throttle.wait(addr).unwrap() > FIRST_WAIT,
            "the wait doubles"
        );
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(
            throttle.wait(other),
            None,
            "other addresses are not affected"
        );
        throttle.succeeded(addr);
        assert_eq!(throttle.wait(addr), None);
    }
}
