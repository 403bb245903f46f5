//! The path parameters several routes name, each described once.

use utoipa::PartialSchema;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};

macro_rules! path_parameter {
    ($(#[$doc:meta])* $name:ident, $parameter:literal, $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![
                    ParameterBuilder::from(Parameter::new($parameter))
                        .parameter_in(ParameterIn::Path)
                        .description(Some($description))
                        .schema(Some(String::schema()))
                        .build(),
                ]
            }
        }
    };
}

path_parameter!(
    ConfigIdPath,
    "id",
    "Config id: `[a-z0-9][a-z0-9._-]{0,127}`"
);
path_parameter!(FlagKeyPath, "key", "Flag key");
path_parameter!(ServicePath, "service", "Service name");
path_parameter!(InstanceIdPath, "id", "Instance id");
path_parameter!(SecretNamePath, "name", "Secret name");
path_parameter!(StrategyNamePath, "name", "Strategy name");
path_parameter!(DeploymentIdPath, "id", "Deployment id");
path_parameter!(WebhookIdPath, "id", "Webhook id");
path_parameter!(ChangeRequestIdPath, "id", "Change request id");
