//! The configured destinations: each `[[webhooks]]` endpoint and `[email]`,
//! with the name their delivery state is kept under, what they take, and
//! one attempt at one message.
//!
//! Names: `webhook:<url>` (a password in the URL shown as `***`; a second
//! endpoint with the same URL gets `#2`, and so on, in file order) and
//! `email`. Changing an endpoint's URL makes it a new destination, which
//! starts with the messages created after it was first served.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;

use super::digest_mail::DigestTemplates;
use super::mail::{MailAttempt, Mailer, Templates};
use super::message::{Data, Message, MessageType};
use super::webhook::{Attempt, Endpoint, Sender};
use crate::config::Settings;
use crate::store::delivery::Scanned;

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// 410 Gone: disable the destination.
    Gone(String),
    Retry(String),
}

/// Both boxed: the HTTP client and the SMTP transport differ much in size.
enum Channel {
    Webhook(Box<(Endpoint, Sender)>),
    Mail(Box<Mailer>),
    /// `purchasing.digest` to the purchasing address.
    DigestMail(Box<(Mailer, lettre::message::Mailbox, DigestTemplates)>),
}

pub struct Destination {
    pub name: String,
    types: Vec<MessageType>,
    channel: Channel,
    /// How long a claim lasts: longer than any attempt can take, so a
    /// message is sent by one process at a time; a killed process's
    /// claims are taken over when it ends.
    pub lease: Duration,
}

impl Destination {
    /// Every destination the settings configure, webhooks first.
    pub fn all(settings: &Settings) -> Result<Vec<Arc<Destination>>, String> {
        let sender = Sender::new();
        let mut out = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        for webhook in &settings.webhooks {
            let mut url = webhook.url.clone();
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let base = format!("webhook:{url}");
            let same = bases.iter().filter(|b| **b == base).count();
            bases.push(base.clone());
            let name = if same == 0 {
                base
            } else {
                format!("{base}#{}", same + 1)
            };
            out.push(Arc::new(Destination {
                name,
                types: webhook.types.clone(),
                lease: webhook.timeout * 2 + Duration::from_secs(5),
                channel: Channel::Webhook(Box::new((
                    Endpoint {
                        url: webhook.url.clone(),
                        key: webhook.key(),
                        timeout: webhook.timeout,
                    },
                    sender.clone(),
                ))),
            }));
        }
        if let Some(email) = &settings.email {
            let templates =
                Templates::load(email.templates_dir.as_deref()).map_err(|e| e.to_string())?;
            let mailer = Mailer::new(
                &email.target(),
                email.from.clone(),
                email.company_name(),
                templates,
                email.timeout,
            )?;
            out.push(Arc::new(Destination {
                name: "email".to_owned(),
                types: email.types.clone(),
                // A mail is several SMTP exchanges, each bounded by the timeout.
                lease: email.timeout * 4 + Duration::from_secs(5),
                channel: Channel::Mail(Box::new(mailer)),
            }));
            if let Some(to) = settings
                .purchasing
                .as_ref()
                .and_then(|p| p.digest_email.clone())
            {
                let templates = DigestTemplates::load(email.templates_dir.as_deref())
                    .map_err(|e| e.to_string())?;
                let mailer = Mailer::new(
                    &email.target(),
                    email.from.clone(),
                    email.company_name(),
                    Templates::load(email.templates_dir.as_deref()).map_err(|e| e.to_string())?,
                    email.timeout,
                )?;
                out.push(Arc::new(Destination {
                    name: "email:purchasing".to_owned(),
                    types: vec![MessageType::PurchasingDigest],
                    lease: email.timeout * 4 + Duration::from_secs(5),
                    channel: Channel::DigestMail(Box::new((mailer, to, templates))),
                }));
            }
        }
        Ok(out)
    }

    /// Whether this destination takes `message`: one of its types, and for
    /// mail an order message with a customer address that did not close.
    pub fn wants(&self, message: &Scanned) -> bool {
        let Ok(kind) = message.kind.parse::<MessageType>() else {
            return false;
        };
        if !self.types.contains(&kind) {
            return false;
        }
        match &self.channel {
            Channel::Webhook(_) | Channel::DigestMail(_) => true,
            Channel::Mail(_) => match serde_json::from_str::<Message>(&message.body) {
                Ok(Message {
                    data: Data::Order(order),
                    ..
                }) => {
                    !order.closed
                        && order
                            .customer
                            .as_ref()
                            .and_then(|c| c.email.as_deref())
                            .is_some_and(|e| !e.trim().is_empty())
                }
                _ => false,
            },
        }
    }

    /// One attempt at the message `id` whose JSON is `body`.
    pub async fn attempt(&self, id: &str, body: String) -> Outcome {
        match &self.channel {
            Channel::Webhook(webhook) => {
                let (endpoint, sender) = &**webhook;
                let now = chrono::Utc::now().timestamp();
                match sender.attempt(endpoint, id, now, Bytes::from(body)).await {
                    Attempt::Delivered { .. } => Outcome::Delivered,
                    Attempt::Gone => {
                        Outcome::Gone("HTTP 410 Gone: the endpoint asked to be disabled".into())
                    }
                    Attempt::Retry { error } => Outcome::Retry(error),
                }
            }
            Channel::Mail(mailer) => {
                let message: Message = match serde_json::from_str(&body) {
                    Ok(message) => message,
                    Err(e) => {
                        return Outcome::Retry(format!(
                            "the stored message {id} is unreadable: {e}"
                        ));
                    }
                };
                match mailer.attempt(&message).await {
                    MailAttempt::Sent | MailAttempt::Skipped => Outcome::Delivered,
                    MailAttempt::Retry { error } => Outcome::Retry(error),
                }
            }
            Channel::DigestMail(digest) => {
                let (mailer, to, templates) = &**digest;
                let mail = serde_json::from_str::<Message>(&body)
                    .map_err(|e| format!("the stored message {id} is unreadable: {e}"))
                    .and_then(|message| mailer.compose_digest(&message, to, templates));
                match mail {
                    Ok(mail) => match mailer.send(mail).await {
                        MailAttempt::Sent | MailAttempt::Skipped => Outcome::Delivered,
                        MailAttempt::Retry { error } => Outcome::Retry(error),
                    },
                    Err(error) => Outcome::Retry(error),
                }
            }
        }
    }
}
