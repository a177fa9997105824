package parse

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/adapter/logs/timestamp"
)

func newParser(formats ...Format) *Parser {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	return &Parser{Formats: formats, Time: timestamp.Parser{Now: func() time.Time { return now }}}
}

// summary renders a Record compactly for comparison.
func summary(r *Record) string {
	var b strings.Builder
	if r.HasTime {
		b.Write(timestamp.Append(nil, r.Time))
	} else {
		b.WriteString("-")
	}
	fmt.Fprintf(&b, " %s %s body=%q", r.Format, r.Severity, r.Body)
	var attrs []string
	for _, a := range r.Attrs {
		attrs = append(attrs, fmt.Sprintf("%s=%s", a.Key, a.Value))
	}
	sort.Strings(attrs)
	if len(attrs) > 0 {
		b.WriteString(" " + strings.Join(attrs, " "))
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"json slog", `{"time":"2024-01-02T03:04:05.123456789+01:00","level":"WARN","msg":"disk low","free":12,"path":"/var"}`,
			`2024-01-02T02:04:05.123456789Z json WARN body="\"disk low\"" free=12 path="/var"`},
		{"json zap epoch", `{"level":"error","ts":1704164645.5,"caller":"a.go:1","msg":"boom","err":{"x":[1,2]}}`,
			`2024-01-02T03:04:05.500000000Z json ERROR body="\"boom\"" caller="a.go:1" err={"x":[1,2]}`},
		{"json pino numeric level", `{"level":30,"time":1704164645123,"msg":"hi"}`,
			`2024-01-02T03:04:05.123000000Z json INFO body="\"hi\""`},
		{"json bad time kept", `{"time":"yesterday","message":"m"}`, `- json UNSPECIFIED body="\"m\"" time="yesterday"`},
		{"json unknown level kept", `{"level":"chatty","message":"m"}`, `- json UNSPECIFIED body="\"m\"" level="chatty"`},
		{"json no message", `{"a":true,"b":null}`, `- json UNSPECIFIED body="" a=true b=null`},
		{"json escaped key stays attribute", `{"ms\u0067":"x"}`, `- json UNSPECIFIED body="" ms\u0067="x"`},
		{"logfmt", `time=2024-01-02T03:04:05Z level=debug msg="cache miss \"k\"" key=k1 hit`,
			`2024-01-02T03:04:05.000000000Z logfmt DEBUG body="cache miss \"k\"" hit=true key=k1`},
		{"clf", `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
			`2000-10-10T20:55:36.000000000Z clf INFO body="127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326" client.address=127.0.0.1 http.request.method=GET http.response.body.size=2326 http.response.status_code=200 network.protocol=HTTP/1.0 url.original=/apache_pb.gif user.name=frank`},
		{"combined", `10.0.0.9 - - [02/Jan/2024:03:04:05 +0000] "POST /api HTTP/1.1" 503 - "https://x/" "curl/8.0"`,
			`2024-01-02T03:04:05.000000000Z clf ERROR body="10.0.0.9 - - [02/Jan/2024:03:04:05 +0000] \"POST /api HTTP/1.1\" 503 - \"https://x/\" \"curl/8.0\"" client.address=10.0.0.9 http.request.header.referer=https://x/ http.request.method=POST http.response.status_code=503 network.protocol=HTTP/1.1 url.original=/api user_agent.original=curl/8.0`},
		{"log4j", `2024-01-02 03:04:05,678 ERROR [main] com.example.App - request failed`,
			`2024-01-02T03:04:05.678000000Z log4j ERROR body="request failed" logger.name=com.example.App thread.name=main`},
		{"log4j with trace", "2024-01-02 03:04:05,678 ERROR [main] com.example.App - failed\njava.lang.X: y\n\tat a.b(C.java:1)",
			`2024-01-02T03:04:05.678000000Z log4j ERROR body="failed\njava.lang.X: y\n\tat a.b(C.java:1)" logger.name=com.example.App thread.name=main`},
		{"logback", `2024-01-02 03:04:05.678 [http-nio-8080-exec-1] WARN  o.a.c.Foo - slow`,
			`2024-01-02T03:04:05.678000000Z log4j WARN body="slow" logger.name=o.a.c.Foo thread.name=http-nio-8080-exec-1`},
		{"python logging", `2024-01-02 03:04:05,070 WARNING app: starting`,
			`2024-01-02T03:04:05.070000000Z log4j WARN body="starting" logger.name=app`},
		{"iso level message", `2024-01-02T03:04:05.000Z info starting up`,
			`2024-01-02T03:04:05.000000000Z log4j INFO body="starting up"`},
		{"syslog 3164", `<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8`,
			`2023-10-11T22:14:15.000000000Z syslog FATAL body="'su root' failed for lonvick on /dev/pts/8" host.name=mymachine syslog.app_name=su syslog.facility=4 syslog.procid=123`},
		{"syslog 3164 file", `Mar  9 10:11:12 host sshd: accepted`,
			`2024-03-09T10:11:12.000000000Z syslog UNSPECIFIED body="accepted" host.name=host syslog.app_name=sshd`},
		{"syslog 5424", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event`,
			`2003-10-11T22:14:15.003000000Z syslog INFO body="An application event" host.name=mymachine.example.com syslog.app_name=evntslog syslog.facility=20 syslog.msgid=ID47 syslog.structured_data=[exampleSDID@32473 iut="3" eventSource="Application"]`},
		{"syslog 5424 nil fields", `<14>1 - - - - - - hello`, `- syslog INFO body="hello" syslog.facility=1`},
		{"plain text", `just some words`, `- none UNSPECIFIED body="just some words"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			_, err := newParser().Parse([]byte(tt.in), &r)
			if err != nil && tt.name != "plain text" {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := summary(&r); got != tt.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFailures(t *testing.T) {
	tests := []struct {
		name    string
		formats []Format
		in      string
		want    Format
	}{
		{"truncated json", []Format{JSON}, `{"a":1`, JSON},
		{"json trailing garbage", []Format{JSON}, `{"a":1} x`, JSON},
		{"json bad number", []Format{JSON}, `{"a":01}`, JSON},
		{"json invalid utf8", []Format{JSON}, "{\"a\":\"\xff\"}", JSON},
		{"log4j without level", []Format{Log4j}, `2024-01-02 03:04:05,678 hello world`, Log4j},
		{"clf bad status", []Format{CLF}, `h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 2000 1`, CLF},
		{"logfmt unterminated quote", []Format{Logfmt}, `a="b`, Logfmt},
		{"syslog bad pri", []Format{Syslog}, `<999>1 - - - - - - x`, Syslog},
		{"nothing matches", []Format{JSON, CLF}, `hello`, None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			f, err := newParser(tt.formats...).Parse([]byte(tt.in), &r)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want an error", tt.in, summary(&r))
			}
			if f != tt.want {
				t.Errorf("failed format %v, want %v", f, tt.want)
			}
			if string(r.Body) != tt.in {
				t.Errorf("body %q, want the whole line kept", r.Body)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]Severity{
		"TRACE": Trace, "finest": Trace, "Debug": Debug, "info": Info, "NOTICE": Info, "Information": Info,
		"warn": Warn, "WARNING": Warn, "err": Error, "SEVERE": Error, "fatal": Fatal, "crit": Fatal, "EMERG": Fatal,
	} {
		if got, ok := ParseSeverity([]byte(in)); !ok || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "x", "informative", "debugging-really-long"} {
		if _, ok := ParseSeverity([]byte(in)); ok {
			t.Errorf("ParseSeverity(%q) accepted", in)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	p := newParser(JSON, Log4j)
	var r Record
	lines := [][]byte{
		[]byte(`{"time":"2024-01-02T03:04:05Z","level":"info","msg":"hello","user":"u1","n":5}`),
		[]byte(`2024-01-02 03:04:05,678 ERROR [main] com.example.App - request failed`),
	}
	p.Parse(lines[0], &r) // warm the attribute slice
	n := testing.AllocsPerRun(200, func() {
		for _, l := range lines {
			p.Parse(l, &r)
		}
	})
	if n != 0 {
		t.Errorf("Parse allocates %v times per run, want 0", n)
	}
}

// fuzzParse runs one format over arbitrary input: no panic, slices within
// the input or scratch, attribute raw values valid JSON.
func fuzzParse(f *testing.F, format Format, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r Record
		p := newParser(format)
		if _, err := p.Parse([]byte(s), &r); err != nil {
			if string(r.Body) != s {
				t.Fatalf("failed parse lost the line: body %q", r.Body)
			}
			return
		}
		for _, a := range r.Attrs {
			if a.Kind == Raw && !json.Valid(a.Value) {
				t.Fatalf("attribute %s has raw value %q that is not JSON", a.Key, a.Value)
			}
			if a.KeyRaw && !json.Valid([]byte(`"`+string(a.Key)+`"`)) {
				t.Fatalf("raw key %q is not a JSON string", a.Key)
			}
		}
		if r.BodyJSON && !json.Valid(r.Body) {
			t.Fatalf("JSON body %q is not valid", r.Body)
		}
	})
}

func FuzzJSON(f *testing.F) {
	fuzzParse(f, JSON, `{"time":"2024-01-02T03:04:05Z","level":"info","msg":"x","a":[1,{"b":null}],"c":-1.5e3}`, `{}`, `{"a":"\u00e9\n"}`, `{"level":50}`)
}

func FuzzLogfmt(f *testing.F) {
	fuzzParse(f, Logfmt, `ts=1704164645 level=warn msg="a \"b\"" k=v flag`, `a=b`, `msg="\x41"`)
}

func FuzzCLF(f *testing.F) {
	fuzzParse(f, CLF, `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "-" "ua"`, `h i u [02/Jan/2024:03:04:05 +0000] "-" 400 -`)
}

func FuzzLog4j(f *testing.F) {
	fuzzParse(f, Log4j, "2024-01-02 03:04:05,678 ERROR [main] a.B - m\n\tat x", `2024-01-02T03:04:05Z [t] WARN x: y`)
}

func FuzzSyslog(f *testing.F) {
	fuzzParse(f, Syslog, `<34>Oct 11 22:14:15 mymachine su[1]: x`, `<165>1 2003-10-11T22:14:15.003Z h a - ID [a b="]\""] m`, `Mar  9 10:11:12 h t: m`)
}

func BenchmarkParse(b *testing.B) {
	p := newParser(JSON, Log4j)
	var r Record
	lines := [][]byte{
		[]byte(`{"time":"2024-01-02T03:04:05.123Z","level":"info","msg":"request served","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12}`),
		[]byte(`2024-01-02 03:04:05,678 ERROR [main] com.example.App - request failed for user 42`),
	}
	b.SetBytes(int64(len(lines[0]) + len(lines[1])))
	for b.Loop() {
		for _, l := range lines {
			p.Parse(l, &r)
		}
	}
}
