package sim

import (
	"fmt"
	"strconv"
	"strings"
)

// Fault kinds, as written in a fault spec and reported in Stats.Faults.
const (
	Fault500        = "500"         // 500 before processing; nothing recorded
	Fault503        = "503"         // 503 before processing; nothing recorded
	Fault429        = "429"         // spurious 429 with the short fault retry_after (new_message only)
	FaultHang       = "hang"        // no answer until Options.Hang passes or the client gives up
	FaultAccept500  = "accept-500"  // message recorded, then 500 (new_message only)
	FaultAcceptDrop = "accept-drop" // message recorded, then the TCP connection is dropped (new_message only)
	Fault400        = "400"         // 400 INVALID_DATA before processing: a refusal to retry after "fixing" (new_message only)
	// FaultAcceptLose answers 200 with ids as if the message were stored,
	// and stores nothing (the chat is created): a proxy or an API that
	// loses what it acknowledged. Only reading the history back shows it
	// (new_message only).
	FaultAcceptLose = "accept-lose"
)

// faultKinds is the fixed order in which one uniform draw is mapped to a kind,
// so a seed gives the same faults for the same request sequence.
var faultKinds = [...]string{Fault500, Fault503, Fault429, FaultHang, FaultAccept500, FaultAcceptDrop, Fault400, FaultAcceptLose}

// Faults holds the probability of each fault kind per request. At most one
// fault is injected per request, so the probabilities must sum to at most 1.
type Faults map[string]float64

// ParseFaults parses a spec such as
// "500=0.02,503=0.02,429=0.01,hang=0.01,accept-500=0.02,accept-drop=0.01".
// An empty spec (or "none") means no faults. Unknown kinds, probabilities
// outside [0,1] and a total above 1 are errors.
func ParseFaults(spec string) (Faults, error) {
	f := Faults{}
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "none" {
		return f, nil
	}
	total := 0.0
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, val, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("fault spec %q: want kind=probability", item)
		}
		kind = strings.TrimSpace(kind)
		if !knownFault(kind) {
			return nil, fmt.Errorf("fault spec %q: unknown kind %q (known: %s)", item, kind, strings.Join(faultKinds[:], ", "))
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("fault spec %q: probability must be a number in [0,1]", item)
		}
		f[kind] += p
		total += p
	}
	if total > 1+1e-9 {
		return nil, fmt.Errorf("fault spec %q: probabilities sum to %g, more than 1", spec, total)
	}
	return f, nil
}

func knownFault(kind string) bool {
	for _, k := range faultKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// String renders f as a spec that ParseFaults reads back.
func (f Faults) String() string {
	var parts []string
	for _, k := range faultKinds {
		if p := f[k]; p > 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(p, 'g', -1, 64))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// pick maps a uniform draw u in [0,1) to a fault kind, or "" for none.
func (f Faults) pick(u float64) string {
	acc := 0.0
	for _, k := range faultKinds {
		acc += f[k]
		if u < acc {
			return k
		}
	}
	return ""
}
