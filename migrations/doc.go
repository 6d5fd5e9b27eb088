// Package migrations holds kommo-import's database schema as embedded SQL
// files and applies them, in name order, under a PostgreSQL advisory lock so
// that several importer processes starting at once apply each file exactly once.
package migrations
