package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// durComponent's effective configuration has durations in every shape a
// component's Config may hold them.
type durComponent struct{ httpComponent }

type durInner struct {
	Period time.Duration `json:"period"`
}

type DurEmbedded struct {
	Backoff time.Duration `json:"backoff"`
}

type durConfig struct {
	DurEmbedded
	Listen   string                   `json:"listen"`
	Timeout  time.Duration            `json:"timeout"`
	Zero     time.Duration            `json:"zero"`
	Omitted  time.Duration            `json:"omitted,omitempty"`
	Ptr      *time.Duration           `json:"ptr"`
	NilPtr   *time.Duration           `json:"nil_ptr"`
	List     []time.Duration          `json:"list"`
	ByName   map[string]time.Duration `json:"by_name"`
	Inner    durInner                 `json:"inner"`
	Inners   []durInner               `json:"inners"`
	Any      any                      `json:"any"`
	Password Secret                   `json:"password"`
	Count    int64                    `json:"count"`
	Hidden   time.Duration            `json:"-"`
	private  time.Duration
}

func (c *durComponent) EffectiveConfig() any {
	d := 1500 * time.Millisecond
	return durConfig{
		DurEmbedded: DurEmbedded{Backoff: time.Minute},
		Listen:      "127.0.0.1:1",
		Timeout:     5 * time.Second,
		Ptr:         &d,
		List:        []time.Duration{time.Millisecond, 2 * time.Hour},
		ByName:      map[string]time.Duration{"a": 3 * time.Second},
		Inner:       durInner{Period: 250 * time.Millisecond},
		Inners:      []durInner{{Period: time.Second}},
		Any:         map[string]any{"deep": 42 * time.Second},
		Password:    "s3cret",
		Count:       5000000000,
		Hidden:      time.Second,
		private:     time.Second,
	}
}

// TestInfoDurations: /info shows every time.Duration, in the contract's
// options and anywhere in a component's effective configuration, as a Go
// duration string ("5s"), not nanoseconds; everything else is encoded as
// encoding/json would.
func TestInfoDurations(t *testing.T) {
	c := &durComponent{httpComponent{ln: testListen(t), release: make(chan struct{})}}
	adm := testListen(t)
	o := DefaultOptions()
	o.AdminListener = adm
	o.DrainDelay = 0
	o.WaitTimeout = 90 * time.Second
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, o) }()
	defer func() { cancel(); <-done }()

	var resp *http.Response
	testdeps.WaitFor(t, "the admin listener", func() bool {
		var err error
		resp, err = http.Get("http://" + adm.Addr().String() + "/info")
		return err == nil
	})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var info struct {
		Contract map[string]any `json:"contract"`
		Config   map[string]any `json:"config"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("/info is not JSON: %v\n%s", err, body)
	}
	got := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	checks := []struct {
		name string
		v    any
		want string
	}{
		{"contract drain_delay", info.Contract["drain_delay"], `"0s"`},
		{"contract drain_timeout", info.Contract["drain_timeout"], `"30s"`},
		{"contract wait_timeout", info.Contract["wait_timeout"], `"1m30s"`},
		{"embedded", info.Config["backoff"], `"1m0s"`},
		{"field", info.Config["timeout"], `"5s"`},
		{"zero", info.Config["zero"], `"0s"`},
		{"pointer", info.Config["ptr"], `"1.5s"`},
		{"nil pointer", info.Config["nil_ptr"], `null`},
		{"slice", info.Config["list"], `["1ms","2h0m0s"]`},
		{"map", info.Config["by_name"], `{"a":"3s"}`},
		{"nested struct", info.Config["inner"], `{"period":"250ms"}`},
		{"slice of structs", info.Config["inners"], `[{"period":"1s"}]`},
		{"interface", info.Config["any"], `{"deep":"42s"}`},
		{"secret still redacted", info.Config["password"], `"[redacted]"`},
		{"other numbers untouched", info.Config["count"], `5000000000`},
		{"listen", info.Config["listen"], `"127.0.0.1:1"`},
	}
	for _, c := range checks {
		if g := got(c.v); g != c.want {
			t.Errorf("%s: %s, want %s", c.name, g, c.want)
		}
	}
	for _, absent := range []string{"omitted", "Hidden", "private", "DurEmbedded"} {
		if _, ok := info.Config[absent]; ok {
			t.Errorf("config has %q, which encoding/json would leave out", absent)
		}
	}
	// Field order is the struct's, as encoding/json writes it.
	if i, j := bytes.Index(body, []byte(`"backoff"`)), bytes.Index(body, []byte(`"listen"`)); i < 0 || j < 0 || i > j {
		t.Errorf("fields out of order:\n%s", body)
	}
}

// TestLogDurations: duration attributes are logged as "5s" in both formats
// (slog's JSON handler alone would write nanoseconds).
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := NewLogger(&buf, format, "info")
			if err != nil {
				t.Fatal(err)
			}
			l.With("base", time.Minute).Info("x", "drain_delay", 5*time.Second, slog.Group("g", "period", 250*time.Millisecond))
			if format == "json" {
				// encoding/json writes other values: a struct with a duration.
				l.Info("y", "cfg", durInner{Period: 90 * time.Second}, "err", errors.New("e"))
			}
			out := buf.String()
			wants := []string{"1m0s", "drain_delay", "5s", "250ms"}
			if format == "json" {
				wants = append(wants, `"cfg":{"period":"1m30s"}`, `"err":"e"`)
			}
			for _, want := range wants {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q: %s", want, out)
				}
			}
			if strings.Contains(out, "5000000000") || strings.Contains(out, "250000000") || strings.Contains(out, "90000000000") {
				t.Errorf("log has nanoseconds: %s", out)
			}
		})
	}
}

type ptrMarshaler struct{ N int }

func (p *ptrMarshaler) MarshalJSON() ([]byte, error) { return []byte(`"custom"`), nil }

type textKey int

func (k textKey) MarshalText() ([]byte, error) { return []byte("k" + string(rune('0'+int(k)))), nil }

type Shadowed struct {
	Name  string `json:"name"`
	Inner int
	Tie   int
}

type OtherTie struct{ Tie int }

// exotic has no duration, but its interface field makes humanDurations walk
// it: the result must encode exactly as encoding/json encodes the original.
type exotic struct {
	Shadowed
	*OtherTie
	Name     string           `json:"name"`
	Any      any              `json:"any"`
	Omit     string           `json:"omit,omitempty"`
	OmitPtr  *int             `json:"omit_ptr,omitempty"`
	Num      int64            `json:"num,string"`
	Custom   ptrMarshaler     `json:"custom"`
	Keys     map[textKey]any  `json:"keys"`
	IntKeys  map[int]string   `json:"int_keys"`
	NilSlice []any            `json:"nil_slice"`
	Bytes    []byte           `json:"bytes"`
	Nested   map[string][]any `json:"nested"`
	HTML     string           `json:"html"`
	Untagged float64
	Skip     int `json:"-"`
	hidden   int
}

func TestHumanDurationsKeepsEncodingJSON(t *testing.T) {
	x := exotic{
		Shadowed: Shadowed{Name: "inner", Inner: 1, Tie: 2},
		OtherTie: &OtherTie{Tie: 3},
		Name:     "outer",
		Any:      map[string]any{"a": []any{1, "two", nil}},
		Num:      42,
		Keys:     map[textKey]any{1: "one", 2: nil},
		IntKeys:  map[int]string{3: "three", 1: "one"},
		Bytes:    []byte("raw"),
		Nested:   map[string][]any{"x": {true}},
		HTML:     "<a&b>",
		Untagged: 1.5,
		Skip:     9,
		hidden:   7,
	}
	want, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(humanDurations(x))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("humanDurations changed the encoding:\n got %s\nwant %s", got, want)
	}
	// A value with no possible duration is passed through untouched.
	type plain struct{ A int }
	if v := humanDurations(plain{1}); v != (plain{1}) {
		t.Errorf("plain value rewritten: %#v", v)
	}
}

type unexportedEmbed struct {
	Every time.Duration `json:"every"`
	Names []string      `json:"names"`
}

// TestHumanDurationsUnexportedEmbedded: encoding/json promotes the
// exported fields of an embedded unexported struct type; so does /info.
func TestHumanDurationsUnexportedEmbedded(t *testing.T) {
	type cfg struct {
		unexportedEmbed
		Listen string `json:"listen"`
	}
	v := cfg{unexportedEmbed{Every: 2 * time.Second, Names: []string{"a"}}, "x"}
	got, err := json.Marshal(humanDurations(v))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"every":"2s","names":["a"],"listen":"x"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// cyclic holds a duration and can point back at itself.
type cyclic struct {
	Every time.Duration `json:"every"`
	Next  *cyclic       `json:"next"`
}

// TestHumanDurationsCycle: a value that points back at itself is left to
// encoding/json, which reports the cycle as an error, instead of the
// rewrite recursing until the stack overflows and the process dies.
func TestHumanDurationsCycle(t *testing.T) {
	c := &cyclic{Every: time.Second}
	c.Next = c
	_, err := json.Marshal(humanDurations(c))
	var ue *json.UnsupportedValueError
	if !errors.As(err, &ue) {
		t.Fatalf("json.Marshal(humanDurations(cycle)) = %v, want encoding/json's cycle error", err)
	}
	// A finite chain keeps its durations readable at every level.
	d := &cyclic{Every: time.Second, Next: &cyclic{Every: 2 * time.Minute}}
	got, err := json.Marshal(humanDurations(d))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"every":"1s","next":{"every":"2m0s","next":null}}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
