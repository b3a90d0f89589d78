-- 002_deployments: what each environment serves for each model.
--
-- versions is a JSON array of {"version": n, "weight": w}, sorted by
-- version; the deployment service validates it (weights sum to 100) before
-- it is written. revision counts changes for optimistic concurrency.
CREATE TABLE deployments (
    model       TEXT    NOT NULL REFERENCES models (name),
    environment TEXT    NOT NULL,
    versions    TEXT    NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision > 0),
    updated_by  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (model, environment)
) STRICT, WITHOUT ROWID;
