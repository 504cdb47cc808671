use super::*;

fn message(kind: MessageType) -> Message {
    let mut message = sample(kind);
    message.id = "msg_x".into();
    message
}

#[test]
fn the_shipped_templates_render_every_type_with_its_placeholders() {
    let templates = Templates::load(None).unwrap();
    for kind in [
        MessageType::OrderBackordered,
        MessageType::OrderBackorderCleared,
        MessageType::OrderBackorderChanged,
    ] {
        let mail = templates
            .render(&message(kind), "Thirsty Tea")
            .unwrap()
            .unwrap();
        assert!(
            mail.subject.contains("SAMPLE") && !mail.subject.contains('\n'),
            "{kind}: {mail:?}"
        );
        for part in [&mail.text, &mail.html] {
            assert!(
                part.contains("Sample Customer") && part.contains("Thirsty Tea"),
                "{kind}: {part}"
            );
            assert!(part.contains("SKU-1"), "{kind}: {part}");
        }
    }
    let backordered = templates
        .render(&message(MessageType::OrderBackordered), "T")
        .unwrap()
        .unwrap();
    assert!(
        backordered
            .text
            .contains("- SKU-1: 3 of 4 waiting, expected 2026-12-24"),
        "{}",
        backordered.text
    );
}

#[test]
fn a_file_in_templates_dir_replaces_only_its_shipped_template_and_html_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("order.backordered.subject.txt"),
        "Order {{ order_id }} from {{ company_name }}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("order.backordered.html"),
        "<p>{{ company_name }}</p>",
    )
    .unwrap();
    let templates = Templates::load(Some(dir.path())).unwrap();
    let mail = templates
        .render(&message(MessageType::OrderBackordered), "Tea & <Co>")
        .unwrap()
        .unwrap();
    assert_eq!(mail.subject, "Order SAMPLE from Tea & <Co>");
    assert_eq!(mail.html, "<p>Tea &amp; &lt;Co&gt;</p>");
    assert!(
        mail.text.contains("is waiting for stock"),
        "the shipped text stays: {}",
        mail.text
    );
}

#[test]
fn a_broken_or_misspelt_template_is_refused_at_load_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.backorder_cleared.txt");
    for (text, why) in [
        ("{% for line in lines %}", "syntax"),
        ("Hello {{ custmer_name }}", "undefined"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Templates::load(Some(dir.path()))
            .err()
            .expect(why)
            .to_string();
        assert!(err.contains("order.backorder_cleared.txt"), "{why}: {err}");
    }
}

#[test]
fn smtp_urls_are_read_with_their_tls_mode_port_and_login_and_shown_redacted() {
    let t = SmtpTarget::parse("smtp://user%40x:p%2Fss@mail.example:2525?tls=starttls").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.tls),
        ("mail.example", 2525, Tls::StartTls)
    );
    let (user, password) = t.credentials.as_ref().unwrap();
    assert_eq!(
        (user.as_str(), password.expose_secret()),
        ("user@x", "p/ss")
    );
    assert!(!format!("{t:?}").contains("p/ss"));
    assert_eq!(SmtpTarget::parse("smtps://mail.example").unwrap().port, 465);
    assert_eq!(SmtpTarget::parse("smtp://mail.example").unwrap().port, 587);
    let plain = SmtpTarget::parse("smtp://127.0.0.1?tls=none").unwrap();
    assert_eq!((plain.port, plain.tls), (25, Tls::None));
    for bad in [
        "http://mail.example",
        "smtp://u@mail.example",
        "smtp://mail.example?tls=maybe",
        "smtps://m.example?tls=none",
        "smtp://m.example?x=1",
        "mail.example",
    ] {
        let err = SmtpTarget::parse(bad).unwrap_err();
        assert!(!err.contains("hunter2"), "{bad}: {err}");
    }
    assert_eq!(
        SmtpTarget::redacted("smtp://u:hunter2@m.example:587"),
        "smtp://u:***@m.example:587"
    );
}
