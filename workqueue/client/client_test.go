package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/podkit/podkit/workqueue/client"
)

// TestRefusals: a 401 or 403 from the queue is an *Error that matches
// ErrUnauthorized or ErrForbidden, keeps the JSON's reason and roles, and
// says which role was needed.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		status      int
		body        string
		is          error
		wantInError []string
		roles       []string
	}{
		{401, `{"error":"no credential: this API needs a bearer token","reason":"no_credential","role":"producer"}`,
			client.ErrUnauthorized, []string{"401 Unauthorized", "no credential", "(needs role producer)"}, []string{"producer"}},
		{403, `{"error":"token:w has role worker; POST /queues/q/items needs role producer","reason":"wrong_role","role":"producer"}`,
			client.ErrForbidden, []string{"403 Forbidden", "needs role producer"}, []string{"producer"}},
		{403, `{"error":"token:w has role worker; GET /queues/q/items/1 needs role producer or admin","reason":"wrong_role","role":"producer","roles":["producer","admin"]}`,
			client.ErrForbidden, []string{"needs role producer or admin"}, []string{"producer", "admin"}},
		{401, `{"error":"no credential","reason":"no_credential","role":"producer","roles":["producer","admin"]}`,
			client.ErrUnauthorized, []string{"(needs role producer or admin)"}, []string{"producer", "admin"}},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body))
		}))
		_, err := client.New(srv.URL, nil).Get(context.Background(), "q", "1")
		srv.Close()
		var ae *client.Error
		if !errors.As(err, &ae) || !errors.Is(err, tc.is) || errors.Is(err, client.ErrStale) {
			t.Errorf("%d: %v (%T), want an *Error matching %v", tc.status, err, err, tc.is)
			continue
		}
		for _, want := range tc.wantInError {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d: error %q lacks %q", tc.status, err, want)
			}
		}
		if got := ae.NeededRoles(); strings.Join(got, ",") != strings.Join(tc.roles, ",") || ae.Reason == "" {
			t.Errorf("%d: roles %v reason %q, want %v", tc.status, got, ae.Reason, tc.roles)
		}
	}
}

func TestParseQueueURL(t *testing.T) {
	for _, tc := range []struct{ in, base, queue, err string }{
		{"https://queue:8443/queues/jobs", "https://queue:8443", "jobs", ""},
		{"http://127.0.0.1:8080/prefix/queues/q/", "http://127.0.0.1:8080/prefix", "q", ""},
		{"ftp://queue/queues/q", "", "", "want an http:// or https:// URL"},
		{"https://queue:8443/nope", "", "", "want URL/queues/<name>"},
	} {
		base, queue, err := client.ParseQueueURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || base != tc.base || queue != tc.queue {
			t.Errorf("%s: %q %q %v, want %q %q", tc.in, base, queue, err, tc.base, tc.queue)
		}
	}
	if err := client.CheckTLS("--server", "http://user:pw@q:1", true); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("CheckTLS with http://: %v, want an error without the password", err)
	}
	if err := client.CheckTLS("--server", "HTTPS://q:1", true); err != nil {
		t.Errorf("CheckTLS with HTTPS://: %v", err)
	}
}
