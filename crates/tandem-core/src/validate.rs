//! MLflow's input rules (`mlflow.utils.validation`), so that bad input gets the same error
//! from tandem as from an MLflow server, before anything is written.

use crate::error::{MlflowError, Result};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_MODEL_REGISTRY_TAG_KEY_LENGTH: usize = 250;
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_REGISTERED_MODEL_ALIAS_LENGTH: usize = 255;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
pub const MAX_RESULTS_SEARCH_RUNS: i64 = 50_000;
pub const MAX_RESULTS_SEARCH_EXPERIMENTS: i64 = 50_000;
pub const MAX_RESULTS_REGISTRY: i64 = 1_000;
pub const MAX_RESULTS_MODEL_VERSIONS: i64 = 200_000;

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// `^[/\w.\- :]*$` and a normalized relative path: the rule for metric, param and tag keys.
pub fn key_name(what: &str, path: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '/' | '_' | '.' | '-' | ' ' | ':'));
    if !ok_chars {
        return Err(MlflowError::invalid(format!(
            "Invalid value \"{name}\" for parameter '{path}' supplied: Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    if !is_normalized_relative_path(name) {
        return Err(MlflowError::invalid(format!(
            "Invalid value \"{name}\" for parameter '{path}' supplied: Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{}'",
            normalize(name)
        )));
    }
    if chars(name) > MAX_ENTITY_KEY_LENGTH {
        return Err(too_long(&format!("{what} key"), MAX_ENTITY_KEY_LENGTH));
    }
    Ok(())
}

/// posixpath.normpath(name) == name, and it does not escape upwards or start at the root.
fn is_normalized_relative_path(name: &str) -> bool {
    let norm = normalize(name);
    norm == name && norm != "." && !norm.starts_with("..") && !norm.starts_with('/')
}

fn normalize(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

pub fn too_long(what: &str, limit: usize) -> MlflowError {
    MlflowError::invalid(format!(
        "'{what}' exceeds the maximum length of {limit} characters"
    ))
}

pub fn length(what: &str, limit: usize, value: &str) -> Result<()> {
    if chars(value) > limit {
        Err(too_long(what, limit))
    } else {
        Ok(())
    }
}

pub fn param(key: &str, value: &str) -> Result<()> {
    key_name("Param", "key", key)?;
    length("Param value", MAX_PARAM_VAL_LENGTH, value)
}

pub fn tag(key: &str, value: &str) -> Result<()> {
    key_name("Tag", "key", key)?;
    length("Tag value", MAX_TAG_VAL_LENGTH, value)
}

pub fn metric(key: &str) -> Result<()> {
    key_name("Metric", "name", key)
}

pub fn experiment_tag(key: &str, value: &str) -> Result<()> {
    key_name("Tag", "key", key)?;
    length("Tag key", MAX_EXPERIMENT_TAG_KEY_LENGTH, key)?;
    length("Tag value", MAX_EXPERIMENT_TAG_VAL_LENGTH, value)
}

pub fn registry_tag(key: &str, value: &str) -> Result<()> {
    key_name("Tag", "key", key)?;
    length("key", MAX_MODEL_REGISTRY_TAG_KEY_LENGTH, key)?;
    length("value", MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH, value)
}

pub fn experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(format!(
            "Invalid experiment name: '{name}'"
        )));
    }
    length("Experiment name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// Run IDs: `^[a-zA-Z0-9][\w\-]{0,255}$`.
pub fn run_id(run_id: &str) -> Result<()> {
    let mut cs = run_id.chars();
    let ok = cs.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && run_id.len() <= 256
        && cs.all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Invalid value \"{run_id}\" for parameter 'run_id' supplied"
        )))
    }
}

pub fn model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(
            "Registered model name cannot be empty.",
        ));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(MlflowError::invalid(format!(
            "Invalid name: '{name}'. Registered model name cannot contain '/' or NUL characters."
        )));
    }
    length("Registered model name", 500, name)
}

/// Aliases: `^[\w\-]*$`, not `latest`, not a version reference like `v3`.
pub fn alias(alias: &str) -> Result<()> {
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(MlflowError::invalid(format!("Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-).")));
    }
    let lower = alias.to_ascii_lowercase();
    if lower == "latest" {
        return Err(MlflowError::invalid(format!(
            "'{alias}' alias name (case insensitive) is reserved."
        )));
    }
    if lower.len() > 1 && lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit()) {
        return Err(MlflowError::invalid(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    length(
        "Registered model alias name",
        MAX_REGISTERED_MODEL_ALIAS_LENGTH,
        alias,
    )
}

/// A relative artifact path that stays inside its root: no `..`, no absolute paths, no
/// backslashes or NULs (MLflow's `validate_path_is_safe`).
pub fn artifact_path(path: &str) -> Result<()> {
    let bad = path.contains('\0')
        || path.contains('\\')
        || path.starts_with('/')
        || path.contains("://")
        || path.split('/').any(|p| p == ".." || p == ".")
        || path.contains("%2e%2e")
        || path.contains("%2E%2E");
    if bad {
        Err(MlflowError::invalid("Invalid path"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_follow_mlflow() {
        for ok in ["acc", "a/b", "a.b-c d:e", "ü"] {
            metric(ok).unwrap();
        }
        for bad in ["", "a//b", "../a", "/a", "a/", ".", "a\\b", "a$b", "a/./b"] {
            assert!(metric(bad).is_err(), "{bad:?}");
        }
        assert!(param(&"k".repeat(251), "v").is_err());
        assert!(param("k", &"v".repeat(6001)).is_err());
        param("k", &"v".repeat(6000)).unwrap();
    }

    #[test]
    fn aliases_and_paths() {
        alias("champion").unwrap();
        assert!(alias("latest").is_err());
        assert!(alias("v1").is_err());
        assert!(alias("a b").is_err());
        artifact_path("a/b/c.txt").unwrap();
        assert!(artifact_path("../etc/passwd").is_err());
        assert!(artifact_path("/etc").is_err());
        assert!(artifact_path("a/../../b").is_err());
    }
}
