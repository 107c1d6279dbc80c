package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// line is the action as the running account prints it.
func (a Action) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %s", a.Kind, a.Detail)
	switch a.Kind {
	case KindKill:
		fmt.Fprintf(&b, "; polling after %s", secs(a.Up))
		if len(a.Interrupted) > 0 {
			fmt.Fprintf(&b, ", interrupted work running again after %s", secs(a.Resumed))
		}
	case KindTemporalRestart:
		fmt.Fprintf(&b, "; away %s, worker polling again after %s", secs(a.Down), secs(a.Up))
	case KindAPIRestart, KindFaults:
		fmt.Fprintf(&b, "; %s", secs(a.Down))
	}
	if len(a.Stalled) > 0 {
		fmt.Fprintf(&b, "; NOT running again within the bound: %s", strings.Join(a.Stalled, ", "))
	}
	if a.Err != "" {
		fmt.Fprintf(&b, "; ERROR: %s", a.Err)
	}
	return b.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// Print writes the report: actions with their recovery, the recovery
// summary of the kills, the comparison with the ground truth, the
// workflows, the status, and the verdict.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n==> chaos soak, seed %d, %s\n", r.Seed, secs(r.Elapsed))
	fmt.Fprintf(w, "    %s\n", r.Stack)

	fmt.Fprintf(w, "\n==> recovery (kill, restart or end of faults → ...)\n")
	fmt.Fprintf(w, "    %-3s %-8s %-16s %9s %9s %9s  %s\n", "#", "at", "what", "polling", "resumed", "progress", "interrupted")
	var up, resumed, progress []time.Duration
	for i, a := range r.Actions {
		p := "none"
		if a.progressOK {
			p = secs(a.Progress)
		}
		u, rs := "", ""
		switch a.Kind {
		case KindKill:
			u, rs = secs(a.Up), "-"
			if len(a.Interrupted) > 0 {
				rs = secs(a.Resumed)
				resumed = append(resumed, a.Resumed)
			}
			if len(a.Stalled) > 0 {
				rs = ">" + secs(r.Options.RecoveryBound)
			}
			up = append(up, a.Up)
			if a.progressOK {
				progress = append(progress, a.Progress)
			}
		case KindTemporalRestart:
			u = secs(a.Up)
		}
		fmt.Fprintf(w, "    %-3d %-8s %-16s %9s %9s %9s  %s\n", i+1, a.At.Format("15:04:05"), a.Kind, u, rs, p, strings.Join(a.Interrupted, ", "))
	}
	fmt.Fprintf(w, "    kills: polling %s; resumed %s; progress %s\n", summary(up), summary(resumed), summary(progress))
	fmt.Fprintf(w, "    (polling: the new worker polls its task queue; resumed: every activity the killed worker ran has a new attempt running;\n")
	fmt.Fprintf(w, "     progress: the first activity completed after the kill, in any workflow)\n")

	fmt.Fprintf(w, "\n==> load\n")
	fmt.Fprintf(w, "    backfill: %d windows, %d loaded, %d skipped, %d rows, %d quarantined\n", r.Backfill.Windows, r.Backfill.Loaded, r.Backfill.Skipped, r.Backfill.Rows, r.Backfill.Quarantined)
	fmt.Fprintf(w, "    last pull: %d batches, %d rows, %d quarantined\n", r.FinalPull.Batches, r.FinalPull.Rows, r.FinalPull.Quarantined)
	fmt.Fprintf(w, "    webhooks: %d deliveries, %d delivered, %d given up (then pulled), %d retried attempts\n", r.Webhooks.Deliveries, r.Webhooks.Delivered, r.Webhooks.GaveUp, r.Webhooks.Retries)
	fmt.Fprintf(w, "    API: %d requests; injected %d 500s, %d hangs, %d 429s, %d cut downloads\n", r.API.Requests, r.API.Errors, r.API.Hung, r.API.RateLimited, r.API.Dropped)

	fmt.Fprintf(w, "\n==> workflows (runs by final status) and retried activity attempts\n")
	for _, typ := range sortedKeys(r.Workflows) {
		var parts []string
		for _, st := range sortedKeys(r.Workflows[typ]) {
			parts = append(parts, fmt.Sprintf("%d %s", r.Workflows[typ][st], st))
		}
		fmt.Fprintf(w, "    %-16s %s\n", typ, strings.Join(parts, ", "))
	}
	var retries []string
	for _, typ := range sortedKeys(r.Retries) {
		retries = append(retries, fmt.Sprintf("%s %d", typ, r.Retries[typ]))
	}
	fmt.Fprintf(w, "    retries: %s\n", strings.Join(retries, ", "))
	for _, f := range r.Failed {
		fmt.Fprintf(w, "    failed: %s %s\n", f.Type, f.ID)
	}

	fmt.Fprintf(w, "\n==> ktpipe status\n")
	for _, l := range strings.Split(strings.TrimRight(r.Status, "\n"), "\n") {
		fmt.Fprintf(w, "    %s\n", l)
	}

	fmt.Fprintf(w, "\n==> the warehouse against the simulator's ground truth\n    %s\n", r.Comparison)
	if p := r.Problems(); len(p) > 0 {
		fmt.Fprintf(w, "\nFAIL\n")
		for _, l := range p {
			fmt.Fprintf(w, "    %s\n", l)
		}
		return
	}
	fmt.Fprintf(w, "\nPASS: every valid event exactly once, every invalid one quarantined, no workflow left open\n")
}

// summary is "median X, max Y of n".
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("median %s, max %s (of %d)", secs(med), secs(s[len(s)-1]), len(s))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
