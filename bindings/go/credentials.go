package hms

import (
	"fmt"
	"io"

	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// Credentials are what a caller presents to a runtime that authenticates
// calls (docs/security.md): a JWT (BearerToken) or an API token (APIKey).
// Give them to a runtime once with WithDefaultCredentials, or to one call
// with WithCredentials.
//
// Every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) prints the token as
// <redacted>, so logging Credentials leaks nothing; the token is reachable
// only by the binding when it encodes a call.
type Credentials struct {
	scheme    string
	token     string
	principal string
}

// BearerToken is credentials carrying a JWT (scheme "bearer").
func BearerToken(jwt string) Credentials { return Credentials{scheme: "bearer", token: jwt} }

// APIKey is credentials carrying an API token, its salted hash in the runtime's API tokens
// file (scheme "api-key").
func APIKey(token string) Credentials { return Credentials{scheme: "api-key", token: token} }

// WithPrincipal names the principal the token must belong to: a call whose
// token is another principal's fails ErrUnauthenticated.
func (c Credentials) WithPrincipal(principal string) Credentials {
	c.principal = principal
	return c
}

// Scheme is "bearer" or "api-key".
func (c Credentials) Scheme() string { return c.scheme }

// Principal is the principal given with WithPrincipal, empty without one.
func (c Credentials) Principal() string { return c.principal }

// String shows the scheme and principal, never the token.
func (c Credentials) String() string {
	return fmt.Sprintf("hms.Credentials{Scheme: %q, Token: <redacted>, Principal: %q}", c.scheme, c.principal)
}

// GoString is String, so that %#v shows no token either.
func (c Credentials) GoString() string { return c.String() }

// Format makes every verb print String: without it %d or %x would print
// the fields, the token among them.
func (c Credentials) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// message is the hms.v1.Credentials the core reads.
func (c Credentials) message() *hmsv1.Credentials {
	return &hmsv1.Credentials{Scheme: c.scheme, Token: c.token, Principal: c.principal}
}

// check refuses credentials without a token (the zero Credentials, or
// BearerToken("")): sent, they would authenticate nobody.
func (c Credentials) check(option string) error {
	if c.token == "" {
		return bindingError(CodeInvalidArgument, nil, "%s: the credentials have no token (make them with BearerToken or APIKey)", option)
	}
	return nil
}
