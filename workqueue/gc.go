package workqueue

// DefaultGCPercent is the coordinator's garbage collection target when
// neither --gc-percent nor GOGC says otherwise. The coordinator's heap is
// mostly its items, and each request allocates a few kilobytes in
// net/http and encoding/json; with Go's default of 100 the collector runs
// every few hundred milliseconds at 1,000 jobs/s, and leases handed out
// while it marks wait several times longer (bench/RESULTS.md, queue). At
// 400 it runs a quarter as often, for a heap of up to five times the live
// data; the memory limit (--memory-limit, by default 90% of the
// container's) bounds that.
const DefaultGCPercent = 400
