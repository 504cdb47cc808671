//! The admin console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the fantoccini client) against the real `serve`
//! on a real SQLite database. One browser for the whole walk, the way an
//! admin would go: sign in, filter the backorders, open an order, override
//! a line, recalculate it back, and see a form without its CSRF token
//! refused; and on the settings page, preview a change, apply it and see
//! the orders move. Needs Debian's `chromium` and `chromium-driver` (.ci/run
//! installs them).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console_support::{TOKEN, free_port, rush_book, serve_book, serve_snapshot};
use crate::daemon_support::block_on;

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver, see .ci/run)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium with a fresh profile, offline-friendly flags.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver starts a Chromium session")
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// The order ids the backorder table lists, in order.
async fn listed(client: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    for link in client
        .find_all(Locator::Css("#backorders tbody th a"))
        .await
        .unwrap()
    {
        ids.push(link.text().await.unwrap());
    }
    ids
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Clicks what navigates (a submit button, a link) and waits until the
/// next page replaced this one: a click returns before the navigation
/// it starts, and the old page's elements would go stale under us.
async fn follow(client: &Client, css: &str) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    click(client, css).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{css} did not load a page");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn path(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Line 1-1's stored backorder qty as the order page shows it.
async fn line_backordered(client: &Client) -> String {
    text(client, r#"tr[data-line="1-1"] td.backordered"#).await
}

#[test]
fn an_admin_signs_in_filters_overrides_and_recalculates_in_chromium() {
    let (_db, _daemon, base) = serve_book(Some(TOKEN));
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    block_on(async {
        let client = browser(&driver, profile.path()).await;
        walk(&client, &base).await;
        client.close().await.unwrap();
    });
}

async fn walk(c: &Client, base: &str) {
    // Sign in: a wrong token is refused, the right one lands where we asked.
    c.goto(&format!("{base}/backorders")).await.unwrap();
    assert_eq!(path(c).await, "/sign-in?next=/backorders");
    let token = c.find(Locator::Css("#token")).await.unwrap();
    token.send_keys("not-the-token").await.unwrap();
    follow(c, "main button[type=submit]").await;
    assert!(text(c, "p.error").await.contains("That token is wrong"));
    let token = c.find(Locator::Css("#token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    follow(c, "main button[type=submit]").await;
    assert_eq!(path(c).await, "/backorders");
    assert_eq!(listed(c).await, ["1", "2", "3", "4"], "oldest first");

    // Filter: status, SKU, warehouse, date range.
    let status = c.find(Locator::Css("#status")).await.unwrap();
    status.select_by_value("partial").await.unwrap();
    follow(c, "form.filters button").await;
    assert_eq!(listed(c).await, ["1"]);
    let status = c.find(Locator::Css("#status")).await.unwrap();
    status.select_by_value("any").await.unwrap();
    c.find(Locator::Css("#sku"))
        .await
        .unwrap()
        .send_keys("COFFEE")
        .await
        .unwrap();
    follow(c, "form.filters button").await;
    assert_eq!(listed(c).await, ["3", "4"]);
    c.find(Locator::Css("#warehouse"))
        .await
        .unwrap()
        .send_keys("EAST")
        .await
        .unwrap();
    follow(c, "form.filters button").await;
    assert_eq!(listed(c).await, ["3"]);
    c.find(Locator::Css("#sku"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Css("#warehouse"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    // Date inputs take typing in the browser's locale: set them as a picker would.
    c.execute(
        "document.getElementById('from').value = '2026-11-02';
         document.getElementById('to').value = '2026-11-03';",
        vec![],
    )
    .await
    .unwrap();
    follow(c, "form.filters button").await;
    assert_eq!(listed(c).await, ["2", "3"]);
    assert!(
        path(c).await.contains("from=2026-11-02"),
        "{}",
        path(c).await
    );

    // Open order 1 from the list.
    c.goto(&format!("{base}/backorders")).await.unwrap();
    follow(c, r#"#backorders a[href="/orders/1"]"#).await;
    assert_eq!(path(c).await, "/orders/1");
    assert_eq!(line_backordered(c).await, "2");
    assert!(text(c, "#backorder-status").await.starts_with("partial"));
    assert!(text(c, "#override-warning").await.contains("overwrites"));

    // Manage Backorder: Mark BackOrder (all of it), then a quantity of its own.
    follow(
        c,
        r#"form[aria-label="Manage line 1-1"] button[value="mark"]"#,
    )
    .await;
    assert_eq!(path(c).await, "/orders/1?changed=1-1");
    assert_eq!(line_backordered(c).await, "3");
    assert!(text(c, "#backorder-status").await.starts_with("full"));
    let qty = c.find(Locator::Css("#qty-1-1")).await.unwrap();
    qty.clear().await.unwrap();
    qty.send_keys("1").await.unwrap();
    follow(
        c,
        r#"form[aria-label="Manage line 1-1"] button[value="set"]"#,
    )
    .await;
    assert_eq!(line_backordered(c).await, "1");
    assert!(text(c, "#history").await.contains("console-override"));

    // A POST from the page without the CSRF token is refused, session or not.
    let refused = c
        .execute_async(
            "const done = arguments[0];
             fetch('/orders/1/lines', {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'line_id=1-1&action=unmark'}).then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(403));
    c.goto(&format!("{base}/orders/1")).await.unwrap();
    assert_eq!(
        line_backordered(c).await,
        "1",
        "the refused form changed nothing"
    );

    // Recalculate this order's SKUs: the page follows the progress until
    // written back, and the engine's value is restored.
    follow(c, "#recalc-title + form button").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(progress) = c.find(Locator::Css("#progress")).await
            && progress
                .text()
                .await
                .is_ok_and(|t| t.starts_with("Recalculated"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no written-back notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(line_backordered(c).await, "2");
    assert!(text(c, "#backorder-status").await.starts_with("partial"));

    // Signing out ends the session.
    follow(c, "form.sign-out button").await;
    assert_eq!(path(c).await, "/sign-in");
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(c).await, "/sign-in?next=/");
}

#[test]
fn an_admin_previews_and_applies_a_settings_change_in_chromium() {
    let (_db, _daemon, base) = serve_snapshot(&rush_book(), Some(TOKEN));
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    block_on(async {
        let client = browser(&driver, profile.path()).await;
        settings_walk(&client, &base).await;
        client.close().await.unwrap();
    });
}

async fn settings_walk(c: &Client, base: &str) {
    c.goto(&format!("{base}/settings")).await.unwrap();
    assert_eq!(path(c).await, "/sign-in?next=/settings");
    let token = c.find(Locator::Css("#token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    follow(c, "main button[type=submit]").await;
    assert_eq!(path(c).await, "/settings");
    assert_eq!(text(c, "#now-prioritize_rush").await, "off");
    assert!(
        text(c, "#meaning-prioritize_rush")
            .await
            .contains("rush orders")
    );
    assert_eq!(text(c, "#now-max_days_back").await, "no limit");

    // Preview: exact counts and the lines, nothing written yet.
    let rush = c.find(Locator::Css("#set-prioritize_rush")).await.unwrap();
    rush.select_by_value("on").await.unwrap();
    follow(c, "#preview").await;
    assert_eq!(text(c, "#lines-changed").await, "2");
    assert_eq!(text(c, "#orders-changed").await, "2");
    assert_eq!(text(c, "#orders-newly").await, "1");
    assert_eq!(text(c, "#orders-cleared").await, "1");
    let table = text(c, "#preview-lines").await;
    assert!(table.contains("1-1") && table.contains("2-1"), "{table}");
    c.goto(&format!("{base}/backorders")).await.unwrap();
    assert_eq!(listed(c).await, ["2"], "the preview wrote nothing");

    // Apply without the CSRF token: refused.
    let refused = c
        .execute_async(
            "const done = arguments[0];
             fetch('/settings/apply', {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'prioritize_rush=on'}).then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(403));
    c.goto(&format!("{base}/settings")).await.unwrap();
    assert_eq!(
        text(c, "#now-prioritize_rush").await,
        "off",
        "the refused form changed nothing"
    );

    // Preview again, then Apply: the page follows the recalculation.
    let rush = c.find(Locator::Css("#set-prioritize_rush")).await.unwrap();
    rush.select_by_value("on").await.unwrap();
    follow(c, "#preview").await;
    follow(c, "#apply").await;
    assert!(
        path(c).await.starts_with("/settings?applied="),
        "{}",
        path(c).await
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(notice) = c.find(Locator::Css("#applied")).await
            && notice
                .text()
                .await
                .is_ok_and(|t| t.contains("Every SKU is recalculated"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no written-back notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text(c, "#now-prioritize_rush").await, "on");
    // The orders moved: the rush order is served, the older one waits.
    follow(c, r#"nav a[href="/backorders"]"#).await;
    assert_eq!(listed(c).await, ["1"]);
}

/// [`console_support::book`] with a purchase order of 4 TEA due on
/// 2026-12-10: it covers order 1's 2 units short, not order 2's 5.
fn product_book() -> serde_json::Value {
    let mut book = crate::console_support::book();
    book["purchase_orders"] = json!([{
        "id": "PO-1", "sku": "TEA", "warehouse": "MAIN",
        "qty_ordered": 4, "qty_received": 0, "expected_date": "2026-12-10",
    }]);
    book
}

/// The SKUs the product search lists, in order.
async fn products_listed(client: &Client) -> Vec<String> {
    let mut skus = Vec::new();
    for link in client
        .find_all(Locator::Css("#products tbody th a"))
        .await
        .unwrap()
    {
        skus.push(link.text().await.unwrap());
    }
    skus
}

async fn search_products(c: &Client, min: &str, max: &str, warehouse: &str) -> Vec<String> {
    for (css, value) in [
        ("#min_backordered", min),
        ("#max_backordered", max),
        ("#product-warehouse", warehouse),
    ] {
        let field = c.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        if !value.is_empty() {
            field.send_keys(value).await.unwrap();
        }
    }
    follow(c, "form.filters button").await;
    products_listed(c).await
}

#[test]
fn an_admin_searches_products_by_backordered_range_and_reads_a_queue_in_chromium() {
    let (_db, _daemon, base) = serve_snapshot(&product_book(), Some(TOKEN));
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    block_on(async {
        let client = browser(&driver, profile.path()).await;
        product_walk(&client, &base).await;
        client.close().await.unwrap();
    });
}

async fn product_walk(c: &Client, base: &str) {
    c.goto(&format!("{base}/products")).await.unwrap();
    assert_eq!(path(c).await, "/sign-in?next=/products");
    let token = c.find(Locator::Css("#token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    follow(c, "main button[type=submit]").await;
    assert_eq!(path(c).await, "/products");
    assert!(text(c, "#search-help").await.contains("range"));
    assert_eq!(
        search_products(c, "0", "", "").await,
        ["COFFEE", "SUGAR", "TEA"]
    );

    // TEA has 7 units backordered (2 + 5), COFFEE 3 (2 from EAST + 1), SUGAR none.
    assert_eq!(search_products(c, "4", "", "").await, ["TEA"]);
    assert!(
        path(c).await.contains("min_backordered=4"),
        "{}",
        path(c).await
    );
    assert_eq!(search_products(c, "", "3", "").await, ["COFFEE", "SUGAR"]);
    assert_eq!(search_products(c, "1", "3", "").await, ["COFFEE"]);
    assert_eq!(search_products(c, "2", "", "EAST").await, ["COFFEE"]);
    assert!(search_products(c, "8", "", "").await.is_empty());
    assert!(text(c, "#no-products").await.contains("No product"));

    // Open TEA: the feed's figures, stock, the purchase order, the queue.
    assert_eq!(search_products(c, "1", "", "").await, ["COFFEE", "TEA"]);
    follow(c, r#"#products a[href="/products/TEA"]"#).await;
    assert_eq!(path(c).await, "/products/TEA");
    assert_eq!(text(c, "#feed-on-hand").await, "1");
    assert_eq!(text(c, "#feed-backordered").await, "7");
    assert_eq!(text(c, "#feed-on-order").await, "4");
    assert!(
        text(c, r#"#stock tr[data-warehouse="MAIN"]"#)
            .await
            .starts_with("MAIN yes 1")
    );
    assert!(text(c, "#purchase-orders").await.contains("PO-1"));
    let queue = c.find_all(Locator::Css("#queue-0 tbody tr")).await.unwrap();
    let mut rows = Vec::new();
    for row in queue {
        rows.push(row.attr("data-line").await.unwrap().unwrap());
    }
    assert_eq!(rows, ["1-1", "2-1"], "in the engine's order");
    let first = r#"#queue-0 tr[data-line="1-1"]"#;
    assert_eq!(text(c, &format!("{first} td.backordered")).await, "2");
    assert_eq!(text(c, &format!("{first} td.eta")).await, "2026-12-10");
    let second = r#"#queue-0 tr[data-line="2-1"]"#;
    assert_eq!(text(c, &format!("{second} td.eta")).await, "none");
    assert!(text(c, &format!("{second} td.num")).await.starts_with('2'));

    // From the queue to the order, and from its line back to the product.
    follow(c, r#"#queue-0 a[href="/orders/2"]"#).await;
    assert_eq!(path(c).await, "/orders/2");
    follow(c, r#"#lines a[href="/products/TEA"]"#).await;
    assert_eq!(path(c).await, "/products/TEA");
    // The backorder list filtered by the SKU links to it too.
    c.goto(&format!("{base}/backorders?sku=TEA")).await.unwrap();
    follow(c, "#product-link a").await;
    assert_eq!(path(c).await, "/products/TEA");
    c.goto(&format!("{base}/products/NOPE")).await.unwrap();
    assert!(text(c, "p.error").await.contains("NOPE"));
}

#[test]
fn an_admin_redelivers_a_dead_message_and_enables_a_gone_destination_in_chromium() {
    use crate::delivery_support::{Answer, Receiver, append, config_file, order_draft};
    use backorderd::delivery::message::MessageType;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let db = crate::support::TempDatabase::new();
    let imported = db.run(
        &["import", "-"],
        Some(crate::console_support::book().to_string().as_bytes()),
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    // One endpoint answers 500 until told otherwise; the other 410 Gone.
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    let flaky = Receiver::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Answer::Error500
        } else {
            Answer::Ok
        }
    });
    let gone_flag = Arc::new(AtomicBool::new(true));
    let flag = gone_flag.clone();
    let gone = Receiver::start(move |_| {
        if flag.load(Ordering::SeqCst) {
            Answer::Gone
        } else {
            Answer::Ok
        }
    });
    let config = config_file(&db, &[(&flaky.url(), None), (&gone.url(), None)], None, 2);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _daemon = crate::daemon_support::Daemon::start_with_args(
        &db,
        &[("BACKORDERD__HTTP__TOKEN", TOKEN)],
        &["--config", &config, "--listen", &listen],
    );
    let message = append(
        &db,
        vec![order_draft("M1", MessageType::OrderBackordered, None)],
    )
    .remove(0);
    let base = format!("http://127.0.0.1:{port}");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    block_on(async {
        let c = browser(&driver, profile.path()).await;
        c.goto(&format!("{base}/messages")).await.unwrap();
        let token = c.find(Locator::Css("#token")).await.unwrap();
        token.send_keys(TOKEN).await.unwrap();
        follow(&c, "main button[type=submit]").await;
        assert_eq!(path(&c).await, "/messages");

        // The 500s outlast the 2 s retry window: the message dies.
        let row = format!(r#"#dead tr[data-message="{}"]"#, message.id);
        let flaky_dest = format!("webhook:{}", flaky.url());
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.find(Locator::Css(&row)).await.is_err() {
            assert!(Instant::now() < deadline, "the message never died");
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.refresh().await.unwrap();
        }
        assert!(
            text(&c, &format!("{row} td.last-error"))
                .await
                .contains("500"),
            "{}",
            text(&c, &row).await
        );
        let dest_row = format!(r#"#destinations tr[data-destination="{flaky_dest}"]"#);
        let dead: i64 = text(&c, &format!("{dest_row} td.dead"))
            .await
            .parse()
            .unwrap();
        assert!(dead >= 1, "{dead}");
        // The 410 disabled the other destination.
        let gone_row = format!(
            r#"#destinations tr[data-destination="webhook:{}"]"#,
            gone.url()
        );
        assert!(
            text(&c, &format!("{gone_row} td.disabled"))
                .await
                .starts_with("since")
        );

        // Without the CSRF token the buttons' forms are refused.
        let refused = c
            .execute_async(
                "const [body, done] = arguments;
                 fetch('/messages/redeliver', {method: 'POST',
                     headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                     body}).then(r => done(r.status));",
                vec![json!(format!(
                    "id={}&destination={}",
                    message.id,
                    urlencoding(&flaky_dest)
                ))],
            )
            .await
            .unwrap();
        assert_eq!(refused, json!(403));
        assert!(c.find(Locator::Css(&row)).await.is_ok());

        // Redeliver, with the endpoint healthy again: it arrives.
        failing.store(false, Ordering::SeqCst);
        follow(&c, &format!("{row} button")).await;
        assert!(
            path(&c).await.starts_with("/messages?redelivered="),
            "{}",
            path(&c).await
        );
        assert!(text(&c, "#redelivered").await.contains(&message.id));
        flaky.wait_for(std::slice::from_ref(&message.id), Duration::from_secs(30));
        c.refresh().await.unwrap();
        assert!(c.find(Locator::Css(&row)).await.is_err(), "no longer dead");

        // Enable the gone destination: the message waiting for it arrives.
        gone_flag.store(false, Ordering::SeqCst);
        follow(&c, &format!("{gone_row} button")).await;
        assert!(text(&c, "#enabled").await.contains(&gone.url()));
        assert_eq!(text(&c, &format!("{gone_row} td.disabled")).await, "no");
        gone.wait_for(std::slice::from_ref(&message.id), Duration::from_secs(30));
        c.close().await.unwrap();
    });
}

fn urlencoding(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_owned()
}
