// Package payload declares what crosses the Temporal boundary between
// workflows and activities: the activities' registered names, their
// inputs and results, the claim check a load carries (Manifest, Chunk),
// and the error types workflows branch on and retry policies name.
//
// It links nothing but the standard library, so workflow code, its
// tests, the replayer and the fuzzed decoders build without the
// BigQuery, Cloud Storage or Prometheus clients. Every type here is
// recorded in workflow histories as JSON: a field renamed or removed
// breaks the replay of histories already recorded
// (workflows/testdata/histories) and of workflows still running; add
// fields, never rename them.
package payload
