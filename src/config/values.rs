//! The types of the settings' values. Each checks its own bounds while it
//! is read, so a bad value is refused with the key that holds it and no
//! other code checks it again.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Unexpected, Visitor};
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
/// A count, into a `u64` or a [`NonZeroUsize`].
pub type Count<const MIN: u64, const MAX: u64> = Whole<MIN, MAX, 0>;

impl<const MIN: u64, const MAX: u64, const UNIT_MS: u64> Whole<MIN, MAX, UNIT_MS> {
    pub fn deserialize<'de, D: Deserializer<'de>, T: FromWhole>(d: D) -> Result<T, D::Error> {
        let n = d.deserialize_any(WholeVisitor { min: MIN, max: MAX })?;
        T::from_whole(n, UNIT_MS)
            .ok_or_else(|| de::Error::custom(format!("{n} is out of range: expected at least 1")))
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
        if n == 0 {
            Some(None)
        } else {
            Duration::from_whole(n, unit_ms).map(Some)
        }
    }
    fn to_whole(&self, unit_ms: u64) -> u64 {
        self.map_or(0, |d| d.to_whole(unit_ms))
    }
}

impl FromWhole for u64 {
    fn from_whole(n: u64, _: u64) -> Option<Self> {
        Some(n)
    }
    fn to_whole(&self, _: u64) -> u64 {
        *self
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

struct WholeVisitor {
    min: u64,
    max: u64,
}

impl WholeVisitor {
    fn check<E: de::Error>(&self, n: i128) -> Result<u64, E> {
        match u64::try_from(n) {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => Err(E::custom(format!(
                "{n} is out of range: expected {} to {}",
                self.min, self.max
            ))),
        }
    }
}

impl Visitor<'_> for WholeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number from {} to {}", self.min, self.max)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
        self.check(n.into())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
        self.check(n.into())
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<u64, E> {
        Err(E::custom(format!("{x} is not a whole number")))
    }

    /// Environment variables arrive as text.
    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        match text.trim().parse::<i128>() {
            Ok(n) => self.check(n),
            Err(_) if text.trim().parse::<f64>().is_ok() => {
                Err(E::custom(format!("{} is not a whole number", text.trim())))
            }
            Err(_) => Err(E::invalid_value(Unexpected::Str(text), &self)),
        }
    }
}

/// Reads a secret's text. A type error would quote the value: its message
/// is replaced by one that shows nothing.
fn secret_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map_err(|_| {
        de::Error::custom("expected a string (the value is not shown: it may be secret)")
    })
}

/// The API's bearer token; `Debug`, `Display` and `Serialize` never show
/// it, and its memory is wiped when dropped.
#[derive(Clone, Default)]
pub struct ApiToken(SecretString);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        ApiToken(SecretString::from(token.into()))
    }

    /// The token, `None` when unset (empty).
    pub fn expose(&self) -> Option<&str> {
        Some(self.0.expose_secret()).filter(|token| !token.is_empty())
    }

    fn shown(&self) -> &'static str {
        if self.expose().is_some() { "***" } else { "" }
    }
}

impl<'de> Deserialize<'de> for ApiToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        secret_text(d).map(ApiToken::new)
    }
}

impl Serialize for ApiToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl PartialEq for ApiToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for ApiToken {}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.expose().is_some() {
            "***"
        } else {
            "unset"
        };
        write!(f, "ApiToken({state})")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// A database URL of a form every command reads (checked while it is read,
/// before anything is opened or created). `Debug`, `Display` and
/// `Serialize` hide any password, and its memory is wiped when dropped; use
/// [`DatabaseUrl::expose`] to connect.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(SecretString::from(url.into()))
    }

    /// The URL, password included.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let url = secret_text(d)?;
        // The store's messages never hold a password.
        crate::store::locate(&url).map_err(de::Error::custom)?;
        Ok(DatabaseUrl::new(url))
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(self.expose()))
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for DatabaseUrl {}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&redact_url(self.expose()))
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
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
        let name = String::deserialize(d)?;
        match name.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(de::Error::invalid_value(
                Unexpected::Str(&name),
                &"\"text\" or \"json\"",
            )),
        }
    }
}

/// `#[serde(deserialize_with)]` for `log.filter`: an `EnvFilter` directive.
pub fn log_filter<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let filter = String::deserialize(d)?;
    match tracing_subscriber::EnvFilter::builder().parse(&filter) {
        Ok(_) => Ok(filter),
        Err(err) => Err(de::Error::custom(format!(
            "{filter:?} is not a valid log filter: {err}"
        ))),
    }
}
