package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"time"
)

// On disk, every record is framed as
//
//	length uint32 LE | crc32c(body) uint32 LE | body (length bytes)
//
// and the body starts with the record type. A log segment is a sequence of
// framed records; a snapshot is a header followed by framed records.

const (
	frameHeader = 8
	maxRecord   = 64 << 20 // a record larger than this is corruption
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type recType byte

const (
	recEnqueue   recType = 1
	recLease     recType = 2
	recHeartbeat recType = 3
	recAck       recType = 4
	recFail      recType = 5 // nack, expired lease or release
	recCancel    recType = 6
	recReplay    recType = 7
	recItem      recType = 8 // snapshot: one item's full state
	recMeta      recType = 9 // snapshot: store-wide state
)

func (t recType) String() string {
	switch t {
	case recEnqueue:
		return "enqueue"
	case recLease:
		return "lease"
	case recHeartbeat:
		return "heartbeat"
	case recAck:
		return "ack"
	case recFail:
		return "fail"
	case recCancel:
		return "cancel"
	case recReplay:
		return "replay"
	case recItem:
		return "item"
	case recMeta:
		return "meta"
	}
	return "type " + strconv.Itoa(int(t))
}

// failKind says why an attempt ended without an ack.
type failKind byte

const (
	failNack    failKind = 0
	failExpired failKind = 1
	failRelease failKind = 2
)

// record is the decoded form of every record type; each type uses a subset
// of the fields.
type record struct {
	typ         recType
	id          uint64
	queue       string
	at          time.Time // when the change happened
	priority    int64
	notBefore   time.Time
	deadline    time.Time
	maxAttempts int
	timeout     time.Duration
	key         string
	payload     []byte
	attempt     int
	tokenRand   uint64
	kind        failKind
	dead        bool
	errText     string
	// recItem only
	state   byte
	created time.Time
	// recMeta only
	nextID uint64
}

func appendFrame(dst []byte, r *record) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = r.appendBody(dst)
	body := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (r *record) appendBody(b []byte) []byte {
	b = append(b, byte(r.typ))
	switch r.typ {
	case recEnqueue:
		b = binary.AppendUvarint(b, r.id)
		b = appendString(b, r.queue)
		b = appendTime(b, r.at)
		b = binary.AppendVarint(b, r.priority)
		b = appendTime(b, r.notBefore)
		b = binary.AppendUvarint(b, uint64(r.maxAttempts))
		b = binary.AppendVarint(b, int64(r.timeout))
		b = appendString(b, r.key)
		b = appendBytes(b, r.payload)
	case recLease:
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = binary.LittleEndian.AppendUint64(b, r.tokenRand)
		b = appendTime(b, r.deadline)
		b = appendTime(b, r.at)
	case recHeartbeat:
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = appendTime(b, r.deadline)
	case recAck:
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = appendTime(b, r.at)
	case recFail:
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = appendTime(b, r.at)
		b = append(b, byte(r.kind), boolByte(r.dead))
		b = appendTime(b, r.notBefore)
		b = appendString(b, r.errText)
	case recCancel, recReplay:
		b = binary.AppendUvarint(b, r.id)
		b = appendTime(b, r.at)
	case recItem:
		b = binary.AppendUvarint(b, r.id)
		b = appendString(b, r.queue)
		b = append(b, r.state)
		b = appendTime(b, r.created)
		b = appendTime(b, r.at)
		b = binary.AppendVarint(b, r.priority)
		b = appendTime(b, r.notBefore)
		b = appendTime(b, r.deadline)
		b = binary.AppendUvarint(b, uint64(r.attempt))
		b = binary.AppendUvarint(b, uint64(r.maxAttempts))
		b = binary.AppendVarint(b, int64(r.timeout))
		b = binary.LittleEndian.AppendUint64(b, r.tokenRand)
		b = appendString(b, r.key)
		b = appendString(b, r.errText)
		b = appendBytes(b, r.payload)
	case recMeta:
		b = binary.AppendUvarint(b, r.nextID)
		b = appendTime(b, r.at)
	}
	return b
}

var errShort = errors.New("record body too short")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.uvarint()
	if v > math.MaxInt32 {
		if d.err == nil {
			d.err = fmt.Errorf("count %d out of range", v)
		}
		return 0
	}
	return int(v)
}

// decodeRecord decodes a record body. The payload aliases body.
func decodeRecord(body []byte) (record, error) {
	if len(body) == 0 {
		return record{}, errShort
	}
	r := record{typ: recType(body[0])}
	d := &decoder{b: body[1:]}
	switch r.typ {
	case recEnqueue:
		r.id = d.uvarint()
		r.queue = string(d.bytes())
		r.at = d.time()
		r.priority = d.varint()
		r.notBefore = d.time()
		r.maxAttempts = d.int()
		r.timeout = time.Duration(d.varint())
		r.key = string(d.bytes())
		r.payload = d.bytes()
	case recLease:
		r.id = d.uvarint()
		r.attempt = d.int()
		r.tokenRand = d.u64()
		r.deadline = d.time()
		r.at = d.time()
	case recHeartbeat:
		r.id = d.uvarint()
		r.attempt = d.int()
		r.deadline = d.time()
	case recAck:
		r.id = d.uvarint()
		r.attempt = d.int()
		r.at = d.time()
	case recFail:
		r.id = d.uvarint()
		r.attempt = d.int()
		r.at = d.time()
		r.kind = failKind(d.byte1())
		r.dead = d.byte1() == 1
		r.notBefore = d.time()
		r.errText = string(d.bytes())
	case recCancel, recReplay:
		r.id = d.uvarint()
		r.at = d.time()
	case recItem:
		r.id = d.uvarint()
		r.queue = string(d.bytes())
		r.state = d.byte1()
		r.created = d.time()
		r.at = d.time()
		r.priority = d.varint()
		r.notBefore = d.time()
		r.deadline = d.time()
		r.attempt = d.int()
		r.maxAttempts = d.int()
		r.timeout = time.Duration(d.varint())
		r.tokenRand = d.u64()
		r.key = string(d.bytes())
		r.errText = string(d.bytes())
		r.payload = d.bytes()
	case recMeta:
		r.nextID = d.uvarint()
		r.at = d.time()
	default:
		return r, fmt.Errorf("unknown record type %d", body[0])
	}
	if d.err != nil {
		return r, fmt.Errorf("record type %d: %w", r.typ, d.err)
	}
	if len(d.b) != 0 {
		return r, fmt.Errorf("record type %d: %d bytes left over", r.typ, len(d.b))
	}
	return r, nil
}

// frameAt reads the frame at off in buf: it returns the body and the
// frame's total length, or ok=false when no valid frame starts there.
func frameAt(buf []byte, off int) (body []byte, n int, ok bool) {
	if len(buf)-off < frameHeader {
		return nil, 0, false
	}
	l := binary.LittleEndian.Uint32(buf[off:])
	sum := binary.LittleEndian.Uint32(buf[off+4:])
	if l == 0 || l > maxRecord || int(l) > len(buf)-off-frameHeader {
		return nil, 0, false
	}
	body = buf[off+frameHeader : off+frameHeader+int(l)]
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, 0, false
	}
	return body, frameHeader + int(l), true
}

// validChainAfter reports whether, at some offset after bad, a valid frame
// starts that is followed by valid frames up to the end of buf: evidence
// that the bad frame is damage in the middle of the log, not a torn tail.
// It returns that offset.
func validChainAfter(buf []byte, bad int) (int, bool) {
	for p := bad + 1; p+frameHeader <= len(buf); p++ {
		_, n, ok := frameAt(buf, p)
		if !ok {
			continue
		}
		q := p + n
		for q < len(buf) {
			_, m, ok := frameAt(buf, q)
			if !ok {
				break
			}
			q += m
		}
		if q == len(buf) {
			return p, true
		}
	}
	return 0, false
}
