package cli

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    sources.Spec
		wantErr string
	}{
		{in: "csv:export.txt", want: sources.Spec{Kind: sources.KindCSV, Path: "export.txt"}},
		{in: "jsonl:-", want: sources.Spec{Kind: sources.KindJSONL, Path: "-"}},
		{in: "ndjson:a:b.log", want: sources.Spec{Kind: sources.KindJSONL, Path: "a:b.log"}},
		{in: "postgres", want: sources.Spec{Kind: sources.KindPostgres}},
		{in: "whatsapp:WhatsApp Chat - Anna.zip", want: sources.Spec{Kind: sources.KindWhatsApp, Path: "WhatsApp Chat - Anna.zip"}},
		{in: "export.csv", want: sources.Spec{Kind: sources.KindCSV, Path: "export.csv"}},
		{in: "dir/Export.CSV.gz", want: sources.Spec{Kind: sources.KindCSV, Path: "dir/Export.CSV.gz"}},
		{in: "x.jsonl", want: sources.Spec{Kind: sources.KindJSONL, Path: "x.jsonl"}},
		{in: "x.ndjson.gz", want: sources.Spec{Kind: sources.KindJSONL, Path: "x.ndjson.gz"}},
		{in: "", wantErr: "empty source"},
		{in: "-", wantErr: "csv:- or jsonl:-"},
		{in: "export.xlsx", wantErr: "cannot tell the format"},
		{in: "xml:export.xml", wantErr: `unknown kind "xml"`},
		{in: "csv:", wantErr: "no path"},
		{in: "postgres://u@h/db", wantErr: "--source-dsn"},
		{in: "telegram:ChatExport_2024-03-14", want: sources.Spec{Kind: sources.KindTelegram, Path: "ChatExport_2024-03-14"}},
		{in: "Telegram:/x/result.json", want: sources.Spec{Kind: sources.KindTelegram, Path: "/x/result.json"}},
		{in: "whatsapp:WhatsApp Chat - Anna.zip", want: sources.Spec{Kind: sources.KindWhatsApp, Path: "WhatsApp Chat - Anna.zip"}},
		{in: "messenger:facebook-anna", want: sources.Spec{Kind: sources.KindMessenger, Path: "facebook-anna"}},
		{in: "instagram:insta.zip", want: sources.Spec{Kind: sources.KindInstagram, Path: "insta.zip"}},
		{in: "exports/DataExport_2024/result.json", want: sources.Spec{Kind: sources.KindTelegram, Path: "exports/DataExport_2024/result.json"}},
		{in: "telegram:-", wantErr: "not from stdin"},
		{in: "telegram:", wantErr: "no path (the export's file or folder)"},
		{in: "viber:x", wantErr: "telegram:PATH, whatsapp:PATH, messenger:PATH, instagram:PATH"},
		{in: "export.json", wantErr: "KIND:PATH for an export"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseSpec(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRegisterSourceFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		want     sources.Spec
		wantErr  string // from Parse
		checkErr string // from Check
	}{
		{name: "csv with map and ignore",
			args: []string{"--map", "msgid=ID", "--source", "export.csv", "--map", "message_text = body", "--ignore-columns", "a, b,", "--ignore-columns", "c"},
			want: sources.Spec{Kind: sources.KindCSV, Path: "export.csv", ColumnMap: map[string]string{"msgid": "ID", "message_text": "body"}, IgnoreColumns: []string{"a", "b", "c"}}},
		{name: "postgres", args: []string{"--source-dsn", "postgres://h/db", "--source", "postgres", "--source-table", "public.chat"},
			want: sources.Spec{Kind: sources.KindPostgres, DSN: "postgres://h/db", Table: "public.chat"}},
		{name: "bad map", args: []string{"--map", "msgid"}, wantErr: "want canonical=theirs"},
		{name: "unknown canonical", args: []string{"--map", "body=text"}, wantErr: `"body" is not a canonical column`},
		{name: "bad source", args: []string{"--source", "x.xlsx"}, wantErr: "cannot tell the format"},
		{name: "postgres without dsn", args: []string{"--source", "postgres", "--source-table", "t"}, want: sources.Spec{Kind: sources.KindPostgres, Table: "t"}, checkErr: "--source-dsn is required"},
		{name: "postgres with both", args: []string{"--source", "postgres", "--source-dsn", "x", "--source-table", "t", "--source-query", "q"},
			want: sources.Spec{Kind: sources.KindPostgres, DSN: "x", Table: "t", Query: "q"}, checkErr: "exactly one"},
		{name: "dsn for a file", args: []string{"--source", "a.csv", "--source-dsn", "x"}, want: sources.Spec{Kind: sources.KindCSV, Path: "a.csv", DSN: "x"}, checkErr: "not csv"},
		{name: "map for jsonl", args: []string{"--source", "a.jsonl", "--map", "msgid=id"},
			want: sources.Spec{Kind: sources.KindJSONL, Path: "a.jsonl", ColumnMap: map[string]string{"msgid": "id"}}, checkErr: "not JSONL"},
		{name: "no source", args: nil, want: sources.Spec{}, checkErr: "no source given"},
		{name: "strict and media as text", args: []string{"--source", "a.jsonl", "--strict", "--media-missing", "text"},
			want: sources.Spec{Kind: sources.KindJSONL, Path: "a.jsonl", Strict: true, MediaMissing: sources.MediaMissingText}},
		{name: "media rejected", args: []string{"--source", "a.csv", "--media-missing", "reject"},
			want: sources.Spec{Kind: sources.KindCSV, Path: "a.csv", MediaMissing: sources.MediaMissingReject}},
		{name: "bad media-missing", args: []string{"--media-missing", "drop"}, wantErr: "want reject or text"},
		{name: "media max size", args: []string{"--source", "a.jsonl", "--media-max-size", "10MB"},
			want: sources.Spec{Kind: sources.KindJSONL, Path: "a.jsonl", MediaMaxSize: 10 << 20}},
		{name: "bad media max size", args: []string{"--media-max-size", "huge"}, wantErr: "want bytes, or a number with KB, MB or GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var spec sources.Spec
			registerSourceFlags(fs, &spec)
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
