-- kommo-import schema: a process alone on its scope spends the rate to the
-- last slot (issue 16, "the rate spent").
--
-- The schedule's margin covers how late another process's request may go
-- out after its slot; a process that has the scope to itself keeps its own
-- requests a second apart with its spacing ring instead, so it needs only
-- the network's share of the margin and gives up no slot for being a few
-- milliseconds late. The schedule tells which is the case: holder is the
-- pacer that reserved the last slot; shared_until is set, to a while after
-- the slot, whenever another pacer reserves (the scope is shared until
-- then). The first slot after a change from alone to shared comes later by
-- the most a lone pacer's request may be late, so that it cannot crowd a
-- second with the requests the lone pacer sent before it knew.

ALTER TABLE kommo_import_pacer
    ADD COLUMN holder       text,        -- the pacer (a random token per process and scope) that reserved last
    ADD COLUMN shared_until timestamptz; -- until then, more than one pacer reserves slots of the scope
