package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/control"
	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/ktsim"
	"github.com/ktpipe/ktpipe/warehouse"
)

const (
	project       = "ktpipe-chaos"
	dataset       = "keeptrusts"
	taskQueue     = "ktpipe"
	webhookSecret = "whsec-chaos"
)

// stack is the whole pipeline on this machine, every part restartable:
// the dev server (its state in a database file), the emulator, the
// simulator's HTTP server (its data in this process) and the worker (an
// OS process, so it can be SIGKILLed).
type stack struct {
	o    Options
	logs *os.File // services' output

	temporalAddr string
	dbFile       string
	temporal     *testsuite.DevServer
	tc           client.Client // the soak's own client: it outlives dev server restarts

	emu *devstack.Emulator
	wh  *warehouse.Warehouse

	sim     *ktsim.Server
	simAddr string
	simMu   sync.Mutex
	simSrv  *http.Server

	bqClose func() error

	env        []string // the worker's configuration
	envMap     map[string]string
	worker     *exec.Cmd
	workerDone chan struct{} // closed once the worker process is reaped
	workerN    int
	ctl        *control.Control
}

func startStack(ctx context.Context, o Options) (s *stack, err error) {
	s = &stack{o: o, dbFile: filepath.Join(o.Dir, "temporal.db")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.logs, err = os.Create(filepath.Join(o.Dir, "services.log")); err != nil {
		return nil, err
	}
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	// A fixed port and database file, so a restart finds its state and
	// every client its server again.
	s.temporalAddr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := s.startTemporal(ctx); err != nil {
		return nil, err
	}
	quiet := log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if s.tc, err = client.Dial(client.Options{HostPort: s.temporalAddr, Logger: quiet}); err != nil {
		return nil, fmt.Errorf("connect to the dev server: %w", err)
	}
	s.ctl = &control.Control{Client: s.tc, TaskQueue: taskQueue}

	if s.emu, err = devstack.StartEmulator(ctx, project, s.logs); err != nil {
		return nil, err
	}
	bq, err := s.emu.Client(ctx)
	if err != nil {
		return nil, err
	}
	s.bqClose = bq.Close
	if s.wh, err = warehouse.New(bq, project, dataset, "US"); err != nil {
		return nil, err
	}

	webhookPort, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	webhookAddr := fmt.Sprintf("127.0.0.1:%d", webhookPort)
	cfg := ktsim.DefaultConfig()
	cfg.Seed, cfg.HistoryDays, cfg.HistoryEvents = o.Seed, o.Days, o.Events
	cfg.InvalidRate, cfg.LateRate = 0.02, 0.1
	cfg.Faults = baseFaults
	// Deliveries keep retrying across a worker restart (a few seconds) and
	// a dev server restart; one given up is still pulled.
	cfg.Webhooks = []ktsim.Webhook{{URL: "http://" + webhookAddr, Secret: webhookSecret, Subscription: "all",
		MaxAttempts: 40, MaxBackoff: 5 * time.Second}}
	s.sim = ktsim.New(cfg)
	simPort, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	s.simAddr = fmt.Sprintf("127.0.0.1:%d", simPort)
	if err := s.serveSim(); err != nil {
		return nil, err
	}

	users := filepath.Join(o.Dir, "users.csv")
	if err := writeUserMap(users, s.sim.Users()); err != nil {
		return nil, err
	}
	s.envMap = map[string]string{
		"TEMPORAL_ADDRESS":          s.temporalAddr,
		"TEMPORAL_CONFIG_FILE":      os.DevNull, // not the user's own Temporal CLI profile: this stack's dev server
		"KTPIPE_TASK_QUEUE":         taskQueue,
		"KEEPTRUSTS_BASE_URL":       "http://" + s.simAddr,
		"KEEPTRUSTS_API_TOKEN":      cfg.Token,
		"BIGQUERY_PROJECT":          project,
		"BIGQUERY_DATASET":          dataset,
		"BIGQUERY_ENDPOINT":         s.emu.Endpoint,
		"KTPIPE_STAGING_DIR":        filepath.Join(o.Dir, "staging"),
		"KTPIPE_CHUNK_ROWS":         fmt.Sprint(o.ChunkRows),
		"KTPIPE_USER_MAP":           users,
		"KTPIPE_WEBHOOK_ADDR":       webhookAddr,
		"KEEPTRUSTS_WEBHOOK_SECRET": webhookSecret,
		"KTPIPE_WEBHOOK_BATCH":      o.WebhookBatch.String(),
		"KTPIPE_METRICS_ADDR":       "127.0.0.1:0", // worker processes overlap across kills
	}
	for k, v := range s.envMap {
		s.env = append(s.env, k+"="+v)
	}
	return s, nil
}

// baseFaults are the API's background noise for the whole soak: cut
// downloads and resent pages, which cost retries and dedup but no waits.
var baseFaults = ktsim.Faults{DropRate: 0.1, ResendRate: 0.1}

func (s *stack) startTemporal(ctx context.Context) error {
	srv, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{HostPort: s.temporalAddr, DBFile: s.dbFile,
		Logs: s.logs, SearchAttributes: app.SearchAttributeTypes()})
	if err != nil {
		return err
	}
	s.temporal = srv
	return nil
}

// restartTemporal stops the dev server (SIGINT, as an operator would)
// and starts it again on the same port and database file; it returns how
// long the server was away.
func (s *stack) restartTemporal(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if err := s.stopTemporal(); err != nil {
		return 0, err
	}
	err := s.startTemporal(ctx)
	return time.Since(start), err
}

// stopTemporal stops the dev server, waiting at most a minute.
func (s *stack) stopTemporal() error {
	if s.temporal == nil {
		return nil
	}
	srv := s.temporal
	s.temporal = nil
	srv.Client().Close()
	done := make(chan error, 1)
	go func() { done <- srv.Stop() }()
	select {
	case err := <-done:
		if err != nil && !strings.Contains(err.Error(), "signal: interrupt") {
			return fmt.Errorf("stop the dev server: %w", err)
		}
		return nil
	case <-time.After(time.Minute):
		return errors.New("the dev server did not stop within a minute of SIGINT")
	}
}

// serveSim serves the simulator on its address (retrying briefly while
// the old listener's port is released).
func (s *stack) serveSim() error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.simAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	srv := &http.Server{Handler: s.sim, ReadHeaderTimeout: 10 * time.Second}
	s.simMu.Lock()
	s.simSrv = srv
	s.simMu.Unlock()
	go srv.Serve(ln)
	return nil
}

// restartSim stops the simulator's HTTP server (every connection cut,
// the port refusing connections for down) and serves it again on the
// same port. Its data, exports and cursors live on in this process, as a
// real API's do across a restart, so the ground truth stays.
func (s *stack) restartSim(down time.Duration) error {
	s.simMu.Lock()
	srv := s.simSrv
	s.simMu.Unlock()
	srv.Close()
	time.Sleep(down)
	return s.serveSim()
}

// startWorker starts a worker process and returns its pid.
func (s *stack) startWorker() (int, error) {
	s.workerN++
	logf, err := os.Create(filepath.Join(s.o.Dir, fmt.Sprintf("worker-%02d.log", s.workerN)))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(s.o.WorkerCommand[0], s.o.WorkerCommand[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start worker %s: %w", s.o.WorkerCommand[0], err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.worker, s.workerDone = cmd, done
	return cmd.Process.Pid, nil
}

// killWorker SIGKILLs the worker process and waits until it is gone.
func (s *stack) killWorker() error {
	p := s.worker.Process
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill worker %d: %w", p.Pid, err)
	}
	select {
	case <-s.workerDone:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("worker %d still there 10s after SIGKILL", p.Pid)
	}
}

// waitWorkerUp waits, at most bound, until the worker process pid polls
// the task queue, and says when it was seen polling.
func (s *stack) waitWorkerUp(ctx context.Context, pid int, bound time.Duration) (time.Time, bool) {
	start := time.Now()
	prefix := fmt.Sprintf("%d@", pid) // the SDK's default identity is pid@host
	for time.Since(start) < bound && ctx.Err() == nil {
		d, err := s.tc.DescribeTaskQueue(ctx, taskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err == nil {
			for _, p := range d.Pollers {
				if strings.HasPrefix(p.Identity, prefix) {
					return time.Now(), true
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Now(), false
}

// stop ends everything this stack started.
func (s *stack) stop() {
	if s.worker != nil {
		// SIGTERM lets the worker stop cleanly; the soak is over either way.
		s.worker.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.workerDone:
		case <-time.After(15 * time.Second):
			s.worker.Process.Kill()
			<-s.workerDone
		}
	}
	if s.sim != nil {
		s.simMu.Lock()
		if s.simSrv != nil {
			s.simSrv.Close()
		}
		s.simMu.Unlock()
		s.sim.Close()
	}
	if s.tc != nil {
		s.tc.Close()
	}
	s.stopTemporal()
	if s.bqClose != nil {
		s.bqClose()
	}
	if s.emu != nil {
		s.emu.Stop()
	}
	if s.logs != nil {
		s.logs.Close()
	}
}

func writeUserMap(path string, users []ktsim.User) error {
	var b strings.Builder
	b.WriteString("user,team,department\n")
	for _, u := range users {
		fmt.Fprintf(&b, "%s,%s,%s\n", u.Name, u.Team, u.Department)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
