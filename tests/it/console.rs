//! The admin console over plain HTTP (no browser): sessions, cookies, CSRF,
//! the open console without a token. tests/it/console_browser.rs drives
//! the pages in Chromium.

use crate::console_support::{TOKEN, agent, serve_book};

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    text: String,
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
    let mut response = response.expect("the daemon answers");
    let header = |name: &str| -> Vec<String> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let location = header("location").pop();
    let set_cookie = header("set-cookie");
    Page {
        status: response.status().as_u16(),
        location,
        set_cookie,
        text: response.body_mut().read_to_string().unwrap(),
    }
}

fn get(base: &str, path: &str, cookie: Option<&str>, extra: &[(&str, &str)]) -> Page {
    let mut request = agent().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        request = request.header("Cookie", c);
    }
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    read(request.call())
}

fn post_form(base: &str, path: &str, cookie: Option<&str>, form: &str) -> Page {
    let mut request = agent()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        request = request.header("Cookie", c);
    }
    read(request.send(form.as_bytes()))
}

/// `name=value` of a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    html[at..at + 64].to_owned()
}

#[test]
fn with_a_token_the_console_asks_for_it_and_its_session_guards_every_form() {
    let (_db, _daemon, base) = serve_book(Some(TOKEN));

    // A page without a session goes to the sign-in form, keeping where it was.
    let page = get(&base, "/orders/1", None, &[]);
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.location.as_deref(), Some("/sign-in?next=/orders/1"));
    let form = get(&base, "/sign-in?next=/orders/1", None, &[]);
    assert_eq!(form.status, 200);
    assert!(
        form.text.contains(r#"<label for="token">"#),
        "{}",
        form.text
    );

    // A wrong token: 401, the form again, the token given never shown.
    let wrong = post_form(&base, "/sign-in", None, "token=guess-42-xyz&next=/orders/1");
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("That token is wrong"), "{}", wrong.text);
    assert!(!wrong.text.contains("guess-42-xyz"));
    assert!(wrong.set_cookie.is_empty());

    // The right one: a session cookie, HttpOnly and SameSite=Strict, not
    // Secure over plain HTTP but Secure behind a TLS proxy.
    let signed = post_form(
        &base,
        "/sign-in",
        None,
        &format!("token={TOKEN}&next=/orders/1"),
    );
    assert_eq!(signed.status, 303, "{}", signed.text);
    assert_eq!(signed.location.as_deref(), Some("/orders/1"));
    let set = &signed.set_cookie[0];
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let behind_tls = read(
        agent()
            .post(format!("{base}/sign-in"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Forwarded-Proto", "https")
            .send(format!("token={TOKEN}").as_bytes()),
    );
    assert!(
        behind_tls.set_cookie[0].contains("; Secure"),
        "{:?}",
        behind_tls.set_cookie
    );
    // An open redirect is not followed: `next` must be a path of this site.
    let away = post_form(
        &base,
        "/sign-in",
        None,
        &format!("token={TOKEN}&next=//evil.example/"),
    );
    assert_eq!(away.location.as_deref(), Some("/"));

    let cookie = cookie_pair(set);
    let order = get(&base, "/orders/1", Some(&cookie), &[]);
    assert_eq!(order.status, 200, "{}", order.text);
    let csrf = csrf_of(&order.text);

    // The cookie opens the console, not the API.
    let api = get(&base, "/v1/backorders", Some(&cookie), &[]);
    assert_eq!(api.status, 401, "{}", api.text);

    // A form without the session, or without or with a wrong CSRF token: 403, nothing sent.
    let override_form = |csrf: &str| format!("csrf={csrf}&line_id=1-1&action=mark&backorder_qty=");
    for (cookie, form) in [
        (None, override_form(&csrf)),
        (Some(cookie.as_str()), "line_id=1-1&action=mark".to_owned()),
        (Some(cookie.as_str()), override_form(&"0".repeat(64))),
    ] {
        let refused = post_form(&base, "/orders/1/lines", cookie, &form);
        assert_eq!(refused.status, 403, "{form}: {}", refused.text);
    }
    let unchanged = get(&base, "/orders/1", Some(&cookie), &[]);
    assert!(
        !unchanged.text.contains("console-override"),
        "{}",
        unchanged.text
    );

    // With both, the override is applied and shows in the history.
    let sent = post_form(
        &base,
        "/orders/1/lines",
        Some(&cookie),
        &override_form(&csrf),
    );
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert_eq!(sent.location.as_deref(), Some("/orders/1?changed=1-1"));
    let changed = get(&base, "/orders/1?changed=1-1", Some(&cookie), &[]);
    assert!(
        changed.text.contains("console-override"),
        "{}",
        changed.text
    );

    // Signing out ends the session: the same cookie no longer opens a page.
    let out = post_form(&base, "/sign-out", Some(&cookie), &format!("csrf={csrf}"));
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/sign-in"));
    assert!(
        out.set_cookie[0].contains("Max-Age=0"),
        "{:?}",
        out.set_cookie
    );
    let after = get(&base, "/orders/1", Some(&cookie), &[]);
    assert_eq!(after.status, 303);
}

#[test]
fn without_a_token_the_console_is_open_but_its_forms_still_need_the_csrf_token() {
    let (_db, _daemon, base) = serve_book(None);
    let first = get(&base, "/", None, &[]);
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.text.contains("Recalculate everything now"));
    assert!(!first.text.contains("Sign out"));
    // The session is only there to carry the CSRF token.
    let cookie = cookie_pair(&first.set_cookie[0]);
    let csrf = csrf_of(&first.text);
    let sign_in = get(&base, "/sign-in", None, &[]);
    assert_eq!(sign_in.location.as_deref(), Some("/"));

    let refused = post_form(&base, "/recalculate", None, &format!("csrf={csrf}"));
    assert_eq!(refused.status, 403);
    let refused = post_form(&base, "/recalculate", Some(&cookie), "");
    assert_eq!(refused.status, 403);
    let sent = post_form(
        &base,
        "/recalculate",
        Some(&cookie),
        &format!("csrf={csrf}"),
    );
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert_eq!(sent.location.as_deref(), Some("/?recalc=all"));
    // The progress is shown until written back, then says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = get(&base, "/?recalc=all", Some(&cookie), &[]);
        assert_eq!(page.status, 200);
        if page
            .text
            .contains("Written back: every SKU is recalculated.")
        {
            assert!(!page.text.contains("http-equiv=\"refresh\""));
            break;
        }
        assert!(
            page.text.contains("http-equiv=\"refresh\""),
            "{}",
            page.text
        );
        assert!(std::time::Instant::now() < deadline, "{}", page.text);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The style sheet is in the binary; unknown paths stay JSON errors.
    let css = get(&base, "/assets/console.css", None, &[]);
    assert_eq!(css.status, 200);
    assert!(css.text.contains("focus-visible"));
    let missing = get(&base, "/no-such-page", None, &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("no such endpoint"));
}

#[test]
fn the_product_and_messages_pages_need_the_session_and_their_forms_the_csrf_token() {
    let (_db, _daemon, base) = serve_book(Some(TOKEN));
    for path in ["/products", "/products/TEA", "/messages"] {
        let page = get(&base, path, None, &[]);
        assert_eq!(page.status, 303, "{path}: {}", page.text);
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/sign-in?next={path}").as_str())
        );
    }
    let signed = post_form(&base, "/sign-in", None, &format!("token={TOKEN}"));
    let cookie = cookie_pair(&signed.set_cookie[0]);
    let messages = get(&base, "/messages", Some(&cookie), &[]);
    assert_eq!(messages.status, 200, "{}", messages.text);
    assert!(
        messages.text.contains("No dead message."),
        "{}",
        messages.text
    );
    let csrf = csrf_of(&messages.text);
    let redeliver = |csrf: &str| format!("csrf={csrf}&id=msg_1&destination=email");
    let enable = |csrf: &str| format!("csrf={csrf}&destination=email");
    for (path, form) in [
        ("/messages/redeliver", redeliver as fn(&str) -> String),
        ("/messages/enable", enable),
    ] {
        for (cookie, body) in [
            (None, form(&csrf)),
            (Some(cookie.as_str()), form("")),
            (Some(cookie.as_str()), form(&"0".repeat(64))),
        ] {
            let refused = post_form(&base, path, cookie, &body);
            assert_eq!(refused.status, 403, "{path} {body}: {}", refused.text);
        }
        // With both, the store is asked: nothing of the kind exists here.
        let sent = post_form(&base, path, Some(&cookie), &form(&csrf));
        assert_eq!(sent.status, 404, "{path}: {}", sent.text);
    }
    // A bad bound of the product search is named.
    let bad = get(&base, "/products?min_backordered=x", Some(&cookie), &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("Backordered from"), "{}", bad.text);
    let reversed = get(
        &base,
        "/products?min_backordered=5&max_backordered=1",
        Some(&cookie),
        &[],
    );
    assert_eq!(reversed.status, 400, "{}", reversed.text);
    let unknown = get(
        &base,
        "/products?min_backordered=1&warehouse=NOWHERE",
        Some(&cookie),
        &[],
    );
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(unknown.text.contains("NOWHERE"), "{}", unknown.text);
}

#[test]
fn the_overview_charts_the_backordered_units_from_the_daemons_own_samples() {
    let (db, _daemon, base) = serve_book(None);
    // The book backorders 2 + 5 (TEA) and 2 + 1 (COFFEE) units; the daemon
    // samples them from its heartbeat (1 s here).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = get(&base, "/", None, &[]);
        assert_eq!(page.status, 200);
        if page.text.contains(r#"<svg id="chart-units""#) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.text);
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        chart(&page.text, "chart-units").contains(r#"data-latest="10""#),
        "{}",
        page.text
    );
    assert!(page.text.contains("latest 10 units"), "{}", page.text);
    // A stock change is written back, its lag measured and charted, and
    // the units fall to 6 (TEA's 5 on hand serve order 1 and 2 of order 2).
    let event = serde_json::json!({"id": "stock-1", "type": "inventory_set",
        "sku": "TEA", "warehouse": "MAIN", "on_hand": 5});
    let sent = db.run(
        &["event", "-", "--wait"],
        Some(event.to_string().as_bytes()),
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = get(&base, "/", None, &[]);
        if page.text.contains(r#"<svg id="chart-lag""#)
            && chart(&page.text, "chart-units").contains(r#"data-latest="6""#)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.text);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The SVG element `id` of a page.
fn chart<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!(r#"<svg id="{id}""#)).expect("the chart");
    let end = html[start..].find("</svg>").expect("its end");
    &html[start..start + end]
}

/// A SKU with 250 waiting lines: its product page lists the queue 100
/// lines a page, in the engine's order (oldest first), with the place of
/// each, and links to the previous and next pages.
#[test]
fn the_product_page_pages_a_long_queue() {
    let orders: Vec<serde_json::Value> = (1..=250)
        .map(|i| {
            serde_json::json!({
                "id": format!("O{i:03}"),
                "order_date": format!("2026-11-01T{:02}:{:02}:00Z", i / 60, i % 60),
                "lines": [{"id": format!("O{i:03}-1"), "sku": "TEA", "qty": 1}],
            })
        })
        .collect();
    let book = serde_json::json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [{"sku": "TEA", "warehouse": "MAIN", "on_hand": 0}],
        "orders": orders,
    });
    let (_db, _daemon, base) = crate::console_support::serve_snapshot(&book, None);
    let rows = |text: &str| -> Vec<String> {
        text.split(r#"<tr data-line=""#)
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_owned())
            .collect()
    };
    let first = get(&base, "/products/TEA", None, &[]);
    assert_eq!(first.status, 200);
    let listed = rows(&first.text);
    assert_eq!(listed.len(), 100, "{}", first.text);
    assert_eq!(
        (listed[0].as_str(), listed[99].as_str()),
        ("O001-1", "O100-1")
    );
    assert!(
        first
            .text
            .contains("250 of 250 active lines wait (waiting lines 1 to 100 listed)")
    );
    assert!(
        first
            .text
            .contains(r#"href="/products/TEA?queue_page=2#queue-title" rel="next""#)
    );
    assert!(!first.text.contains(r#"rel="prev""#));

    let second = get(&base, "/products/TEA?queue_page=2", None, &[]);
    assert_eq!(second.status, 200);
    let listed = rows(&second.text);
    assert_eq!((listed.len(), listed[0].as_str()), (100, "O101-1"));
    // The place is the line's among the pool's active lines.
    assert!(
        second
            .text
            .contains(r#"<tr data-line="O101-1"><td class="num">101</td>"#),
        "{}",
        second.text
    );
    assert!(
        second
            .text
            .contains(r#"href="/products/TEA?queue_page=1#queue-title" rel="prev""#)
    );
    assert!(second.text.contains(r#"rel="next""#));

    let last = get(&base, "/products/TEA?queue_page=3", None, &[]);
    let listed = rows(&last.text);
    assert_eq!((listed.len(), listed[49].as_str()), (50, "O250-1"));
    assert!(last.text.contains("(waiting lines 201 to 250 listed)"));
    assert!(!last.text.contains(r#"rel="next""#));

    let beyond = get(&base, "/products/TEA?queue_page=4", None, &[]);
    assert_eq!(beyond.status, 200);
    assert!(rows(&beyond.text).is_empty());
    assert!(beyond.text.contains("No waiting line on this page."));
    for bad in ["0", "x", "-1"] {
        let refused = get(&base, &format!("/products/TEA?queue_page={bad}"), None, &[]);
        assert_eq!(refused.status, 400, "queue_page={bad}");
    }
}
