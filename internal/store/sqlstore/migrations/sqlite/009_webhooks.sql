-- 009_webhooks: webhook subscriptions and the outbox of their deliveries.
--
-- events is a JSON array of event type patterns ("promotion.approved",
-- "promotion.*", "*"), validated by the notify package before it is
-- written. secret keys the HMAC signature of each delivery; it must be
-- readable to sign, so it is stored as given.
CREATE TABLE webhooks (
    id         TEXT NOT NULL PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL CHECK (secret <> ''),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- One row per event per matching webhook, written in the transaction of
-- the change that raised the event (a transactional outbox). data is the
-- event's JSON payload, kept so every attempt sends the same body. A
-- pending row has a next attempt time; an ended one has none. Deleting a
-- webhook deletes its deliveries. AUTOINCREMENT: an ID is never reused
-- after old rows are pruned.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         TEXT    NOT NULL CHECK (event_id <> ''),
    event_type       TEXT    NOT NULL CHECK (event_type <> ''),
    subject          TEXT    NOT NULL,
    event_time       TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at  TEXT,
    last_status_code INTEGER NOT NULL CHECK (last_status_code >= 0),
    last_error       TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    UNIQUE (webhook_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
) STRICT;

-- The dispatcher's question: which pending deliveries are due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Listing one webhook's deliveries, newest first.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
