//! Which version an instance is served, in memory for the read path. In an environment that
//! requires deployments (`SUMMIT_DEPLOYMENT_ENVIRONMENTS`), a config serves its released
//! version, except to the instances its active deployment targets, which get the deployed one.
//! Elsewhere (and for a config with no release yet) the latest version is served, as before.
//!
//! Kept current by whoever changes what it reflects: the write path before a new version is
//! committed, the deployment service after each transition, and (on replicas) the change-log
//! follower for changes made elsewhere.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use super::model::Release;
use crate::core::configs::now;
use crate::core::error::Result;
use crate::core::events::{ChangeEvent, kind};
use crate::core::ids::{ConfigId, Environment};
use crate::core::model::ConfigVersion;
use crate::core::ports::{DeploymentQuery, Documents, Store};

/// The most active deployments of one config (one per environment).
const MAX_ACTIVE_PER_CONFIG: u32 = 1000;

struct ActiveServing {
    version: Arc<ConfigVersion>,
    targets: HashSet<String>,
}

#[derive(Default)]
struct EnvServing {
    released: Option<Arc<ConfigVersion>>,
    deployment: Option<ActiveServing>,
}

/// One config's serving state, by environment (only environments with a release or an active
/// deployment).
type ConfigServing = BTreeMap<String, EnvServing>;

pub struct Serving {
    store: Arc<dyn Store>,
    environments: Vec<Environment>,
    configs: RwLock<HashMap<ConfigId, Arc<ConfigServing>>>,
    /// One refresh at a time, so an older read never overwrites a newer one.
    refreshing: tokio::sync::Mutex<()>,
    /// The highest revision of a deployment change reflected here: an instance's watch stream
    /// waits for it before it judges such a change (the change log may show it first).
    applied: tokio::sync::watch::Sender<u64>,
}

/// How long an instance's stream waits for a deployment change to be reflected here before it
/// judges the change anyway (a failed refresh is retried by the next change).
const APPLIED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Serving {
    pub fn new(store: Arc<dyn Store>, environments: Vec<Environment>) -> Self {
        Serving {
            store,
            environments,
            configs: RwLock::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            applied: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Every deployment change up to `revision` is reflected in what is served.
    pub fn mark_applied(&self, revision: u64) {
        self.applied.send_if_modified(|applied| {
            let newer = revision > *applied;
            if newer {
                *applied = revision;
            }
            newer
        });
    }

    /// Waits (boundedly) until the deployment change at `revision` is reflected here.
    pub async fn applied_up_to(&self, revision: u64) {
        let mut applied = self.applied.subscribe();
        let _ = tokio::time::timeout(APPLIED_WAIT, applied.wait_for(|a| *a >= revision)).await;
    }

    /// The environments that require deployments.
    pub fn environments(&self) -> &[Environment] {
        &self.environments
    }

    pub fn requires_deployments(&self, environment: &str) -> bool {
        self.environments.iter().any(|e| e.as_str() == environment)
    }

    /// The version `instance` in `environment` is served, given the config's latest.
    pub fn served(
        &self,
        latest: &Arc<ConfigVersion>,
        environment: Option<&str>,
        instance: Option<&str>,
    ) -> Arc<ConfigVersion> {
        let Some(environment) = environment.filter(|e| self.requires_deployments(e)) else {
            return latest.clone();
        };
        let configs = self.configs.read();
        let Some(env) = configs
            .get(&latest.id)
            .and_then(|config| config.get(environment))
        else {
            return latest.clone();
        };
        if let (Some(deployment), Some(instance)) = (&env.deployment, instance)
            && deployment.targets.contains(instance)
        {
            return deployment.version.clone();
        }
        env.released.clone().unwrap_or_else(|| latest.clone())
    }

    /// The versions of `config` served instead of its latest somewhere: its releases and its
    /// active deployments' versions (none where deployments are not required).
    pub fn held_back(&self, config: &ConfigId) -> Vec<Arc<ConfigVersion>> {
        let configs = self.configs.read();
        let Some(envs) = configs.get(config) else {
            return Vec::new();
        };
        envs.values()
            .flat_map(|env| {
                let deployed = env.deployment.as_ref().map(|d| &d.version);
                env.released.iter().chain(deployed).cloned()
            })
            .collect()
    }

    /// The released version of the config in `environment`: the latest when it has none yet.
    pub fn released(&self, latest: &Arc<ConfigVersion>, environment: &str) -> u64 {
        self.served(latest, Some(environment), None).version
    }

    /// Before a new version of `config` is committed (`live` being its current version, 0 when
    /// none): the version live now stays released in every environment requiring deployments
    /// that has no release yet; a config (re)created from nothing starts afresh.
    pub async fn before_write(&self, config: &ConfigId, live: u64) -> Result<()> {
        if self.environments.is_empty() {
            return Ok(());
        }
        if live == 0 {
            self.store.forget_releases(config).await?;
        } else {
            let known = self.configs.read().get(config).is_some_and(|envs| {
                self.environments
                    .iter()
                    .all(|e| envs.get(e.as_str()).is_some_and(|s| s.released.is_some()))
            });
            if known {
                return Ok(());
            }
            let at = now();
            let releases = self.environments.iter().map(|environment| Release {
                config_id: config.clone(),
                environment: environment.clone(),
                version: live,
                deployment_id: None,
                released_at: at,
            });
            self.store.keep_releases(releases.collect()).await?;
        }
        self.refresh(config).await
    }

    /// Applies a change committed anywhere to what is served.
    pub async fn apply_change(&self, event: &ChangeEvent) -> Result<()> {
        if self.environments.is_empty() {
            return Ok(());
        }
        if event.kind.is_deployment()
            || event.kind == kind::CONFIG_UPDATED
            || event.kind == kind::CONFIG_DELETED
        {
            self.refresh(&ConfigId::parse(&event.config_id)?).await?;
        }
        self.mark_applied(event.revision);
        Ok(())
    }

    /// Loads every config's releases and active deployments.
    pub async fn load(&self) -> Result<()> {
        // Read before loading: every deployment change up to it is then reflected, so streams
        // replaying older changes (after a restart) do not wait for a mark no change will set.
        let revision = self.store.latest_revision().await?;
        if self.environments.is_empty() {
            self.mark_applied(revision);
            return Ok(());
        }
        let mut configs: Vec<ConfigId> = self
            .store
            .releases(None)
            .await?
            .into_iter()
            .map(|r| r.config_id)
            .collect();
        let active = self
            .store
            .deployments(&DeploymentQuery::every_active())
            .await?;
        configs.extend(active.into_iter().map(|d| d.config_id));
        configs.sort();
        configs.dedup();
        for config in &configs {
            self.refresh(config).await?;
        }
        self.mark_applied(revision);
        Ok(())
    }

    /// Reads the config's releases and active deployments again.
    pub async fn refresh(&self, config: &ConfigId) -> Result<()> {
        let _one = self.refreshing.lock().await;
        // Deployments before releases: a deployment completing between the two reads is then
        // seen released, never with its targets back on the old release.
        let active = self
            .store
            .deployments(&DeploymentQuery {
                config_id: Some(config.clone()),
                active_only: true,
                limit: MAX_ACTIVE_PER_CONFIG,
                ..DeploymentQuery::default()
            })
            .await?;
        let releases: Vec<Release> = self.store.releases(Some(config)).await?;
        let previous = self.configs.read().get(config).cloned();
        let mut loaded: HashMap<u64, Arc<ConfigVersion>> = HashMap::new();
        if let Some(previous) = &previous {
            for env in previous.values() {
                for version in env
                    .released
                    .iter()
                    .chain(env.deployment.as_ref().map(|d| &d.version))
                {
                    loaded.insert(version.version, version.clone());
                }
            }
        }
        let mut serving = ConfigServing::new();
        for environment in &self.environments {
            let release = releases.iter().find(|r| &r.environment == environment);
            let deployment = active
                .iter()
                .find(|d| &d.environment == environment && d.state.serves_targets());
            let mut env = EnvServing::default();
            if let Some(release) = release {
                env.released = self.version(config, release.version, &mut loaded).await?;
            }
            if let Some(deployment) = deployment.filter(|d| !d.targets.is_empty())
                && let Some(version) = self
                    .version(config, deployment.version, &mut loaded)
                    .await?
            {
                env.deployment = Some(ActiveServing {
                    version,
                    targets: deployment.targets.iter().cloned().collect(),
                });
            }
            if env.released.is_some() || env.deployment.is_some() {
                serving.insert(environment.to_string(), env);
            }
        }
        let mut configs = self.configs.write();
        if serving.is_empty() {
            configs.remove(config);
        } else {
            configs.insert(config.clone(), Arc::new(serving));
        }
        Ok(())
    }

    async fn version(
        &self,
        config: &ConfigId,
        number: u64,
        loaded: &mut HashMap<u64, Arc<ConfigVersion>>,
    ) -> Result<Option<Arc<ConfigVersion>>> {
        if let Some(version) = loaded.get(&number) {
            return Ok(Some(version.clone()));
        }
        let version = self
            .store
            .configs()
            .version(config, number)
            .await?
            .map(Arc::new);
        if let Some(version) = &version {
            loaded.insert(number, version.clone());
        }
        Ok(version)
    }
}
