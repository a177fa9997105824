package metrics

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseStubStatus(t *testing.T) {
	good, err := os.ReadFile("testdata/stub_status.txt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		want     StubStatus
		errLine  int // -1: no error
	}{
		{"nginx page", string(good), StubStatus{291, 16630948, 16630948, 31070465, 6, 179, 106}, -1},
		{"no trailing spaces", "Active connections: 1\nserver accepts handled requests\n 2 3 4\nReading: 0 Writing: 1 Waiting: 0\n", StubStatus{1, 2, 3, 4, 0, 1, 0}, -1},
		{"CRLF", "Active connections: 1 \r\nserver accepts handled requests\r\n 2 3 4 \r\nReading: 0 Writing: 1 Waiting: 0 \r\n", StubStatus{1, 2, 3, 4, 0, 1, 0}, -1},
		{"html", "<html><body>502 Bad Gateway</body></html>", StubStatus{}, 0},
		{"empty", "", StubStatus{}, 0},
		{"bad active", "Active connections: x\nserver accepts handled requests\n 2 3 4\nReading: 0 Writing: 1 Waiting: 0\n", StubStatus{}, 1},
		{"bad header", "Active connections: 1\nserver accepts requests\n 2 3 4\nReading: 0 Writing: 1 Waiting: 0\n", StubStatus{}, 2},
		{"two counts", "Active connections: 1\nserver accepts handled requests\n 2 3\nReading: 0 Writing: 1 Waiting: 0\n", StubStatus{}, 3},
		{"negative", "Active connections: 1\nserver accepts handled requests\n 2 -3 4\nReading: 0 Writing: 1 Waiting: 0\n", StubStatus{}, 3},
		{"bad states", "Active connections: 1\nserver accepts handled requests\n 2 3 4\nReading: 0 Writing: 1 Idle: 0\n", StubStatus{}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStubStatus([]byte(tc.in))
			if tc.errLine < 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrParse) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tc.errLine {
				t.Fatalf("error on line %d, want %d: %v", pe.Line, tc.errLine, err)
			}
		})
	}
}

func TestParseInfo(t *testing.T) {
	fixture, err := os.ReadFile("testdata/redis-7.0-info.txt")
	if err != nil {
		t.Fatal(err)
	}
	fields, err := ParseInfo(string(fixture))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]InfoField{}
	for _, f := range fields {
		found[f.Key] = f
	}
	for key, want := range map[string]InfoField{
		"redis_version":     {"Server", "redis_version", "7.0.15"},
		"connected_clients": {"Clients", "connected_clients", "1"},
		"db3":               {"Keyspace", "db3", "keys=1,expires=0,avg_ttl=0"},
		"cmdstat_get":       {"Commandstats", "cmdstat_get", "calls=1,usec=4,usec_per_call=4.00,rejected_calls=0,failed_calls=0"},
	} {
		if found[key] != want {
			t.Errorf("%s: got %+v, want %+v", key, found[key], want)
		}
	}

	for _, tc := range []struct {
		name, in string
		line     int
	}{
		{"no colon", "# Server\r\nredis_version:7\r\ngarbage\r\n", 3},
		{"space in key", "a b:1\n", 1},
		{"empty key", ":1\n", 1},
		{"nothing", "\r\n\r\n", 0},
		{"html", "<html>", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInfo(tc.in)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != tc.line {
				t.Fatalf("err = %v, want a *ParseError on line %d", err, tc.line)
			}
		})
	}
}

func FuzzParseStubStatus(f *testing.F) {
	good, _ := os.ReadFile("testdata/stub_status.txt")
	f.Add(good)
	f.Add([]byte("Active connections: 1\nserver accepts handled requests\n 2 3 4\nReading: 0 Writing: 1 Waiting: 0\n"))
	f.Add([]byte("<html>"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStubStatus(b)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v is not ErrParse", err)
			}
			return
		}
		for _, v := range []int64{s.Active, s.Accepted, s.Handled, s.Requests, s.Reading, s.Writing, s.Waiting} {
			if v < 0 {
				t.Fatalf("negative count in %+v", s)
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	fixture, _ := os.ReadFile("testdata/redis-7.0-info.txt")
	f.Add(string(fixture))
	f.Add("# Keyspace\r\ndb0:keys=1,expires=0\r\n")
	f.Add("# Commandstats\r\ncmdstat_get:calls=x\r\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := ParseInfo(s)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v is not ErrParse", err)
			}
			return
		}
		for _, fl := range fields {
			if fl.Key == "" || strings.ContainsAny(fl.Key, " \t\n") {
				t.Fatalf("bad key %q", fl.Key)
			}
		}
		// The metric extraction must not panic on anything the parser
		// accepts, and must fail only with ErrParse.
		e := &emitter{t: newTarget(srcRedis, "fuzz", nil, newShared(discardLogger(), 0))}
		if err := redisInfoMetrics(e, fields); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("extraction error %v is not ErrParse", err)
		}
	})
}
