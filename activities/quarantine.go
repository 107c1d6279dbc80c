package activities

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fastjson"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// maxCSVLayouts bounds the CSV files (one per distinct header) one batch
// writes; a real export has one header, so more means odd input.
const maxCSVLayouts = 16

// QuarantineInputKey is where a replay's batch stages its records.
func QuarantineInputKey(loadID, name string) string {
	return "loads/" + loadID + "/input/" + name
}

// ExportQuarantine writes one batch of quarantined records that a replay
// may promote (warehouse.ReadQuarantine: an event id the fact table
// lacks) to staging, so the normal split → stage → merge path validates
// and loads them. JSON records go to one JSON array file; records
// quarantined from CSV exports (their raw text is the row rendered as an
// object of header → cell, every value a string) go back to CSV, one file
// per header, so they are decoded as CSV again. Keys are deterministic:
// a retry rewrites the same files.
func (a *Activities) ExportQuarantine(ctx context.Context, in payload.ExportQuarantineInput) (payload.ExportQuarantineResult, error) {
	defer keepAlive(ctx, nil)()
	if in.Limit <= 0 {
		return payload.ExportQuarantineResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("export quarantine: limit %d must be positive", in.Limit), payload.ErrTypeBadInput, nil)
	}
	jsonKey := QuarantineInputKey(in.LoadID, "records.json")
	if err := staging.CheckKey(jsonKey); err != nil {
		return payload.ExportQuarantineResult{}, temporal.NewNonRetryableApplicationError("export quarantine: "+err.Error(), payload.ErrTypeBadInput, err)
	}
	jw, err := a.Store.Create(ctx, jsonKey)
	if err != nil {
		return payload.ExportQuarantineResult{}, classify("export quarantine", err)
	}
	x := &quarantineExport{ctx: ctx, a: a, loadID: in.LoadID, jw: jw, json: bufio.NewWriterSize(jw, 256<<10), csv: map[string]*csvFile{}}
	defer x.abort()
	x.json.WriteString("[")
	var res payload.ExportQuarantineResult
	err = a.Warehouse.ReadQuarantine(ctx, warehouse.QuarantineFilter{Rule: in.Rule, Since: in.Since, Until: in.Until, After: in.After, Limit: in.Limit},
		func(r warehouse.QuarantinedRecord) error {
			res.Selected++
			res.Last = r.RecordHash
			if res.Selected%10_000 == 0 {
				activity.RecordHeartbeat(ctx, res.Selected)
			}
			switch x.add(r) {
			case added:
				res.Exported++
			case unreadable:
				res.Unreadable++
			case skipped:
				res.Skipped++
			}
			return x.err
		})
	if err != nil {
		return payload.ExportQuarantineResult{}, classify("export quarantine", err)
	}
	x.json.WriteString("]\n")
	files, err := x.close(jsonKey)
	if err != nil {
		return payload.ExportQuarantineResult{}, classify("export quarantine", err)
	}
	res.Files = files
	res.More = res.Selected == int64(in.Limit)
	return res, nil
}

type addResult int

const (
	added addResult = iota
	unreadable
	skipped
)

type csvFile struct {
	key string
	wc  io.WriteCloser
	w   *csv.Writer
}

// quarantineExport writes one batch's files.
type quarantineExport struct {
	ctx    context.Context
	a      *Activities
	loadID string
	json   *bufio.Writer
	nJSON  int64
	csv    map[string]*csvFile // by header
	order  []string            // headers in the order first seen
	err    error
	p      fastjson.Parser
	jw     io.WriteCloser // nil once closed
}

// jsonTypeRules are the rules the JSON decoder gives a value of the wrong
// type. A JSON record whose every value is a string looks like a rendered
// CSV row, and as CSV its strings would parse: such a record is not
// replayed. A CSV row never fails these with cells that could pass.
var jsonTypeRules = map[string]bool{
	"must be an integer": true, "must be an array of strings": true, "must be a JSON object or null": true,
}

func (x *quarantineExport) add(r warehouse.QuarantinedRecord) addResult {
	v, err := x.p.Parse(r.Raw)
	if err != nil {
		return unreadable
	}
	obj, err := v.Object()
	if err != nil {
		return unreadable
	}
	var keys, cells []string
	allStrings := true
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if v.Type() != fastjson.TypeString {
			allStrings = false
			return
		}
		keys = append(keys, string(k))
		cells = append(cells, string(v.GetStringBytes()))
	})
	if !allStrings || obj.Len() == 0 {
		if x.nJSON > 0 {
			x.json.WriteString(",\n")
		}
		x.json.WriteString(r.Raw)
		x.nJSON++
		return added
	}
	// A rendered CSV row. One with the wrong number of cells names extra
	// cells _extra_N, or leaves some out: written back under its own keys
	// as a header it would fit, so it stays.
	if r.Field == "(record)" || jsonTypeRules[r.Rule] {
		return skipped
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "_extra_") {
			return skipped
		}
	}
	header := strings.Join(keys, "\x00")
	f := x.csv[header]
	if f == nil {
		if len(x.csv) == maxCSVLayouts {
			return skipped
		}
		key := QuarantineInputKey(x.loadID, fmt.Sprintf("records-%02d.csv", len(x.csv)))
		wc, err := x.a.Store.Create(x.ctx, key)
		if err != nil {
			x.err = err
			return skipped
		}
		f = &csvFile{key: key, wc: wc, w: csv.NewWriter(wc)}
		x.csv[header] = f
		x.order = append(x.order, header)
		if err := f.w.Write(keys); err != nil {
			x.err = err
			return skipped
		}
	}
	if err := f.w.Write(cells); err != nil {
		x.err = err
		return skipped
	}
	return added
}

// close publishes the files and lists those with records.
func (x *quarantineExport) close(jsonKey string) ([]payload.QuarantineFile, error) {
	var files []payload.QuarantineFile
	if err := x.json.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", jsonKey, err)
	}
	err := x.jw.Close()
	x.jw = nil
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", jsonKey, err)
	}
	if x.nJSON > 0 {
		files = append(files, payload.QuarantineFile{Key: jsonKey, Format: string(schemas.FormatJSON)})
	}
	for _, h := range x.order {
		f := x.csv[h]
		f.w.Flush()
		if err := f.w.Error(); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.key, err)
		}
		delete(x.csv, h) // closed, published or not: abort leaves it
		if err := f.wc.Close(); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.key, err)
		}
		files = append(files, payload.QuarantineFile{Key: f.key, Format: string(schemas.FormatCSV)})
	}
	return files, nil
}

// abort drops what close did not publish (after an error): nothing is
// published, and a retry writes the files again.
func (x *quarantineExport) abort() {
	if x.jw != nil {
		staging.Discard(x.jw)
	}
	for _, f := range x.csv {
		staging.Discard(f.wc)
	}
}

// SplitQuarantine validates and transforms a batch of quarantined
// records with today's rules and gateway list, exactly as a load from the
// source would: the records that pass become the load's rows, the others
// its quarantine (which holds them already, so the merge adds nothing).
func (a *Activities) SplitQuarantine(ctx context.Context, in payload.SplitQuarantineInput) (payload.Manifest, error) {
	defer keepAlive(ctx, nil)()
	sp, err := a.splitter(ctx, in.LoadID, payload.SourceQuarantineReplay, in.Gateways, a.chunks())
	if err != nil {
		return payload.Manifest{}, err
	}
	defer sp.Abort() // after an error: no chunk file left open or half-written
	for _, f := range in.Files {
		format, err := schemas.ParseFormat(f.Format)
		if err != nil {
			return payload.Manifest{}, temporal.NewNonRetryableApplicationError("split quarantine: "+err.Error(), payload.ErrTypeMalformed, err)
		}
		if err := a.splitFile(ctx, sp, f.Key, format, false); err != nil {
			return payload.Manifest{}, err
		}
	}
	return a.finish(ctx, sp)
}
