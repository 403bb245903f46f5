//! The engine's tick: every active deployment takes the move its state, its bakes and its
//! instances' reports call for.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::DeploymentService;
use crate::core::deployments::gate::Observation;
use crate::core::deployments::model::Deployment;
use crate::core::deployments::transitions::{Instances, abandon, advance};
use crate::core::effective::valid_checksums;
use crate::core::error::{Error, Result};
use crate::core::ids::ConfigId;
use crate::core::model::ConfigVersion;
use crate::core::ports::{DeploymentQuery, Documents};
use crate::core::registry::model::Instance;

impl DeploymentService {
    /// One pass of the engine: every active deployment takes the move its state, its bakes and
    /// its instances' reports call for. Each write expects the `seq` it read, so a move is made
    /// once even when two replicas tick (a lease handed over) or an operator acts meanwhile.
    pub async fn tick(&self, at: DateTime<Utc>) -> Result<usize> {
        let active = self
            .store
            .deployments(&DeploymentQuery::every_active())
            .await?;
        if active.is_empty() {
            return Ok(0);
        }
        // Heartbeats (acks, health) are written by every replica: read them from the database.
        let registered = self.store.instances(None).await?;
        let by_id: Registered = registered
            .iter()
            .filter_map(|i| {
                Some((
                    (i.environment.as_ref()?.as_str(), i.instance_id.as_str()),
                    i,
                ))
            })
            .collect();
        let mut moved = 0;
        for deployment in active {
            match self.tick_one(&deployment, &by_id, at).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(Error::ConcurrentModification { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, deployment = %deployment.id, "deployment step failed");
                }
            }
        }
        Ok(moved)
    }

    async fn tick_one(
        &self,
        deployment: &Deployment,
        registered: &Registered<'_>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let config = &deployment.config_id;
        let live = matches!(self.store.configs().head(config).await?, Some(h) if !h.deleted);
        let step = if !live {
            abandon(deployment, "the config was deleted")
        } else {
            let deployed = self.version(config, deployment.version).await?;
            let previous = self.version(config, deployment.previous_version).await?;
            let view = Observed::new(deployment, registered, &deployed, &previous, at)?;
            match advance(deployment, at, &view) {
                Some(step) => step,
                None => return Ok(false),
            }
        };
        self.apply(deployment, step, "deployment-engine", None)
            .await?;
        Ok(true)
    }
}

/// Registered instances by (environment, instance id), read once per engine tick.
type Registered<'a> = HashMap<(&'a str, &'a str), &'a Instance>;

/// The engine's view of a deployment's instances: by id, in its environment, with the
/// checksums that count as having applied the deployed or the previous version.
struct Observed<'a> {
    registered: &'a Registered<'a>,
    environment: &'a str,
    config: &'a ConfigId,
    deployed: HashSet<String>,
    previous: HashSet<String>,
}

impl<'a> Observed<'a> {
    fn new(
        deployment: &'a Deployment,
        registered: &'a Registered<'a>,
        deployed: &ConfigVersion,
        previous: &ConfigVersion,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let environment = deployment.environment.as_str();
        let checksums = |version: &ConfigVersion| -> Result<HashSet<String>> {
            let mut all: HashSet<String> = valid_checksums(version, environment, at)?
                .into_iter()
                .map(str::to_owned)
                .collect();
            all.insert(version.checksum.clone());
            Ok(all)
        };
        Ok(Observed {
            registered,
            environment,
            config: &deployment.config_id,
            deployed: checksums(deployed)?,
            previous: checksums(previous)?,
        })
    }
}

impl Instances for Observed<'_> {
    fn observe(&self, targets: &[String], previous: bool) -> Vec<Observation> {
        let accepted = if previous {
            &self.previous
        } else {
            &self.deployed
        };
        targets
            .iter()
            .map(
                |id| match self.registered.get(&(self.environment, id.as_str())) {
                    Some(instance) => Observation {
                        acked: instance
                            .applied
                            .get(self.config)
                            .is_some_and(|checksum| accepted.contains(checksum)),
                        healthy: instance.healthy(),
                        error_rate: instance.metrics.and_then(|m| m.error_rate),
                        latency_p99_ms: instance.metrics.and_then(|m| m.latency_p99_ms),
                    },
                    // Gone from the registry: it reports nothing.
                    None => Observation {
                        acked: false,
                        healthy: false,
                        error_rate: None,
                        latency_p99_ms: None,
                    },
                },
            )
            .collect()
    }
}
