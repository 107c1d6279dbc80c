// Command ktbench measures ktpipe's hot path, decode → validate →
// transform → encode-for-load, over generated export files in every
// format, and prints a table of events/s and peak memory.
//
// Each case runs in a child process so its peak RSS is its own:
//
//	go run ./cmd/ktbench -events 1000000
//
// With -e2e it runs the whole workflow on the local stack and measures
// it (e2e.go). With -model it prints the cost model of ktpipe's own BigQuery
// statements (model.go). With -hostile it measures peak memory on files made to hurt: a 100 MB
// NDJSON line, a 100 MB JSON array element and a gzip bomb.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
)

func main() {
	events := flag.Int("events", 1_000_000, "events per generated export file")
	formats := flag.String("formats", "json,ndjson,csv,ndjson.gz", "cases to run")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "ktbench"), "where generated files are cached")
	runs := flag.Int("runs", 3, "runs per case; the median is reported")
	child := flag.String("child", "", "internal: run one case on this file")
	wh := flag.Bool("warehouse", false, "benchmark the load path and dedup on the BigQuery emulator instead")
	whSizes := flag.String("fact-sizes", "100000,1000000", "with -warehouse: fact table sizes to measure dedup at")
	whChunk := flag.Int("chunk-rows", 50000, "with -warehouse or -e2e: rows per chunk")
	hostile := flag.Bool("hostile", false, "measure peak memory on hostile files (100 MB record, gzip bomb) instead")
	python := flag.String("python", "python3", "interpreter for the guide's pattern, run beside the json case on the same file (empty: skip)")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile of the split here")
	model := flag.Bool("model", false, "print the BigQuery cost model (statements counted on the emulator, scaled to 1M, 10M and 100M events a day)")
	modelWebhookBatch := flag.Duration("model-webhook-batch", time.Minute, "with -model: KTPIPE_WEBHOOK_BATCH, the length of a webhook load (1m, its default: 1,440 loads a day)")
	e2e := flag.Bool("e2e", false, "run the whole workflow on the local stack (Temporal dev server, emulator, simulator, worker) and measure it (e2e.go)")
	e2eEvents := flag.Int("e2e-events", 1_000_000, "with -e2e: events exported and pulled")
	e2eRate := flag.Float64("e2e-webhook-rate", 200, "with -e2e: webhook deliveries per second (0: skip the webhook path)")
	e2eFor := flag.Duration("e2e-webhook-for", 30*time.Second, "with -e2e: how long webhooks are delivered")
	e2eDelivery := flag.Int("e2e-webhook-events", 1, "with -e2e: events per webhook delivery")
	e2eWindow := flag.Duration("e2e-webhook-window", 10*time.Second, "with -e2e: KTPIPE_WEBHOOK_BATCH of the worker")
	e2eShared := flag.Bool("e2e-webhook-shared", true, "with -e2e: KTPIPE_WEBHOOK_SHARED_SIGNALS of the worker")
	fresh := flag.Bool("freshness", false, "measure how long after the simulator makes an event it is queryable in fact_ai_event_live, by webhook and by pull (freshness.go)")
	freshRate := flag.Float64("freshness-rate", 20, "with -freshness: webhook deliveries (and pull-path event batches) a second")
	freshEvents := flag.Int("freshness-events", 10, "with -freshness: events per delivery")
	freshFor := flag.Duration("freshness-for", 30*time.Second, "with -freshness: how long webhook events are made")
	freshWindow := flag.Duration("freshness-window", time.Minute, "with -freshness: KTPIPE_WEBHOOK_BATCH (its default)")
	freshLive := flag.Duration("freshness-live", 2*time.Second, "with -freshness: KTPIPE_WEBHOOK_LIVE (its default)")
	freshPull := flag.Duration("freshness-pull-every", time.Minute, "with -freshness: a pull this often, the schedule's least (0: skip the pull path)")
	freshPullFor := flag.Duration("freshness-pull-for", 90*time.Second, "with -freshness: how long pull-path events are made")
	freshCompact := flag.Duration("freshness-compact", 0, "with -freshness: KTPIPE_COMPACT_EVERY for both paths (0: off); the loads wait for the compaction, the live view shows them")
	freshLiveOnly := flag.Bool("freshness-live-only", false, "with -freshness and -freshness-compact: KTPIPE_WEBHOOK_LIVE_ONLY, webhook batches that load nothing")
	flag.Parse()

	// Ctrl-C, a kill, or a reader that goes away (ktbench -model | head)
	// stops the run and the services it started. By default the first
	// write to a closed pipe ends the process before its deferred stops,
	// and its emulator or dev server runs on: with SIGPIPE ignored the
	// write fails instead, and out cancels the run. Not signal.Notify for
	// SIGPIPE: that would take a broken socket to a service for it too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := stopOnWriteError{w: os.Stdout, stop: cancel}

	if *fresh {
		o := freshnessOptions{Runs: *runs, Dir: filepath.Join(*dir, "freshness"), ChunkRows: *whChunk,
			Rate: *freshRate, Events: *freshEvents, For: *freshFor, Window: *freshWindow, Live: *freshLive,
			PullEvery: *freshPull, PullFor: *freshPullFor, CompactEvery: *freshCompact, LiveOnly: *freshLiveOnly}
		if err := runFreshness(ctx, out, o); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *e2e {
		o := e2eOptions{Events: *e2eEvents, Runs: *runs, ChunkRows: *whChunk, Dir: filepath.Join(*dir, "e2e"),
			WebhookRate: *e2eRate, WebhookFor: *e2eFor, WebhookEvents: *e2eDelivery, WebhookWindow: *e2eWindow, SharedSignals: *e2eShared}
		if err := runE2E(ctx, out, o); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *model {
		if err := runModel(ctx, out, []float64{1e6, 1e7, 1e8}, *modelWebhookBatch); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *hostile {
		if err := runHostile(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *wh {
		var sizes []int
		for _, s := range strings.Split(*whSizes, ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				fmt.Fprintln(os.Stderr, "ktbench: -fact-sizes: want positive integers")
				os.Exit(2)
			}
			sizes = append(sizes, n)
		}
		if err := benchWarehouse(ctx, out, sizes, *whChunk); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *child != "" {
		if err := runChild(*child, *cpuprofile); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*events, strings.Split(*formats, ","), *dir, *runs, *python); err != nil {
		fmt.Fprintln(os.Stderr, "ktbench:", err)
		os.Exit(1)
	}
}

// stopOnWriteError is ktbench's output: the first write that fails (its
// reader went away) cancels the run with that error.
type stopOnWriteError struct {
	w    io.Writer
	stop context.CancelCauseFunc
}

func (o stopOnWriteError) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.stop(fmt.Errorf("write output: %w", err))
	}
	return n, err
}

func run(events int, cases []string, dir string, runs int, python string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cpu := cpuModel()
	pin := "GOMAXPROCS=1"
	if _, err := exec.LookPath("taskset"); err == nil {
		pin += ", taskset -c " + benchCPU
	}
	fmt.Printf("machine: %s, %d cores (one core per case: %s), %s\n", cpu, runtime.NumCPU(), pin, runtime.Version())
	fmt.Printf("%-10s %10s %10s %14s %10s %12s\n", "format", "events", "file MB", "events/s", "MB/s", "peak RSS MB")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var sideBySide []string
	for _, c := range cases {
		format, gz := strings.TrimSuffix(c, ".gz"), strings.HasSuffix(c, ".gz")
		path := filepath.Join(dir, fmt.Sprintf("events-%d.%s", events, c))
		if _, err := os.Stat(path); err != nil {
			if err := generate(path, events, format, gz); err != nil {
				return err
			}
		}
		st, _ := os.Stat(path)
		// The guide's pattern runs on the plain JSON file, alternating
		// with ktpipe's runs so both see the same machine.
		guide := python != "" && c == "json"
		var rates, pyRates, cpuRates, pyCPURates []float64
		var peak, pyPeak int64
		for i := 0; i < runs; i++ {
			n, secs, cpu, rss, err := runGoCase(self, path)
			if err != nil {
				return fmt.Errorf("case %s: %w", c, err)
			}
			if n != int64(events) {
				return fmt.Errorf("case %s: processed %d records, want %d", c, n, events)
			}
			rates = append(rates, float64(n)/secs)
			cpuRates = append(cpuRates, float64(n)/cpu)
			peak = max(peak, rss)
			if guide {
				pn, psecs, pcpu, prss, err := runGuidePattern(python, path, dir)
				if err != nil {
					return fmt.Errorf("guide's pattern: %w", err)
				}
				if pn != int64(events) {
					return fmt.Errorf("guide's pattern: read %d records, want %d", pn, events)
				}
				pyRates = append(pyRates, float64(pn)/psecs)
				pyCPURates = append(pyCPURates, float64(pn)/pcpu)
				pyPeak = max(pyPeak, prss)
			}
		}
		med := median(rates)
		fmt.Printf("%-10s %10d %10.0f %14.0f %10.1f %12.1f\n", c, events, float64(st.Size())/1e6, med, med*float64(st.Size())/float64(events)/1e6, float64(peak)/1024)
		if guide {
			pmed, cmed, pcmed := median(pyRates), median(cpuRates), median(pyCPURates)
			sideBySide = append(sideBySide,
				fmt.Sprintf("%-34s %14.0f %14.0f %12.1f", "ktpipe split (json)", med, cmed, float64(peak)/1024),
				fmt.Sprintf("%-34s %14.0f %14.0f %12.1f", "guide's pattern ("+pythonVersion(python)+")", pmed, pcmed, float64(pyPeak)/1024),
				fmt.Sprintf("ratio: %.2f× the events/s (%.2f× per CPU-second) at %.3f× the peak memory", med/pmed, cmed/pcmed, float64(peak)/float64(pyPeak)),
				fmt.Sprintf("(medians of %d alternating runs; events/s per run: ktpipe %s, guide %s)", runs, rateList(rates), rateList(pyRates)))
		}
	}
	if len(sideBySide) > 0 {
		fmt.Printf("\nside by side on the same json file, one core each:\n%-34s %14s %14s %12s\n", "", "events/s", "events/CPU-s", "peak RSS MB")
		for _, l := range sideBySide {
			fmt.Println(l)
		}
	}
	return nil
}

// benchCPU is the core both sides are pinned to when taskset exists.
const benchCPU = "1"

// oneCore returns a command for name and args pinned to one core, with
// Go's scheduler told so too.
func oneCore(name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ts, err := exec.LookPath("taskset"); err == nil {
		cmd = exec.Command(ts, append([]string{"-c", benchCPU, name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	return cmd
}

// runGoCase runs the real Splitter over path in a child and returns its
// records, seconds (its own clock), CPU seconds and peak RSS (kB), the
// last two from the child's rusage. On a shared machine CPU seconds are
// the steadier measure of one core's rate.
func runGoCase(self, path string) (n int64, secs, cpu float64, rss int64, err error) {
	cmd := oneCore(self, "-child", path)
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	var childRSS int64
	if _, err := fmt.Sscan(string(out), &n, &secs, &childRSS); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("parse %q: %w", out, err)
	}
	return n, secs, cpuSeconds(cmd), maxRSS(cmd), nil
}

func cpuSeconds(cmd *exec.Cmd) float64 {
	return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
}

//go:embed guide_pattern.py
var guidePattern []byte

// runGuidePattern runs the guide's Python pattern over path (NDJSON to
// the null device, as ktpipe's chunks go to a discarding sink here) and
// returns the records it read, its seconds (its own clock, from open to
// the last line written) and its peak RSS (kB).
func runGuidePattern(python, path, dir string) (n int64, secs, cpu float64, rss int64, err error) {
	script := filepath.Join(dir, "guide_pattern.py")
	if err := os.WriteFile(script, guidePattern, 0o644); err != nil {
		return 0, 0, 0, 0, err
	}
	cmd := oneCore(python, script, path, os.DevNull)
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	var done, skipped int64
	if _, err := fmt.Sscan(string(out), &n, &done, &skipped, &secs); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("parse %q: %w", out, err)
	}
	return n, secs, cpuSeconds(cmd), maxRSS(cmd), nil
}

func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // kB on Linux
	}
	return 0
}

func pythonVersion(python string) string {
	out, err := exec.Command(python, "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		return python
	}
	return "Python " + strings.TrimSpace(string(out))
}

func rateList(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.0fk", x/1000))
	}
	return strings.Join(parts, " ")
}

func generate(path string, events int, format string, gz bool) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if err := ktsim.WriteFile(f, ktsim.FileOptions{Events: events, Format: format, Gzip: gz, Seed: 42, InvalidRate: 0.01}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

type discard struct{}

func (discard) Create(string) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// runChild runs the real Splitter over one file and prints records,
// seconds and peak RSS (kB).
func runChild(path, cpuprofile string) error {
	if cpuprofile != "" {
		pf, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	name := filepath.Base(path)
	gz := strings.HasSuffix(name, ".gz")
	format, err := schemas.ParseFormat(strings.Split(strings.TrimSuffix(name, ".gz"), ".")[1])
	if err != nil {
		return err
	}
	gateways := schemas.GatewaySet{}
	for _, id := range ktsim.GatewayIDs(42) {
		gateways[id] = true
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	dec, err := schemas.NewDecoder(f, format, gz)
	if err != nil {
		return err
	}
	sp, err := staging.NewSplitter(staging.SplitOptions{LoadID: "bench", Source: "export", ChunkRows: 50_000, Gateways: gateways, IngestedAt: start}, discard{})
	if err != nil {
		return err
	}
	if err := sp.Add(dec); err != nil {
		return err
	}
	man, err := sp.Close()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Println(man.Records, secs, peakRSS())
	return nil
}

func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return runtime.GOARCH
}

func median(xs []float64) float64 {
	for i := range xs {
		for j := i + 1; j < len(xs); j++ {
			if xs[j] < xs[i] {
				xs[i], xs[j] = xs[j], xs[i]
			}
		}
	}
	return xs[len(xs)/2]
}

// runHostile runs the Splitter over hostile files, each in a child, and
// prints how each ended and the child's peak RSS (from its rusage, so a
// refused file is measured too).
func runHostile(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("%-26s %9s %12s  %s\n", "file", "file MB", "peak RSS MB", "outcome")
	for _, name := range []string{"hostile-line.ndjson", "hostile-element.json", "hostile-bomb.ndjson.gz"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			if err := writeHostile(path); err != nil {
				return err
			}
		}
		st, _ := os.Stat(path)
		cmd := exec.Command(self, "-child", path)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		out, err := cmd.CombinedOutput()
		var records int64
		var secs float64
		fmt.Sscan(string(out), &records, &secs)
		outcome := fmt.Sprintf("split: %d records in %.2f s", records, secs)
		if err != nil {
			outcome = "refused: " + strings.TrimSpace(string(out))
		}
		rss := maxRSS(cmd)
		fmt.Printf("%-26s %9.1f %12.1f  %s\n", name, float64(st.Size())/1e6, float64(rss)/1024, outcome)
	}
	return nil
}

// writeHostile writes one hostile file: a valid event, a record with a
// 100 MB metadata string, a valid event; or a gzip stream of 1000
// members of 1 MiB each (~1 MB inflating to ~1 GB), one NDJSON line.
func writeHostile(path string) error {
	const ev = `{"id":"0b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","timestamp":"2026-11-01T10:15:30Z","gateway_id":"11111111-2222-4333-8444-555555555555","user":"u","provider":"openai","model":"gpt-4o","decision":"allow","latency_ms":1,"input_tokens":2,"output_tokens":3,"cost":"0.1"}`
	const head = `{"id":"1b6c7e9e-3f1a-4c2b-9d7e-1a2b3c4d5e6f","metadata":{"pad":"`
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	pad := strings.Repeat("x", 1<<20)
	switch {
	case strings.HasSuffix(path, ".ndjson"):
		w.WriteString(ev + "\n" + head)
		for i := 0; i < 100; i++ {
			w.WriteString(pad)
		}
		w.WriteString(`"}}` + "\n" + ev + "\n")
	case strings.HasSuffix(path, ".json"):
		w.WriteString("[" + ev + ",\n" + head)
		for i := 0; i < 100; i++ {
			w.WriteString(pad)
		}
		w.WriteString(`"}},` + "\n" + ev + "]")
	default:
		// gzip readers read concatenated members as one stream.
		member := func(s string) []byte {
			var b strings.Builder
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			io.WriteString(zw, s)
			zw.Close()
			return []byte(b.String())
		}
		w.Write(member(head))
		m := member(pad)
		for i := 0; i < 1000; i++ {
			w.Write(m)
		}
		w.Write(member(`"}}` + "\n"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
