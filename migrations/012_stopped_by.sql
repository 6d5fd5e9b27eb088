-- kommo-import schema: the process that recorded a run's stop (issue 16,
-- found by make test-under-load).
--
-- status names a process that died without recording its stop: one whose
-- last heartbeat came after the run's recorded stop. A process that is
-- stopped (SIGTERM) stops its heartbeat, unregisters and records its stop,
-- but on a loaded server a heartbeat cancelled on the client can still run
-- after the stop was recorded, and its row stays when the unregister times
-- out: that process recorded its stop, so it is no lost one.

ALTER TABLE kommo_import_runs
    ADD COLUMN stopped_by text; -- the process (kommo_import_processes.process_id) that recorded stopped_at
