package whatsapp

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// detect runs dates (as written, in file order) through a detector.
func detect(yearPos int8, dates ...[3]int) (order, error) {
	d := newDetector(yearPos)
	for i, date := range dates {
		d.add(date, int64(i+1), []byte(fmt.Sprint(date)))
	}
	return d.result()
}

// The vectors of Pustur/whatsapp-chat-parser's tests/date.test.ts, each
// rule alone, with the 4-digit year last.
func TestDateOrderPusturVectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dates [][3]int
		want  order // zero: the dates cannot tell
	}{
		{"above 12: days first", [][3]int{{3, 6, 2017}, {13, 11, 2017}, {26, 12, 2017}}, orderDMY},
		{"above 12: months first", [][3]int{{4, 2, 2017}, {6, 11, 2017}, {12, 13, 2017}}, orderMDY},
		{"decreasing: days first", [][3]int{{8, 3, 2017}, {10, 5, 2017}, {6, 9, 2017}}, orderDMY},
		{"decreasing: months first", [][3]int{{6, 3, 2017}, {8, 5, 2017}, {9, 4, 2017}}, orderMDY},
		{"decreasing across years 1", [][3]int{{8, 3, 2017}, {7, 5, 2017}, {6, 9, 2018}}, orderDMY},
		{"decreasing across years 2", [][3]int{{8, 3, 2017}, {10, 2, 2017}, {6, 9, 2018}}, orderMDY},
		{"frequency: days first", [][3]int{{3, 4, 2017}, {7, 5, 2017}, {11, 6, 2017}}, orderDMY},
		{"frequency: months first", [][3]int{{1, 1, 2017}, {1, 3, 2017}, {2, 7, 2017}}, orderMDY},
		{"nothing tells", [][3]int{{1, 1, 2017}, {3, 3, 2017}, {6, 6, 2017}}, order{}},
		{"one date", [][3]int{{5, 5, 2017}, {5, 5, 2017}}, order{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := detect(2, tc.dates...)
			if tc.want == (order{}) {
				require.ErrorContains(t, err, "fit both day/month and month/day")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDateOrderYearFirstAndMiddle(t *testing.T) {
	got, err := detect(0, [3]int{2018, 6, 13})
	require.NoError(t, err)
	require.Equal(t, orderYMD, got, "a 4-digit year first is year-month-day")

	got, err = detect(1, [3]int{6, 2018, 13}) // Pustur's "[06/2018/13, ...]"
	require.NoError(t, err)
	require.Equal(t, order{y: 1, m: 0, d: 2}, got)
}

// A two-digit year-first file ("23/06/13") looks day-first by rule 1; its
// "years" then jump back and forth, which a chronological file never does:
// the reader asks instead of guessing.
func TestDateOrderTwoDigitYearFirstIsRefused(t *testing.T) {
	_, err := detect(-1, [3]int{23, 6, 13}, [3]int{23, 6, 14}, [3]int{23, 7, 2})
	require.ErrorContains(t, err, "go back a year")
	require.ErrorContains(t, err, "year first")
}

func TestDateOrderFlagChecked(t *testing.T) {
	d := newDetector(-1)
	d.add([3]int{20, 1, 22}, 3, []byte("20.01.22, 13:30"))
	require.NoError(t, d.check(orderDMY))
	require.ErrorContains(t, d.check(orderMDY), `"20.01.22, 13:30" at line 3 has a month above 12`)
	require.NoError(t, d.check(orderYMD), "two-digit years may be first")

	y4 := newDetector(2)
	y4.add([3]int{1, 2, 2023}, 1, []byte("1/2/2023"))
	require.ErrorContains(t, y4.check(orderYMD), "4-digit year in place 3")
}
