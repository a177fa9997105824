package container

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
)

// NewLogger returns the slog logger the contract uses: format is json, text,
// or "" (text when w is a terminal, else JSON); level is debug, info, warn
// or error.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	o := &slog.HandlerOptions{Level: lvl, ReplaceAttr: durationString}
	if format == "json" {
		o.ReplaceAttr = jsonDurations
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	}
	return nil, fmt.Errorf("log format %q is not json or text", format)
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// durationString logs a time.Duration as a person reads it ("5s"): slog's
// JSON handler alone writes nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// jsonDurations is durationString for the JSON handler, which also writes
// any other value (a struct, a slice) with encoding/json: durations inside
// it are strings too, as on /info.
func jsonDurations(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny {
		if v := a.Value.Any(); v != nil {
			if _, isErr := v.(error); !isErr && holdsDuration(reflect.TypeOf(v)) {
				a.Value = slog.AnyValue(humanDurations(v))
			}
		}
		return a
	}
	return durationString(groups, a)
}
