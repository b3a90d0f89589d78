-- 005_datasets: evaluation datasets, immutable and versioned per name.
--
-- The bytes are a blob in the artifact store named by digest; a row is
-- written only after the blob is durable. columns is a JSON array of
-- {"name", "type", "missing"}, segments a JSON array of names (NULL-free:
-- '[]' when none), sensitive '' when none. No row is ever updated.
CREATE TABLE datasets (
    name       TEXT    NOT NULL,
    number     INTEGER NOT NULL CHECK (number > 0),
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    format     TEXT    NOT NULL CHECK (format IN ('csv', 'jsonl')),
    row_count  INTEGER NOT NULL CHECK (row_count > 0),
    columns    TEXT    NOT NULL,
    task       TEXT    NOT NULL CHECK (task IN ('classification', 'regression')),
    label      TEXT    NOT NULL,
    segments   TEXT    NOT NULL,
    sensitive  TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (name, number)
) STRICT;

-- Pushing the same bytes under the same name again finds them here.
CREATE INDEX datasets_digest ON datasets (name, digest);

CREATE TRIGGER datasets_no_update BEFORE UPDATE ON datasets
BEGIN
    SELECT RAISE(ABORT, 'datasets are immutable');
END;
