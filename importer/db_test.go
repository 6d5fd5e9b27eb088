package importer

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://kommo:s3cret@db:5432/kommo_import", "postgres://kommo:xxxxx@db:5432/kommo_import"},
		{"postgres://kommo@db/kommo_import", "postgres://kommo@db/kommo_import"},
		{"postgres://db/kommo?password=s3cret&sslmode=disable", "postgres://db/kommo?password=xxxxx&sslmode=disable"},
		{"host=db user=kommo password=s3cret dbname=k", "host=db user=kommo password=xxxxx dbname=k"},
		{"password=s3cret host=db", "password=xxxxx host=db"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, RedactURL(tt.in))
	}
}

func TestConnectErrorHidesThePassword(t *testing.T) {
	// Nothing listens on port 1: the error names the server, never the password.
	_, err := Connect(context.Background(), "postgres://kommo:s3cret-pw@127.0.0.1:1/kommo?connect_timeout=2", 1)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret-pw")
	require.Contains(t, err.Error(), "xxxxx")
}
