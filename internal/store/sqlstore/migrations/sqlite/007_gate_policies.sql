-- 007_gate_policies: what a version must pass to enter an environment.
--
-- Every apply adds a revision; the latest one is in force. policy is the
-- JSON of domain.GatePolicy's rules, dataset and approvals; source is the
-- YAML as applied. Revisions are never changed or deleted.
CREATE TABLE gate_policies (
    model       TEXT    NOT NULL REFERENCES models (name),
    environment TEXT    NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision > 0),
    policy      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (model, environment, revision)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER gate_policies_immutable BEFORE UPDATE ON gate_policies
BEGIN
    SELECT RAISE(ABORT, 'gate policy revisions are immutable');
END;

CREATE TRIGGER gate_policies_no_delete BEFORE DELETE ON gate_policies
BEGIN
    SELECT RAISE(ABORT, 'gate policy revisions are never deleted');
END;
