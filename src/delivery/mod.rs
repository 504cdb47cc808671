//! What leaves the daemon (notifications.md sections 1 and 2): change
//! messages, and their delivery by signed webhooks and by e-mail.
//!
//! Built so far: the messages and the rule that makes them
//! ([`message`]), the webhook signature and one HTTP attempt
//! ([`webhook`]), the retry schedule ([`retry`]), and mails from templates
//! with one SMTP attempt ([`mail`]). Not yet: storing messages in the
//! write-back's transaction and the delivery loop that drives these pieces.

pub mod mail;
pub mod message;
pub mod retry;
pub mod webhook;
