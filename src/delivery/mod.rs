//! What leaves the daemon (notifications.md sections 1 and 2): change
//! messages, and their delivery by signed webhooks and by e-mail.
//!
//! The messages and the rule that makes them ([`message`]), the webhook
//! signature and one HTTP attempt ([`webhook`]), the retry schedule
//! ([`retry`]), mails from templates with one SMTP attempt ([`mail`]), the
//! configured destinations ([`destination`]) and the loop that delivers
//! the message log to each of them ([`deliver`]), and how long the log
//! keeps a message ([`retention`]).

pub mod deliver;
pub mod destination;
pub mod digest_mail;
pub mod mail;
pub mod message;
pub mod retention;
pub mod retry;
pub mod webhook;
