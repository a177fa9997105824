// Package timestamp parses the timestamps found in log lines and writes
// them back as RFC 3339 in UTC with nine fractional digits, so every event
// podkit logs emits sorts and compares as text.
//
// Recognized forms:
//
//   - RFC 3339 / ISO 8601: 2006-01-02T15:04:05.999999999Z07:00, also with a
//     space instead of T, a comma before the fraction, a zone written
//     +0700, +07 or missing (then the Parser's Location applies), and
//     2006/01/02 separators (Go's log package);
//   - log4j's default yyyy-MM-dd HH:mm:ss,SSS (a special case of the above);
//   - syslog RFC 3164, "Jan _2 15:04:05" without a year: the year is inferred
//     as the latest one that does not put the time more than a day in the
//     future; RFC 5424 carries RFC 3339;
//   - Common/Combined Log Format: 02/Jan/2006:15:04:05 -0700;
//   - Unix epoch as a number, unit chosen by magnitude: seconds below 1e11,
//     milliseconds below 1e14, microseconds below 1e17, else nanoseconds;
//     a fraction is allowed in any unit.
//
// Parsers work on byte slices and do not allocate.
package timestamp

import (
	"errors"
	"time"
)

// Format names the form a timestamp was written in.
type Format uint8

// The formats Parse recognizes.
const (
	Unknown Format = iota
	RFC3339        // ISO 8601 / RFC 3339 and its variants (log4j, Go log)
	Syslog         // RFC 3164 "Jan _2 15:04:05"
	CLF            // Common Log Format "02/Jan/2006:15:04:05 -0700"
	EpochSeconds
	EpochMillis
	EpochMicros
	EpochNanos
)

var formatNames = [...]string{"unknown", "rfc3339", "syslog", "clf", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// ErrSyntax is returned (wrapped) for text that is not a timestamp of the
// expected form.
var ErrSyntax = errors.New("not a timestamp")

// Parser parses timestamps. The zero value parses zone-less times as UTC
// and infers syslog years from the wall clock.
type Parser struct {
	// Location applies to timestamps written without a zone (nil: UTC).
	Location *time.Location
	// Now is the clock used to infer the year of RFC 3164 timestamps
	// (nil: time.Now).
	Now func() time.Time
}

func (p *Parser) loc() *time.Location {
	if p == nil || p.Location == nil {
		return time.UTC
	}
	return p.Location
}

func (p *Parser) now() time.Time {
	if p == nil || p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Parse recognizes the whole of b as one of the supported forms.
func (p *Parser) Parse(b []byte) (time.Time, Format, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return time.Time{}, Unknown, ErrSyntax
	}
	c := b[0]
	switch {
	case isDigit(c):
		if allEpoch(b) {
			t, f, err := ParseEpoch(b)
			return t, f, err
		}
		if len(b) >= 3 && b[2] == '/' {
			t, n, err := p.ParseCLFPrefix(b)
			if err == nil && n == len(b) {
				return t, CLF, nil
			}
			return time.Time{}, Unknown, ErrSyntax
		}
		t, n, err := p.ParseRFC3339Prefix(b)
		if err == nil && n == len(b) {
			return t, RFC3339, nil
		}
	case c >= 'A' && c <= 'Z':
		t, n, err := p.ParseSyslogPrefix(b)
		if err == nil && n == len(b) {
			return t, Syslog, nil
		}
	}
	return time.Time{}, Unknown, ErrSyntax
}

func allEpoch(b []byte) bool {
	dot := false
	for _, c := range b {
		if c == '.' && !dot {
			dot = true
			continue
		}
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// ParseRFC3339Prefix parses an RFC 3339 / ISO 8601 timestamp at the start
// of b and returns it with the number of bytes it used. See the package
// comment for the variants accepted.
func (p *Parser) ParseRFC3339Prefix(b []byte) (time.Time, int, error) {
	// YYYY-MM-DD
	if len(b) < 19 {
		return time.Time{}, 0, ErrSyntax
	}
	sep := b[4]
	if sep != '-' && sep != '/' || b[7] != sep {
		return time.Time{}, 0, ErrSyntax
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, 0, ErrSyntax
	}
	if b[10] != 'T' && b[10] != ' ' && b[10] != 't' {
		return time.Time{}, 0, ErrSyntax
	}
	hour, ok1 := num(b[11:13])
	minute, ok2 := num(b[14:16])
	sec, ok3 := num(b[17:19])
	if !(ok1 && ok2 && ok3) || b[13] != ':' || b[16] != ':' {
		return time.Time{}, 0, ErrSyntax
	}
	n := 19
	nsec := 0
	if n < len(b) && (b[n] == '.' || b[n] == ',') {
		var digits int
		nsec, digits = frac(b[n+1:])
		if digits == 0 {
			return time.Time{}, 0, ErrSyntax
		}
		n += 1 + digits
	}
	loc := p.loc()
	offset, zn, hasZone, err := zone(b[n:])
	if err != nil {
		return time.Time{}, 0, err
	}
	n += zn
	t, err := build(year, month, day, hour, minute, sec, nsec, offset, hasZone, loc)
	return t, n, err
}

// zone parses Z, z, +hh:mm, +hhmm or +hh (or "" when absent, then
// hasZone is false). " UTC" and " Z" are not accepted: text after the
// time is the caller's.
func zone(b []byte) (offset, n int, hasZone bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, nil
	}
	switch b[0] {
	case 'Z', 'z':
		return 0, 1, true, nil
	case '+', '-':
	default:
		return 0, 0, false, nil
	}
	sign := 1
	if b[0] == '-' {
		sign = -1
	}
	if len(b) < 3 {
		return 0, 0, false, ErrSyntax
	}
	hh, ok := num(b[1:3])
	if !ok {
		return 0, 0, false, ErrSyntax
	}
	n = 3
	mm := 0
	switch {
	case len(b) >= 6 && b[3] == ':':
		if mm, ok = num(b[4:6]); !ok {
			return 0, 0, false, ErrSyntax
		}
		n = 6
	case len(b) >= 5 && isDigit(b[3]):
		if mm, ok = num(b[3:5]); !ok {
			return 0, 0, false, ErrSyntax
		}
		n = 5
	}
	if hh > 23 || mm > 59 {
		return 0, 0, false, ErrSyntax
	}
	return sign * (hh*3600 + mm*60), n, true, nil
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func month3(b []byte) (int, bool) {
	if len(b) < 3 {
		return 0, false
	}
	for i, m := range months {
		if b[0] == m[0] && b[1]|0x20 == m[1] && b[2]|0x20 == m[2] {
			return i + 1, true
		}
	}
	return 0, false
}

// ParseSyslogPrefix parses an RFC 3164 timestamp ("Jan _2 15:04:05",
// optionally followed by a fraction) at the start of b, inferring the
// year: the latest year that does not put the time more than a day after
// the Parser's clock.
func (p *Parser) ParseSyslogPrefix(b []byte) (time.Time, int, error) {
	if len(b) < 15 || b[3] != ' ' {
		return time.Time{}, 0, ErrSyntax
	}
	month, ok := month3(b)
	if !ok {
		return time.Time{}, 0, ErrSyntax
	}
	var day int
	switch {
	case b[4] == ' ' && isDigit(b[5]):
		day = int(b[5] - '0')
	case isDigit(b[4]) && isDigit(b[5]):
		day = int(b[4]-'0')*10 + int(b[5]-'0')
	default:
		return time.Time{}, 0, ErrSyntax
	}
	if b[6] != ' ' || b[9] != ':' || b[12] != ':' {
		return time.Time{}, 0, ErrSyntax
	}
	hour, ok1 := num(b[7:9])
	minute, ok2 := num(b[10:12])
	sec, ok3 := num(b[13:15])
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, 0, ErrSyntax
	}
	n := 15
	nsec := 0
	if n < len(b) && b[n] == '.' {
		var digits int
		nsec, digits = frac(b[n+1:])
		if digits == 0 {
			return time.Time{}, 0, ErrSyntax
		}
		n += 1 + digits
	}
	loc := p.loc()
	now := p.now().In(loc)
	limit := now.Add(24 * time.Hour)
	for year := now.Year(); year >= now.Year()-4; year-- {
		t, err := build(year, month, day, hour, minute, sec, nsec, 0, false, loc)
		if err != nil || t.After(limit) {
			continue // Feb 29 of a non-leap year, or in the future: the year before
		}
		return t, n, nil
	}
	return time.Time{}, 0, ErrSyntax
}

// ParseCLFPrefix parses a Common Log Format timestamp
// ("02/Jan/2006:15:04:05 -0700", without the brackets) at the start of b.
func (p *Parser) ParseCLFPrefix(b []byte) (time.Time, int, error) {
	if len(b) < 20 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' {
		return time.Time{}, 0, ErrSyntax
	}
	day, ok1 := num(b[0:2])
	month, ok2 := month3(b[3:6])
	year, ok3 := num(b[7:11])
	hour, ok4 := num(b[12:14])
	minute, ok5 := num(b[15:17])
	sec, ok6 := num(b[18:20])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, 0, ErrSyntax
	}
	n := 20
	nsec := 0
	if n < len(b) && b[n] == '.' {
		var digits int
		nsec, digits = frac(b[n+1:])
		if digits == 0 {
			return time.Time{}, 0, ErrSyntax
		}
		n += 1 + digits
	}
	offset, hasZone := 0, false
	if n+1 < len(b) && b[n] == ' ' && (b[n+1] == '+' || b[n+1] == '-') {
		off, zn, ok, err := zone(b[n+1:])
		if err != nil {
			return time.Time{}, 0, err
		}
		offset, hasZone = off, ok
		n += 1 + zn
	}
	t, err := build(year, month, day, hour, minute, sec, nsec, offset, hasZone, p.loc())
	return t, n, err
}

// ParseEpoch parses a non-negative Unix time written in decimal, choosing
// the unit by magnitude (see the package comment).
func ParseEpoch(b []byte) (time.Time, Format, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return time.Time{}, Unknown, ErrSyntax
	}
	var v uint64
	i := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		if i >= 19 {
			return time.Time{}, Unknown, ErrSyntax // beyond int64 nanoseconds
		}
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || v > 1<<63-1 {
		return time.Time{}, Unknown, ErrSyntax
	}
	var fracNs uint64 // fraction of the unit, in units of 1e-9
	if i < len(b) {
		if b[i] != '.' {
			return time.Time{}, Unknown, ErrSyntax
		}
		f, digits := frac(b[i+1:])
		if digits == 0 || i+1+digits != len(b) {
			return time.Time{}, Unknown, ErrSyntax
		}
		fracNs = uint64(f)
	}
	switch {
	case v < 1e11:
		return time.Unix(int64(v), int64(fracNs)).UTC(), EpochSeconds, nil
	case v < 1e14:
		return time.Unix(int64(v/1e3), int64(v%1e3)*1e6+int64(fracNs/1e3)).UTC(), EpochMillis, nil
	case v < 1e17:
		return time.Unix(int64(v/1e6), int64(v%1e6)*1e3+int64(fracNs/1e6)).UTC(), EpochMicros, nil
	default:
		return time.Unix(0, int64(v)).UTC(), EpochNanos, nil
	}
}

// build validates the fields and makes the time.
func build(year, month, day, hour, minute, sec, nsec, offset int, hasZone bool, loc *time.Location) (time.Time, error) {
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, ErrSyntax
	}
	if sec == 60 { // a leap second: the instant after :59
		sec = 59
		nsec = 999999999
	}
	if hasZone {
		if offset == 0 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), nil
		}
		t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
		return t.Add(-time.Duration(offset) * time.Second), nil
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc).UTC(), nil
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// Append appends t as RFC 3339 in UTC with exactly nine fractional digits
// (2006-01-02T15:04:05.000000000Z). Years outside 0000–9999 fall back to
// time.RFC3339Nano.
func Append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	hour, minute, sec := t.Clock()
	ns := t.Nanosecond()
	var b [30]byte
	put4(b[0:], year)
	b[4] = '-'
	put2(b[5:], int(month))
	b[7] = '-'
	put2(b[8:], day)
	b[10] = 'T'
	put2(b[11:], hour)
	b[13] = ':'
	put2(b[14:], minute)
	b[16] = ':'
	put2(b[17:], sec)
	b[19] = '.'
	for i := 28; i >= 20; i-- {
		b[i] = byte('0' + ns%10)
		ns /= 10
	}
	b[29] = 'Z'
	return append(dst, b[:]...)
}

func put2(b []byte, v int) {
	b[0] = byte('0' + v/10)
	b[1] = byte('0' + v%10)
}

func put4(b []byte, v int) {
	b[0] = byte('0' + v/1000)
	b[1] = byte('0' + v/100%10)
	b[2] = byte('0' + v/10%10)
	b[3] = byte('0' + v%10)
}

// num parses a fixed-width run of ASCII digits.
func num(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// frac parses a run of digits as a fraction of a second in nanoseconds
// (digits past the ninth are read and dropped) and returns how many bytes
// it used.
func frac(b []byte) (nsec, n int) {
	scale := 100000000
	for n < len(b) && isDigit(b[n]) {
		nsec += int(b[n]-'0') * scale
		scale /= 10
		n++
	}
	return nsec, n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
