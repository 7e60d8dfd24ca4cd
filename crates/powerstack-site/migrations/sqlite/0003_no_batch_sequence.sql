-- Batches are no longer tracked by sequence number: a resend is recognised by its samples.
ALTER TABLE streams DROP COLUMN last_seq;
