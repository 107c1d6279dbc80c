package warehouse_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/devstack"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

const project = "ktpipe-test"

var (
	emulator *devstack.Emulator
	bq       *bigquery.Client
	dsSeq    atomic.Int64
)

// TestMain starts one emulator for the package; every test gets its own
// dataset, so tests stay independent and may run in parallel. Only
// listing the tests (go test -list, as scripts/test-warehouse.sh does to
// shard them) needs none.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	ctx := context.Background()
	var err error
	emulator, err = devstack.StartEmulator(ctx, project, io.Discard)
	if err != nil {
		// A missing emulator is a failure, never a skip: CI must run these.
		fmt.Fprintln(os.Stderr, "warehouse tests need the BigQuery emulator:", err)
		os.Exit(1)
	}
	bq, err = emulator.Client(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bq.Close()
	emulator.Stop()
	os.Exit(code)
}

func newWarehouse(t *testing.T) *warehouse.Warehouse {
	t.Helper()
	return newWarehouseIn(t, fmt.Sprintf("ds_%d", dsSeq.Add(1)))
}

// newWarehouseIn lets a test that queries tables directly know its dataset;
// reading dsSeq later would race with the other parallel tests.
func newWarehouseIn(t *testing.T, ds string) *warehouse.Warehouse {
	t.Helper()
	w, err := warehouse.New(bq, project, ds, "US")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.EnsureSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

const gw = "11111111-2222-4333-8444-555555555555"

func event(id, ts, user, model, decision, cost string, triggered ...string) string {
	pol := `["pii","toxicity"]`
	tr := `[]`
	if len(triggered) > 0 {
		tr = `["` + strings.Join(triggered, `","`) + `"]`
	}
	return fmt.Sprintf(`{"id":"%s","timestamp":"%s","gateway_id":"%s","user":"%s","provider":"openai","model":"%s","decision":"%s","policies_evaluated":%s,"policies_triggered":%s,"latency_ms":10,"input_tokens":100,"output_tokens":50,"cost":"%s","metadata":{"app":"chat"}}`,
		id, ts, gw, user, model, decision, pol, tr, cost)
}

func uuid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// load splits NDJSON lines into chunks and stages and commits each, the
// way the ExportLoad workflow's activities do.
func load(t *testing.T, w *warehouse.Warehouse, loadID string, chunkRows int, lines ...string) staging.Manifest {
	t.Helper()
	dir, man := split(t, loadID, chunkRows, lines...)
	for _, c := range man.Chunks {
		stage(t, w, dir, loadID, c)
		commit(t, w, loadID, c)
	}
	return man
}

// split turns NDJSON lines into staged chunk files, as SplitExport does.
func split(t *testing.T, loadID string, chunkRows int, lines ...string) (staging.Dir, staging.Manifest) {
	t.Helper()
	return splitAt(t, loadID, chunkRows, time.Now(), lines...)
}

// splitAt is split with the rows' ingested_at given.
func splitAt(t *testing.T, loadID string, chunkRows int, ingestedAt time.Time, lines ...string) (staging.Dir, staging.Manifest) {
	t.Helper()
	dir := staging.Dir{Root: t.TempDir()}
	dec, err := schemas.NewDecoder(strings.NewReader(strings.Join(lines, "\n")), schemas.FormatNDJSON, false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := staging.NewSplitter(staging.SplitOptions{LoadID: loadID, Source: "export", ChunkRows: chunkRows, Gateways: schemas.GatewaySet{gw: true}, IngestedAt: ingestedAt}, staging.StoreSink(context.Background(), dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(dec); err != nil {
		t.Fatal(err)
	}
	man, err := sp.Close()
	if err != nil {
		t.Fatal(err)
	}
	return dir, man
}

func stage(t *testing.T, w *warehouse.Warehouse, dir staging.Dir, loadID string, c staging.Chunk) {
	t.Helper()
	rows, err := dir.Open(context.Background(), c.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	files := warehouse.ChunkFiles{Rows: rows}
	if c.QuarantineKey != "" {
		q, err := dir.Open(context.Background(), c.QuarantineKey)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		files.Quarantine = q
	}
	if err := w.StageChunk(context.Background(), loadID, c, files); err != nil {
		t.Fatal(err)
	}
}

func commit(t *testing.T, w *warehouse.Warehouse, loadID string, c staging.Chunk) {
	t.Helper()
	if err := w.CommitChunk(context.Background(), loadID, "export", c); err != nil {
		t.Fatal(err)
	}
}

func factIDs(t *testing.T, w *warehouse.Warehouse) map[string]int {
	t.Helper()
	ids, err := w.FactIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestEnsureSchemaIsIdempotent(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	rep, err := w.EnsureSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.CreatedDataset || len(rep.CreatedTables) > 0 || len(rep.AddedColumns) > 0 {
		t.Fatalf("second run changed things: %s", rep)
	}
	if len(rep.CreatedViews)+len(rep.ReplacedViews) > 0 {
		t.Fatalf("second run changed views: %s", rep)
	}
}

func TestSameChunkTwiceLandsOnce(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	lines := []string{
		event(uuid(1), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(2), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "block", "0.02", "pii"),
		event(uuid(3), "2026-11-02T00:30:00Z", "ada", "gpt-4o-mini", "redact", "0.03", "pii"),
	}
	man := load(t, w, "load-a", 2, lines...)
	if len(man.Chunks) != 2 {
		t.Fatalf("chunks %d, want 2", len(man.Chunks))
	}
	// A retried activity, a replay, a second worker: the same load again.
	load(t, w, "load-a", 2, lines...)
	ids := factIDs(t, w)
	if len(ids) != 3 {
		t.Fatalf("fact ids %v, want 3", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s landed %d times", id, n)
		}
	}
	chk, err := w.CheckLoad(context.Background(), "load-a")
	if err != nil {
		t.Fatal(err)
	}
	if chk.RawRows != 3 || chk.MissingInFact != 0 || chk.LedgerRows != 3 {
		t.Fatalf("completeness %+v", chk)
	}
	// The check sees a fact row gone, in the load's later partition too.
	exec(t, fmt.Sprintf("DELETE FROM `%s.%s.%s` WHERE event_id = '%s'", project, ds, schemas.TableFact, uuid(3)))
	if chk, err = w.CheckLoad(context.Background(), "load-a"); err != nil || chk.MissingInFact != 1 {
		t.Fatalf("completeness %+v %v after deleting one fact row, want 1 missing", chk, err)
	}
	done, err := w.Committed(context.Background(), "load-a")
	if err != nil || len(done) != 2 {
		t.Fatalf("ledger %v %v", done, err)
	}
}

// A load's check reads the fact partitions its ledger rows' dates name,
// and its raw rows once. Ledger rows without dates (written by a version
// before them) send it to raw for them first, with the same counts; a raw
// row outside the dates counts as missing, never as found.
func TestCheckBoundsFactByTheLedgersDates(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	load(t, w, "load-a", 2,
		event(uuid(1), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(2), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "allow", "0.01"),
		event(uuid(3), "2026-11-02T00:30:00Z", "ada", "gpt-4o", "allow", "0.01"))
	check := func(stage string) (warehouse.Completeness, int) {
		t.Helper()
		seen := record(w)
		defer w.SetStatementObserver(nil)
		c, err := w.CheckLoad(context.Background(), "load-a")
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		rawReads := 0
		for _, st := range seen() {
			if strings.Contains(st.SQL, schemas.TableRaw) {
				rawReads++
			}
		}
		return c, rawReads
	}
	ledger := fmt.Sprintf("`%s.%s.%s`", project, ds, schemas.TableLedger)
	want := warehouse.Completeness{RawRows: 3, LedgerRows: 3}
	if c, reads := check("dated"); c != want || reads != 1 {
		t.Errorf("dated ledger: %+v in %d reads of raw, want %+v in 1", c, reads, want)
	}
	exec(t, "UPDATE "+ledger+" SET min_date = NULL, max_date = NULL WHERE load_id = 'load-a'")
	if c, reads := check("undated"); c != want || reads != 2 {
		t.Errorf("undated ledger: %+v in %d reads of raw, want %+v in 2", c, reads, want)
	}
	exec(t, "UPDATE "+ledger+" SET min_date = DATE '2026-11-01', max_date = DATE '2026-11-01' WHERE load_id = 'load-a'")
	want.MissingInFact = 1
	if c, _ := check("narrowed"); c != want {
		t.Errorf("a raw row outside the ledger's dates: %+v, want %+v", c, want)
	}
}

func TestResentEventStaysSingle(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	e := event(uuid(7), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01")
	load(t, w, "load-1", 10, e, event(uuid(8), "2026-11-01T10:00:01Z", "ada", "gpt-4o", "allow", "0.01"))
	// Resent in a later load, and twice inside one chunk.
	load(t, w, "load-2", 10, e, e, event(uuid(9), "2026-11-01T10:00:02Z", "ada", "gpt-4o", "allow", "0.01"))
	ids := factIDs(t, w)
	if len(ids) != 3 || ids[uuid(7)] != 1 {
		t.Fatalf("fact %v", ids)
	}
}

// The fact table keys an event by its UUID's bytes (event_key): the same
// id resent in upper case is the same event, as it is to the splitter,
// and its load's check finds it in fact.
func TestFactKeyIsTheUUIDsBytes(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	id := "0a0b0c0d-e0f0-4abc-8def-00000000abcd"
	load(t, w, "load-1", 10, event(id, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	load(t, w, "load-2", 10, event(strings.ToUpper(id), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(9), "2026-11-01T10:00:02Z", "ada", "gpt-4o", "allow", "0.01"))
	got := queryRows(t, fmt.Sprintf("SELECT event_id, TO_HEX(event_key) FROM `%s.%s.%s` ORDER BY event_id", project, ds, schemas.TableFact))
	want := fmt.Sprint([][]bigquery.Value{
		{uuid(9), strings.ReplaceAll(uuid(9), "-", "")},
		{id, strings.ReplaceAll(id, "-", "")},
	})
	if fmt.Sprint(got) != want {
		t.Errorf("fact rows:\n got %v\nwant %v", got, want)
	}
	chk, err := w.CheckLoad(context.Background(), "load-2")
	if err != nil || chk.RawRows != 2 || chk.MissingInFact != 0 {
		t.Errorf("check of the load resending it: %+v, %v", chk, err)
	}
}

func TestInvalidEventsAreQuarantinedWithReasons(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	bad := strings.Replace(event(uuid(20), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	unknownGW := unknownGateway(event(uuid(21), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"))
	load(t, w, "load-q", 10, event(uuid(22), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad, unknownGW, "{not json")
	load(t, w, "load-q2", 10, bad) // resent bad record stays single
	q, err := w.QuarantinedIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 3 {
		t.Fatalf("quarantine %v, want 3 records", q)
	}
	if r := q[uuid(20)]; len(r) != 1 || r[0] != "cost: must be >= 0" {
		t.Errorf("negative cost reason %v", r)
	}
	if r := q[uuid(21)]; len(r) != 1 || r[0] != "gateway_id: must be a known gateway" {
		t.Errorf("unknown gateway reason %v", r)
	}
	if ids := factIDs(t, w); len(ids) != 1 {
		t.Errorf("fact %v", ids)
	}
}

func TestReportsOnKnownData(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	var readSince func(name string, since time.Time) [][]bigquery.Value
	load(t, w, "load-r", 100,
		event(uuid(1), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.10"),
		event(uuid(2), "2026-11-01T11:00:00Z", "bo", "gpt-4o", "block", "0.20", "pii"),
		event(uuid(3), "2026-11-01T12:00:00Z", "ada", "gpt-4o", "redact", "0.30", "pii"),
		event(uuid(4), "2026-11-02T09:00:00Z", "cy", "gpt-4o-mini", "block", "0.90", "toxicity"),
	)
	users := map[string]warehouse.UserInfo{"ada": {Team: "platform", Department: "eng"}, "bo": {Team: "legal", Department: "ops"}}
	prices, err := warehouse.LoadPrices("")
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's team differs from every user's: the guide's report
	// groups by the gateway's.
	if err := w.RefreshDimensions(ctx, []warehouse.Gateway{{ID: gw, Name: "gw", Team: "security", Environment: "production"}}, prices, users); err != nil {
		t.Fatal(err)
	}
	read := func(name string) [][]bigquery.Value { return readSince(name, time.Time{}) }
	readSince = func(name string, since time.Time) [][]bigquery.Value { return readView(t, w, name, since) }
	got := map[string]string{}
	for _, r := range read("report_daily_spend_by_team") {
		got[fmt.Sprint(r[0], "/", r[1])] = fmt.Sprint(r[2], " ", r[4].(*big.Rat).FloatString(2))
	}
	want := map[string]string{"2026-11-01/security": "3 0.60", "2026-11-02/security": "1 0.90"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daily spend by team = %v, want %v", got, want)
	}
	// The user map's teams are a view of their own.
	got = map[string]string{}
	for _, r := range read("report_daily_spend_by_user_team") {
		got[fmt.Sprint(r[0], "/", r[1])] = fmt.Sprint(r[3], " ", r[5].(*big.Rat).FloatString(2))
	}
	want = map[string]string{"2026-11-01/platform": "2 0.40", "2026-11-01/legal": "1 0.20", "2026-11-02/unknown": "1 0.90"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daily spend by user team = %v, want %v", got, want)
	}
	pol := map[string]string{}
	for _, r := range read("report_policy_effectiveness") {
		pol[r[0].(string)] = fmt.Sprint(r[1], " ", r[2], " ", r[3])
	}
	// pii: evaluated by all 4, triggered by 2 of which 1 blocked.
	if pol["pii"] != "4 2 1" || pol["toxicity"] != "4 1 1" {
		t.Errorf("policy effectiveness = %v", pol)
	}
	models := map[string]string{}
	usage := read("report_model_usage")
	for _, r := range usage {
		models[r[1].(string)] = fmt.Sprint(r[2], " ", r[3])
	}
	if models["gpt-4o"] != "3 0.75" || models["gpt-4o-mini"] != "1 0.25" {
		t.Errorf("model usage = %v", models)
	}
	// Ordered by total cost, as the guide's query: the model with fewer
	// requests but more spend comes first.
	if usage[0][1] != "gpt-4o-mini" {
		t.Errorf("model usage starts with %v, want gpt-4o-mini (highest cost)", usage[0][1])
	}
	dup := read("dq_duplicate_rate")
	if fmt.Sprint(dup[0][0], dup[0][1]) != "4 4" {
		t.Errorf("duplicate rate %v", dup)
	}

	// Bounded by a day, every report reads the events dated since it.
	nov2 := time.Date(2026, 11, 2, 15, 0, 0, 0, time.UTC) // its date, not its time
	got = map[string]string{}
	for _, r := range readSince("report_daily_spend_by_team", nov2) {
		got[fmt.Sprint(r[0], "/", r[1])] = fmt.Sprint(r[2], " ", r[4].(*big.Rat).FloatString(2))
	}
	if want := map[string]string{"2026-11-02/security": "1 0.90"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daily spend by team since 2026-11-02 = %v, want %v", got, want)
	}
	pol = map[string]string{}
	for _, r := range readSince("report_policy_effectiveness", nov2) {
		pol[r[0].(string)] = fmt.Sprint(r[1], " ", r[2], " ", r[3])
	}
	if pol["pii"] != "1 0 0" || pol["toxicity"] != "1 1 1" {
		t.Errorf("policy effectiveness since 2026-11-02 = %v", pol)
	}
	if dup := readSince("dq_duplicate_rate", nov2); fmt.Sprint(dup[0][0], dup[0][1]) != "1 1" {
		t.Errorf("duplicate rate since 2026-11-02 %v", dup)
	}
	// The quarantine by the day it quarantined: today's record, not
	// tomorrow's.
	load(t, w, "load-rq", 100, strings.Replace(event(uuid(5), "2026-11-02T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1))
	today := time.Now().UTC()
	if v := readSince("dq_schema_violations", today); len(v) != 1 || fmt.Sprint(v[0][1], " ", v[0][3]) != "cost 1" {
		t.Errorf("violations since today %v, want the cost record", v)
	}
	if v := readSince("dq_schema_violations", today.Add(24*time.Hour)); len(v) != 0 {
		t.Errorf("violations since tomorrow %v, want none", v)
	}
	if v := readSince("dq_hourly_counts", today.Add(24*time.Hour)); len(v) != 0 {
		t.Errorf("hourly counts since tomorrow %v, want none", v)
	}
}

// readView reads up to 100 rows of the view name, since since (zero:
// all), as ktpipe reports does.
func readView(t *testing.T, w *warehouse.Warehouse, name string, since time.Time) [][]bigquery.Value {
	t.Helper()
	for _, v := range warehouse.Views {
		if v.Name == name {
			_, rows, err := w.ReportRows(context.Background(), v, 100, since)
			if err != nil {
				t.Fatal(err)
			}
			return rows
		}
	}
	t.Fatalf("no view %s", name)
	return nil
}

func TestNewSourceFieldIsAbsorbed(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_new_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	e := strings.Replace(event(uuid(30), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"latency_ms"`, `"region":"eu","latency_ms"`, 1)
	man := load(t, w, "load-x", 10, e)
	if fmt.Sprint(man.UnknownFields) != "[region]" {
		t.Fatalf("unknown fields reported %v", man.UnknownFields)
	}
	rows, err := bq.Query(fmt.Sprintf("SELECT JSON_VALUE(extra, '$.region') FROM `%s.%s.fact_ai_event`", project, ds)).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var r []bigquery.Value
	if err := rows.Next(&r); err != nil || r[0] != "eu" {
		t.Fatalf("extra.region = %v (%v)", r, err)
	}
}

func TestAdditiveSchemaChangeIsAppliedAndReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_old_%d", dsSeq.Add(1))
	if err := bq.Dataset(ds).Create(ctx, &bigquery.DatasetMetadata{Location: "US"}); err != nil {
		t.Fatal(err)
	}
	// An older ktpipe's fact table, before the "extra" column existed.
	var old bigquery.Schema
	for _, f := range bqschema.FactSchema() {
		if f.Name != "extra" {
			old = append(old, f)
		}
	}
	if err := bq.Dataset(ds).Table(schemas.TableFact).Create(ctx, &bigquery.TableMetadata{Schema: old}); err != nil {
		t.Fatal(err)
	}
	w, _ := warehouse.New(bq, project, ds, "US")
	rep, err := w.EnsureSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.AddedColumns[schemas.TableFact]) != "[extra]" || !strings.Contains(rep.String(), "added to fact_ai_event: extra") {
		t.Fatalf("report %s", rep)
	}
	md, _ := bq.Dataset(ds).Table(schemas.TableFact).Metadata(ctx)
	if md.Schema[len(md.Schema)-1].Name != "extra" {
		t.Fatal("column not added")
	}
}

func TestIncompatibleSchemaStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ds := fmt.Sprintf("ds_bad_%d", dsSeq.Add(1))
	bq.Dataset(ds).Create(ctx, &bigquery.DatasetMetadata{Location: "US"})
	bad := bigquery.Schema{{Name: "key", Type: bigquery.IntegerFieldType}}
	if err := bq.Dataset(ds).Table(schemas.TableState).Create(ctx, &bigquery.TableMetadata{Schema: bad}); err != nil {
		t.Fatal(err)
	}
	w, _ := warehouse.New(bq, project, ds, "US")
	_, err := w.EnsureSchema(ctx)
	var se *warehouse.SchemaError
	if !asSchemaError(err, &se) || se.Table != schemas.TableState || se.Column != "key" {
		t.Fatalf("err %v, want a SchemaError on pipeline_state.key", err)
	}
}

func TestCheckpoints(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	ctx := context.Background()
	if v, err := w.Checkpoint(ctx, "pull"); err != nil || v != "" {
		t.Fatalf("empty checkpoint %q %v", v, err)
	}
	for _, v := range []string{"c1", "c2"} {
		if err := w.SetCheckpoint(ctx, "pull", v); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if v, err := w.Checkpoint(ctx, "pull"); err != nil || v != "c2" {
		t.Fatalf("checkpoint %q %v, want c2", v, err)
	}
}

// copyRowAs appends a copy of a table's row under another load id: what
// a concurrent commit of an overlapping load leaves when the two
// transactions, both appends, miss each other's rows.
func copyRowAs(t *testing.T, ds, table string, schema bigquery.Schema, where, value, otherLoad string) {
	t.Helper()
	var cols, sel []string
	for _, f := range schema {
		col := "`" + f.Name + "`"
		cols = append(cols, col)
		if f.Name == "load_id" {
			sel = append(sel, "@other")
		} else {
			sel = append(sel, col)
		}
	}
	sql := fmt.Sprintf("INSERT INTO `%s.%s.%s` (%s) SELECT %s FROM `%[1]s.%[2]s.%[3]s` WHERE %[6]s = @v",
		project, ds, table, strings.Join(cols, ", "), strings.Join(sel, ", "), where)
	q := bq.Query(sql)
	q.Parameters = []bigquery.QueryParameter{{Name: "other", Value: otherLoad}, {Name: "v", Value: value}}
	job, err := q.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(context.Background())
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		t.Fatalf("copy %s row: %v\n%s", table, err, sql)
	}
}

// addLedgerRow adds the ledger row a commit of loadID's chunk 0 adds.
func addLedgerRow(t *testing.T, ds, loadID string) {
	t.Helper()
	exec(t, fmt.Sprintf("INSERT INTO `%s.%s.%s` (load_id, chunk, source, `rows`, quarantined, committed_at) SELECT '%s', 0, 'export', 1, 1, CURRENT_TIMESTAMP()",
		project, ds, schemas.TableLedger, loadID))
}

func TestOverlappingLoadsConvergeToOneRowPerID(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_race_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	x, y, z, b := uuid(40), uuid(41), uuid(42), uuid(43)
	bad := strings.Replace(event(b, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1)
	load(t, w, "load-z", 10,
		event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(y, "2026-11-01T11:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad)
	// load-a's commit lands beside load-m's: after load-m's transaction
	// took its snapshot, before load-m looks. Neither saw the other, so
	// x and b are doubled; load-m finds the ledger grown, looks, and
	// removes the copies.
	w.SetCommitHook(func() error {
		w.SetCommitHook(nil)
		copyRowAs(t, ds, schemas.TableFact, bqschema.FactSchema(), "event_id", x, "load-a")
		copyRowAs(t, ds, schemas.TableQuarantine, bqschema.QuarantineTableSchema(), "event_id", b, "load-a")
		if n := factIDs(t, w)[x]; n != 2 {
			t.Fatalf("setup: %s has %d rows, want the raced 2", x, n)
		}
		addLedgerRow(t, ds, "load-a")
		return nil
	})
	load(t, w, "load-m", 10,
		event(x, "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(z, "2026-11-01T12:00:00Z", "ada", "gpt-4o", "allow", "0.01"), bad)
	ids := factIDs(t, w)
	if len(ids) != 3 || ids[x] != 1 || ids[y] != 1 || ids[z] != 1 {
		t.Fatalf("fact ids %v, want x, y, z once each", ids)
	}
	q, err := w.QuarantinedIDs(context.Background())
	if err != nil || len(q) != 1 || len(q[b]) != 1 {
		t.Fatalf("quarantine %v (%v), want %s once", q, err, b)
	}
	// Every commit keeps the row of the smallest load id, so two commits
	// cleaning up at once agree on which row stays.
	rows, err := bq.Query(fmt.Sprintf("SELECT load_id FROM `%s.%s.%s` WHERE event_id = '%s'", project, ds, schemas.TableFact, x)).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var r []bigquery.Value
	if err := rows.Next(&r); err != nil || r[0] != "load-a" {
		t.Fatalf("kept row of %v (%v), want load-a", r, err)
	}
	// The removal logs itself in commit_log, under load-m's set, so an
	// audit carrying its counts sees that fact changed.
	if got := fmt.Sprint(queryRows(t, fmt.Sprintf("SELECT COUNT(*) FROM `%[1]s.%[2]s.%[3]s` r JOIN `%[1]s.%[2]s.%[3]s` c ON c.commit_set = r.commit_set AND c.what = 'commit' WHERE r.what = 'removed'",
		project, ds, schemas.TableCommits))); got != "[[1]]" {
		t.Errorf("commit_log's removed rows of a committed set: %s, want [[1]]", got)
	}
}

func TestConcurrentCommitsOfOneChunkLandItOnce(t *testing.T) {
	t.Parallel()
	w := newWarehouse(t)
	dir, man := split(t, "load-c", 10,
		event(uuid(50), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"),
		event(uuid(51), "2026-11-01T10:00:01Z", "ada", "gpt-4o", "allow", "0.01"),
		strings.Replace(event(uuid(52), "2026-11-01T10:00:02Z", "ada", "gpt-4o", "allow", "0.01"), `"cost":"0.01"`, `"cost":"-1"`, 1))
	c := man.Chunks[0]
	stage(t, w, dir, "load-c", c)
	// A retry that starts while the first attempt's job still runs (its
	// worker died, or its heartbeat timed out).
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- w.CommitChunk(context.Background(), "load-c", "export", c) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if ids := factIDs(t, w); len(ids) != 2 || ids[uuid(50)] != 1 || ids[uuid(51)] != 1 {
		t.Fatalf("fact ids %v", ids)
	}
	q, err := w.QuarantinedIDs(context.Background())
	if err != nil || len(q[uuid(52)]) != 1 {
		t.Fatalf("quarantine %v %v", q, err)
	}
	chk, err := w.CheckLoad(context.Background(), "load-c")
	if err != nil || chk.RawRows != 2 || chk.LedgerRows != 2 || chk.LedgerQuar != 1 {
		t.Fatalf("completeness %+v %v", chk, err)
	}
}

// TestTooLargeRecordIsQuarantinedOnce: a record over the decoder's cap
// loads as a short quarantine row (its raw text cut with a marker) and,
// resent in a later load, stays one row: its identity is the hash of its
// whole text.
func TestTooLargeRecordIsQuarantinedOnce(t *testing.T) {
	t.Parallel()
	ds := fmt.Sprintf("ds_big_%d", dsSeq.Add(1))
	w := newWarehouseIn(t, ds)
	huge := `{"pad":"` + strings.Repeat("z", 3<<20) + `"}`
	load(t, w, "load-big1", 10, event(uuid(30), "2026-11-01T10:00:00Z", "ada", "gpt-4o", "allow", "0.01"), huge)
	load(t, w, "load-big2", 10, huge)
	it, err := bq.Query(fmt.Sprintf("SELECT rule, raw, record_hash FROM `%s.%s.quarantine`", project, ds)).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		var row struct {
			Rule, Raw  string
			RecordHash string `bigquery:"record_hash"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(row.Raw) > schemas.TruncatedRawBytes+200 || !strings.HasSuffix(row.Raw, "sha256 "+row.RecordHash+"]") {
			t.Errorf("raw of %d bytes ending %q, want a prefix and a marker with the hash %s", len(row.Raw), row.Raw[max(0, len(row.Raw)-120):], row.RecordHash)
		}
		got = append(got, row.Rule)
	}
	if len(got) != 1 || got[0] != schemas.RuleTooLarge {
		t.Fatalf("quarantine rules %v, want one %q", got, schemas.RuleTooLarge)
	}
	if ids := factIDs(t, w); len(ids) != 1 {
		t.Errorf("fact %v, want the valid event", ids)
	}
}

// Under a deadline a statement exec runs carries BigQuery's job timeout,
// which the emulator takes as BigQuery does; a read carries none (it keeps
// jobs.query's fast path, and a read of a missing table answers not
// found, where inserted as a job the emulator's answer was retried until
// the deadline, and a worker's stage of a chunk hung); nor does the
// schema's migration, which a deadline would cut off.
func TestStatementsRunUnderADeadline(t *testing.T) {
	t.Parallel()
	w, err := warehouse.New(bq, project, fmt.Sprintf("ds_%d", dsSeq.Add(1)), "US")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seen := record(w)
	if _, err := w.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	schema := seen()
	for _, st := range schema {
		if st.JobTimeout != 0 {
			t.Errorf("schema statement %q has a job timeout of %s", st.What, st.JobTimeout)
		}
	}
	if err := w.SetCheckpoint(ctx, "deadline", "c1"); err != nil {
		t.Fatal(err)
	}
	write := seen()[len(schema):]
	if got, err := w.Checkpoint(ctx, "deadline"); err != nil || got != "c1" {
		t.Fatalf("checkpoint %q %v, want c1", got, err)
	}
	read := seen()[len(schema)+len(write):]
	if len(write) == 0 || len(read) == 0 {
		t.Fatalf("statements seen: %d writing the checkpoint, %d reading it", len(write), len(read))
	}
	for _, st := range write {
		if st.JobTimeout <= 0 || st.JobTimeout > 5*time.Minute {
			t.Errorf("statement %q under a 5-minute deadline has a job timeout of %s", st.What, st.JobTimeout)
		}
	}
	for _, st := range read {
		if st.JobTimeout != 0 {
			t.Errorf("read %q has a job timeout of %s", st.What, st.JobTimeout)
		}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if n, err := w.CountRows(rctx, "stg_never_staged_00000"); err != nil || n != -1 {
		t.Errorf("count of a missing table under a deadline: %d %v, want -1 (not found)", n, err)
	}
}
