package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Workflow inputs and results travel as JSON, and operators read and
// write them in the Temporal UI (Start Workflow, the input and result
// panes). So fields have camelCase JSON names, times are RFC 3339 and
// durations strings like "6h".
//
// Recorded histories stay readable: encoding/json matches keys without
// regard to case, so "windowStart" decodes an old "WindowStart", and
// Duration decodes the nanosecond numbers older runs wrote.

// Duration is a time.Duration that is "6h0m0s" in JSON, and that also
// reads the plain nanosecond numbers of histories recorded before.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("6h", "90m") or a number of
// nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a duration like \"6h\", \"90m\" or \"30s\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"6h\" or a number of nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

// durationField reads a duration field, naming it in its error.
func durationField(name string, raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 {
		return 0, nil
	}
	var d Duration
	if err := d.UnmarshalJSON(raw); err != nil {
		return 0, fmt.Errorf("input field %q: %w", name, err)
	}
	return time.Duration(d), nil
}

// The methods below give each type with time.Duration fields its JSON
// form: the fields stay time.Duration for the Go code, and a shadow field
// of the same JSON name (shallower, so it wins) carries the Duration.

// MarshalJSON writes durations as strings.
func (t Tuning) MarshalJSON() ([]byte, error) {
	type plain Tuning
	return json.Marshal(struct {
		plain
		PollInterval     Duration `json:"pollInterval,omitempty"`
		MaxPollInterval  Duration `json:"maxPollInterval,omitempty"`
		HeartbeatTimeout Duration `json:"heartbeatTimeout,omitempty"`
		WarehouseTimeout Duration `json:"warehouseTimeout,omitempty"`
	}{plain(t), Duration(t.PollInterval), Duration(t.MaxPollInterval), Duration(t.HeartbeatTimeout), Duration(t.WarehouseTimeout)})
}

// UnmarshalJSON reads durations as strings or nanoseconds.
func (t *Tuning) UnmarshalJSON(b []byte) error {
	type plain Tuning
	aux := struct {
		*plain
		PollInterval     json.RawMessage `json:"pollInterval"`
		MaxPollInterval  json.RawMessage `json:"maxPollInterval"`
		HeartbeatTimeout json.RawMessage `json:"heartbeatTimeout"`
		WarehouseTimeout json.RawMessage `json:"warehouseTimeout"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("tuning: %w", err)
	}
	var err error
	for _, d := range []struct {
		name string
		raw  json.RawMessage
		to   *time.Duration
	}{{"tuning.pollInterval", aux.PollInterval, &t.PollInterval}, {"tuning.maxPollInterval", aux.MaxPollInterval, &t.MaxPollInterval},
		{"tuning.heartbeatTimeout", aux.HeartbeatTimeout, &t.HeartbeatTimeout}, {"tuning.warehouseTimeout", aux.WarehouseTimeout, &t.WarehouseTimeout}} {
		if *d.to, err = durationField(d.name, d.raw); err != nil {
			return err
		}
	}
	return nil
}

// MarshalJSON writes Window as a string.
func (in BackfillInput) MarshalJSON() ([]byte, error) {
	type plain BackfillInput
	return json.Marshal(struct {
		plain
		Window Duration `json:"window,omitempty"`
	}{plain(in), Duration(in.Window)})
}

// UnmarshalJSON reads Window as a string or nanoseconds.
func (in *BackfillInput) UnmarshalJSON(b []byte) error {
	type plain BackfillInput
	aux := struct {
		*plain
		Window json.RawMessage `json:"window"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("backfill input: %w", err)
	}
	var err error
	in.Window, err = durationField("window", aux.Window)
	return err
}

// MarshalJSON writes Step as a string.
func (in ReconcileInput) MarshalJSON() ([]byte, error) {
	type plain ReconcileInput
	return json.Marshal(struct {
		plain
		Step Duration `json:"step,omitempty"`
	}{plain(in), Duration(in.Step)})
}

// UnmarshalJSON reads Step as a string or nanoseconds.
func (in *ReconcileInput) UnmarshalJSON(b []byte) error {
	type plain ReconcileInput
	aux := struct {
		*plain
		Step json.RawMessage `json:"step"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("reconcile input: %w", err)
	}
	var err error
	in.Step, err = durationField("step", aux.Step)
	return err
}

// MarshalJSON writes LateWindow as a string.
func (in IncrementalPullInput) MarshalJSON() ([]byte, error) {
	type plain IncrementalPullInput
	return json.Marshal(struct {
		plain
		LateWindow Duration `json:"lateWindow,omitempty"`
	}{plain(in), Duration(in.LateWindow)})
}

// UnmarshalJSON reads LateWindow as a string or nanoseconds.
func (in *IncrementalPullInput) UnmarshalJSON(b []byte) error {
	type plain IncrementalPullInput
	aux := struct {
		*plain
		LateWindow json.RawMessage `json:"lateWindow"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("pull input: %w", err)
	}
	var err error
	in.LateWindow, err = durationField("lateWindow", aux.LateWindow)
	return err
}

// MarshalJSON writes Retention as a string.
func (in CleanupInput) MarshalJSON() ([]byte, error) {
	type plain CleanupInput
	return json.Marshal(struct {
		plain
		Retention Duration `json:"retention,omitempty"`
	}{plain(in), Duration(in.Retention)})
}

// UnmarshalJSON reads Retention as a string or nanoseconds.
func (in *CleanupInput) UnmarshalJSON(b []byte) error {
	type plain CleanupInput
	aux := struct {
		*plain
		Retention json.RawMessage `json:"retention"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("cleanup input: %w", err)
	}
	var err error
	in.Retention, err = durationField("retention", aux.Retention)
	return err
}

// MarshalJSON writes Window as a string.
func (in WebhookBatchInput) MarshalJSON() ([]byte, error) {
	type plain WebhookBatchInput
	return json.Marshal(struct {
		plain
		Window Duration `json:"window,omitempty"`
	}{plain(in), Duration(in.Window)})
}

// UnmarshalJSON reads Window as a string or nanoseconds.
func (in *WebhookBatchInput) UnmarshalJSON(b []byte) error {
	type plain WebhookBatchInput
	aux := struct {
		*plain
		Window json.RawMessage `json:"window"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("webhook batch input: %w", err)
	}
	var err error
	in.Window, err = durationField("window", aux.Window)
	return err
}

// MarshalJSON writes Period as a string.
func (in HistoryExportInput) MarshalJSON() ([]byte, error) {
	type plain HistoryExportInput
	return json.Marshal(struct {
		plain
		Period Duration `json:"period,omitempty"`
	}{plain(in), Duration(in.Period)})
}

// UnmarshalJSON reads Period as a string or nanoseconds.
func (in *HistoryExportInput) UnmarshalJSON(b []byte) error {
	type plain HistoryExportInput
	aux := struct {
		*plain
		Period json.RawMessage `json:"period"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("history export input: %w", err)
	}
	var err error
	in.Period, err = durationField("period", aux.Period)
	return err
}
