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
	"net/http"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/store"
)

// verbs are the command-line verbs of `podkit queue`, for people.
func verbs() []cli.Verb {
	return []cli.Verb{
		{Name: "stat", Synopsis: "[--server URL] [--json] [QUEUE...]",
			Summary: "show queues' counts and rates: the QUEUEs named, or every queue", Setup: verbSetup("stat")},
		{Name: "push", Synopsis: "[--server URL] [--queue NAME] [--raw] [--batch N] [FILE|-]",
			Summary: "enqueue items from NDJSON, one item object per line (with --raw, one payload per line), read from FILE or stdin; a bad line is reported with its line number and the others are pushed; exit 1 if any line failed",
			Setup:   verbSetup("push")},
		{Name: "ls", Synopsis: "[--server URL] [--queue NAME] [--state STATE] [--limit N] [--json]",
			Summary: "list a queue's items in id order", Setup: verbSetup("ls")},
		{Name: "replay", Synopsis: "[--server URL] [--queue NAME] [ID...]",
			Summary: "move dead items back to ready: the IDs given, or every dead item", Setup: verbSetup("replay")},
	}
}

// verbSetup registers the flags of `podkit queue <name>` and returns the
// verb's runner.
func verbSetup(name string) func(fs *flag.FlagSet) cli.Runner {
	return func(fs *flag.FlagSet) cli.Runner {
		server := fs.String("server", "http://127.0.0.1:8080", "the coordinator's `URL` (http:// or https://)")
		var creds container.APIClient
		creds.RegisterFlags(fs, "", "the queue")
		var queue *string
		if name != "stat" {
			queue = fs.String("queue", "default", "the queue's `NAME`")
		}
		var state *string
		var limit *int
		var asJSON *bool
		var raw *bool
		var batch *int
		switch name {
		case "ls":
			state = fs.String("state", "", "only items in this `STATE`: ready, delayed, leased, done, dead or cancelled (\"\": any)")
			limit = fs.Int("limit", 100, "list at most `N` items")
			asJSON = fs.Bool("json", false, "print one JSON item per line")
		case "stat":
			asJSON = fs.Bool("json", false, "print a JSON array of the queues' counts")
		case "push":
			raw = fs.Bool("raw", false, "each line is a bare payload, not an item object")
			batch = fs.Int("batch", 500, "send `N` items per request")
		}
		return func(ctx context.Context, pos []string, stdio cli.IO) error {
			if _, _, err := client.ParseQueueURL(strings.TrimRight(*server, "/") + "/queues/x"); err != nil {
				return cli.Usagef("--server %q: want http://host:port or https://host:port", *server)
			}
			if err := client.CheckTLS("--server", *server, creds.CAFile != "" || creds.CertFile != ""); err != nil {
				return cli.Usagef("%v", err)
			}
			if err := creds.Validate(""); err != nil {
				return err
			}
			if queue != nil {
				if err := store.ValidQueueName(*queue); err != nil {
					return cli.Usagef("--queue: %s", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
				}
			}
			rt, err := creds.Transport(client.DefaultTransport(4))
			if err != nil {
				return err
			}
			c := client.New(*server, &http.Client{Transport: rt})
			return explainRefusal(func() error {
				switch name {
				case "stat":
					return cliStat(ctx, c, pos, *asJSON, stdio.Stdout)
				case "push":
					if *batch < 1 || *batch > 10000 {
						return cli.Usagef("--batch: %d is not from 1 to 10000", *batch)
					}
					return cliPush(ctx, c, *queue, pos, *raw, *batch, stdio)
				case "ls":
					if len(pos) > 0 {
						return cli.Usagef("unexpected argument %q (ls takes flags only)", pos[0])
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
				return cli.Usagef("unknown verb %q", name)
			}())
		}
	}
}

// explainRefusal adds to a 401 or 403 from the coordinator what to give
// it: a credential with the role the request needed.
func explainRefusal(err error) error {
	var ae *client.Error
	if !errors.As(err, &ae) || (ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden) {
		return err
	}
	roles := strings.Join(ae.NeededRoles(), " or ")
	if roles == "" {
		roles = "the one this request needs"
	}
	return fmt.Errorf("%w; use a token (--token-file FILE) or a client certificate (--cert FILE --key FILE) with role %s", err, roles)
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

// lineNumber matches the coordinator's "line N: " prefix of a batch
// item's error: N counts lines of its request body, not of the file.
var lineNumber = regexp.MustCompile(`^line [0-9]+: `)

// cliPush sends NDJSON lines in batches, with a progress bar on a
// terminal. Each line stands alone: a line that is not JSON (or, without
// --raw, not a JSON object) and an item the queue refuses are reported
// with the line's number and the others are pushed; the summary is
// printed and the error returned (exit 1) at the end.
func cliPush(ctx context.Context, c *client.Client, queue string, args []string, raw bool, batch int, stdio cli.IO) error {
	if len(args) > 1 {
		return cli.Usagef("push takes one FILE (or - for stdin), got %d: %q", len(args), args)
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
	report := func(line int, format string, a ...any) {
		if bar != nil {
			bar.clear()
		}
		fmt.Fprintf(stdio.Stderr, "%s:%d: %s\n", name, line, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	var (
		pending                []pendingLine
		line                   int
		read                   int64
		items, sent            int
		created, dups, refused int
		invalid                int
	)
	summary := func() {
		if bar != nil {
			bar.clear()
		}
		fmt.Fprintf(stdio.Stdout, "%s: %d item line(s) to %q: %d new, %d duplicate, %d refused by the queue, %d not valid\n",
			name, items, queue, created, dups, refused, invalid)
	}
	// send enqueues lines in one request. A request the queue refuses as a
	// whole (its body too large, or a line it cannot read) is split in
	// two until each part goes through or is one line, refused alone.
	var send func(lines []pendingLine) error
	send = func(lines []pendingLine) error {
		var body bytes.Buffer
		for _, l := range lines {
			body.Write(l.data)
			body.WriteByte('\n')
		}
		res, err := c.EnqueueRaw(ctx, queue, body.Bytes())
		if err == nil && len(res) != len(lines) {
			err = fmt.Errorf("%d answers for %d items", len(res), len(lines))
		}
		var ae *client.Error
		if errors.As(err, &ae) && (ae.Status == http.StatusRequestEntityTooLarge || ae.Status == http.StatusBadRequest) {
			if len(lines) == 1 {
				refused++
				report(lines[0].n, "refused (%d): %s", ae.Status, lineNumber.ReplaceAllString(ae.Msg, ""))
				return nil
			}
			half := len(lines) / 2
			if err := send(lines[:half]); err != nil {
				return err
			}
			return send(lines[half:])
		}
		if err != nil {
			return fmt.Errorf("%s: lines %d-%d: %w (lines from %d on were not sent)", name, lines[0].n, lines[len(lines)-1].n, err, lines[0].n)
		}
		for i, r := range res {
			switch {
			case r.Status == 201:
				created++
			case r.Status == 200:
				dups++
			default:
				refused++
				report(lines[i].n, "refused (%d): %s", r.Status, lineNumber.ReplaceAllString(r.Error, ""))
			}
		}
		return nil
	}
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := send(pending); err != nil {
			return err
		}
		sent += len(pending)
		pending = pending[:0]
		if bar != nil {
			bar.show(sent, read)
		}
		return nil
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		read += int64(len(b)) + 1
		t := bytes.TrimSpace(b)
		if len(t) == 0 {
			continue
		}
		items++
		var v json.RawMessage
		if err := json.Unmarshal(t, &v); err != nil {
			invalid++
			if raw {
				report(line, "not JSON (%v)", err)
			} else {
				report(line, "not JSON (%v): want one item object per line, e.g. {\"payload\": ...} (or --raw for bare payloads)", err)
			}
			continue
		}
		var data []byte
		if raw {
			data = append(append(append(data, `{"payload":`...), t...), '}')
		} else {
			if t[0] != '{' {
				invalid++
				report(line, "not a JSON object: want one item object per line, e.g. {\"payload\": ...} (or --raw for bare payloads)")
				continue
			}
			data = append(data, t...)
		}
		pending = append(pending, pendingLine{n: line, data: data})
		if len(pending) >= batch {
			if err := flush(); err != nil {
				summary()
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		summary()
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if err := flush(); err != nil {
		summary()
		return err
	}
	summary()
	if failed := refused + invalid; failed > 0 {
		return fmt.Errorf("%d of %d item line(s) failed", failed, items)
	}
	return nil
}

// pendingLine is an item line waiting to be sent.
type pendingLine struct {
	n    int // line number in the input
	data []byte
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
