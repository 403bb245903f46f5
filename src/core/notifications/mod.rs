//! Change notifications out: webhooks (signed, retried, in order per subject) and a Kafka sink,
//! both fed from the change log, which is the outbox (see `ports::notifications`).

mod delivery;
pub mod dispatch;
pub mod kafka;
pub mod matching;
pub mod model;
pub mod service;
pub mod signing;
pub mod targets;

pub use dispatch::{DispatchSettings, Dispatcher};
pub use service::NotificationService;
