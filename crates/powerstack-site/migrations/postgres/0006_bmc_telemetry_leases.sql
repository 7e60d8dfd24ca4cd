-- Nodes whose power the site reads through their BMC (`[[bmc]] telemetry = true`): one replica
-- at a time polls a node, the holder of its lease (`owner`, until `lease_until_us`), renewed at
-- each reading and taken over by another replica once it has run out. `stream` is the holder's
-- stream: its samples go there only, so two replicas never write one stream.
CREATE TABLE bmc_telemetry_leases (
    node TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    stream TEXT,
    lease_until_us BIGINT NOT NULL
);
