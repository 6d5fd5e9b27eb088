package pgtest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var validName = regexp.MustCompile(`^kt_[a-z0-9_]*_[0-9a-f]{12}$`)

func TestDBName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		testName string
		wantMid  string
	}{
		{name: "plain", testName: "TestImport", wantMid: "testimport"},
		{name: "subtest", testName: "TestImport/resume after crash", wantMid: "testimport_resume_after_crash"},
		{name: "punctuation runs collapse", testName: "A--/  B", wantMid: "a_b"},
		{name: "only punctuation", testName: "'; --", wantMid: ""},
		{name: "non-ASCII dropped", testName: "Тест✓x", wantMid: "x"},
		{name: "truncated", testName: strings.Repeat("a", 100), wantMid: strings.Repeat("a", 63-len(Prefix)-13)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := dbName(tt.testName)
			require.Regexp(t, validName, got)
			require.Equal(t, Prefix+tt.wantMid+"_", got[:len(got)-12])
		})
	}
	require.NotEqual(t, dbName("TestX"), dbName("TestX"), "same test name must give distinct databases")
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, server, want string
	}{
		{name: "url", server: "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", want: "postgres://u:p@127.0.0.1:5432/kt_x?sslmode=disable"},
		{name: "url without db", server: "postgresql://127.0.0.1:5432", want: "postgresql://127.0.0.1:5432/kt_x"},
		{name: "keyword/value", server: "host=127.0.0.1 dbname=postgres ", want: "host=127.0.0.1 dbname=postgres dbname=kt_x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := withDatabase(tt.server, "kt_x")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRedactHidesPassword(t *testing.T) {
	t.Parallel()
	require.NotContains(t, redact("postgres://u:hunter2@h/db"), "hunter2")
	require.NotContains(t, redact("host=h password=hunter2"), "hunter2")
}

// FuzzDBName: whatever a test is called, the database name is a valid, unquoted-safe identifier
// within PostgreSQL's 63-byte limit (a longer one would be silently truncated and could collide).
func FuzzDBName(f *testing.F) {
	f.Add("TestImport/resume_after_crash")
	f.Add(strings.Repeat("Ж", 40))
	f.Add("")
	f.Fuzz(func(t *testing.T, testName string) {
		got := dbName(testName)
		if !validName.MatchString(got) || len(got) > 63 {
			t.Fatalf("dbName(%q) = %q: not a valid database name", testName, got)
		}
	})
}

// fatalRecorder stands in for a test so the failure message itself can be checked.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
}

// Without a server the test must fail with directions, never skip or hang.
func TestAdminURLWithoutServerFailsWithDirections(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	rec := &fatalRecorder{TB: t}
	AdminURL(rec)
	require.Contains(t, rec.msg, "make test")
	require.Contains(t, rec.msg, "TEST_DATABASE_URL")
}

func TestAdminURLPrefersTestDatabaseURL(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "postgres://test")
	t.Setenv("DATABASE_URL", "postgres://prod")
	require.Equal(t, "postgres://test", AdminURL(t))
	t.Setenv("TEST_DATABASE_URL", "")
	require.Equal(t, "postgres://prod", AdminURL(t))
}
