//! The HTTP API end to end: the real `backorderd serve` on a free loopback
//! port, driven with a real HTTP client (README, "HTTP API").

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::daemon_support::{Daemon, jsonl};
use crate::support::{Backend, TempDatabase, on_both_backends};

const TOKEN: &str = "test-token-3f9a";

/// A port nobody listens on now (the daemon binds it a moment later).
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

struct Api {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    /// Asserts the status and returns the body as JSON.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        self.json()
    }
}

impl Api {
    fn new(port: u16, token: Option<&str>) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api {
            base: format!("http://127.0.0.1:{port}"),
            token: token.map(str::to_owned),
            agent,
        }
    }

    fn without_token(&self) -> Api {
        Api {
            base: self.base.clone(),
            token: None,
            agent: self.agent.clone(),
        }
    }

    fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.without_token()
        }
    }

    fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = response.expect("the daemon answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        Answer { status, text }
    }

    fn get(&self, path: &str) -> Answer {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::read(request.call())
    }

    fn post(&self, path: &str, body: &[u8]) -> Answer {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::read(request.send(body))
    }

    fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.post(path, body.to_string().as_bytes())
    }

    /// One sample of the Prometheus text, 0 when absent.
    fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics");
        assert_eq!(text.status, 200, "{}", text.text);
        text.text
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// Waits until each sample reaches its least value: a job's figures
    /// are recorded just after its write-back, which `?wait=true` and the
    /// dirty count already show. Panics naming the ones that did not.
    fn wait_for_metrics(&self, least: &[(&str, f64)]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let short: Vec<String> = least
                .iter()
                .map(|&(sample, at_least)| (sample, at_least, self.metric(sample)))
                .filter(|&(_, at_least, now)| now < at_least)
                .map(|(sample, at_least, now)| format!("{sample} is {now}, not {at_least}"))
                .collect();
            if short.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "{short:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The stored state, as `export` prints it, without its `as_of`.
fn state(db: &TempDatabase) -> Value {
    let mut export = db.run(&["export"], None).ok_json();
    export.as_object_mut().unwrap().remove("as_of");
    export
}

/// Seven orders over two SKUs; order dates tie, differ below the second
/// and come in other offsets, so that "oldest first" is put to the test.
fn book() -> Value {
    let order = |id: &str, date: &str, lines: &[(&str, i64)]| {
        let lines: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(k, (sku, qty))| json!({"id": format!("{id}-{k}"), "sku": sku, "qty": qty}))
            .collect();
        json!({"id": id, "order_date": date, "lines": lines})
    };
    json!({
        "warehouses": [{"id": "MAIN", "kind": "normal"}],
        "inventory": [
            {"sku": "TEA", "warehouse": "MAIN", "on_hand": 3},
            {"sku": "MUG", "warehouse": "MAIN", "on_hand": 1}
        ],
        "purchase_orders": [
            {"id": "PO-1", "sku": "TEA", "warehouse": "MAIN", "qty_ordered": 4,
             "qty_received": 0, "expected_date": "2026-12-01"}
        ],
        "orders": [
            order("A", "2026-11-01T10:00:00Z", &[("TEA", 2)]),
            order("C", "2026-11-01T10:00:00.250Z", &[("TEA", 2), ("MUG", 1)]),
            order("B", "2026-11-01T10:00:00.500Z", &[("TEA", 2)]),
            order("E", "2026-11-02T00:00:00Z", &[("TEA", 1)]),
            order("D", "2026-11-02T00:00:00Z", &[("MUG", 2)]),
            order("F", "2026-10-30T00:00:00+02:00", &[("TEA", 1)]),
            order("G", "2026-11-03T00:00:00Z", &[("TEA", 5), ("MUG", 0)]),
        ]
    })
}

/// The ids of every page of `/v1/backorders?QUERY`, following `next`.
fn pages(api: &Api, query: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .get(&format!("/v1/backorders?{query}&after={after}"))
            .expect(200);
        out.push(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_owned())
                .collect(),
        );
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return out,
        }
        assert!(out.len() < 20, "paging does not end: {out:?}");
    }
}

fn line_of<'a>(order: &'a Value, line_id: &str) -> &'a Value {
    order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["line_id"] == line_id)
        .unwrap_or_else(|| panic!("no line {line_id} in {order}"))
}

fn the_http_api_takes_events_and_answers_reads(backend: Backend) {
    let db = TempDatabase::of(backend);
    let imported = db.run(&["import", "-"], Some(book().to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(
        &db,
        &[
            ("BACKORDERD__HTTP__TOKEN", TOKEN),
            ("BACKORDERD__HTTP__BODY_LIMIT_BYTES", "4096"),
        ],
        &["--listen", &listen],
    );
    let api = Api::new(port, Some(TOKEN));
    let anonymous = api.without_token();

    // Health checks need no token; everything else does.
    assert_eq!(anonymous.get("/healthz").expect(200)["status"], "ok");
    let ready = anonymous.get("/readyz").expect(200);
    assert_eq!(ready["ready"], true, "{ready}");
    let event = br#"{"id":"sneaky","type":"recalculate","all":true}"#;
    for (who, code) in [(&anonymous, 401), (&api.with_token("wrong"), 401)] {
        for path in [
            "/metrics",
            "/v1/backorders",
            "/v1/orders/A",
            "/v1/products/TEA",
        ] {
            let answer = who.get(path);
            assert_eq!(answer.status, code, "{path}: {}", answer.text);
            assert!(answer.json()["error"].is_string());
        }
        who.post("/v1/events", event).expect(code);
        who.post("/v1/recalculate", br#"{"all":true}"#).expect(code);
    }

    // The import's recalculation, then a full one, written back.
    let done = api
        .post_json("/v1/recalculate?wait=true", &json!({"all": true}))
        .expect(200);
    assert!(
        done["id"].as_str().unwrap().starts_with("recalc-"),
        "{done}"
    );
    assert_eq!(done["written_back"], true);
    // The write-back is visible before its job's figures are recorded (and
    // when the import's job absorbed this event, no other job finished).
    api.wait_for_metrics(&[
        ("backorderd_jobs_total{outcome=\"done\"}", 1.0),
        ("backorderd_recalculation_duration_seconds_count", 1.0),
        ("backorderd_event_to_result_lag_seconds_count", 1.0),
    ]);
    let jobs_before = api.metric("backorderd_jobs_total{outcome=\"done\"}");
    let lines_before = api.metric("backorderd_lines_changed_total");
    let lag_before = api.metric("backorderd_event_to_result_lag_seconds_count");
    let durations_before = api.metric("backorderd_recalculation_duration_seconds_count");
    let batches_before = api.metric("backorderd_batch_duration_seconds_count");
    assert!(jobs_before >= 1.0 && lines_before >= 1.0);

    // Paging: oldest first (instants, not text), ties by id.
    assert_eq!(
        pages(&api, "status=any&limit=2"),
        [vec!["C", "B"], vec!["D", "E"], vec!["G"]]
    );
    assert_eq!(pages(&api, "limit=100"), [vec!["C", "B", "D", "E", "G"]]);
    assert_eq!(
        pages(&api, "status=full&limit=3"),
        [vec!["B", "D", "E"], vec!["G"]]
    );
    assert_eq!(pages(&api, "status=partial"), [vec!["C"]]);
    assert_eq!(pages(&api, "sku=MUG"), [vec!["D"]]);
    assert_eq!(
        pages(&api, "sku=TEA&limit=1").concat(),
        ["C", "B", "E", "G"]
    );
    // Date ranges (a day is whole, UTC; a time is an instant, compared as
    // one whatever its fractional digits) and the ship-from warehouse.
    assert_eq!(pages(&api, "from=2026-11-02").concat(), ["D", "E", "G"]);
    assert_eq!(pages(&api, "to=2026-11-01").concat(), ["C", "B"]);
    assert_eq!(
        pages(&api, "from=2026-11-01T10:00:00.5Z&to=2026-11-02&limit=1").concat(),
        ["B", "D", "E"]
    );
    assert_eq!(
        pages(
            &api,
            "from=2026-11-01T11:00:00%2B01:00&to=2026-11-02T00:00:00Z"
        )
        .concat(),
        ["C", "B"]
    );
    assert_eq!(pages(&api, "warehouse=MAIN").concat(), Vec::<String>::new());
    for bad in ["from=yesterday", "to=2026-13-01"] {
        let answer = api.get(&format!("/v1/backorders?{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
        assert!(answer.text.contains("YYYY-MM-DD"), "{bad}: {}", answer.text);
    }
    for bad in [
        "status=some",
        "limit=0",
        "limit=x",
        "after=zz",
        "colour=red",
    ] {
        let answer = api.get(&format!("/v1/backorders?{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
    }

    // An order and why: B (full) waits behind F, A and C, who hold TEA's 3 units.
    let b = api.get("/v1/orders/B").expect(200);
    assert_eq!(b["backorder_status"], "full");
    assert_eq!(b["scope"], "active");
    let line = line_of(&b, "B-0");
    assert_eq!(line["backorder_qty"], 2);
    assert_eq!(line["eta"], "2026-12-01");
    let reason = &line["reason"];
    assert_eq!(reason["pool"], json!({"sku": "TEA"}));
    assert_eq!(reason["available"], 3);
    assert_eq!(reason["promised_ahead"], 3);
    assert_eq!(reason["allocated"], 0);
    let c = api.get("/v1/orders/C").expect(200);
    assert_eq!(c["backorder_status"], "partial");
    assert_eq!(line_of(&c, "C-1")["reason"]["allocated"], 1);
    assert_eq!(api.get("/v1/orders/NOPE").expect(404)["status"], 404);
    api.get("/v1/nothing-here").expect(404);
    api.get("/v1/events").expect(405);
    api.post("/v1/orders/B", b"{}").expect(405);

    // A product: stock, promises, open purchase orders.
    let tea = api.get("/v1/products/TEA").expect(200);
    assert_eq!(tea["total"]["on_hand"], 3);
    assert_eq!(tea["total"]["available"], 3);
    assert_eq!(tea["total"]["allocated"], 3);
    assert_eq!(tea["total"]["backordered"], 2 + 2 + 1 + 5);
    assert_eq!(tea["open_purchase_orders"][0]["id"], "PO-1");
    assert_eq!(tea["open_purchase_orders"][0]["open_qty"], 4);
    api.get("/v1/products/NOPE").expect(404);

    // One event, waited for: 4 units of TEA reach C, then B.
    let receipt = json!({"id": "e1", "type": "po_received", "sku": "TEA",
                         "warehouse": "MAIN", "qty": 4, "po_id": "PO-1"});
    let answer = api.post_json("/v1/events?wait=true", &receipt).expect(200);
    assert_eq!(
        answer["results"],
        json!([{"id": "e1", "outcome": "accepted"}])
    );
    assert_eq!(answer["written_back"], true);
    assert_eq!(
        api.get("/v1/orders/C").expect(200)["backorder_status"],
        "none"
    );
    assert_eq!(
        api.get("/v1/orders/B").expect(200)["backorder_status"],
        "none"
    );
    assert_eq!(pages(&api, "sku=TEA").concat(), ["E", "G"]);

    // A JSON array: a repeat is acknowledged, the new event applied.
    let count = json!({"id": "e2", "type": "inventory_set", "sku": "MUG",
                       "warehouse": "MAIN", "on_hand": 3});
    let answer = api
        .post_json("/v1/events", &json!([receipt, count]))
        .expect(202);
    assert_eq!(
        answer["results"],
        json!([{"id": "e1", "outcome": "duplicate"}, {"id": "e2", "outcome": "accepted"}])
    );
    // JSON Lines, waited for.
    let lines = jsonl(&[
        json!({"id": "e3", "type": "order_status_changed", "order_id": "G", "status": "cancelled"}),
        json!({"id": "e3", "type": "order_status_changed", "order_id": "G", "status": "cancelled"}),
    ]);
    let answer = api
        .post("/v1/events?wait=true", lines.as_bytes())
        .expect(200);
    assert_eq!(
        answer["results"],
        json!([{"id": "e3", "outcome": "accepted"}, {"id": "e3", "outcome": "duplicate"}])
    );
    assert_eq!(pages(&api, "status=any").concat(), ["E"]);

    // Refused, malformed and oversized requests apply nothing.
    let before = state(&db);
    let good = json!({"id": "e4", "type": "inventory_adjusted", "sku": "TEA",
                      "warehouse": "MAIN", "delta": 100});
    let unknown = json!({"id": "e5", "type": "order_status_changed", "order_id": "NOPE",
                         "status": "shipped"});
    let refused = api
        .post("/v1/events", jsonl(&[good.clone(), unknown]).as_bytes())
        .expect(422);
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("event 2 (id \"e5\")") && message.contains("NOPE"),
        "{message}"
    );
    let oversized = jsonl(&vec![good.clone(); 4096 / 80 + 5]);
    assert!(oversized.len() > 4096);
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"{\"id\": \"e4\", \"type\":", 400, "not valid JSON"),
        (b"\xff\xfe garbage", 400, "not valid JSON"),
        (b"", 400, "no event"),
        (b"   \n\n", 400, "no event"),
        (b"[]", 400, "no event"),
        (br#"{"id":"e4","type":"teleport"}"#, 422, "event 1 (id \"e4\")"),
        (br#"[{"id":"e4","type":"inventory_set","sku":"TEA","warehouse":"MAIN","on_hand":-1},42]"#, 422, "event 2"),
        (br#"{"id":"e4","type":"po_received","sku":"TEA","warehouse":"MAIN","qty":-3}"#, 422, "negative"),
        (br#"{"id":"e4","type":"inventory_set","sku":"TEA","warehouse":"NOWHERE","on_hand":1}"#, 422, "NOWHERE"),
        (oversized.as_bytes(), 413, "body_limit_bytes"),
    ];
    for (body, status, says) in cases {
        let answer = api.post("/v1/events", body).expect(status);
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(says), "{status}: {message} lacks {says:?}");
        assert_eq!(answer["status"], status);
    }
    for (body, status) in [
        (&b"{"[..], 400),
        (&br#"{"al": true}"#[..], 422),
        (&b"{}"[..], 422),
        (&br#"{"skus": []}"#[..], 422),
    ] {
        api.post("/v1/recalculate", body).expect(status);
    }
    assert_eq!(state(&db), before, "a refused request changed the state");
    // The refused batch recorded no id: the good event alone is accepted.
    let answer = api.post_json("/v1/events?wait=true", &good).expect(200);
    assert_eq!(answer["results"][0]["outcome"], "accepted");
    assert_eq!(
        api.get("/v1/products/TEA").expect(200)["total"]["on_hand"],
        107
    );

    // A recalculation of some SKUs.
    let answer = api
        .post_json("/v1/recalculate", &json!({"skus": ["MUG"]}))
        .expect(202);
    assert_eq!(answer["marked_skus"], json!(["MUG"]));

    // The metrics moved with the work.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("backorderd_dirty_skus") > 0.0 {
        assert!(Instant::now() < deadline, "MUG is still dirty");
        std::thread::sleep(Duration::from_millis(20));
    }
    api.wait_for_metrics(&[
        ("backorderd_jobs_total{outcome=\"done\"}", jobs_before + 1.0),
        ("backorderd_lines_changed_total", lines_before + 3.0),
        (
            "backorderd_event_to_result_lag_seconds_count",
            lag_before + 3.0,
        ),
        (
            "backorderd_recalculation_duration_seconds_count",
            durations_before + 1.0,
        ),
        (
            "backorderd_batch_duration_seconds_count",
            batches_before + 1.0,
        ),
    ]);
    // Every batch's time, and the availability feed's part of it.
    let batch_secs = api.metric("backorderd_batch_duration_seconds_sum");
    let feed_secs = api.metric("backorderd_availability_recording_seconds_sum");
    assert!(
        feed_secs > 0.0 && feed_secs < batch_secs,
        "feed {feed_secs} s of {batch_secs} s"
    );
    assert!(api.metric("backorderd_events_total{outcome=\"accepted\"}") >= 4.0);
    assert!(api.metric("backorderd_events_total{outcome=\"duplicate\"}") >= 2.0);
    assert!(api.metric("backorderd_events_total{outcome=\"refused\"}") >= 10.0);
    let text = api.get("/metrics").text;
    for name in [
        "backorderd_queue_jobs{state=\"pending\"}",
        "backorderd_oldest_dirty_mark_age_seconds",
        "backorderd_recalculation_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    let log = daemon.stop_with("TERM");
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");
}

fn wait_times_out_and_a_stop_answers_waiting_requests(backend: Backend) {
    let db = TempDatabase::of(backend);
    let imported = db.run(&["import", "-"], Some(book().to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    // A stored value the recalculation cannot read: TEA's recalculation
    // fails, and TEA is set aside with its dirty mark (MUG goes on).
    db.execute("UPDATE orders SET status = 'bogus' WHERE id = 'A'");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    let api = Api::new(port, None);
    let recalc = json!({"id": "r1", "type": "recalculate", "skus": ["TEA"]});
    let started = Instant::now();
    let answer = api
        .post_json("/v1/events?wait=true&timeout=1", &recalc)
        .expect(504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(answer["results"][0]["outcome"], "accepted", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("applied"),
        "{answer}"
    );
    // MUG's recalculation goes on: wait until TEA alone is left, set aside.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("backorderd_set_aside_skus") < 1.0 || api.metric("backorderd_dirty_skus") > 1.0
    {
        assert!(Instant::now() < deadline, "TEA was not set aside");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(api.metric("backorderd_dirty_skus"), 1.0);
    assert_eq!(api.metric("backorderd_set_aside_skus"), 1.0);
    assert!(api.metric("backorderd_jobs_total{outcome=\"failed\"}") >= 1.0);
    // The oldest claimable mark: none, TEA's is set aside. Each scrape
    // reads the queue and the oldest mark by separate queries, so under
    // load one scrape may still pair MUG's mark with its cleared queue:
    // poll until a scrape agrees.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("backorderd_oldest_dirty_mark_age_seconds") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "a claimable mark is still reported with TEA set aside"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A stop answers a waiting request at once, and the daemon exits 0.
    let waiting = {
        let api = Api::new(port, None);
        std::thread::spawn(move || {
            let recalc = json!({"id": "r2", "type": "recalculate", "skus": ["TEA"]});
            api.post_json("/v1/events?wait=true", &recalc)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.metric("backorderd_events_total{outcome=\"accepted\"}") < 2.0 {
        assert!(Instant::now() < deadline, "r2 was not applied");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped = Instant::now();
    daemon.stop_with("TERM");
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let answer = waiting.join().unwrap();
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(answer.text.contains("stopping"), "{}", answer.text);
}

/// SQLite: the file vanishes (a volume unmounted) and comes back.
/// PostgreSQL: the database refuses connections and drops the open ones
/// (a restart, a failover), then takes them again; the daemon must come
/// back by itself: ready again, and its worker recalculates.
fn readiness_follows_the_database_and_open_addresses_need_a_token(backend: Backend) {
    let db = TempDatabase::of(backend);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_args(&db, &[], &["--listen", &listen]);
    let api = Api::new(port, None);
    assert_eq!(api.get("/readyz").expect(200)["checks"]["database"], "ok");

    let aside = db.path.with_extension("aside");
    match backend {
        Backend::Sqlite => std::fs::rename(&db.path, &aside).unwrap(),
        Backend::Postgres => db.postgres_refuse_connections(true),
    }
    let answer = api.get("/readyz").expect(503);
    assert_eq!(answer["ready"], false);
    // The worker may have met the outage too (apalis ends a worker whose
    // poll fails; the daemon starts it again): then it says so as well.
    let failed = answer["failed"].as_array().unwrap();
    assert!(failed.contains(&json!("database")), "{answer}");
    assert!(
        failed.iter().all(|f| f == "database" || f == "worker"),
        "{answer}"
    );
    if backend == Backend::Sqlite {
        assert!(
            answer["checks"]["database"]
                .as_str()
                .unwrap()
                .contains("unable to open")
        );
    }
    assert_eq!(api.get("/healthz").expect(200)["status"], "ok");
    match backend {
        Backend::Sqlite => std::fs::rename(&aside, &db.path).unwrap(),
        Backend::Postgres => db.postgres_refuse_connections(false),
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = api.get("/readyz");
        if answer.status == 200 {
            assert_eq!(answer.json()["ready"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again 15 s after the database came back: {}",
            answer.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The worker still recalculates.
    let imported = db.run(&["import", "-"], Some(book().to_string().as_bytes()));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let receipt = json!({"id": "after-outage", "type": "po_received", "sku": "TEA",
                         "warehouse": "MAIN", "qty": 100});
    let answer = api.post_json("/v1/events?wait=true&timeout=30", &receipt);
    assert_eq!(
        answer.status,
        200,
        "{}; the daemon's log:\n{}",
        answer.text,
        daemon.stderr()
    );
    assert_eq!(answer.json()["written_back"], true, "{}", answer.text);
    assert_eq!(
        api.get("/v1/orders/G").expect(200)["backorder_status"],
        "none"
    );
    daemon.stop_with("TERM");

    // Without a token, only loopback addresses.
    let run = db.run(&["serve", "--listen", "0.0.0.0:1"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("without a token"), "{}", run.stderr);
    let run = crate::support::backorderd(
        &["--database-url", &db.url, "serve"],
        None,
        &[("BACKORDERD__HTTP__LISTEN", "[::]:1")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("without a token"), "{}", run.stderr);
    let run = db.run(&["serve", "--listen", "localhost"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
}

on_both_backends!(
    the_http_api_takes_events_and_answers_reads,
    wait_times_out_and_a_stop_answers_waiting_requests,
    readiness_follows_the_database_and_open_addresses_need_a_token,
);
