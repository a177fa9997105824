package metrics

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/podkit/podkit/adapter/internal/dbwire"
)

// mysqlStatusGroups are the SHOW GLOBAL STATUS variables mysqld_exporter
// turns into labelled families.
var mysqlStatusGroups = regexp.MustCompile(`^(com|handler|connection_errors|innodb_buffer_pool_pages|innodb_rows|performance_schema)_(.*)$`)

// mysqlValue parses a status or variable value the way mysqld_exporter
// does: yes/on/primary are 1, no/off/disabled/connecting are 0, dates are
// Unix times, anything else must be a number.
func mysqlValue(s string) (float64, bool) {
	switch strings.ToLower(s) {
	case "yes", "on", "primary":
		return 1, true
	case "no", "off", "disabled", "connecting", "non-primary", "disconnected":
		return 0, true
	}
	if ts, err := time.Parse("Jan 02 15:04:05 2006 MST", s); err == nil {
		return float64(ts.Unix()), true
	}
	if ts, err := time.Parse("2006-01-02 15:04:05", s); err == nil {
		return float64(ts.Unix()), true
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// metricName lower-cases a server variable name and replaces what a metric
// name cannot hold.
func metricName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}

type mysqlScraper struct{ db dbwire.DB }

func (m *mysqlScraper) close() error { return m.db.Close() }

// scrape runs mysqld_exporter's default collectors, each failing alone.
func (m *mysqlScraper) scrape(ctx context.Context, e *emitter) error {
	for _, c := range []struct {
		name string
		fn   func(context.Context, *emitter) error
	}{
		{"global_status", m.globalStatus},
		{"global_variables", m.globalVariables},
		{"slave_status", m.replication},
	} {
		if err := e.collect(ctx, c.name, false, func() error { return c.fn(ctx, e) }); err != nil {
			return err
		}
	}
	return nil
}

// globalStatus exports SHOW GLOBAL STATUS as mysql_global_status_*.
func (m *mysqlScraper) globalStatus(ctx context.Context, e *emitter) error {
	status, err := m.db.Query(ctx, "SHOW GLOBAL STATUS")
	if err != nil {
		return err
	}
	if len(status.Columns) < 2 {
		return &ParseError{What: "SHOW GLOBAL STATUS", Msg: fmt.Sprintf("%d columns, want 2", len(status.Columns))}
	}
	for _, row := range status.Rows {
		v, ok := mysqlValue(row[1].String)
		if !ok {
			continue
		}
		key := metricName(row[0].String)
		g := mysqlStatusGroups.FindStringSubmatch(key)
		if g == nil {
			e.untyped("mysql_global_status_"+key, "Generic metric from SHOW GLOBAL STATUS.", v)
			continue
		}
		switch g[1] {
		case "com":
			e.counter("mysql_global_status_commands_total", "Total number of executed MySQL commands.", v, "command", g[2])
		case "handler":
			e.counter("mysql_global_status_handlers_total", "Total number of executed MySQL handlers.", v, "handler", g[2])
		case "connection_errors":
			e.counter("mysql_global_status_connection_errors_total", "Total number of MySQL connection errors.", v, "error", g[2])
		case "innodb_buffer_pool_pages":
			switch g[2] {
			case "data", "dirty", "free", "misc":
				e.gauge("mysql_global_status_buffer_pool_pages", "Innodb buffer pool pages by state.", v, "state", g[2])
			default:
				e.counter("mysql_global_status_buffer_pool_page_changes_total", "Innodb buffer pool page state changes.", v, "operation", g[2])
			}
		case "innodb_rows":
			e.counter("mysql_global_status_innodb_row_ops_total", "Total number of MySQL InnoDB row operations.", v, "operation", g[2])
		case "performance_schema":
			e.counter("mysql_global_status_performance_schema_lost_total", "Total number of MySQL instrumentations that could not be loaded or created due to memory constraints.", v, "instrumentation", g[2])
		}
	}
	return nil
}

// globalVariables exports SHOW GLOBAL VARIABLES as mysql_global_variables_*
// and mysql_version_info.
func (m *mysqlScraper) globalVariables(ctx context.Context, e *emitter) error {
	vars, err := m.db.Query(ctx, "SHOW GLOBAL VARIABLES")
	if err != nil {
		return err
	}
	text := map[string]string{}
	for _, row := range vars.Rows {
		if len(row) < 2 {
			continue
		}
		key := metricName(row[0].String)
		switch key {
		case "version", "version_comment", "innodb_version":
			text[key] = row[1].String
			continue
		}
		if v, ok := mysqlValue(row[1].String); ok {
			e.gauge("mysql_global_variables_"+key, "Generic gauge metric from SHOW GLOBAL VARIABLES.", v)
		}
	}
	e.gauge("mysql_version_info", "MySQL version and distribution.", 1,
		"innodb_version", text["innodb_version"], "version", text["version"], "version_comment", text["version_comment"])
	return nil
}

// replication exports SHOW SLAVE STATUS (SHOW REPLICA STATUS on servers
// that dropped the old name) as mysql_slave_status_*, like mysqld_exporter.
// A server that is not a replica returns no rows and exports nothing.
func (m *mysqlScraper) replication(ctx context.Context, e *emitter) error {
	res, err := m.db.Query(ctx, "SHOW SLAVE STATUS")
	if err != nil && !dbwire.IsPermissionDenied(err) {
		if res2, err2 := m.db.Query(ctx, "SHOW REPLICA STATUS"); err2 == nil {
			res, err = res2, nil
		}
	}
	if err != nil {
		return fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	get := func(row []sql.NullString, names ...string) string {
		for _, n := range names {
			if i := res.Column(n); i >= 0 {
				return row[i].String
			}
		}
		return ""
	}
	for _, row := range res.Rows {
		labels := []string{
			"master_host", get(row, "Master_Host", "Source_Host"),
			"master_uuid", get(row, "Master_UUID", "Source_UUID"),
			"channel_name", get(row, "Channel_Name"),
			"connection_name", get(row, "Connection_name"),
		}
		for i, col := range res.Columns {
			if v, ok := mysqlValue(row[i].String); ok {
				e.untyped("mysql_slave_status_"+metricName(col), "Generic metric from SHOW SLAVE STATUS.", v, labels...)
			}
		}
	}
	return nil
}

type postgresScraper struct{ db dbwire.DB }

func (p *postgresScraper) close() error { return p.db.Close() }

const pgStaticQuery = `SELECT current_setting('server_version_num')::int,
	current_setting('server_version'),
	version()`

const pgReplicationQuery = `SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END,
	CASE WHEN NOT pg_is_in_recovery() THEN 0
	     ELSE GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))) END`

var pgStatDatabaseColumns = []struct {
	col, help string
	counter   bool
}{
	{"numbackends", "Number of backends currently connected to this database. This is the only column in this view that returns a value reflecting current state; all other columns return the accumulated values since the last reset.", false},
	{"xact_commit", "Number of transactions in this database that have been committed", true},
	{"xact_rollback", "Number of transactions in this database that have been rolled back", true},
	{"blks_read", "Number of disk blocks read in this database", true},
	{"blks_hit", "Number of times disk blocks were found already in the buffer cache, so that a read was not necessary (this only includes hits in the PostgreSQL buffer cache, not the operating system's file system cache)", true},
	{"tup_returned", "Number of rows returned by queries in this database", true},
	{"tup_fetched", "Number of rows fetched by queries in this database", true},
	{"tup_inserted", "Number of rows inserted by queries in this database", true},
	{"tup_updated", "Number of rows updated by queries in this database", true},
	{"tup_deleted", "Number of rows deleted by queries in this database", true},
	{"conflicts", "Number of queries canceled due to conflicts with recovery in this database. (Conflicts occur only on standby servers; see pg_stat_database_conflicts for details.)", true},
	{"temp_files", "Number of temporary files created by queries in this database. All temporary files are counted, regardless of why the temporary file was created (e.g., sorting or hashing), and regardless of the log_temp_files setting.", true},
	{"temp_bytes", "Total amount of data written to temporary files by queries in this database. All temporary files are counted, regardless of why the temporary file was created, and regardless of the log_temp_files setting.", true},
	{"deadlocks", "Number of deadlocks detected in this database", true},
	{"blk_read_time", "Time spent reading data file blocks by backends in this database, in milliseconds", true},
	{"blk_write_time", "Time spent writing data file blocks by backends in this database, in milliseconds", true},
}

// scrape reads the server version (pg_static; a failure here means the
// server cannot be used: pg_up 0), then runs postgres_exporter's default
// collectors, each failing alone.
func (p *postgresScraper) scrape(ctx context.Context, e *emitter) error {
	st, err := p.db.Query(ctx, pgStaticQuery)
	if err != nil {
		return err
	}
	if len(st.Rows) != 1 || len(st.Rows[0]) != 3 {
		return &ParseError{What: "postgres version query", Msg: "want one row of 3 columns"}
	}
	row := st.Rows[0]
	versionNum, _ := strconv.Atoi(row[0].String)
	short := row[1].String
	if f := strings.Fields(short); len(f) > 0 {
		short = f[0]
	}
	e.gauge("pg_static", "Version string as reported by postgres", 1, "short_version", short, "version", row[2].String)
	for _, c := range []struct {
		name string
		fn   func(context.Context, *emitter, int) error
	}{
		{"postmaster", p.postmaster},
		{"replication", p.replication},
		{"stat_database", p.statDatabase},
		{"database", p.databaseSize},
	} {
		if err := e.collect(ctx, c.name, false, func() error { return c.fn(ctx, e, versionNum) }); err != nil {
			return err
		}
	}
	return nil
}

func (p *postgresScraper) postmaster(ctx context.Context, e *emitter, _ int) error {
	res, err := p.db.Query(ctx, "SELECT EXTRACT(EPOCH FROM pg_postmaster_start_time())")
	if err != nil {
		return err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return &ParseError{What: "pg_postmaster_start_time()", Msg: "want one row of 1 column"}
	}
	if v, err := strconv.ParseFloat(res.Rows[0][0].String, 64); err == nil {
		e.gauge("pg_postmaster_start_time_seconds", "Time at which postmaster started", v)
	}
	return nil
}

func (p *postgresScraper) replication(ctx context.Context, e *emitter, _ int) error {
	res, err := p.db.Query(ctx, pgReplicationQuery)
	if err != nil {
		return err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		return &ParseError{What: "postgres replication query", Msg: "want one row of 2 columns"}
	}
	if v, err := strconv.ParseFloat(res.Rows[0][0].String, 64); err == nil {
		e.gauge("pg_replication_is_replica", "Indicates if the server is a replica", v)
	}
	if v, err := strconv.ParseFloat(res.Rows[0][1].String, 64); err == nil {
		e.gauge("pg_replication_lag_seconds", "Replication lag behind master in seconds", v)
	}
	return nil
}

// statDatabase exports pg_stat_database, readable by every role.
func (p *postgresScraper) statDatabase(ctx context.Context, e *emitter, versionNum int) error {
	cols := make([]string, 0, len(pgStatDatabaseColumns)+4)
	cols = append(cols, "datid", "datname")
	for _, c := range pgStatDatabaseColumns {
		cols = append(cols, c.col)
	}
	cols = append(cols, "COALESCE(EXTRACT(EPOCH FROM stats_reset), 0)")
	activeTime := versionNum >= 140000
	if activeTime {
		cols = append(cols, "active_time")
	}
	sd, err := p.db.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM pg_stat_database")
	if err != nil {
		return err
	}
	for _, r := range sd.Rows {
		if len(r) != len(cols) {
			return &ParseError{What: "pg_stat_database", Msg: fmt.Sprintf("%d columns, want %d", len(r), len(cols))}
		}
		if !r[0].Valid || !r[1].Valid {
			continue // the shared-objects row has no database
		}
		labels := []string{"datid", r[0].String, "datname", r[1].String}
		for i, c := range pgStatDatabaseColumns {
			v, err := strconv.ParseFloat(r[i+2].String, 64)
			if err != nil {
				continue
			}
			if c.counter {
				e.counter("pg_stat_database_"+c.col, c.help, v, labels...)
			} else {
				e.gauge("pg_stat_database_"+c.col, c.help, v, labels...)
			}
		}
		n := len(pgStatDatabaseColumns) + 2
		if v, err := strconv.ParseFloat(r[n].String, 64); err == nil {
			e.counter("pg_stat_database_stats_reset", "Time at which these statistics were last reset", v, labels...)
		}
		if activeTime {
			if v, err := strconv.ParseFloat(r[n+1].String, 64); err == nil {
				e.counter("pg_stat_database_active_time_seconds_total", "Time spent executing SQL statements in this database, in seconds", v/1000, labels...)
			}
		}
	}
	return nil
}

// databaseSize exports pg_database_size_bytes; pg_database_size needs
// CONNECT on each database or pg_read_all_stats (in pg_monitor).
func (p *postgresScraper) databaseSize(ctx context.Context, e *emitter, _ int) error {
	sizes, err := p.db.Query(ctx, "SELECT datname, pg_database_size(datname) FROM pg_database WHERE datallowconn")
	if err != nil {
		return err
	}
	for _, r := range sizes.Rows {
		if len(r) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(r[1].String, 64); err == nil {
			e.gauge("pg_database_size_bytes", "Disk space used by the database", v, "datname", r[0].String)
		}
	}
	return nil
}
