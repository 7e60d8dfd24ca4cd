-- What the site's power bound needs: where each node's agent takes caps (its `control_url`, as
-- its agent last registered; a registration without one deletes the row), and what each job asks
-- for (its power, W, and its priority; NULL: not given).
CREATE TABLE node_controls (
    node TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    updated_unix_us BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN power_watts DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN priority INTEGER;
