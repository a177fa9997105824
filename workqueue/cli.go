package workqueue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podkit/podkit/internal/cli"
	"github.com/podkit/podkit/workqueue/client"
)

var verbs = map[string]string{
	"stat":   "show queues' counts and rates: podkit queue stat --server URL [QUEUE...]",
	"push":   "enqueue items from NDJSON (a file or stdin, one item object per line): podkit queue push --server URL --queue Q [FILE|-]",
	"ls":     "list a queue's items: podkit queue ls --server URL --queue Q [--state dead] [--limit N]",
	"replay": "move dead items back to ready: podkit queue replay --server URL --queue Q [ID...] (all dead items when no ID)",
}

func isVerb(s string) bool { _, ok := verbs[s]; return ok }

// runCLI runs `podkit queue <verb> ...`.
func runCLI(ctx context.Context, verb string, args []string, stdio cli.IO) error {
	fs := flag.NewFlagSet("podkit queue "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "http://127.0.0.1:8080", "the coordinator's URL")
	var queue *string
	if verb != "stat" {
		queue = fs.String("queue", "default", "queue name")
	}
	var state *string
	var limit *int
	var asJSON *bool
	var raw *bool
	var batch *int
	switch verb {
	case "ls":
		state = fs.String("state", "", "only items in this state: ready, delayed, leased, done, dead or cancelled")
		limit = fs.Int("limit", 100, "most items to list")
		asJSON = fs.Bool("json", false, "print one JSON item per line")
	case "stat":
		asJSON = fs.Bool("json", false, "print JSON")
	case "push":
		raw = fs.Bool("raw", false, "each line is a payload, not an item object")
		batch = fs.Int("batch", 500, "items per request")
	}
	pos, err := cli.Parse(fs, args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdio.Stdout, "Usage: %s\n\nFlags:\n", verbs[verb])
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stdio.Stdout, "  --%s\n      %s (env %s, default %s)\n", f.Name, f.Usage, cli.EnvName(f.Name), f.DefValue)
		})
		return nil
	}
	if err != nil {
		return err
	}
	if _, _, err := client.ParseQueueURL(strings.TrimRight(*server, "/") + "/queues/x"); err != nil {
		return cli.Usagef("--server %q: want http://host:port", *server)
	}
	c := client.New(*server, nil)
	switch verb {
	case "stat":
		return cliStat(ctx, c, pos, *asJSON, stdio.Stdout)
	case "push":
		if *batch < 1 || *batch > 10000 {
			return cli.Usagef("--batch: %d is not from 1 to 10000", *batch)
		}
		return cliPush(ctx, c, *queue, pos, *raw, *batch, stdio)
	case "ls":
		if len(pos) > 0 {
			return cli.Usagef("unexpected argument %q", pos[0])
		}
		if *limit < 1 {
			return cli.Usagef("--limit: %d must be at least 1", *limit)
		}
		return cliList(ctx, c, *queue, *state, *limit, *asJSON, stdio.Stdout)
	case "replay":
		ids, err := c.Replay(ctx, *queue, pos)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdio.Stdout, "replayed %d item(s)\n", len(ids))
		return nil
	}
	return cli.Usagef("unknown verb %q", verb)
}

func cliStat(ctx context.Context, c *client.Client, names []string, asJSON bool, out io.Writer) error {
	var all []client.Stats
	if len(names) == 0 {
		var err error
		if all, err = c.Queues(ctx); err != nil {
			return err
		}
	}
	for _, n := range names {
		st, err := c.Stats(ctx, n)
		if err != nil {
			return fmt.Errorf("queue %q: %w", n, err)
		}
		all = append(all, st)
	}
	if asJSON {
		return json.NewEncoder(out).Encode(all)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "QUEUE\tREADY\tDELAYED\tLEASED\tDONE\tDEAD\tOLDEST READY\tENQ/S\tACK/S\tFAIL/S\t")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%.1f\t%.1f\t%.1f\t\n", s.Name, s.Ready, s.Delayed, s.Leased, s.Done, s.Dead,
			(time.Duration(s.OldestReadyAgeSeconds * float64(time.Second))).Round(time.Millisecond), s.EnqueuedPerSecond, s.AckedPerSecond, s.FailedPerSecond)
	}
	return tw.Flush()
}

func cliList(ctx context.Context, c *client.Client, queue, state string, limit int, asJSON bool, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "ID\tSTATE\tATTEMPT\tPRIORITY\tUPDATED\tPAYLOAD\tLAST ERROR")
	}
	enc := json.NewEncoder(out)
	cursor, n := "", 0
	for n < limit {
		page, err := c.List(ctx, queue, state, cursor, min(limit-n, 1000))
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if asJSON {
				enc.Encode(it)
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", it.ID, it.State, it.Attempt, it.MaxAttempts, it.Priority,
					it.Updated.Format(time.RFC3339), short(string(it.Payload), 40), short(it.LastError, 60))
			}
			n++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !asJSON {
		return tw.Flush()
	}
	return nil
}

func short(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// cliPush sends NDJSON lines in batches, with a progress bar on a
// terminal.
func cliPush(ctx context.Context, c *client.Client, queue string, args []string, raw bool, batch int, stdio cli.IO) error {
	if len(args) > 1 {
		return cli.Usagef("push takes one FILE (or - for stdin), got %d", len(args))
	}
	in := stdio.Stdin
	var total int64
	name := "stdin"
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			total = fi.Size()
		}
		in, name = f, args[0]
	}
	var bar *progress
	if f, ok := stdio.Stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			bar = &progress{w: stdio.Stderr, total: total, start: time.Now()}
		}
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	var (
		buf      bytes.Buffer
		lines    []int
		line     int
		read     int64
		sent     int
		created  int
		dups     int
		failures int
	)
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		res, err := c.EnqueueRaw(ctx, queue, buf.Bytes())
		if err != nil {
			return fmt.Errorf("%s: lines %d-%d: %w", name, lines[0], lines[len(lines)-1], err)
		}
		for i, r := range res {
			switch {
			case r.Status == 201:
				created++
			case r.Status == 200:
				dups++
			default:
				failures++
				if bar != nil {
					bar.clear()
				}
				fmt.Fprintf(stdio.Stderr, "%s:%d: refused (%d): %s\n", name, lines[i], r.Status, r.Error)
			}
		}
		sent += len(lines)
		buf.Reset()
		lines = lines[:0]
		if bar != nil {
			bar.show(sent, read)
		}
		return nil
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		read += int64(len(b)) + 1
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if raw {
			if !json.Valid(b) {
				return fmt.Errorf("%s:%d: not a JSON value", name, line)
			}
			buf.WriteString(`{"payload":`)
			buf.Write(b)
			buf.WriteString("}\n")
		} else {
			t := bytes.TrimSpace(b)
			if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
				return fmt.Errorf("%s:%d: not a JSON object (one item per line, e.g. {\"payload\": ...}; use --raw for bare payloads)", name, line)
			}
			buf.Write(t)
			buf.WriteByte('\n')
		}
		lines = append(lines, line)
		if len(lines) >= batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if bar != nil {
		bar.clear()
	}
	fmt.Fprintf(stdio.Stdout, "pushed %d item(s) to %q: %d new, %d duplicate, %d refused\n", sent, queue, created, dups, failures)
	if failures > 0 {
		return fmt.Errorf("%d item(s) refused", failures)
	}
	return nil
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w     io.Writer
	total int64
	start time.Time
}

func (p *progress) show(items int, read int64) {
	rate := float64(items) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total > 0 {
		frac := min(float64(read)/float64(p.total), 1)
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d items  %.0f/s ", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, items, rate)
		return
	}
	fmt.Fprintf(p.w, "\r%d items  %.0f/s ", items, rate)
}

func (p *progress) clear() { fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 70)) }
