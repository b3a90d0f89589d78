-- 001_init: models, versions, labels, aliases, tokens and the audit log.
--
-- Times are TEXT in audit.TimeFormat ("2006-01-02T15:04:05.000000000Z"):
-- fixed width, UTC, nanoseconds, so they round-trip exactly and sort as
-- text. Maps are JSON objects in TEXT columns ('{}' when empty). Every table
-- is STRICT, so a value of the wrong type is an error, not a silent cast.

CREATE TABLE models (
    name        TEXT NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    owner       TEXT NOT NULL,
    tags        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- versions keeps its rowid: rows carry lineage and metrics documents that
-- are too large for a clustered (WITHOUT ROWID) table to pay off. The
-- primary key index (model, number) serves lookups, listings in number
-- order, MAX(number) for the next number and the foreign key from models.
CREATE TABLE versions (
    model           TEXT    NOT NULL REFERENCES models (name),
    number          INTEGER NOT NULL CHECK (number > 0),
    artifact_digest TEXT    NOT NULL,
    artifact_size   INTEGER NOT NULL CHECK (artifact_size >= 0),
    artifact_files  INTEGER NOT NULL CHECK (artifact_files >= 0),
    format          TEXT    NOT NULL,
    runtime_config  TEXT    NOT NULL,
    lineage         TEXT    NOT NULL,
    metrics         TEXT    NOT NULL,
    labels          TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('registered', 'staging', 'production', 'archived')),
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (model, number)
) STRICT;

-- The (model, state) index lets a state filter skip other states' rows.
CREATE INDEX versions_model_state ON versions (model, state, number);

-- version_labels mirrors versions.labels, one row per label, so a label
-- filter is an index lookup. The store rewrites it with the labels column.
CREATE TABLE version_labels (
    model  TEXT    NOT NULL,
    number INTEGER NOT NULL,
    key    TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (model, number, key),
    FOREIGN KEY (model, number) REFERENCES versions (model, number)
) STRICT, WITHOUT ROWID;

CREATE TABLE aliases (
    model      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (model, name),
    FOREIGN KEY (model, version) REFERENCES versions (model, number)
) STRICT, WITHOUT ROWID;

CREATE INDEX aliases_version ON aliases (model, version);

CREATE TABLE tokens (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL
        CHECK (role IN ('viewer', 'author', 'approver', 'deployer', 'admin')),
    hash       BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

-- audit_entries holds each entry exactly as sealed: before and after are the
-- compact JSON that was hashed, never re-encoded.
CREATE TABLE audit_entries (
    seq       INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
    time      TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    before    TEXT    NOT NULL,
    after     TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_entries_subject ON audit_entries (subject, seq);
CREATE INDEX audit_entries_actor ON audit_entries (actor, seq);

-- The log is append-only. These triggers stop accidental edits; deliberate
-- ones (dropping the triggers first) are what the hash chain catches.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

-- audit_head records the last appended entry beside the log, so that rows
-- deleted from the end are caught. One row, id 1; seq 0 and hash '' when
-- the log is empty.
CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL CHECK (seq >= 0),
    hash TEXT    NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
