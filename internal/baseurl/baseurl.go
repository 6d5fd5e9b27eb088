// Package baseurl parses the base URL of an HTTP API the tool talks to (the
// Chats API, Kommo's v4 API, a media server) by one rule: scheme://host[:port]
// and nothing else, https, and plain http only to this machine unless the
// caller allows it, since every request carries a secret (a signature, a
// token).
package baseurl

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Parse checks raw and returns it as scheme://host[:port]. Plain http is
// refused for a host that is not loopback unless allowPlainHTTP; why names
// what would travel unencrypted, for the error ("the channel secret signs
// every request"). The error quotes the URL without credentials.
func Parse(raw string, allowPlainHTTP bool, why string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("base URL %q: no host", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("base URL %q: want scheme://host[:port] only", u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPlainHTTP && !IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("base URL %q: plain http to a non-loopback host (%s; use https)", u.Redacted(), why)
		}
	default:
		return nil, fmt.Errorf("base URL %q: scheme must be https", u.Redacted())
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// IsLoopbackHost reports whether host names this machine: localhost,
// 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether the URL raw names this machine.
func IsLoopback(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && IsLoopbackHost(u.Hostname())
}
