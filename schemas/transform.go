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

// derive is Transform without the hashed keys. The day and hour come from
// the Unix seconds by integer arithmetic (time.Date and the calendar
// accessors it replaced were most of a transform); deriveReference in the
// tests is the time package's version, and TestDeriveMatchesTimePackage
// holds the two together.
func derive(ev *Event) Derived {
	sec := ev.Timestamp.Unix()
	days := sec / 86400
	if days*86400 > sec {
		days-- // floor, for times before 1970
	}
	y, m, d := civilFromDays(days)
	return Derived{
		EventDate:   time.Unix(days*86400, 0).UTC(),
		Hour:        int(sec-days*86400) / 3600,
		TotalTokens: ev.InputTokens + ev.OutputTokens,
		CostUSD:     ev.Cost,
		PolicyCount: len(ev.PoliciesEvaluated),
		WasBlocked:  ev.Decision == Block,
		DateID:      y*10000 + m*100 + d,
	}
}

// civilFromDays returns the proleptic Gregorian date of the day days after
// 1970-01-01 (H. Hinnant's algorithm, the inverse of daysFromCivil).
func civilFromDays(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	if era*146097 > z {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// maxMemo bounds each map of a KeyMemo; past it the map starts over.
const maxMemo = 10_000

// KeyMemo is Transform with the hashed keys of the models and users it
// has seen remembered: a load holds few of each, and hashing every
// event's would cost about as much as the rest of the split. Each map
// holds at most maxMemo entries (~1 MB); in front of each sits a small
// direct-mapped cache, which for the interned strings of decoded events
// answers with a pointer comparison instead of a map's hashing. The zero
// value is ready; it is not safe for concurrent use.
type KeyMemo struct {
	models      map[[2]string]string
	users       map[string]string
	modelsCache [64]struct{ provider, model, id string }
	usersCache  [1024]struct{ user, id string }
}

// memoHash mixes a few of s's bytes (its length, first, last and two
// inner ones) for the caches; their top bits pick a slot.
func memoHash(s string) uint32 {
	n := len(s)
	if n == 0 {
		return 0
	}
	h := uint32(n) ^ uint32(s[0])<<8 ^ uint32(s[n/2])<<16 ^ uint32(s[n-1])<<24 ^ uint32(s[n/4])<<4
	return h * 0x9e3779b1
}

// Transform is schemas.Transform, with remembered keys.
func (m *KeyMemo) Transform(ev *Event) Derived {
	d := derive(ev)
	mc := &m.modelsCache[memoHash(ev.Model)>>26]
	if mc.id == "" || mc.provider != ev.Provider || mc.model != ev.Model {
		mc.provider, mc.model, mc.id = ev.Provider, ev.Model, m.modelID(ev.Provider, ev.Model)
	}
	uc := &m.usersCache[memoHash(ev.User)>>22]
	if uc.id == "" || uc.user != ev.User {
		uc.user, uc.id = ev.User, m.userID(ev.User)
	}
	d.ModelID, d.UserID = mc.id, uc.id
	return d
}

func (m *KeyMemo) modelID(provider, model string) string {
	if m.models == nil || len(m.models) >= maxMemo {
		m.models = map[[2]string]string{}
	}
	k := [2]string{provider, model}
	id := m.models[k]
	if id == "" {
		id = ModelID(provider, model)
		m.models[k] = id
	}
	return id
}

func (m *KeyMemo) userID(user string) string {
	if m.users == nil || len(m.users) >= maxMemo {
		m.users = map[string]string{}
	}
	id := m.users[user]
	if id == "" {
		id = UserID(user)
		m.users[user] = id
	}
	return id
}
