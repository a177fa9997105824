package cli

import (
	"strings"
	"testing"
)

func TestCheckHTTPURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://example:8080/hook", ""},
		{"https://example/x", ""},
		{"ftp://example/x", `--notify "ftp://example/x": unknown scheme "ftp" (want http or https)`},
		{"http:///x", `--notify "http:///x": missing host`},
		{"http://[::1", `--notify "http://[::1": parse`},
	} {
		err := CheckHTTPURL("notify", tc.in)
		if tc.want == "" {
			if err != nil {
				t.Errorf("CheckHTTPURL(%q) = %v, want nil", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("CheckHTTPURL(%q) = %v, want an error starting %q", tc.in, err, tc.want)
		}
	}
}
