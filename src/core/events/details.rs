//! What a change did to its document (the previous version, the patch, the instances it
//! reaches), as events and audit records carry it.

use serde::{Deserialize, Serialize};

/// What a change did to its document, for events and audit records: "who changed what from
/// what to what" answerable from either alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDetails {
    /// The version live before the change (absent when there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    /// The RFC 6902 patch from the previous version's document to the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub changes: Option<Patch>,
    /// The patch was larger than `MAX_PATCH_BYTES` and left out (read it with `/diff`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changes_elided: bool,
    /// Registered instances that apply the config in a touched environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_instances: Option<AffectedInstances>,
}

/// The largest patch an event or audit record carries, serialized.
pub const MAX_PATCH_BYTES: usize = 16 * 1024;

/// How many affected instances an event names (it always counts them all).
pub const MAX_NAMED_INSTANCES: usize = 20;

/// Instances a change reaches: how many, and the first `MAX_NAMED_INSTANCES` as
/// `service/instance`, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffectedInstances {
    pub count: u64,
    pub instances: Vec<String>,
}

impl ChangeDetails {
    /// The details of a new version of a document: the version it follows (if any live) and the
    /// patch from that version's document, elided when larger than `MAX_PATCH_BYTES`.
    pub fn of_version<D: Serialize>(
        previous: Option<(u64, &D)>,
        next: &serde_json::Value,
    ) -> crate::core::error::Result<ChangeDetails> {
        let before = match previous {
            Some((_, doc)) => {
                serde_json::to_value(doc).map_err(crate::core::error::Error::internal)?
            }
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        let patch = Patch::of(&json_patch::diff(&before, next))?;
        let elided = patch.text().len() > MAX_PATCH_BYTES;
        Ok(ChangeDetails {
            previous_version: previous.map(|(version, _)| version),
            changes: (!elided).then_some(patch),
            changes_elided: elided,
            affected_instances: None,
        })
    }

    /// The details of a delete: the version that was live.
    pub fn of_delete(previous: u64) -> ChangeDetails {
        ChangeDetails {
            previous_version: Some(previous).filter(|v| *v > 0),
            ..ChangeDetails::default()
        }
    }

    /// Adds the fields that are set to a JSON object being written (events, audit records).
    pub fn write_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        if let Some(previous) = self.previous_version {
            map.serialize_entry("previousVersion", &previous)?;
        }
        if let Some(changes) = &self.changes {
            map.serialize_entry("changes", changes)?;
        }
        if self.changes_elided {
            map.serialize_entry("changesElided", &true)?;
        }
        if let Some(affected) = &self.affected_instances {
            map.serialize_entry("affectedInstances", affected)?;
        }
        Ok(())
    }
}

/// An RFC 6902 patch as the JSON text it was serialized to, once: events, audit records and the
/// change log copy the text instead of building, cloning and serializing a tree each time.
#[derive(Debug, Clone)]
pub struct Patch(Box<serde_json::value::RawValue>);

impl Patch {
    pub fn of(patch: &json_patch::Patch) -> crate::core::error::Result<Patch> {
        serde_json::value::to_raw_value(patch)
            .map(Patch)
            .map_err(crate::core::error::Error::internal)
    }

    /// The patch's JSON text (compact).
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The patch as a JSON tree.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.text()).expect("a patch is JSON")
    }
}

/// Two patches are equal when they say the same, however their text is spaced or ordered.
impl PartialEq for Patch {
    fn eq(&self, other: &Patch) -> bool {
        self.text() == other.text() || self.to_value() == other.to_value()
    }
}

impl Serialize for Patch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Read straight from JSON text (a stored change or audit record), keeping the text.
impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(Patch)
    }
}
