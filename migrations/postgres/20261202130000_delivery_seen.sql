-- When a `serve` that has the destination in its configuration last ran
-- its delivery loop (Unix ms; NULL: not since this column exists). The
-- pruning of the message log keeps what a live destination (seen within
-- 12 heartbeats, or configured in the pruning process) has yet to take;
-- a destination no process has configured any more stops holding it.
ALTER TABLE delivery_destinations ADD COLUMN seen_ms BIGINT;
