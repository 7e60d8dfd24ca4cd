-- Rollups are computed from the raw samples in the background: how far they are done, and the
-- minutes that late samples (an agent's spool catching up) made stale.
CREATE TABLE rollup_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    done_until_us BIGINT NOT NULL
);
CREATE TABLE rollup_dirty (
    stream_id INTEGER NOT NULL,
    minute_us BIGINT NOT NULL,
    PRIMARY KEY (stream_id, minute_us)
) WITHOUT ROWID;
