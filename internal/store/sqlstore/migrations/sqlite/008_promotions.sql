-- 008_promotions: requests to move a version into an environment.
--
-- doc is the JSON of the gate report and the decisions. A promotion is
-- changed only while pending; the trigger refuses changes to one that
-- ended (rejected, completed, cancelled), and none is ever deleted.
CREATE TABLE promotions (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id > 0),
    model       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    environment TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'rejected', 'completed', 'cancelled')),
    doc         TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    FOREIGN KEY (model, version) REFERENCES versions (model, number)
) STRICT;

CREATE INDEX promotions_env ON promotions (model, environment, state, id);

CREATE TRIGGER promotions_ended_are_immutable BEFORE UPDATE ON promotions
WHEN OLD.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'a promotion that ended is immutable');
END;

CREATE TRIGGER promotions_no_delete BEFORE DELETE ON promotions
BEGIN
    SELECT RAISE(ABORT, 'promotions are never deleted');
END;
