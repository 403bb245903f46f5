//! Deployment strategies: how a version reaches an environment's instances (the steps and their
//! bakes) and the health gate each step must pass. Named, versioned documents
//! (`/api/v1/deployment-strategies/{name}`), plus read-only built-ins.

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::ids::StrategyName;
use crate::core::versioned::{Document, DocumentKind, Head, Version};

/// The longest bake or interval a strategy may ask for: a week.
const MAX_SECS: u64 = 7 * 86_400;
const MAX_STEPS: usize = 100;
const MAX_DESCRIPTION: usize = 1024;

/// How the targeted share grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DeploymentRollout)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Rollout {
    /// Every targeted instance at once. (A struct variant, so unknown fields are refused.)
    Direct {},
    /// Explicit steps: each a share of the instances and how long it bakes.
    #[serde(rename_all = "camelCase")]
    Canary { steps: Vec<CanaryStep> },
    /// `stepPercent` more every `intervalSecs` until 100 %.
    #[serde(rename_all = "camelCase")]
    Linear {
        step_percent: u32,
        interval_secs: u64,
    },
    /// From `initialPercent`, multiplied by `growthFactor` every `intervalSecs` until 100 %.
    #[serde(rename_all = "camelCase")]
    Exponential {
        #[serde(default = "one_percent")]
        initial_percent: u32,
        growth_factor: f64,
        interval_secs: u64,
    },
    /// `batchSize` instances more at a time, each batch baking `bakeSecs`.
    #[serde(rename_all = "camelCase")]
    Rolling { batch_size: u32, bake_secs: u64 },
    /// A preview group (`previewPercent`) bakes; then every instance switches at once, by
    /// itself after `promoteAfterSecs` when `autoPromote`, else on a `promote`.
    #[serde(rename_all = "camelCase")]
    BlueGreen {
        #[serde(default = "ten_percent")]
        preview_percent: u32,
        #[serde(default)]
        auto_promote: bool,
        #[serde(default)]
        promote_after_secs: Option<u64>,
    },
}

fn one_percent() -> u32 {
    1
}

fn ten_percent() -> u32 {
    10
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    pub percent: u32,
    pub bake_secs: u64,
}

/// What a step's instances must show before the next step (or completion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// The share of targeted instances that must report the new checksum (through the
    /// registry's heartbeat `applied` map) within `applyTimeoutSecs`.
    #[serde(default = "all")]
    pub min_ack_ratio: f64,
    #[serde(default = "sixty")]
    pub apply_timeout_secs: u64,
    /// The largest share of targeted instances that may be unhealthy.
    #[serde(default)]
    pub max_unhealthy_ratio: f64,
    /// The largest error rate (0–1) instances may report in their heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// The largest p99 latency (ms) instances may report in their heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p99_ms: Option<f64>,
    /// Consecutive failed evaluations before the deployment rolls back.
    #[serde(default = "one")]
    pub failure_limit: u32,
    /// What a step without health data does: wait (`pause`) or give up (`rollback`); it never
    /// passes silently.
    #[serde(default)]
    pub on_no_data: NoData,
}

fn all() -> f64 {
    1.0
}

fn sixty() -> u64 {
    60
}

fn one() -> u32 {
    1
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            min_ack_ratio: 1.0,
            apply_timeout_secs: 60,
            max_unhealthy_ratio: 0.0,
            max_error_rate: None,
            max_latency_p99_ms: None,
            failure_limit: 1,
            on_no_data: NoData::Pause,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    #[default]
    Pause,
    Rollback,
}

/// A deployment strategy: the rollout, the final bake at 100 %, and the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Strategy {
    pub rollout: Rollout,
    #[serde(default)]
    pub final_bake_secs: u64,
    #[serde(default)]
    pub gate: Gate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Document for Strategy {
    type Id = StrategyName;
    const KIND: DocumentKind = DocumentKind::Strategy;
}

pub type StrategyVersion = Version<Strategy>;
pub type StrategyHead = Head<Strategy>;

/// How many instances a step targets: a share of them, or (rolling) a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Percent(u32),
    Instances(u32),
    All,
}

/// One step of a plan: what it targets and how long it bakes once its gate passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub share: Share,
    pub bake_secs: u64,
    /// The step waits for a `promote` (a blue-green switch without `autoPromote`).
    pub needs_promote: bool,
    /// The step is taken again, `share` more instances each time, until every instance is
    /// targeted (rolling).
    pub repeats: bool,
}

fn check_secs(value: u64, field: &str) -> Result<()> {
    if value > MAX_SECS {
        return Err(Error::invalid(
            field,
            format!("{field} must be at most {MAX_SECS} (a week)"),
        ));
    }
    Ok(())
}

fn check_ratio(value: f64, field: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid(field, "a ratio between 0 and 1"));
    }
    Ok(())
}

fn check_percent(value: u32, field: &str) -> Result<()> {
    if !(1..=100).contains(&value) {
        return Err(Error::invalid(field, "a percentage between 1 and 100"));
    }
    Ok(())
}

impl Strategy {
    /// Every rule a stored strategy keeps; errors name the field as a JSON pointer.
    pub fn check(&self) -> Result<()> {
        match &self.rollout {
            Rollout::Direct {} => {}
            Rollout::Canary { steps } => {
                if steps.is_empty() || steps.len() > MAX_STEPS {
                    return Err(Error::invalid(
                        "/rollout/steps",
                        format!("a canary has 1 to {MAX_STEPS} steps"),
                    ));
                }
                let mut last = 0;
                for (i, step) in steps.iter().enumerate() {
                    check_percent(step.percent, &format!("/rollout/steps/{i}/percent"))?;
                    if step.percent == 100 {
                        return Err(Error::invalid(
                            format!("/rollout/steps/{i}/percent"),
                            "steps are below 100 %: every instance is the last step, baking \
                             finalBakeSecs",
                        ));
                    }
                    if step.percent <= last {
                        return Err(Error::invalid(
                            format!("/rollout/steps/{i}/percent"),
                            "step percentages must grow",
                        ));
                    }
                    last = step.percent;
                    check_secs(step.bake_secs, &format!("/rollout/steps/{i}/bakeSecs"))?;
                }
            }
            Rollout::Linear {
                step_percent,
                interval_secs,
            } => {
                check_percent(*step_percent, "/rollout/stepPercent")?;
                check_secs(*interval_secs, "/rollout/intervalSecs")?;
            }
            Rollout::Exponential {
                initial_percent,
                growth_factor,
                interval_secs,
            } => {
                check_percent(*initial_percent, "/rollout/initialPercent")?;
                if !(growth_factor.is_finite() && (1.1..=10.0).contains(growth_factor)) {
                    return Err(Error::invalid(
                        "/rollout/growthFactor",
                        "growthFactor must be between 1.1 and 10",
                    ));
                }
                check_secs(*interval_secs, "/rollout/intervalSecs")?;
            }
            Rollout::Rolling {
                batch_size,
                bake_secs,
            } => {
                if *batch_size == 0 || *batch_size > 10_000 {
                    return Err(Error::invalid(
                        "/rollout/batchSize",
                        "batchSize must be between 1 and 10000",
                    ));
                }
                check_secs(*bake_secs, "/rollout/bakeSecs")?;
            }
            Rollout::BlueGreen {
                preview_percent,
                auto_promote,
                promote_after_secs,
            } => {
                check_percent(*preview_percent, "/rollout/previewPercent")?;
                if *preview_percent == 100 {
                    return Err(Error::invalid(
                        "/rollout/previewPercent",
                        "the preview group is a part of the instances (below 100)",
                    ));
                }
                match (auto_promote, promote_after_secs) {
                    (true, None) => {
                        return Err(Error::invalid(
                            "/rollout/promoteAfterSecs",
                            "autoPromote needs promoteAfterSecs",
                        ));
                    }
                    // Without autoPromote the preview waits for `promote`: a time would be
                    // ignored, and the one who set it expects it to count.
                    (false, Some(_)) => {
                        return Err(Error::invalid(
                            "/rollout/promoteAfterSecs",
                            "promoteAfterSecs needs autoPromote (without it, the preview waits \
                             for promote)",
                        ));
                    }
                    (true, Some(secs)) => check_secs(*secs, "/rollout/promoteAfterSecs")?,
                    (false, None) => {}
                }
            }
        }
        check_secs(self.final_bake_secs, "/finalBakeSecs")?;
        let gate = &self.gate;
        check_ratio(gate.min_ack_ratio, "/gate/minAckRatio")?;
        if gate.min_ack_ratio == 0.0 {
            return Err(Error::invalid(
                "/gate/minAckRatio",
                "minAckRatio must be above 0: a step is judged by instances that applied it",
            ));
        }
        check_ratio(gate.max_unhealthy_ratio, "/gate/maxUnhealthyRatio")?;
        if let Some(rate) = gate.max_error_rate {
            check_ratio(rate, "/gate/maxErrorRate")?;
        }
        if let Some(ms) = gate.max_latency_p99_ms
            && !(ms.is_finite() && ms > 0.0)
        {
            return Err(Error::invalid(
                "/gate/maxLatencyP99Ms",
                "a latency in milliseconds above 0",
            ));
        }
        if gate.apply_timeout_secs == 0 {
            return Err(Error::invalid(
                "/gate/applyTimeoutSecs",
                "applyTimeoutSecs must be at least 1",
            ));
        }
        check_secs(gate.apply_timeout_secs, "/gate/applyTimeoutSecs")?;
        if !(1..=100).contains(&gate.failure_limit) {
            return Err(Error::invalid(
                "/gate/failureLimit",
                "failureLimit must be between 1 and 100",
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION)
        {
            return Err(Error::invalid(
                "/description",
                format!("description must be at most {MAX_DESCRIPTION} bytes"),
            ));
        }
        Ok(())
    }

    /// The steps a deployment walks, the last one always every instance.
    pub fn plan(&self) -> Vec<Step> {
        let step = |share, bake_secs| Step {
            share,
            bake_secs,
            needs_promote: false,
            repeats: false,
        };
        let mut steps = match &self.rollout {
            Rollout::Direct {} => Vec::new(),
            Rollout::Canary { steps } => steps
                .iter()
                .filter(|s| s.percent < 100)
                .map(|s| step(Share::Percent(s.percent), s.bake_secs))
                .collect(),
            Rollout::Linear {
                step_percent,
                interval_secs,
            } => (1..)
                .map(|n| n * step_percent)
                .take_while(|percent| *percent < 100)
                .map(|percent| step(Share::Percent(percent), *interval_secs))
                .collect(),
            Rollout::Exponential {
                initial_percent,
                growth_factor,
                interval_secs,
            } => {
                // initialPercent × growthFactorⁿ, rounded up, below 100 (a factor of at least
                // 1.1 reaches 100 from 1 % in under 50 steps).
                let mut steps: Vec<Step> = Vec::new();
                for n in 0..MAX_STEPS as i32 {
                    let percent = (f64::from(*initial_percent) * growth_factor.powi(n)).ceil();
                    if percent >= 100.0 {
                        break;
                    }
                    let share = Share::Percent(percent as u32);
                    if steps.last().is_none_or(|s| s.share != share) {
                        steps.push(step(share, *interval_secs));
                    }
                }
                steps
            }
            Rollout::Rolling {
                batch_size,
                bake_secs,
            } => vec![Step {
                repeats: true,
                ..step(Share::Instances(*batch_size), *bake_secs)
            }],
            Rollout::BlueGreen {
                preview_percent,
                auto_promote,
                promote_after_secs,
            } => vec![Step {
                needs_promote: !auto_promote,
                ..step(
                    Share::Percent(*preview_percent),
                    promote_after_secs.unwrap_or(0),
                )
            }],
        };
        steps.push(step(Share::All, self.final_bake_secs));
        steps
    }
}

/// The built-in strategies, by name: read-only, listed beside the stored ones.
pub fn built_ins() -> Vec<(StrategyName, Strategy)> {
    let named = |name: &str, rollout: Rollout, final_bake_secs: u64, description: &str| {
        (
            StrategyName::parse(name).expect("a valid built-in name"),
            Strategy {
                rollout,
                final_bake_secs,
                gate: Gate::default(),
                description: Some(description.to_owned()),
            },
        )
    };
    vec![
        named(
            "direct",
            Rollout::Direct {},
            0,
            "every instance at once (what a write does without deployments)",
        ),
        named(
            "canary",
            Rollout::Canary {
                steps: vec![
                    CanaryStep {
                        percent: 10,
                        bake_secs: 300,
                    },
                    CanaryStep {
                        percent: 30,
                        bake_secs: 300,
                    },
                    CanaryStep {
                        percent: 50,
                        bake_secs: 300,
                    },
                ],
            },
            300,
            "10 → 30 → 50 → 100 %, five minutes each",
        ),
        named(
            "linear",
            Rollout::Linear {
                step_percent: 20,
                interval_secs: 300,
            },
            300,
            "20 % more every five minutes",
        ),
        named(
            "exponential",
            Rollout::Exponential {
                initial_percent: 1,
                growth_factor: 2.0,
                interval_secs: 300,
            },
            300,
            "1, 2, 4 … 64 %, then 100 %, five minutes each",
        ),
        named(
            "rolling",
            Rollout::Rolling {
                batch_size: 1,
                bake_secs: 60,
            },
            60,
            "one instance at a time, a minute each",
        ),
        named(
            "blue-green",
            Rollout::BlueGreen {
                preview_percent: 10,
                auto_promote: false,
                promote_after_secs: None,
            },
            300,
            "a 10 % preview group, then every instance on `promote`",
        ),
    ]
}

#[cfg(test)]
#[path = "strategy_tests.rs"]
mod tests;
