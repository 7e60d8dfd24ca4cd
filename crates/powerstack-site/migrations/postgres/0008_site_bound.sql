-- The site power bound. `site_bound`: the bound set by `powerstack site bound` (one row; none:
-- the configuration's schedule or bound applies). `bound_lease`: which replica runs the control
-- loop (one row, renewed every period, taken over once it ran out). `bound_node_caps`: what each
-- node counts for in the bound, as the loop last wrote or read it (after a write whose outcome is
-- unknown, the higher of the old and the new cap), so that a loop that starts again, on this
-- replica or another, counts every node as it stands. `bound_decisions`: every period that
-- wrote something or whose bound changed, as JSON (`powerstack.site-bound.v1`'s decision).
CREATE TABLE site_bound (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    watts DOUBLE PRECISION NOT NULL,
    reserve_watts DOUBLE PRECISION,
    policy TEXT,
    set_by TEXT NOT NULL,
    set_us BIGINT NOT NULL
);
CREATE TABLE bound_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    lease_until_us BIGINT NOT NULL
);
CREATE TABLE bound_node_caps (
    node TEXT PRIMARY KEY,
    cap_watts DOUBLE PRECISION NOT NULL,
    via TEXT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE TABLE bound_decisions (
    id BIGSERIAL PRIMARY KEY,
    unix_us BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX bound_decisions_by_time ON bound_decisions (unix_us);
