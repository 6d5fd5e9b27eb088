package sim

import (
	"encoding/json"
	"io"
	"net/http"
)

// FaultsRequest is the body of POST /_sim/faults.
type FaultsRequest struct {
	// Spec replaces the fault spec (ParseFaults syntax; "" or "none" = no faults).
	Spec string `json:"spec"`
	// Seed, if set, restarts the fault generator.
	Seed *int64 `json:"seed,omitempty"`
}

// serveControl serves the unsigned /_sim/ endpoints. They are for tests and
// operators, never rate limited and never blocked (unblock must get through).
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_sim/stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
	case r.URL.Path == "/_sim/ledger" && r.Method == http.MethodGet:
		entries := s.Ledger()
		if entries == nil {
			entries = []LedgerEntry{}
		}
		writeJSON(w, http.StatusOK, entries)
	case r.URL.Path == "/_sim/links" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Links())
	case r.URL.Path == "/_sim/contacts" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Contacts())
	case r.URL.Path == "/_sim/faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, FaultsRequest{Spec: s.Stats().FaultSpec})
	case r.URL.Path == "/_sim/faults" && r.Method == http.MethodPost:
		var req FaultsRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		var f Faults
		if err == nil {
			f, err = ParseFaults(req.Spec)
		}
		if err == nil {
			err = s.SetFaults(f, req.Seed)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.log.Info("faults changed", "spec", f.String())
		writeJSON(w, http.StatusOK, FaultsRequest{Spec: f.String()})
	case r.URL.Path == "/_sim/unblock" && r.Method == http.MethodPost:
		s.Unblock()
		s.log.Info("block lifted")
		writeJSON(w, http.StatusOK, map[string]bool{"blocked": false})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control endpoint " + r.Method + " " + r.URL.Path +
			" (have GET /_sim/stats, GET /_sim/ledger, GET /_sim/links, GET /_sim/contacts, GET|POST /_sim/faults, POST /_sim/unblock)"})
	}
}
