package workqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/store/wal"
)

// The HTTP API over a store, spoken by the Go client: enqueue, lease, ack.
// `podkit queue` serves the same API with the durable store in --data-dir.
func ExampleNewHandler() {
	st := wal.OpenMemory(wal.Options{}) // wal.Open(dir, ...) for the durable store
	defer st.Close()
	srv := httptest.NewServer(workqueue.NewHandler(st, workqueue.HandlerOptions{}))
	defer srv.Close()

	ctx := context.Background()
	c := client.New(srv.URL, nil)
	res, _ := c.Enqueue(ctx, "thumbnails", []client.Item{
		{Payload: json.RawMessage(`{"image":"a.png"}`)},
		{Payload: json.RawMessage(`{"image":"b.png"}`), Priority: 10},
	})
	fmt.Println("enqueued:", res[0].Status, res[1].Status)

	leases, _ := c.Lease(ctx, "thumbnails", 1, time.Second)
	fmt.Println("leased:", string(leases[0].Payload), "attempt", leases[0].Attempt)
	fmt.Println("ack:", c.Ack(ctx, leases[0].Token))
	fmt.Println("ack again:", c.Ack(ctx, leases[0].Token) != nil)

	stats, _ := c.Stats(ctx, "thumbnails")
	fmt.Printf("ready=%d done=%d\n", stats.Ready, stats.Done)
	// Output:
	// enqueued: 201 201
	// leased: {"image":"b.png"} attempt 1
	// ack: <nil>
	// ack again: true
	// ready=1 done=1
}
