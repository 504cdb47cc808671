//! Orders' `customer` (snapshots, `order_upserted`), stored beside the
//! order header in two columns that no recalculation reads: written after
//! the header, read back for export and for change messages. The SQL reads
//! the same on both backends, so it is written once and instantiated per
//! connection type.

use rustc_hash::FxHashMap;

use crate::engine::snapshot::{Customer, Order};

/// Attaches stored customers to exported orders.
pub(super) fn attach(orders: &mut [Order], mut stored: FxHashMap<String, Customer>) {
    if stored.is_empty() {
        return;
    }
    for order in orders {
        order.customer = stored.remove(&order.id);
    }
}

type Row = (String, Option<String>, Option<String>);

fn into_map(rows: Vec<Row>) -> FxHashMap<String, Customer> {
    rows.into_iter()
        .map(|(id, email, name)| (id, Customer { email, name }))
        .collect()
}

macro_rules! customer_statements {
    ($conn:ty) => {
        /// Sets each order's customer columns (none: both null), a
        /// statement per order (SQLite: in process, cheap).
        #[allow(dead_code)]
        pub async fn write_each(
            conn: &mut $conn,
            orders: &[&crate::engine::snapshot::Order],
        ) -> Result<(), crate::store::StoreError> {
            for order in orders {
                let customer = order.customer.as_ref();
                sqlx::query(
                    "UPDATE orders SET customer_email = $1, customer_name = $2 WHERE id = $3",
                )
                .bind(customer.and_then(|c| c.email.as_deref()))
                .bind(customer.and_then(|c| c.name.as_deref()))
                .bind(&order.id)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// The stored customers, by order id.
        pub async fn read(
            conn: &mut $conn,
        ) -> Result<
            rustc_hash::FxHashMap<String, crate::engine::snapshot::Customer>,
            crate::store::StoreError,
        > {
            let rows: Vec<super::Row> = sqlx::query_as(
                "SELECT id, customer_email, customer_name FROM orders
                 WHERE customer_email IS NOT NULL OR customer_name IS NOT NULL",
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(super::into_map(rows))
        }
    };
}

pub(super) mod sqlite {
    customer_statements!(sqlx::SqliteConnection);
    pub use write_each as write;
}

pub(super) mod postgres {
    customer_statements!(sqlx::PgConnection);

    /// Sets each order's customer columns (none: both null), in one statement.
    pub async fn write(
        conn: &mut sqlx::PgConnection,
        orders: &[&crate::engine::snapshot::Order],
    ) -> Result<(), crate::store::StoreError> {
        if orders.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        let emails: Vec<Option<&str>> = orders
            .iter()
            .map(|o| o.customer.as_ref().and_then(|c| c.email.as_deref()))
            .collect();
        let names: Vec<Option<&str>> = orders
            .iter()
            .map(|o| o.customer.as_ref().and_then(|c| c.name.as_deref()))
            .collect();
        sqlx::query(
            "UPDATE orders o SET customer_email = c.email, customer_name = c.name
             FROM unnest($1::text[], $2::text[], $3::text[]) AS c(id, email, name)
             WHERE o.id = c.id",
        )
        .bind(&ids)
        .bind(&emails)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
