package workqueue

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/podkit/podkit/workqueue/store/wal"
)

func TestSourcePoller(t *testing.T) {
	var body atomic.Value
	body.Store(`{"kind":"ItemList","items":[{"name":"a","payload":1},{"name":"b","payload":2,"priority":5}]}`)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body.Load().(string)))
	}))
	defer src.Close()
	st := wal.OpenMemory(wal.Options{Logger: quiet()})
	defer st.Close()
	p := &sourcePoller{url: src.URL, queue: "src", store: st, log: quiet(), maxPayload: 1 << 20, seen: map[string]bool{}}
	ctx := context.Background()
	if err := p.pollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Stats(ctx, "src"); s.Ready != 2 {
		t.Fatalf("ready=%d after the first poll, want 2", s.Ready)
	}
	// Seen names are not queued again; a new one is.
	body.Store(`{"kind":"ItemList","items":[{"name":"a","payload":1},{"name":"c","payload":3}]}`)
	if err := p.pollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// A restarted poller (empty memory) is kept from duplicates by the
	// idempotency keys.
	p2 := &sourcePoller{url: src.URL, queue: "src", store: st, log: quiet(), maxPayload: 1 << 20, seen: map[string]bool{}}
	if err := p2.pollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Stats(ctx, "src"); s.Ready != 3 || s.Enqueued != 3 {
		t.Fatalf("ready=%d enqueued=%d, want 3 and 3", s.Ready, s.Enqueued)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"kind":"PodList","items":[]}`, `"kind" is "PodList"`},
		{`{"kind":"ItemList","items":[{"payload":1}]}`, `"name" is required`},
		{`{"kind":"ItemList","items":[{"name":"x","color":"red"}]}`, `unknown field "color"`},
		{`{"kind":"ItemList","items":[{"name":"x"},{"name":"x"}]}`, `appears twice`},
		{`{"kind":"ItemList","items":[{"name":"x","delay":"soon"}]}`, `delay`},
		{`not json`, `malformed JSON`},
	} {
		body.Store(tc.body)
		if err := p.pollOnce(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source answering %s: %v, want an error with %q", tc.body, err, tc.want)
		}
	}
}
