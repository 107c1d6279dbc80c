// Package config reads ktpipe's settings from the environment
// (go-envconfig) and checks them, so a bad or missing variable is named
// with what is wrong before anything starts. It holds plain values and
// its own small types (Secret, Days) and imports no ktpipe package: app
// hands the values to the clients and domain packages it builds.
package config

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
	"golang.org/x/net/http/httpguts"
)

// Keeptrusts says where the source API is.
type Keeptrusts struct {
	BaseURL string `env:"KEEPTRUSTS_BASE_URL, required"`
	Token   Secret `env:"KEEPTRUSTS_API_TOKEN, required"`
	// RateLimit caps Keeptrusts API activities started per second across
	// all workers (a task-queue rate limit on the API task queue). It
	// meters activities, not calls: one pull activity makes up to
	// KTPIPE_PAGES_PER_BATCH page calls.
	RateLimit float64 `env:"KEEPTRUSTS_RATE_LIMIT, default=20"`
	// Bounds of every API call; the defaults and why are in
	// keeptrusts.Default* (app.NewKeeptrusts hands these to the client).
	// Downloads and the tail have no total bound: the idle-read bound
	// ends them when the server goes quiet.
	ConnectTimeout   time.Duration `env:"KEEPTRUSTS_CONNECT_TIMEOUT, default=10s"`
	ResponseTimeout  time.Duration `env:"KEEPTRUSTS_RESPONSE_TIMEOUT, default=60s"`
	IdleReadTimeout  time.Duration `env:"KEEPTRUSTS_IDLE_READ_TIMEOUT, default=30s"`
	CallTimeout      time.Duration `env:"KEEPTRUSTS_CALL_TIMEOUT, default=2m"`
	MaxResponseBytes int64         `env:"KEEPTRUSTS_MAX_RESPONSE_BYTES, default=67108864"`
	// AllowInsecureHTTP permits an http:// base URL off loopback (a
	// simulator on a private Docker network); the token then travels in
	// clear text.
	AllowInsecureHTTP bool `env:"KEEPTRUSTS_ALLOW_INSECURE_HTTP, default=false"`
}

// Webhook configures the webhook receiver the worker serves, when Addr
// is set: near-real-time loads beside the hourly pull.
type Webhook struct {
	Addr   string `env:"KTPIPE_WEBHOOK_ADDR"`
	Secret Secret `env:"KEEPTRUSTS_WEBHOOK_SECRET"`
	// Batch is how long deliveries are collected into one load.
	Batch time.Duration `env:"KTPIPE_WEBHOOK_BATCH, default=1m"`
	// Live is how often a batch streams its new deliveries into
	// live_events, for the view fact_ai_event_live (0: never; past Batch,
	// once a window, alongside the commit).
	Live time.Duration `env:"KTPIPE_WEBHOOK_LIVE, default=2s"`
	// MaxBody bounds one delivery in bytes (8 MiB: ~16,000 events; see
	// webhook.DefaultMaxBody); MaxInFlight bounds deliveries handled at
	// once, and MaxInFlightBytes their declared bodies (0: 32 MiB, or
	// MaxBody if larger, so that a deployment that raised MaxBody keeps
	// starting; memory: about 2 × MaxInFlightBytes); ReadTimeout bounds
	// reading one request (the sender gives up after 10 s).
	MaxBody          int64         `env:"KTPIPE_WEBHOOK_MAX_BODY, default=8388608"`
	MaxInFlight      int           `env:"KTPIPE_WEBHOOK_MAX_IN_FLIGHT, default=64"`
	MaxInFlightBytes int64         `env:"KTPIPE_WEBHOOK_MAX_IN_FLIGHT_BYTES, default=0"`
	ReadTimeout      time.Duration `env:"KTPIPE_WEBHOOK_READ_TIMEOUT, default=10s"`
	// SharedSignals lets deliveries share Temporal signals (several keys
	// a signal). Off by default: a batch begun on a worker of this version
	// must never have a later task run by an older worker while it gets
	// such a signal, so turn it on once every worker runs this version.
	SharedSignals bool `env:"KTPIPE_WEBHOOK_SHARED_SIGNALS, default=false"`
	// LiveOnly: deliveries only feed the live view, and the hourly pull,
	// which brings the same events (a webhook sends a subset of the
	// API's), is their path into fact_ai_event: each event is committed
	// once, not once a path. Needs the compaction, a pull at most hourly
	// and a live landing; a worker with it keeps the live view's longest
	// window. Turn it on once every worker runs this version: an older
	// worker cannot replay a batch begun live only.
	LiveOnly bool `env:"KTPIPE_WEBHOOK_LIVE_ONLY, default=false"`
}

// checkLiveOnly refuses KTPIPE_WEBHOOK_LIVE_ONLY where a delivery would
// miss the live view, or leave it before the pull's load commits it: the
// view keeps a row at most warehouse.MaxLiveWindow (5 h), and the pull
// reaches a delivery's event within its interval, then streams it again
// until the compaction commits it.
func checkLiveOnly(w Webhook, p Pipeline) error {
	if !w.LiveOnly {
		return nil
	}
	if p.CompactEvery == 0 {
		return errors.New("KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_COMPACT_EVERY (without the compaction the live view keeps a delivery an hour, and the pull commits its event when it pulls it)")
	}
	if p.ScheduleInterval > time.Hour {
		return fmt.Errorf("KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_SCHEDULE_INTERVAL of 1h at most, not %s (the pull must reach a delivery's event while the live view still shows it)", p.ScheduleInterval)
	}
	if w.Addr != "" && w.Live == 0 {
		return errors.New("KTPIPE_WEBHOOK_LIVE_ONLY: needs KTPIPE_WEBHOOK_LIVE above 0 (live-only deliveries go only to the live view)")
	}
	return nil
}

// Validate checks the receiver's settings.
func (c Webhook) Validate() error {
	if c.Addr == "" {
		return nil
	}
	if c.Secret == "" {
		return errors.New("KEEPTRUSTS_WEBHOOK_SECRET: missing required value (KTPIPE_WEBHOOK_ADDR serves webhooks, which must be verified)")
	}
	// The sender signs with the secret as set: one with a space or a
	// newline at either end (a secret made from a file) would refuse
	// every delivery. The message never includes the secret.
	if strings.TrimSpace(c.Secret.Reveal()) != c.Secret.Reveal() {
		return errors.New("KEEPTRUSTS_WEBHOOK_SECRET: has leading or trailing whitespace (a secret made from a file often ends in a newline); every delivery's signature would fail")
	}
	if c.Batch < time.Second || c.Batch > time.Hour {
		return fmt.Errorf("KTPIPE_WEBHOOK_BATCH: %s must be between 1s and 1h (a batch's history holds its deliveries' keys)", c.Batch)
	}
	if c.Live != 0 && (c.Live < 500*time.Millisecond || c.Live > 10*time.Minute) {
		return fmt.Errorf("KTPIPE_WEBHOOK_LIVE: %s must be 0 (off) or between 500ms and 10m", c.Live)
	}
	if c.MaxBody < 64<<10 || c.MaxBody > 256<<20 {
		return fmt.Errorf("KTPIPE_WEBHOOK_MAX_BODY: %d must be between 65536 and 268435456 bytes", c.MaxBody)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1024 {
		return fmt.Errorf("KTPIPE_WEBHOOK_MAX_IN_FLIGHT: %d must be between 1 and 1024", c.MaxInFlight)
	}
	if c.MaxInFlightBytes != 0 && (c.MaxInFlightBytes < c.MaxBody || c.MaxInFlightBytes > 4<<30) {
		return fmt.Errorf("KTPIPE_WEBHOOK_MAX_IN_FLIGHT_BYTES: %d must be 0 (32 MiB, or the max body if larger) or between KTPIPE_WEBHOOK_MAX_BODY (%d, so that one delivery of any size fits) and 4294967296 bytes", c.MaxInFlightBytes, c.MaxBody)
	}
	if c.ReadTimeout < time.Second || c.ReadTimeout > 5*time.Minute {
		return fmt.Errorf("KTPIPE_WEBHOOK_READ_TIMEOUT: %s must be between 1s and 5m", c.ReadTimeout)
	}
	return nil
}

// Receiver is what the receiver-only process (`worker webhook`) needs:
// Temporal to signal batches, the staging store, and the receiver; no
// BigQuery and no Keeptrusts API.
type Receiver struct {
	Temporal Temporal
	Pipeline Pipeline
	Webhook  Webhook
	Metrics  Metrics
}

// Validate checks a receiver-only process's settings.
func (c Receiver) Validate() error {
	if c.Webhook.Addr == "" {
		return errors.New("KTPIPE_WEBHOOK_ADDR: missing required value (the receiver-only process serves webhooks there)")
	}
	for _, v := range []interface{ Validate() error }{c.Temporal, c.Pipeline, c.Webhook, c.Metrics} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return checkLiveOnly(c.Webhook, c.Pipeline)
}

// BigQuery says where the warehouse is.
type BigQuery struct {
	Project  string `env:"BIGQUERY_PROJECT, required"`
	Dataset  string `env:"BIGQUERY_DATASET, default=keeptrusts"`
	Location string `env:"BIGQUERY_LOCATION, default=US"`
	// Endpoint points the client at an emulator; empty means BigQuery
	// itself with Application Default Credentials.
	Endpoint string `env:"BIGQUERY_ENDPOINT"`
}

// Pipeline tunes the loads.
type Pipeline struct {
	StagingDir string `env:"KTPIPE_STAGING_DIR, default=.ktpipe/staging"`
	// StagingBucket, when set, keeps staged files in Cloud Storage so that
	// workers on several hosts share them; StagingDir is then local scratch.
	StagingBucket string `env:"KTPIPE_STAGING_BUCKET"`
	StagingPrefix string `env:"KTPIPE_STAGING_PREFIX, default=ktpipe/"`
	ChunkRows     int    `env:"KTPIPE_CHUNK_ROWS, default=50000"`
	// MaxRecordBytes caps one record of an export, page or delivery; a
	// bigger one is quarantined as "record too large" without being held
	// (1 MiB: ~500× a real event). MaxInflateRatio caps a gzip export's
	// decompressed bytes at that many times its compressed bytes plus 64
	// MiB (100: real exports compress 5–15×, a gzip bomb ~1000×).
	MaxRecordBytes  int   `env:"KTPIPE_MAX_RECORD_BYTES, default=1048576"`
	MaxInflateRatio int64 `env:"KTPIPE_MAX_INFLATE_RATIO, default=100"`
	Concurrency     int   `env:"KTPIPE_CONCURRENCY, default=4"`
	PageSize        int   `env:"KTPIPE_PAGE_SIZE, default=1000"`
	// PagesPerBatch bounds one pull activity; BatchesPerRun bounds one
	// workflow run before it continues as new, so history stays small.
	PagesPerBatch    int           `env:"KTPIPE_PAGES_PER_BATCH, default=50"`
	BatchesPerRun    int           `env:"KTPIPE_BATCHES_PER_RUN, default=20"`
	ScheduleInterval time.Duration `env:"KTPIPE_SCHEDULE_INTERVAL, default=1h"`
	CatchupWindow    time.Duration `env:"KTPIPE_CATCHUP_WINDOW, default=24h"`
	// PullStart is where the first incremental pull starts (RFC 3339 or
	// a relative duration such as 24h); later pulls use the checkpoint.
	PullStart string `env:"KTPIPE_PULL_START, default=24h"`
	// LateWindow is how late after its timestamp an event may arrive; a
	// pull whose cursor the server refuses restarts that far before its
	// checkpoint.
	LateWindow          time.Duration `env:"KTPIPE_LATE_WINDOW, default=6h"`
	ExportFormat        string        `env:"KTPIPE_EXPORT_FORMAT, default=ndjson"`
	ExportGzip          bool          `env:"KTPIPE_EXPORT_GZIP, default=true"`
	BackfillWindow      time.Duration `env:"KTPIPE_BACKFILL_WINDOW, default=24h"`
	BackfillParallelism int           `env:"KTPIPE_BACKFILL_PARALLELISM, default=2"`
	UserMapFile         string        `env:"KTPIPE_USER_MAP"`
	// MaxDimUsers bounds dim_user: a refresh holds its rows, about 100
	// bytes a user (warehouse.MaxDimUsers, its default).
	MaxDimUsers int    `env:"KTPIPE_MAX_DIM_USERS, default=1000000"`
	PriceFile   string `env:"KTPIPE_PRICE_TABLE"`
	// StagingRetention: the daily clean-up removes staged files no open
	// workflow uses once they are this old (failed loads stay
	// replayable from staging that long).
	StagingRetention Days `env:"KTPIPE_STAGING_RETENTION, default=7d"`
	// CompactEvery: the pull and the webhook batches stage their loads
	// and the compaction commits them all together this often (its own
	// schedule); 0 commits each load as it lands. See the README, "The
	// compaction".
	CompactEvery time.Duration `env:"KTPIPE_COMPACT_EVERY, default=0"`
}

// MaxCompactEvery bounds KTPIPE_COMPACT_EVERY: the live view shows what
// waits for the compaction for the interval and an hour (the view's window
// is at most 5 hours: live_events keeps a row 5 hours at least).
const MaxCompactEvery = 4 * time.Hour

// Metrics configures the Prometheus endpoint and the audit.
type Metrics struct {
	// Addr serves /metrics (empty: no endpoint).
	Addr string `env:"KTPIPE_METRICS_ADDR, default=:9464"`
	// Refresh is a worker's gauge tick: it lists the compaction's pending
	// marks, ages the pull checkpoint, and reads the warehouse's gauge
	// rows when due (app.gaugeReads: the audit row at its slot, the
	// checkpoint and the last scheduled reconcile every 5 minutes).
	Refresh time.Duration `env:"KTPIPE_METRICS_REFRESH, default=30s"`
	// AuditInterval is the audit schedule's interval (the guide's lag
	// target is 5 minutes: an audit every 5 minutes sees it). Workers
	// read the audit row at its slots from it, so they should have the
	// schedule's value (README, "Metrics and alerts").
	AuditInterval time.Duration `env:"KTPIPE_AUDIT_INTERVAL, default=5m"`
	// ReconcileInterval is the scheduled reconcile's (of the previous
	// UTC day; 0 disables it).
	ReconcileInterval time.Duration `env:"KTPIPE_RECONCILE_INTERVAL, default=24h"`
}

// Validate checks the metrics settings.
func (c Metrics) Validate() error {
	if c.Addr != "" && !strings.Contains(c.Addr, ":") {
		return fmt.Errorf("KTPIPE_METRICS_ADDR: %q must be host:port or :port", c.Addr)
	}
	if c.Refresh < time.Second || c.Refresh > time.Hour {
		return fmt.Errorf("KTPIPE_METRICS_REFRESH: %s must be between 1s and 1h", c.Refresh)
	}
	if c.AuditInterval < time.Minute || c.AuditInterval > 24*time.Hour {
		return fmt.Errorf("KTPIPE_AUDIT_INTERVAL: %s must be between 1m and 24h", c.AuditInterval)
	}
	if c.ReconcileInterval != 0 && c.ReconcileInterval < time.Hour {
		return fmt.Errorf("KTPIPE_RECONCILE_INTERVAL: %s must be 0 (off) or at least 1h", c.ReconcileInterval)
	}
	return nil
}

// Worker is everything a worker needs.
type Worker struct {
	Temporal   Temporal
	Keeptrusts Keeptrusts
	BigQuery   BigQuery
	Pipeline   Pipeline
	Webhook    Webhook
	Metrics    Metrics
}

var taskQueuePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$`)

var goIdent = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// The rules below are config's own, so that a bad variable is named
// before anything starts without config importing the packages that use
// the value; those packages check again where it matters (warehouse
// before splicing a name into SQL, staging before touching a path), and
// app's TestConfigRulesMatchTheDomains keeps both in step.
var (
	// projectPattern is a BigQuery project id (warehouse.ValidateProject).
	projectPattern = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// datasetPattern is a BigQuery dataset name, at most 1,024 characters
	// (warehouse.ValidateDataset).
	datasetPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// stagingKeyPattern is a staging key, never with ".." (staging.CheckKey).
	stagingKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)
)

// exportFormats are the export formats the Keeptrusts API accepts
// (schemas.ParseFormat reads each).
var exportFormats = []string{"ndjson", "json", "csv"}

// Load reads target from lookup (nil: the process environment) and
// validates it. Errors name the variable.
func Load(ctx context.Context, target any, lookup envconfig.Lookuper) error {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	var current string
	track := envconfig.MutatorFunc(func(_ context.Context, originalKey, _, _, resolved string) (string, bool, error) {
		current = originalKey
		return resolved, false, nil
	})
	err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: target, Lookuper: lookup, Mutators: []envconfig.Mutator{track}})
	if err != nil {
		if errors.Is(err, envconfig.ErrMissingRequired) {
			_, key, _ := strings.Cut(err.Error(), envconfig.ErrMissingRequired.Error()+": ")
			return fmt.Errorf("%s: missing required value", key)
		}
		// Drop the Go field path ("Pipeline: ChunkRows: "): the variable is
		// what the user sets.
		msg := err.Error()
		for {
			head, rest, ok := strings.Cut(msg, ": ")
			if !ok || !goIdent.MatchString(head) {
				break
			}
			msg = rest
		}
		return fmt.Errorf("%s: invalid value: %s", current, msg)
	}
	if v, ok := target.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// Validate checks the Keeptrusts settings.
func (c Keeptrusts) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("KEEPTRUSTS_BASE_URL: %q must be an absolute http(s) URL", c.BaseURL)
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) && !c.AllowInsecureHTTP {
		return fmt.Errorf("KEEPTRUSTS_BASE_URL: %q must use https: the bearer token would cross the network in clear text (http is allowed only on loopback: localhost, 127.0.0.0/8, ::1)", c.BaseURL)
	}
	// Set but empty (a compose file's ${TOKEN} with the variable unset)
	// passes "required": refused here, naming it, before anything dials.
	if strings.TrimSpace(c.Token.Reveal()) == "" {
		return errors.New("KEEPTRUSTS_API_TOKEN: must not be empty")
	}
	// Go refuses to send a header holding a control character, on every
	// request, as an error that looks like a network failure (retried for
	// an hour). The messages never include the token.
	if !httpguts.ValidHeaderFieldValue(c.Token.Reveal()) {
		return errors.New("KEEPTRUSTS_API_TOKEN: contains a control character (newline, CR, NUL, ...) that an HTTP header cannot carry; a secret made from a file often ends in a newline")
	}
	// Spaces at either end are not sent as set (Go trims the header's
	// end; one at the start doubles the space after "Bearer"): the server
	// would see another token, so they are a copying mistake.
	if strings.TrimSpace(c.Token.Reveal()) != c.Token.Reveal() {
		return errors.New("KEEPTRUSTS_API_TOKEN: has leading or trailing whitespace")
	}
	if !(c.RateLimit > 0) || math.IsInf(c.RateLimit, 0) {
		return fmt.Errorf("KEEPTRUSTS_RATE_LIMIT: %v must be a number > 0", c.RateLimit)
	}
	for _, b := range []struct {
		name string
		d    time.Duration
	}{{"KEEPTRUSTS_CONNECT_TIMEOUT", c.ConnectTimeout}, {"KEEPTRUSTS_RESPONSE_TIMEOUT", c.ResponseTimeout},
		{"KEEPTRUSTS_IDLE_READ_TIMEOUT", c.IdleReadTimeout}, {"KEEPTRUSTS_CALL_TIMEOUT", c.CallTimeout}} {
		if b.d < time.Second || b.d > time.Hour {
			return fmt.Errorf("%s: %v must be between 1s and 1h", b.name, b.d)
		}
	}
	if c.MaxResponseBytes < 1<<20 || c.MaxResponseBytes > 1<<30 {
		return fmt.Errorf("KEEPTRUSTS_MAX_RESPONSE_BYTES: %d must be between 1048576 (1 MiB) and 1073741824 (1 GiB)", c.MaxResponseBytes)
	}
	return nil
}

// isLoopback reports whether host names this machine: localhost or a
// loopback address (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate checks the BigQuery settings.
func (c BigQuery) Validate() error {
	if !projectPattern.MatchString(c.Project) {
		return fmt.Errorf("BIGQUERY_PROJECT: project %q: must be 6-30 lowercase letters, digits or dashes, starting with a letter", c.Project)
	}
	if len(c.Dataset) > 1024 || !datasetPattern.MatchString(c.Dataset) {
		return fmt.Errorf("BIGQUERY_DATASET: dataset %q: must be letters, digits and underscores, not starting with a digit", c.Dataset)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || u.Host == "" {
			return fmt.Errorf("BIGQUERY_ENDPOINT: %q must be an absolute URL", c.Endpoint)
		}
	}
	return nil
}

// Validate checks the pipeline settings.
func (c Pipeline) Validate() error {
	checks := []struct {
		name string
		ok   bool
		want string
	}{
		// warehouse.MaxChunkRows (config imports no ktpipe package).
		{"KTPIPE_CHUNK_ROWS", c.ChunkRows >= 1 && c.ChunkRows <= 1_000_000, "between 1 and 1000000"},
		{"KTPIPE_MAX_RECORD_BYTES", c.MaxRecordBytes >= 1024 && c.MaxRecordBytes <= 64<<20, "between 1024 and 67108864 (64 MiB)"},
		{"KTPIPE_MAX_INFLATE_RATIO", c.MaxInflateRatio >= 1 && c.MaxInflateRatio <= 1000, "between 1 and 1000"},
		{"KTPIPE_CONCURRENCY", c.Concurrency >= 1 && c.Concurrency <= 64, "between 1 and 64"},
		{"KTPIPE_PAGE_SIZE", c.PageSize >= 1 && c.PageSize <= 10000, "between 1 and 10000 (the API's limit)"},
		{"KTPIPE_PAGES_PER_BATCH", c.PagesPerBatch >= 1 && c.PagesPerBatch <= 1000, "between 1 and 1000"},
		{"KTPIPE_BATCHES_PER_RUN", c.BatchesPerRun >= 1 && c.BatchesPerRun <= 1000, "between 1 and 1000 (each batch adds to the run's history)"},
		{"KTPIPE_SCHEDULE_INTERVAL", c.ScheduleInterval >= time.Minute, "at least 1m"},
		{"KTPIPE_CATCHUP_WINDOW", c.CatchupWindow >= time.Minute, "at least 1m"},
		{"KTPIPE_BACKFILL_WINDOW", c.BackfillWindow >= time.Minute, "at least 1m"},
		{"KTPIPE_LATE_WINDOW", c.LateWindow >= time.Minute, "at least 1m"},
		{"KTPIPE_BACKFILL_PARALLELISM", c.BackfillParallelism >= 1 && c.BackfillParallelism <= 32, "between 1 and 32"},
		{"KTPIPE_MAX_DIM_USERS", c.MaxDimUsers >= 1000 && c.MaxDimUsers <= 50_000_000, "between 1000 and 50000000 (a refresh holds about 100 bytes a user)"},
		{"KTPIPE_STAGING_DIR", c.StagingDir != "", "a directory"},
		// Far above the longest activity and its retries (6 h), so a file a
		// live attempt writes is never old enough to be removed.
		{"KTPIPE_STAGING_RETENTION", time.Duration(c.StagingRetention) >= 24*time.Hour, "at least 24h (1d)"},
		{"KTPIPE_COMPACT_EVERY", c.CompactEvery == 0 || c.CompactEvery >= 5*time.Minute && c.CompactEvery <= MaxCompactEvery, "0 (off) or between 5m and 4h"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("%s: must be %s", ch.name, ch.want)
		}
	}
	if c.StagingBucket != "" && !bucketPattern.MatchString(c.StagingBucket) {
		return fmt.Errorf("KTPIPE_STAGING_BUCKET: %q is not a bucket name (3-63 of a-z, 0-9, -, _, .; no gs://)", c.StagingBucket)
	}
	if p := c.StagingPrefix; p != "" && (!strings.HasSuffix(p, "/") || !stagingKeyPattern.MatchString(strings.TrimSuffix(p, "/")) || strings.Contains(p, "..")) {
		return fmt.Errorf("KTPIPE_STAGING_PREFIX: %q must be empty or slash-separated [A-Za-z0-9._-] segments ending in /", p)
	}
	if !slices.Contains(exportFormats, c.ExportFormat) {
		return fmt.Errorf("KTPIPE_EXPORT_FORMAT: format %q: must be json, ndjson or csv", c.ExportFormat)
	}
	if _, err := ParseSince(c.PullStart, time.Now()); err != nil {
		return fmt.Errorf("KTPIPE_PULL_START: %w", err)
	}
	return nil
}

// Validate checks every part of a worker's settings.
func (c Worker) Validate() error {
	for _, v := range []interface{ Validate() error }{c.Temporal, c.Keeptrusts, c.BigQuery, c.Pipeline, c.Webhook, c.Metrics} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return checkLiveOnly(c.Webhook, c.Pipeline)
}

// maxSinceUnits bounds ParseSince's relative forms: 100 years.
var maxSinceUnits = map[byte]int{'m': 100 * 366 * 24 * 60, 'h': 100 * 366 * 24, 'd': 100 * 366}

// ParseSince reads an RFC 3339 time or a relative duration (<n>m, <n>h,
// <n>d, at most 100 years) meaning now minus that, the contract's
// convention.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if len(s) >= 2 {
		var n int
		// At most 100 years back in any unit: more would overflow a
		// Duration into a time in the future.
		if _, err := fmt.Sscanf(s[:len(s)-1], "%d", &n); err == nil && n >= 0 && fmt.Sprint(n) == s[:len(s)-1] && n <= maxSinceUnits[s[len(s)-1]] {
			switch s[len(s)-1] {
			case 'm':
				return now.Add(-time.Duration(n) * time.Minute).UTC(), nil
			case 'h':
				return now.Add(-time.Duration(n) * time.Hour).UTC(), nil
			case 'd':
				return now.Add(-time.Duration(n) * 24 * time.Hour).UTC(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("%q must be an RFC 3339 time or a duration like 30m, 24h, 30d (at most 100 years)", s)
}

// Days is a duration that also reads whole days ("7d"), the unit
// retention is thought in; Go durations ("36h") work too.
type Days time.Duration

// EnvDecode reads "<n>d" or a Go duration.
func (d *Days) EnvDecode(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n && days >= 0 && days <= 3650 {
			*d = Days(time.Duration(days) * 24 * time.Hour)
			return nil
		}
		return fmt.Errorf("%q must be whole days (e.g. 7d) or a duration (e.g. 36h)", s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q must be whole days (e.g. 7d) or a duration (e.g. 36h)", s)
	}
	*d = Days(v)
	return nil
}
