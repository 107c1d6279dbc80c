// Package wfmetrics is what workflow code counts, and the names it
// counts under. It goes through workflow.GetMetricsHandler, which drops
// what a replay emits, so a replayed history never counts twice; a
// worker's handler (metrics.SDKHandler) hands the counts to the
// Prometheus registry it serves.
//
// It is apart from package metrics so that workflow code links the
// Temporal SDK's handler interface only, not the Prometheus client.
package wfmetrics

import "go.temporal.io/sdk/client"

// Names of the metrics counted in workflow code (through the SDK's
// handler, which adds namespace, task_queue and workflow_type labels).
const (
	RecordsName = "ktpipe_records_total" // labels source, outcome
	ExportsName = "ktpipe_exports_total" // label status
)

// CountRecords counts a load's records from workflow code, through h =
// workflow.GetMetricsHandler(ctx): read from the source, loaded (valid
// rows handed to the merge), quarantined, and resent (repeats within
// the load; repeats of rows already in the fact table are absorbed by the
// merge and show in the audit's resend ratio instead). The source label
// is one of payload's Source constants.
func CountRecords(h client.MetricsHandler, source string, read, loaded, quarantined, resent int64) {
	// A slice, not a map: workflow code iterates in a fixed order.
	for _, c := range []struct {
		outcome string
		n       int64
	}{{"read", read}, {"loaded", loaded}, {"quarantined", quarantined}, {"resent", resent}} {
		if c.n > 0 {
			h.WithTags(map[string]string{"source": source, "outcome": c.outcome}).Counter(RecordsName).Inc(c.n)
		}
	}
}

// CountExport counts an export by its final status (ready, failed,
// expired), from workflow code.
func CountExport(h client.MetricsHandler, status string) {
	h.WithTags(map[string]string{"status": status}).Counter(ExportsName).Inc(1)
}
