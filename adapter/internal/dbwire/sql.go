package dbwire

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Kind names a SQL database flavour.
const (
	MySQL    = "mysql"
	Postgres = "postgres"
)

// SQLTarget is a parsed --mysql or --postgres DSN.
type SQLTarget struct {
	Kind string // MySQL or Postgres
	// Addr is host:port (or the socket), as used in address labels.
	Addr string
	// Redacted is the DSN with any password hidden, for logs and /info.
	Redacted string

	my *mysql.Config
	pg *pgx.ConnConfig
}

// ParseMySQL parses a go-sql-driver/mysql DSN,
// user@tcp(host:port)/dbname?param=value. A password in the DSN is
// refused: it comes from a file.
func ParseMySQL(dsn string) (SQLTarget, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return SQLTarget{}, fmt.Errorf("not a DSN of the form user@tcp(host:port)/db: %v", err)
	}
	if cfg.Passwd != "" {
		return SQLTarget{}, errors.New("the DSN carries a password; put it in the password file instead")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	addr := cfg.Addr
	if cfg.Net == "unix" {
		addr = "unix://" + cfg.Addr
	}
	return SQLTarget{Kind: MySQL, Addr: addr, Redacted: cfg.FormatDSN(), my: cfg}, nil
}

var pgPasswordKV = regexp.MustCompile(`(^|\s)password\s*=`)

// ParsePostgres parses a PostgreSQL DSN in URL form
// (postgres://user@host:port/db?sslmode=disable) or key=value form
// (host=... port=... user=...). A password in the DSN is refused: it comes
// from a file (libpq's .pgpass file is honoured too).
func ParsePostgres(dsn string) (SQLTarget, error) {
	redacted := dsn
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return SQLTarget{}, fmt.Errorf("not a postgres:// URL: %v", unwrapURLErr(err))
		}
		if _, has := u.User.Password(); has || u.Query().Has("password") {
			return SQLTarget{}, errors.New("the DSN carries a password; put it in the password file instead")
		}
		redacted = u.Redacted()
	} else if pgPasswordKV.MatchString(dsn) {
		return SQLTarget{}, errors.New("the DSN carries a password; put it in the password file instead")
	} else if !strings.Contains(dsn, "=") {
		return SQLTarget{}, errors.New("neither a postgres:// URL nor key=value pairs: write postgres://user@host:port/db?sslmode=disable or host=H port=P user=U dbname=D")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return SQLTarget{}, fmt.Errorf("not a PostgreSQL DSN: %v", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		addr = "unix://" + cfg.Host
	}
	return SQLTarget{Kind: Postgres, Addr: addr, Redacted: redacted, pg: cfg}, nil
}

// Result is a query's result with every value as text.
type Result struct {
	Columns []string
	Rows    [][]sql.NullString
}

// Column returns the index of the named column (case-insensitive), or -1.
func (r *Result) Column(name string) int {
	for i, c := range r.Columns {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// DB runs queries against one database server. It reconnects by itself
// after the server went away. It is safe for concurrent use.
type DB interface {
	Query(ctx context.Context, query string) (*Result, error)
	Close() error
}

// Open returns a DB for t that authenticates with password ("" for none).
// It does not connect: the first query does. The driver's own messages go
// to log at debug level (nil: discarded); callers report the errors
// queries return.
func Open(t SQLTarget, password string, log *slog.Logger) (DB, error) {
	switch t.Kind {
	case MySQL:
		cfg := t.my.Clone()
		cfg.Passwd = password
		cfg.Logger = mysqlLogger{log}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(2)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(5 * time.Minute)
		return &mysqlDB{db: db}, nil
	case Postgres:
		cfg := t.pg.Copy()
		if password != "" {
			cfg.Password = password
		}
		return &pgDB{cfg: cfg}, nil
	}
	return nil, fmt.Errorf("unknown database kind %q", t.Kind)
}

// mysqlLogger sends the driver's messages to slog at debug level.
type mysqlLogger struct{ log *slog.Logger }

func (l mysqlLogger) Print(v ...any) {
	if l.log != nil {
		l.log.Debug("mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
	}
}

type mysqlDB struct{ db *sql.DB }

// Query runs q on a connection of the pool. A connection refused a
// statement for lack of a privilege is closed rather than kept: MySQL and
// MariaDB read an account's global privileges (SLAVE MONITOR, REPLICATION
// CLIENT, PROCESS) when a connection is made, so only a new connection
// sees a GRANT made since.
func (m *mysqlDB) Query(ctx context.Context, q string) (*Result, error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res, err := mysqlQuery(ctx, conn, q)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			err = &statementError{err}
		}
		if IsPermissionDenied(err) {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	return res, err
}

// statementError is an error the server answered to a statement on an
// established connection, as opposed to one refusing the connection: a
// MySQL 1045 "Access denied for user" here is a missing privilege (GRANT
// without GRANT OPTION answers it), not refused credentials.
type statementError struct{ err error }

func (e *statementError) Error() string { return e.err.Error() }
func (e *statementError) Unwrap() error { return e.err }

func mysqlQuery(ctx context.Context, conn *sql.Conn, q string) (*Result, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: cols}
	for rows.Next() {
		row := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

func (m *mysqlDB) Close() error { return m.db.Close() }

type pgDB struct {
	cfg  *pgx.ConnConfig
	mu   sync.Mutex
	conn *pgx.Conn
}

func (p *pgDB) Query(ctx context.Context, q string) (*Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		c, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
		if err != nil {
			return nil, err
		}
		p.conn = c
	}
	rows, err := p.conn.Query(ctx, q)
	if err != nil {
		p.dropIfBroken()
		return nil, err
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	res := &Result{Columns: make([]string, len(fds))}
	for i, fd := range fds {
		res.Columns[i] = fd.Name
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]sql.NullString, len(raw))
		for i, b := range raw {
			if b != nil {
				row[i] = sql.NullString{String: string(b), Valid: true}
			}
		}
		res.Rows = append(res.Rows, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		p.dropIfBroken()
		return nil, err
	}
	return res, nil
}

// dropIfBroken forgets a connection pgx has closed, so the next query
// reconnects.
func (p *pgDB) dropIfBroken() {
	if p.conn != nil && p.conn.IsClosed() {
		p.conn = nil
	}
}

func (p *pgDB) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.conn.Close(ctx)
	p.conn = nil
	return err
}
