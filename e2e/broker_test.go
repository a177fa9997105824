//go:build container

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// brokerEndpoint is what the broker's GET /endpoints says of one endpoint
// (the fields the test reads).
type brokerEndpoint struct {
	Address string `json:"address"`
	Health  string `json:"health"`
	Ejected bool   `json:"ejected"`
	Usable  bool   `json:"usable"`
}

// brokerEndpoints reads GET /endpoints: the endpoints of the upstream
// named "default" (the only one of the compose example).
func brokerEndpoints(admin string) ([]brokerEndpoint, error) {
	code, body, err := get(admin + "/endpoints")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET /endpoints: %d %s", code, body)
	}
	var doc struct {
		Upstreams []struct {
			Name      string           `json:"name"`
			Endpoints []brokerEndpoint `json:"endpoints"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, fmt.Errorf("GET /endpoints: %v: %s", err, body)
	}
	for _, u := range doc.Upstreams {
		if u.Name == "default" {
			return u.Endpoints, nil
		}
	}
	return nil, fmt.Errorf("GET /endpoints: no upstream named default: %s", body)
}

// TestComposeBroker: the app only knows 127.0.0.1:6379; the broker in its
// network namespace finds three Redis containers by one DNS name (a
// shared network alias) and keeps the app working while one of them
// hangs (paused: it accepts connections and never answers, so only the
// Redis PING health check can tell) and while one is stopped (its
// address leaves Docker's DNS); /endpoints says so, and the server is
// used again when it comes back.
func TestComposeBroker(t *testing.T) {
	forEachCompose(t, "broker", nil, nil, func(t *testing.T, p *composeProject) {
		admin := "http://" + p.addr(t, "broker", 9901)
		want200(t, admin+"/readyz")

		ipOf := func(service string) string {
			ids := p.ids(t, service)
			if len(ids) != 1 {
				t.Fatalf("%s: containers %v", service, ids)
			}
			return strings.TrimSpace(dockerOut(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", ids[0]))
		}
		var all []string
		for _, s := range []string{"redis-0", "redis-1", "redis-2"} {
			all = append(all, ipOf(s)+":6379")
		}
		victim := all[1]
		// allHealthy: every Redis container is discovered, healthy and
		// usable.
		allHealthy := func() error {
			eps, err := brokerEndpoints(admin)
			if err != nil {
				return err
			}
			seen := map[string]bool{}
			for _, e := range eps {
				if e.Health != "healthy" || !e.Usable {
					return fmt.Errorf("%s is %s (usable %v)", e.Address, e.Health, e.Usable)
				}
				seen[e.Address] = true
			}
			for _, a := range all {
				if !seen[a] {
					return fmt.Errorf("%s not discovered: %+v", a, eps)
				}
			}
			return nil
		}
		composeWait(t, "the three Redis servers discovered and healthy", allHealthy)

		// SET then GET on one connection through the broker (each of the
		// three servers is its own database: a second connection may go
		// to another one).
		n := 0
		setGet := func() error {
			n++
			key, val := fmt.Sprintf("k%d", n), fmt.Sprintf("v%d", n)
			out, err := p.exec("app", "sh", "-c",
				fmt.Sprintf("printf 'SET %s %s\\nGET %s\\n' | timeout 10 redis-cli -p 6379", key, val, key))
			if err != nil {
				return fmt.Errorf("redis-cli through the broker: %v: %s", err, out)
			}
			if got := strings.Fields(out); len(got) != 2 || got[0] != "OK" || got[1] != val {
				return fmt.Errorf("SET/GET through the broker: %q, want OK %s", out, val)
			}
			return nil
		}
		// keepsWorking: ten SET/GETs in a row succeed (each a new
		// connection, so each is balanced anew).
		keepsWorking := func(what string) {
			t.Helper()
			composeWait(t, "the app's SET/GET to work "+what, setGet)
			for i := 0; i < 10; i++ {
				if err := setGet(); err != nil {
					t.Fatalf("%s: SET/GET %d of 10: %v", what, i+1, err)
				}
			}
		}
		keepsWorking("with three healthy servers")

		// A hung server: paused, its kernel still accepts connections,
		// nothing answers. The health check (PING, 1s timeout, 3 falls)
		// marks it unhealthy and no new connection goes to it.
		p.must(t, "pause", "redis-1")
		composeWait(t, victim+" (paused) to be unhealthy in /endpoints", func() error {
			eps, err := brokerEndpoints(admin)
			if err != nil {
				return err
			}
			for _, e := range eps {
				if e.Address == victim {
					if e.Health == "unhealthy" && !e.Usable {
						return nil
					}
					return fmt.Errorf("%s is %s (usable %v)", e.Address, e.Health, e.Usable)
				}
			}
			return fmt.Errorf("%s not listed: %+v", victim, eps)
		})
		keepsWorking("with redis-1 hung")
		want200(t, admin+"/readyz")
		p.must(t, "unpause", "redis-1")
		composeWait(t, "redis-1 healthy again after unpause", allHealthy)
		waitMetric(t, admin+"/metrics", fmt.Sprintf(`podkit_broker_endpoint_health_transitions_total{endpoint=%q,to="unhealthy",upstream="default"}`, victim), atLeast(1))

		// A stopped server: connects to it fail (and move to the next
		// server), the health check marks it unhealthy, and its address
		// leaves Docker's DNS (re-resolved every 5s): either way it gets
		// no new connection.
		p.must(t, "stop", "-t", "1", "redis-1")
		composeWait(t, victim+" (stopped) to be unhealthy or gone from /endpoints", func() error {
			eps, err := brokerEndpoints(admin)
			if err != nil {
				return err
			}
			for _, e := range eps {
				if e.Address == victim && e.Usable {
					return fmt.Errorf("%s still usable (%s)", e.Address, e.Health)
				}
			}
			if len(eps) == 0 {
				return fmt.Errorf("no endpoint listed")
			}
			return nil
		})
		keepsWorking("with redis-1 stopped")
		p.must(t, "start", "redis-1")
		// It may come back with another address.
		all[1] = ipOf("redis-1") + ":6379"
		composeWait(t, "redis-1 discovered and healthy again after start", allHealthy)
		keepsWorking("after redis-1 came back")

		// The app's own loop (INCR visits) went through the broker too.
		waitMetric(t, admin+"/metrics", fmt.Sprintf(`podkit_broker_connections_total{endpoint=%q,upstream="default"}`, all[0]), atLeast(5))
	})
}
