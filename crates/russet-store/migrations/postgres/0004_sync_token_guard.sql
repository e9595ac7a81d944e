-- PostgreSQL only. The foreign key from ade_devices.token_id to ade_tokens checked the token
-- once per written device: about a third of the cost of inserting a device during a sync.
-- The store now takes the same guarantee once per transaction instead: a sync page locks
-- its token row FOR KEY SHARE before writing (so the token cannot be deleted under it), and
-- deleting a token refuses while devices still refer to it (see ade_token_delete).
-- SQLite keeps the foreign key: it has one writer and the check is cheap there.
ALTER TABLE ade_devices DROP CONSTRAINT IF EXISTS ade_devices_token_id_fkey;
