-- kommo-import schema: the send path links chats (--link-contacts).
--
-- A run records whether it links, and whether it creates contacts: a resumed
-- run keeps that (a chat is never sent loud because a resume forgot the
-- flag), as it keeps its notify mode. NULL: a run that does not link.
ALTER TABLE kommo_import_runs
    ADD COLUMN link_contacts text CHECK (link_contacts IN ('link', 'link+create'));

-- The process whose worker holds a contact's creation ('creating'), as
-- kommo_import_processes names it. attempted_at is written just before each
-- creation request, for the items its owner still holds (a request whose
-- items were taken over is not sent). A creation in doubt is taken over
-- (after a search that finds no contact, to create it again with the same
-- request_id) by its owner once the reconcile window since that attempt has
-- passed, by another process only once the request timeout has passed too:
-- by then no request of the attempt can still arrive.
ALTER TABLE kommo_import_contact_matches ADD COLUMN owner text;

-- report --contacts lists a run's links in conversation order.
CREATE INDEX kommo_import_contact_links_run_conv ON kommo_import_contact_links (run_name, conversation_id);

-- A creation request's checkpoint finds its batch's claims by request_id.
CREATE INDEX kommo_import_contact_matches_creating
    ON kommo_import_contact_matches (run_name, request_id) WHERE state = 'creating';
