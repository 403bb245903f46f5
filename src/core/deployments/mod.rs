//! Staged deployments. Built so far: deployment strategies — named, versioned documents with
//! validation and the step plan a deployment walks — and the read-only built-ins; which
//! instances a step targets and the gate's verdict on what they report (`gate`). The
//! deployments themselves (released versions per environment, the engine, rollback) are not
//! built yet; see docs/deployments.md.

pub mod gate;
pub mod strategies;
pub mod strategy;

pub use strategies::StrategyService;
