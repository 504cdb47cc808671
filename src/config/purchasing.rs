//! `[purchasing]`: the scheduled `purchasing.digest` (notifications.md
//! section 4), off unless `digest_schedule` is set, and where it is mailed
//! besides the webhooks that take it.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use super::{ConfigError, Origins, Settings};
use crate::digest::Schedule;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PurchasingSettings {
    /// When the digest is emitted; absent: never.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "schedule_text"
    )]
    pub digest_schedule: Option<Schedule>,
    /// The purchasing address the digest is mailed to (through `[email]`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "mailbox")]
    pub digest_email: Option<lettre::message::Mailbox>,
}

mod schedule_text {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Some).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(schedule: &Option<Schedule>, s: S) -> Result<S::Ok, S::Error> {
        match schedule {
            Some(schedule) => s.serialize_str(&schedule.to_string()),
            None => s.serialize_none(),
        }
    }
}

mod mailbox {
    use super::*;
    use lettre::message::Mailbox;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mailbox>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Some).map_err(|err| {
            D::Error::custom(format!(
                "{text:?} is not an address such as \"Purchasing <buy@shop.example>\": {err}"
            ))
        })
    }

    pub fn serialize<S: Serializer>(mailbox: &Option<Mailbox>, s: S) -> Result<S::Ok, S::Error> {
        match mailbox {
            Some(m) => s.serialize_str(&m.to_string()),
            None => s.serialize_none(),
        }
    }
}

/// A digest address needs the SMTP server of `[email]`, and a schedule to
/// have anything to mail.
pub(super) fn check(settings: &Settings, origins: &Origins) -> Result<(), ConfigError> {
    let Some(purchasing) = &settings.purchasing else {
        return Ok(());
    };
    if purchasing.digest_email.is_some() {
        if settings.email.is_none() {
            return Err(origins.invalid(
                "purchasing.digest_email",
                "the digest is mailed through the [email] table's server: add [email]".to_owned(),
            ));
        }
        if purchasing.digest_schedule.is_none() {
            return Err(origins.invalid(
                "purchasing.digest_email",
                "no digest is sent without purchasing.digest_schedule".to_owned(),
            ));
        }
    }
    Ok(())
}
