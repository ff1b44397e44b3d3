-- Each log is also an RFC 6962 Merkle tree over its entries' hashes. merkle_nodes keeps the
-- hash of every perfect, aligned subtree above the leaves (level L >= 1, index I covers
-- leaves [I*2^L, (I+1)*2^L)); leaf hashes are recomputed from log_entries.entry_hash, which
-- halves what the tree writes. Any inclusion or consistency proof is one lookup of O(log n)
-- rows. checkpoints keeps every signed checkpoint ever issued; the newest one's size is the
-- tree's size. Both are append-only like the log itself.

CREATE TABLE merkle_nodes (
    log_id bigint   NOT NULL REFERENCES logs (id),
    level  smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hash   bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (log_id, level, idx)
);

CREATE TABLE checkpoints (
    log_id    bigint      NOT NULL REFERENCES logs (id),
    tree_size bigint      NOT NULL CHECK (tree_size >= 0),
    root_hash bytea       NOT NULL CHECK (length(root_hash) = 32),
    -- The whole signed note, exactly as served.
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, tree_size)
);

CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_log_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();

ALTER TABLE merkle_nodes OWNER TO verdict_owner;
ALTER TABLE checkpoints OWNER TO verdict_owner;
GRANT SELECT, INSERT ON merkle_nodes, checkpoints TO verdict_app;
