package contacts

import "github.com/kommo-import/kommo-import/kommoapi"

// DefaultCRMRate is --crm-rate's default: main-API requests a second. Kommo
// allows 7 per account and IP, shared with the account's other integrations.
const DefaultCRMRate = 5.0

// RunConfig is what --link-contacts and its flags ask of a run; the command
// line builds it (flags checked, the map read, the token checked at
// preflight) and the importer takes it (nil: no linking).
type RunConfig struct {
	// API is the account's main-API client (--kommo-domain, KOMMO_TOKEN).
	API *kommoapi.Client
	// Create creates a contact for a client no contact matches (--create-contacts).
	Create bool
	// Map is the operator's map (--contacts-map), nil without one; MapFile names it.
	Map     *Map
	MapFile string
	// Region reads phones written without a country code (--default-region).
	Region Region
	// CRMRate is the main API's own rate schedule, requests a second
	// (--crm-rate): its slots and its 429 pauses are apart from the Chats
	// API's.
	CRMRate float64
}

// Matcher returns the run's Matcher, its requests made through attempt.
func (c *RunConfig) Matcher(attempt Attempt) (*Matcher, error) {
	return New(Config{API: c.API, Attempt: attempt, Region: c.Region, Map: c.Map, Create: c.Create})
}
