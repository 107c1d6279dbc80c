package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PrometheusOptions shape a test Prometheus: loopback only, a temporary
// configuration and database, short intervals.
type PrometheusOptions struct {
	Targets        []string // host:port of /metrics endpoints, scraped as job "ktpipe"
	Rules          []byte   // a rule file's content
	ScrapeInterval time.Duration
	EvalInterval   time.Duration
	Dir            string // configuration and database (a test's TempDir)
	Logs           io.Writer
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL  string
	cmd  *exec.Cmd
	done chan error
}

// StartPrometheus starts the `prometheus` binary on PATH (the Debian
// package scripts/install-tools.sh installs) and waits until it is ready.
func StartPrometheus(ctx context.Context, o PrometheusOptions) (*Prometheus, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus not on PATH (Debian package prometheus; scripts/install-tools.sh installs it): %w", err)
	}
	rules := filepath.Join(o.Dir, "rules.yml")
	if err := os.WriteFile(rules, o.Rules, 0o644); err != nil {
		return nil, err
	}
	targets, _ := json.Marshal(o.Targets)
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
rule_files: [%q]
scrape_configs:
  - job_name: ktpipe
    scrape_timeout: %s
    static_configs:
      - targets: %s
`, o.ScrapeInterval, o.EvalInterval, rules, o.ScrapeInterval, targets)
	cfgFile := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = o.Logs, o.Logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	p := &Prometheus{URL: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("prometheus exited during start: %v", err)
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, errors.New("prometheus not ready within 30s")
		}
	}
}

// Alert is one entry of /api/v1/alerts.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
	Value       string            `json:"value"`
}

// Alerts returns the alerts pending or firing now.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/alerts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus alerts: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("prometheus alerts: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus alerts: status %q", body.Status)
	}
	return body.Data.Alerts, nil
}

// Stop ends Prometheus.
func (p *Prometheus) Stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// ShortRules renders a rule file for a test: every `for:` becomes forD
// and every range and offset of a quarter-hour or more (`[15m]`,
// `offset 1h`) becomes window, so alerts fire and resolve in seconds.
// Expressions and thresholds stay the shipped ones.
func ShortRules(rules []byte, forD, window time.Duration) []byte {
	out := strings.Builder{}
	for _, line := range strings.SplitAfter(string(rules), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "for:") {
			line = line[:strings.Index(line, "for:")] + "for: " + promDuration(forD) + "\n"
		}
		for _, d := range []string{"15m", "1h", "2h", "24h"} {
			line = strings.ReplaceAll(line, "["+d+"]", "["+promDuration(window)+"]")
			line = strings.ReplaceAll(line, "offset "+d, "offset "+promDuration(window))
		}
		out.WriteString(line)
	}
	return []byte(out.String())
}

func promDuration(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }
