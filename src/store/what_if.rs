//! The what-if preview, whichever the database (src/whatif.rs has the
//! request and the report; each backend runs it in a rolled-back
//! transaction).

use chrono::{DateTime, Utc};

use super::{AnyStore, IngestOptions, StoreError};
use crate::whatif::{PREVIEW_EVENT_ID, WhatIfReport, WhatIfRequest};

impl AnyStore {
    /// What applying `request`'s settings change and events, then the
    /// recalculation they call for, would change on the stored state;
    /// writes nothing. A refused event is [`StoreError::Refused`], named.
    pub async fn what_if(
        &self,
        request: &WhatIfRequest,
        options: IngestOptions,
        as_of: DateTime<Utc>,
    ) -> Result<WhatIfReport, StoreError> {
        let limit = request.limit().map_err(StoreError::Refused)?;
        // An id no sender has used, so the settings change is never
        // skipped as a repeat (the transaction is rolled back anyway).
        let id = format!("{PREVIEW_EVENT_ID}-{:016x}", rand::random::<u64>());
        let events = request.batch(&id);
        let preview = match self {
            AnyStore::Sqlite(s) => s.what_if(&events, options, as_of, limit).await?,
            AnyStore::Postgres(s) => s.what_if(&events, options, as_of, limit).await?,
        };
        Ok(WhatIfReport::new(preview, as_of, limit))
    }
}
