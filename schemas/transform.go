package schemas

import "time"

// Derived holds the seed's transform of one event: the columns the star
// schema adds to the contract's fields.
type Derived struct {
	EventDate   time.Time // midnight UTC of the event's day
	Hour        int       // 0-23, UTC
	TotalTokens int64
	CostUSD     Decimal // the contract's cost is already USD; kept exact
	// PolicyCount is how many policies evaluated the event, as the data
	// engineer guide defines it (len(policies_evaluated)); the fact table
	// carries it twice, as ktpipe's policy_count and the guide's
	// policies_count.
	PolicyCount int
	WasBlocked  bool
	// The guide's surrogate keys (see keys.go).
	DateID  int64
	ModelID string
	UserID  string
}

// Transform derives the star schema's columns from a valid event. It is a
// pure function: same event, same result.
func Transform(ev *Event) Derived {
	ts := ev.Timestamp.UTC()
	return Derived{
		EventDate:   time.Date(ts.Year(), ts.Month(), ts.Day(), 0, 0, 0, 0, time.UTC),
		Hour:        ts.Hour(),
		TotalTokens: ev.InputTokens + ev.OutputTokens,
		CostUSD:     ev.Cost,
		PolicyCount: len(ev.PoliciesEvaluated),
		WasBlocked:  ev.Decision == Block,
		DateID:      DateID(ts),
		ModelID:     ModelID(ev.Provider, ev.Model),
		UserID:      UserID(ev.User),
	}
}
