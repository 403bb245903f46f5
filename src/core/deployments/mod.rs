//! Staged deployments: a config version taken to an environment's instances step by step by a
//! strategy (named, versioned documents with validation and the step plan a deployment walks,
//! plus read-only built-ins), each step judged by the strategy's gate on what the registry's
//! instances report, promoted when healthy and rolled back when not. In an environment that
//! requires deployments the released version is served, except to the instances a deployment
//! targets (`serving`). See docs/deployments.md.

pub mod gate;
pub mod model;
pub mod service;
pub mod serving;
pub mod strategies;
pub mod strategy;
pub mod transitions;

pub use service::{DeploymentService, NewDeployment};
pub use serving::Serving;
pub use strategies::StrategyService;
