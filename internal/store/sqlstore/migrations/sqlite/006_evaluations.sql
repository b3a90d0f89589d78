-- 006_evaluations: runs of a model version over a dataset version.
--
-- A row is inserted 'running' before the first prediction and updated once,
-- to 'succeeded' or 'failed'; the trigger refuses any change to a finished
-- row. result is a JSON object {"metrics", "segments", "fairness",
-- "features"} ('{}' while running); finished_at is NULL while running.
CREATE TABLE evaluations (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id > 0),
    model           TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    dataset         TEXT    NOT NULL,
    dataset_version INTEGER NOT NULL,
    dataset_digest  TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error           TEXT    NOT NULL,
    task            TEXT    NOT NULL CHECK (task IN ('classification', 'regression')),
    row_count       INTEGER NOT NULL CHECK (row_count >= 0),
    threshold       REAL    NOT NULL,
    result          TEXT    NOT NULL,
    baseline        INTEGER NOT NULL CHECK (baseline >= 0),
    created_by      TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    FOREIGN KEY (model, version) REFERENCES versions (model, number),
    FOREIGN KEY (dataset, dataset_version) REFERENCES datasets (name, number)
) STRICT;

-- "The latest succeeded evaluation of version V on dataset digest D", and
-- listings of one model's or one version's evaluations.
CREATE INDEX evaluations_version ON evaluations (model, version, dataset_digest, status, id);
-- Running evaluations, failed at start-up after a crash.
CREATE INDEX evaluations_status ON evaluations (status, id);

CREATE TRIGGER evaluations_finished_are_immutable BEFORE UPDATE ON evaluations
WHEN OLD.status <> 'running'
BEGIN
    SELECT RAISE(ABORT, 'a finished evaluation is immutable');
END;

CREATE TRIGGER evaluations_no_delete BEFORE DELETE ON evaluations
BEGIN
    SELECT RAISE(ABORT, 'evaluations are never deleted');
END;
