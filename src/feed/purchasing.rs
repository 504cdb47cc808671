//! The purchasing report: per vendor, every SKU with units promised to
//! waiting orders that no open purchase order covers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{FeedSource, QueryError, SkuFigures};
use crate::engine::time_format::{format_timestamp, timestamp_opt};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Named vendors by name, then products without one (`vendor: null`).
    pub vendors: Vec<VendorShortfall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VendorShortfall {
    pub vendor: Option<String>,
    /// By SKU.
    pub skus: Vec<SkuShortfall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SkuShortfall {
    pub sku: String,
    /// `max(0, backordered - on_order)`, per warehouse and summed with
    /// `warehouse_based`.
    pub shortfall: i64,
    pub backordered: i64,
    /// Open purchase-order units in eligible warehouses.
    pub on_order: i64,
    /// The order date of the oldest active order waiting for the SKU.
    #[serde(with = "timestamp_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_waiting_order: Option<DateTime<Utc>>,
    /// Active orders with a backordered line of the SKU.
    pub waiting_orders: i64,
    /// With `warehouse_based` only: the warehouses with a shortfall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouses: Option<Vec<WarehouseShortfall>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WarehouseShortfall {
    pub warehouse: String,
    pub shortfall: i64,
    pub backordered: i64,
    pub on_order: i64,
}

/// The report, for every vendor or (`only`) one.
pub fn report(source: &FeedSource, only: Option<&str>) -> Result<Report, QueryError> {
    report_of(
        &super::figures(source),
        source.settings.warehouse_based,
        only,
    )
}

/// The report from the feed's figures of every SKU (by SKU): each SKU's
/// entry holds its backordered and on-order units, per warehouse too, and
/// its vendor; `waiting` the orders waiting for it.
pub fn report_of(
    figures: &[SkuFigures],
    warehouse_based: bool,
    only: Option<&str>,
) -> Result<Report, QueryError> {
    // Every product row has an entry, which carries its vendor.
    if let Some(v) = only
        && !figures.iter().any(|f| f.entry.vendor.as_deref() == Some(v))
    {
        return Err(QueryError {
            parameter: "vendor",
            problem: format!("no product names vendor \"{v}\""),
        });
    }
    let mut by_vendor: BTreeMap<Option<&str>, Vec<SkuShortfall>> = BTreeMap::new();
    for SkuFigures { entry, waiting } in figures {
        let vendor = entry.vendor.as_deref();
        if only.is_some_and(|v| vendor != Some(v)) {
            continue;
        }
        // `entry.on_order` counts eligible warehouses only.
        let on_order = entry.on_order;
        let (shortfall, warehouses) = if warehouse_based {
            let per: Vec<WarehouseShortfall> = entry
                .warehouses
                .iter()
                .map(|w| {
                    let on_order = if w.eligible { w.on_order } else { 0 };
                    WarehouseShortfall {
                        warehouse: w.warehouse.clone(),
                        shortfall: (w.backordered - on_order).max(0),
                        backordered: w.backordered,
                        on_order,
                    }
                })
                .filter(|w| w.shortfall > 0)
                .collect();
            (per.iter().map(|w| w.shortfall).sum(), Some(per))
        } else {
            ((entry.backordered - on_order).max(0), None)
        };
        if shortfall <= 0 {
            continue;
        }
        by_vendor.entry(vendor).or_default().push(SkuShortfall {
            sku: entry.sku.clone(),
            shortfall,
            backordered: entry.backordered,
            on_order,
            oldest_waiting_order: waiting.oldest,
            waiting_orders: waiting.orders,
            warehouses,
        });
    }
    // `None` sorts first in a map; the report puts products without a
    // vendor last.
    let mut vendors: Vec<VendorShortfall> = by_vendor
        .into_iter()
        .map(|(vendor, skus)| VendorShortfall {
            vendor: vendor.map(str::to_owned),
            skus,
        })
        .collect();
    let unnamed_first = vendors.first().is_some_and(|v| v.vendor.is_none());
    vendors.rotate_left(usize::from(unnamed_first));
    Ok(Report { vendors })
}

/// The report as CSV (RFC 4180), one row per SKU.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "vendor,sku,shortfall,backordered,on_order,oldest_waiting_order,waiting_orders\r\n",
    );
    for v in &report.vendors {
        for s in &v.skus {
            let _ = write!(
                out,
                "{},{},{},{},{},{},{}\r\n",
                csv_field(v.vendor.as_deref().unwrap_or("")),
                csv_field(&s.sku),
                s.shortfall,
                s.backordered,
                s.on_order,
                s.oldest_waiting_order
                    .as_ref()
                    .map(format_timestamp)
                    .unwrap_or_default(),
                s.waiting_orders,
            );
        }
    }
    out
}

/// A field quoted when it holds a separator, a quote or a line break; a
/// leading `=`, `+`, `-` or `@` is quoted too and prefixed with `'`, so that
/// a spreadsheet shows the text instead of running it as a formula.
fn csv_field(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@']);
    if formula || text.contains([',', '"', '\n', '\r']) {
        let text = if formula {
            format!("'{text}")
        } else {
            text.to_owned()
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_when_needed_and_formulas_defused() {
        assert_eq!(csv_field("TEA"), "TEA");
        assert_eq!(csv_field("A,B"), "\"A,B\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+2"), "\"'=1+2\"");
    }
}
