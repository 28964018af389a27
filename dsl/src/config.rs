//! The YAML configuration a process declares (`config "x.yaml" { ... }`): per-category time
//! limits, departments, contacts. Loaded with line/column errors.

/// A loaded configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// Path as named in the process file.
    pub file: String,
    /// The YAML text (for rendering diagnostics that point into it).
    pub source: String,
    /// The parsed values.
    pub values: serde_json::Value,
}
