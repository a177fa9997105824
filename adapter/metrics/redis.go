package metrics

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/internal/resp"
)

// InfoField is one key:value line of Redis INFO, with its section.
type InfoField struct {
	Section, Key, Value string
}

// ParseInfo parses the reply to Redis INFO: "# Section" headers and
// key:value lines, in order. A line that is neither (nor blank) is a
// *ParseError naming it.
func ParseInfo(s string) ([]InfoField, error) {
	var out []InfoField
	section := ""
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, &ParseError{What: "INFO", Line: i + 1, Msg: fmt.Sprintf("want key:value, got %q", clip(line))}
		}
		out = append(out, InfoField{Section: section, Key: k, Value: v})
	}
	if len(out) == 0 {
		return nil, &ParseError{What: "INFO", Msg: "no fields"}
	}
	return out, nil
}

// parseKV parses "a=1,b=2" (keyspace, commandstats and replica lines).
func parseKV(s string) (map[string]string, bool) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

// redisGauges and redisCounters map INFO fields to redis_exporter's metric
// names (without the redis_ prefix).
var redisGauges = map[string]string{
	"uptime_in_seconds":               "uptime_in_seconds",
	"process_id":                      "process_id",
	"connected_clients":               "connected_clients",
	"blocked_clients":                 "blocked_clients",
	"tracking_clients":                "tracking_clients",
	"client_recent_max_output_buffer": "client_recent_max_output_buffer_bytes",
	"client_recent_max_input_buffer":  "client_recent_max_input_buffer_bytes",
	"allocator_active":                "allocator_active_bytes",
	"allocator_allocated":             "allocator_allocated_bytes",
	"allocator_resident":              "allocator_resident_bytes",
	"allocator_frag_ratio":            "allocator_frag_ratio",
	"allocator_frag_bytes":            "allocator_frag_bytes",
	"allocator_rss_ratio":             "allocator_rss_ratio",
	"allocator_rss_bytes":             "allocator_rss_bytes",
	"used_memory":                     "memory_used_bytes",
	"used_memory_rss":                 "memory_used_rss_bytes",
	"used_memory_peak":                "memory_used_peak_bytes",
	"used_memory_lua":                 "memory_used_lua_bytes",
	"used_memory_overhead":            "memory_used_overhead_bytes",
	"used_memory_startup":             "memory_used_startup_bytes",
	"used_memory_dataset":             "memory_used_dataset_bytes",
	"used_memory_scripts":             "memory_used_scripts_bytes",
	"maxmemory":                       "memory_max_bytes",
	"mem_fragmentation_ratio":         "mem_fragmentation_ratio",
	"mem_fragmentation_bytes":         "mem_fragmentation_bytes",
	"mem_clients_slaves":              "mem_clients_slaves",
	"mem_clients_normal":              "mem_clients_normal",
	"expired_stale_perc":              "expired_stale_percentage",
	"mem_not_counted_for_evict":       "mem_not_counted_for_eviction_bytes",
	"lazyfree_pending_objects":        "lazyfree_pending_objects",
	"active_defrag_running":           "active_defrag_running",
	"loading":                         "loading_dump_file",
	"rdb_changes_since_last_save":     "rdb_changes_since_last_save",
	"rdb_bgsave_in_progress":          "rdb_bgsave_in_progress",
	"rdb_last_save_time":              "rdb_last_save_timestamp_seconds",
	"rdb_last_bgsave_status":          "rdb_last_bgsave_status",
	"rdb_last_bgsave_time_sec":        "rdb_last_bgsave_duration_sec",
	"rdb_current_bgsave_time_sec":     "rdb_current_bgsave_duration_sec",
	"rdb_last_cow_size":               "rdb_last_cow_size_bytes",
	"aof_enabled":                     "aof_enabled",
	"aof_rewrite_in_progress":         "aof_rewrite_in_progress",
	"aof_rewrite_scheduled":           "aof_rewrite_scheduled",
	"aof_last_rewrite_time_sec":       "aof_last_rewrite_duration_sec",
	"aof_current_rewrite_time_sec":    "aof_current_rewrite_duration_sec",
	"aof_last_cow_size":               "aof_last_cow_size_bytes",
	"aof_last_bgrewrite_status":       "aof_last_bgrewrite_status",
	"aof_last_write_status":           "aof_last_write_status",
	"module_fork_in_progress":         "module_fork_in_progress",
	"module_fork_last_cow_size":       "module_fork_last_cow_size",
	"pubsub_channels":                 "pubsub_channels",
	"pubsub_patterns":                 "pubsub_patterns",
	"latest_fork_usec":                "latest_fork_usec",
	"connected_slaves":                "connected_slaves",
	"repl_backlog_size":               "replication_backlog_bytes",
	"repl_backlog_active":             "repl_backlog_is_active",
	"repl_backlog_first_byte_offset":  "repl_backlog_first_byte_offset",
	"repl_backlog_histlen":            "repl_backlog_history_bytes",
	"master_repl_offset":              "master_repl_offset",
	"second_repl_offset":              "second_repl_offset",
	"slave_expires_tracked_keys":      "slave_expires_tracked_keys",
	"slave_priority":                  "slave_priority",
	"sync_full":                       "replica_resyncs_full",
	"sync_partial_ok":                 "replica_partial_resync_accepted",
	"sync_partial_err":                "replica_partial_resync_denied",
}

var redisCounters = map[string]string{
	"total_connections_received": "connections_received_total",
	"total_commands_processed":   "commands_processed_total",
	"rejected_connections":       "rejected_connections_total",
	"total_net_input_bytes":      "net_input_bytes_total",
	"total_net_output_bytes":     "net_output_bytes_total",
	"expired_keys":               "expired_keys_total",
	"evicted_keys":               "evicted_keys_total",
	"keyspace_hits":              "keyspace_hits_total",
	"keyspace_misses":            "keyspace_misses_total",
	"used_cpu_sys":               "cpu_sys_seconds_total",
	"used_cpu_user":              "cpu_user_seconds_total",
	"used_cpu_sys_children":      "cpu_sys_children_seconds_total",
	"used_cpu_user_children":     "cpu_user_children_seconds_total",
}

// redisNumber parses an INFO value the way redis_exporter does: ok/true
// are 1, err/fail/false are 0.
func redisNumber(v string) (float64, bool) {
	switch v {
	case "ok", "true":
		return 1, true
	case "err", "fail", "false":
		return 0, true
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

type redisScraper struct {
	target   dbwire.RedisTarget
	password string

	mu   sync.Mutex
	conn *resp.Client // kept between scrapes
}

func (r *redisScraper) scrape(ctx context.Context, e *emitter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		c, err := dbwire.DialRedis(ctx, r.target, r.password)
		if err != nil {
			return err
		}
		r.conn = c
	}
	replies, err := r.conn.Pipeline(ctx,
		[]string{"INFO", "ALL"},
		[]string{"SLOWLOG", "LEN"},
		[]string{"SLOWLOG", "GET", "1"},
	)
	if err != nil {
		r.conn.Close()
		r.conn = nil
		return err
	}
	// INFO is what redis_up means (as for redis_exporter); SLOWLOG fails
	// alone.
	if err := e.collect(ctx, "info", true, func() error {
		if replies[0].Kind == resp.KindError {
			return fmt.Errorf("INFO ALL: %w", resp.Error(replies[0].Str))
		}
		info, err := replies[0].Text()
		if err != nil {
			return fmt.Errorf("INFO ALL: %w", err)
		}
		fields, err := ParseInfo(info)
		if err != nil {
			return err
		}
		return redisInfoMetrics(e, fields)
	}); err != nil {
		return err
	}
	return e.collect(ctx, "slowlog", false, func() error { return redisSlowlogMetrics(e, replies[1], replies[2]) })
}

func (r *redisScraper) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
	return nil
}

// redisInfoMetrics turns INFO fields into redis_exporter's metrics.
func redisInfoMetrics(e *emitter, fields []InfoField) error {
	kv := map[string]string{}
	masterHost, masterPort := "", ""
	for _, f := range fields {
		kv[f.Key] = f.Value
		switch f.Key {
		case "master_host":
			masterHost = f.Value
		case "master_port":
			masterPort = f.Value
		}
	}
	for _, f := range fields {
		switch f.Section {
		case "Keyspace":
			if !strings.HasPrefix(f.Key, "db") {
				continue
			}
			m, ok := parseKV(f.Value)
			keys, err1 := strconv.ParseFloat(m["keys"], 64)
			expires, err2 := strconv.ParseFloat(m["expires"], 64)
			if !ok || err1 != nil || err2 != nil {
				return &ParseError{What: "INFO keyspace", Msg: fmt.Sprintf("%s: want keys=N,expires=N, got %q", clip(f.Key), clip(f.Value))}
			}
			e.gauge("redis_db_keys", "Total number of keys by DB", keys, "db", f.Key)
			e.gauge("redis_db_keys_expiring", "Total number of expiring keys by DB", expires, "db", f.Key)
			if ttl, err := strconv.ParseFloat(m["avg_ttl"], 64); err == nil {
				e.gauge("redis_db_avg_ttl_seconds", "Avg TTL in seconds", ttl/1000, "db", f.Key)
			}
			continue
		case "Commandstats":
			cmd, ok := strings.CutPrefix(f.Key, "cmdstat_")
			m, okv := parseKV(f.Value)
			calls, err1 := strconv.ParseFloat(m["calls"], 64)
			usec, err2 := strconv.ParseFloat(m["usec"], 64)
			if !ok || !okv || err1 != nil || err2 != nil {
				return &ParseError{What: "INFO commandstats", Msg: fmt.Sprintf("%s: want calls=N,usec=N,..., got %q", clip(f.Key), clip(f.Value))}
			}
			e.counter("redis_commands_total", "Total number of calls per command", calls, "cmd", cmd)
			e.counter("redis_commands_duration_seconds_total", "Total amount of time in seconds spent per command", usec/1e6, "cmd", cmd)
			if v, err := strconv.ParseFloat(m["rejected_calls"], 64); err == nil {
				e.counter("redis_commands_rejected_calls_total", "Total number of errors prior command execution per command", v, "cmd", cmd)
			}
			if v, err := strconv.ParseFloat(m["failed_calls"], 64); err == nil {
				e.counter("redis_commands_failed_calls_total", "Total number of errors within command execution per command", v, "cmd", cmd)
			}
			continue
		case "Errorstats":
			name, ok := strings.CutPrefix(f.Key, "errorstat_")
			m, okv := parseKV(f.Value)
			n, err := strconv.ParseFloat(m["count"], 64)
			if !ok || !okv || err != nil {
				return &ParseError{What: "INFO errorstats", Msg: fmt.Sprintf("%s: want count=N, got %q", clip(f.Key), clip(f.Value))}
			}
			e.counter("redis_errors_total", "Total number of errors per error type", n, "err", name)
			continue
		case "Replication":
			if redisReplication(e, f, masterHost, masterPort) {
				continue
			}
		}
		if name, ok := redisGauges[f.Key]; ok {
			if v, ok := redisNumber(f.Value); ok {
				e.gauge("redis_"+name, name+" metric", v)
			}
		} else if name, ok := redisCounters[f.Key]; ok {
			if v, ok := redisNumber(f.Value); ok {
				e.counter("redis_"+name, name+" metric", v)
			}
		}
		if f.Key == "uptime_in_seconds" {
			if up, err := strconv.ParseFloat(f.Value, 64); err == nil {
				e.gauge("redis_start_time_seconds", "Start time of the Redis instance since unix epoch in seconds.", float64(e.t.sh.now().Unix())-up)
			}
		}
	}
	mode := kv["redis_mode"]
	if mode == "" {
		mode = kv["server_mode"]
	}
	e.gauge("redis_instance_info", "Information about the Redis instance", 1,
		"role", kv["role"], "redis_version", kv["redis_version"], "redis_build_id", kv["redis_build_id"],
		"redis_mode", mode, "os", kv["os"], "maxmemory_policy", kv["maxmemory_policy"],
		"tcp_port", kv["tcp_port"], "run_id", kv["run_id"], "process_id", kv["process_id"],
		"master_replid", kv["master_replid"])
	if kv["role"] == "slave" {
		e.gauge("redis_slave_info", "Information about the Redis slave", 1,
			"master_host", masterHost, "master_port", masterPort, "read_only", kv["slave_read_only"])
	}
	return nil
}

// redisReplication handles the replication fields redis_exporter labels
// with the master's or replica's address; it reports whether f was one.
func redisReplication(e *emitter, f InfoField, masterHost, masterPort string) bool {
	switch f.Key {
	case "master_link_status":
		up := 0.0
		if f.Value == "up" {
			up = 1
		}
		e.gauge("redis_master_link_up", "Master link status on Redis slave", up, "master_host", masterHost, "master_port", masterPort)
		return true
	case "master_last_io_seconds_ago", "master_sync_in_progress", "slave_repl_offset":
		v, _ := strconv.ParseFloat(f.Value, 64)
		help := map[string]string{
			"master_last_io_seconds_ago": "Master last io seconds ago",
			"master_sync_in_progress":    "Master sync in progress",
			"slave_repl_offset":          "Slave replication offset",
		}[f.Key]
		e.gauge("redis_"+f.Key, help, v, "master_host", masterHost, "master_port", masterPort)
		return true
	}
	if !strings.HasPrefix(f.Key, "slave") || len(f.Key) < 6 || f.Key[5] < '0' || f.Key[5] > '9' {
		return false
	}
	m, ok := parseKV(f.Value)
	if !ok {
		return false
	}
	offset, err := strconv.ParseFloat(m["offset"], 64)
	if err != nil {
		return false
	}
	e.gauge("redis_connected_slave_offset_bytes", "Offset of connected slave", offset,
		"slave_ip", m["ip"], "slave_port", m["port"], "slave_state", m["state"])
	if lag, err := strconv.ParseFloat(m["lag"], 64); err == nil {
		e.gauge("redis_connected_slave_lag_seconds", "Lag of connected slave", lag,
			"slave_ip", m["ip"], "slave_port", m["port"], "slave_state", m["state"])
	}
	return true
}

// redisSlowlogMetrics reads the replies to SLOWLOG LEN and SLOWLOG GET 1.
func redisSlowlogMetrics(e *emitter, lenReply, getReply resp.Value) error {
	if lenReply.Kind == resp.KindError {
		return fmt.Errorf("SLOWLOG LEN: %w", resp.Error(lenReply.Str))
	}
	n, err := lenReply.Integer()
	if err != nil {
		return fmt.Errorf("SLOWLOG LEN: %w", err)
	}
	e.gauge("redis_slowlog_length", "Total slowlog", float64(n))
	if getReply.Kind == resp.KindError {
		return fmt.Errorf("SLOWLOG GET: %w", resp.Error(getReply.Str))
	}
	var lastID, lastDur float64
	if len(getReply.Array) > 0 {
		entry := getReply.Array[0]
		if len(entry.Array) < 3 || entry.Array[0].Kind != resp.KindInteger || entry.Array[2].Kind != resp.KindInteger {
			return &ParseError{What: "SLOWLOG GET", Msg: "entry is not [id, time, duration, ...]"}
		}
		lastID = float64(entry.Array[0].Int)
		lastDur = float64(entry.Array[2].Int) / 1e6
	}
	e.gauge("redis_slowlog_last_id", "Last id of slowlog", lastID)
	e.gauge("redis_last_slow_execution_duration_seconds", "The amount of time needed for last slow execution, in seconds", lastDur)
	return nil
}
