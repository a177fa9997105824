package broker

import (
	"context"
	"fmt"
	"net"

	"github.com/podkit/podkit/internal/upstream"
	"github.com/podkit/podkit/internal/wireprobe"
)

// checker builds the active health check of g's upstream: nil for none;
// otherwise a check that dials as the proxied connections do (through
// TLS when the upstream originates it).
func (g *gen) checker() (upstream.Checker, error) {
	hc := g.spec.HealthCheck
	dial := g.dial
	switch hc.Type {
	case CheckNone:
		return nil, nil
	case CheckTCP:
		return upstream.TCPCheck(dial), nil
	case CheckHTTP:
		lo, hi, err := statusRange(hc.Status)
		if err != nil {
			return nil, err
		}
		return upstream.HTTPCheck(upstream.HTTPCheckConfig{Path: hc.Path, Lo: lo, Hi: hi, Dial: dial}), nil
	}
	probe, ok := wireprobe.ByName(hc.Type)
	if !ok {
		return nil, fmt.Errorf("health check %q: no such probe", hc.Type)
	}
	return upstream.CheckFunc(func(ctx context.Context, addr string) error {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return probe(ctx, c)
	}), nil
}

var _ = net.Dial
