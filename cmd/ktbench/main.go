// Command ktbench measures ktpipe's hot path, decode → validate →
// transform → encode-for-load, over generated export files in every
// format, and prints a table of events/s and peak memory.
//
// Each case runs in a child process so its peak RSS is its own:
//
//	go run ./cmd/ktbench -events 1000000
//
// With -hostile it measures peak memory on files made to hurt: a 100 MB
// NDJSON line, a 100 MB JSON array element and a gzip bomb.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	whChunk := flag.Int("chunk-rows", 50000, "with -warehouse: rows per chunk")
	hostile := flag.Bool("hostile", false, "measure peak memory on hostile files (100 MB record, gzip bomb) instead")
	flag.Parse()

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
		if err := benchWarehouse(sizes, *whChunk); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}

	if *child != "" {
		if err := runChild(*child); err != nil {
			fmt.Fprintln(os.Stderr, "ktbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*events, strings.Split(*formats, ","), *dir, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "ktbench:", err)
		os.Exit(1)
	}
}

func run(events int, cases []string, dir string, runs int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cpu := cpuModel()
	fmt.Printf("machine: %s, %d cores (GOMAXPROCS=1 per case), %s\n", cpu, runtime.NumCPU(), runtime.Version())
	fmt.Printf("%-10s %10s %10s %14s %10s %12s\n", "format", "events", "file MB", "events/s", "MB/s", "peak RSS MB")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, c := range cases {
		format, gz := strings.TrimSuffix(c, ".gz"), strings.HasSuffix(c, ".gz")
		path := filepath.Join(dir, fmt.Sprintf("events-%d.%s", events, c))
		if _, err := os.Stat(path); err != nil {
			if err := generate(path, events, format, gz); err != nil {
				return err
			}
		}
		st, _ := os.Stat(path)
		var rates []float64
		var peak int64
		for i := 0; i < runs; i++ {
			cmd := exec.Command(self, "-child", path)
			cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("case %s: %w", c, err)
			}
			var n int64
			var secs float64
			var rss int64
			if _, err := fmt.Sscan(string(out), &n, &secs, &rss); err != nil {
				return fmt.Errorf("case %s: parse %q: %w", c, out, err)
			}
			if n != int64(events) {
				return fmt.Errorf("case %s: processed %d records, want %d", c, n, events)
			}
			rates = append(rates, float64(n)/secs)
			peak = max(peak, rss)
		}
		med := median(rates)
		fmt.Printf("%-10s %10d %10.0f %14.0f %10.1f %12.1f\n", c, events, float64(st.Size())/1e6, med, med*float64(st.Size())/float64(events)/1e6, float64(peak)/1024)
	}
	return nil
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
func runChild(path string) error {
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
		var rss int64
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss // kB on Linux
		}
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
