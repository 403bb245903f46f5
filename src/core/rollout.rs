//! Deterministic bucketing for canaries, A/B tests and flag rollouts (DESIGN.md, "Bucketing").

use sha2::{Digest, Sha256};

use super::error::{Error, Result};

const TWO_POW_64: u128 = 1 << 64;

/// `u64` from the first 8 bytes, big-endian, of `SHA-256(ns ‖ 0x00 ‖ key)`.
///
/// ```
/// use summit_config::core::rollout::{BasisPoints, bucket, canary_namespace};
///
/// // The README's example: a 10% canary on config "checkout".
/// let ten_percent = BasisPoints::from_percent(10.0, "trafficPercent").unwrap();
/// let ns = canary_namespace("checkout");
/// assert!(ten_percent.includes(bucket(&ns, "user-8")));
/// assert!(!ten_percent.includes(bucket(&ns, "user-1")));
/// assert_eq!(bucket("canary:payments", "user-1"), 17920278214730237633);
/// ```
pub fn bucket(namespace: &str, key: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(namespace.as_bytes());
    hasher.update([0u8]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The bucket an explicit `assignmentValue` in [0, 1) stands for: `value × 2^64`.
pub fn bucket_from_value(value: f64) -> Result<u64> {
    if !(0.0..1.0).contains(&value) {
        return Err(Error::invalid(
            "assignmentValue",
            "assignmentValue must be a number in [0, 1)",
        ));
    }
    // `as` saturates; values just below 1.0 map to u64::MAX at worst.
    Ok((value * TWO_POW_64 as f64) as u64)
}

/// A traffic share in basis points (1/100 of a percent), 0..=10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BasisPoints(u32);

impl BasisPoints {
    /// Parses a percentage in 0..=100 with at most two decimals; `field` names it in errors.
    pub fn from_percent(percent: f64, field: &str) -> Result<Self> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(Error::invalid(
                field,
                "percentage must be between 0 and 100",
            ));
        }
        let scaled = percent * 100.0;
        let rounded = scaled.round();
        // Only the representation error of a two-decimal value passes.
        if (scaled - rounded).abs() > 1e-9 {
            return Err(Error::invalid(
                field,
                "percentage may have at most two decimals",
            ));
        }
        Ok(BasisPoints(rounded as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// `bucket < (bp × 2^64) / 10000`, in integers. Raising the share never removes a bucket.
    pub fn includes(self, bucket: u64) -> bool {
        let threshold = (u128::from(self.0) * TWO_POW_64) / 10_000;
        u128::from(bucket) < threshold
    }
}

/// Index of the variant a bucket falls into: `slot = (bucket × total) >> 64`, first cumulative > slot.
pub fn choose_variant(bucket: u64, weights: &[u64]) -> Option<usize> {
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let slot = (u128::from(bucket) * total) >> 64;
    let mut cumulative = 0u128;
    weights.iter().position(|w| {
        cumulative += u128::from(*w);
        cumulative > slot
    })
}

pub fn canary_namespace(config_id: &str) -> String {
    format!("canary:{config_id}")
}

pub fn ab_namespace(config_id: &str, test_name: &str) -> String {
    format!("ab:{config_id}:{test_name}")
}

/// A flag's split or percentage rollout: `rule` is the rule's id, or `default` for the
/// environment's own rollout.
pub fn flag_namespace(flag_key: &str, rule: &str) -> String {
    format!("flag:{flag_key}:{rule}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_matches_published_golden_vectors() {
        // docs/bucketing.md; computed independently with Python's hashlib.
        for (ns, key, expected) in super::super::rollout_vectors::GOLDEN {
            assert_eq!(bucket(ns, key), *expected, "bucket({ns:?}, {key:?})");
        }
    }

    #[test]
    fn raising_the_percentage_never_removes_a_key() {
        let steps = [0.0, 0.01, 1.0, 5.5, 10.0, 33.33, 50.0, 99.99, 100.0];
        for i in 0..5_000 {
            let b = bucket("canary:svc", &format!("user-{i}"));
            let mut was_in = false;
            for p in steps {
                let now_in = BasisPoints::from_percent(p, "p").unwrap().includes(b);
                assert!(
                    !was_in || now_in,
                    "key {i} left the canary when raising to {p}"
                );
                was_in = now_in;
            }
        }
    }

    #[test]
    fn share_of_100000_keys_is_within_one_point_of_the_percentage() {
        for percent in [10.0, 50.0] {
            let bp = BasisPoints::from_percent(percent, "p").unwrap();
            let inside = (0..100_000)
                .filter(|i| bp.includes(bucket("canary:share", &format!("key-{i}"))))
                .count();
            let share = inside as f64 / 1_000.0;
            assert!((share - percent).abs() <= 1.0, "{percent}% gave {share}%");
        }
    }

    #[test]
    fn zero_and_hundred_percent_are_exact() {
        let none = BasisPoints::from_percent(0.0, "p").unwrap();
        let all = BasisPoints::from_percent(100.0, "p").unwrap();
        for b in [0, 1, u64::MAX / 2, u64::MAX] {
            assert!(!none.includes(b));
            assert!(all.includes(b));
        }
    }

    #[test]
    fn percentages_reject_more_than_two_decimals_and_out_of_range() {
        assert!(BasisPoints::from_percent(12.345, "p").is_err());
        assert!(BasisPoints::from_percent(10.000000001, "p").is_err());
        assert_eq!(BasisPoints::from_percent(33.33, "p").unwrap().get(), 3333);
        assert_eq!(BasisPoints::from_percent(0.07, "p").unwrap().get(), 7);
        assert!(BasisPoints::from_percent(-1.0, "p").is_err());
        assert!(BasisPoints::from_percent(100.01, "p").is_err());
        assert!(BasisPoints::from_percent(f64::NAN, "p").is_err());
        assert_eq!(BasisPoints::from_percent(12.34, "p").unwrap().get(), 1234);
    }

    #[test]
    fn variant_choice_follows_cumulative_weights() {
        let weights = [1, 1, 2];
        assert_eq!(choose_variant(0, &weights), Some(0));
        assert_eq!(choose_variant(u64::MAX / 4 - 1, &weights), Some(0));
        assert_eq!(choose_variant(u64::MAX / 4 + 1, &weights), Some(1));
        assert_eq!(choose_variant(u64::MAX / 2 + 1, &weights), Some(2));
        assert_eq!(choose_variant(u64::MAX, &weights), Some(2));
        assert_eq!(choose_variant(7, &[]), None);
    }

    #[test]
    fn assignment_value_stands_for_bucket_over_two_pow_64() {
        assert_eq!(bucket_from_value(0.0).unwrap(), 0);
        assert_eq!(bucket_from_value(0.5).unwrap(), 1 << 63);
        assert!(bucket_from_value(1.0).is_err());
        assert!(bucket_from_value(-0.1).is_err());
    }
}
