package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ktpipe/ktpipe/ktsim"
)

// Comparison is the warehouse held against the simulator's ground truth:
// the standard is every valid event exactly once in the fact table,
// nothing else there, and every invalid record quarantined once.
type Comparison struct {
	Valid   int // valid events in the truth
	Invalid int // invalid records in the truth
	Once    int // valid events exactly once in the fact table

	Missing []string // valid events not in the fact table
	Doubled []string // valid events more than once ("id×n")
	Extra   []string // fact rows that are no valid event of the truth ("id×n")

	Quarantined    int      // invalid records quarantined exactly once
	NotQuarantined []string // invalid records quarantined zero or several times ("id (rule)×n")
}

// quarantineKeyLen is how much of a record's id the quarantine keeps as
// its key (an invalid id can be any length).
const quarantineKeyLen = 64

// Compare holds fact (event id → rows, warehouse.FactIDs) and quarantine
// (key → "field: rule" per row, warehouse.QuarantinedIDs) against truth.
func Compare(truth ktsim.Truth, fact map[string]int, quarantine map[string][]string) Comparison {
	c := Comparison{Valid: len(truth.Valid), Invalid: len(truth.Invalid)}
	valid := make(map[string]bool, len(truth.Valid))
	for _, id := range truth.Valid {
		valid[id] = true
		switch n := fact[id]; n {
		case 0:
			c.Missing = append(c.Missing, id)
		case 1:
			c.Once++
		default:
			c.Doubled = append(c.Doubled, fmt.Sprintf("%s×%d", id, n))
		}
	}
	for id, n := range fact {
		if !valid[id] {
			c.Extra = append(c.Extra, fmt.Sprintf("%s×%d", id, n))
		}
	}
	for _, r := range truth.Invalid {
		key := r.ID
		if len(key) > quarantineKeyLen {
			key = key[:quarantineKeyLen]
		}
		if n := len(quarantine[key]); n == 1 {
			c.Quarantined++
		} else {
			c.NotQuarantined = append(c.NotQuarantined, fmt.Sprintf("%s (%s)×%d", r.ID, r.Rule, n))
		}
	}
	for _, l := range [][]string{c.Missing, c.Doubled, c.Extra, c.NotQuarantined} {
		sort.Strings(l)
	}
	return c
}

// OK reports whether the warehouse meets the standard.
func (c Comparison) OK() bool { return len(c.Problems()) == 0 }

// Problems names each way the warehouse misses the standard, with up to
// five examples each.
func (c Comparison) Problems() []string {
	var out []string
	add := func(what string, ids []string) {
		if len(ids) > 0 {
			out = append(out, fmt.Sprintf("%d %s: %s", len(ids), what, strings.Join(ids[:min(5, len(ids))], ", ")))
		}
	}
	add("valid events missing from fact_ai_event", c.Missing)
	add("valid events more than once in fact_ai_event", c.Doubled)
	add("fact_ai_event rows that are no valid event", c.Extra)
	add("invalid records not quarantined exactly once", c.NotQuarantined)
	if c.Valid == 0 || c.Invalid == 0 {
		out = append(out, fmt.Sprintf("degenerate truth: %d valid, %d invalid", c.Valid, c.Invalid))
	}
	return out
}

// String is the comparison in one line.
func (c Comparison) String() string {
	return fmt.Sprintf("%d valid events: %d once in fact_ai_event, %d missing, %d doubled, %d extra rows; %d invalid: %d quarantined once, %d not",
		c.Valid, c.Once, len(c.Missing), len(c.Doubled), len(c.Extra), c.Invalid, c.Quarantined, len(c.NotQuarantined))
}
