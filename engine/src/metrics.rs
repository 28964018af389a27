//! What `GET /metrics` shows (docs/operations.md, "Metrics"): the server's counters, gauges
//! and histograms in the OpenMetrics text format Prometheus scrapes.
//!
//! Crate: `prometheus-client`, the Prometheus project's own Rust client: a registry owned by
//! each engine (no global recorder, so every test server counts for itself), atomic counters.
//!
//! Cost on the hot path: the committer adds a batch's claims and completions to two atomic
//! counters and observes its size and time once per batch (never per event, never under the
//! batch's transaction). An HTTP request looks up its (method, route, status) series under a
//! read lock of the family and observes its latency. The gauges that count rows (open tasks per
//! queue, pending timers, the outbox) are read from the store when scraped, so they cost nothing
//! between scrapes.
//!
//! Routes are labelled by their matched template (`/api/v1/tasks/:id/complete`), never by
//! the raw path: a path or query may carry personal data, and raw paths would make a series
//! per case.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of a request no route matched (404s of unknown paths).
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: String,
}

/// Seconds: from 1 ms to about 16 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

/// The server's metrics (see the module doc). One per engine.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram, fn() -> Histogram>,
    claimed: Counter,
    completed: Counter,
    started: Counter,
    timers_fired: Counter,
    batch_events: Histogram,
    batch_seconds: Histogram,
    open_tasks: Family<Queue, Gauge>,
    timers_pending: Gauge,
    outbox_pending: Gauge,
    outbox_failed: Gauge,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What the store counts when scraped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreGauges {
    /// Open tasks of each queue (queues without one are absent).
    pub open_tasks: Vec<(String, i64)>,
    pub timers_pending: i64,
    /// Outbox messages waiting to be delivered (retries included).
    pub outbox_pending: i64,
    /// Outbox messages given up on (`dead`): they need a person.
    pub outbox_failed: i64,
}

/// The claimed tasks, completions and new cases of one committed batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) claimed: u64,
    pub(crate) completed: u64,
    pub(crate) started: u64,
}

/// The database pool as it is now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolGauges {
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("yimen");
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route template and status",
            requests.clone(),
        );
        let latency = Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_buckets as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by method and matched route template",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let claimed = Counter::default();
        registry.register("tasks_claimed", "Tasks claimed by workers", claimed.clone());
        let completed = Counter::default();
        registry.register("tasks_completed", "Tasks completed", completed.clone());
        let started = Counter::default();
        registry.register("instances_started", "Cases started", started.clone());
        let timers_fired = Counter::default();
        registry.register("timers_fired", "Timers fired", timers_fired.clone());
        // Events per committed batch: 1, 2, 4 … 256 (`commit::MAX_BATCH`), and above.
        let batch_events = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 10),
        );
        registry.register(
            "commit_batch_events",
            "Events (starts, completions, claims) written in one committed transaction",
            batch_events.clone(),
        );
        let batch_seconds = latency_buckets();
        registry.register_with_unit(
            "commit_batch_duration",
            "Time one committer batch took, from its reads to its commit",
            prometheus_client::registry::Unit::Seconds,
            batch_seconds.clone(),
        );
        let open_tasks = Family::<Queue, Gauge>::default();
        registry.register(
            "open_tasks",
            "Open (unclaimed) tasks per queue, counted when scraped",
            open_tasks.clone(),
        );
        let timers_pending = Gauge::default();
        registry.register(
            "timers_pending",
            "Timers waiting to fire, counted when scraped",
            timers_pending.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Outbox messages waiting for delivery (retries included), counted when scraped",
            outbox_pending.clone(),
        );
        let outbox_failed = Gauge::default();
        registry.register(
            "outbox_failed",
            "Outbox messages given up on after their retries, counted when scraped",
            outbox_failed.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Connections the database pool holds (in use and idle)",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle connections of the database pool",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Most connections the database pool may open",
            pool_max.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            claimed,
            completed,
            started,
            timers_fired,
            batch_events,
            batch_seconds,
            open_tasks,
            timers_pending,
            outbox_pending,
            outbox_failed,
            pool_size,
            pool_idle,
            pool_max,
        }
    }

    /// One HTTP request answered: `route` is its matched template, or [`UNMATCHED`].
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&Request {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&Route {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// One committer batch of `events` that took `took`, committed or failed (a batch written
    /// again in halves counts as its halves).
    pub(crate) fn batch(&self, events: usize, took: Duration) {
        self.batch_events.observe(events as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    /// What a committed batch answered, counted before its callers are answered.
    pub(crate) fn answered(&self, counts: Answered) {
        for (counter, n) in [
            (&self.claimed, counts.claimed),
            (&self.completed, counts.completed),
            (&self.started, counts.started),
        ] {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }

    /// Timers fired in one committed transaction.
    pub(crate) fn timers_fired(&self, n: u64) {
        self.timers_fired.inc_by(n);
    }

    /// The text of a scrape, with the store's counts and the pool as given.
    pub fn render(&self, store: &StoreGauges, pool: PoolGauges) -> String {
        // Only the queues with open tasks now: one emptied since the last scrape leaves it.
        self.open_tasks.clear();
        for (queue, open) in &store.open_tasks {
            self.open_tasks
                .get_or_create(&Queue {
                    queue: queue.clone(),
                })
                .set(*open);
        }
        self.timers_pending.set(store.timers_pending);
        self.outbox_pending.set(store.outbox_pending);
        self.outbox_failed.set(store.outbox_failed);
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle
            .set(i64::try_from(pool.idle).unwrap_or(i64::MAX));
        self.pool_max.set(i64::from(pool.max));
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_template_and_counters_move() {
        let m = Metrics::new();
        m.request(
            "POST",
            "/api/v1/tasks/:id/complete",
            200,
            Duration::from_millis(3),
        );
        m.batch(3, Duration::from_millis(2));
        m.answered(Answered {
            claimed: 1,
            completed: 2,
            started: 0,
        });
        let text = m.render(
            &StoreGauges {
                open_tasks: vec![("window".into(), 4)],
                ..StoreGauges::default()
            },
            PoolGauges {
                size: 2,
                idle: 1,
                max: 8,
            },
        );
        assert!(
            text.contains(
                r#"yimen_http_requests_total{method="POST",route="/api/v1/tasks/:id/complete",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("yimen_tasks_claimed_total 1"), "{text}");
        assert!(text.contains("yimen_tasks_completed_total 2"), "{text}");
        assert!(
            text.contains(r#"yimen_open_tasks{queue="window"} 4"#),
            "{text}"
        );
        assert!(text.contains("yimen_db_pool_max_connections 8"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// The Grafana dashboard (docs/grafana-dashboard.json) is JSON and asks only for metrics
    /// a scrape has.
    #[test]
    fn the_dashboard_names_the_metrics_as_they_are() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
        let text = std::fs::read_to_string(&path).expect("the dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let m = Metrics::new();
        m.request("GET", "/x", 200, Duration::ZERO);
        let scrape = m.render(
            &StoreGauges {
                open_tasks: vec![("q".into(), 1)],
                ..StoreGauges::default()
            },
            PoolGauges::default(),
        );
        let series: std::collections::BTreeSet<&str> = scrape
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let panels = dashboard["panels"].as_array().expect("panels");
        let mut shown = std::collections::BTreeSet::new();
        for panel in panels {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("yimen_") {
                        assert!(series.contains(word), "{word} is in no scrape: {scrape}");
                        shown.insert(word.trim_end_matches("_bucket").to_string());
                    }
                }
            }
        }
        for family in scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(
                shown.iter().any(|s| s.starts_with(name)),
                "{name} has no panel"
            );
        }
    }

    #[test]
    fn an_emptied_queue_leaves_the_scrape() {
        let m = Metrics::new();
        let one = StoreGauges {
            open_tasks: vec![("window".into(), 1)],
            ..StoreGauges::default()
        };
        assert!(
            m.render(&one, PoolGauges::default())
                .contains("queue=\"window\"")
        );
        let none = m.render(&StoreGauges::default(), PoolGauges::default());
        assert!(!none.contains("queue=\"window\""), "{none}");
    }
}
