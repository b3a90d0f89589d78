-- 004_deployment_routing: a deployment's routing policy beyond the split.
--
-- routing is a JSON object (domain.Routing): sticky key, header match
-- rules in their text form, shadow version and percent, limits. '{}'
-- routes by weights alone, as every deployment did before.
ALTER TABLE deployments ADD COLUMN routing TEXT NOT NULL DEFAULT '{}';
