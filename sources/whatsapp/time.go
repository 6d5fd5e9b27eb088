package whatsapp

import (
	"fmt"
	"time"
)

// timeOf is the header's time in loc, and its wall clock written the same
// way whatever the file's locale ("2023-02-04 22:35:00"), which the message
// ids hash: a later export by a newer app (U+202F before PM since 2023) or
// in another locale of the same phone gives the same ids.
func (r *reading) timeOf(h header, loc *time.Location, raw []byte) (time.Time, string, error) {
	o := r.pl.order
	y, m, d := fullYear(h.date[o.y]), h.date[o.m], h.date[o.d]
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return time.Time{}, "", fmt.Errorf("%q is not a date when read as %s (year %d, month %d, day %d)", h.rawTime(raw), o, y, m, d)
	}
	t := localTime(loc, y, m, d, h.hour, h.min, h.sec, r.prev)
	return t, wallClock(y, m, d, h.hour, h.min, h.sec), nil
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// localTime is a wall clock in loc. When the clock went through that hour
// twice (the night summer time ends), it is the first of the two instants
// that is not before prev, so the messages of that night keep the file's
// order; a wall clock that never was (the hour skipped in spring) is read
// as time.Date does.
func localTime(loc *time.Location, y, m, d, hh, mi, ss int, prev time.Time) time.Time {
	t := time.Date(y, time.Month(m), d, hh, mi, ss, 0, loc)
	_, before := t.Add(-3 * time.Hour).Zone()
	_, after := t.Add(3 * time.Hour).Zone()
	if before == after {
		return t
	}
	wall := time.Date(y, time.Month(m), d, hh, mi, ss, 0, time.UTC)
	var fits []time.Time
	for _, off := range []int{before, after} {
		c := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if c.Hour() == hh && c.Minute() == mi && c.Day() == d {
			fits = append(fits, c)
		}
	}
	if len(fits) < 2 {
		return t
	}
	first, second := fits[0], fits[1]
	if second.Before(first) {
		first, second = second, first
	}
	if first.Equal(second) || !first.Before(prev) {
		return first
	}
	return second
}

// wallClock writes "2006-01-02 15:04:05" (years of four digits).
func wallClock(y, m, d, hh, mi, ss int) string {
	b := []byte("0000-00-00 00:00:00")
	for i, v := range [...]int{y % 10000, m, d, hh, mi, ss} {
		at, n := 2+i*3, 2
		if i == 0 {
			at, n = 0, 4
		}
		for k := at + n - 1; k >= at; k-- {
			b[k] = byte('0' + v%10)
			v /= 10
		}
	}
	return string(b)
}
