-- Control tasks: power transitions and power limits on many nodes through their BMCs. A task's
-- `params` is its request as JSON (operation, deadline, escalation; or the limit); its `state`
-- is derived from its nodes' (running, succeeded, failed, aborted) in the transaction that
-- changes one of them.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    abort_requested BOOLEAN NOT NULL DEFAULT FALSE,
    requested_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE INDEX tasks_by_kind ON tasks (kind, created_us);
CREATE INDEX tasks_by_expiry ON tasks (expires_us);

-- One row per node of a task. A replica claims a row by taking its lease (`lease_owner`,
-- `lease_until_us`); `sent_at_us` is written and committed before the request goes to the BMC,
-- and a row with it set is never sent again: whoever takes it over reads the node's state.
-- `attempt` counts the requests sent (2: a graceful request escalated).
CREATE TABLE task_nodes (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    result TEXT,
    sent_at_us BIGINT,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_us BIGINT NOT NULL DEFAULT 0,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (task_id, node)
);
CREATE INDEX task_nodes_to_claim ON task_nodes (state, lease_until_us);
CREATE INDEX task_nodes_by_node ON task_nodes (node, state);
