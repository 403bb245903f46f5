//! The reference grammar `vault:` and `awssm:` share, `PATH[#FIELD][?NAME=VALUE]`, and how a
//! `#field` is picked from a JSON object.

use serde_json::{Map, Value};

use super::resolve::SecretFailure;

/// A reference split into its parts, borrowed from the reference text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator<'a> {
    /// Everything before `#` or `?`; never empty.
    pub path: &'a str,
    /// After `#`, up to `?`.
    pub field: Option<&'a str>,
    /// The one `?name=value` parameter, last.
    pub param: Option<(&'a str, &'a str)>,
}

impl<'a> Locator<'a> {
    pub fn parse(reference: &'a str) -> Result<Self, String> {
        let (rest, param) = match reference.split_once('?') {
            Some((rest, query)) => {
                let (name, value) = query
                    .split_once('=')
                    .filter(|(name, value)| !name.is_empty() && !value.is_empty())
                    .ok_or_else(|| "a parameter must read ?name=value".to_owned())?;
                if value.contains(['?', '&', '=', '#']) {
                    return Err(
                        "one ?name=value parameter at most, after the #field if there is one"
                            .to_owned(),
                    );
                }
                (rest, Some((name, value)))
            }
            None => (reference, None),
        };
        let (path, field) = match rest.split_once('#') {
            Some((_, "")) => return Err("an empty #field".to_owned()),
            Some((_, field)) if field.contains('#') => {
                return Err("one #field at most".to_owned());
            }
            Some((path, field)) => (path, Some(field)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err("nothing names the secret before the #field or ?parameter".to_owned());
        }
        Ok(Locator { path, field, param })
    }
}

/// `field` of a secret's object: a string as is, any other JSON value as its JSON text.
pub fn pick_field(object: &Map<String, Value>, field: &str) -> Result<String, SecretFailure> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(SecretFailure::Unresolved(format!(
            "the secret has no field '{field}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_field_and_parameter() {
        let parsed = Locator::parse("secret/app/db#password?version=2").unwrap();
        assert_eq!(
            parsed,
            Locator {
                path: "secret/app/db",
                field: Some("password"),
                param: Some(("version", "2")),
            }
        );
        let bare = Locator::parse("arn:aws:secretsmanager:eu-west-1:1:secret:db-AbC").unwrap();
        assert_eq!(
            (bare.path, bare.field, bare.param),
            (
                "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbC",
                None,
                None
            )
        );
    }

    #[test]
    fn refuses_what_the_grammar_does_not_allow() {
        for reference in [
            "#password",
            "?version=2",
            "db#",
            "db#a#b",
            "db?version",
            "db?=2",
            "db?version=2#password",
            "db?version=2&stage=x",
        ] {
            assert!(Locator::parse(reference).is_err(), "{reference}");
        }
    }
}
