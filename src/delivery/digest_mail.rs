//! The `purchasing.digest` mailed to `purchasing.digest_email`: its own
//! three templates (`purchasing.digest.subject.txt`, `.txt`, `.html`),
//! shipped in the binary and replaced file by file from
//! `email.templates_dir`, compiled and rendered against a sample report
//! when the configuration loads, like the order mails' templates.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, value::Serde};
use serde::Serialize;

use super::mail::{Rendered, TemplateError, template_names};
use super::message::{Data, Message, MessageType};

const SHIPPED: [&str; 3] = [
    include_str!("../../templates/purchasing.digest.subject.txt"),
    include_str!("../../templates/purchasing.digest.txt"),
    include_str!("../../templates/purchasing.digest.html"),
];

/// What the templates see: the message's report, and two sums.
#[derive(Serialize)]
struct Context<'a> {
    message_id: &'a str,
    company_name: &'a str,
    scheduled_for: &'a serde_json::Value,
    vendors: &'a serde_json::Value,
    sku_count: usize,
    total_shortfall: i64,
}

pub struct DigestTemplates {
    env: Environment<'static>,
}

impl DigestTemplates {
    pub fn load(dir: Option<&Path>) -> Result<DigestTemplates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let names = template_names(MessageType::PurchasingDigest);
        for (name, shipped) in names.iter().zip(SHIPPED) {
            let path = dir.map(|d| d.join(name)).filter(|p| p.exists());
            let source = match &path {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
                        path: path.clone(),
                        source,
                    })?
                }
                None => shipped.to_owned(),
            };
            env.add_template_owned(name.clone(), source)
                .map_err(|err| broken(name, path.as_deref(), &err))?;
        }
        let templates = DigestTemplates { env };
        // Tried once on a sample, so a misspelt placeholder fails at load.
        for (name, path) in names.iter().map(|n| (n, dir.map(|d| d.join(n)))) {
            templates
                .render_one(name, &sample(), "Sample Company")
                .map_err(|err| broken(name, path.as_deref().filter(|p| p.exists()), &err))?;
        }
        Ok(templates)
    }

    fn render_one(
        &self,
        name: &str,
        message: &Message,
        company_name: &str,
    ) -> Result<String, minijinja::Error> {
        let Data::Other(report) = &message.data else {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "not a purchasing report",
            ));
        };
        let null = serde_json::Value::Null;
        let vendors = report.get("vendors").unwrap_or(&null);
        let skus = || {
            vendors
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|v| v["skus"].as_array().into_iter().flatten())
        };
        let context = Context {
            message_id: &message.id,
            company_name,
            scheduled_for: report.get("scheduled_for").unwrap_or(&null),
            vendors,
            sku_count: skus().count(),
            total_shortfall: skus().filter_map(|s| s["shortfall"].as_i64()).sum(),
        };
        self.env
            .get_template(name)
            .and_then(|t| t.render(Serde(&context)))
    }

    /// The digest's mail.
    pub fn render(&self, message: &Message, company_name: &str) -> Result<Rendered, TemplateError> {
        let [subject, text, html] = template_names(MessageType::PurchasingDigest).map(|name| {
            self.render_one(&name, message, company_name)
                .map_err(|err| broken(&name, None, &err))
        });
        Ok(Rendered {
            subject: subject?.split_whitespace().collect::<Vec<_>>().join(" "),
            text: text?,
            html: html?,
        })
    }
}

fn broken(name: &str, path: Option<&Path>, err: &minijinja::Error) -> TemplateError {
    TemplateError::Broken {
        name: name.to_owned(),
        path: path.map(Path::to_path_buf),
        detail: super::mail::detail(err),
    }
}

fn sample() -> Message {
    Message {
        id: "msg_sample".to_owned(),
        kind: MessageType::PurchasingDigest,
        created_at: chrono::DateTime::UNIX_EPOCH,
        key: "purchasing:digest".to_owned(),
        seq: 1,
        data: Data::Other(serde_json::json!({
            "scheduled_for": "2026-12-07T08:00:00Z",
            "vendors": [
                {"vendor": "Leafy", "skus": [{"sku": "TEA", "shortfall": 3, "backordered": 5,
                  "on_order": 2, "oldest_waiting_order": "2026-11-02T10:00:00Z", "waiting_orders": 2}]},
                {"vendor": null, "skus": [{"sku": "CUP", "shortfall": 7, "backordered": 7,
                  "on_order": 0, "oldest_waiting_order": null, "waiting_orders": 1}]}
            ]
        })),
        causes: vec!["periodic".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_digest_templates_render_the_report() {
        let templates = DigestTemplates::load(None).unwrap();
        let mail = templates.render(&sample(), "Thirsty Tea").unwrap();
        assert_eq!(
            mail.subject,
            "Thirsty Tea: 2 SKUs to order (10 units short)"
        );
        assert!(mail.text.contains("- TEA: 3 short"), "{}", mail.text);
        assert!(mail.text.contains("No vendor"), "{}", mail.text);
        assert!(
            mail.html.contains("<td>CUP</td><td>7</td>"),
            "{}",
            mail.html
        );
    }

    #[test]
    fn a_broken_digest_template_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("purchasing.digest.txt"), "{{ vendorz }}").unwrap();
        let err = DigestTemplates::load(Some(dir.path()))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("purchasing.digest.txt"), "{err}");
    }
}
