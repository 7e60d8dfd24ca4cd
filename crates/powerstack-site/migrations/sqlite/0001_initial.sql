-- The site's store, SQLite dialect. Times are µs since the Unix epoch; counters are the stream's
-- wrap-extended counters, little-endian u64 each, one per column of the stream.
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    simulated TEXT,
    topology TEXT,
    registered_us BIGINT NOT NULL
);
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    stream TEXT NOT NULL UNIQUE,
    started_us BIGINT NOT NULL,
    domains TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    first_us BIGINT,
    last_us BIGINT,
    last_counters BLOB,
    power_watts DOUBLE PRECISION
);
CREATE INDEX streams_by_node ON streams (node_id, started_us);
CREATE TABLE samples (
    stream_id INTEGER NOT NULL,
    t_us BIGINT NOT NULL,
    counters BLOB NOT NULL,
    PRIMARY KEY (stream_id, t_us)
) WITHOUT ROWID;
CREATE TABLE rollups (
    stream_id INTEGER NOT NULL,
    minute_us BIGINT NOT NULL,
    t_us BIGINT NOT NULL,
    counters BLOB NOT NULL,
    peak_watts DOUBLE PRECISION,
    samples BIGINT NOT NULL,
    PRIMARY KEY (stream_id, minute_us)
) WITHOUT ROWID;
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    user_name TEXT,
    account TEXT,
    app TEXT,
    begin_us BIGINT NOT NULL,
    end_us BIGINT,
    energy_joules DOUBLE PRECISION,
    mean_power_watts DOUBLE PRECISION,
    peak_power_watts DOUBLE PRECISION,
    data_presence TEXT,
    settled BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX jobs_by_begin ON jobs (begin_us);
CREATE INDEX jobs_by_user ON jobs (user_name, begin_us);
CREATE TABLE job_nodes (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    node TEXT NOT NULL,
    position INTEGER NOT NULL,
    result TEXT,
    edges TEXT,
    settled BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (job_id, node)
);
CREATE INDEX job_nodes_unsettled ON job_nodes (settled, job_id);
