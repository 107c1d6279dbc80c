package ktsim

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// csvHeader is the contract's field order for CSV exports.
var csvHeader = []string{
	"id", "timestamp", "gateway_id", "user", "provider", "model", "decision",
	"policies_evaluated", "policies_triggered", "latency_ms", "input_tokens",
	"output_tokens", "cost", "metadata",
}

// exportWriter writes records in one of the contract's export formats.
type exportWriter struct {
	bw     *bufio.Writer
	gz     *gzip.Writer
	csv    *csv.Writer
	format string
	n      int
	header []string
}

func newExportWriter(w io.Writer, format string, gzipped bool, addedField string) (*exportWriter, error) {
	ew := &exportWriter{format: format}
	if gzipped {
		ew.gz = gzip.NewWriter(w)
		w = ew.gz
	}
	ew.bw = bufio.NewWriterSize(w, 64<<10)
	switch format {
	case "json":
		ew.bw.WriteByte('[')
	case "ndjson":
	case "csv":
		ew.csv = csv.NewWriter(ew.bw)
		ew.header = csvHeader
		if addedField != "" {
			ew.header = append(append([]string(nil), csvHeader...), addedField)
		}
		if err := ew.csv.Write(ew.header); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
	return ew, nil
}

func (ew *exportWriter) write(r *record) error {
	defer func() { ew.n++ }()
	switch ew.format {
	case "json":
		if ew.n > 0 {
			ew.bw.WriteString(",\n")
		}
		_, err := ew.bw.Write(r.json)
		return err
	case "ndjson":
		ew.bw.Write(r.json)
		return ew.bw.WriteByte('\n')
	default:
		row := make([]string, len(ew.header))
		for i, h := range ew.header {
			if j := indexOf(r.fields, h); j >= 0 {
				row[i] = csvCell(r.fields[j].val)
			}
		}
		return ew.csv.Write(row)
	}
}

// csvCell is a field's CSV text: strings unquoted, null empty, anything
// else its JSON text (the contract's rule for arrays and objects).
func csvCell(v json.RawMessage) string {
	if string(v) == "null" {
		return ""
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(v)
}

func (ew *exportWriter) close() error {
	switch ew.format {
	case "json":
		ew.bw.WriteString("]\n")
	case "csv":
		ew.csv.Flush()
		if err := ew.csv.Error(); err != nil {
			return err
		}
	}
	if err := ew.bw.Flush(); err != nil {
		return err
	}
	if ew.gz != nil {
		return ew.gz.Close()
	}
	return nil
}

// FileOptions shapes a generated export file.
type FileOptions struct {
	Events      int
	Format      string // json, ndjson or csv
	Gzip        bool
	Seed        uint64
	InvalidRate float64
	Start       time.Time
}

// WriteFile streams a synthetic export file of opts.Events events to w
// without holding them in memory, for benchmarks and large fixtures.
func WriteFile(w io.Writer, opts FileOptions) error {
	g := newGenerator(opts.Seed, opts.InvalidRate, "")
	ew, err := newExportWriter(w, opts.Format, opts.Gzip, "")
	if err != nil {
		return err
	}
	start := opts.Start
	if start.IsZero() {
		start = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	}
	for i := 0; i < opts.Events; i++ {
		if err := ew.write(g.event(start.Add(time.Duration(i) * 250 * time.Millisecond))); err != nil {
			return fmt.Errorf("write event %d: %w", i, err)
		}
	}
	return ew.close()
}

// GatewayIDs returns the gateway ids a generator with this seed uses, so
// a validator can be given the known set for a WriteFile fixture.
func GatewayIDs(seed uint64) []string {
	g := newGenerator(seed, 0, "")
	ids := make([]string, len(g.gateways))
	for i, gw := range g.gateways {
		ids[i] = gw.ID
	}
	return ids
}
