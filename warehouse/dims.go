package warehouse

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/schemas"
	"github.com/ktpipe/ktpipe/schemas/bqschema"
)

//go:embed prices.csv
var shippedPrices []byte

// Price is a model's list price per 1k tokens, as decimal text.
type Price struct {
	Provider, Model string
	InputPer1k      string
	OutputPer1k     string
}

// UserInfo maps a user to their team and department.
type UserInfo struct {
	Team, Department string
}

// Unknown is the team and department of a user the mapping lacks.
const Unknown = "unknown"

// LoadPrices reads a price table (provider,model,input_cost_per_1k,
// output_cost_per_1k); path "" means the shipped table.
func LoadPrices(path string) ([]Price, error) {
	data := shippedPrices
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("price table: %w", err)
		}
		data = b
	}
	recs, err := readCSV(data, "provider", "model", "input_cost_per_1k", "output_cost_per_1k")
	if err != nil {
		return nil, fmt.Errorf("price table %s: %w", path, err)
	}
	prices := make([]Price, 0, len(recs))
	for i, r := range recs {
		for _, v := range r[2:] {
			if d, err := schemas.ParseDecimal(v); err != nil || d < 0 {
				return nil, fmt.Errorf("price table %s line %d: %q must be a decimal >= 0", path, i+2, v)
			}
		}
		prices = append(prices, Price{Provider: r[0], Model: r[1], InputPer1k: r[2], OutputPer1k: r[3]})
	}
	return prices, nil
}

// LoadUserMap reads a user mapping CSV (user,team,department).
func LoadUserMap(path string) (map[string]UserInfo, error) {
	m := map[string]UserInfo{}
	if path == "" {
		return m, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("user map: %w", err)
	}
	recs, err := readCSV(b, "user", "team", "department")
	if err != nil {
		return nil, fmt.Errorf("user map %s: %w", path, err)
	}
	for _, r := range recs {
		m[r[0]] = UserInfo{Team: r[1], Department: r[2]}
	}
	return m, nil
}

func readCSV(data []byte, header ...string) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(header)
	all, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(all) == 0 || strings.Join(all[0], ",") != strings.Join(header, ",") {
		return nil, fmt.Errorf("header must be %s", strings.Join(header, ","))
	}
	return all[1:], nil
}

// Gateway is a dim_gateway row (declared in payload: FetchGateways
// returns it to workflows).
type Gateway = payload.Gateway

// RefreshDimensions rebuilds the four dimensions from their sources: the
// API's gateways, the price table, the user mapping and the fact table's
// users, models and dates. Those come from fact_users and fact_usage,
// which every commit adds to in its transaction, so a refresh reads a
// row a date and model, folded (FoldUsage), and the rows since the last
// fold, instead of the whole fact table. Each dimension is replaced
// whole (WRITE_TRUNCATE), so a retry is harmless.
func (w *Warehouse) RefreshDimensions(ctx context.Context, gateways []Gateway, prices []Price, users map[string]UserInfo) error {
	var buf bytes.Buffer

	// The models seen, with what their events cost: cost_per_1k is the
	// observed cost of 1,000 tokens (input and output together).
	seen, err := w.query(ctx, "read models", fmt.Sprintf(
		"SELECT provider, model, SUM(cost) AS cost, SUM(tokens) AS tokens FROM %s GROUP BY provider, model HAVING SUM(events) > 0", w.ref(schemas.TableUsage)))
	if err != nil {
		return err
	}
	per1k := map[[2]string]string{}
	for _, r := range seen {
		k := [2]string{r["provider"].(string), r["model"].(string)}
		per1k[k] = costPer1k(r["cost"], r["tokens"])
	}
	buf.Reset()
	known := map[[2]string]bool{}
	model := func(k [2]string, in, out string) {
		fmt.Fprintf(&buf, `{"provider":%s,"model":%s,"input_cost_per_1k":%s,"output_cost_per_1k":%s,"model_id":%s,"model_name":%s,"cost_per_1k":%s}`+"\n",
			js(k[0]), js(k[1]), in, out, js(schemas.ModelID(k[0], k[1])), js(k[1]), nullable(per1k[k]))
	}
	for _, p := range prices {
		k := [2]string{p.Provider, p.Model}
		if known[k] {
			continue // one row per model_id: the first price listed wins
		}
		known[k] = true
		model(k, js(p.InputPer1k), js(p.OutputPer1k))
	}
	for _, r := range seen {
		k := [2]string{r["provider"].(string), r["model"].(string)}
		if !known[k] {
			known[k] = true
			model(k, "null", "null")
		}
	}
	if err := w.replace(ctx, schemas.TableDimModel, &buf); err != nil {
		return err
	}

	// Net of the negative rows a removal of doubled rows writes.
	span, err := w.query(ctx, "read date span", fmt.Sprintf(
		"SELECT MIN(d) AS lo, MAX(d) AS hi FROM (SELECT event_date AS d FROM %s GROUP BY event_date HAVING SUM(events) > 0)", w.ref(schemas.TableUsage)))
	if err != nil {
		return err
	}
	buf.Reset()
	if len(span) == 1 && span[0]["lo"] != nil {
		lo, hi := span[0]["lo"].(civil.Date), span[0]["hi"].(civil.Date)
		for d := lo; !d.After(hi); d = d.AddDays(1) {
			t := d.In(time.UTC)
			_, week := t.ISOWeek()
			wd := int(t.Weekday())
			fmt.Fprintf(&buf, `{"date":"%s","year":%d,"quarter":%d,"month":%d,"day":%d,"weekday":%d,"iso_week":%d,"is_weekend":%t,"date_id":%d,"week":%d}`+"\n",
				d, d.Year, (int(d.Month)+2)/3, int(d.Month), d.Day, wd, week, wd == 0 || wd == 6, schemas.DateID(t), week)
		}
	}
	if err := w.replace(ctx, schemas.TableDimDate, &buf); err != nil {
		return err
	}

	// Gateways and users last: past MaxFormerGateways or
	// KTPIPE_MAX_DIM_USERS the refresh fails for good, after dim_model
	// and dim_date (a new day's row, which the guide's queries join).
	buf.Reset()
	if err := w.refreshGateways(ctx, gateways, &buf); err != nil {
		return err
	}
	buf.Reset()
	if err := w.dimUsers(ctx, users, &buf); err != nil {
		return err
	}
	return w.replace(ctx, schemas.TableDimUser, &buf)
}

// MaxFormerGateways bounds the gateways dim_gateway keeps that the API no
// longer lists (a refresh holds them).
const MaxFormerGateways = 100_000

// ErrTooManyFormerGateways is what a refresh past MaxFormerGateways fails
// with: another attempt would read the same gateways again.
var ErrTooManyFormerGateways = errors.New("dim_gateway holds too many gateways the API no longer lists")

// refreshGateways replaces dim_gateway's rows: the API's gateways, each
// id once (the first listed wins, as a model's first price does), then
// those dim_gateway holds that the API no longer lists, as last listed.
// A gateway's events stay in the fact table after it is deleted, and the
// guide's queries join the fact table to dim_gateway: dropping its row
// would drop its spend from them. A list as at the last refresh (its
// rows' hash in the table's label) leaves the table as it is, without
// reading it.
func (w *Warehouse) refreshGateways(ctx context.Context, gateways []Gateway, buf *bytes.Buffer) error {
	row := func(id, name, team, env, gatewayName string) {
		fmt.Fprintf(buf, `{"gateway_id":%s,"name":%s,"team":%s,"environment":%s,"gateway_name":%s}`+"\n",
			js(id), js(name), js(team), js(env), js(gatewayName))
	}
	listed := []string{}
	seen := map[string]bool{}
	for _, g := range gateways {
		if seen[g.ID] {
			continue
		}
		seen[g.ID] = true
		listed = append(listed, g.ID)
		row(g.ID, g.Name, or(g.Team), or(g.Environment), g.Name)
	}
	listedSum := contentHash(buf.Bytes())
	md, err := w.dimMetadata(ctx, schemas.TableDimGateway)
	if err != nil {
		return err
	}
	// The list's label carries the rows the table was loaded with, as the
	// rows' label does (replaceLabelled), so a table that two refreshes
	// at once left with another list's rows, of another count, is not
	// taken for this one's (of the same count it is: see replaceLabelled).
	if sum, n, ok := strings.Cut(md.Labels[dimListedLabel], "_"); ok && sum == listedSum && n == strconv.FormatUint(md.NumRows, 10) {
		return nil
	}
	var former []map[string]bigquery.Value
	if md.Schema != nil { // the table exists
		former, err = w.query(ctx, "read former gateways", fmt.Sprintf(
			"SELECT gateway_id, name, team, environment, gateway_name FROM %s WHERE gateway_id NOT IN UNNEST(@listed) ORDER BY gateway_id LIMIT @most", w.ref(schemas.TableDimGateway)),
			bigquery.QueryParameter{Name: "listed", Value: listed},
			bigquery.QueryParameter{Name: "most", Value: int64(MaxFormerGateways + 1)})
		if err != nil {
			return err
		}
	}
	if len(former) > MaxFormerGateways {
		return fmt.Errorf("refresh %s: %w: more than %d; remove the ones no event needs by hand", schemas.TableDimGateway, ErrTooManyFormerGateways, MaxFormerGateways)
	}
	for _, r := range former {
		str := func(k string) string { s, _ := r[k].(string); return s }
		if str("gateway_id") == "" {
			continue
		}
		row(str("gateway_id"), str("name"), or(str("team")), or(str("environment")), str("gateway_name"))
	}
	rows := bytes.Count(buf.Bytes(), []byte("\n"))
	return w.replaceLabelled(ctx, schemas.TableDimGateway, buf, map[string]string{dimListedLabel: fmt.Sprintf("%s_%d", listedSum, rows)})
}

// DefaultUsageFoldRows bounds the fact_usage rows a refresh reads
// beyond one a (date, provider, model): past it, FoldUsage folds the
// table into one row a key. Every commit adds a row a key it touched, so
// without the fold a refresh would read a row a commit and key since the
// first load, a cost that grows with the number of commits (a year of
// the pull and webhooks at 1M events a day is 10.7 million rows), not
// with the data.
const DefaultUsageFoldRows = 50_000

// FoldedChunk is the chunk of the fact_usage rows a fold wrote: a
// commit's rows have its first chunk's index (0 or more), the seed's 0,
// a removal of doubled rows -1.
const FoldedChunk = -2

// SetUsageFoldRows sets how many fact_usage rows no fold wrote FoldUsage
// lets stand (DefaultUsageFoldRows when unset or not positive).
func (w *Warehouse) SetUsageFoldRows(n int) { w.usageFoldRows.Store(int64(n)) }

// Fold is what FoldUsage found and did.
type Fold struct {
	Rows   int64 // fact_usage rows since the last fold
	Bound  int64 // the bound they were held to
	Folded bool  // the fold ran and committed
}

// FoldUsage folds fact_usage into one row a (date, provider, model),
// holding its sums, when more than the bound's rows came since the last
// fold. Only sums of the table are ever read
// (the dimensions; the removal of doubled rows adds negative rows), so
// the fold changes no answer. One transaction writes the sums and
// deletes every row but its own, marked by a fold id no load id can
// take: a retry of a fold that landed folds the folded rows again, to
// the same sums. On BigQuery the transaction reads one snapshot and
// deletes only rows of it, so the rows commits append meanwhile stay;
// what conflicts with it is another fold (or the seed), and BigQuery
// then cancels one of the two. One DELETE on fact_usage a fold, never on
// the fact table.
func (w *Warehouse) FoldUsage(ctx context.Context) (Fold, error) {
	f := Fold{Bound: w.usageFoldRows.Load()}
	if f.Bound <= 0 {
		f.Bound = DefaultUsageFoldRows
	}
	usage := w.ref(schemas.TableUsage)
	folded := bigquery.QueryParameter{Name: "folded", Value: FoldedChunk}
	const what = "count fact_usage rows not folded"
	rows, err := w.query(ctx, what, fmt.Sprintf("SELECT COUNTIF(chunk != @folded) AS n FROM %s", usage), folded)
	if err != nil {
		return f, err
	}
	if len(rows) != 1 {
		return f, fmt.Errorf("%s: %d result rows", what, len(rows))
	}
	if f.Rows, err = strictInt(rows[0]["n"]); err != nil {
		return f, fmt.Errorf("%s: %w", what, err)
	}
	if f.Rows <= f.Bound {
		return f, nil
	}
	fold := bigquery.QueryParameter{Name: "fold", Value: "folded " + time.Now().UTC().Format(time.RFC3339Nano)}
	err = w.exec(ctx, fmt.Sprintf("fold fact_usage (%d rows since the last fold, bound %d)", f.Rows, f.Bound), fmt.Sprintf(`BEGIN TRANSACTION;
INSERT INTO %[1]s (event_date, provider, model, events, cost, tokens, load_id, chunk)
SELECT u.event_date, u.provider, u.model, SUM(u.events), SUM(u.cost), SUM(u.tokens), @fold, @folded
FROM %[1]s u GROUP BY u.event_date, u.provider, u.model;
DELETE FROM %[1]s WHERE load_id != @fold;
COMMIT TRANSACTION;
`, usage), fold, folded)
	f.Folded = err == nil
	return f, err
}

// MaxDimUsers is dim_user's bound unless SetMaxDimUsers says otherwise:
// a refresh holds its rows (about 100 bytes a user) to load them, so past
// it the refresh fails naming the bound rather than growing the worker's
// memory with every user ever seen.
const MaxDimUsers = 1_000_000

// SetMaxDimUsers sets dim_user's bound (KTPIPE_MAX_DIM_USERS; 0:
// MaxDimUsers). Call it before the warehouse is used.
func (w *Warehouse) SetMaxDimUsers(n int) { w.maxDimUsers = n }

// ErrTooManyUsers is what a refresh past dim_user's bound fails with:
// another attempt would read the same users again.
var ErrTooManyUsers = errors.New("more distinct users than dim_user's bound (KTPIPE_MAX_DIM_USERS)")

// dimUsers writes dim_user's rows, one a user fact_users has seen, with
// the user map's team and department, streaming them as they are read.
func (w *Warehouse) dimUsers(ctx context.Context, users map[string]UserInfo, buf *bytes.Buffer) error {
	most := cmp.Or(w.maxDimUsers, MaxDimUsers)
	sql := fmt.Sprintf("SELECT DISTINCT `user` FROM %s LIMIT @most", w.ref(schemas.TableUsers))
	it, err := w.newQuery("read users", sql, []bigquery.QueryParameter{{Name: "most", Value: most + 1}}, 0).Read(ctx)
	if err != nil {
		return fmt.Errorf("read users: %w", err)
	}
	for n := 0; ; n++ {
		var row struct {
			User string `bigquery:"user"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read users: %w", err)
		}
		if n == most {
			return fmt.Errorf("read users: more than %d: %w", most, ErrTooManyUsers)
		}
		info, ok := users[row.User]
		if !ok {
			info = UserInfo{Team: Unknown, Department: Unknown}
		}
		fmt.Fprintf(buf, `{"user":%s,"team":%s,"department":%s,"user_id":%s}`+"\n", js(row.User), js(or(info.Team)), js(or(info.Department)), js(schemas.UserID(row.User)))
	}
}

// replace swaps a small table's content for r's rows.
func (w *Warehouse) replace(ctx context.Context, table string, r *bytes.Buffer) error {
	return w.replaceLabelled(ctx, table, r, nil)
}

// replaceLabelled is replace that also sets labels once the rows are in.
func (w *Warehouse) replaceLabelled(ctx context.Context, table string, r *bytes.Buffer, labels map[string]string) error {
	var schema bigquery.Schema
	for _, t := range bqschema.Tables() {
		if t.Name == table {
			schema = t.Schema
		}
	}
	// The table's label names the rows it was last loaded with and counts
	// its loads: the same rows again (most refreshes) start no job, within
	// BigQuery's 1,500 load jobs a table a day. A job is named by the rows
	// and the load's number, so a retry finds the job its predecessor
	// started, and rows that come back after a change (a team renamed and
	// renamed back) are loaded again: named by their rows alone, the old
	// job was taken for done. A load whose label was not set is found and
	// labelled by the next refresh with the same rows.
	sum := contentHash(r.Bytes())
	md, err := w.dimMetadata(ctx, table)
	if err != nil {
		return err
	}
	n, last := parseDimLabel(md.Labels[dimRowsLabel])
	if r.Len() == 0 {
		sum = "none" // no hash's
	}
	var label bigquery.TableMetadataToUpdate
	stale := false
	for k, v := range labels {
		label.SetLabel(k, v)
		stale = stale || md.Labels[k] != v
	}
	// The row count too: two refreshes at once can leave the label of
	// one beside the rows of the other, which a count that differs shows.
	// Rows of the same count stay until the rows change again; so they
	// did before labels, when a job found by its rows' name was done.
	rows := int64(bytes.Count(r.Bytes(), []byte("\n")))
	if last == sum && md.NumRows == uint64(rows) {
		if stale { // the same rows from another list: label the list
			if _, err := w.ds.Table(table).Update(ctx, label, ""); err != nil {
				return fmt.Errorf("refresh %s: label its rows: %w", table, err)
			}
		}
		return nil
	}
	switch {
	case r.Len() == 0 && md.Schema == nil: // dropped by hand: no rows to delete
		err = w.ds.Table(table).Create(ctx, &bigquery.TableMetadata{Schema: schema})
		if isConflict(err) {
			err = nil
		}
	case r.Len() == 0:
		err = w.exec(ctx, "empty "+table, fmt.Sprintf("DELETE FROM %s WHERE TRUE", w.ref(table)))
	default:
		jobID := fmt.Sprintf("ktpipe_dim_%s_%s_g%d", table, sum, n)
		err = w.loadNDJSON(ctx, table, schema, bytes.NewReader(r.Bytes()), jobID, rows)
	}
	if err != nil {
		return err
	}
	label.SetLabel(dimRowsLabel, fmt.Sprintf("%d_%s", n+1, sum))
	if _, err := w.ds.Table(table).Update(ctx, label, ""); err != nil {
		return fmt.Errorf("refresh %s: label its rows: %w", table, err)
	}
	return nil
}

// dimMetadata is a dimension's metadata; a table that is gone (dropped
// by hand) has none, and its load creates it again.
func (w *Warehouse) dimMetadata(ctx context.Context, table string) (*bigquery.TableMetadata, error) {
	md, err := w.ds.Table(table).Metadata(ctx)
	if isNotFound(err) {
		return &bigquery.TableMetadata{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refresh %s: read its metadata: %w", table, err)
	}
	return md, nil
}

// dimListedLabel is the label naming the API's gateway list dim_gateway
// was last refreshed with (the hash of its rows) and the rows loaded.
const dimListedLabel = "ktpipe_listed"

// dimRowsLabel is the label of a dimension's loads: their number and
// the hash of the last one's rows ("3_9f86d081884c7d65").
const dimRowsLabel = "ktpipe_rows"

// parseDimLabel reads dimRowsLabel's value; a missing or foreign one is
// no load yet.
func parseDimLabel(v string) (loads int, rows string) {
	num, sum, ok := strings.Cut(v, "_")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 {
		return 0, ""
	}
	return n, sum
}

// costPer1k is 1000 × cost / tokens as a NUMERIC literal (9 decimals,
// rounded down), or "" when there were no tokens.
func costPer1k(cost, tokens bigquery.Value) string {
	c, ok := cost.(*big.Rat)
	n, ok2 := tokens.(int64)
	if !ok || !ok2 || n <= 0 {
		return ""
	}
	r := new(big.Rat).Mul(c, big.NewRat(1000, n))
	// NUMERIC holds 9 decimals; truncate so the text never rounds up.
	scaled := new(big.Int).Quo(new(big.Int).Mul(r.Num(), big.NewInt(1_000_000_000)), r.Denom())
	return new(big.Rat).SetFrac(scaled, big.NewInt(1_000_000_000)).FloatString(9)
}

func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return js(s)
}

func or(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

func js(s string) string { return string(schemas.AppendJSONString(nil, s)) }
