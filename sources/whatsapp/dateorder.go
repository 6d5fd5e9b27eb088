package whatsapp

import "fmt"

// order says where the year, month and day are in a written date (indexes
// into header.date).
type order struct{ y, m, d int }

var (
	orderDMY = order{y: 2, m: 1, d: 0}
	orderMDY = order{y: 2, m: 0, d: 1}
	orderYMD = order{y: 0, m: 1, d: 2}
)

func (o order) String() string {
	switch o {
	case orderDMY:
		return "dmy"
	case orderMDY:
		return "mdy"
	case orderYMD:
		return "ymd"
	}
	return fmt.Sprintf("y%d m%d d%d", o.y, o.m, o.d)
}

// orderOf parses a --date-order value.
func orderOf(s string) (order, bool) {
	switch s {
	case "dmy":
		return orderDMY, true
	case "mdy":
		return orderMDY, true
	case "ymd":
		return orderYMD, true
	}
	return order{}, false
}

// detector finds the order of day and month from all the dates of a file,
// as Pustur/whatsapp-chat-parser's daysBeforeMonths does (src/date.ts): the
// year is the 4-digit part (else the last); of the two other parts (p, q
// in written order), (1) one above 12 is the day; (2) within a year, the
// part that goes down between consecutive dates is the day, since months
// only grow; (3) the part that changes more in total is the day. Where all
// three fail, the file cannot tell. It also notes a year going down, which
// a chronological file never does under the right order.
type detector struct {
	yearPos, p, q int
	fixedYear     bool // the year is the part with 4 digits

	above      [3]int64 // first line where the part at each place is above 12
	aboveDate  [3]string
	down       [2]int64 // first line where p / q goes down within a year
	lastInYear map[int][2]int
	change     [2]int
	prev       [3]int
	started    bool
	yearDown   int64 // first line where the year goes down
	yearDownAt string
	distinct   int
}

func newDetector(yearPos int8) *detector {
	d := &detector{yearPos: 2, p: 0, q: 1, fixedYear: yearPos >= 0, lastInYear: map[int][2]int{}}
	switch yearPos {
	case 0:
		d.yearPos, d.p, d.q = 0, 1, 2
	case 1:
		d.yearPos, d.p, d.q = 1, 0, 2
	}
	return d
}

// maxYears bounds the per-year memory of a file with nonsense dates.
const maxYears = 200

// add takes the next header's date, in file order.
func (d *detector) add(date [3]int, line int64, raw []byte) {
	for k, v := range date {
		if v > 12 && d.above[k] == 0 {
			d.above[k], d.aboveDate[k] = line, string(raw)
		}
	}
	if d.started && date == d.prev {
		return
	}
	a, b, y := date[d.p], date[d.q], date[d.yearPos]
	if d.started {
		d.distinct++
		d.change[0] += abs(a - d.prev[d.p])
		d.change[1] += abs(b - d.prev[d.q])
		if y < d.prev[d.yearPos] && d.yearDown == 0 {
			d.yearDown, d.yearDownAt = line, string(raw)
		}
	}
	if last, ok := d.lastInYear[y]; ok {
		if a < last[0] && d.down[0] == 0 {
			d.down[0] = line
		}
		if b < last[1] && d.down[1] == 0 {
			d.down[1] = line
		}
	}
	if _, ok := d.lastInYear[y]; ok || len(d.lastInYear) < maxYears {
		d.lastInYear[y] = [2]int{a, b}
	}
	d.prev, d.started = date, true
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// result is the order the dates show, or an error saying why they do not
// tell (the caller adds the file and the flag). A year written first
// (4 digits) is always year-month-day.
func (d *detector) result() (order, error) {
	if d.yearPos == 0 {
		return orderYMD, nil
	}
	dayFirst := func(first bool) order {
		if first {
			return order{y: d.yearPos, d: d.p, m: d.q}
		}
		return order{y: d.yearPos, d: d.q, m: d.p}
	}
	var o order
	ap, aq := d.above[d.p], d.above[d.q]
	switch {
	case ap > 0 && aq > 0:
		return o, fmt.Errorf("its dates have a number above 12 in both the day's and the month's place (%q at line %d, %q at line %d)",
			d.aboveDate[d.p], ap, d.aboveDate[d.q], aq)
	case ap > 0:
		o = dayFirst(true)
	case aq > 0:
		o = dayFirst(false)
	case d.down[0] > 0 && d.down[1] == 0:
		o = dayFirst(true)
	case d.down[1] > 0 && d.down[0] == 0:
		o = dayFirst(false)
	case d.change[0] > d.change[1]:
		o = dayFirst(true)
	case d.change[1] > d.change[0]:
		o = dayFirst(false)
	default:
		n := d.distinct
		if d.started {
			n++
		}
		return o, fmt.Errorf("its dates fit both day/month and month/day (%d distinct dates, none above 12)", n)
	}
	if d.yearDown > 0 {
		return o, fmt.Errorf("its dates go back a year at line %d (%q) when read as %s: are they year first?", d.yearDown, d.yearDownAt, o)
	}
	return o, nil
}

// check reports why the file's dates cannot be read in order o (the
// --date-order given): a 4-digit year elsewhere, or a month above 12.
func (d *detector) check(o order) error {
	if d.fixedYear && o.y != d.yearPos {
		return fmt.Errorf("its dates have the 4-digit year in place %d, which %s does not", d.yearPos+1, o)
	}
	if d.above[o.m] > 0 {
		return fmt.Errorf("%q at line %d has a month above 12 when read as %s", d.aboveDate[o.m], d.above[o.m], o)
	}
	return nil
}

// fullYear makes a 2-digit year 20yy, as WhatsApp means it.
func fullYear(y int) int {
	if y < 100 {
		return 2000 + y
	}
	return y
}
