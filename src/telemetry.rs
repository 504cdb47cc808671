//! Logging: one global `tracing` subscriber writing to standard error,
//! readable text or one JSON object per line.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber: format from `log.format`, filter from
/// `RUST_LOG` if set (and valid), else `log.filter`. Only the first call in a
/// process installs anything; later calls (and calls after another subscriber
/// was installed) do nothing.
pub fn init(log: &LogSettings) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let (filter, warning) = filter(log, rust_log.as_deref());
    let ansi = std::io::stderr().is_terminal();
    // Err means a global subscriber is already set: keep it.
    if subscriber(log.format, filter, ansi, std::io::stderr)
        .try_init()
        .is_ok()
        && let Some(warning) = warning
    {
        tracing::warn!("{warning}");
    }
}

/// The filter to use, and a warning to log if `RUST_LOG` had to be ignored.
fn filter(log: &LogSettings, rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    let configured = || {
        EnvFilter::builder()
            .parse(&log.filter)
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    match rust_log
        .map(str::trim)
        .filter(|directives| !directives.is_empty())
    {
        None => (configured(), None),
        Some(directives) => match EnvFilter::builder().parse(directives) {
            Ok(filter) => (filter, None),
            Err(err) => (
                configured(),
                Some(format!(
                    "ignoring {}={directives:?} ({err}); using the filter {:?}",
                    EnvFilter::DEFAULT_ENV,
                    log.filter
                )),
            ),
        },
    }
}

fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(
            builder
                .compact()
                .with_target(false)
                .with_ansi(ansi)
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_ansi(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log(format: LogFormat, filter: &str) -> LogSettings {
        LogSettings {
            format,
            filter: filter.to_owned(),
        }
    }

    fn emit(settings: &LogSettings, rust_log: Option<&str>) -> String {
        let captured = Captured::default();
        let (filter, _) = filter(settings, rust_log);
        let subscriber = subscriber(settings.format, filter, false, captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("recalculation", job = 42);
            let _entered = span.enter();
            tracing::info!(skus = 3, "recalculated");
            tracing::debug!("hidden at info");
        });
        captured.text()
    }

    #[test]
    fn json_is_one_object_per_line_with_the_current_span() {
        let out = emit(&log(LogFormat::Json, "info"), None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let object: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(object["level"], "INFO");
        assert_eq!(object["fields"]["message"], "recalculated");
        assert_eq!(object["fields"]["skus"], 3);
        assert_eq!(object["span"]["name"], "recalculation");
        assert_eq!(object["span"]["job"], 42);
    }

    #[test]
    fn text_is_readable_without_target() {
        let out = emit(&log(LogFormat::Text, "info"), None);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("recalculated"), "{out}");
        assert!(out.contains("skus=3"), "{out}");
        assert!(!out.contains("backorderd::telemetry"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out:?}");
    }

    #[test]
    fn rust_log_wins_over_the_configured_filter_unless_invalid() {
        let settings = log(LogFormat::Text, "info");
        assert_eq!(emit(&settings, Some("debug")).lines().count(), 2);
        assert_eq!(emit(&settings, Some("off")).lines().count(), 0);
        assert_eq!(emit(&settings, Some("  ")).lines().count(), 1);
        assert_eq!(emit(&log(LogFormat::Text, "off"), None).lines().count(), 0);

        let (_, warning) = filter(&settings, Some("=["));
        assert!(warning.unwrap().contains("RUST_LOG"));
        assert_eq!(emit(&settings, Some("=[")).lines().count(), 1);
    }

    #[test]
    fn init_twice_is_harmless() {
        let settings = log(LogFormat::Text, "off");
        init(&settings);
        init(&log(LogFormat::Json, "off"));
    }
}
