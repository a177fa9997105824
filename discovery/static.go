package discovery

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// static is a fixed list: static:HOST:PORT[;weight=N][;zone=Z],...
type static struct {
	name string
	set  Set
}

var _ Source = (*static)(nil)

func newStatic(name, spec string) (*static, error) {
	var eps []Endpoint
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("an empty entry in the list")
		}
		e, err := parseStaticEntry(entry)
		if err != nil {
			return nil, err
		}
		eps = append(eps, e)
	}
	return &static{name: name, set: Set{Endpoints: eps}.Normalize()}, nil
}

// parseStaticEntry reads HOST:PORT[;weight=N][;zone=Z].
func parseStaticEntry(entry string) (Endpoint, error) {
	parts := strings.Split(entry, ";")
	host, port, err := splitHostPort(parts[0])
	if err != nil {
		return Endpoint{}, err
	}
	e := Endpoint{Host: host, Port: port, Weight: 1, Ready: true, Serving: true}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "weight":
			w, err := strconv.Atoi(v)
			if err != nil || w < 1 || w > 1000000 {
				return Endpoint{}, fmt.Errorf("%q: weight %q is not a number in 1..1000000", entry, v)
			}
			e.Weight = w
		case "zone":
			if v == "" {
				return Endpoint{}, fmt.Errorf("%q: zone is empty", entry)
			}
			e.Zone = v
		default:
			return Endpoint{}, fmt.Errorf("%q: unknown attribute %q (want weight=N or zone=Z)", entry, k)
		}
	}
	return e, nil
}

func (s *static) String() string { return s.name }
func (s *static) Kind() string   { return "static" }

func (s *static) Run(ctx context.Context, r Receiver) error {
	r.Update(s.set)
	<-ctx.Done()
	return nil
}
