package contacts

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Region is an ISO 3166 country code (RU, DE, BR) in which phones written
// without a country code are read; "" reads only phones written with one.
type Region string

// ParseRegion checks an ISO country code (any case) and returns it in upper
// case; "" is the empty Region.
func ParseRegion(s string) (Region, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if phonenumbers.GetCountryCodeForRegion(s) == 0 {
		return "", fmt.Errorf("%q is not a country code phones are known for (want an ISO 3166 code such as RU, DE, BR, US)", s)
	}
	return Region(s), nil
}

// ErrNoCountryCode: a phone written without a country code, read with no
// --default-region.
var ErrNoCountryCode = errors.New("no country code: give --default-region")

// Phone is a phone number read strictly: its E.164 form, the identity two
// phones are compared by, and its national significant number, what the
// loose search is asked for.
type Phone struct {
	E164     string // +79161234567
	National string // 9161234567
}

// ParsePhone reads a phone as written ("+7 (916) 123-45-67", "8 916
// 1234567", "9161234567"), a number without a country code in region. It
// fails for text that is no possible number of its country, and for a
// number without a country code when region is "".
func ParsePhone(raw string, region Region) (Phone, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Phone{}, fmt.Errorf("empty")
	}
	n, err := phonenumbers.Parse(raw, string(region))
	if err != nil {
		if region == "" && !strings.HasPrefix(raw, "+") {
			return Phone{}, fmt.Errorf("%q has %w", raw, ErrNoCountryCode)
		}
		return Phone{}, fmt.Errorf("%q is not a phone number: %w", raw, err)
	}
	if !phonenumbers.IsPossibleNumber(n) {
		return Phone{}, fmt.Errorf("%q is not a possible phone number of country code +%d", raw, n.GetCountryCode())
	}
	return Phone{E164: phonenumbers.Format(n, phonenumbers.E164), National: phonenumbers.GetNationalSignificantNumber(n)}, nil
}

// NormEmail is an e-mail address as compared: trimmed, lower case; "" for
// text that is not an address (no "@" between two parts, or white space).
func NormEmail(raw string) string {
	e := strings.ToLower(strings.TrimSpace(raw))
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 || strings.ContainsAny(e, " \t\r\n") {
		return ""
	}
	return e
}
