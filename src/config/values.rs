//! The types of the settings' values. Each checks its own bounds while it
//! is read, so a bad value is refused with the key that holds it and no
//! other code checks it again.

use std::num::NonZeroUsize;
use std::time::Duration;

use config::{Value, ValueKind};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use crate::store::redact_url;

/// `#[serde(with = "Whole::<MIN, MAX, UNIT_MS>")]`: a whole number from
/// `MIN` to `MAX` (a TOML integer, or the text of an environment variable;
/// a fraction is refused, not rounded) read into the field's type: a count,
/// or a duration in units of `UNIT_MS` milliseconds.
pub struct Whole<const MIN: u64, const MAX: u64, const UNIT_MS: u64>;
/// Whole seconds into a [`Duration`], or an `Option<Duration>` where 0 is "off".
pub type Secs<const MIN: u64, const MAX: u64> = Whole<MIN, MAX, 1000>;
/// Whole milliseconds into a [`Duration`].
pub type Millis<const MIN: u64, const MAX: u64> = Whole<MIN, MAX, 1>;
/// A count into a [`NonZeroUsize`].
pub type Count<const MIN: u64, const MAX: u64> = Whole<MIN, MAX, 0>;

impl<const MIN: u64, const MAX: u64, const UNIT_MS: u64> Whole<MIN, MAX, UNIT_MS> {
    pub fn deserialize<'de, D: Deserializer<'de>, T: FromWhole>(d: D) -> Result<T, D::Error> {
        let n = match Value::deserialize(d)?.kind {
            ValueKind::I64(n) => u64::try_from(n).ok(),
            ValueKind::U64(n) => Some(n),
            ValueKind::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        n.filter(|n| (MIN..=MAX).contains(n))
            .and_then(|n| T::from_whole(n, UNIT_MS))
            .ok_or_else(|| D::Error::custom(format!("expected a whole number from {MIN} to {MAX}")))
    }

    pub fn serialize<S: Serializer, T: FromWhole>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.to_whole(UNIT_MS))
    }
}

/// A field type [`Whole`] reads.
pub trait FromWhole: Sized {
    fn from_whole(n: u64, unit_ms: u64) -> Option<Self>;
    fn to_whole(&self, unit_ms: u64) -> u64;
}

impl FromWhole for Duration {
    fn from_whole(n: u64, unit_ms: u64) -> Option<Self> {
        Some(Duration::from_millis(n.checked_mul(unit_ms)?))
    }
    fn to_whole(&self, unit_ms: u64) -> u64 {
        (self.as_millis() / u128::from(unit_ms)) as u64
    }
}

/// 0 is `None`: "no limit", "disabled".
impl FromWhole for Option<Duration> {
    fn from_whole(n: u64, unit_ms: u64) -> Option<Self> {
        (n > 0)
            .then(|| Duration::from_whole(n, unit_ms))
            .or(Some(None))
    }
    fn to_whole(&self, unit_ms: u64) -> u64 {
        self.map_or(0, |d| d.to_whole(unit_ms))
    }
}

impl FromWhole for NonZeroUsize {
    fn from_whole(n: u64, _: u64) -> Option<Self> {
        NonZeroUsize::new(usize::try_from(n).ok()?)
    }
    fn to_whole(&self, _: u64) -> u64 {
        self.get() as u64
    }
}

/// A secret's text. A type error would quote the value: it is replaced by
/// one that shows nothing.
fn secret_text<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    let text = String::deserialize(d).map_err(|_| {
        D::Error::custom("expected a string (the value is not shown: it may be secret)")
    })?;
    Ok(SecretString::from(text))
}

/// `#[serde(with = "token")]`: a secret shown as `***`, or empty when unset.
pub mod token {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        secret_text(d)
    }

    pub fn serialize<S: Serializer>(token: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if token.expose_secret().is_empty() {
            ""
        } else {
            "***"
        })
    }
}

/// `#[serde(with = "database_url")]`: a URL of a form every command reads
/// (checked here, before anything is opened or created), shown without its
/// password.
pub mod database_url {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        let url = secret_text(d)?;
        // The store's messages never hold a password.
        crate::store::locate(url.expose_secret()).map_err(D::Error::custom)?;
        Ok(url)
    }

    pub fn serialize<S: Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(url.expose_secret()))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    /// `text` or `json`, in any case.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(D::Error::custom(format!(
                "{other:?} is neither \"text\" nor \"json\""
            ))),
        }
    }
}

/// `#[serde(deserialize_with)]` for `log.filter`: an `EnvFilter` directive.
pub fn log_filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let filter = String::deserialize(d)?;
    match tracing_subscriber::EnvFilter::builder().parse(&filter) {
        Ok(_) => Ok(filter),
        Err(err) => Err(D::Error::custom(format!(
            "{filter:?} is not a valid log filter: {err}"
        ))),
    }
}
