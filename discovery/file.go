package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/podkit/podkit/internal/dirwatch"
)

// file reads a YAML (or JSON) file of endpoints and watches it:
//
//	endpoints:
//	  - address: 10.0.0.1:6379   # HOST:PORT
//	    weight: 2                # optional, default 1
//	    zone: eu-west-1a         # optional
//	    ready: true              # optional, default true
//	    serving: true            # optional, default: ready
//	    terminating: false       # optional
//
// A file that cannot be read or parsed keeps the last good set.
type file struct {
	name, path string
	poll       time.Duration
}

var _ Source = (*file)(nil)

func newFile(name, path string, o Options) (*file, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return &file{name: name, path: abs, poll: o.FilePoll}, nil
}

func (f *file) String() string { return f.name }
func (f *file) Kind() string   { return "file" }

type fileEndpoint struct {
	Address     string `yaml:"address"`
	Weight      *int   `yaml:"weight"`
	Zone        string `yaml:"zone"`
	Ready       *bool  `yaml:"ready"`
	Serving     *bool  `yaml:"serving"`
	Terminating bool   `yaml:"terminating"`
}

// ParseFile reads the endpoints file format (see the file: source).
// Unknown keys, a missing endpoints key and bad addresses are errors
// naming the line.
func ParseFile(data []byte) (Set, error) {
	var doc struct {
		Endpoints *[]fileEndpoint `yaml:"endpoints"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Set{}, errors.New("the file is empty (want an endpoints: list, which may be [])")
		}
		return Set{}, err
	}
	if doc.Endpoints == nil {
		return Set{}, errors.New("no endpoints: key (an empty list is written endpoints: [])")
	}
	var eps []Endpoint
	for i, fe := range *doc.Endpoints {
		host, port, err := splitHostPort(fe.Address)
		if err != nil {
			return Set{}, fmt.Errorf("endpoint %d: address %w", i+1, err)
		}
		e := Endpoint{Host: host, Port: port, Weight: 1, Zone: fe.Zone, Ready: true, Terminating: fe.Terminating}
		if fe.Weight != nil {
			if *fe.Weight < 1 || *fe.Weight > 1000000 {
				return Set{}, fmt.Errorf("endpoint %d (%s): weight %d is not in 1..1000000", i+1, fe.Address, *fe.Weight)
			}
			e.Weight = *fe.Weight
		}
		if fe.Ready != nil {
			e.Ready = *fe.Ready
		}
		e.Serving = e.Ready
		if fe.Serving != nil {
			e.Serving = *fe.Serving
		}
		eps = append(eps, e)
	}
	return Set{Endpoints: eps}.Normalize(), nil
}

func (f *file) Run(ctx context.Context, r Receiver) error {
	changed := make(chan struct{}, 1)
	stop, rewatch, err := dirwatch.Watch(func() []string { return []string{filepath.Dir(f.path)} }, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		stop, rewatch = func() {}, func() {} // polling does the work
	}
	defer stop()
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	var (
		last    []byte
		lastErr string
	)
	for {
		data, rerr := os.ReadFile(f.path)
		switch {
		case rerr != nil:
			if msg := rerr.Error(); msg != lastErr {
				lastErr = msg
				r.Failed(rerr)
			}
			last = nil
		case !bytes.Equal(data, last):
			last = data
			set, perr := ParseFile(data)
			if perr != nil {
				lastErr = perr.Error()
				r.Failed(fmt.Errorf("%s: %w", f.path, perr))
				break
			}
			lastErr = ""
			r.Update(set)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			rewatch()
		case <-tick.C:
		}
	}
}
