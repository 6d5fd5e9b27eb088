// Package migrations holds kommo-import's database schema as embedded SQL
// files (NNN_name.sql) and applies them in name order. Apply first reads which
// are applied; only when some are missing does it take a PostgreSQL advisory
// lock, so that several processes starting at once apply each file exactly
// once, and run DDL. A current schema is only read, so the commands can run as
// a role that may not change it.
package migrations
