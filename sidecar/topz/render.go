package topz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/podkit/podkit/container"
)

// Formats topz answers in.
const (
	FormatText = "text"
	FormatJSON = "json"
	FormatHTML = "html"
)

// Query is a parsed GET /topz query.
type Query struct {
	Sort      string // cpu (default), rss or pid
	Limit     int    // 0: all
	Format    string // "" : by Accept
	Refresh   int    // HTML auto-refresh period in seconds; 0: off
	Fresh     bool   // scan before answering
	Container string // only processes whose container id starts with this
}

// queryParams are the parameters GET /topz knows.
var queryParams = []string{"sort", "limit", "format", "refresh", "fresh", "container"}

// ParseQuery parses and checks GET /topz's query; an error names the
// parameter that is wrong.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Sort: "cpu"}
	for k := range v {
		known := false
		for _, p := range queryParams {
			known = known || k == p
		}
		if !known {
			return q, fmt.Errorf("unknown query parameter %q (known: %s)", k, strings.Join(queryParams, ", "))
		}
		if len(v[k]) > 1 {
			return q, fmt.Errorf("query parameter %q given %d times", k, len(v[k]))
		}
	}
	if s := v.Get("sort"); v.Has("sort") {
		switch s {
		case "cpu", "rss", "pid":
			q.Sort = s
		default:
			return q, fmt.Errorf("sort: %q is not cpu, rss or pid", s)
		}
	}
	if s := v.Get("limit"); v.Has("limit") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return q, fmt.Errorf("limit: %q is not a number from 1 to 1000000", s)
		}
		q.Limit = n
	}
	if s := v.Get("format"); v.Has("format") {
		switch s {
		case FormatText, FormatJSON, FormatHTML:
			q.Format = s
		default:
			return q, fmt.Errorf("format: %q is not text, json or html", s)
		}
	}
	if s := v.Get("refresh"); v.Has("refresh") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 3600 {
			return q, fmt.Errorf("refresh: %q is not a number of seconds from 0 (off) to 3600", s)
		}
		q.Refresh = n
	}
	if s := v.Get("fresh"); v.Has("fresh") {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return q, fmt.Errorf("fresh: %q is not true or false (1 or 0)", s)
		}
		q.Fresh = b
	}
	if s := v.Get("container"); v.Has("container") {
		if s == "" || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool { return r > 127 || !isHex(byte(r)) }) >= 0 {
			return q, fmt.Errorf("container: %q is not a container id or its prefix (hex digits)", s)
		}
		q.Container = s
	}
	return q, nil
}

// Negotiate picks the format for an Accept header: text/plain (also for
// no header and */*), application/json or text/html, by q-value and then by
// how specific the matching range is. ok is false when none is acceptable.
func Negotiate(accept string) (format string, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return FormatText, true
	}
	offers := []struct{ typ, sub, format string }{
		{"text", "plain", FormatText},
		{"application", "json", FormatJSON},
		{"text", "html", FormatHTML},
	}
	best, bestQ, bestSpec := "", 0.0, -1
	for _, o := range offers {
		q, spec := -1.0, -1
		for _, r := range strings.Split(accept, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
			if err != nil {
				continue
			}
			typ, sub, _ := strings.Cut(mt, "/")
			s := -1
			switch {
			case typ == o.typ && sub == o.sub:
				s = 2
			case typ == o.typ && sub == "*":
				s = 1
			case typ == "*" && sub == "*":
				s = 0
			}
			if s < spec || s < 0 {
				continue
			}
			rq := 1.0
			if v, ok := params["q"]; ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || f < 0 || f > 1 {
					continue
				}
				rq = f
			}
			q, spec = rq, s
		}
		if q > bestQ || (q == bestQ && q > 0 && spec > bestSpec) {
			best, bestQ, bestSpec = o.format, q, spec
		}
	}
	return best, best != ""
}

// containerSummary is one container among the visible processes.
type containerSummary struct {
	Container
	Processes  int     `json:"processes"`
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
}

// summarize groups processes by container id, the largest group first;
// processes without an id are not counted.
func summarize(procs []Process) []containerSummary {
	idx := map[string]int{}
	var out []containerSummary
	for _, p := range procs {
		if p.Container.ID == "" {
			continue
		}
		i, ok := idx[p.Container.ID]
		if !ok {
			i = len(out)
			idx[p.Container.ID] = i
			c := p.Container
			c.Cgroup = ""
			out = append(out, containerSummary{Container: c})
		}
		out[i].Processes++
		out[i].CPUPercent = round1(out[i].CPUPercent + p.CPUPercent)
		out[i].RSSBytes += p.RSSBytes
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Processes != out[j].Processes {
			return out[i].Processes > out[j].Processes
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// view is what every format renders.
type view struct {
	Snap       *Snapshot
	Query      Query
	Procs      []Process
	Visible    int
	Containers []containerSummary
	Warning    string
	Notes      []string
}

func newView(s *Snapshot, q Query) *view {
	v := &view{Snap: s, Query: q, Visible: len(s.Processes), Containers: summarize(s.Processes)}
	if s.OnlyOwn() {
		v.Warning = onlyOwnWarning
	}
	procs := make([]Process, 0, len(s.Processes))
	for _, p := range s.Processes {
		if q.Container == "" || strings.HasPrefix(p.Container.ID, q.Container) {
			procs = append(procs, p)
		}
	}
	sort.SliceStable(procs, func(i, j int) bool {
		a, b := procs[i], procs[j]
		switch q.Sort {
		case "cpu":
			if a.CPUPercent != b.CPUPercent {
				return a.CPUPercent > b.CPUPercent
			}
		case "rss":
			if a.RSSBytes != b.RSSBytes {
				return a.RSSBytes > b.RSSBytes
			}
		}
		return a.PID < b.PID
	})
	if q.Limit > 0 && len(procs) > q.Limit {
		procs = procs[:q.Limit]
	}
	v.Procs = procs
	v.Notes = aggregateNotes(procs)
	return v
}

// aggregateNotes folds the per-process notes into one line per note, with
// the pids it applies to.
func aggregateNotes(procs []Process) []string {
	var order []string
	pids := map[string][]string{}
	for _, p := range procs {
		for _, n := range p.Notes {
			if _, ok := pids[n]; !ok {
				order = append(order, n)
			}
			pids[n] = append(pids[n], strconv.Itoa(p.PID))
		}
	}
	out := make([]string, 0, len(order))
	for _, n := range order {
		ps := pids[n]
		more := ""
		if len(ps) > 10 {
			more = fmt.Sprintf(" and %d more", len(ps)-10)
			ps = ps[:10]
		}
		out = append(out, fmt.Sprintf("%s (pid %s%s)", n, strings.Join(ps, ", "), more))
	}
	return out
}

// roleReader is the one role of the --listen API: it may read GET /topz.
const roleReader = "reader"

// apiAccess declares who may call what on --listen, beside the routes
// Handler serves: GET /topz needs the reader role (command lines can
// carry secrets); / only redirects to /topz and is public. Any other path
// needs the role too, so a caller without one learns nothing.
func apiAccess() container.Access {
	return container.Access{
		Component: "topz",
		Subsystem: "topz",
		Roles:     []container.Role{{Name: roleReader, Help: "read GET /topz: the pod's processes and their command lines"}},
		Need: func(r *http.Request) []string {
			if r.URL.Path == "/" {
				return nil
			}
			return []string{roleReader}
		},
	}
}

// Handler serves GET /topz (and redirects / to it). It checks no
// credentials: Run serves it behind the API's security (apiAccess).
func (t *Topz) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /topz", t.serveTopz)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/topz", http.StatusFound)
	})
	return mux
}

func (t *Topz) serveTopz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Cache-Control", "no-store")
	// Errors are answered in the format the client asked for, so the
	// Accept header is looked at first.
	accepted, acceptable := Negotiate(r.Header.Get("Accept"))
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		format := accepted
		if !acceptable {
			format = FormatText
		}
		t.fail(w, format, http.StatusBadRequest, err.Error())
		return
	}
	format := q.Format
	if format == "" {
		if !acceptable {
			t.fail(w, FormatText, http.StatusNotAcceptable, fmt.Sprintf("Accept: %q: topz answers text/plain, application/json or text/html (or use ?format=)", r.Header.Get("Accept")))
			return
		}
		format = accepted
	}
	snap, err := t.Snapshot(r.Context(), q.Fresh)
	if err != nil {
		t.fail(w, format, http.StatusServiceUnavailable, "scan failed: "+err.Error())
		return
	}
	var buf bytes.Buffer
	switch format {
	case FormatJSON:
		err = renderJSON(&buf, newView(snap, q))
		w.Header().Set("Content-Type", "application/json")
	case FormatHTML:
		err = renderHTML(&buf, newView(snap, q))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	default:
		err = renderText(&buf, newView(snap, q))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	if err != nil {
		t.fail(w, format, http.StatusInternalServerError, "rendering: "+err.Error())
		return
	}
	t.requests.WithLabelValues(format, "200").Inc()
	w.Write(buf.Bytes())
}

func (t *Topz) fail(w http.ResponseWriter, format string, code int, msg string) {
	t.requests.WithLabelValues(format, strconv.Itoa(code)).Inc()
	if format == FormatJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	http.Error(w, msg, code)
}

// jsonDoc is the JSON answer.
type jsonDoc struct {
	Time          time.Time          `json:"time"`
	WindowSeconds float64            `json:"window_seconds"` // 0: CPU% is each process's average since it started
	ScanSeconds   float64            `json:"scan_seconds"`
	SelfPID       int                `json:"self_pid"`
	Visible       int                `json:"processes_visible"`
	Shown         int                `json:"processes_shown"`
	Sort          string             `json:"sort"`
	Limit         int                `json:"limit,omitempty"`
	Container     string             `json:"container,omitempty"`
	Warning       string             `json:"warning,omitempty"`
	Notes         []string           `json:"notes,omitempty"`
	ParseErrors   int                `json:"parse_errors"`
	Containers    []containerSummary `json:"containers"`
	Processes     []Process          `json:"processes"`
}

func renderJSON(w io.Writer, v *view) error {
	doc := jsonDoc{
		Time:          v.Snap.Time.UTC(),
		WindowSeconds: v.Snap.Window.Seconds(),
		ScanSeconds:   v.Snap.Took.Seconds(),
		SelfPID:       v.Snap.SelfPID,
		Visible:       v.Visible,
		Shown:         len(v.Procs),
		Sort:          v.Query.Sort,
		Limit:         v.Query.Limit,
		Container:     v.Query.Container,
		Warning:       v.Warning,
		Notes:         v.Notes,
		ParseErrors:   v.Snap.ParseErrors,
		Containers:    v.Containers,
		Processes:     v.Procs,
	}
	if doc.Containers == nil {
		doc.Containers = []containerSummary{}
	}
	if doc.Processes == nil {
		doc.Processes = []Process{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// summaryLine is the one-line summary every format starts with.
func (v *view) summaryLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s visible", plural(v.Visible, "process", "processes"))
	if len(v.Procs) != v.Visible {
		fmt.Fprintf(&b, ", %d shown", len(v.Procs))
	}
	fmt.Fprintf(&b, ", %s", plural(len(v.Containers), "container", "containers"))
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func (v *view) windowText() string {
	if v.Snap.Window <= 0 {
		return "CPU% is each process's average since it started"
	}
	return "CPU% over the last " + v.Snap.Window.String()
}

func renderText(w io.Writer, v *view) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "podkit topz: %s; sorted by %s\n", v.summaryLine(), v.Query.Sort)
	fmt.Fprintf(bw, "scanned %s; %s\n", v.Snap.Time.UTC().Format(time.RFC3339), v.windowText())
	if v.Warning != "" {
		fmt.Fprintf(bw, "WARNING: %s\n", v.Warning)
	}
	fmt.Fprintln(bw)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tPPID\tUSER\tS\t%CPU\tRSS\tTHR\tFDS\tSTARTED\tCONTAINER\tCOMMAND")
	for _, p := range v.Procs {
		fds := strconv.Itoa(p.FDs)
		ctr := p.Container.ShortID
		if ctr == "" {
			ctr = "-"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%.1f\t%s\t%d\t%s\t%s\t%s\t%s\n",
			p.PID, p.PPID, printable(p.User, 16), p.State, p.CPUPercent, humanBytes(p.RSSBytes),
			p.Threads, fds, started(p.StartTime, v.Snap.Time), ctr, printable(p.Command, 0))
	}
	tw.Flush()
	if len(v.Containers) > 0 {
		fmt.Fprintln(bw)
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CONTAINER\tRUNTIME\tPOD\tPROCS\t%CPU\tRSS")
		for _, c := range v.Containers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%s\n", c.ShortID, dash(c.Runtime), dash(c.PodUID), c.Processes, c.CPUPercent, humanBytes(c.RSSBytes))
		}
		tw.Flush()
	}
	if len(v.Notes) > 0 {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, "notes:")
		for _, n := range v.Notes {
			fmt.Fprintf(bw, "  %s\n", printable(n, 0))
		}
	}
	return bw.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable escapes control characters and invalid UTF-8 (a process
// chooses its own name and command line; a terminal must not obey them)
// and, when max > 0, shortens s to max runes.
func printable(s string, max int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		for i, r := range s {
			switch {
			case r == utf8.RuneError:
				fmt.Fprintf(&b, `\x%02x`, s[i])
			case unicode.IsControl(r):
				q := strconv.QuoteRune(r)
				b.WriteString(q[1 : len(q)-1])
			default:
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		rs := []rune(s)
		s = string(rs[:max-1]) + "…"
	}
	return s
}

// humanBytes formats a size the way top does: 4.0K, 12.3M, 1.2G.
func humanBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	v, unit := float64(n)/1024, "K"
	for _, u := range []string{"M", "G", "T"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f%s", v, unit)
	}
	return fmt.Sprintf("%.1f%s", v, unit)
}

// started formats a start time as ps does: the time of day if it is the
// same day as now (UTC), else the date.
func started(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02")
}

// htmlRow is one process as the page shows it.
type htmlRow struct {
	Process
	RSS, Started, StartedFull, ColorStyle string
}

type htmlPage struct {
	*view
	Summary, Window, Scanned string
	Rows                     []htmlRow
	SortLinks                []htmlLink
	RefreshLinks             []htmlLink
	FormatLinks              []htmlLink
	ContainerRows            []htmlContainer
	Filter                   string
	ClearFilter              string
}

type htmlLink struct {
	Label, URL string
	Current    bool
}

type htmlContainer struct {
	containerSummary
	RSS, ColorStyle, FilterURL string
}

// link builds a /topz URL from q with one change applied.
func link(q Query, change func(*Query)) string {
	change(&q)
	v := url.Values{}
	if q.Sort != "cpu" {
		v.Set("sort", q.Sort)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Format != "" {
		v.Set("format", q.Format)
	}
	if q.Refresh > 0 {
		v.Set("refresh", strconv.Itoa(q.Refresh))
	}
	if q.Container != "" {
		v.Set("container", q.Container)
	}
	if len(v) == 0 {
		return "/topz"
	}
	return "/topz?" + v.Encode()
}

// colorStyle gives each container a stable hue.
func colorStyle(id string) string {
	if id == "" {
		return ""
	}
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return fmt.Sprintf("--hue:%d", h%360)
}

func renderHTML(w io.Writer, v *view) error {
	p := htmlPage{
		view:    v,
		Summary: v.summaryLine(),
		Window:  v.windowText(),
		Scanned: v.Snap.Time.UTC().Format(time.RFC3339),
		Filter:  v.Query.Container,
	}
	for _, pr := range v.Procs {
		p.Rows = append(p.Rows, htmlRow{
			Process:     pr,
			RSS:         humanBytes(pr.RSSBytes),
			Started:     started(pr.StartTime, v.Snap.Time),
			StartedFull: pr.StartTime.UTC().Format(time.RFC3339),
			ColorStyle:  colorStyle(pr.Container.ID),
		})
	}
	for _, s := range []string{"cpu", "rss", "pid"} {
		p.SortLinks = append(p.SortLinks, htmlLink{Label: s, URL: link(v.Query, func(q *Query) { q.Sort = s }), Current: v.Query.Sort == s})
	}
	for _, r := range []int{0, 2, 5, 10, 30} {
		label := "off"
		if r > 0 {
			label = strconv.Itoa(r) + "s"
		}
		p.RefreshLinks = append(p.RefreshLinks, htmlLink{Label: label, URL: link(v.Query, func(q *Query) { q.Refresh = r }), Current: v.Query.Refresh == r})
	}
	for _, f := range []string{FormatJSON, FormatText} {
		p.FormatLinks = append(p.FormatLinks, htmlLink{Label: f, URL: link(v.Query, func(q *Query) { q.Format = f; q.Refresh = 0 })})
	}
	for _, c := range v.Containers {
		p.ContainerRows = append(p.ContainerRows, htmlContainer{
			containerSummary: c,
			RSS:              humanBytes(c.RSSBytes),
			ColorStyle:       colorStyle(c.ID),
			FilterURL:        link(v.Query, func(q *Query) { q.Container = c.ShortID }),
		})
	}
	if v.Query.Container != "" {
		p.ClearFilter = link(v.Query, func(q *Query) { q.Container = "" })
	}
	return pageTemplate.Execute(w, p)
}

var pageTemplate = template.Must(template.New("topz").Funcs(template.FuncMap{
	"pct": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"css": func(s string) template.CSS { return template.CSS(s) },
	"fds": func(n int) string {
		if n < 0 {
			return "–"
		}
		return strconv.Itoa(n)
	},
	"bar": func(f float64) template.CSS {
		if f <= 0 {
			return ""
		}
		return template.CSS(fmt.Sprintf("--pct:%.1f%%", min(f, 100)))
	},
	"join": strings.Join,
}).Parse(pageHTML))

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Query.Refresh}}<meta http-equiv="refresh" content="{{.Query.Refresh}}">
{{end}}<title>topz · {{.Visible}} processes</title>
<style>
:root { color-scheme: light dark; --fg:#1d232b; --muted:#687385; --bg:#f7f8fa; --card:#fff; --line:#e3e6eb; --accent:#2f6fed; --warn-bg:#fff4d6; --warn-fg:#6b4a00; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6e9ee; --muted:#98a2b3; --bg:#12151a; --card:#1a1f26; --line:#2a313b; --accent:#6b9bff; --warn-bg:#3a2f12; --warn-fg:#f3d58a; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { padding:18px 24px 8px; display:flex; flex-wrap:wrap; align-items:baseline; gap:6px 18px; }
h1 { margin:0; font-size:20px; font-weight:650; letter-spacing:-.01em; }
h1 span { color:var(--muted); font-weight:400; }
.meta { color:var(--muted); }
.controls { padding:0 24px 12px; display:flex; flex-wrap:wrap; gap:8px 22px; color:var(--muted); }
.controls a { color:var(--accent); text-decoration:none; padding:1px 7px; border-radius:10px; }
.controls a.on { background:var(--accent); color:#fff; }
.warning { margin:4px 24px 14px; padding:10px 14px; border-radius:8px; background:var(--warn-bg); color:var(--warn-fg); font-weight:500; }
.card { margin:0 24px 16px; background:var(--card); border:1px solid var(--line); border-radius:10px; overflow:auto; }
table { border-collapse:collapse; width:100%; }
th, td { padding:6px 10px; text-align:left; white-space:nowrap; border-bottom:1px solid var(--line); }
th { font-size:12px; font-weight:600; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; background:var(--card); position:sticky; top:0; }
tr:last-child td { border-bottom:0; }
tbody tr:hover { background:color-mix(in srgb, var(--accent) 7%, transparent); }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
td.cmd { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; max-width:52vw; overflow:hidden; text-overflow:ellipsis; }
td.cpu { background:linear-gradient(90deg, color-mix(in srgb, var(--accent) 18%, transparent) var(--pct), transparent var(--pct)); }
.self td { font-weight:600; }
.chip { display:inline-block; font-family:ui-monospace,monospace; font-size:12px; padding:1px 8px; border-radius:10px; background:hsl(var(--hue) 70% 50% / .16); color:hsl(var(--hue) 60% 40%); text-decoration:none; }
@media (prefers-color-scheme: dark) { .chip { color:hsl(var(--hue) 70% 72%); } }
.none { color:var(--muted); }
.state { display:inline-block; width:1.6em; text-align:center; border-radius:4px; background:var(--line); font-size:12px; }
.state.R { background:#2fb46a33; } .state.D { background:#e5a10033; } .state.Z { background:#e5484d44; }
.notes { margin:0 24px 24px; color:var(--muted); font-size:13px; }
footer { padding:0 24px 24px; color:var(--muted); font-size:12px; }
</style>
</head>
<body>
<header>
<h1>topz <span>processes in this pod</span></h1>
<div class="meta">{{.Summary}} · scanned {{.Scanned}} · {{.Window}}</div>
</header>
{{if .Warning}}<div class="warning" role="alert">⚠ {{.Warning}}</div>
{{end}}<nav class="controls">
<span>sort: {{range .SortLinks}}<a href="{{.URL}}"{{if .Current}} class="on"{{end}}>{{.Label}}</a>{{end}}</span>
<span>auto-refresh: {{range .RefreshLinks}}<a href="{{.URL}}"{{if .Current}} class="on"{{end}}>{{.Label}}</a>{{end}}</span>
<span>as: {{range .FormatLinks}}<a href="{{.URL}}">{{.Label}}</a>{{end}}</span>
{{if .ClearFilter}}<span>container {{.Filter}} <a href="{{.ClearFilter}}">show all</a></span>{{end}}
</nav>
{{if .ContainerRows}}<div class="card"><table>
<thead><tr><th>Container</th><th>Runtime</th><th>Pod</th><th class="n">Procs</th><th class="n">CPU %</th><th class="n">RSS</th></tr></thead>
<tbody>
{{range .ContainerRows}}<tr><td><a class="chip" style="{{css .ColorStyle}}" href="{{.FilterURL}}" title="{{.ID}}">{{.ShortID}}</a></td><td>{{.Runtime}}</td><td>{{.PodUID}}</td><td class="n">{{.Processes}}</td><td class="n">{{pct .CPUPercent}}</td><td class="n">{{.RSS}}</td></tr>
{{end}}</tbody></table></div>
{{end}}<div class="card"><table id="processes">
<thead><tr><th class="n">PID</th><th class="n">PPID</th><th>User</th><th>S</th><th class="n">CPU %</th><th class="n">RSS</th><th class="n">Thr</th><th class="n">FDs</th><th>Started</th><th>Container</th><th>Command</th></tr></thead>
<tbody>
{{range .Rows}}<tr{{if .Self}} class="self"{{end}} data-pid="{{.PID}}"><td class="n">{{.PID}}</td><td class="n">{{.PPID}}</td><td>{{.User}}</td><td><span class="state {{.State}}" title="{{.StateName}}">{{.State}}</span></td><td class="n{{if gt .CPUPercent 0.0}} cpu{{end}}" style="{{bar .CPUPercent}}">{{pct .CPUPercent}}</td><td class="n">{{.RSS}}</td><td class="n">{{.Threads}}</td><td class="n"{{if .Notes}} title="{{join .Notes "; "}}"{{end}}>{{fds .FDs}}</td><td title="{{.StartedFull}}">{{.Started}}</td><td>{{if .Container.ID}}<span class="chip" style="{{css .ColorStyle}}" title="{{.Container.ID}}">{{.Container.ShortID}}</span>{{else}}<span class="none" title="{{.Container.Cgroup}}">–</span>{{end}}</td><td class="cmd" title="{{.Command}}">{{.Command}}</td></tr>
{{end}}</tbody></table></div>
{{if .Notes}}<div class="notes"><strong>Notes</strong><ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul></div>
{{end}}<footer>podkit topz · <a href="/topz?format=json">JSON</a> · <a href="/topz?format=text">text</a> · ?sort=cpu|rss|pid&amp;limit=N&amp;refresh=SECONDS&amp;fresh=1&amp;container=ID</footer>
</body>
</html>
`
