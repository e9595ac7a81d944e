-- The token a device moved from, set by the sync page that moved it and cleared by that
-- same transaction once it has counted the move (NULL at every other time). Sync tells
-- moved devices apart this way instead of looking every serial up before writing it.
ALTER TABLE ade_devices ADD COLUMN previous_token_id BIGINT;
CREATE INDEX ade_devices_moved ON ade_devices (previous_token_id) WHERE previous_token_id IS NOT NULL;
