//! The retry policy: exponential backoff with full jitter, capped; Retry-After wins; a delivery gives up
//! after `max_attempts` attempts or once its next attempt would fall past `max_age` after acceptance.
//!
//! Pure functions of their inputs (the randomness is passed in), so the schedule is unit-tested.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::config::DeliveryConfig;

/// Per-target overrides of the `[delivery]` defaults (`[targets.NAME.retry]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverrides {
    pub max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub initial_backoff: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_backoff: Option<Duration>,
}

/// The effective policy of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// What to do after a retryable failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Stop: dead-letter with this reason.
    GiveUp(String),
}

impl RetryPolicy {
    /// The defaults with a target's overrides applied.
    pub fn new(defaults: &DeliveryConfig, o: &RetryOverrides) -> Self {
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            max_age: o.max_age.unwrap_or(defaults.max_age),
            initial_backoff: o.initial_backoff.unwrap_or(defaults.initial_backoff),
            max_backoff: o.max_backoff.unwrap_or(defaults.max_backoff),
        }
    }

    /// Upper bound of the wait after the `attempt`-th failed attempt (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Decides after `attempts` attempts (all failed, the last one retryably), `age` after acceptance.
    pub fn decide(
        &self,
        attempts: u32,
        age: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Decision {
        if attempts >= self.max_attempts {
            return Decision::GiveUp(format!("gave up after {attempts} attempts (max_attempts)"));
        }
        let delay = match retry_after {
            Some(d) => d,
            None => {
                let ceiling = self.ceiling(attempts).as_millis() as u64;
                Duration::from_millis(rng.random_range(0..=ceiling))
            }
        };
        if age.saturating_add(delay) > self.max_age {
            return Decision::GiveUp(format!(
                "gave up after {attempts} attempts: next attempt would pass max_age {}",
                humantime::format_duration(self.max_age)
            ));
        }
        Decision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 185,
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let c: Vec<u64> = (1..=11).map(|a| p.ceiling(a).as_secs()).collect();
        assert_eq!(c, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.ceiling(1000).as_secs(), 300, "no overflow far out");
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..200)
            .map(|_| match p.decide(4, Duration::ZERO, None, &mut rng) {
                Decision::RetryAfter(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(delays.iter().any(|d| *d < Duration::from_secs(2)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(6)));
    }

    #[test]
    fn retry_after_wins() {
        let mut rng = StdRng::seed_from_u64(1);
        let d = policy().decide(1, Duration::ZERO, Some(Duration::from_secs(120)), &mut rng);
        assert_eq!(d, Decision::RetryAfter(Duration::from_secs(120)));
    }

    #[test]
    fn gives_up_on_attempts_and_on_age() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = RetryPolicy {
            max_attempts: 3,
            ..policy()
        };
        assert!(matches!(
            p.decide(2, Duration::ZERO, None, &mut rng),
            Decision::RetryAfter(_)
        ));
        let Decision::GiveUp(why) = p.decide(3, Duration::ZERO, None, &mut rng) else {
            panic!()
        };
        assert!(why.contains("max_attempts"), "{why}");
        let age = Duration::from_secs(24 * 3600 - 10);
        let Decision::GiveUp(why) =
            policy().decide(1, age, Some(Duration::from_secs(60)), &mut rng)
        else {
            panic!()
        };
        assert!(why.contains("max_age"), "{why}");
    }
}
