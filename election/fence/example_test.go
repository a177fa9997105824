package fence_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/podkit/podkit/election/fence"
)

// A resource behind the fencing middleware: a write from a deposed leader
// (a lower epoch than one already seen) is rejected with 409.
func Example() {
	f := &fence.Fence{}
	store := fence.Middleware(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("stored a write at epoch", r.Header.Get(fence.Header))
	}))
	srv := httptest.NewServer(store)
	defer srv.Close()

	write := func(epoch string) {
		req, _ := http.NewRequest("PUT", srv.URL+"/config", nil)
		req.Header.Set(fence.Header, epoch)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println("epoch", epoch, "->", resp.StatusCode)
	}
	write("7") // the old leader
	write("8") // a new leader is elected and writes
	write("7") // the old leader wakes up from a pause: rejected
	fmt.Println("highest epoch seen:", f.Highest())
	// Output:
	// stored a write at epoch 7
	// epoch 7 -> 200
	// stored a write at epoch 8
	// epoch 8 -> 200
	// epoch 7 -> 409
	// highest epoch seen: 8
}
