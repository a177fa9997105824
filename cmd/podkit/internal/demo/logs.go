package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/podkit/podkit/adapter/logs"
)

// startLogs runs the log adapter on a sample log that keeps growing (log4j
// lines with a Java stack trace, JSON lines, an access log line), writing
// the normalized stream to a file, and polls the SLOWLOG of a redis-server
// that logs every command, when one is installed.
func startLogs(ctx context.Context, d *env) ([]Endpoint, <-chan error, error) {
	dir, err := d.tempDir("logs")
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(dir, "app.log")
	outPath := filepath.Join(dir, "normalized.jsonl")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return nil, nil, err
	}
	out, err := os.Create(outPath)
	if err != nil {
		return nil, nil, err
	}
	go writeDemoLog(ctx, logPath)

	cfg := logs.DefaultConfig()
	cfg.Files = []string{logPath}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Multiline = "auto"
	cfg.Stdout = out
	cfg.Every = 2 * time.Second
	var eps []Endpoint
	redisNote := ""
	if bin := lookPeer("redis-server"); bin == "" {
		redisNote = "redis-server not installed: SLOWLOG polling not shown"
	} else {
		addr := d.port()
		host, port, _ := net.SplitHostPort(addr)
		rdir := filepath.Join(dir, "redis")
		os.MkdirAll(rdir, 0o755)
		if _, err := startAdapterPeer(ctx, d, addr, bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no",
			"--dir", rdir, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "128", "--logfile", ""); err != nil {
			redisNote = "redis-server did not start (" + err.Error() + "): SLOWLOG polling not shown"
		} else {
			cfg.RedisSlowlog = []string{addr}
			eps = append(eps, Endpoint{"logs", "redis-server logging every command to SLOWLOG (try redis-cli -p " + port + " set k v)", "redis://" + addr})
		}
	}
	l, err := logs.New(cfg)
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	admin, runErr, err := d.run(ctx, l)
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	// The output file closes once the adapter has written its last line.
	errc := make(chan error, 1)
	go func() {
		err := <-runErr
		out.Close()
		errc <- err
	}()
	eps = append([]Endpoint{
		{"logs", "normalized JSON lines of " + logPath + " (tail -f " + outPath + ")", admin + "/metrics"},
	}, eps...)
	if redisNote != "" {
		eps = append(eps, Endpoint{"logs", redisNote, ""})
	}
	return eps, errc, nil
}

// writeDemoLog appends a few lines of different formats every 2 s.
func writeDemoLog(ctx context.Context, path string) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return
		}
		now := time.Now()
		fmt.Fprintf(f, "%s INFO [main] com.example.App - request %d served\n", now.Format("2006-01-02 15:04:05,000"), i)
		fmt.Fprintf(f, `{"time":%q,"level":"warn","msg":"slow request","id":%d,"ms":850}`+"\n", now.Format(time.RFC3339Nano), i)
		if i%3 == 0 {
			fmt.Fprintf(f, "%s ERROR [main] com.example.App - request %d failed\njava.lang.IllegalStateException: boom\n\tat com.example.App.handle(App.java:42)\n\tat com.example.App.run(App.java:17)\n",
				now.Format("2006-01-02 15:04:05,000"), i)
		}
		fmt.Fprintf(f, "127.0.0.1 - - [%s] \"GET /items/%d HTTP/1.1\" 200 512\n", now.Format("02/Jan/2006:15:04:05 -0700"), i)
		f.Close()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
