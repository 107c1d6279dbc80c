package staging

import "strings"

// LoadID joins parts into a staging-safe load id: every byte outside
// [A-Za-z0-9._-] becomes '_', and a leading '.', '-' or '_' becomes 'L'.
// Workflows name their loads with it, and the clean-up predicts those
// names with it, so the two cannot drift apart.
func LoadID(parts ...string) string {
	b := []byte(strings.Join(parts, "-"))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && (b[0] == '.' || b[0] == '-' || b[0] == '_') {
		b[0] = 'L'
	}
	return string(b)
}
