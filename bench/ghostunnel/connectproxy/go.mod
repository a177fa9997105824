// A stand-in for github.com/wrouesnel/go.connect-proxy-scheme, which
// ghostunnel imports but the Go module proxy does not serve (403). See
// ../README.md.
module github.com/wrouesnel/go.connect-proxy-scheme

go 1.26.8

require golang.org/x/net v0.58.0
