package integration

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
)

// auditSchema is the audit table exactly as the helpers' OPS contract
// fixes it (the Audit workflow's branch creates it with the other tables;
// until then status and report tests create it here).
var auditSchema = bigquery.Schema{
	{Name: "audited_at", Type: bigquery.TimestampFieldType, Required: true},
	{Name: "api_newest", Type: bigquery.TimestampFieldType},
	{Name: "warehouse_newest", Type: bigquery.TimestampFieldType},
	{Name: "ingestion_lag_seconds", Type: bigquery.FloatFieldType},
	{Name: "fact_rows", Type: bigquery.IntegerFieldType},
	{Name: "fact_duplicate_rows", Type: bigquery.IntegerFieldType},
	{Name: "fact_duplicate_ratio", Type: bigquery.FloatFieldType},
	{Name: "source_records", Type: bigquery.IntegerFieldType},
	{Name: "source_resends", Type: bigquery.IntegerFieldType},
	{Name: "source_resend_ratio", Type: bigquery.FloatFieldType},
	{Name: "interval_start", Type: bigquery.TimestampFieldType},
	{Name: "interval_end", Type: bigquery.TimestampFieldType},
	{Name: "schema_violations", Type: bigquery.IntegerFieldType},
	{Name: "completeness_start", Type: bigquery.TimestampFieldType},
	{Name: "completeness_end", Type: bigquery.TimestampFieldType},
	{Name: "api_count", Type: bigquery.IntegerFieldType},
	{Name: "warehouse_count", Type: bigquery.IntegerFieldType},
	{Name: "completeness_ratio", Type: bigquery.FloatFieldType},
}

// ensureAuditTable creates the audit table unless the schema already has it.
func ensureAuditTable(t *testing.T, bq *bigquery.Client, dataset string) {
	t.Helper()
	err := bq.Dataset(dataset).Table("audit").Create(context.Background(), &bigquery.TableMetadata{Schema: auditSchema,
		TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "audited_at"}})
	var ge *googleapi.Error
	if err != nil && !(errors.As(err, &ge) && ge.Code == http.StatusConflict) {
		t.Fatal(err)
	}
}

// auditRow is one audit run as a test writes it.
type auditRow struct {
	At, APINewest, WarehouseNewest time.Time
	Lag                            float64
	FactRows, FactDuplicateRows    int64
	SchemaViolations               int64
	APICount, WarehouseCount       int64
}

func insertAudit(t *testing.T, bq *bigquery.Client, dataset string, rows ...auditRow) {
	t.Helper()
	var savers []*bigquery.ValuesSaver
	for _, r := range rows {
		dup, comp := 0.0, 1.0
		if r.FactRows > 0 {
			dup = float64(r.FactDuplicateRows) / float64(r.FactRows)
		}
		if r.APICount > 0 {
			comp = float64(r.WarehouseCount) / float64(r.APICount)
		}
		row := map[string]bigquery.Value{"audited_at": r.At, "api_newest": r.APINewest, "warehouse_newest": r.WarehouseNewest,
			"ingestion_lag_seconds": r.Lag, "fact_rows": r.FactRows, "fact_duplicate_rows": r.FactDuplicateRows, "fact_duplicate_ratio": dup,
			"source_records": 0, "source_resends": 0, "source_resend_ratio": 0.0,
			"interval_start": r.At.Add(-5 * time.Minute), "interval_end": r.At, "schema_violations": r.SchemaViolations,
			"completeness_start": r.At.Truncate(time.Hour).Add(-2 * time.Hour), "completeness_end": r.At.Truncate(time.Hour),
			"api_count": r.APICount, "warehouse_count": r.WarehouseCount, "completeness_ratio": comp}
		savers = append(savers, &bigquery.ValuesSaver{Schema: auditSchema, Row: values(row)})
	}
	// Streamed, not INSERTed: the emulator refuses a DOUBLE parameter
	// into a FLOAT column.
	if err := bq.Dataset(dataset).Table("audit").Inserter().Put(context.Background(), savers); err != nil {
		t.Fatalf("insert audit rows: %v", err)
	}
}

// values orders a row by auditSchema.
func values(row map[string]bigquery.Value) []bigquery.Value {
	out := make([]bigquery.Value, len(auditSchema))
	for i, f := range auditSchema {
		out[i] = row[f.Name]
	}
	return out
}
