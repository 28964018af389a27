-- `instances_parent` held a row for every instance, though only the instances a call started
-- have a parent: each new instance and each instance update that was not in place (HOT, on
-- PostgreSQL) wrote an entry for a NULL. Now it holds only the children.
DROP INDEX instances_parent;
CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;
