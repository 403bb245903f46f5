//! The directory format `apply`, `export` and `import` share (docs/cli.md, "Directory format"):
//! `configs/<id>.yaml` holds a config's document and, optionally, its `schema`;
//! `flags/<key>.yaml` a flag's definition. `.json` and `.yml` files are read too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::client::{Failure, Result};
use crate::core::flags::FlagDefinition;
use crate::core::ids::{ConfigId, FlagKey};
use crate::core::model::ConfigDocument;

pub const CONFIGS: &str = "configs";
pub const FLAGS: &str = "flags";
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One config as a file holds it: the document and, when the file names one, its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub document: ConfigDocument,
    pub schema: Option<Value>,
}

/// What a directory declares. A kind whose folder is absent is not managed (`--prune` leaves
/// it alone).
#[derive(Debug, Default)]
pub struct Bundle {
    pub configs: Option<BTreeMap<String, ConfigEntry>>,
    pub flags: Option<BTreeMap<String, FlagDefinition>>,
}

impl Bundle {
    pub fn read(dir: &Path) -> Result<Bundle> {
        if !dir.is_dir() {
            return Err(Failure::usage(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        let configs = read_kind(&dir.join(CONFIGS), |name, value| {
            ConfigId::parse(name).map_err(|e| e.to_string())?;
            config_entry(value)
        })?;
        let flags = read_kind(&dir.join(FLAGS), |name, value| {
            FlagKey::parse(name).map_err(|e| e.to_string())?;
            typed::<FlagDefinition>(value)
        })?;
        if configs.is_none() && flags.is_none() {
            return Err(Failure::usage(format!(
                "{}: neither a {CONFIGS}/ nor a {FLAGS}/ folder (see docs/cli.md)",
                dir.display()
            )));
        }
        Ok(Bundle { configs, flags })
    }
}

/// Every `NAME.{yaml,yml,json}` of a folder, parsed by `parse(NAME, document)`; `None` when the
/// folder does not exist. Hidden files are skipped; any other file is an error, so a typo
/// (`checkout.yaml.bak`) is not silently ignored.
fn read_kind<T>(
    folder: &Path,
    parse: impl Fn(&str, Value) -> std::result::Result<T, String>,
) -> Result<Option<BTreeMap<String, T>>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::usage(format!("{}: {e}", folder.display()))),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Failure::usage(format!("{}: {e}", folder.display())))?;
        files.push(entry.path());
    }
    files.sort();
    let mut found = BTreeMap::new();
    for path in files {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file_name.starts_with('.') {
            continue;
        }
        let Some((name, _)) = file_name
            .rsplit_once('.')
            .filter(|(_, extension)| EXTENSIONS.contains(extension))
        else {
            return Err(Failure::usage(format!(
                "{}: expected NAME.yaml, NAME.yml or NAME.json",
                path.display()
            )));
        };
        let document = super::read_document(&path)?;
        let item = parse(name, document)
            .map_err(|message| Failure::usage(format!("{}: {message}", path.display())))?;
        if found.insert(name.to_owned(), item).is_some() {
            return Err(Failure::usage(format!(
                "{}: {name} is declared by two files",
                folder.display()
            )));
        }
    }
    Ok(Some(found))
}

/// A config file: the document's members and an optional `schema`.
fn config_entry(value: Value) -> std::result::Result<ConfigEntry, String> {
    let Value::Object(mut members) = value else {
        return Err("a config file must be an object with `config` (and `overrides`, `canary`, `abTest`, `schema`)".into());
    };
    let schema = members.remove("schema").filter(|s| !s.is_null());
    let document = typed::<ConfigDocument>(Value::Object(members))?;
    Ok(ConfigEntry { document, schema })
}

/// `value` as a `T`, an error naming the JSON pointer of the member at fault.
pub fn typed<T: DeserializeOwned>(value: Value) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let pointer = if path == "." {
            String::new()
        } else {
            format!("/{}", path.replace('.', "/"))
        };
        format!("{pointer}: {}", e.into_inner())
            .trim_start_matches(": ")
            .to_owned()
    })
}

/// A config file's content: the document's members, then `schema` when there is one.
pub fn config_file(entry: &ConfigEntry) -> Value {
    let mut members = match serde_json::to_value(&entry.document) {
        Ok(Value::Object(members)) => members,
        _ => Map::new(),
    };
    if let Some(schema) = &entry.schema {
        members.insert("schema".into(), schema.clone());
    }
    Value::Object(members)
}

/// A flag version as the server returns it, without the version's own members: the definition.
pub fn flag_definition(version: &Value) -> std::result::Result<FlagDefinition, String> {
    let mut definition = version.clone();
    if let Some(members) = definition.as_object_mut() {
        for meta in [
            "key",
            "version",
            "checksum",
            "createdAt",
            "metadata",
            "rollbackOf",
        ] {
            members.remove(meta);
        }
    }
    typed(definition)
}

/// A config version as the server returns it: its document.
pub fn config_document(version: &Value) -> std::result::Result<ConfigDocument, String> {
    typed(super::configs::document(version))
}

/// Every `{"$secret": "provider:reference"}` text in a document.
pub fn secret_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            if let (1, Some(Value::String(text))) = (members.len(), members.get("$secret")) {
                found.push(text.clone());
                return;
            }
            members.values().for_each(|v| secret_references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| secret_references(v, found)),
        _ => {}
    }
}

/// Writes `value` as YAML to `path`, creating its folder; answers the bytes written.
pub fn write_yaml(path: &Path, value: &Value) -> Result<Vec<u8>> {
    let text = serde_yaml_ng::to_string(value).map_err(Failure::other)?;
    write_file(path, text.into_bytes())
}

pub fn write_file(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::other(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, &bytes).map_err(|e| Failure::other(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_member_is_named_by_its_pointer() {
        let error = config_entry(json!({"config": {}, "canary": {"percent": 3}})).unwrap_err();
        assert!(error.starts_with("/canary"), "{error}");
        let error = config_entry(json!({"overrides": {}})).unwrap_err();
        assert!(error.contains("config"), "{error}");
    }

    #[test]
    fn a_schema_travels_beside_the_document() {
        let entry =
            config_entry(json!({"config": {"a": 1}, "schema": {"type": "object"}})).unwrap();
        assert_eq!(entry.schema, Some(json!({"type": "object"})));
        assert_eq!(
            config_file(&entry),
            json!({"config": {"a": 1}, "schema": {"type": "object"}})
        );
    }

    #[test]
    fn secret_references_are_found_at_any_depth() {
        let mut found = Vec::new();
        let document = json!({"a": [{"$secret": "store:db"}], "b": {"c": {"$secret": "env:X"}},
            "d": {"$secret": "x", "other": 1}});
        secret_references(&document, &mut found);
        assert_eq!(found, vec!["store:db", "env:X"]);
    }
}
