//! The delivery configuration through the real binary: `check-config`
//! shows `[[webhooks]]` and `[email]` with their secrets redacted, and
//! `check-config` and `serve` refuse a bad value naming its key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TempDatabase, backorderd};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const GOOD: &str = r#"
[[webhooks]]
url = "https://oms.example.com/hooks/backorders"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
types = ["order.backordered", "order.backorder_cleared"]
timeout_secs = 5

[[webhooks]]
url = "http://127.0.0.1:9000/all"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[email]
smtp_url = "smtp://mailer:hunter2@mail.example.com:587?tls=starttls"
from = "Thirsty Tea <backorders@thirstytea.example>"

[notify]
retry_window_secs = 3600
"#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_config_shows_the_destinations_with_secrets_redacted() {
    let db = TempDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "b.toml", GOOD);
    let run = backorderd(
        &["--config", &file, "check-config"],
        None,
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    for part in [
        "[[webhooks]]\n",
        "url = \"https://oms.example.com/hooks/backorders\"",
        "secret = \"***\"",
        "types = [\"order.backordered\",\"order.backorder_cleared\"]",
        "timeout_secs = 5\n",
        // The second endpoint: every type, the default timeout.
        "url = \"http://127.0.0.1:9000/all\"",
        "timeout_secs = 15",
        "\"product.availability_changed\"",
        "[email]",
        "smtp_url = \"smtp://mailer:***@mail.example.com:587?tls=starttls\"",
        "types = [\"order.backordered\",\"order.backorder_cleared\"]",
        "retry_window_secs = 3600",
    ] {
        assert!(out.contains(part), "{part:?} missing:\n{out}");
    }
    assert!(
        !out.contains("hunter2") && !out.contains("MfKQ9r8"),
        "{out}"
    );
    // What it prints reads back as TOML.
    let back = config::Config::builder()
        .add_source(config::File::from_str(out, config::FileFormat::Toml))
        .build()
        .unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert_eq!(back.get_array("webhooks").unwrap().len(), 2);

    // Without destinations, none is shown and the window has its default.
    let run = backorderd(
        &["check-config"],
        None,
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains("webhooks") && !run.stdout.contains("[email]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("retry_window_secs = 86400"),
        "{}",
        run.stdout
    );
}

/// `serve` with `config`: it must exit 1 at once, before listening.
fn serve_refuses(db: &TempDatabase, file: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backorderd"))
        .args([
            "--config",
            file,
            "--database-url",
            &db.url,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a bad configuration");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn check_config_and_serve_refuse_bad_destinations_naming_the_key() {
    let db = TempDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("order.backordered.txt"),
        "Hello {{ customer_name }\n{% for line in lines %}\n",
    )
    .unwrap();
    let webhook = |key_value: &str| {
        format!("[[webhooks]]\nurl = \"https://h.example/x\"\nsecret = \"{SECRET}\"\n{key_value}\n")
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (webhook("").replace("https://h.example/x", "https//no-scheme"), "webhooks[0].url", "not a URL"),
        (webhook("").replace("https://h.example/x", "ftp://h.example/x"), "webhooks[0].url", "http:// or https://"),
        (webhook("").replace("whsec_", ""), "webhooks[0].secret", "whsec_"),
        (webhook("").replace("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "not base64!"), "webhooks[0].secret", "base64"),
        (webhook("types = [\"order.shipped\"]"), "webhooks[0].types", "unknown message type \"order.shipped\""),
        (webhook("timeout_secs = 0"), "webhooks[0].timeout_secs", "from 1 to 3600"),
        (
            "[email]\nsmtp_url = \"smtp://mail.example\"\nfrom = \"a@b.example\"\ntypes = [\"product.availability_changed\"]\n".into(),
            "email.types",
            "no customer",
        ),
        (
            "[email]\nsmtp_url = \"imap://u:hunter2@mail.example\"\nfrom = \"a@b.example\"\n".into(),
            "email.smtp_url",
            "neither smtp nor smtps",
        ),
        (
            "[email]\nsmtp_url = \"smtp://mail.example\"\nfrom = \"not an address\"\n".into(),
            "email.from",
            "not an address",
        ),
        (
            format!(
                "[email]\nsmtp_url = \"smtp://mail.example\"\nfrom = \"a@b.example\"\ntemplates_dir = \"{}\"\n",
                templates.display()
            ),
            "email.templates_dir",
            "order.backordered.txt",
        ),
        ("[notify]\nretry_window_secs = 0\n".into(), "notify.retry_window_secs", "from 1 to"),
    ];
    for (n, (text, key, reason)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("bad{n}.toml"), text);
        let run = backorderd(
            &["--config", &file, "check-config"],
            None,
            &[("DATABASE_URL", db.url.as_str())],
        );
        assert_eq!(run.code, 1, "{text}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        for part in [&format!("`{key}`"), *reason, &file] {
            assert!(
                run.stderr.contains(part),
                "{part:?} missing for\n{text}\n{}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("hunter2") && !run.stderr.contains("MfKQ9r8"),
            "{}",
            run.stderr
        );
        if [0, 2, 4, 9].contains(&n) {
            let stderr = serve_refuses(&db, &file);
            assert!(
                stderr.contains(&format!("`{key}`")) && stderr.contains(reason),
                "serve: {stderr}"
            );
        }
    }
    // The template error names the line of the mistake.
    let file = write(&dir, "tpl.toml", &cases[9].0);
    let run = backorderd(
        &["--config", &file, "check-config"],
        None,
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert!(
        run.stderr.contains("order.backordered.txt:1"),
        "{}",
        run.stderr
    );
    assert!(!db.path.exists(), "nothing was opened");
}
