// Package ktsim simulates the Keeptrusts Events, Export and Webhook API
// for the local stack, the demo and the tests. It serves the contract in
// ../shared/keeptrusts-api.yaml from deterministic synthetic data, with
// late events, injectable faults and a ground truth of what exists. It
// shares no code with the pipeline's decoders, so the pipeline is tested
// against an independent implementation of the contract.
//
// server.go holds the Server, its faults and the /v1 middleware; ingest.go
// the history and new events; events.go GET /v1/events (pages, count,
// group_by); tail.go the SSE tail; exports.go the Export API; truth.go
// the ground truth (/_sim/truth, users); webhooks.go deliveries.
package ktsim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Gateway is one Keeptrusts gateway, as /v1/gateways serves it.
type Gateway struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Team        string `json:"team"`
	Environment string `json:"environment"`
}

// User is a synthetic user with the org data a user mapping would give.
type User struct {
	Name       string
	Team       string
	Department string
}

// Model is a provider's model with list prices in nano-USD per 1k tokens.
type Model struct {
	Provider      string
	Name          string
	InputPer1k    int64
	OutputPer1k   int64
	share         float64
	meanInTokens  float64
	meanOutTokens float64
}

// Models are real models with their public list prices (USD per 1k tokens
// ×1e9), so the cost reports look like a real bill.
var Models = []Model{
	{"openai", "gpt-4o", 2_500_000, 10_000_000, 0.22, 900, 350},
	{"openai", "gpt-4o-mini", 150_000, 600_000, 0.25, 600, 250},
	{"anthropic", "claude-3-5-sonnet", 3_000_000, 15_000_000, 0.15, 1200, 450},
	{"anthropic", "claude-3-5-haiku", 800_000, 4_000_000, 0.10, 500, 200},
	{"google", "gemini-1.5-pro", 1_250_000, 5_000_000, 0.08, 1500, 400},
	{"google", "gemini-1.5-flash", 75_000, 300_000, 0.07, 700, 250},
	{"azure_openai", "gpt-4o", 2_500_000, 10_000_000, 0.06, 900, 350},
	{"mistral", "mistral-large", 2_000_000, 6_000_000, 0.04, 800, 300},
	{"bedrock", "anthropic.claude-3-haiku", 250_000, 1_250_000, 0.03, 600, 220},
}

var policies = []string{
	"pii-detection", "prompt-injection", "toxicity", "data-exfiltration",
	"cost-guard", "secrets-scanner", "jailbreak-detection",
}

var teams = []struct{ team, department string }{
	{"platform", "engineering"}, {"data-science", "engineering"},
	{"support", "customer-success"}, {"marketing", "go-to-market"},
	{"legal", "operations"}, {"finance", "operations"},
}

var firstNames = []string{"ada", "bo", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo", "kai", "lena", "milo", "nia", "omar", "priya", "quinn", "rosa", "sam", "tariq"}
var lastNames = []string{"ng", "okafor", "silva", "berg", "kim", "novak", "haas"}

// InvalidRules are the validation rules the simulator breaks on purpose,
// one per rule of the loader's validator.
var InvalidRules = []string{
	"missing_field", "bad_timestamp", "bad_decision", "negative_cost",
	"negative_tokens", "unknown_gateway", "bad_id", "fractional_tokens",
}

// kv is one field of a record, in serialisation order, with its JSON text.
type kv struct {
	key string
	val json.RawMessage
}

// record is one ingested event as the server holds it.
type record struct {
	seq      int64     // ingestion order, from 1
	id       string    // "" when the record has no usable id
	ts       time.Time // the timestamp the record claims (intended, for bad ones)
	ingested time.Time
	decision string
	invalid  string // the rule broken; "" when valid
	fields   []kv
	json     []byte // the record as served
	// for aggregates
	provider, model, gateway, user string
	inTok, outTok                  int64
	costNanos                      int64
	triggered                      []string
}

// generator makes deterministic synthetic events from a seed.
type generator struct {
	rng        *rand.Rand
	gateways   []Gateway
	users      []User
	invalid    float64
	addedField string
}

func newGenerator(seed uint64, invalidRate float64, addedField string) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), invalid: invalidRate, addedField: addedField}
	envs := []string{"production", "production", "staging", "development", "production", "staging"}
	names := []string{"gw-prod-eu", "gw-prod-us", "gw-staging-eu", "gw-dev", "gw-prod-apac", "gw-staging-us"}
	for i, name := range names {
		g.gateways = append(g.gateways, Gateway{ID: g.uuid(), Name: name, Team: teams[i%len(teams)].team, Environment: envs[i]})
	}
	for i := 0; i < 60; i++ {
		t := teams[i%len(teams)]
		name := fmt.Sprintf("%s.%s@acme.example", firstNames[i%len(firstNames)], lastNames[i%len(lastNames)])
		g.users = append(g.users, User{Name: name, Team: t.team, Department: t.department})
	}
	return g
}

func (g *generator) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (g *generator) pickModel() Model {
	x := g.rng.Float64()
	for _, m := range Models {
		if x < m.share {
			return m
		}
		x -= m.share
	}
	return Models[0]
}

func (g *generator) lognormal(mean float64) int64 {
	// sigma 0.8 gives the long tail real token counts have.
	const sigma = 0.8
	mu := math.Log(mean) - sigma*sigma/2
	return int64(math.Exp(mu + sigma*g.rng.NormFloat64()))
}

// event makes one record with the given timestamp; the caller sets seq
// and ingested.
func (g *generator) event(ts time.Time) *record {
	m := g.pickModel()
	gw := g.gateways[g.rng.IntN(len(g.gateways))]
	u := g.users[g.rng.IntN(len(g.users))]
	var decision string
	switch x := g.rng.Float64(); {
	case x < 0.85:
		decision = "allow"
	case x < 0.92:
		decision = "redact"
	case x < 0.98:
		decision = "block"
	default:
		decision = "escalate"
	}
	perm := g.rng.Perm(len(policies))
	evaluated := make([]string, 2+g.rng.IntN(4))
	for i := range evaluated {
		evaluated[i] = policies[perm[i]]
	}
	triggered := []string{}
	switch decision {
	case "block":
		triggered = evaluated[:1+g.rng.IntN(2)]
	case "redact", "escalate":
		triggered = evaluated[:1]
	}
	inTok, outTok := g.lognormal(m.meanInTokens), g.lognormal(m.meanOutTokens)
	if decision == "block" {
		outTok = 0 // a blocked request never reaches the model
	}
	cost := inTok*m.InputPer1k/1000 + outTok*m.OutputPer1k/1000
	r := &record{
		id: g.uuid(), ts: ts, decision: decision,
		provider: m.Provider, model: m.Name, gateway: gw.ID, user: u.Name,
		inTok: inTok, outTok: outTok, costNanos: cost, triggered: triggered,
	}
	tsText := ts.UTC().Format("2006-01-02T15:04:05.000Z")
	if g.rng.IntN(10) == 0 {
		// Some gateways report local time with an offset.
		tsText = ts.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
	}
	var metadata any
	if g.rng.IntN(5) > 0 {
		metadata = map[string]any{
			"app":        []string{"chat", "search", "copilot", "summarizer"}[g.rng.IntN(4)],
			"session_id": g.uuid()[:8],
			"region":     []string{"eu-west-1", "us-east-1", "ap-southeast-1"}[g.rng.IntN(3)],
		}
	}
	r.fields = []kv{
		{"id", js(r.id)}, {"timestamp", js(tsText)}, {"gateway_id", js(gw.ID)},
		{"user", js(u.Name)}, {"provider", js(m.Provider)}, {"model", js(m.Name)},
		{"decision", js(decision)}, {"policies_evaluated", js(evaluated)},
		{"policies_triggered", js(triggered)},
		{"latency_ms", js(g.lognormal(800))}, {"input_tokens", js(inTok)},
		{"output_tokens", js(outTok)}, {"cost", js(formatNanos(cost))},
		{"metadata", js(metadata)},
	}
	if g.addedField != "" {
		r.fields = append(r.fields, kv{g.addedField, js("v" + strconv.Itoa(g.rng.IntN(100)))})
	}
	if g.rng.Float64() < g.invalid {
		g.corrupt(r, InvalidRules[g.rng.IntN(len(InvalidRules))])
	}
	r.json = encodeRecord(r.fields)
	return r
}

// corrupt breaks one validation rule of r.
func (g *generator) corrupt(r *record, rule string) {
	r.invalid = rule
	set := func(key string, v any) {
		for i := range r.fields {
			if r.fields[i].key == key {
				r.fields[i].val = js(v)
			}
		}
	}
	switch rule {
	case "missing_field":
		for i := range r.fields {
			if r.fields[i].key == "model" {
				r.fields = append(r.fields[:i], r.fields[i+1:]...)
				break
			}
		}
	case "bad_timestamp":
		set("timestamp", "2026-13-45T99:61:00Z")
	case "bad_decision":
		set("decision", "maybe")
	case "negative_cost":
		set("cost", "-0.25")
	case "negative_tokens":
		set("input_tokens", -12)
	case "unknown_gateway":
		set("gateway_id", g.uuid())
	case "bad_id":
		r.id = "evt-" + g.uuid()[:8]
		set("id", r.id)
	case "fractional_tokens":
		r.fields[indexOf(r.fields, "output_tokens")].val = json.RawMessage("12.5")
	}
}

func indexOf(fields []kv, key string) int {
	for i, f := range fields {
		if f.key == key {
			return i
		}
	}
	return -1
}

func js(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ktsim: marshal %T: %v", v, err)) // only our own values reach here
	}
	return b
}

func formatNanos(n int64) string {
	return fmt.Sprintf("%d.%09d", n/1_000_000_000, n%1_000_000_000)
}

func encodeRecord(fields []kv) []byte {
	b := []byte{'{'}
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.key)
		b = append(b, ':')
		b = append(b, f.val...)
	}
	return append(b, '}')
}
