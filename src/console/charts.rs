//! The overview's charts: backordered units over time and the
//! event-to-result lag, drawn as inline SVG (no script, no library) from
//! the daemon's own samples (`store::samples`, one row a minute). Each
//! chart is an image with a title and a description a screen reader
//! reads: the range shown, the latest value, the lowest and the highest.

use chrono::DateTime;
use maud::{Markup, html};

use crate::store::samples::Sample;

const WIDTH: i64 = 720;
const HEIGHT: i64 = 180;
/// Room for the value labels on the left and the times below.
const LEFT: i64 = 64;
const BOTTOM: i64 = 24;
const TOP: i64 = 8;
/// Minutes without a sample that break the line (the daemon was down).
const GAP_MINUTES: i64 = 3;

/// The minutes shown: the last day.
pub const SHOWN_MINUTES: i64 = 24 * 60;

fn clock(minute: i64) -> String {
    DateTime::from_timestamp(minute * 60, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// One line chart of `points` (Unix minute, value), oldest first.
pub fn line_chart(id: &str, title: &str, unit: &str, points: &[(i64, i64)]) -> Markup {
    let Some((&(first, _), &(last, latest))) = points.first().zip(points.last()) else {
        return html! { p id=(id) .muted { (title) ": no sample yet (one is taken every minute)." } };
    };
    let low = points.iter().map(|p| p.1).min().unwrap_or(0);
    let high = points.iter().map(|p| p.1).max().unwrap_or(0);
    let top = high.max(1);
    let span = (last - first).max(1);
    let (plot_w, plot_h) = (WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM);
    let x = |minute: i64| LEFT + (minute - first) * plot_w / span;
    let y = |value: i64| {
        TOP + plot_h - (value.clamp(0, top) as i128 * plot_h as i128 / top as i128) as i64
    };
    // A line per run of samples without a gap; a lone sample is a dot.
    let mut segments: Vec<Vec<(i64, i64)>> = Vec::new();
    for &(minute, value) in points {
        match segments.last_mut() {
            Some(seg) if minute - seg.last().map_or(minute, |p| p.0) <= GAP_MINUTES => {
                seg.push((minute, value))
            }
            _ => segments.push(vec![(minute, value)]),
        }
    }
    let description = format!(
        "From {} to {}: latest {latest} {unit}, lowest {low}, highest {high}.",
        clock(first),
        clock(last)
    );
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    html! {
        figure.chart {
            svg id=(id) role="img" aria-labelledby={ (title_id) " " (desc_id) }
                viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" preserveAspectRatio="xMinYMin meet"
                data-latest=(latest) data-points=(points.len()) {
                title id=(title_id) { (title) }
                desc id=(desc_id) { (description) }
                line x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH - 8) y2=(TOP + plot_h) stroke="#7d8894" {}
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) stroke="#7d8894" {}
                text x=(LEFT - 6) y=(TOP + 10) text-anchor="end" font-size="12" { (top) }
                text x=(LEFT - 6) y=(TOP + plot_h) text-anchor="end" font-size="12" { "0" }
                text x=(LEFT) y=(HEIGHT - 6) font-size="12" { (clock(first)) }
                text x=(WIDTH - 8) y=(HEIGHT - 6) text-anchor="end" font-size="12" { (clock(last)) }
                @for seg in &segments {
                    @if seg.len() == 1 {
                        circle cx=(x(seg[0].0)) cy=(y(seg[0].1)) r="3" fill="#0b5cad" {}
                    } @else {
                        polyline fill="none" stroke="#0b5cad" stroke-width="2"
                            points=(seg.iter().map(|&(m, v)| format!("{},{}", x(m), y(v))).collect::<Vec<_>>().join(" ")) {}
                    }
                }
            }
            figcaption { (title) ": " (description) }
        }
    }
}

/// Both charts from the samples of the last day.
pub fn charts(samples: &[Sample]) -> Markup {
    let units: Vec<(i64, i64)> = samples
        .iter()
        .map(|s| (s.minute, s.backordered_units))
        .collect();
    let lags: Vec<(i64, i64)> = samples
        .iter()
        .filter_map(|s| s.lag_max_ms.map(|ms| (s.minute, ms)))
        .collect();
    html! {
        section aria-labelledby="charts-title" {
            h2 #charts-title { "The last day" }
            (line_chart("chart-units", "Backordered units", "units", &units))
            (line_chart("chart-lag", "Longest event-to-result lag per minute", "ms", &lags))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_its_points_breaks_at_gaps_and_describes_itself() {
        let points = [(100, 10), (101, 30), (102, 20), (110, 5)];
        let svg = line_chart("c", "Units", "units", &points).into_string();
        assert!(svg.contains(r#"data-latest="5""#), "{svg}");
        assert!(
            svg.contains("latest 5 units, lowest 5, highest 30"),
            "{svg}"
        );
        // 100..=102 is one line of three points; 110 after a gap is a dot.
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        // The highest point touches the top, the first the left edge.
        // (plot 648 by 148: 10 of 30 is 49 up from the axis at 156.)
        assert!(svg.contains(r#"points="64,107 128,8 193,58""#), "{svg}");
        let empty = line_chart("c", "Units", "units", &[]).into_string();
        assert!(empty.contains("no sample yet"), "{empty}");
    }
}
