// Package devstack starts the real services of the local default — the
// Temporal dev server (with its UI) and the BigQuery emulator — from the
// binaries scripts/install-tools.sh builds. The tests and the local
// end-to-end run both use it, so they exercise the same parts.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"cloud.google.com/go/bigquery"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ktpipe/ktpipe/warehouse"
)

// Versions pinned by scripts/lib.sh; the binaries carry them in their names.
const (
	TemporalCLIVersion = "v1.5.1"
	BQEmulatorVersion  = "v0.8.1"
)

func binDir() string {
	if d := os.Getenv("KTPIPE_CACHE"); d != "" {
		return filepath.Join(d, "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "ktpipe", "bin")
}

func binary(env, name string) (string, error) {
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join(binDir(), name)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found at %s (set %s, or run scripts/install-tools.sh): %w", name, p, env, err)
	}
	return p, nil
}

// TemporalBinary is the Temporal CLI executable.
func TemporalBinary() (string, error) {
	return binary("KTPIPE_TEMPORAL_BIN", "temporal-"+TemporalCLIVersion)
}

// EmulatorBinary is the BigQuery emulator executable.
func EmulatorBinary() (string, error) {
	return binary("KTPIPE_BQEMULATOR_BIN", "bigquery-emulator-"+BQEmulatorVersion)
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Emulator is a running BigQuery emulator.
type Emulator struct {
	Endpoint string
	Project  string
	cmd      *exec.Cmd
	done     chan error
}

// StartEmulator starts the emulator for project on free loopback ports
// and waits until it answers.
func StartEmulator(ctx context.Context, project string, logs io.Writer) (*Emulator, error) {
	bin, err := EmulatorBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--project="+project, "--host=127.0.0.1",
		"--port="+strconv.Itoa(port), "--grpc-port="+strconv.Itoa(grpcPort), "--log-level=error")
	// No Pdeathsig: in Go it fires when the starting OS thread exits, not
	// the process, and can kill the emulator in the middle of a run.
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bigquery emulator: %w", err)
	}
	e := &Emulator{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Project: project, cmd: cmd, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	url := e.Endpoint + "/bigquery/v2/projects/" + project + "/datasets"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e, nil
			}
		}
		select {
		case err := <-e.done:
			return nil, fmt.Errorf("bigquery emulator exited during start: %v", err)
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, errors.New("bigquery emulator did not answer within 30s")
		}
	}
}

// Client returns a BigQuery client for the emulator.
func (e *Emulator) Client(ctx context.Context) (*bigquery.Client, error) {
	return warehouse.Dial(ctx, e.Project, e.Endpoint)
}

// Stop ends the emulator.
func (e *Emulator) Stop() {
	if e.cmd.Process != nil {
		e.cmd.Process.Kill()
		<-e.done
	}
}

// TemporalOptions shape a dev server.
type TemporalOptions struct {
	HostPort  string // "" picks a free port
	UIPort    int    // 0 disables the UI
	DBFile    string // "" keeps state in memory
	Namespace string
	Logs      io.Writer
	// SearchAttributes to register; the values only tell their types.
	SearchAttributes temporal.SearchAttributes
}

// StartTemporal starts a Temporal dev server from the pinned CLI.
func StartTemporal(ctx context.Context, o TemporalOptions) (*testsuite.DevServer, error) {
	bin, err := TemporalBinary()
	if err != nil {
		return nil, err
	}
	ns := o.Namespace
	if ns == "" {
		ns = "default"
	}
	opts := testsuite.DevServerOptions{
		ExistingPath:  bin,
		ClientOptions: &client.Options{HostPort: o.HostPort, Namespace: ns},
		DBFilename:    o.DBFile,
		LogLevel:      "error",
		Stdout:        o.Logs,
		Stderr:        o.Logs,
	}
	if o.UIPort > 0 {
		opts.EnableUI = true
		opts.UIPort = strconv.Itoa(o.UIPort)
	}
	opts.SearchAttributes = o.SearchAttributes
	srv, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	return srv, nil
}
