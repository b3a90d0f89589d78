-- 003_deployment_stable: the version a deployment falls back to.
--
-- The gateway sends a version's traffic to the stable version while that
-- version's circuit breaker is open. 0 means "not chosen": deployments
-- written before this migration fall back to their highest-weight version.
ALTER TABLE deployments ADD COLUMN stable INTEGER NOT NULL DEFAULT 0 CHECK (stable >= 0);
