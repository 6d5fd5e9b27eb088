// Package pgtest gives each test its own empty PostgreSQL database on a real server, so tests that
// touch the database run in parallel, across packages and processes, without seeing each other.
//
// The server comes from TEST_DATABASE_URL, else DATABASE_URL. `make test` starts a throwaway
// cluster (scripts/with-pg.sh) and sets TEST_DATABASE_URL when neither is set. Without a server
// the test fails, never skips: a database test that silently does not run proves nothing.
//
// Every database is created from template0 under a name starting with "kt_", and dropped WITH
// (FORCE) when the test ends, so a shared development server only ever sees short-lived kt_*
// databases.
package pgtest
