-- What a job holds of a node it may share with other jobs: the CPUs (NULL: not said) and the GPU
-- indices (a JSON list); `allocated` FALSE: the node is held whole. Jobs on a node are found by
-- the node for splitting its energy between them.
ALTER TABLE job_nodes ADD COLUMN allocated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE job_nodes ADD COLUMN cpus INTEGER;
ALTER TABLE job_nodes ADD COLUMN gpus TEXT;
CREATE INDEX job_nodes_by_node ON job_nodes (node, job_id);
