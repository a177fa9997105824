package dbwire

import (
	"errors"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/podkit/podkit/internal/resp"
)

// MySQL/MariaDB error numbers that mean the credentials were refused, and
// those that mean a statement needs a privilege the account lacks.
var (
	mysqlAuthErrors = map[uint16]bool{
		1045: true, // ER_ACCESS_DENIED_ERROR: Access denied for user (using password: YES)
		1698: true, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
		1251: true, // ER_NOT_SUPPORTED_AUTH_MODE
	}
	mysqlPermissionErrors = map[uint16]bool{
		1044: true, // ER_DBACCESS_DENIED_ERROR: Access denied for user to database
		1142: true, // ER_TABLEACCESS_DENIED_ERROR
		1143: true, // ER_COLUMNACCESS_DENIED_ERROR
		1227: true, // ER_SPECIFIC_ACCESS_DENIED_ERROR: you need (at least one of) the ... privilege(s)
		1370: true, // ER_PROCACCESS_DENIED_ERROR
	}
)

// IsAuthFailed reports whether err is the server refusing the credentials:
// a wrong password or an unknown user (MySQL 1045, PostgreSQL class 28,
// Redis WRONGPASS and NOAUTH).
func IsAuthFailed(err error) bool {
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	var re resp.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &me):
		var se *statementError
		return mysqlAuthErrors[me.Number] && !errors.As(err, &se)
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Code, "28") // invalid_authorization_specification, invalid_password
	case errors.As(err, &re):
		return strings.HasPrefix(string(re), "WRONGPASS") || strings.HasPrefix(string(re), "NOAUTH")
	}
	return false
}

// IsPermissionDenied reports whether err is the server refusing a
// statement because the account lacks a privilege (MySQL 1227 "you need
// the ... privilege", 1142, 1044; PostgreSQL 42501 insufficient_privilege;
// Redis NOPERM). The credentials were accepted: this is not an auth
// failure, and a GRANT fixes it.
func IsPermissionDenied(err error) bool {
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	var re resp.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &me):
		var se *statementError
		return mysqlPermissionErrors[me.Number] || me.Number == 1045 && errors.As(err, &se)
	case errors.As(err, &pe):
		return pe.Code == "42501"
	case errors.As(err, &re):
		return strings.HasPrefix(string(re), "NOPERM")
	}
	return false
}
