package container

import (
	"encoding/json"
	"net/url"
)

// Secret is a string that never leaves the process in /info or logs: it
// marshals as "[redacted]" (or "" when empty).
type Secret string

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte(`""`), nil
	}
	return json.Marshal("[redacted]")
}

// String implements fmt.Stringer, so Secret is redacted in logs too.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// RedactURL returns raw with any password in its user info replaced, for
// DSNs and URLs shown on /info or in logs. Unparsable input is returned as
// "[redacted]" rather than risk leaking it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[redacted]"
	}
	return u.Redacted()
}
