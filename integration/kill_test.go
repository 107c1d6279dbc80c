package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/workflows"
)

// buildWorker compiles the real worker command once per test.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	cmd := exec.Command("go", "build", "-o", bin, "../worker")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build worker: %v", err)
	}
	return bin
}

// startWorkerProcess runs the worker binary configured for this stack.
func (s *stack) startWorkerProcess(bin string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+temporalSrv.FrontendHostPort(),
		"KTPIPE_TASK_QUEUE="+s.tq,
		"KEEPTRUSTS_BASE_URL="+s.simURL,
		"KEEPTRUSTS_API_TOKEN="+token,
		"BIGQUERY_PROJECT="+project,
		"BIGQUERY_DATASET="+s.dataset,
		"BIGQUERY_ENDPOINT="+s.emu.Endpoint,
		"KTPIPE_STAGING_DIR="+s.staging,
		"KTPIPE_CHUNK_ROWS=150",
		"KTPIPE_CONCURRENCY=2",
	)
	logf, err := os.Create(filepath.Join(s.staging, fmt.Sprintf("worker-%d.log", time.Now().UnixNano())))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if s.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			s.t.Logf("worker log %s:\n%s", filepath.Base(logf.Name()), b)
		}
	})
	return cmd
}

// waitPhase polls the progress query until ok says so.
func waitPhase(t *testing.T, id string, ok func(workflows.ExportProgress) bool) workflows.ExportProgress {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		v, err := temporalSrv.Client().QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
		if err != nil {
			continue // no worker to answer right now
		}
		var p workflows.ExportProgress
		if v.Get(&p) == nil && ok(p) {
			return p
		}
	}
	t.Fatalf("workflow %s never reached the phase", id)
	return workflows.ExportProgress{}
}

func TestWorkerKilledMidLoad(t *testing.T) {
	bin := buildWorker(t)
	cfg := simConfig()
	cfg.HistoryEvents = 3000
	cfg.Faults = ktsim.Faults{DropRate: 0.3, SlowRate: 0.3, Slow: 150 * time.Millisecond}
	s := newStack(t, cfg, false)
	since, until := s.historyWindow()
	ctx := context.Background()

	w1 := s.startWorkerProcess(bin)
	id := "export-killed-" + s.tq
	tuning := s.tuning
	tuning.HeartbeatTimeout, tuning.Concurrency = 2*time.Second, 2
	run, err := temporalSrv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.tq}, workflows.ExportLoad,
		workflows.ExportLoadInput{Since: since, Until: until, Format: "ndjson", Tuning: tuning})
	if err != nil {
		t.Fatal(err)
	}

	// Kill -9 once while the export is being fetched or split...
	p := waitPhase(t, id, func(p workflows.ExportProgress) bool {
		return p.Phase == "downloading" || p.Phase == "splitting" || p.Phase == "loading"
	})
	w1.Process.Signal(syscall.SIGKILL)
	w1.Wait()
	t.Logf("killed worker 1 in phase %s", p.Phase)

	// ...and again in the middle of loading chunks.
	killed := time.Now()
	w2 := s.startWorkerProcess(bin)
	logRecovery(t, id, 1, killed, p)
	p = waitPhase(t, id, func(p workflows.ExportProgress) bool { return p.Phase == "loading" && p.ChunksStaged >= 3 })
	w2.Process.Signal(syscall.SIGKILL)
	w2.Wait()
	t.Logf("killed worker 2 with %d of %d chunks staged", p.ChunksStaged, p.ChunksTotal)

	killed = time.Now()
	s.startWorkerProcess(bin)
	p = waitPhase(t, id, func(q workflows.ExportProgress) bool { return q.ChunksStaged >= p.ChunksStaged })
	logRecovery(t, id, 2, killed, p)
	var res workflows.ExportLoadResult
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := run.Get(ctx2, &res); err != nil {
		t.Fatal(err)
	}
	if res.Chunks < 10 {
		t.Fatalf("result %+v: want many chunks", res)
	}
	s.assertExactlyOnce(since, until)
}

// logRecovery logs how long after a kill (and immediate restart) the
// load's progress moved past before.
func logRecovery(t *testing.T, id string, kill int, killed time.Time, before workflows.ExportProgress) {
	t.Helper()
	after := waitPhase(t, id, func(p workflows.ExportProgress) bool { return p != before })
	t.Logf("kill %d: next progress after %s (%s, %d chunks staged → %s, %d)", kill, time.Since(killed).Round(100*time.Millisecond),
		before.Phase, before.ChunksStaged, after.Phase, after.ChunksStaged)
}
