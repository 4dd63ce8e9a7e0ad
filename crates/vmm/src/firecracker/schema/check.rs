//! The recursive check of one JSON value against one Swagger 2.0 schema:
//! `$ref`, `type` (and integer `format`), `enum`, `minimum`/`maximum`,
//! `required`, `properties`, `additionalProperties` and `items`.
//!
//! Unknown object fields are errors unless the schema allows them with
//! `additionalProperties`: Firecracker deserializes every body with
//! `deny_unknown_fields`, so a field the description does not list is a
//! field Firecracker refuses. A schema with no `properties` at all is
//! free-form (MMDS contents) and accepts any field.

use serde_json::{Map, Value};

use super::{Problem, SchemaError, Violation};

pub(super) struct Checker<'a> {
    pub definitions: &'a Map<String, Value>,
    pub request: &'a str,
}

impl Checker<'_> {
    pub fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), Violation> {
        let schema = self.resolve(schema)?;
        let Value::Object(schema) = schema else {
            return Err(self.schema_error(SchemaError::Malformed(format!(
                "schema at {at} is not an object"
            ))));
        };
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            self.check_type(expected, schema.get("format"), value, at)?;
        }
        if let Some(Value::Array(allowed)) = schema.get("enum") {
            if !allowed.contains(value) {
                return Err(self.field(
                    at,
                    Problem::NotInEnum {
                        allowed: allowed.iter().map(render).collect(),
                        found: render(value),
                    },
                ));
            }
        }
        if let Some(number) = value.as_f64() {
            let bound = |key| schema.get(key).and_then(Value::as_f64);
            if let Some(minimum) = bound("minimum").filter(|min| number < *min) {
                return Err(self.field(at, Problem::BelowMinimum { minimum }));
            }
            if let Some(maximum) = bound("maximum").filter(|max| number > *max) {
                return Err(self.field(at, Problem::AboveMaximum { maximum }));
            }
        }
        match value {
            Value::Object(object) => self.check_object(schema, object, at),
            Value::Array(items) => match schema.get("items") {
                Some(item_schema) => items.iter().enumerate().try_for_each(|(i, item)| {
                    self.check(item_schema, item, &format!("{}[{i}]", label(at)))
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        object: &Map<String, Value>,
        at: &str,
    ) -> Result<(), Violation> {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    return Err(self.field(&join(at, name), Problem::MissingRequired));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, field_value) in object {
            let field_at = join(at, name);
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(field_schema), _) => self.check(field_schema, field_value, &field_at)?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(Value::Bool(false))) => {
                    return Err(self.field(&field_at, Problem::Unknown));
                }
                (None, Some(extra_schema)) => self.check(extra_schema, field_value, &field_at)?,
                (None, None) if properties.is_some() => {
                    return Err(self.field(&field_at, Problem::Unknown));
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    fn check_type(
        &self,
        expected: &str,
        format: Option<&Value>,
        value: &Value,
        at: &str,
    ) -> Result<(), Violation> {
        let ok = match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "number" => value.is_number(),
            "integer" => match format.and_then(Value::as_str) {
                Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                Some("int64") => value.is_i64(),
                _ => value.is_i64() || value.is_u64(),
            },
            other => {
                return Err(self.schema_error(SchemaError::Malformed(format!(
                    "unknown type {other:?} at {at}"
                ))));
            }
        };
        if ok {
            Ok(())
        } else {
            let expected = match format.and_then(Value::as_str) {
                Some(f) if expected == "integer" => format!("integer ({f})"),
                _ => expected.to_owned(),
            };
            Err(self.field(
                at,
                Problem::WrongType {
                    expected,
                    found: kind(value).to_owned(),
                },
            ))
        }
    }

    /// Follows `$ref`s (only local `#/definitions/...` ones exist in the
    /// API description); a chain longer than the number of definitions is a
    /// cycle.
    fn resolve<'s>(&'s self, mut schema: &'s Value) -> Result<&'s Value, Violation> {
        for _ in 0..=self.definitions.len() {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return Ok(schema);
            };
            let name = reference
                .strip_prefix("#/definitions/")
                .ok_or_else(|| self.schema_error(SchemaError::Reference(reference.to_owned())))?;
            schema = self
                .definitions
                .get(name)
                .ok_or_else(|| self.schema_error(SchemaError::Reference(reference.to_owned())))?;
        }
        Err(self.schema_error(SchemaError::Malformed("cyclic $ref".into())))
    }

    fn field(&self, at: &str, problem: Problem) -> Violation {
        Violation::Field {
            request: self.request.to_owned(),
            field: label(at).to_owned(),
            problem,
        }
    }

    fn schema_error(&self, error: SchemaError) -> Violation {
        Violation::Schema {
            request: self.request.to_owned(),
            error,
        }
    }
}

/// The body itself has no field name.
fn label(at: &str) -> &str {
    if at.is_empty() { "(body)" } else { at }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
