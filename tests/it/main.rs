//! One integration-test binary: every test drives the real `backorderd`
//! binary the way a user would.

mod audit;
mod availability;
mod availability_messages;
mod bounds;
mod console;
mod console_browser;
mod console_support;
mod daemon;
mod daemon_options;
mod daemon_support;
mod delivery;
mod delivery_e2e;
mod delivery_loop;
mod delivery_mail;
mod delivery_retention;
mod delivery_support;
mod delivery_webhook;
mod deploy;
mod feed_stamps;
mod http;
mod http_edges;
mod import;
mod messages;
mod openapi;
mod pool_cache;
mod pool_reads;
mod postgres;
mod scale_out;
mod secrets;
mod simulate;
mod storage;
mod support;
mod what_if;
mod worker;
mod writer;
