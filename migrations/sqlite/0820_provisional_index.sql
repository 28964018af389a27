-- `instances_status` served one query: the running instances with provisional deadlines (a
-- calendar year missing), looked up to recompute them. It held an entry for every instance,
-- written again at each update that was not in place (HOT, on PostgreSQL). This index holds
-- only the instances that query finds, nearly always none.
DROP INDEX instances_status;
CREATE INDEX instances_provisional ON instances (id)
    WHERE provisional = 1 AND status IN ('running', 'incident');
