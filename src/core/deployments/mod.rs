//! Staged deployments. Built so far: deployment strategies — named, versioned documents with
//! validation and the step plan a deployment walks — and the read-only built-ins. The
//! deployments themselves (released versions per environment, the engine, gates, rollback) are
//! not built yet; see docs/deployments.md.

pub mod strategies;
pub mod strategy;

pub use strategies::StrategyService;
