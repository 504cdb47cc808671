//! Serde formats for the contract's two kinds of time: RFC 3339 timestamps
//! and `YYYY-MM-DD` dates. Hand-written so that a refusal quotes the bad
//! value and says which form was expected.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("\"{text}\" is not an RFC 3339 timestamp ({e})"))
}

pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    // chrono also takes a sign and short years ("-026-12-01"), which would
    // not read back as written.
    let strict = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) if strict => Ok(date),
        Ok(_) => Err(format!("\"{text}\" is not a YYYY-MM-DD date")),
        Err(e) => Err(format!("\"{text}\" is not a YYYY-MM-DD date ({e})")),
    }
}

pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn format_date(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

struct TextVisitor<F>(F, &'static str);

impl<'de, T, F: Fn(&str) -> Result<T, String>> Visitor<'de> for TextVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

struct OptionalVisitor<F>(F, &'static str);

impl<'de, T, F: Fn(&str) -> Result<T, String>> Visitor<'de> for OptionalVisitor<F> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} or null", self.1)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(TextVisitor(self.0, self.1)).map(Some)
    }
}

const TIMESTAMP: &str = "an RFC 3339 timestamp";
const DATE: &str = "a YYYY-MM-DD date";

pub mod timestamp {
    use super::*;
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(TextVisitor(parse_timestamp, TIMESTAMP))
    }
}

pub mod timestamp_opt {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_timestamp(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionalVisitor(parse_timestamp, TIMESTAMP))
    }
}

pub mod date_opt {
    use super::*;
    pub fn serialize<S: Serializer>(t: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(d) => s.serialize_str(&format_date(d)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        d.deserialize_option(OptionalVisitor(parse_date, DATE))
    }
}
