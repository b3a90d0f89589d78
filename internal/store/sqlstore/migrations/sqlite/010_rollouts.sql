-- 010_rollouts: progressive rollouts, each a persisted state machine.
--
-- The columns are what is filtered, indexed or constrained; doc is the
-- JSON of the rest of domain.Rollout (traffic, steps, approvals,
-- verdicts with their evidence, history), and spec the YAML as applied.
-- The controller stores each new state before acting on it, with
-- compare-and-swap on revision, which every update bumps by exactly one.
CREATE TABLE rollouts (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id > 0),
    model       TEXT    NOT NULL REFERENCES models (name),
    environment TEXT    NOT NULL,
    baseline    INTEGER NOT NULL,
    candidate   INTEGER NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('pending', 'progressing', 'paused', 'awaiting_approval', 'promoting',
                                                  'succeeded', 'aborted', 'rolled_back', 'failed', 'superseded')),
    in_effect   INTEGER NOT NULL CHECK (in_effect IN (0, 1)),
    revision    INTEGER NOT NULL CHECK (revision > 0),
    spec        TEXT    NOT NULL,
    doc         TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CHECK (baseline <> candidate),
    FOREIGN KEY (model, baseline) REFERENCES versions (model, number),
    FOREIGN KEY (model, candidate) REFERENCES versions (model, number)
) STRICT;

-- At most one active rollout per model and environment: two racing
-- creates cannot both commit.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (model, environment)
    WHERE phase IN ('pending', 'progressing', 'paused', 'awaiting_approval', 'promoting');
-- Listing a model's rollouts in an environment, newest first.
CREATE INDEX rollouts_env ON rollouts (model, environment, id);
-- What a restarted controller must carry out again.
CREATE INDEX rollouts_not_in_effect ON rollouts (id) WHERE in_effect = 0;

-- What a rollout is about, and its creation, never change; every update
-- bumps the revision by one.
CREATE TRIGGER rollouts_identity_is_immutable BEFORE UPDATE ON rollouts
WHEN NEW.id <> OLD.id OR NEW.model <> OLD.model OR NEW.environment <> OLD.environment
  OR NEW.baseline <> OLD.baseline OR NEW.candidate <> OLD.candidate OR NEW.spec <> OLD.spec
  OR NEW.created_by <> OLD.created_by OR NEW.created_at <> OLD.created_at
  OR NEW.revision <> OLD.revision + 1
BEGIN
    SELECT RAISE(ABORT, 'a rollout keeps its identity, and each update bumps its revision by one');
END;

-- A rollout that ended changes once more at most: from not in effect to
-- in effect, in the same phase.
CREATE TRIGGER rollouts_ended_are_immutable BEFORE UPDATE ON rollouts
WHEN OLD.phase IN ('succeeded', 'aborted', 'rolled_back', 'failed', 'superseded')
  AND NOT (OLD.in_effect = 0 AND NEW.in_effect = 1 AND NEW.phase = OLD.phase)
BEGIN
    SELECT RAISE(ABORT, 'a rollout that ended is immutable once in effect');
END;

CREATE TRIGGER rollouts_no_delete BEFORE DELETE ON rollouts
BEGIN
    SELECT RAISE(ABORT, 'rollouts are never deleted');
END;
