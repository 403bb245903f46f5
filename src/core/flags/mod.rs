//! Feature flags: the model, its checks and compiled form, evaluation, and `FlagService`.

pub mod compile;
pub mod context;
pub mod evaluate;
pub mod model;
pub mod service;
mod writes;

pub use evaluate::{
    Evaluation, EvaluationContext, EvaluationErrorCode, EvaluationFailure, Reason, Resolution,
};
pub use model::{FlagDefinition, FlagHead, FlagSet, FlagType, FlagVersion, NewFlagVersion};
pub use service::FlagService;
