package schemas

import "time"

// Derived holds the seed's transform of one event: the columns the star
// schema adds to the contract's fields.
type Derived struct {
	EventDate   time.Time // midnight UTC of the event's day
	Hour        int       // 0-23, UTC
	TotalTokens int64
	CostUSD     Decimal // the contract's cost is already USD; kept exact
	// PolicyCount is how many policies the event triggered (evaluated ones
	// that did not fire carry no signal for the reports).
	PolicyCount int
	WasBlocked  bool
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
		PolicyCount: len(ev.PoliciesTriggered),
		WasBlocked:  ev.Decision == Block,
	}
}
