//go:build container

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// topzDoc is the part of GET /topz's JSON the container tests read.
type topzDoc struct {
	SelfPID   int    `json:"self_pid"`
	Visible   int    `json:"processes_visible"`
	Warning   string `json:"warning"`
	Processes []struct {
		PID       int      `json:"pid"`
		PPID      int      `json:"ppid"`
		UID       int      `json:"uid"`
		User      string   `json:"user"`
		FDs       int      `json:"fds"`
		Command   string   `json:"command"`
		Self      bool     `json:"self"`
		Notes     []string `json:"notes"`
		Container struct {
			ID      string `json:"id"`
			ShortID string `json:"short_id"`
			Runtime string `json:"runtime"`
		} `json:"container"`
	} `json:"processes"`
}

// topzFetch polls url (GET /topz as JSON) until ok accepts the document, for
// at most a minute, and returns the last document.
func topzFetch(t *testing.T, url string, ok func(topzDoc) string) topzDoc {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	var doc topzDoc
	why := "no answer yet"
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			why = err.Error()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		doc = topzDoc{}
		switch {
		case resp.StatusCode != 200:
			why = fmt.Sprintf("%s: %s", resp.Status, body)
		case json.Unmarshal(body, &doc) != nil:
			why = "not JSON: " + string(body)
		default:
			if why = ok(doc); why == "" {
				return doc
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET %s: after a minute: %s (is topz in the image? rebuild it with make image)", url, why)
	return doc
}

// TestTopzSharedPIDNamespace: nginx in an app container, topz next to it
// with --pid container:<app> (and its network), as in a pod with
// shareProcessNamespace. topz lists nginx's master and workers with the
// app container's id, and its own process with its own.
func TestTopzSharedPIDNamespace(t *testing.T) {
	app := containertest.Run(t, containertest.Options{
		Name:    "topz-app",
		Image:   containertest.PeerImage(),
		Cmd:     []string{"nginx", "-g", "daemon off;"},
		Publish: []string{"8081", "8082", "9901"},
	})
	// The default: non-root (65532), no extra capabilities.
	plain := containertest.Run(t, containertest.Options{
		Name:      "topz",
		Image:     containertest.Image(),
		Cmd:       []string{"topz", "--listen", "0.0.0.0:8081", "--insecure-listen", "--admin-addr", "0.0.0.0:9901", "--interval", "500ms", "--drain-delay", "0s"},
		NetworkOf: app,
		PIDOf:     app,
	})
	// Root with CAP_SYS_PTRACE may also read the app's /etc/passwd and
	// count its descriptors.
	privileged := containertest.Run(t, containertest.Options{
		Name:      "topz-ptrace",
		Image:     containertest.Image(),
		User:      "0",
		Args:      []string{"--cap-add", "SYS_PTRACE"},
		Cmd:       []string{"topz", "--listen", "0.0.0.0:8082", "--insecure-listen", "--admin-addr", "off", "--interval", "500ms", "--drain-delay", "0s"},
		NetworkOf: app,
		PIDOf:     app,
	})

	check := func(t *testing.T, port string, self *containertest.Container, privileged bool) {
		url := "http://" + app.Addr(t, port) + "/topz?fresh=1"
		doc := topzFetch(t, url, func(d topzDoc) string {
			workers := 0
			for _, p := range d.Processes {
				if strings.HasPrefix(p.Command, "nginx: worker process") {
					workers++
				}
			}
			if workers < 1 {
				return fmt.Sprintf("%d nginx workers listed", workers)
			}
			return ""
		})
		if doc.Warning != "" {
			t.Errorf("warning %q in a shared PID namespace", doc.Warning)
		}
		var master, workers, own int
		for _, p := range doc.Processes {
			switch {
			case strings.HasPrefix(p.Command, "nginx: master process"):
				master++
				if p.PID != 1 || p.Container.ID != app.ID || p.Container.ShortID != app.ID[:12] || p.User != "root" {
					t.Errorf("nginx master: pid %d container %q user %q; want pid 1 in %s as root", p.PID, p.Container.ID, p.User, app.ID)
				}
			case strings.HasPrefix(p.Command, "nginx: worker process"):
				workers++
				if p.PPID != 1 || p.Container.ID != app.ID {
					t.Errorf("nginx worker %d: ppid %d container %q; want ppid 1 in %s", p.PID, p.PPID, p.Container.ID, app.ID)
				}
				// www-data is in the app's /etc/passwd, not in topz's.
				wantUser := fmt.Sprint(p.UID)
				if privileged {
					wantUser = "www-data"
				}
				if p.User != wantUser {
					t.Errorf("nginx worker %d: user %q, want %q", p.PID, p.User, wantUser)
				}
				if privileged && p.FDs < 3 {
					t.Errorf("nginx worker %d: fds %d with CAP_SYS_PTRACE", p.PID, p.FDs)
				}
				if !privileged && (p.FDs != -1 || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "permission denied")) {
					t.Errorf("nginx worker %d: fds %d notes %q; want -1 with a permission note", p.PID, p.FDs, p.Notes)
				}
			case p.Self:
				own++
				if p.PID != doc.SelfPID || p.Container.ID != self.ID {
					t.Errorf("topz itself: pid %d (self_pid %d) container %q; want its own container %s", p.PID, doc.SelfPID, p.Container.ID, self.ID)
				}
			}
		}
		if master != 1 || workers < 1 || own != 1 {
			t.Errorf("%d nginx masters, %d workers, %d topz; want 1, at least 1, 1", master, workers, own)
		}
		// The text and HTML formats name the app's container too.
		for _, accept := range []string{"text/plain", "text/html"} {
			req, _ := http.NewRequest("GET", "http://"+app.Addr(t, port)+"/topz", nil)
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), app.ID[:12]) || !strings.Contains(string(body), "nginx: master process") {
				t.Errorf("%s: %s without the app's container id or nginx", accept, resp.Status)
			}
		}
	}
	t.Run("nonroot", func(t *testing.T) { check(t, "8081", plain, false) })
	t.Run("ptrace", func(t *testing.T) { check(t, "8082", privileged, true) })

	// The admin endpoints work from outside the pod.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + app.Addr(t, "9901") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "podkit_topz_only_own_processes 0") || !strings.Contains(string(metrics), "podkit_topz_containers 3") {
		t.Errorf("/metrics lacks the topz gauges:\n%s", metrics)
	}
	if code := plain.Stop(t, 20); code != 0 {
		t.Errorf("topz exit code %d after docker stop, want 0", code)
	}
}

// TestTopzUnsharedPIDNamespace: topz in a container of its own sees only
// itself and says so.
func TestTopzUnsharedPIDNamespace(t *testing.T) {
	c := containertest.Run(t, containertest.Options{
		Name:    "topz-alone",
		Image:   containertest.Image(),
		Cmd:     []string{"topz", "--listen", "0.0.0.0:8081", "--insecure-listen", "--admin-addr", "off", "--drain-delay", "0s"},
		Publish: []string{"8081"},
	})
	doc := topzFetch(t, "http://"+c.Addr(t, "8081")+"/topz", func(d topzDoc) string {
		if d.Warning == "" {
			return fmt.Sprintf("no warning with %d processes visible", d.Visible)
		}
		return ""
	})
	if doc.Visible != 1 || doc.SelfPID != 1 || !strings.Contains(doc.Warning, "PID namespace is probably not shared") {
		t.Errorf("alone: %d visible, self_pid %d, warning %q", doc.Visible, doc.SelfPID, doc.Warning)
	}
	if p := doc.Processes[0]; p.Container.ID != c.ID || p.User != "nonroot" {
		t.Errorf("alone: container %q user %q; want %s, nonroot", p.Container.ID, p.User, c.ID)
	}
}
