package httpproxy

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	head := []byte("GET /api/v1/items?id=42 HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=abcdef0123456789\r\nConnection: keep-alive\r\n\r\n")
	var m msg
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if err := parseRequest(&m, head, "x-forwarded-client-cert"); err != nil {
			b.Fatal(err)
		}
	}
}
