package sources

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// timeRules are how a source's written times are read (Spec.Location,
// TimeFormat, DateOrder): CSV timestamp cells, and postgres columns of type
// timestamp without time zone.
type timeRules struct {
	loc    *time.Location // --tz; nil: a time without a zone is an error
	layout string         // --time-format; "" detects the common layouts
	order  string         // --date-order: "dmy", "mdy" or "" (say when a slash date is ambiguous)
}

func rulesOf(spec Spec) timeRules {
	return timeRules{loc: spec.Location, layout: spec.TimeFormat, order: spec.DateOrder}
}

// zonedLayouts are tried before the zoneless ones: times that say their
// offset (ISO with a space, as PostgreSQL prints timestamptz).
var zonedLayouts = []string{
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02 15:04:05Z07",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
}

// zonelessLayouts are the layouts detected without --time-format: ISO
// without a zone (what Excel and most databases write), with a space or a T,
// with or without seconds and fractions; and the dotted day-first dates of
// European locales. Slash dates are parsed apart (parseSlashDate): their
// order of day and month is the locale's.
var zonelessLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2.1.2006 15:04:05",
	"2.1.2006 15:04",
}

// ErrNoZone: a time written without a zone, and no --tz to say it.
var ErrNoZone = errors.New("has no time zone")

// ErrAmbiguousDate: a slash date whose day and month could be either.
var ErrAmbiguousDate = errors.New("is ambiguous")

// parse reads a timestamp cell: unix seconds, RFC 3339, a detected layout
// or --time-format's. The error is a *LineError on field.
func (tr timeRules) parse(field, v string) (time.Time, error) {
	if tr.layout != "" {
		return tr.parseLayout(field, v, tr.layout)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	for _, l := range zonelessLayouts {
		if _, err := time.Parse(l, v); err == nil {
			return tr.parseLayout(field, v, l)
		}
	}
	if t, ok, err := tr.parseSlashDate(field, v); ok || err != nil {
		return t, err
	}
	if t, ok, err := tr.parseExcelSerial(field, v); ok || err != nil {
		return t, err
	}
	return time.Time{}, fieldErr(field, "%q is not a time this importer reads: unix seconds, RFC 3339 (2006-01-02T15:04:05Z), "+
		"or with --tz 2006-01-02 15:04:05, 02.01.2006 15:04, 01/02/2006 3:04 PM or an Excel serial date; "+
		"give its Go layout with --time-format (e.g. --time-format \"2006/01/02 15h04\")", v)
}

// parseLayout parses v with layout, in --tz unless the layout has a zone.
func (tr timeRules) parseLayout(field, v, layout string) (time.Time, error) {
	zoned := layoutHasZone(layout)
	if !zoned && tr.loc == nil {
		if _, err := time.Parse(layout, v); err != nil {
			return time.Time{}, fieldErr(field, "%q does not match --time-format %q", v, layout)
		}
		return time.Time{}, fieldErr(field, "%q %w: give --tz ZONE, the zone it was written in (e.g. --tz Europe/Berlin, or --tz UTC)", v, ErrNoZone)
	}
	loc := tr.loc
	if loc == nil {
		loc = time.UTC // the layout carries the zone
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		if tr.layout != "" {
			return time.Time{}, fieldErr(field, "%q does not match --time-format %q", v, layout)
		}
		return time.Time{}, fieldErr(field, "%q: %v", v, err)
	}
	return t, nil
}

// layoutHasZone reports whether a Go layout holds a zone or an offset.
func layoutHasZone(layout string) bool {
	return strings.Contains(layout, "Z07") || strings.Contains(layout, "-07") || strings.Contains(layout, "MST")
}

// slashLayouts are the times after a slash date, tried in order: 24-hour
// with and without seconds, then 12-hour (Excel's en-US "3/1/2024 9:15 AM").
var slashLayouts = []string{"15:04:05", "15:04", "3:04:05 PM", "3:04 PM", "15:04:05.999999999"}

// parseSlashDate reads "A/B/YYYY time": 01/02/2006 (month first, en-US) or
// 02/01/2006 (day first, most other locales). When only one reading is a
// date (13/03/2024), that is it; when both are and differ (03/04/2024), the
// date order must be given (--date-order dmy or mdy, or --time-format).
func (tr timeRules) parseSlashDate(field, v string) (time.Time, bool, error) {
	date, clock, ok := strings.Cut(v, " ")
	if !ok {
		return time.Time{}, false, nil
	}
	parts := strings.Split(date, "/")
	if len(parts) != 3 || len(parts[2]) != 4 {
		return time.Time{}, false, nil
	}
	a, errA := strconv.Atoi(parts[0])
	b, errB := strconv.Atoi(parts[1])
	if errA != nil || errB != nil || a < 1 || b < 1 {
		return time.Time{}, false, nil
	}
	var clockLayout string
	for _, l := range slashLayouts {
		if _, err := time.Parse(l, strings.TrimSpace(clock)); err == nil {
			clockLayout = l
			break
		}
	}
	if clockLayout == "" {
		return time.Time{}, false, nil
	}
	const mdy, dmy = "1/2/2006 ", "2/1/2006 "
	var layout string
	switch {
	case tr.order == "mdy":
		layout = mdy
	case tr.order == "dmy":
		layout = dmy
	case a > 12 && b <= 12:
		layout = dmy
	case b > 12 && a <= 12:
		layout = mdy
	case a == b:
		layout = dmy // the same either way
	case a <= 12 && b <= 12:
		return time.Time{}, true, fieldErr(field, "%q %w: %s or %s? give --date-order dmy (day first) or mdy (month first), "+
			"or the layout with --time-format (\"02/01/2006 %s\" or \"01/02/2006 %s\")", v, ErrAmbiguousDate,
			dayMonth(a, b, parts[2]), dayMonth(b, a, parts[2]), clockLayout, clockLayout)
	default:
		return time.Time{}, false, nil
	}
	t, err := tr.parseLayout(field, date+" "+strings.TrimSpace(clock), layout+clockLayout)
	return t, true, err
}

// dayMonth names a date for a person: "3 April 2024".
func dayMonth(day, month int, year string) string {
	if month < 1 || month > 12 {
		return fmt.Sprintf("%d/%d/%s", day, month, year)
	}
	return fmt.Sprintf("%d %s %s", day, time.Month(month), year)
}

// Excel serial dates: days since 1899-12-30, the fraction the time of day
// (45352.385 is 2024-03-01 09:14:24). Only a number with a fraction is one:
// a whole number is unix seconds. The range keeps other decimals out.
var excelEpoch = time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)

const minExcelSerial, maxExcelSerial = 25569, 80000 // 1970 to 2119

func (tr timeRules) parseExcelSerial(field, v string) (time.Time, bool, error) {
	if strings.Count(v, ",") == 1 && !strings.Contains(v, ".") {
		v = strings.Replace(v, ",", ".", 1) // a decimal comma, as Excel writes it in ';' files
	}
	if !strings.Contains(v, ".") {
		return time.Time{}, false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < minExcelSerial || f > maxExcelSerial {
		return time.Time{}, false, nil
	}
	if tr.loc == nil {
		return time.Time{}, true, fieldErr(field, "%q (an Excel serial date) %w: give --tz ZONE, the zone it was written in (e.g. --tz Europe/Berlin, or --tz UTC)", v, ErrNoZone)
	}
	days := math.Floor(f)
	ms := math.Round((f - days) * 86400e3)
	wall := excelEpoch.AddDate(0, 0, int(days)).Add(time.Duration(ms) * time.Millisecond)
	return wallIn(wall, tr.loc), true, nil
}

// wallIn is the wall-clock time t (its location ignored) in loc.
func wallIn(t time.Time, loc *time.Location) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
}

// zoneless reads a value of a postgres timestamp without time zone, which
// pgx hands over as UTC: its wall clock is in --tz, and without --tz it is
// an error, as a CSV time without a zone is.
func (tr timeRules) zoneless(field string, t time.Time) (time.Time, error) {
	if tr.loc == nil {
		return time.Time{}, fieldErr(field, "%s is a timestamp without time zone and %w: give --tz ZONE, the zone it was written in (e.g. --tz Europe/Berlin, or --tz UTC)",
			t.Format("2006-01-02 15:04:05.999999"), ErrNoZone)
	}
	return wallIn(t, tr.loc), nil
}
