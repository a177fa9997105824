package logs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/adapter/logs/parse"
)

// metrics are the adapter's Prometheus metrics. The hot path counts in
// plain integers and adds them here once per write (see pipeline.publish).
type metrics struct {
	linesIn, bytesIn       *prometheus.CounterVec
	eventsOut, bytesOut    prometheus.Counter
	parseFailures          *prometheus.CounterVec
	timestampFailures      prometheus.Counter
	merged                 prometheus.Counter
	truncated              *prometheus.CounterVec
	rotations              *prometheus.CounterVec
	checkpoints            *prometheus.CounterVec
	filesOpen              prometheus.Gauge
	slowEntries, slowRest  *prometheus.CounterVec
	slowOver, slowLost     *prometheus.CounterVec
	slowErrors             *prometheus.CounterVec
	slowUp, slowLastID     *prometheus.GaugeVec
	fbInRecords, fbInBytes *prometheus.CounterVec
	fbOutRecs, fbOutBytes  *prometheus.CounterVec
}

func newMetrics() *metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		linesIn:           cv("podkit_logs_lines_in_total", "Lines read, by input (file, stdin).", "input"),
		bytesIn:           cv("podkit_logs_bytes_in_total", "Bytes of lines read, by input.", "input"),
		eventsOut:         prometheus.NewCounter(prometheus.CounterOpts{Name: "podkit_logs_events_out_total", Help: "Events written to the output (a merged multiline event counts once)."}),
		bytesOut:          prometheus.NewCounter(prometheus.CounterOpts{Name: "podkit_logs_bytes_out_total", Help: "Bytes written to the output."}),
		parseFailures:     cv("podkit_logs_parse_failures_total", "Events that did not parse, by the format expected from their first bytes (unmatched: no format of --parse matched); the line is kept as the body.", "format"),
		timestampFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "podkit_logs_timestamp_failures_total", Help: "Timestamp fields that did not parse; the raw value is kept among the attributes."}),
		merged:            prometheus.NewCounter(prometheus.CounterOpts{Name: "podkit_logs_multiline_merged_total", Help: "Events merged from more than one line."}),
		truncated:         cv("podkit_logs_multiline_truncated_total", "Multiline events cut at a limit (the rest continues in the next event), by limit (lines, bytes).", "limit"),
		rotations:         cv("podkit_logs_rotations_total", "File rotations seen, by kind (rename, delete, truncate, copy).", "kind"),
		checkpoints:       cv("podkit_logs_checkpoint_writes_total", "Checkpoint file writes, by result (ok, error).", "result"),
		filesOpen:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "podkit_logs_files_open", Help: "Files being followed."}),
		slowEntries:       cv("podkit_logs_slowlog_entries_total", "Redis SLOWLOG entries written, by server address.", "addr"),
		slowRest:          cv("podkit_logs_slowlog_restarts_total", "Redis restarts noticed (run_id changed or slowlog ids went back).", "addr"),
		slowOver:          cv("podkit_logs_slowlog_overflows_total", "Polls that found SLOWLOG entries lost since the previous poll, by reason (overflow: slowlog-max-len was reached; reset: SLOWLOG RESET).", "addr", "reason"),
		slowLost:          cv("podkit_logs_slowlog_lost_entries_total", "SLOWLOG entries lost between polls.", "addr"),
		slowErrors:        cv("podkit_logs_slowlog_poll_errors_total", "SLOWLOG polls that failed.", "addr"),
		slowUp:            gv("podkit_logs_slowlog_up", "1 if the last SLOWLOG poll of the server succeeded.", "addr"),
		slowLastID:        gv("podkit_logs_slowlog_last_id", "The id of the last SLOWLOG entry written.", "addr"),
		// Fluent Bit's names, so its dashboards work.
		fbInRecords: cv("fluentbit_input_records_total", "Records read by the input (Fluent Bit's name).", "name"),
		fbInBytes:   cv("fluentbit_input_bytes_total", "Bytes read by the input (Fluent Bit's name).", "name"),
		fbOutRecs:   cv("fluentbit_output_proc_records_total", "Records written by the output (Fluent Bit's name).", "name"),
		fbOutBytes:  cv("fluentbit_output_proc_bytes_total", "Bytes written by the output (Fluent Bit's name).", "name"),
	}
	for _, f := range []parse.Format{parse.JSON, parse.Logfmt, parse.CLF, parse.Log4j, parse.Syslog} {
		m.parseFailures.WithLabelValues(f.String())
	}
	m.parseFailures.WithLabelValues("unmatched")
	for _, k := range []string{"rename", "delete", "truncate", "copy"} {
		m.rotations.WithLabelValues(k)
	}
	m.checkpoints.WithLabelValues("ok")
	m.checkpoints.WithLabelValues("error")
	m.truncated.WithLabelValues("lines")
	m.truncated.WithLabelValues("bytes")
	return m
}

func (m *metrics) register(r prometheus.Registerer) {
	r.MustRegister(m.linesIn, m.bytesIn, m.eventsOut, m.bytesOut, m.parseFailures, m.timestampFailures,
		m.merged, m.truncated, m.rotations, m.checkpoints, m.filesOpen,
		m.slowEntries, m.slowRest, m.slowOver, m.slowLost, m.slowErrors, m.slowUp, m.slowLastID,
		m.fbInRecords, m.fbInBytes, m.fbOutRecs, m.fbOutBytes)
}
