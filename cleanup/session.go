package cleanup

import "time"

// Session holds the fields of a stored session that filters, previews and notifications need.
// Tokens, certificate fingerprints and secrets are deliberately absent: they are never decoded,
// so they cannot leak through this type.
type Session struct {
	UserID       string
	Username     string
	AuthMethod   string
	CreatedAt    time.Time
	LastActivity time.Time
	ExpiresAt    time.Time

	// Has records which fields were present and well-formed (a string, or an RFC 3339 time).
	Has Fields
}

// Fields is a set of session fields.
type Fields uint8

// The session fields a filter can depend on.
const (
	FieldUserID Fields = 1 << iota
	FieldUsername
	FieldAuthMethod
	FieldCreatedAt
	FieldLastActivity
	FieldExpiresAt
)

// Contains reports whether every field of want is in f.
func (f Fields) Contains(want Fields) bool { return f&want == want }
