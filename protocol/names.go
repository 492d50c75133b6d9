package protocol

// Size limits of names, in bytes; MaxIDLen counts the characters of a
// string id.
const (
	MaxUserLen  = 32
	MaxRoomLen  = 64
	MaxEpochLen = 64
	MaxIDLen    = 64
	MaxTokenLen = 4096
)

// ValidUser reports whether s is a valid user name: 1–32 characters from
// A–Z, a–z, 0–9, '_', '.' and '-'.
func ValidUser(s string) bool {
	return validName(s, MaxUserLen, false)
}

// ValidRoom reports whether s is a valid room name: 1–64 characters from
// A–Z, a–z, 0–9, '_', '.', ':' and '-'.
func ValidRoom(s string) bool {
	return validName(s, MaxRoomLen, true)
}

func validName(s string, max int, colon bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '.', c == '-':
		case c == ':' && colon:
		default:
			return false
		}
	}
	return true
}
