//! The delivery sections (notifications.md section 6): `[[webhooks]]`,
//! `[email]` and `[notify]`. Each value is checked while it is read, and
//! the templates are compiled and rendered once the whole file is read
//! ([`check_templates`]), so `check-config` and `serve` refuse a bad one
//! naming its key.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use super::values::{Count, Millis, Secs};
use super::{ConfigError, Origins, Settings, YEAR};
use crate::delivery::mail::{self, SmtpTarget, Templates};
use crate::delivery::message::MessageType;
use crate::delivery::webhook::SigningKey;

/// A webhook's timeout when its table gives none (the contract's 15 s).
pub const DEFAULT_WEBHOOK_TIMEOUT_SECS: u64 = 15;
/// An SMTP exchange's timeout when `[email]` gives none.
pub const DEFAULT_SMTP_TIMEOUT_SECS: u64 = 60;

/// How long messages are retried.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// From a message's creation; then it is dead for the destinations
    /// that have not taken it.
    #[serde(rename = "retry_window_secs", with = "Secs::<1, YEAR>")]
    pub retry_window: Duration,
    /// How long a message is kept (for the pull feed) from its creation;
    /// then it is pruned, unless a live destination has yet to take it
    /// (src/delivery/retention.rs).
    #[serde(rename = "retention_secs", with = "Secs::<60, YEAR>")]
    pub retention: Duration,
    /// The first retry's pause (5 s); the later ones scale with it.
    #[serde(rename = "retry_base_ms", with = "Millis::<1, 3_600_000>")]
    pub retry_base: Duration,
    /// Messages in flight at once per destination (each of another key).
    #[serde(with = "Count::<1, 1024>")]
    pub concurrency: std::num::NonZeroUsize,
}

/// One `[[webhooks]]` table.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://`.
    #[serde(with = "webhook_url")]
    pub url: url::Url,
    /// `whsec_<base64>`; its `Debug` redacts it and it is shown as `***`.
    #[serde(with = "webhook_secret")]
    pub secret: SecretString,
    /// The types sent to it; every type when the key is absent.
    #[serde(default = "every_type", deserialize_with = "types")]
    pub types: Vec<MessageType>,
    #[serde(
        rename = "timeout_secs",
        default = "webhook_timeout",
        with = "Secs::<1, 3600>"
    )]
    pub timeout: Duration,
}

impl WebhookSettings {
    /// The signing key (checked when read, so this cannot fail after).
    pub fn key(&self) -> SigningKey {
        SigningKey::parse(self.secret.expose_secret())
            .expect("checked when the configuration was read")
    }
}

/// `[email]`: mail to the orders' customers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://[USER:PASSWORD@]HOST[:PORT][?tls=starttls|none]` or
    /// `smtps://…`; shown without its password.
    #[serde(with = "smtp_url")]
    pub smtp_url: SecretString,
    /// `Name <address>` or an address.
    #[serde(with = "mailbox")]
    pub from: lettre::message::Mailbox,
    /// What the templates call `company_name`; the name in `from` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The order types mailed.
    #[serde(default = "mailed_types", deserialize_with = "mail_types")]
    pub types: Vec<MessageType>,
    /// Templates replacing the shipped ones, file by file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    #[serde(
        rename = "timeout_secs",
        default = "smtp_timeout",
        with = "Secs::<1, 3600>"
    )]
    pub timeout: Duration,
}

impl EmailSettings {
    pub fn target(&self) -> SmtpTarget {
        SmtpTarget::parse(self.smtp_url.expose_secret())
            .expect("checked when the configuration was read")
    }

    /// `company_name`, else the display name of `from`, else its domain.
    pub fn company_name(&self) -> String {
        self.company_name
            .clone()
            .or_else(|| self.from.name.clone())
            .unwrap_or_else(|| self.from.email.domain().to_owned())
    }
}

fn every_type() -> Vec<MessageType> {
    MessageType::ALL.to_vec()
}

fn mailed_types() -> Vec<MessageType> {
    vec![
        MessageType::OrderBackordered,
        MessageType::OrderBackorderCleared,
    ]
}

fn webhook_timeout() -> Duration {
    Duration::from_secs(DEFAULT_WEBHOOK_TIMEOUT_SECS)
}

fn smtp_timeout() -> Duration {
    Duration::from_secs(DEFAULT_SMTP_TIMEOUT_SECS)
}

/// A list of known type names, at least one.
fn types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MessageType>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(D::Error::custom(
            "an empty list subscribes to nothing: remove the key for every type",
        ));
    }
    names
        .iter()
        .map(|name| name.parse().map_err(D::Error::custom))
        .collect()
}

fn mail_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MessageType>, D::Error> {
    let kinds = types(d)?;
    match kinds.iter().find(|kind| !mail::mailable(**kind)) {
        Some(kind) => Err(D::Error::custom(format!(
            "{kind} has no customer to mail: only order.backordered, order.backorder_cleared and order.backorder_changed"
        ))),
        None => Ok(kinds),
    }
}

mod webhook_url {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<url::Url, D::Error> {
        let text = String::deserialize(d)?;
        let url = url::Url::parse(&text)
            .map_err(|err| D::Error::custom(format!("{text:?} is not a URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(D::Error::custom(format!(
                "{text:?} is not an http:// or https:// URL with a host"
            )));
        }
        Ok(url)
    }

    pub fn serialize<S: Serializer>(url: &url::Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_str())
    }
}

/// A secret's text; a type error never quotes it.
fn secret_text<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from).map_err(|_| {
        D::Error::custom("expected a string (the value is not shown: it may be secret)")
    })
}

mod webhook_secret {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        let secret = secret_text(d)?;
        SigningKey::parse(secret.expose_secret()).map_err(D::Error::custom)?;
        Ok(secret)
    }

    pub fn serialize<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

mod smtp_url {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        let url = secret_text(d)?;
        SmtpTarget::parse(url.expose_secret()).map_err(D::Error::custom)?;
        Ok(url)
    }

    pub fn serialize<S: Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&SmtpTarget::redacted(url.expose_secret()))
    }
}

mod mailbox {
    use super::*;
    use lettre::message::Mailbox;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|err| {
            D::Error::custom(format!(
                "{text:?} is not an address such as \"Shop <orders@shop.example>\": {err}"
            ))
        })
    }

    pub fn serialize<S: Serializer>(mailbox: &Mailbox, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mailbox.to_string())
    }
}

/// Compiles and renders every template `[email]` uses, refusing a broken
/// one under `email.templates_dir` (or `email` for a shipped one, which
/// the tests keep from happening).
pub(super) fn check_templates(settings: &Settings, origins: &Origins) -> Result<(), ConfigError> {
    let Some(email) = &settings.email else {
        return Ok(());
    };
    let key = if email.templates_dir.is_some() {
        "email.templates_dir"
    } else {
        "email"
    };
    if let Some(dir) = &email.templates_dir
        && !dir.is_dir()
    {
        return Err(origins.invalid(key, format!("{} is not a directory", dir.display())));
    }
    Templates::load(email.templates_dir.as_deref())
        .map(drop)
        .map_err(|err| origins.invalid(key, err.to_string()))?;
    if settings
        .purchasing
        .as_ref()
        .is_some_and(|p| p.digest_email.is_some())
    {
        crate::delivery::digest_mail::DigestTemplates::load(email.templates_dir.as_deref())
            .map_err(|err| origins.invalid(key, err.to_string()))?;
    }
    Ok(())
}
