//go:build ignore

// gen writes the log corpus of bench/logs.sh: JSON lines and log4j lines,
// some of them ERROR lines followed by a Java stack trace (with "Caused
// by:" and "... N more"), deterministically from a fixed seed. With the
// default -lines 1000000 it writes about 105 MB, the shape of the corpus
// the recorded Fluent Bit figures were measured on.
//
//	go run bench/logs/gen.go -lines 1000000 -o corpus.log
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

var (
	levels   = []string{"INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN"}
	loggers  = []string{"com.example.api.OrderController", "com.example.service.PaymentService", "com.example.repo.InventoryRepository", "org.springframework.web.servlet.DispatcherServlet", "com.example.cache.SessionCache"}
	threads  = []string{"main", "http-nio-8080-exec-1", "http-nio-8080-exec-7", "pool-3-thread-2", "scheduling-1"}
	paths    = []string{"/api/v1/orders", "/api/v1/items", "/api/v1/users/me", "/healthz", "/api/v2/search"}
	methods  = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	messages = []string{"request served", "cache refreshed", "order accepted", "payment authorized", "user session renewed"}
	excs     = []string{"java.lang.IllegalStateException", "java.lang.NullPointerException", "java.io.IOException", "org.springframework.dao.DataAccessResourceFailureException"}
	frames   = []string{
		"com.example.service.PaymentService.charge(PaymentService.java:142)",
		"com.example.api.OrderController.create(OrderController.java:88)",
		"jdk.internal.reflect.GeneratedMethodAccessor42.invoke(Unknown Source)",
		"org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:205)",
		"org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)",
		"java.base/java.lang.Thread.run(Thread.java:833)",
	}
)

func main() {
	lines := flag.Int("lines", 1000000, "number of lines to write")
	out := flag.String("o", "corpus.log", "output file")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	t := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	n, events, bytes := 0, 0, 0
	emit := func(s string) {
		w.WriteString(s)
		w.WriteByte('\n')
		n++
		bytes += len(s) + 1
	}
	for n < *lines {
		t = t.Add(time.Duration(r.IntN(3000)) * time.Microsecond)
		events++
		switch k := r.IntN(100); {
		case k < 55:
			emit(`{"time":"` + t.Format("2006-01-02T15:04:05.000Z07:00") + `","level":"` + pick([]string{"info", "info", "debug", "warn"}) +
				`","msg":"` + pick(messages) + `","method":"` + pick(methods) + `","path":"` + pick(paths) +
				`","status":` + strconv.Itoa(200+r.IntN(4)) + `,"duration_ms":` + strconv.Itoa(r.IntN(900)) + `}`)
		case k < 93:
			emit(t.Format("2006-01-02 15:04:05,000") + " " + pick(levels) + " [" + pick(threads) + "] " + pick(loggers) +
				" - " + pick(messages) + " id=" + strconv.Itoa(r.IntN(1000000)))
		default:
			emit(t.Format("2006-01-02 15:04:05,000") + " ERROR [" + pick(threads) + "] " + pick(loggers) + " - request failed id=" + strconv.Itoa(r.IntN(1000000)))
			emit(pick(excs) + ": " + pick([]string{"connection reset", "value was null", "timeout after 30000 ms"}))
			depth := 4 + r.IntN(8)
			for i := 0; i < depth && n < *lines; i++ {
				emit("\tat " + pick(frames))
			}
			if r.IntN(2) == 0 && n < *lines {
				emit("Caused by: " + pick(excs) + ": " + "root cause")
				emit("\tat " + pick(frames))
				emit("\t... " + strconv.Itoa(depth) + " more")
			}
		}
	}
	if err := w.Flush(); err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%s: %d lines, %d events, %d bytes\n", *out, n, events, bytes)
}
