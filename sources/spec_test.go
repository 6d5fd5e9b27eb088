package sources

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "csv:export.txt", want: Spec{Kind: KindCSV, Path: "export.txt"}},
		{in: "jsonl:-", want: Spec{Kind: KindJSONL, Path: "-"}},
		{in: "ndjson:a:b.log", want: Spec{Kind: KindJSONL, Path: "a:b.log"}},
		{in: "postgres", want: Spec{Kind: KindPostgres}},
		{in: "export.csv", want: Spec{Kind: KindCSV, Path: "export.csv"}},
		{in: "dir/Export.CSV.gz", want: Spec{Kind: KindCSV, Path: "dir/Export.CSV.gz"}},
		{in: "x.jsonl", want: Spec{Kind: KindJSONL, Path: "x.jsonl"}},
		{in: "x.ndjson.gz", want: Spec{Kind: KindJSONL, Path: "x.ndjson.gz"}},
		{in: "", wantErr: "empty source"},
		{in: "-", wantErr: "csv:- or jsonl:-"},
		{in: "export.xlsx", wantErr: "cannot tell the format"},
		{in: "xml:export.xml", wantErr: `unknown kind "xml"`},
		{in: "csv:", wantErr: "no path"},
		{in: "postgres://u@h/db", wantErr: "--source-dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSpec(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		want     Spec
		wantErr  string // from Parse
		checkErr string // from Check
	}{
		{name: "csv with map and ignore",
			args: []string{"--map", "msgid=ID", "--source", "export.csv", "--map", "message_text = body", "--ignore-columns", "a, b,", "--ignore-columns", "c"},
			want: Spec{Kind: KindCSV, Path: "export.csv", ColumnMap: map[string]string{"msgid": "ID", "message_text": "body"}, IgnoreColumns: []string{"a", "b", "c"}}},
		{name: "postgres", args: []string{"--source-dsn", "postgres://h/db", "--source", "postgres", "--source-table", "public.chat"},
			want: Spec{Kind: KindPostgres, DSN: "postgres://h/db", Table: "public.chat"}},
		{name: "bad map", args: []string{"--map", "msgid"}, wantErr: "want canonical=theirs"},
		{name: "unknown canonical", args: []string{"--map", "body=text"}, wantErr: `"body" is not a canonical column`},
		{name: "bad source", args: []string{"--source", "x.xlsx"}, wantErr: "cannot tell the format"},
		{name: "postgres without dsn", args: []string{"--source", "postgres", "--source-table", "t"}, want: Spec{Kind: KindPostgres, Table: "t"}, checkErr: "--source-dsn is required"},
		{name: "postgres with both", args: []string{"--source", "postgres", "--source-dsn", "x", "--source-table", "t", "--source-query", "q"},
			want: Spec{Kind: KindPostgres, DSN: "x", Table: "t", Query: "q"}, checkErr: "exactly one"},
		{name: "dsn for a file", args: []string{"--source", "a.csv", "--source-dsn", "x"}, want: Spec{Kind: KindCSV, Path: "a.csv", DSN: "x"}, checkErr: "not csv"},
		{name: "map for jsonl", args: []string{"--source", "a.jsonl", "--map", "msgid=id"},
			want: Spec{Kind: KindJSONL, Path: "a.jsonl", ColumnMap: map[string]string{"msgid": "id"}}, checkErr: "not JSONL"},
		{name: "no source", args: nil, want: Spec{}, checkErr: "no source given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var spec Spec
			RegisterFlags(fs, &spec)
			err := fs.Parse(tt.args)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, spec)
			if tt.checkErr != "" {
				require.ErrorContains(t, spec.Check(), tt.checkErr)
			} else {
				require.NoError(t, spec.Check())
			}
		})
	}
}
