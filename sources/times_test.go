package sources

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// TestCSVTimestamps reads one CSV row a case: the timestamp cell as Excel,
// a database or a person wrote it, with --tz, --time-format and
// --date-order as given. A time without a zone needs --tz (the error names
// the flag); a slash date that reads both ways needs the order; every error
// names the line and the field.
func TestCSVTimestamps(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	at := func(s string) int64 { // RFC 3339 to unix milliseconds
		tt, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return tt.UnixMilli()
	}
	tests := []struct {
		name   string
		cell   string
		tz     *time.Location
		layout string
		order  string
		want   int64  // unix ms
		errHas string // else
	}{
		{name: "unix seconds", cell: "1709284502", want: at("2024-03-01T09:15:02Z")},
		{name: "RFC 3339", cell: "2024-03-01T09:15:02.5+01:00", want: at("2024-03-01T08:15:02.5Z")},
		{name: "ISO with a space and an offset (psql)", cell: "2024-03-01 09:15:02+03", want: at("2024-03-01T06:15:02Z")},
		{name: "space, no zone, --tz", cell: "2024-03-01 09:15:02", tz: berlin, want: at("2024-03-01T08:15:02Z")},
		{name: "T, no zone, --tz", cell: "2024-03-01T09:15:03", tz: berlin, want: at("2024-03-01T08:15:03Z")},
		{name: "no seconds", cell: "2024-03-01 09:15", tz: time.UTC, want: at("2024-03-01T09:15:00Z")},
		{name: "fractions", cell: "2024-03-01 09:15:02.250", tz: time.UTC, want: at("2024-03-01T09:15:02.25Z")},
		{name: "summer time", cell: "2024-07-01 09:15:02", tz: berlin, want: at("2024-07-01T07:15:02Z")},
		{name: "dotted, day first", cell: "01.03.2024 09:15:02", tz: berlin, want: at("2024-03-01T08:15:02Z")},
		{name: "dotted without seconds", cell: "1.3.2024 9:15", tz: time.UTC, want: at("2024-03-01T09:15:00Z")},
		{name: "slash, only month first reads", cell: "03/25/2024 09:15:02", tz: time.UTC, want: at("2024-03-25T09:15:02Z")},
		{name: "slash, only day first reads", cell: "25/03/2024 09:15", tz: time.UTC, want: at("2024-03-25T09:15:00Z")},
		{name: "slash, same either way", cell: "05/05/2024 09:15", tz: time.UTC, want: at("2024-05-05T09:15:00Z")},
		{name: "slash, Excel en-US 12-hour", cell: "3/1/2024 9:15 PM", tz: time.UTC, order: "mdy", want: at("2024-03-01T21:15:00Z")},
		{name: "slash, --date-order dmy", cell: "03/04/2024 09:15:02", tz: time.UTC, order: "dmy", want: at("2024-04-03T09:15:02Z")},
		{name: "slash, --date-order mdy", cell: "03/04/2024 09:15:02", tz: time.UTC, order: "mdy", want: at("2024-03-04T09:15:02Z")},
		{name: "Excel serial date", cell: "45352.385", tz: time.UTC, want: at("2024-03-01T09:14:24Z")},
		{name: "Excel serial, decimal comma", cell: "45352,5", tz: berlin, want: at("2024-03-01T11:00:00Z")},
		{name: "--time-format", cell: "2024/03/01 09h15", tz: berlin, layout: "2006/01/02 15h04", want: at("2024-03-01T08:15:00Z")},
		{name: "--time-format with a zone needs no --tz", cell: "01 Mar 24 09:15 +0200", layout: time.RFC822Z, want: at("2024-03-01T07:15:00Z")},

		{name: "no zone, no --tz", cell: "2024-03-01 09:15:02", errHas: `"2024-03-01 09:15:02" has no time zone: give --tz ZONE`},
		{name: "T, no zone, no --tz", cell: "2024-03-01T09:15:03", errHas: "give --tz ZONE"},
		{name: "dotted, no --tz", cell: "01.03.2024 09:15", errHas: "give --tz ZONE"},
		{name: "serial, no --tz", cell: "45352.385", errHas: "(an Excel serial date) has no time zone: give --tz"},
		{name: "ambiguous slash date", cell: "03/04/2024 09:15:02", tz: time.UTC,
			errHas: `"03/04/2024 09:15:02" is ambiguous: 3 April 2024 or 4 March 2024? give --date-order dmy (day first) or mdy (month first)`},
		{name: "--time-format mismatch", cell: "2024-03-01 09:15", tz: time.UTC, layout: "02.01.2006 15:04", errHas: `does not match --time-format "02.01.2006 15:04"`},
		{name: "--time-format without zone, no --tz", cell: "01.03.2024 09:15", layout: "02.01.2006 15:04", errHas: "give --tz ZONE"},
		{name: "nonsense", cell: "yesterday", tz: time.UTC, errHas: "give its Go layout with --time-format"},
		{name: "a date alone", cell: "2024-03-01", tz: time.UTC, errHas: "is not a time this importer reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cell := tt.cell
			if strings.ContainsAny(cell, ",;") {
				cell = `"` + cell + `"`
			}
			path := writeFile(t, "times.csv", "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text\n"+
				"c1,m1,"+cell+",u1,Anna,text,hi\n")
			res := readAll(t, Spec{Kind: KindCSV, Path: path, Location: tt.tz, TimeFormat: tt.layout, DateOrder: tt.order})
			if tt.errHas != "" {
				require.Len(t, res.errs, 1)
				e := res.errs[0]
				require.Equal(t, int64(2), e.Line)
				require.Equal(t, "timestamp", e.Field)
				require.Contains(t, e.Error(), tt.errHas)
				return
			}
			require.Empty(t, res.errs)
			require.Len(t, res.records, 1)
			require.Equal(t, tt.want, res.records[0].Payload.MsecTimestamp, "%s", time.UnixMilli(res.records[0].Payload.MsecTimestamp).UTC())
			require.Equal(t, tt.want/1000, res.records[0].Payload.Timestamp)
		})
	}
}

// TestPostgresTimestampWithoutTimeZone: a timestamp column carries no zone:
// its wall clock is in --tz, and without --tz the row is rejected naming
// the flag, as a CSV time without a zone is. timestamptz needs no --tz.
func TestPostgresTimestampWithoutTimeZone(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	execSQL(t, dsn, `CREATE TABLE t (conversation_id text, msgid text, timestamp timestamp, sender_id text, sender_name text, message_type text, message_text text);
		INSERT INTO t VALUES ('c1', 'a', '2024-03-01 09:15:02.123', 'u1', 'Anna', 'text', 'hi')`)
	spec := Spec{Kind: KindPostgres, DSN: dsn, Query: "SELECT * FROM t", Now: nowFunc}

	res := readAll(t, spec)
	require.Len(t, res.errs, 1)
	require.Equal(t, "timestamp", res.errs[0].Field)
	require.True(t, errors.Is(res.errs[0], ErrNoZone), "%v", res.errs[0])
	require.Contains(t, res.errs[0].Error(), "2024-03-01 09:15:02.123 is a timestamp without time zone and has no time zone: give --tz ZONE")

	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	spec.Location = berlin
	res = readAll(t, spec)
	require.Empty(t, res.errs)
	require.Equal(t, time.Date(2024, 3, 1, 8, 15, 2, 123e6, time.UTC).UnixMilli(), res.records[0].Payload.MsecTimestamp,
		fmt.Sprint(time.UnixMilli(res.records[0].Payload.MsecTimestamp).UTC()))
}
