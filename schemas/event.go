// Package schemas is the single source of ktpipe's data shapes: the
// Keeptrusts Event of the API contract, its streaming decoders, the
// validation rules, the seed's transform and the row encoding for BigQuery
// loads. The BigQuery table definitions are in schemas/bqschema.
package schemas

import (
	"encoding/json"
	"time"
)

// Decision is the gateway's verdict on one interaction.
type Decision string

// The decisions the contract allows.
const (
	Allow    Decision = "allow"
	Block    Decision = "block"
	Redact   Decision = "redact"
	Escalate Decision = "escalate"
)

// Valid reports whether d is one of the contract's decisions.
func (d Decision) Valid() bool {
	switch d {
	case Allow, Block, Redact, Escalate:
		return true
	}
	return false
}

// Event is one AI interaction as the contract defines it. Decoders reuse
// an Event's slices between records, so copy what must outlive the next
// call.
type Event struct {
	ID                string
	Timestamp         time.Time
	GatewayID         string
	User              string
	Provider          string
	Model             string
	Decision          Decision
	PoliciesEvaluated []string
	PoliciesTriggered []string
	LatencyMs         int64
	InputTokens       int64
	OutputTokens      int64
	Cost              Decimal
	// Metadata is the raw JSON object, nil when absent or null.
	Metadata json.RawMessage
	// Extra holds fields the contract does not name yet, verbatim: a server
	// may add fields, and the pipeline keeps them rather than failing.
	Extra []Field

	// present records which required fields the record carried.
	present fieldSet
	// plain says the string fields the row encoder writes (id, gateway,
	// user, provider, model, decision, policies) are ASCII without quotes,
	// backslashes or control characters, as fastParse found them: their
	// JSON is themselves in quotes, so the encoder copies them.
	plain bool
	// uuid is the 16 bytes of the id uuidOf, which fastParse parsed as it
	// read it; UUID uses them while ID is still that id, so validation and
	// the dedup key do not parse the same text again.
	uuid   [16]byte
	uuidOf string
}

// UUID returns the 16 bytes of ev.ID when it is an 8-4-4-4-12 hex UUID.
func (ev *Event) UUID() ([16]byte, bool) {
	if ev.uuidOf != "" && ev.uuidOf == ev.ID {
		return ev.uuid, true
	}
	return ParseUUID(ev.ID)
}

// HasTimestamp reports whether the record carried a valid timestamp; a
// quarantined record keeps it so reconciliation can place it in its hour.
func (ev *Event) HasTimestamp() bool { return ev.present&fTimestamp != 0 }

// Field is one name/value pair of a field the contract does not name.
type Field struct {
	Name  string
	Value json.RawMessage
}

// reset clears ev for the next record, keeping slice capacity.
func (ev *Event) reset() {
	*ev = Event{
		PoliciesEvaluated: ev.PoliciesEvaluated[:0],
		PoliciesTriggered: ev.PoliciesTriggered[:0],
		Metadata:          ev.Metadata[:0],
		Extra:             ev.Extra[:0],
	}
}

// fieldSet is a bit set over the contract's required fields.
type fieldSet uint16

const (
	fID fieldSet = 1 << iota
	fTimestamp
	fGatewayID
	fUser
	fProvider
	fModel
	fDecision
	fLatencyMs
	fInputTokens
	fOutputTokens
	fCost
)

// requiredFields lists the contract's required fields in its order.
var requiredFields = []struct {
	bit  fieldSet
	name string
}{
	{fID, "id"}, {fTimestamp, "timestamp"}, {fGatewayID, "gateway_id"},
	{fUser, "user"}, {fProvider, "provider"}, {fModel, "model"},
	{fDecision, "decision"}, {fLatencyMs, "latency_ms"},
	{fInputTokens, "input_tokens"}, {fOutputTokens, "output_tokens"},
	{fCost, "cost"},
}

// FieldNames is the contract's field order, which the CSV header follows.
var FieldNames = []string{
	"id", "timestamp", "gateway_id", "user", "provider", "model", "decision",
	"policies_evaluated", "policies_triggered", "latency_ms", "input_tokens",
	"output_tokens", "cost", "metadata",
}
