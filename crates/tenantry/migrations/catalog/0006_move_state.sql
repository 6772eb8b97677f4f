-- What a move under way has made: its id, the target it builds, and whether the catalog has
-- switched to it. A move killed midway leaves it set, so `tenants move --resume` or `--abort`
-- can finish or undo it, dropping only what carries this move's id.
ALTER TABLE tenantry.tenants ADD COLUMN move_state jsonb;
