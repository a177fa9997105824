package timestamp

import (
	"errors"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParse(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	berlin := mustLoc(t, "Europe/Berlin")
	tests := []struct {
		name   string
		in     string
		loc    *time.Location
		want   string
		format Format
	}{
		{"rfc3339 Z", "2024-01-02T03:04:05Z", nil, "2024-01-02T03:04:05.000000000Z", RFC3339},
		{"rfc3339 nanos kept", "2024-01-02T03:04:05.123456789Z", nil, "2024-01-02T03:04:05.123456789Z", RFC3339},
		{"rfc3339 extra digits dropped", "2024-01-02T03:04:05.1234567891Z", nil, "2024-01-02T03:04:05.123456789Z", RFC3339},
		{"rfc3339 offset", "2024-01-02T03:04:05.5+02:00", nil, "2024-01-02T01:04:05.500000000Z", RFC3339},
		{"rfc3339 negative offset", "2024-01-02T23:04:05-05:30", nil, "2024-01-03T04:34:05.000000000Z", RFC3339},
		{"iso compact offset", "2024-01-02T03:04:05+0100", nil, "2024-01-02T02:04:05.000000000Z", RFC3339},
		{"iso hour offset", "2024-01-02T03:04:05+01", nil, "2024-01-02T02:04:05.000000000Z", RFC3339},
		{"iso space no zone", "2024-01-02 03:04:05", nil, "2024-01-02T03:04:05.000000000Z", RFC3339},
		{"no zone uses default tz", "2024-07-02 03:04:05", berlin, "2024-07-02T01:04:05.000000000Z", RFC3339},
		{"log4j comma millis", "2024-01-02 03:04:05,678", nil, "2024-01-02T03:04:05.678000000Z", RFC3339},
		{"log4j default tz winter", "2024-01-02 03:04:05,678", berlin, "2024-01-02T02:04:05.678000000Z", RFC3339},
		{"go log slashes", "2024/01/02 03:04:05.000123", nil, "2024-01-02T03:04:05.000123000Z", RFC3339},
		{"leap second", "2016-12-31T23:59:60Z", nil, "2016-12-31T23:59:59.999999999Z", RFC3339},
		{"syslog 3164 this year", "Mar  9 10:11:12", nil, "2024-03-09T10:11:12.000000000Z", Syslog},
		{"syslog 3164 two-digit day", "Feb 29 10:11:12", nil, "2024-02-29T10:11:12.000000000Z", Syslog},
		{"syslog 3164 last year", "Dec 31 23:59:59", nil, "2023-12-31T23:59:59.000000000Z", Syslog},
		{"syslog 3164 tomorrow is this year", "Mar 11 01:00:00", nil, "2024-03-11T01:00:00.000000000Z", Syslog},
		{"syslog 3164 tz", "Mar  9 10:11:12", berlin, "2024-03-09T09:11:12.000000000Z", Syslog},
		{"syslog fraction", "Mar  9 10:11:12.250", nil, "2024-03-09T10:11:12.250000000Z", Syslog},
		{"clf", "10/Oct/2000:13:55:36 -0700", nil, "2000-10-10T20:55:36.000000000Z", CLF},
		{"clf utc", "02/Jan/2024:03:04:05 +0000", nil, "2024-01-02T03:04:05.000000000Z", CLF},
		{"clf no zone", "02/Jan/2024:03:04:05", berlin, "2024-01-02T02:04:05.000000000Z", CLF},
		{"epoch s", "1704164645", nil, "2024-01-02T03:04:05.000000000Z", EpochSeconds},
		{"epoch s fraction", "1704164645.123456", nil, "2024-01-02T03:04:05.123456000Z", EpochSeconds},
		{"epoch ms", "1704164645123", nil, "2024-01-02T03:04:05.123000000Z", EpochMillis},
		{"epoch ms fraction", "1704164645123.5", nil, "2024-01-02T03:04:05.123500000Z", EpochMillis},
		{"epoch us", "1704164645123456", nil, "2024-01-02T03:04:05.123456000Z", EpochMicros},
		{"epoch ns", "1704164645123456789", nil, "2024-01-02T03:04:05.123456789Z", EpochNanos},
		{"epoch zero", "0", nil, "1970-01-01T00:00:00.000000000Z", EpochSeconds},
		{"surrounding space", "  2024-01-02T03:04:05Z ", nil, "2024-01-02T03:04:05.000000000Z", RFC3339},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Parser{Location: tt.loc, Now: func() time.Time { return now }}
			got, f, err := p.Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if s := string(Append(nil, got)); s != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.in, s, tt.want)
			}
			if f != tt.format {
				t.Errorf("Parse(%q) format = %v, want %v", tt.in, f, tt.format)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "hello", "2024-13-02T03:04:05Z", "2024-02-30T03:04:05Z", "2023-02-29 00:00:00",
		"2024-01-02T25:04:05Z", "2024-01-02T03:60:05Z", "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05+2",
		"2024-01-02T03:04:05+25:00", "2024-01-02X03:04:05", "2024-01-02T03:04:05Z trailing",
		"Foo  9 10:11:12", "Mar 32 10:11:12", "Mar  9 10:11", "10/Foo/2000:13:55:36 -0700",
		"10/Oct/2000 13:55:36", "12345678901234567890", "1.2.3", "-5", "1704164645.", "0x10",
	} {
		t.Run(in, func(t *testing.T) {
			var p Parser
			got, _, err := p.Parse([]byte(in))
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", in, got)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) error %v is not ErrSyntax", in, err)
			}
		})
	}
}

func TestPrefixLengths(t *testing.T) {
	var p Parser
	tests := []struct {
		name string
		fn   func([]byte) (time.Time, int, error)
		in   string
		n    int
	}{
		{"rfc3339 then text", p.ParseRFC3339Prefix, "2024-01-02T03:04:05.123Z INFO hi", 24},
		{"log4j then text", p.ParseRFC3339Prefix, "2024-01-02 03:04:05,123 INFO [main] x - hi", 23},
		{"syslog then host", p.ParseSyslogPrefix, "Jan  2 03:04:05 host app: hi", 15},
		{"clf then bracket", p.ParseCLFPrefix, "10/Oct/2000:13:55:36 -0700] \"GET", 26},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := tt.fn([]byte(tt.in))
			if err != nil || n != tt.n {
				t.Fatalf("prefix of %q: n=%d err=%v, want n=%d", tt.in, n, err, tt.n)
			}
		})
	}
}

func TestAppendMatchesStdlib(t *testing.T) {
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 1, 2, 3, 4, time.FixedZone("x", 3600)), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := tm.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
		if got := string(Append(nil, tm)); got != want {
			t.Errorf("Append(%v) = %s, want %s", tm, got, want)
		}
	}
	if got := string(Append(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))); got != "10000-01-01T00:00:00Z" {
		t.Errorf("year 10000: %s", got)
	}
}

func TestAllocs(t *testing.T) {
	var p Parser
	in := []byte("2024-01-02 03:04:05,678")
	buf := make([]byte, 0, 64)
	n := testing.AllocsPerRun(100, func() {
		tm, _, _ := p.Parse(in)
		buf = Append(buf[:0], tm)
	})
	if n != 0 {
		t.Errorf("Parse+Append allocates %v times, want 0", n)
	}
}

// FuzzParse checks that no input panics, and that whatever parses
// round-trips through Append and Parse to the same instant.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"2024-01-02T03:04:05.123456789Z", "2024-01-02 03:04:05,678", "2024/01/02 03:04:05",
		"2024-01-02T03:04:05+05:30", "Jan  2 03:04:05", "Feb 29 00:00:00.5", "10/Oct/2000:13:55:36 -0700",
		"1704164645", "1704164645123", "1704164645123456", "1704164645123456789", "1704164645.5", "",
		"9999999999999999999", "2016-12-31T23:59:60Z",
	} {
		f.Add(s)
	}
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		p := &Parser{Now: func() time.Time { return now }}
		tm, _, err := p.Parse([]byte(s))
		if err != nil {
			return
		}
		out := Append(nil, tm)
		back, _, err := p.Parse(out)
		if err != nil {
			if tm.Year() > 9999 || tm.Year() < 0 {
				return
			}
			t.Fatalf("Parse(%q) = %s, which does not parse back: %v", s, out, err)
		}
		if !back.Equal(tm) {
			t.Fatalf("Parse(%q) = %s, parses back as %s", s, out, Append(nil, back))
		}
	})
}

func FuzzPrefixes(f *testing.F) {
	f.Add("2024-01-02T03:04:05Z rest")
	f.Add("Jan  2 03:04:05 host")
	f.Add("10/Oct/2000:13:55:36 -0700]")
	f.Fuzz(func(t *testing.T, s string) {
		var p Parser
		b := []byte(s)
		for _, fn := range []func([]byte) (time.Time, int, error){p.ParseRFC3339Prefix, p.ParseSyslogPrefix, p.ParseCLFPrefix} {
			if _, n, err := fn(b); err == nil && (n <= 0 || n > len(b)) {
				t.Fatalf("prefix of %q: n=%d out of range", s, n)
			}
		}
		ParseEpoch(b)
	})
}

func BenchmarkParseLog4j(b *testing.B) {
	var p Parser
	in := []byte("2024-01-02 03:04:05,678")
	buf := make([]byte, 0, 64)
	for b.Loop() {
		tm, _, _ := p.Parse(in)
		buf = Append(buf[:0], tm)
	}
}
