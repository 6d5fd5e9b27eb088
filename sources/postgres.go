package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/kommo-import/kommo-import/internal/pgurl"
	"github.com/kommo-import/kommo-import/wire"
)

// pgDecoder streams the rows of a query: pgx reads them off the connection as
// Next asks for them, so memory holds one row at a time whatever the size of
// the result.
type pgDecoder struct {
	conn   *pgx.Conn
	tx     pgx.Tx // read-only: every source read runs in one
	rows   pgx.Rows
	primed bool // rows is on a row Open already fetched
	cancel context.CancelFunc
	plan   columnPlan
	row    int64
	b      builder
	raw    []byte
	js     jsonlDecoder // decodes a payload column the way JSONL lines are
}

// openPostgres connects and starts the query, inside a READ ONLY
// transaction: reading a source must never change it, and a --source-query
// is the user's SQL (a "DELETE ... RETURNING" would otherwise delete what it
// returns, under validate too). With --source-table the table is read whole in
// msgid order; a --source-query is taken as written. Neither is resumable by
// row number: rows inserted since the last read shift the ones after them.
func openPostgres(ctx context.Context, spec Spec) (_ *pgDecoder, err error) {
	cfg, err := pgurl.Parse(spec.DSN, pgx.ParseConfig)
	if err != nil {
		return nil, fmt.Errorf("source postgres: --source-dsn: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "kommo-import source"
	}
	// The simple protocol runs several statements in one string, and a
	// "COMMIT; DELETE ..." would leave the read-only transaction. The
	// extended protocol takes one statement; "exec" mode needs no
	// prepared statements, so it also works through pgbouncer.
	if cfg.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	// The query lives as long as the Reader, not as long as Open's ctx; Next's
	// ctx interrupts it.
	qctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	conn, err := pgx.ConnectConfig(qctx, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("source postgres: connect to %s: %w", pgurl.Target(&cfg.Config), err)
	}
	d := &pgDecoder{conn: conn, cancel: cancel}
	d.b.tr = rulesOf(spec)
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.tx, err = conn.BeginTx(qctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}); err != nil {
		return nil, fmt.Errorf("source postgres: begin a read-only transaction: %w", err)
	}
	query := spec.Query
	if spec.Table != "" {
		table := pgx.Identifier(strings.Split(spec.Table, ".")).Sanitize()
		plan, err := d.probe(qctx, "SELECT * FROM "+table+" LIMIT 0", spec)
		if err != nil {
			return nil, err
		}
		order := "payload->>'msgid'"
		if plan.payload >= 0 {
			col := pgx.Identifier{plan.names[plan.payload]}.Sanitize()
			order = fmt.Sprintf("COALESCE(%s->'payload'->>'msgid', %s->>'msgid')", col, col)
		} else {
			for i, c := range plan.canon {
				if c == "msgid" {
					order = pgx.Identifier{plan.names[i]}.Sanitize()
				}
			}
		}
		query = "SELECT * FROM " + table + " ORDER BY " + order
	}
	d.rows, err = d.tx.Query(qctx, query)
	if err != nil {
		return nil, queryError(err)
	}
	// Fetch the first row now: most query errors (a write refused, a
	// failing expression) come with it, and belong to Open.
	if d.primed = d.rows.Next(); !d.primed {
		if err := d.rows.Err(); err != nil {
			return nil, queryError(err)
		}
	}
	d.plan, err = planColumns(fieldNames(d.rows.FieldDescriptions()), spec, true)
	if err != nil {
		return nil, fmt.Errorf("source postgres: %w", err)
	}
	return d, nil
}

// queryError says what a refused source query means.
func queryError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "25006": // read_only_sql_transaction
			return fmt.Errorf("source postgres: the query writes, and source queries run read-only: give a SELECT: %w", err)
		case "42601": // syntax_error
			if strings.Contains(pgErr.Message, "multiple commands") {
				return fmt.Errorf("source postgres: give one SELECT statement: %w", err)
			}
		}
	}
	return fmt.Errorf("source postgres: query: %w", err)
}

func (d *pgDecoder) probe(ctx context.Context, sql string, spec Spec) (columnPlan, error) {
	rows, err := d.tx.Query(ctx, sql)
	if err != nil {
		return columnPlan{}, fmt.Errorf("source postgres: %w", err)
	}
	names := fieldNames(rows.FieldDescriptions())
	rows.Close()
	if err := rows.Err(); err != nil {
		return columnPlan{}, fmt.Errorf("source postgres: %w", err)
	}
	plan, err := planColumns(names, spec, true)
	if err != nil {
		return plan, fmt.Errorf("source postgres: %w", err)
	}
	return plan, nil
}

func fieldNames(fds []pgconn.FieldDescription) []string {
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names
}

func (d *pgDecoder) Close() error {
	if d.rows != nil {
		d.rows.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d.tx != nil {
		_ = d.tx.Rollback(ctx) // read-only: nothing to keep; closing the connection ends it anyway
	}
	err := d.conn.Close(ctx)
	d.cancel()
	return err
}

func (d *pgDecoder) unknownFields() []string { return d.js.unknown }

func (d *pgDecoder) Next(ctx context.Context, p *wire.Payload) (Position, error) {
	d.js.unknown = nil
	stop := context.AfterFunc(ctx, d.cancel)
	defer stop()
	if d.primed {
		d.primed = false
	} else if !d.rows.Next() {
		if err := d.rows.Err(); err != nil {
			return Position{Line: d.row + 1}, err
		}
		return Position{Line: d.row + 1}, io.EOF
	}
	d.row++
	pos := Position{Line: d.row}
	if d.plan.payload >= 0 {
		raw := d.rows.RawValues()[d.plan.payload]
		fd := d.rows.FieldDescriptions()[d.plan.payload]
		if fd.DataTypeOID == pgtype.JSONBOID && fd.Format == pgtype.BinaryFormatCode && len(raw) > 0 {
			raw = raw[1:] // the jsonb binary format's version byte
		}
		pos.Raw = raw
		if raw == nil {
			pos.Raw = []byte("null")
			*p = wire.Payload{}
			return pos, &LineError{Field: "payload", Err: ErrRequired}
		}
		return pos, d.js.decode(raw, p)
	}
	vals, err := d.rows.Values()
	if err != nil {
		return pos, &LineError{Err: fmt.Errorf("decode row: %w", err)}
	}
	d.raw = rowJSON(d.raw[:0], d.plan.names, vals)
	pos.Raw = d.raw
	d.b.reset()
	fds := d.rows.FieldDescriptions()
	for i, v := range vals {
		canon := d.plan.canon[i]
		if canon == "" || v == nil {
			continue
		}
		if t, ok := v.(time.Time); ok && fds[i].DataTypeOID == pgtype.TimestampOID {
			if v, err = d.b.tr.zoneless(jsonPath(canon), t); err != nil {
				return pos, err
			}
		}
		if err := d.setValue(canon, v); err != nil {
			return pos, err
		}
	}
	if err := d.b.finish(); err != nil {
		return pos, err
	}
	*p = d.b.p
	return pos, nil
}

// setValue stores one column value; timestamptz keeps its milliseconds.
func (d *pgDecoder) setValue(canon string, v any) error {
	var s string
	switch v := v.(type) {
	case time.Time:
		return d.b.setTime(canon, v)
	case string:
		s = v
	case int64:
		s = strconv.FormatInt(v, 10)
	case int32:
		s = strconv.FormatInt(int64(v), 10)
	case int16:
		s = strconv.FormatInt(int64(v), 10)
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(v), 'f', -1, 32)
	case bool:
		s = strconv.FormatBool(v)
	case []byte:
		s = string(v)
	case [16]byte: // uuid
		s = fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
	case pgtype.Numeric:
		b, err := v.MarshalJSON()
		if err != nil {
			return fieldErr(jsonPath(canon), "numeric: %v", err)
		}
		s = string(b)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fieldErr(jsonPath(canon), "unsupported column type %T", v)
		}
		s = string(bytes.Trim(b, `"`))
	}
	if s == "" || isBlank(s) { // char(n) pads with spaces
		return nil
	}
	return d.b.set(canon, s)
}

// rowJSON writes a row as a JSON object, for rejects.
func rowJSON(dst []byte, names []string, vals []any) []byte {
	dst = append(dst, '{')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		name, _ := json.Marshal(names[i])
		dst = append(dst, name...)
		dst = append(dst, ':')
		switch v := v.(type) {
		case time.Time:
			dst = append(dst, '"')
			dst = v.UTC().AppendFormat(dst, time.RFC3339Nano)
			dst = append(dst, '"')
		case [16]byte:
			dst = fmt.Appendf(dst, `"%x-%x-%x-%x-%x"`, v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = []byte("null")
			}
			dst = append(dst, b...)
		}
	}
	return append(dst, '}')
}
