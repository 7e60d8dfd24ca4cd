-- The site's store, PostgreSQL dialect: the same tables and columns as the SQLite one, with the
-- samples and their per-minute rollups partitioned by time (one partition a day, created ahead
-- by the service; a default partition catches anything outside them).
CREATE TABLE nodes (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    simulated TEXT,
    topology TEXT,
    registered_us BIGINT NOT NULL
);
CREATE TABLE streams (
    id SERIAL PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes (id),
    stream TEXT NOT NULL UNIQUE,
    started_us BIGINT NOT NULL,
    domains TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    first_us BIGINT,
    last_us BIGINT,
    last_counters BYTEA,
    power_watts DOUBLE PRECISION
);
CREATE INDEX streams_by_node ON streams (node_id, started_us);
CREATE TABLE samples (
    stream_id INTEGER NOT NULL,
    t_us BIGINT NOT NULL,
    counters BYTEA NOT NULL,
    PRIMARY KEY (stream_id, t_us)
) PARTITION BY RANGE (t_us);
CREATE TABLE samples_default PARTITION OF samples DEFAULT;
CREATE TABLE rollups (
    stream_id INTEGER NOT NULL,
    minute_us BIGINT NOT NULL,
    t_us BIGINT NOT NULL,
    counters BYTEA NOT NULL,
    peak_watts DOUBLE PRECISION,
    samples BIGINT NOT NULL,
    PRIMARY KEY (stream_id, minute_us)
) PARTITION BY RANGE (minute_us);
CREATE TABLE rollups_default PARTITION OF rollups DEFAULT;
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
