//! The evaluation context: `targetingKey` plus any attributes, as a flag's conditions read them.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::core::error::{Error, Result};

/// The longest `targetingKey` accepted.
const MAX_TARGETING_KEY_BYTES: usize = 1024;

/// The evaluation context: `targetingKey` plus any attributes.
#[derive(Debug, Clone, Default)]
pub struct EvaluationContext {
    pub targeting_key: Option<String>,
    pub attributes: Attributes,
}

/// A context's attributes, each name once, sorted by name: a context holds a handful, which a
/// sorted vector builds with one allocation and finds by binary search (a request builds one
/// and reads a few of them once).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Vec<(String, Value)>);

impl Attributes {
    /// The attributes of `members`, given in any order; `Err` names a member given twice.
    pub fn from_members(mut members: Vec<(String, Value)>) -> std::result::Result<Self, String> {
        members.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(pair[0].0.clone());
        }
        Ok(Attributes(members))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.position(name).ok().map(|at| &self.0[at].1)
    }

    /// Sets `name` to `value`; the value it replaced, if any.
    pub fn insert(&mut self, name: String, value: Value) -> Option<Value> {
        match self.position(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    /// Takes `name` out.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.position(name).ok().map(|at| self.0.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    fn position(&self, name: &str) -> std::result::Result<usize, usize> {
        self.0
            .binary_search_by(|(member, _)| member.as_str().cmp(name))
    }
}

impl From<Map<String, Value>> for Attributes {
    /// A JSON object's members (a map's names are unique and, in order, already sorted).
    fn from(members: Map<String, Value>) -> Self {
        let mut attributes: Vec<(String, Value)> = members.into_iter().collect();
        // `Map` keeps its members sorted unless serde_json's `preserve_order` is on.
        if !attributes.is_sorted_by(|(a, _), (b, _)| a < b) {
            attributes.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        }
        Attributes(attributes)
    }
}

impl EvaluationContext {
    /// Reads a context object; `field` names it in errors (e.g. `/context`).
    pub fn from_json(value: Value, field: &str) -> Result<Self> {
        let members = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err(Error::invalid(field, "the context must be a JSON object")),
        };
        Self::from_attributes(members.into(), field)
    }

    /// A context of the members of a JSON object read as a list (`Attributes::from_members`
    /// refused a name given twice); `field` names it in errors.
    pub fn from_attributes(mut attributes: Attributes, field: &str) -> Result<Self> {
        let targeting_key = match attributes.remove("targetingKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) if key.len() <= MAX_TARGETING_KEY_BYTES => Some(key),
            Some(Value::String(_)) => {
                return Err(Error::invalid(
                    format!("{field}/targetingKey"),
                    "targetingKey is at most 1024 bytes",
                ));
            }
            Some(_) => {
                return Err(Error::invalid(
                    format!("{field}/targetingKey"),
                    "targetingKey must be a string",
                ));
            }
        };
        Ok(EvaluationContext {
            targeting_key,
            attributes,
        })
    }

    /// An attribute as a condition reads it: borrowed, except the targeting key (kept as a
    /// string of its own), which is wrapped in a value only for a condition that names it.
    pub(super) fn attribute(&self, name: &str) -> Option<Cow<'_, Value>> {
        if name == "targetingKey" {
            return self
                .targeting_key
                .clone()
                .map(|key| Cow::Owned(Value::String(key)));
        }
        self.attributes.get(name).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attributes_are_found_whatever_order_they_came_in() {
        let members = vec![
            ("country".to_owned(), json!("de")),
            ("appVersion".to_owned(), json!("3.1.0")),
            ("email".to_owned(), json!("a@acme.com")),
        ];
        let mut attributes = Attributes::from_members(members).unwrap();
        assert_eq!(attributes.get("country"), Some(&json!("de")));
        assert_eq!(attributes.get("appVersion"), Some(&json!("3.1.0")));
        assert_eq!(attributes.get("missing"), None);
        assert_eq!(attributes.insert("beta".into(), json!(true)), None);
        assert_eq!(
            attributes.insert("country".into(), json!("fr")),
            Some(json!("de"))
        );
        let names: Vec<&str> = attributes.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["appVersion", "beta", "country", "email"]);
        assert_eq!(attributes.remove("beta"), Some(json!(true)));
        assert_eq!(attributes.iter().count(), 3);
    }

    #[test]
    fn a_name_given_twice_is_named() {
        let members = vec![
            ("a".to_owned(), json!(1)),
            ("b".to_owned(), json!(2)),
            ("a".to_owned(), json!(3)),
        ];
        assert_eq!(Attributes::from_members(members), Err("a".to_owned()));
    }

    #[test]
    fn a_context_read_from_a_list_or_an_object_is_the_same() {
        let object = json!({"targetingKey": "u1", "country": "de", "tier": 2});
        let from_object = EvaluationContext::from_json(object.clone(), "/context").unwrap();
        let Value::Object(map) = object else {
            unreachable!()
        };
        let listed = Attributes::from_members(map.into_iter().rev().collect()).unwrap();
        let from_list = EvaluationContext::from_attributes(listed, "/context").unwrap();
        assert_eq!(from_object.targeting_key.as_deref(), Some("u1"));
        assert_eq!(from_list.targeting_key, from_object.targeting_key);
        assert_eq!(from_list.attributes, from_object.attributes);
        assert_eq!(from_list.attributes.iter().count(), 2);
    }
}
