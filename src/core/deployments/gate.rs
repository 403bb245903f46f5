//! What a deployment step targets and whether its gate passes: pure functions of the step, the
//! instances and what they reported, so the engine (not built yet) only gathers observations
//! and records the verdict — with the measured values, pass or fail.

use serde::{Deserialize, Serialize};

use super::strategy::{Gate, Share};
use crate::core::rollout::{BasisPoints, bucket};

/// The bucketing namespace of a deployment (docs/bucketing.md): `deploy:{deployment id}`.
pub fn namespace(deployment_id: &str) -> String {
    format!("deploy:{deployment_id}")
}

/// The instances a step targets, in their order of inclusion. A share of a percentage takes
/// those whose bucket lies below it, so raising the share never drops one (sticky); a rolling
/// step takes the first `count × batches` by bucket, the same order every time.
pub fn targets<'a>(
    deployment_id: &str,
    instances: &'a [String],
    share: Share,
    batches: u32,
) -> Vec<&'a str> {
    let namespace = namespace(deployment_id);
    let mut by_bucket: Vec<(u64, &str)> = instances
        .iter()
        .map(|id| (bucket(&namespace, id), id.as_str()))
        .collect();
    by_bucket.sort();
    match share {
        Share::All => by_bucket.into_iter().map(|(_, id)| id).collect(),
        Share::Instances(count) => by_bucket
            .into_iter()
            .take((count as usize).saturating_mul(batches.max(1) as usize))
            .map(|(_, id)| id)
            .collect(),
        Share::Percent(percent) => {
            let share = BasisPoints::from_percent(f64::from(percent.min(100)), "percent")
                .expect("a whole percentage up to 100");
            let mut inside: Vec<&str> = by_bucket
                .iter()
                .filter(|(bucket, _)| share.includes(*bucket))
                .map(|(_, id)| *id)
                .collect();
            // A small fleet's step still targets someone (the lowest bucket, which every
            // larger share includes too), or it could never hear from anyone.
            if inside.is_empty()
                && percent > 0
                && let Some((_, first)) = by_bucket.first()
            {
                inside.push(first);
            }
            inside
        }
    }
}

/// What one targeted instance shows, from the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// It reported the deployed version's checksum.
    pub acked: bool,
    pub healthy: bool,
    pub error_rate: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// The values a verdict was reached on; recorded in the deployment's log either way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    pub targeted: u32,
    pub acked: u32,
    pub ack_ratio: f64,
    pub unhealthy: u32,
    pub unhealthy_ratio: f64,
    /// The mean over the instances that reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The highest p99 any instance reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(Measured),
    /// Instances are still applying the version, within `applyTimeoutSecs`.
    Wait(Measured),
    /// Nothing to judge by: no targeted instance, or a limit on values nobody reported. The
    /// strategy's `onNoData` decides; it is never a pass.
    NoData(Measured, String),
    Fail(Measured, String),
}

/// The verdict of `gate` on a step's `observations`, `elapsed_secs` after the step began. Health,
/// error rate and latency are judged over the instances that applied the version (the others
/// still run the previous one); a step whose applied instances fail is failed at once, one that
/// is still waiting for instances to apply, or for those that applied to report the metrics a
/// limit is set on (they forget what they measured before applying), waits until
/// `applyTimeoutSecs`.
pub fn evaluate(gate: &Gate, observations: &[Observation], elapsed_secs: u64) -> Verdict {
    let targeted = observations.len() as u32;
    let applied: Vec<&Observation> = observations.iter().filter(|o| o.acked).collect();
    let acked = applied.len() as u32;
    let unhealthy = applied.iter().filter(|o| !o.healthy).count() as u32;
    let ratio = |n: u32, of: u32| {
        if of == 0 {
            0.0
        } else {
            f64::from(n) / f64::from(of)
        }
    };
    let errors: Vec<f64> = applied.iter().filter_map(|o| o.error_rate).collect();
    let measured = Measured {
        targeted,
        acked,
        ack_ratio: ratio(acked, targeted),
        unhealthy,
        unhealthy_ratio: ratio(unhealthy, acked),
        error_rate: (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64),
        latency_p99_ms: applied
            .iter()
            .filter_map(|o| o.latency_p99_ms)
            .reduce(f64::max),
    };
    if targeted == 0 {
        return Verdict::NoData(measured, "no instance is targeted".into());
    }
    if measured.unhealthy_ratio > gate.max_unhealthy_ratio {
        let reason = format!(
            "{unhealthy} of {acked} instances that applied the version are unhealthy \
             ({:.3} > maxUnhealthyRatio {})",
            measured.unhealthy_ratio, gate.max_unhealthy_ratio
        );
        return Verdict::Fail(measured, reason);
    }
    if let (Some(limit), Some(rate)) = (gate.max_error_rate, measured.error_rate)
        && rate > limit
    {
        let reason = format!("error rate {rate:.4} > maxErrorRate {limit}");
        return Verdict::Fail(measured, reason);
    }
    if let (Some(limit), Some(p99)) = (gate.max_latency_p99_ms, measured.latency_p99_ms)
        && p99 > limit
    {
        let reason = format!("p99 latency {p99} ms > maxLatencyP99Ms {limit}");
        return Verdict::Fail(measured, reason);
    }
    if measured.ack_ratio < gate.min_ack_ratio || acked == 0 {
        if elapsed_secs < gate.apply_timeout_secs {
            return Verdict::Wait(measured);
        }
        let reason = format!(
            "{acked} of {targeted} instances applied the version within {} s (minAckRatio {})",
            gate.apply_timeout_secs, gate.min_ack_ratio
        );
        return Verdict::Fail(measured, reason);
    }
    let missing = if gate.max_error_rate.is_some() && measured.error_rate.is_none() {
        Some("an error rate")
    } else if gate.max_latency_p99_ms.is_some() && measured.latency_p99_ms.is_none() {
        Some("a p99 latency")
    } else {
        None
    };
    match missing {
        Some(_) if elapsed_secs < gate.apply_timeout_secs => Verdict::Wait(measured),
        Some(what) => {
            let reason = format!(
                "no instance that applied reported {what} within {} s",
                gate.apply_timeout_secs
            );
            Verdict::NoData(measured, reason)
        }
        None => Verdict::Pass(measured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(acked: bool, healthy: bool, error_rate: Option<f64>) -> Observation {
        Observation {
            acked,
            healthy,
            error_rate,
            latency_p99_ms: None,
        }
    }

    #[test]
    fn targets_are_sticky_as_the_share_grows_and_rolling_takes_batches_in_one_order() {
        let instances: Vec<String> = (0..1000).map(|i| format!("i-{i}")).collect();
        let ten = targets("d-1", &instances, Share::Percent(10), 1);
        let thirty = targets("d-1", &instances, Share::Percent(30), 1);
        assert!((60..=140).contains(&ten.len()), "{}", ten.len());
        assert!(
            ten.iter().all(|id| thirty.contains(id)),
            "raising the share drops nobody"
        );
        assert_eq!(targets("d-1", &instances, Share::All, 1).len(), 1000);
        let first = targets("d-1", &instances, Share::Instances(3), 1);
        let second = targets("d-1", &instances, Share::Instances(3), 2);
        assert_eq!(first.len(), 3);
        assert_eq!(&second[..3], &first[..]);
        assert_eq!(second.len(), 6);
        // A small fleet's first step still targets one instance.
        let few: Vec<String> = (0..5).map(|i| format!("i-{i}")).collect();
        assert_eq!(targets("d-1", &few, Share::Percent(1), 1).len(), 1);
        // Another deployment picks other instances.
        assert_ne!(targets("d-2", &instances, Share::Percent(10), 1), ten);
    }

    #[test]
    fn a_gate_passes_waits_fails_or_has_no_data_and_says_what_it_measured() {
        let gate = Gate {
            min_ack_ratio: 0.5,
            apply_timeout_secs: 30,
            max_unhealthy_ratio: 0.25,
            max_error_rate: Some(0.05),
            ..Gate::default()
        };
        let healthy = [seen(true, true, Some(0.01)), seen(true, true, Some(0.03))];
        assert!(
            matches!(evaluate(&gate, &healthy, 1), Verdict::Pass(m) if m.error_rate == Some(0.02))
        );
        let applying = [seen(false, true, Some(0.0)), seen(false, true, Some(0.0))];
        assert!(matches!(evaluate(&gate, &applying, 10), Verdict::Wait(_)));
        match evaluate(&gate, &applying, 30) {
            Verdict::Fail(measured, reason) => {
                assert_eq!(measured.acked, 0);
                assert!(reason.contains("0 of 2"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let sick = [seen(true, false, Some(0.0)), seen(true, true, Some(0.0))];
        match evaluate(&gate, &sick, 1) {
            Verdict::Fail(measured, reason) => {
                assert_eq!(measured.unhealthy_ratio, 0.5);
                assert!(reason.contains("maxUnhealthyRatio"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let erring = [seen(true, true, Some(0.2)), seen(true, true, Some(0.0))];
        assert!(
            matches!(evaluate(&gate, &erring, 1), Verdict::Fail(m, _) if m.error_rate == Some(0.1))
        );
        // Only instances that applied are judged: old-version data passes nothing. Those that
        // applied are waited for until the apply timeout, then there is no data.
        let old_only = [seen(true, true, None), seen(false, true, Some(0.0))];
        assert!(matches!(evaluate(&gate, &old_only, 1), Verdict::Wait(..)));
        assert!(matches!(
            evaluate(&gate, &old_only, 30),
            Verdict::NoData(..)
        ));
        let silent = [seen(true, true, None)];
        assert!(
            matches!(evaluate(&gate, &silent, 30), Verdict::NoData(..)),
            "no data never passes"
        );
        assert!(matches!(evaluate(&gate, &[], 1), Verdict::NoData(..)));
    }
}
