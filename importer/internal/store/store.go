// Package store is the importer's one home for SQL: every statement on the
// kommo_import_* tables, behind typed methods. The engine (stage, plan,
// send, the heartbeat) and the operator commands (status, runs, report,
// retry, verify, abandon, metrics) go through it; nothing else writes SQL
// for these tables. Each method runs one statement (or one documented
// group) on the DBTX it was made with: a pool, a session connection or a
// transaction (Queries.WithTx), so that the caller decides what is atomic.
//
// The statements are plain and visible, in the order the tables' life goes:
// runs.go (a run's row), staging.go, plan.go, send.go (claims, checkpoints,
// parking), pacer.go (the scope's rate schedule), processes.go (liveness and
// leases), status.go and reads.go (what operators read). store_test.go runs
// every method against a real PostgreSQL.
package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DBTX is what a statement runs on: *pgxpool.Pool, *pgxpool.Conn, *pgx.Conn
// or pgx.Tx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Queries runs the importer's statements on one DBTX.
type Queries struct{ db DBTX }

// New returns the statements bound to db.
func New(db DBTX) *Queries { return &Queries{db: db} }

// WithTx returns the statements bound to tx.
func (q *Queries) WithTx(tx pgx.Tx) *Queries { return &Queries{db: tx} }

// State is a message's checkpoint state, as the messages table stores it.
type State string

// The states of a message. A message goes pending → sending → sent (or
// failed); a message found sending is in doubt until its chat's history
// says whether it landed.
const (
	StatePending State = "pending"
	StateSending State = "sending" // an attempt may have landed: in doubt
	StateSent    State = "sent"
	StateFailed  State = "failed"  // refused by the API for good
	StateSkipped State = "skipped" // given up by an operator (retry --skip): never sent
)

// IsNoRows reports whether err says a statement that returns one row found none.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// runLock is the advisory-lock key of a run: one process stages and plans
// it at a time, and retry resets its failed messages under it. Spelled once.
const runLock = `hashtextextended('kommo-import run ' || $1, 0)`
