//! E-mail to an order's customer (notifications.md section 2): a subject,
//! a plain-text and an HTML body rendered from minijinja templates, and one
//! SMTP attempt with lettre.
//!
//! Templates: for each order message type three files, e.g.
//! `order.backordered.subject.txt`, `order.backordered.txt` and
//! `order.backordered.html` (HTML-escaped). The shipped ones are compiled
//! into the binary; a file of the same name in `email.templates_dir`
//! replaces one. Every template is compiled and rendered against a sample
//! order when the configuration loads, so a broken one is refused then,
//! not at the first mail; placeholders are strict (a misspelt one fails).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use minijinja::{Environment, UndefinedBehavior, value::Serde};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::message::{Customer, Data, LineData, Message, MessageType, OrderData};
use crate::engine::BackorderStatus;

/// The order types a mail can be written for, and their shipped templates
/// (subject, text, HTML).
const SHIPPED: [(MessageType, [&str; 3]); 3] = [
    (
        MessageType::OrderBackordered,
        [
            include_str!("../../templates/order.backordered.subject.txt"),
            include_str!("../../templates/order.backordered.txt"),
            include_str!("../../templates/order.backordered.html"),
        ],
    ),
    (
        MessageType::OrderBackorderCleared,
        [
            include_str!("../../templates/order.backorder_cleared.subject.txt"),
            include_str!("../../templates/order.backorder_cleared.txt"),
            include_str!("../../templates/order.backorder_cleared.html"),
        ],
    ),
    (
        MessageType::OrderBackorderChanged,
        [
            include_str!("../../templates/order.backorder_changed.subject.txt"),
            include_str!("../../templates/order.backorder_changed.txt"),
            include_str!("../../templates/order.backorder_changed.html"),
        ],
    ),
];

/// The file names of a type's templates: subject, text, HTML.
pub fn template_names(kind: MessageType) -> [String; 3] {
    ["subject.txt", "txt", "html"].map(|ext| format!("{kind}.{ext}"))
}

/// Whether mails can be written for `kind` (order messages only: the others
/// have no customer).
pub fn mailable(kind: MessageType) -> bool {
    SHIPPED.iter().any(|(k, _)| *k == kind)
}

/// A template that cannot be read, compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// minijinja's text names the template and the line.
    #[error("template {name}{}: {detail}", path.as_ref().map_or_else(String::new, |p| format!(" ({})", p.display())))]
    Broken {
        name: String,
        path: Option<PathBuf>,
        detail: String,
    },
}

/// Every template of every mailable type, compiled and checked.
pub struct Templates {
    env: Environment<'static>,
}

/// A mail's three rendered parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the templates see.
#[derive(Serialize)]
struct Context<'a> {
    message_id: &'a str,
    r#type: &'a str,
    order_id: &'a str,
    status: BackorderStatus,
    previous_status: BackorderStatus,
    backorder_qty: i64,
    previous_backorder_qty: i64,
    closed: bool,
    customer_name: Option<&'a str>,
    customer_email: Option<&'a str>,
    company_name: &'a str,
    lines: &'a [LineData],
}

impl Templates {
    /// The shipped templates, each replaced by the file of its name in
    /// `dir` when there is one; every one compiled and rendered once.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (kind, shipped) in SHIPPED {
            for (name, source) in template_names(kind).into_iter().zip(shipped) {
                let (source, path) = match dir.map(|d| d.join(&name)).filter(|p| p.exists()) {
                    Some(path) => match std::fs::read_to_string(&path) {
                        Ok(text) => (text, Some(path)),
                        Err(source) => return Err(TemplateError::Read { path, source }),
                    },
                    None => (source.to_owned(), None),
                };
                let broken = |err: minijinja::Error| TemplateError::Broken {
                    name: name.clone(),
                    path: path.clone(),
                    detail: detail(&err),
                };
                env.add_template_owned(name.clone(), source)
                    .map_err(broken)?;
                let sample = sample(kind);
                let context = context(&sample, "Sample Company");
                env.get_template(&name)
                    .and_then(|t| t.render(Serde(&context)))
                    .map_err(broken)?;
            }
        }
        Ok(Templates { env })
    }

    /// The mail for `message`, or `None` when none is written: not an
    /// order message, no customer address, or an order that closed (no
    /// "back in stock" mail for a shipped or cancelled order).
    pub fn render(
        &self,
        message: &Message,
        company_name: &str,
    ) -> Result<Option<Rendered>, TemplateError> {
        let Data::Order(order) = &message.data else {
            return Ok(None);
        };
        let has_address = order
            .customer
            .as_ref()
            .and_then(|c| c.email.as_deref())
            .is_some();
        if !mailable(message.kind) || !has_address || order.closed {
            return Ok(None);
        }
        let context = context(message, company_name);
        let [subject, text, html] = template_names(message.kind).map(|name| {
            self.env
                .get_template(&name)
                .and_then(|t| t.render(Serde(&context)))
                .map_err(|err| TemplateError::Broken {
                    name,
                    path: None,
                    detail: detail(&err),
                })
        });
        Ok(Some(Rendered {
            // A subject is one line, whatever the template left around it.
            subject: subject?.split_whitespace().collect::<Vec<_>>().join(" "),
            text: text?,
            html: html?,
        }))
    }
}

/// minijinja's error with the template and line it names.
pub(super) fn detail(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    if let Some(line) = err.line()
        && !text.contains(&format!(":{line}"))
    {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

fn context<'a>(message: &'a Message, company_name: &'a str) -> Context<'a> {
    let Data::Order(order) = &message.data else {
        unreachable!("only order messages are rendered")
    };
    let customer = order.customer.as_ref();
    Context {
        message_id: &message.id,
        r#type: message.kind.as_str(),
        order_id: &order.order_id,
        status: order.status,
        previous_status: order.previous_status,
        backorder_qty: order.backorder_qty,
        previous_backorder_qty: order.previous_backorder_qty,
        closed: order.closed,
        customer_name: customer.and_then(|c| c.name.as_deref()),
        customer_email: customer.and_then(|c| c.email.as_deref()),
        company_name,
        lines: &order.lines,
    }
}

/// The message every template is tried on at load.
fn sample(kind: MessageType) -> Message {
    let line = |id: &str, qty, backorder, eta: Option<&str>| LineData {
        line_id: id.to_owned(),
        sku: format!("SKU-{id}"),
        qty,
        backorder_qty: backorder,
        previous_backorder_qty: qty,
        eta: eta.map(|d| d.parse().expect("a date")),
        previous_eta: None,
    };
    Message {
        id: "msg_sample".to_owned(),
        kind,
        created_at: chrono::DateTime::UNIX_EPOCH,
        key: "order:SAMPLE".to_owned(),
        seq: 1,
        data: Data::Order(OrderData {
            order_id: "SAMPLE".to_owned(),
            status: BackorderStatus::Partial,
            previous_status: BackorderStatus::Full,
            backorder_qty: 3,
            previous_backorder_qty: 5,
            customer: Some(Customer {
                email: Some("customer@example.com".to_owned()),
                name: Some("Sample Customer".to_owned()),
            }),
            closed: false,
            lines: vec![
                line("1", 4, 3, Some("2026-12-24")),
                line("2", 1, 0, None),
                line("3", 2, 0, None),
            ],
        }),
        causes: vec!["sample".to_owned()],
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `smtp://…` (or `?tls=starttls`): STARTTLS, required.
    StartTls,
    /// `smtps://…`: TLS from the first byte.
    Wrapper,
    /// `smtp://…?tls=none`: plain text, for a relay on this machine.
    None,
}

/// Where mail goes, read from `email.smtp_url`.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    credentials: Option<(String, SecretString)>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("login", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpTarget {
    /// `smtp://[USER:PASSWORD@]HOST[:PORT][?tls=starttls|none]` or
    /// `smtps://[USER:PASSWORD@]HOST[:PORT]`; the user and password
    /// percent-decoded. No message quotes the URL (it may hold a password).
    pub fn parse(text: &str) -> Result<SmtpTarget, String> {
        let url = url::Url::parse(text).map_err(|err| {
            format!("not a URL ({err}); expected smtp://HOST:PORT or smtps://HOST:PORT")
        })?;
        let mut tls = match url.scheme() {
            "smtp" => Tls::StartTls,
            "smtps" => Tls::Wrapper,
            other => return Err(format!("the scheme {other:?} is neither smtp nor smtps")),
        };
        for (name, value) in url.query_pairs() {
            match (name.as_ref(), value.as_ref(), tls) {
                ("tls", "starttls", Tls::StartTls) => {}
                ("tls", "none", Tls::StartTls) => tls = Tls::None,
                ("tls", _, Tls::Wrapper) => {
                    return Err("smtps:// is always TLS: drop `tls=`".to_owned());
                }
                ("tls", other, _) => {
                    return Err(format!("tls={other:?} is neither starttls nor none"));
                }
                (other, ..) => return Err(format!("unknown parameter {other:?} (only tls)")),
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(match tls {
            Tls::StartTls => 587,
            Tls::Wrapper => 465,
            Tls::None => 25,
        });
        let decode = |part: &str| {
            percent_decode(part)
                .ok_or_else(|| "the user or password is not valid percent-encoded UTF-8".to_owned())
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(password)) => Some((decode(user)?, SecretString::from(decode(password)?))),
            (_, None) => return Err("a user without a password: give USER:PASSWORD@".to_owned()),
        };
        Ok(SmtpTarget {
            host,
            port,
            tls,
            credentials,
        })
    }

    /// The URL with its password replaced by `***`, for `check-config`.
    pub fn redacted(text: &str) -> String {
        match url::Url::parse(text) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => "(not shown: it does not parse)".to_owned(),
        }
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What one mail attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailAttempt {
    /// The server accepted it.
    Sent,
    /// No mail for this message (no address, closed, not an order type).
    Skipped,
    /// Connection refused, a 4xx or 5xx answer, a timeout: tried again
    /// per the retry schedule; `error` never holds the password.
    Retry { error: String },
}

/// Writes and sends the mails.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    company_name: String,
    templates: Templates,
}

impl Mailer {
    pub fn new(
        target: &SmtpTarget,
        from: Mailbox,
        company_name: String,
        templates: Templates,
        timeout: Duration,
    ) -> Result<Mailer, String> {
        let builder = match target.tls {
            Tls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&target.host),
            Tls::Wrapper => AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host),
            Tls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &target.host,
            )),
        }
        .map_err(|err| format!("cannot set up TLS for {}: {err}", target.host))?;
        let mut builder = builder.port(target.port).timeout(Some(timeout));
        if let Some((user, password)) = &target.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            company_name,
            templates,
        })
    }

    /// The mail for `message` as it is sent, or `None` (see
    /// [`Templates::render`]). Its `Message-ID` is `<MESSAGE ID@DOMAIN of from>`,
    /// the same at every attempt.
    pub fn compose(&self, message: &Message) -> Result<Option<lettre::Message>, String> {
        let Some(rendered) = self
            .templates
            .render(message, &self.company_name)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let Data::Order(OrderData {
            customer: Some(customer),
            ..
        }) = &message.data
        else {
            return Ok(None);
        };
        let email = customer.email.as_deref().unwrap_or_default();
        let to = Mailbox::new(
            customer.name.clone(),
            email.parse().map_err(|err| {
                format!("the customer address {email:?} is not an e-mail address: {err}")
            })?,
        );
        let domain = self.from.email.domain();
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map(Some)
            .map_err(|err| format!("cannot build the mail: {err}"))
    }

    /// The digest's mail to the purchasing address `to`, with the same
    /// `Message-ID` rule as the order mails.
    pub fn compose_digest(
        &self,
        message: &Message,
        to: &Mailbox,
        templates: &super::digest_mail::DigestTemplates,
    ) -> Result<lettre::Message, String> {
        let rendered = templates
            .render(message, &self.company_name)
            .map_err(|e| e.to_string())?;
        let domain = self.from.email.domain();
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|err| format!("cannot build the mail: {err}"))
    }

    /// One attempt.
    pub async fn attempt(&self, message: &Message) -> MailAttempt {
        match self.compose(message) {
            Ok(Some(mail)) => self.send(mail).await,
            Ok(None) => MailAttempt::Skipped,
            Err(error) => MailAttempt::Retry { error },
        }
    }

    /// One attempt at a composed mail.
    pub async fn send(&self, mail: lettre::Message) -> MailAttempt {
        match self.transport.send(mail).await {
            Ok(_) => MailAttempt::Sent,
            Err(err) => MailAttempt::Retry {
                error: format!("SMTP: {}", super::webhook::describe(&err)),
            },
        }
    }
}

#[cfg(test)]
#[path = "mail_tests.rs"]
mod tests;
