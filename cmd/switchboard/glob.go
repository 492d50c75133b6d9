package main

import (
	"fmt"
	"path"
	"strings"
)

// Globs limit what a token allows: its rooms claim lists the rooms the user
// may join, its dm claim the users the user may send direct messages to.
// The syntax is path.Match's (* ? [a-z] and \ escapes); names have no '/',
// so * matches any run of characters.

// checkGlobs validates patterns against names for which valid reports true:
// a pattern must be well formed and able to match at least one valid name,
// so that a typo ("bad room", "lobby,,team-*") is refused rather than
// silently allowing nothing. kind ("room", "user") names what is matched in
// the error, which quotes the first bad pattern.
func checkGlobs(patterns []string, kind string, valid func(string) bool) error {
	for _, p := range patterns {
		if p == "" {
			return fmt.Errorf("empty pattern")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("malformed pattern %q", p)
		}
		if w, ok := globWitness(p, nameAlphabet(valid)); !ok || !valid(w) {
			return fmt.Errorf("pattern %q can never match a %s name", p, kind)
		}
	}
	return nil
}

// globWitness returns the shortest string the well-formed pattern p matches,
// each of its characters taken from alphabet (the characters valid in a
// name) where that is possible. Some valid name matches p exactly when the
// witness is valid. ok is false when a character class admits no character
// of alphabet.
func globWitness(p, alphabet string) (string, bool) {
	var w strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
		case '?':
			w.WriteString(alphabet[:1])
		case '\\':
			i++
			w.WriteByte(p[i])
		case '[':
			j := i + 1
			if p[j] == '^' {
				j++
			}
			for p[j] != ']' {
				if p[j] == '\\' {
					j++
				}
				j++
			}
			class := p[i : j+1]
			i = j
			found := false
			for _, a := range alphabet {
				if ok, _ := path.Match(class, string(a)); ok {
					w.WriteRune(a)
					found = true
					break
				}
			}
			if !found {
				return "", false
			}
		default:
			w.WriteByte(c)
		}
	}
	if w.Len() == 0 { // only stars: any one valid character will do
		return alphabet[:1], true
	}
	return w.String(), true
}

// nameAlphabet returns the printable ASCII characters valid in a name.
func nameAlphabet(valid func(string) bool) string {
	var b strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		if valid(string(c)) {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// globMatcher returns a function reporting whether a name matches any of
// the patterns, which checkGlobs has accepted.
func globMatcher(patterns []string) func(string) bool {
	return func(name string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
}
