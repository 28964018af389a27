-- Due timers are read in (due_at, id) order. The (state, due_at) index gave due_at order but
-- not id order among timers due at the same time, so every read of the next due timers sorted
-- all timers due at once (the cost of each fire grew with the number due). The new index is
-- partial: fired and cancelled timers, the table's bulk over time, are not in it.
CREATE INDEX timers_pending ON timers (due_at, id) WHERE state = 'pending';
DROP INDEX timers_due;
