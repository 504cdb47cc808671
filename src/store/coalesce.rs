//! Coalescing recalculation jobs, the same on both databases: an event
//! joins the job already waiting to be fetched instead of queuing another
//! (docs/architecture.md, "Coalescing"). Each backend supplies the two
//! statements, because the queue tables and their locking differ.

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::StoreError;
use crate::queue::{QUEUE, RecalcJob};

/// A backend's statements: `find` selects `(id, job)` of one job of the
/// queue (bound first) that is waiting to be fetched; `absorb` sets `job`
/// (bound first) of the job `id` (bound second) only if it is still
/// waiting, returning its id when it did.
pub struct WaitingJobStatements {
    pub find: &'static str,
    pub absorb: &'static str,
}

/// Lets the job waiting to be fetched absorb `job`. False when no job is
/// waiting, or it was fetched in the meantime: then the caller queues one.
pub async fn join_waiting_job<DB>(
    conn: &mut DB::Connection,
    statements: &WaitingJobStatements,
    job: &RecalcJob,
) -> Result<bool, StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments: IntoArguments<DB>,
    (String, Vec<u8>): for<'r> FromRow<'r, DB::Row>,
    (String,): for<'r> FromRow<'r, DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let waiting: Option<(String, Vec<u8>)> = sqlx::query_as(statements.find)
        .bind(QUEUE)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((id, payload)) = waiting else {
        return Ok(false);
    };
    let Some(merged) = RecalcJob::absorb(&payload, job) else {
        return Ok(false);
    };
    let absorbed: Option<String> = sqlx::query_scalar(statements.absorb)
        .bind(merged)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(absorbed.is_some())
}
