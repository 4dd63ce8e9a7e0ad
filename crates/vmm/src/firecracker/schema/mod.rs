//! Test support: validates Firecracker API requests against the published
//! API description (`shared/reference/firecracker-api-v1.17.yaml`, Swagger
//! 2.0), so every body the client sends, and every request the stand-in
//! accepts, is one a real Firecracker would accept too (SPEC §13).
//!
//! Only what that document uses is implemented: path templates, the body
//! parameter of an operation, and the schema keywords in [`check`].

mod check;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::api::ApiRequest;
use check::Checker;

/// The API description in the shared reference directory, found from this
/// crate's manifest (`crates/vmm` → `../../../shared/reference`).
pub fn reference_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/firecracker-api-v1.17.yaml")
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the API description {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API description is not valid YAML")]
    Yaml(#[source] serde_yaml::Error),
    #[error("unresolvable $ref {0:?}")]
    Reference(String),
    #[error("malformed API description: {0}")]
    Malformed(String),
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    WrongType {
        expected: String,
        found: String,
    },
    MissingRequired,
    /// Not in the schema's `properties` (Firecracker rejects unknown fields).
    Unknown,
    NotInEnum {
        allowed: Vec<String>,
        found: String,
    },
    BelowMinimum {
        minimum: f64,
    },
    AboveMaximum {
        maximum: f64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Problem::MissingRequired => f.write_str("is required but missing"),
            Problem::Unknown => f.write_str("is not a field of this request"),
            Problem::NotInEnum { allowed, found } => {
                write!(f, "{found:?} is not one of {}", allowed.join(", "))
            }
            Problem::BelowMinimum { minimum } => write!(f, "is below the minimum {minimum}"),
            Problem::AboveMaximum { maximum } => write!(f, "is above the maximum {maximum}"),
        }
    }
}

/// Why a request is not one the API accepts.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    #[error("{method} {path}: no such path in the API")]
    UnknownPath { method: String, path: String },
    #[error("{method} {path}: the API has no {method} on {template}")]
    UnknownMethod {
        method: String,
        path: String,
        template: String,
    },
    #[error("{request}: the request needs a body")]
    MissingBody { request: String },
    #[error("{request}: the request takes no body")]
    UnexpectedBody { request: String },
    #[error("{request}: field `{field}` {problem}")]
    Field {
        request: String,
        field: String,
        problem: Problem,
    },
    #[error("{request}: {error}")]
    Schema { request: String, error: SchemaError },
}

impl Violation {
    /// The field the violation is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Violation::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A loaded API description.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    version: String,
    paths: Map<String, Value>,
    definitions: Map<String, Value>,
}

impl ApiSpec {
    /// Loads the description in the shared reference directory.
    pub fn reference() -> Result<ApiSpec, SchemaError> {
        ApiSpec::load(&reference_path())
    }

    pub fn load(path: &Path) -> Result<ApiSpec, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ApiSpec::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<ApiSpec, SchemaError> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(SchemaError::Yaml)?;
        let mut doc = to_json(yaml)?;
        let mut take = |key: &str| match doc.get_mut(key).map(Value::take) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(SchemaError::Malformed(format!("no `{key}` mapping"))),
        };
        let paths = take("paths")?;
        let definitions = take("definitions")?;
        let version = doc
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(ApiSpec {
            version,
            paths,
            definitions,
        })
    }

    /// `info.version` of the description.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn validate_request(&self, request: &ApiRequest) -> Result<(), Violation> {
        self.validate(request.method(), &request.path(), request.body().as_ref())
    }

    /// Checks that `method path` is an operation of the API and that `body`
    /// is what its body parameter's schema allows.
    pub fn validate(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), Violation> {
        let path = path.split('?').next().unwrap_or_default();
        let request = format!("{method} {path}");
        let (template, item) = self.find_path(path).ok_or_else(|| Violation::UnknownPath {
            method: method.to_owned(),
            path: path.to_owned(),
        })?;
        let operation =
            item.get(&method.to_ascii_lowercase())
                .ok_or_else(|| Violation::UnknownMethod {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    template: template.to_owned(),
                })?;
        let body_parameter = operation
            .get("parameters")
            .into_iter()
            .chain(item.get("parameters"))
            .filter_map(Value::as_array)
            .flatten()
            .find(|p| p.get("in").and_then(Value::as_str) == Some("body"));
        match (body_parameter, body) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(Violation::UnexpectedBody { request }),
            (Some(parameter), None) => {
                if parameter.get("required").and_then(Value::as_bool) == Some(true) {
                    Err(Violation::MissingBody { request })
                } else {
                    Ok(())
                }
            }
            (Some(parameter), Some(body)) => {
                let schema = parameter.get("schema").ok_or_else(|| Violation::Schema {
                    request: request.clone(),
                    error: SchemaError::Malformed(format!(
                        "body parameter of {template} has no schema"
                    )),
                })?;
                self.checker(&request).check(schema, body, "")
            }
        }
    }

    /// Checks `value` against `#/definitions/<name>` (used for answers,
    /// such as the stand-in's `InstanceInfo`).
    pub fn validate_definition(&self, name: &str, value: &Value) -> Result<(), Violation> {
        let reference = Value::String(format!("#/definitions/{name}"));
        let schema = Value::Object(Map::from_iter([("$ref".to_owned(), reference)]));
        self.checker(name).check(&schema, value, "")
    }

    fn checker<'a>(&'a self, request: &'a str) -> Checker<'a> {
        Checker {
            definitions: &self.definitions,
            request,
        }
    }

    /// The path template matching `path`; with several, the one with the
    /// most literal segments (`/balloon/statistics` over a `{param}`).
    fn find_path(&self, path: &str) -> Option<(&str, &Map<String, Value>)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.paths
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template.as_str(), item.as_object()?))
            })
            .max_by_key(|(literal, ..)| *literal)
            .map(|(_, template, item)| (template, item))
    }
}

/// YAML to JSON. Mapping keys become strings: the description's response
/// codes (`200:`) are YAML integers.
fn to_json(value: serde_yaml::Value) -> Result<Value, SchemaError> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| SchemaError::Malformed(format!("number {n} has no JSON form")))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(SchemaError::Malformed(format!("mapping key {other:?}")));
                    }
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            return Err(SchemaError::Malformed(format!("YAML tag {}", tagged.tag)));
        }
    })
}
