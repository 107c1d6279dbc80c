package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ktpipe/ktpipe/devstack"
)

// TestMain runs ktbench's main instead of the tests when asked to, so a
// test can run ktbench as a process of its own without building it.
func TestMain(m *testing.M) {
	if args := os.Getenv("KTBENCH_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"ktbench"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStopsItsEmulatorWhenItsReaderGoes: `ktbench -model | head`
// closes ktbench's stdout before the model is printed; ktbench must
// still stop the emulator it started, not die on the first write and
// leave it running.
func TestStopsItsEmulatorWhenItsReaderGoes(t *testing.T) {
	emulator, err := devstack.EmulatorBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The emulator, started through a script that records its pid and
	// then becomes it.
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "emulator.pid")
	wrapper := filepath.Join(dir, "emulator")
	script := "#!/bin/sh\necho $$ > '" + pidFile + "'\nexec '" + emulator + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	read, write, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	read.Close() // the reader is gone before ktbench writes a line
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "KTBENCH_TEST_MAIN_ARGS=-model", "KTPIPE_BQEMULATOR_BIN="+wrapper)
	cmd.Stdout = write
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	write.Close()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("ktbench -model with its reader gone: %v, want exit status 1 (stopped, not killed by SIGPIPE)", err)
	}
	// Stopped by the closed pipe after the whole model ran (every
	// statement priced by a rule), not by an error of its own.
	if got := stderr.String(); !strings.HasPrefix(got, "ktbench: write output: ") || !strings.HasSuffix(got, "broken pipe\n") {
		t.Errorf("ktbench said %q, want only that its output broke", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the emulator never started: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// ktbench kills the emulator and waits for it before it exits; a
	// moment's grace all the same.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the emulator (pid %d) outlived ktbench", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
