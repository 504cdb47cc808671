//! The skewed, concurrent workload of the daemon bench: events a shop
//! sends, on SKUs drawn from a Zipf law steep enough that about half of
//! them hit the hottest SKU, one event per `POST /v1/events`, from several
//! senders at once, each with its own keep-alive connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::json;

use crate::http::{Answer, Connection};

/// What the events are drawn from.
pub struct Plan {
    pub skus: usize,
    /// Zipf exponent of the events' SKUs.
    pub exponent: f64,
    /// Orders of the imported book, `SO-0000001` to `SO-<orders>`.
    pub orders: usize,
    /// The SKU of rank 1 (the book's hottest).
    pub hot_sku: String,
}

impl Plan {
    /// A plan whose hottest SKU gets `hot_share` of the events.
    pub fn new(skus: usize, orders: usize, hot_sku: String, hot_share: f64) -> Plan {
        Plan {
            skus,
            exponent: exponent_for(skus, hot_share),
            orders,
            hot_sku,
        }
    }

    fn sku(&self, zipf: &Zipf<f64>, rng: &mut SmallRng) -> String {
        match zipf.sample(rng) as usize {
            1 => self.hot_sku.clone(),
            rank => backorderd::bookgen::sku_name(rank - 1),
        }
    }
}

/// The Zipf exponent over `n` ranks whose first rank has probability
/// `share` (1 / H(n, s) = share), by bisection: H falls as s grows.
fn exponent_for(n: usize, share: f64) -> f64 {
    let harmonic = |s: f64| (1..=n).map(|k| (k as f64).powf(-s)).sum::<f64>();
    let (mut low, mut high) = (0.0, 10.0);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if 1.0 / harmonic(mid) < share {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

const WAREHOUSES: [&str; 3] = ["MAIN", "EAST", "WEST"];

/// One event as JSON, and whether it touches the hottest SKU. The mix:
/// 45% stock adjustments, 25% purchase-order receipts, 15% new orders of
/// 1-3 lines, 10% status changes of stored orders (half of them cancels),
/// 5% stock counts.
fn event(plan: &Plan, zipf: &Zipf<f64>, rng: &mut SmallRng, id: &str) -> (String, bool) {
    let warehouse = WAREHOUSES[rng.random_range(0..WAREHOUSES.len())];
    let roll = rng.random_range(0..100);
    let (event, skus) = if roll < 45 {
        let sku = plan.sku(zipf, rng);
        let delta = [-3, -2, -1, 1, 2, 3, 5][rng.random_range(0..7)];
        let e = json!({"id": id, "type": "inventory_adjusted", "sku": sku, "warehouse": warehouse, "delta": delta});
        (e, vec![sku])
    } else if roll < 70 {
        let sku = plan.sku(zipf, rng);
        let qty = rng.random_range(1..=20);
        let po = format!("PO-{:06}", rng.random_range(0..plan.skus));
        let e = json!({"id": id, "type": "po_received", "sku": sku, "warehouse": warehouse, "qty": qty, "po_id": po});
        (e, vec![sku])
    } else if roll < 85 {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let skus: Vec<String> = (0..rng.random_range(1..=3))
            .map(|_| plan.sku(zipf, rng))
            .collect();
        let lines: Vec<_> = skus
            .iter()
            .enumerate()
            .map(|(k, sku)| json!({"id": format!("{id}-{}", k + 1), "sku": sku, "qty": rng.random_range(1..=5)}))
            .collect();
        let order = json!({"id": id, "order_date": now, "payment_date": now, "payment_status": "paid",
                           "ship_from": warehouse, "lines": lines});
        (
            json!({"id": id, "type": "order_upserted", "order": order}),
            skus,
        )
    } else if roll < 95 {
        let order = format!("SO-{:07}", rng.random_range(1..=plan.orders));
        let status = ["cancelled", "cancelled", "on_hold", "in_process"][rng.random_range(0..4)];
        let e =
            json!({"id": id, "type": "order_status_changed", "order_id": order, "status": status});
        (e, vec![])
    } else {
        let sku = plan.sku(zipf, rng);
        let on_hand = rng.random_range(0..=200);
        let e = json!({"id": id, "type": "inventory_set", "sku": sku, "warehouse": warehouse, "on_hand": on_hand});
        (e, vec![sku])
    };
    let hot = skus.contains(&plan.hot_sku);
    (event.to_string(), hot)
}

/// How a run is bounded and paced.
#[derive(Clone, Copy)]
pub struct Shape {
    pub senders: usize,
    /// At most this many requests in all.
    pub max_events: usize,
    /// And for at most this long.
    pub duration: Duration,
    /// Each sender sends `burst` requests back to back, then pauses.
    pub burst: usize,
    pub pause: Duration,
    /// Every `wait_every`-th request of a sender asks `?wait=true` (on a
    /// second connection, while the sender goes on).
    pub wait_every: usize,
}

/// What the senders saw.
#[derive(Default)]
pub struct Tally {
    /// Latency of each 2xx answer without `wait`, ms.
    pub accept_ms: Vec<f64>,
    /// Latency of each 2xx answer to `?wait=true`, ms.
    pub result_ms: Vec<f64>,
    pub sent: usize,
    pub ok: usize,
    pub hot: usize,
    /// Non-2xx answers by status, with the first body of each.
    pub refused: BTreeMap<u16, (usize, String)>,
    /// Requests that got no answer, with the first error.
    pub transport: (usize, String),
    pub elapsed: Duration,
}

impl Tally {
    fn record(&mut self, answer: Answer, wait: bool, ms: f64) {
        match answer {
            Answer::Status(status, _) if (200..300).contains(&status) => {
                self.ok += 1;
                if wait {
                    self.result_ms.push(ms)
                } else {
                    self.accept_ms.push(ms)
                }
            }
            Answer::Status(status, body) => {
                let first = || String::from_utf8_lossy(&body).chars().take(200).collect();
                self.refused.entry(status).or_insert_with(|| (0, first())).0 += 1;
            }
            Answer::Transport(e) => {
                if self.transport.0 == 0 {
                    self.transport.1 = e;
                }
                self.transport.0 += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.accept_ms.extend(other.accept_ms);
        self.result_ms.extend(other.result_ms);
        self.sent += other.sent;
        self.ok += other.ok;
        self.hot += other.hot;
        for (status, (n, body)) in other.refused {
            let entry = self.refused.entry(status).or_insert((0, body));
            entry.0 += n;
        }
        if self.transport.0 == 0 {
            self.transport.1 = other.transport.1;
        }
        self.transport.0 += other.transport.0;
    }
}

/// Sends the workload to `serve` at `addr` until the shape's bounds or
/// `stop` (checked between requests). Ids are `<tag>-<sender>-<n>`.
pub async fn run(
    addr: SocketAddr,
    plan: Arc<Plan>,
    shape: Shape,
    tag: &str,
    stop: Arc<AtomicBool>,
) -> Tally {
    let started = Instant::now();
    let deadline = started + shape.duration;
    let per_sender = shape.max_events.div_ceil(shape.senders);
    let mut tasks = Vec::new();
    for sender in 0..shape.senders {
        let (plan, stop) = (plan.clone(), stop.clone());
        let tag = format!("{tag}-{sender}");
        tasks.push(tokio::spawn(async move {
            send(
                addr,
                &plan,
                shape,
                &tag,
                sender as u64,
                per_sender,
                deadline,
                &stop,
            )
            .await
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("a sender panicked"));
    }
    tally.elapsed = started.elapsed();
    tally
}

#[allow(clippy::too_many_arguments)]
async fn send(
    addr: SocketAddr,
    plan: &Plan,
    shape: Shape,
    tag: &str,
    seed: u64,
    count: usize,
    deadline: Instant,
    stop: &AtomicBool,
) -> Tally {
    let mut rng = SmallRng::seed_from_u64(seed * 7919 + 17);
    let zipf = Zipf::new(plan.skus as f64, plan.exponent).expect("valid Zipf parameters");
    let mut connection = Connection::new(addr);
    // A `?wait=true` request goes on a second connection, in a task of its
    // own, so that the sender does not stop sending while it waits (at
    // most one in flight: a slot that finds it busy sends a plain one).
    let mut waiter: Option<tokio::task::JoinHandle<(Connection, Answer, f64)>> = None;
    let mut spare = Some(Connection::new(addr));
    let mut tally = Tally::default();
    for n in 0..count {
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        if n > 0 && n % shape.burst == 0 && !shape.pause.is_zero() {
            tokio::time::sleep(shape.pause).await;
        }
        let id = format!("{tag}-{n}");
        let (body, hot) = event(plan, &zipf, &mut rng, &id);
        tally.sent += 1;
        tally.hot += hot as usize;
        let slot = shape.wait_every > 0 && n % shape.wait_every == shape.wait_every - 1;
        if slot && waiter.as_ref().is_none_or(|w| w.is_finished()) {
            if let Some(done) = waiter.take() {
                let (c, answer, ms) = done.await.expect("a waiting request panicked");
                tally.record(answer, true, ms);
                spare = Some(c);
            }
            let mut c = spare.take().expect("the second connection is free");
            waiter = Some(tokio::spawn(async move {
                let sent = Instant::now();
                let answer = c.post("/v1/events?wait=true&timeout=60", body).await;
                (c, answer, sent.elapsed().as_secs_f64() * 1000.0)
            }));
            continue;
        }
        let sent = Instant::now();
        let answer = connection.post("/v1/events", body).await;
        tally.record(answer, false, sent.elapsed().as_secs_f64() * 1000.0);
    }
    if let Some(done) = waiter {
        let (_, answer, ms) = done.await.expect("a waiting request panicked");
        tally.record(answer, true, ms);
    }
    tally
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints the run's figures, one labelled line each.
pub fn print(label: &str, shape: &Shape, tally: &mut Tally) {
    let secs = tally.elapsed.as_secs_f64();
    println!(
        "{label}: accepted {:8.0} events/s  ({} of {} requests answered 2xx in {secs:.2} s; {:.1}% of the events on the hottest SKU)",
        tally.ok as f64 / secs,
        tally.ok,
        tally.sent,
        100.0 * tally.hot as f64 / tally.sent.max(1) as f64
    );
    let mut non_2xx: Vec<String> = tally
        .refused
        .iter()
        .map(|(status, (n, _))| format!("{status}: {n}"))
        .collect();
    if tally.transport.0 > 0 {
        non_2xx.push(format!("no answer: {}", tally.transport.0));
    }
    let fives: usize = tally.refused.range(500..600).map(|(_, (n, _))| n).sum();
    println!(
        "{label}: non-2xx answers {}  (5xx: {fives})",
        if non_2xx.is_empty() {
            "none".to_owned()
        } else {
            non_2xx.join(", ")
        }
    );
    for (status, (_, body)) in &tally.refused {
        println!("{label}:   first {status} body: {body}");
    }
    if tally.transport.0 > 0 {
        println!("{label}:   first transport error: {}", tally.transport.1);
    }
    tally.accept_ms.sort_by(f64::total_cmp);
    tally.result_ms.sort_by(f64::total_cmp);
    let a = &tally.accept_ms;
    println!(
        "{label}: accept latency   p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({} requests)",
        percentile(a, 0.5),
        percentile(a, 0.99),
        a.last().copied().unwrap_or(f64::NAN),
        a.len()
    );
    let r = &tally.result_ms;
    println!(
        "{label}: event-to-result  p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({} requests with ?wait=true: up to 1 in {} of a sender's, on a second connection)",
        percentile(r, 0.5),
        percentile(r, 0.99),
        r.last().copied().unwrap_or(f64::NAN),
        r.len(),
        shape.wait_every
    );
}
