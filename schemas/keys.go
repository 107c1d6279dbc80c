package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The star schema's surrogate keys, as the data engineer guide draws them
// (fact_ai_event.date_id, model_id, user_id). Each is a pure function of
// the event's own values, never a sequence, so a reload, a replay or a
// second worker derives the same key for the same event. The warehouse
// computes the same values in SQL for rows loaded before these columns
// existed (warehouse.KeySQL), so the two definitions must stay in step:
// TestGuideColumnsEvolveAnOldDataset (warehouse) checks them against each other on the emulator.

// DateID is the day as the integer yyyymmdd (20261129), UTC.
func DateID(day time.Time) int64 {
	y, m, d := day.Date()
	return int64(y)*10000 + int64(m)*100 + int64(d)
}

// ModelID identifies a provider's model: the first 16 hex digits of the
// SHA-256 of "<bytes in provider>:<provider><model>". The length prefix
// keeps ("ab","c") and ("a","bc") apart without a separator that a name
// could contain; the same model name under two providers (gpt-4o on
// openai and azure_openai) gets two ids, as it has two prices.
func ModelID(provider, model string) string {
	b := make([]byte, 0, 8+len(provider)+len(model))
	b = strconv.AppendInt(b, int64(len(provider)), 10)
	b = append(b, ':')
	b = append(b, provider...)
	b = append(b, model...)
	return shortHash(b)
}

// UserID identifies a user: the first 16 hex digits of the SHA-256 of
// the user's name as the gateway reports it.
func UserID(user string) string { return shortHash([]byte(user)) }

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
