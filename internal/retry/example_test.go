package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/podkit/podkit/internal/retry"
)

func ExampleDo() {
	p := retry.Policy{Initial: time.Millisecond, Attempts: 5, Jitter: 0.2}
	n, err := retry.Do(context.Background(), p, func(_ context.Context, attempt int) error {
		if attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	fmt.Println(n, err)
	// Output: 3 <nil>
}
