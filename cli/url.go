package cli

import (
	"fmt"
	"net/url"
)

// CheckHTTPURL reports why value, given to the flag named flagName, is not
// an absolute http or https URL with a host, or nil.
func CheckHTTPURL(flagName, value string) error {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		return fmt.Errorf("--%s %q: %v", flagName, value, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("--%s %q: unknown scheme %q (want http or https)", flagName, value, u.Scheme)
	case u.Host == "":
		return fmt.Errorf("--%s %q: missing host", flagName, value)
	}
	return nil
}
