//! `/settings`: the twelve allocation settings with their stored values
//! and what each means; a form to change some, "Preview" (the what-if of
//! src/whatif.rs: exact counts and the changed lines, nothing written),
//! then "Apply" (a `settings_changed` event through the normal ingest).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleStore;
use super::backorders::urlencode;
use super::layout::{self, PageError, arrow, label};
use super::session::{Current, Posted};
use crate::api::AppState;
use crate::engine::snapshot::Settings;
use crate::events::{EventKind, SettingsPatch};
use crate::whatif::{WhatIfReport, WhatIfRequest};

/// Changed lines listed under a preview (the counts are exact).
const PREVIEW_LINES: usize = 200;

/// The eleven on/off settings: key and meaning, in plain words.
const SWITCHES: [(&str, &str); 11] = [
    (
        "use_payment_date",
        "Date orders by when they were paid rather than when they were placed; unpaid orders wait behind every paid one.",
    ),
    (
        "warehouse_based",
        "Share out each warehouse's stock only among the orders shipping from it, instead of pooling a SKU's stock across warehouses.",
    ),
    (
        "exclude_dropship",
        "Leave stock and purchase orders held in dropship warehouses out of what can be promised.",
    ),
    (
        "exclude_unsellable",
        "Leave stock and purchase orders held in unsellable warehouses out of what can be promised.",
    ),
    (
        "consider_replacement_sku",
        "When a line is still short, let it take what is left of its product's replacement SKU.",
    ),
    (
        "include_authorized",
        "Let orders whose payment is only authorized take part in the allocation.",
    ),
    (
        "include_on_hold",
        "Let orders on hold take part in the allocation.",
    ),
    (
        "include_unpaid",
        "Let unpaid and partially paid orders take part in the allocation.",
    ),
    (
        "prioritize_fully_shippable",
        "Within a priority tier, serve first the orders that can be shipped complete.",
    ),
    (
        "prioritize_rush",
        "Put rush orders in a tier of their own, served before the ordinary ones.",
    ),
    (
        "prioritize_picked",
        "Put orders already picked in a tier of their own, served before all others (rush included).",
    ),
];

const MAX_DAYS_BACK_MEANING: &str = "Freeze orders placed longer ago than this many days: they keep their stored backorder and are no longer recalculated. Empty: no limit.";

fn switch_value(settings: &Settings, key: &str) -> bool {
    match key {
        "use_payment_date" => settings.use_payment_date,
        "warehouse_based" => settings.warehouse_based,
        "exclude_dropship" => settings.exclude_dropship,
        "exclude_unsellable" => settings.exclude_unsellable,
        "consider_replacement_sku" => settings.consider_replacement_sku,
        "include_authorized" => settings.include_authorized,
        "include_on_hold" => settings.include_on_hold,
        "include_unpaid" => settings.include_unpaid,
        "prioritize_fully_shippable" => settings.prioritize_fully_shippable,
        "prioritize_rush" => settings.prioritize_rush,
        "prioritize_picked" => settings.prioritize_picked,
        _ => unreachable!("every key of SWITCHES"),
    }
}

/// The form: each switch `keep`, `on` or `off`; `max_days_back` empty
/// (keep), `none` (no limit) or a number of days.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    use_payment_date: String,
    warehouse_based: String,
    exclude_dropship: String,
    exclude_unsellable: String,
    consider_replacement_sku: String,
    include_authorized: String,
    include_on_hold: String,
    include_unpaid: String,
    prioritize_fully_shippable: String,
    prioritize_rush: String,
    prioritize_picked: String,
    max_days_back: String,
}

impl SettingsForm {
    fn field(&self, key: &str) -> &str {
        match key {
            "use_payment_date" => &self.use_payment_date,
            "warehouse_based" => &self.warehouse_based,
            "exclude_dropship" => &self.exclude_dropship,
            "exclude_unsellable" => &self.exclude_unsellable,
            "consider_replacement_sku" => &self.consider_replacement_sku,
            "include_authorized" => &self.include_authorized,
            "include_on_hold" => &self.include_on_hold,
            "include_unpaid" => &self.include_unpaid,
            "prioritize_fully_shippable" => &self.prioritize_fully_shippable,
            "prioritize_rush" => &self.prioritize_rush,
            "prioritize_picked" => &self.prioritize_picked,
            "max_days_back" => &self.max_days_back,
            _ => "",
        }
    }

    /// The change the form asks for; `Err` names the field.
    fn patch(&self) -> Result<SettingsPatch, PageError> {
        let mut patch = serde_json::Map::new();
        for (key, _) in SWITCHES {
            match self.field(key) {
                "" | "keep" => {}
                "on" => {
                    patch.insert(key.into(), true.into());
                }
                "off" => {
                    patch.insert(key.into(), false.into());
                }
                other => {
                    return Err(PageError::bad_request(format!(
                        "{key}: unknown choice {other:?}"
                    )));
                }
            }
        }
        match self.max_days_back.trim() {
            "" => {}
            "none" => {
                patch.insert("max_days_back".into(), serde_json::Value::Null);
            }
            days => {
                let days: u32 = days.parse().map_err(|_| {
                    PageError::refused(format!(
                        "max_days_back: {days:?} is not a whole number of days (or \"none\")"
                    ))
                })?;
                patch.insert("max_days_back".into(), days.into());
            }
        }
        crate::whatif::parse_settings(serde_json::Value::Object(patch))
            .map_err(|e| PageError::refused(e.message))
    }
}

#[derive(Deserialize)]
pub struct SettingsQuery {
    /// Set after "Apply": the event id sent.
    applied: Option<String>,
}

/// `GET /settings`.
pub async fn page<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Query(query): Query<SettingsQuery>,
) -> Result<Response, PageError> {
    let pending = match query.applied {
        Some(_) => state.store.dirty_count(None).await?,
        None => 0,
    };
    let settings = stored_settings(&state).await?;
    let notice = query.applied.as_ref().map(|id| {
        html! {
            p #applied role="status" aria-live="polite" .(if pending > 0 { "warning" } else { "notice" }) {
                "Applied (event " code { (id) } "). "
                @if pending > 0 {
                    (pending) " SKUs still to recalculate and write back; this page refreshes itself."
                } @else {
                    "Every SKU is recalculated and written back."
                }
            }
        }
    });
    let body = render(&current, &settings, &SettingsForm::default(), notice, None);
    let refresh = (pending > 0).then_some(2);
    Ok(layout::page_with("Settings", Some(&current), refresh, body).into_response())
}

/// `POST /settings/preview`: the what-if of the form's change.
pub async fn preview<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Extension(current): Extension<Current>,
    Posted(form): Posted<SettingsForm>,
) -> Result<Response, PageError> {
    let patch = form.patch()?;
    let settings = stored_settings(&state).await?;
    let request = WhatIfRequest {
        settings: patch,
        events: Vec::new(),
        limit: Some(PREVIEW_LINES),
    };
    let report = state
        .store
        .what_if(&request, state.ingest_options, Utc::now())
        .await?;
    let body = render(&current, &settings, &form, None, Some(&report));
    Ok(layout::page("Settings: preview", Some(&current), body).into_response())
}

/// `POST /settings/apply`: a `settings_changed` event, then the page
/// showing the recalculation's progress.
pub async fn apply<S: ConsoleStore + Send + Sync + 'static>(
    State(state): State<Arc<AppState<S>>>,
    Posted(form): Posted<SettingsForm>,
) -> Result<Response, PageError> {
    let settings = form.patch()?;
    let report = super::send(&state, "settings", EventKind::SettingsChanged { settings }).await?;
    let id = report.accepted.first().cloned().unwrap_or_default();
    Ok(Redirect::to(&format!("/settings?applied={}", urlencode(&id))).into_response())
}

async fn stored_settings<S: ConsoleStore + Send + Sync>(
    state: &AppState<S>,
) -> Result<Settings, PageError> {
    Ok(state.store.pool_state(&[], false).await?.snapshot.settings)
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

fn days(value: Option<u32>) -> String {
    value.map_or_else(|| "no limit".to_owned(), |d| format!("{d} days"))
}

fn render(
    current: &Current,
    settings: &Settings,
    form: &SettingsForm,
    notice: Option<Markup>,
    report: Option<&WhatIfReport>,
) -> Markup {
    html! {
        h1 { "Settings" }
        @if let Some(notice) = notice { (notice) }
        p.help {
            "These settings decide who gets short stock. Choose a change, press Preview to see exactly \
             what it would change on the stored orders (nothing is written), then Apply. Applying \
             recalculates every SKU."
        }
        form #settings-form method="post" action="/settings/preview" {
            (layout::csrf_field(current))
            table {
                caption { "The allocation settings" }
                thead { tr { th scope="col" { "Setting" } th scope="col" { "Now" } th scope="col" { "Meaning" } th scope="col" { "Change to" } } }
                tbody {
                    @for (key, meaning) in SWITCHES {
                        tr {
                            th scope="row" { code { (key) } }
                            td #{ "now-" (key) } { (on_off(switch_value(settings, key))) }
                            td #{ "meaning-" (key) } { (meaning) }
                            td {
                                select name=(key) id={ "set-" (key) } aria-label={ "Change " (key) } aria-describedby={ "meaning-" (key) } {
                                    @for (value, text) in [("keep", "keep as is"), ("on", "on"), ("off", "off")] {
                                        option value=(value) selected[form.field(key) == value] { (text) }
                                    }
                                }
                            }
                        }
                    }
                    tr {
                        th scope="row" { code { "max_days_back" } }
                        td #now-max_days_back { (days(settings.max_days_back)) }
                        td #meaning-max_days_back { (MAX_DAYS_BACK_MEANING) }
                        td {
                            input #set-max_days_back name="max_days_back" type="text" inputmode="numeric"
                                value=(form.max_days_back) aria-label="Change max_days_back: days, none for no limit, empty to keep"
                                aria-describedby="meaning-max_days_back" placeholder="keep";
                        }
                    }
                }
            }
            p { button #preview type="submit" { "Preview" } }
        }
        @if let Some(report) = report { (preview_section(current, form, report)) }
    }
}

fn preview_section(current: &Current, form: &SettingsForm, report: &WhatIfReport) -> Markup {
    html! {
        section #preview-result aria-labelledby="preview-heading" {
            h2 #preview-heading { "What this change would do" }
            ul.figures role="list" {
                li { span.value #lines-changed { (report.lines_changed) } "lines change, of " (report.lines_checked) }
                li { span.value #orders-changed { (report.orders_changed) } "orders change, of " (report.orders_checked) }
                li { span.value #orders-newly { (report.orders_newly_backordered) } "orders become backordered" }
                li { span.value #orders-cleared { (report.orders_cleared) } "orders stop being backordered" }
                li { span.value { (format!("{:+}", report.backorder_qty_delta)) } "units backordered" }
            }
            @if report.lines_changed == 0 && report.orders_changed == 0 {
                p.notice { "Nothing would change." }
            } @else {
                table #preview-lines {
                    caption {
                        "Changed lines"
                        @if report.lines.len() < report.lines_changed { " (the first " (report.lines.len()) ")" }
                    }
                    thead { tr {
                        th scope="col" { "Order" } th scope="col" { "Line" } th scope="col" { "SKU" }
                        th scope="col" .num { "Backorder qty" } th scope="col" { "ETA" } th scope="col" { "Order status" }
                    } }
                    tbody {
                        @for l in &report.lines {
                            tr {
                                td { a href={ "/orders/" (urlencode(&l.order_id)) } { (l.order_id) } }
                                td { (l.line_id) }
                                td { (l.sku) }
                                td.num { (l.backorder_qty_before) " " (arrow()) " " (l.backorder_qty_after) }
                                td { (l.eta_before.as_deref().unwrap_or("none")) " " (arrow()) " " (l.eta_after.as_deref().unwrap_or("none")) }
                                td { (label(&l.status_before)) " " (arrow()) " " (label(&l.status_after)) }
                            }
                        }
                    }
                }
            }
            form #apply-form method="post" action="/settings/apply" {
                (layout::csrf_field(current))
                @for (key, _) in SWITCHES {
                    input type="hidden" name=(key) value=(form.field(key));
                }
                input type="hidden" name="max_days_back" value=(form.max_days_back);
                p.warning { "Applying sends a settings_changed event and recalculates every SKU; the stored backorders then follow the new settings." }
                p { button #apply type="submit" { "Apply" } }
            }
        }
    }
}
