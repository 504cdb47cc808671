//! Mails from the shipped templates through a real SMTP server on loopback
//! (tests/smtp_sink.py, aiosmtpd from PyPI), and the failures a sender must
//! retry: a refused connection, a 4xx and a 5xx answer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backorderd::delivery::mail::{MailAttempt, Mailer, SmtpTarget, Templates};
use backorderd::delivery::message::{Customer, LineState, Message, OrderState, order_message};
use backorderd::engine::BackorderStatus;

/// The sink, stopped (its standard input closed) when dropped.
pub(crate) struct Sink {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    pub(crate) fn start(fail: Option<&str>) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(dir.path());
        if let Some(code) = fail {
            cmd.args(["--fail", code]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (aiosmtpd: pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP sink did not start (is aiosmtpd installed?): {line:?}")
            });
        Sink { child, port, dir }
    }

    /// The mails received, waiting up to 10 s for `count`.
    pub(crate) fn mails(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            if paths.len() >= count || Instant::now() > deadline {
                paths.sort();
                return paths
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn mailer(port: u16) -> Mailer {
    let target = SmtpTarget::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
    Mailer::new(
        &target,
        "Thirsty Tea <backorders@thirstytea.example>"
            .parse()
            .unwrap(),
        "Thirsty Tea".to_owned(),
        Templates::load(None).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn line(id: &str, sku: &str, qty: i64, backorder: i64, eta: Option<&str>) -> LineState {
    LineState {
        line_id: id.into(),
        sku: sku.into(),
        qty,
        backorder_qty: backorder,
        eta: eta.map(|d| d.parse().unwrap()),
    }
}

fn backordered(customer: Option<Customer>) -> Message {
    let before = OrderState {
        status: BackorderStatus::None,
        backorder_qty: 0,
        customer: customer.clone(),
        closed: false,
        lines: vec![
            line("1", "TEA-GREEN", 5, 0, None),
            line("2", "MUG", 1, 0, None),
        ],
    };
    let after = OrderState {
        status: BackorderStatus::Partial,
        backorder_qty: 3,
        customer,
        closed: false,
        lines: vec![
            line("1", "TEA-GREEN", 5, 3, Some("2026-12-24")),
            line("2", "MUG", 1, 0, None),
        ],
    };
    let at = chrono::Utc::now();
    order_message("SO-1001", Some(&before), &after)
        .unwrap()
        .into_message("msg_0000test0001".into(), 1, at, vec!["e1".into()])
}

fn ada() -> Option<Customer> {
    Some(Customer {
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
    })
}

#[tokio::test]
async fn a_backorder_mail_arrives_with_recipient_subject_lines_and_message_id() {
    let sink = Sink::start(None);
    let mailer = mailer(sink.port);
    assert_eq!(mailer.attempt(&backordered(ada())).await, MailAttempt::Sent);
    let mails = sink.mails(1);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    // Quoted-printable may wrap long lines; unwrap soft breaks to read it.
    let text = mail.replace("=\r\n", "").replace("=3D", "=");
    for part in [
        "X-Envelope-To: ada@example.com",
        "To: \"Ada Lovelace\" <ada@example.com>",
        "From: \"Thirsty Tea\" <backorders@thirstytea.example>",
        "Subject: Your order SO-1001 is waiting for stock",
        "Message-ID: <msg_0000test0001@thirstytea.example>",
        "Hello Ada Lovelace,",
        "- TEA-GREEN: 3 of 5 waiting, expected 2026-12-24",
        "<td>TEA-GREEN</td><td>5</td><td>3</td><td>2026-12-24</td>",
        "Content-Type: text/plain",
        "Content-Type: text/html",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{mail}");
    }
    // Lines with nothing waiting are not listed as waiting.
    assert!(!text.contains("- MUG"), "{mail}");
}

#[tokio::test]
async fn no_mail_without_an_address_or_for_a_closed_order() {
    let sink = Sink::start(None);
    let mailer = mailer(sink.port);
    assert_eq!(
        mailer.attempt(&backordered(None)).await,
        MailAttempt::Skipped
    );
    let no_email = Some(Customer {
        email: None,
        name: Some("Ada".into()),
    });
    assert_eq!(
        mailer.attempt(&backordered(no_email)).await,
        MailAttempt::Skipped
    );
    let full = OrderState {
        status: BackorderStatus::Full,
        backorder_qty: 5,
        customer: ada(),
        closed: false,
        lines: vec![line("1", "TEA-GREEN", 5, 5, None)],
    };
    let shipped = OrderState {
        status: BackorderStatus::None,
        backorder_qty: 0,
        closed: true,
        ..full.clone()
    };
    let closed = order_message("SO-2", Some(&full), &shipped)
        .unwrap()
        .into_message(
            "msg_closed".into(),
            2,
            chrono::Utc::now(),
            vec!["e2".into()],
        );
    assert_eq!(mailer.attempt(&closed).await, MailAttempt::Skipped);
    assert!(sink.mails(0).is_empty());
}

#[tokio::test]
async fn a_refused_connection_and_4xx_or_5xx_answers_are_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match mailer(port).attempt(&backordered(ada())).await {
        MailAttempt::Retry { error } => assert!(error.starts_with("SMTP"), "{error}"),
        other => panic!("{other:?}"),
    }
    for code in ["451", "554"] {
        let sink = Sink::start(Some(code));
        match mailer(sink.port).attempt(&backordered(ada())).await {
            MailAttempt::Retry { error } => assert!(error.contains(code), "{code}: {error}"),
            other => panic!("{code}: {other:?}"),
        }
        assert!(sink.mails(0).is_empty());
    }
}
