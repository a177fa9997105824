package workqueue

import (
	"testing"
	"time"
)

func FuzzDecodeEnqueue(f *testing.F) {
	for _, s := range []string{
		`{"payload":1}`, `[{"payload":{"a":[1,2]},"priority":3,"delay":"1s"}]`,
		"{\"payload\":1}\n{\"payload\":2}\n", `{"payload":1,"not_before":"2030-01-01T00:00:00Z","timeout":"5s","max_attempts":3,"idempotency_key":"k"}`,
		`[`, `{"payload":`, `"x"`, `[1,2]`, `{"payload":1}{"payload":2}`, `[{}] x`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		items, _, err := decodeEnqueue(body, "q", ndjson, 64, time.Unix(0, 0))
		if err != nil {
			if items != nil {
				t.Fatal("items and an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(items) == 0 {
			t.Fatal("no items and no error")
		}
		for _, it := range items {
			if it.status == 0 && len(it.item.Payload) > 64 {
				t.Fatal("payload over the limit accepted")
			}
			if it.status != 0 && it.err == "" {
				t.Fatal("refused item without a reason")
			}
		}
	})
}

func FuzzDecodeLeaseAndCompletions(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"wait_seconds":1.5,"max_items":10}`, `{"tokens":["1.1.0000000000000001"]}`,
		`{"items":[{"token":"t","error":"e","retry_after":"1s"}]}`, `{"items":[{"token":"t","retry_after":2.5}]}`, `{"error":"x","retry_after":"5m"}`, `plain text error`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if wait, n, _, err := decodeLease(body); err == nil && (wait < 0 || wait > maxWait || n < 1 || n > maxLeaseMany) {
			t.Fatalf("lease decoded out of range: %v %d", wait, n)
		}
		if cs, err := decodeBatchCompletion(body, 1); err == nil {
			if len(cs) == 0 {
				t.Fatal("empty batch accepted")
			}
			for _, c := range cs {
				if c.RetryAfter < 0 {
					t.Fatal("negative retry_after")
				}
			}
		}
		if c, err := decodeSingleNack(body, "application/json"); err == nil && c.RetryAfter < 0 {
			t.Fatal("negative retry_after")
		}
		decodeSingleNack(body, "text/plain")
		decodeSource(body, "q", 1<<20, time.Unix(0, 0))
	})
}
