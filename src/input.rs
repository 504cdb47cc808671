//! Reading JSON documents (snapshots, events) with refusals that point at
//! the offending record rather than only at a byte offset.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Write as _;

use crate::engine::Refusal;

/// Input that is refused: the command exits 2 and nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("not valid JSON: {0}")]
    Syntax(serde_json::Error),
    #[error("{location}: {message}")]
    Shape { location: String, message: String },
    #[error(transparent)]
    Invalid(#[from] Refusal),
    #[error("{0}")]
    Other(String),
}

/// Parses `bytes` as a `T`; on failure names the record by its path and id.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => Ok(value),
        Err(e) if e.is_syntax() || e.is_eof() => Err(InputError::Syntax(e)),
        Err(e) => Err(locate::<T>(bytes, e)),
    }
}

/// The fast parse failed on shape: parse again, slowly, to learn where.
fn locate<T: DeserializeOwned>(bytes: &[u8], fallback: serde_json::Error) -> InputError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut de) else {
        return InputError::Shape {
            location: "document".into(),
            message: fallback.to_string(),
        };
    };
    let tree: Option<Value> = serde_json::from_slice(bytes).ok();
    InputError::Shape {
        location: describe_path(err.path(), tree.as_ref()),
        message: err.inner().to_string(),
    }
}

/// `orders[3] (id "SO-4").lines[0] (id "SO-4-1").status`
fn describe_path(path: &serde_path_to_error::Path, tree: Option<&Value>) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut node = tree;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                node = node.and_then(|n| n.get(index));
                let _ = write!(out, "[{index}]");
                if let Some((key, id)) = node.and_then(record_id) {
                    let _ = write!(out, " ({key} \"{id}\")");
                }
            }
            Segment::Map { key } => {
                node = node.and_then(|n| n.get(key));
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                let _ = write!(out, "::{variant}");
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() {
        "document".into()
    } else {
        out
    }
}

fn record_id(node: &Value) -> Option<(&'static str, &str)> {
    ["id", "sku", "line_id", "order_id"]
        .into_iter()
        .find_map(|key| Some((key, node.get(key)?.as_str()?)))
}
