package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/podkit/podkit/adapter/internal/dbwire"
	"github.com/podkit/podkit/internal/resp"
)

// errNotReplicating is a replica whose replication is not running.
var errNotReplicating = errors.New("replication is not running")

type sqlProbe struct {
	kind  string
	db    dbwire.DB
	query string
}

func (p *sqlProbe) close() error { return p.db.Close() }

func (p *sqlProbe) check(ctx context.Context) (string, error) {
	res, err := p.db.Query(ctx, p.query)
	if err != nil {
		return "", err
	}
	if len(res.Rows) == 0 || len(res.Rows[0]) == 0 {
		return "", nil
	}
	v := res.Rows[0][0]
	if !v.Valid {
		return "NULL", nil
	}
	return v.String, nil
}

// pgLagQuery reports whether the server is a standby and its replay lag,
// 0 when it has replayed everything it received (an idle primary writes
// nothing, so the last replay time alone would grow without bound).
const pgLagQuery = `SELECT pg_is_in_recovery(),
	CASE WHEN NOT pg_is_in_recovery() THEN 0
	     WHEN pg_last_wal_receive_lsn() IS NULL THEN -1
	     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
	     ELSE GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))) END`

func (p *sqlProbe) lag(ctx context.Context) (bool, float64, error) {
	if p.kind == dbwire.Postgres {
		res, err := p.db.Query(ctx, pgLagQuery)
		if err != nil {
			return false, 0, err
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
			return false, 0, errors.New("unexpected answer to the replication query")
		}
		replica := res.Rows[0][0].String == "t" || res.Rows[0][0].String == "true"
		f, err := strconv.ParseFloat(res.Rows[0][1].String, 64)
		if err != nil {
			return replica, 0, fmt.Errorf("replication lag %q: %v", res.Rows[0][1].String, err)
		}
		if f < 0 {
			return replica, 0, fmt.Errorf("%w: no WAL received from the primary", errNotReplicating)
		}
		return replica, f, nil
	}
	res, err := p.db.Query(ctx, "SHOW SLAVE STATUS")
	if err != nil && !dbwire.IsPermissionDenied(err) {
		// Servers that dropped the old name (MySQL 8.4) call it REPLICA.
		if res2, err2 := p.db.Query(ctx, "SHOW REPLICA STATUS"); err2 == nil {
			res, err = res2, nil
		}
	}
	if err != nil {
		return false, 0, fmt.Errorf("replication status: %w", err)
	}
	if len(res.Rows) == 0 {
		return false, 0, nil // not a replica
	}
	col := res.Column("Seconds_Behind_Master")
	if col < 0 {
		col = res.Column("Seconds_Behind_Source")
	}
	if col < 0 {
		return true, 0, errors.New("replication status has no Seconds_Behind_Master column")
	}
	v := res.Rows[0][col]
	if !v.Valid {
		return true, 0, fmt.Errorf("%w (Seconds_Behind_Master is NULL)", errNotReplicating)
	}
	f, err := strconv.ParseFloat(v.String, 64)
	if err != nil {
		return true, 0, fmt.Errorf("Seconds_Behind_Master %q: %v", v.String, err)
	}
	return true, f, nil
}

type redisProbe struct {
	target   dbwire.RedisTarget
	password string
	cmd      []string

	mu   sync.Mutex
	conn *resp.Client
}

func (p *redisProbe) do(ctx context.Context, args ...string) (resp.Value, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		c, err := dbwire.DialRedis(ctx, p.target, p.password)
		if err != nil {
			return resp.Value{}, err
		}
		p.conn = c
	}
	v, err := p.conn.Do(ctx, args...)
	var re resp.Error
	if err != nil && !errors.As(err, &re) {
		p.conn.Close()
		p.conn = nil
	}
	return v, err
}

func (p *redisProbe) check(ctx context.Context) (string, error) {
	v, err := p.do(ctx, p.cmd...)
	if err != nil {
		return "", err
	}
	if v.Kind == resp.KindArray {
		if v.Nil || len(v.Array) == 0 {
			return "", nil
		}
		v = v.Array[0]
	}
	if v.Nil {
		return "", nil
	}
	return v.Text()
}

func (p *redisProbe) lag(ctx context.Context) (bool, float64, error) {
	v, err := p.do(ctx, "INFO", "replication")
	if err != nil {
		return false, 0, err
	}
	info, err := v.Text()
	if err != nil {
		return false, 0, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			kv[k] = val
		}
	}
	if kv["role"] != "slave" {
		return false, 0, nil
	}
	if kv["master_link_status"] != "up" {
		return true, 0, fmt.Errorf("%w (master_link_status %s)", errNotReplicating, kv["master_link_status"])
	}
	f, err := strconv.ParseFloat(kv["master_last_io_seconds_ago"], 64)
	if err != nil {
		return true, 0, fmt.Errorf("master_last_io_seconds_ago %q: %v", kv["master_last_io_seconds_ago"], err)
	}
	return true, f, nil
}

func (p *redisProbe) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	return nil
}
