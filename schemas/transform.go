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
	d := derive(ev)
	d.ModelID, d.UserID = ModelID(ev.Provider, ev.Model), UserID(ev.User)
	return d
}

// derive is Transform without the hashed keys.
func derive(ev *Event) Derived {
	ts := ev.Timestamp.UTC()
	return Derived{
		EventDate:   time.Date(ts.Year(), ts.Month(), ts.Day(), 0, 0, 0, 0, time.UTC),
		Hour:        ts.Hour(),
		TotalTokens: ev.InputTokens + ev.OutputTokens,
		CostUSD:     ev.Cost,
		PolicyCount: len(ev.PoliciesEvaluated),
		WasBlocked:  ev.Decision == Block,
		DateID:      DateID(ts),
	}
}

// maxMemo bounds each map of a KeyMemo; past it the map starts over.
const maxMemo = 10_000

// KeyMemo is Transform with the hashed keys of the models and users it
// has seen remembered: a load holds few of each, and hashing every
// event's would cost about as much as the rest of the split. Each map
// holds at most maxMemo entries (~1 MB). The zero value is ready; it is
// not safe for concurrent use.
type KeyMemo struct {
	models map[[2]string]string
	users  map[string]string
}

// Transform is schemas.Transform, with remembered keys.
func (m *KeyMemo) Transform(ev *Event) Derived {
	if m.models == nil || len(m.models) >= maxMemo {
		m.models = map[[2]string]string{}
	}
	if m.users == nil || len(m.users) >= maxMemo {
		m.users = map[string]string{}
	}
	d := derive(ev)
	k := [2]string{ev.Provider, ev.Model}
	if d.ModelID = m.models[k]; d.ModelID == "" {
		d.ModelID = ModelID(ev.Provider, ev.Model)
		m.models[k] = d.ModelID
	}
	if d.UserID = m.users[ev.User]; d.UserID == "" {
		d.UserID = UserID(ev.User)
		m.users[ev.User] = d.UserID
	}
	return d
}
