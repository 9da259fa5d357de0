package hms_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hms "github.com/hms-ffi/hms/bindings/go"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// tokenLine is a line of an API tokens file (docs/security.md):
// "principal roles sha256:<salt hex>:<hex of SHA-256(salt || token)>".
func tokenLine(principal, roles, token string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	digest := sha256.Sum256(append(append([]byte{}, salt...), token...))
	return fmt.Sprintf("%s %s sha256:%s:%s", principal, roles, hex.EncodeToString(salt), hex.EncodeToString(digest[:]))
}

func newToken() string { return "hms_" + rand.Text() }

// securedConfig requires authentication against a tokens file of alice
// (admin) and ops-bot (ops, read).
func securedConfig(t *testing.T, alice, ops string) *hmsv1.RuntimeConfig {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens")
	lines := tokenLine("alice", "admin", alice) + "\n" + tokenLine("ops-bot", "ops,read", ops) + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	return &hmsv1.RuntimeConfig{Security: &hmsv1.SecurityConfig{RequireAuthentication: true, ApiTokensFile: file}}
}

// registerWhoAmI answers "principal|role,role|attributes" of the caller.
func registerWhoAmI(t *testing.T, rt *hms.Runtime) {
	t.Helper()
	svc := must(rt.Register(hms.ServiceDef{
		Name: "hms.gotest.v1.Who",
		Methods: []hms.Method{
			hms.ProtoMethod("Am", func(ctx context.Context, _ *sysv1.EchoRequest) (*sysv1.EchoResponse, error) {
				info, _ := hms.CallFrom(ctx)
				text := fmt.Sprintf("%s|%s|%d", info.Principal, strings.Join(info.Roles, ","), len(info.PrincipalAttributes))
				return &sysv1.EchoResponse{Text: text}, nil
			}),
		},
	}))(t)
	t.Cleanup(func() { _ = svc.Close() })
}

func whoAmI(t *testing.T, rt *hms.Runtime, opts ...hms.CallOption) (string, error) {
	t.Helper()
	var out sysv1.EchoResponse
	err := rt.Call(ctxT(t), "hms.gotest.v1.Who/Am", &sysv1.EchoRequest{}, &out, opts...)
	return out.Text, err
}

func TestCredentialsNeverPrintTheirToken(t *testing.T) {
	token := newToken()
	for _, c := range []hms.Credentials{hms.APIKey(token), hms.BearerToken(token).WithPrincipal("alice")} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			shown := fmt.Sprintf(verb, c)
			if strings.Contains(shown, token) || strings.Contains(shown, hex.EncodeToString([]byte(token))) || !strings.Contains(shown, "<redacted>") {
				t.Fatalf("%s shows %q", verb, shown)
			}
		}
		if shown := fmt.Sprintf("%+v", struct{ C hms.Credentials }{c}); strings.Contains(shown, token) {
			t.Fatalf("a struct holding credentials shows %q", shown)
		}
	}
	c := hms.BearerToken(token).WithPrincipal("alice")
	if c.Scheme() != "bearer" || c.Principal() != "alice" || hms.APIKey(token).Scheme() != "api-key" {
		t.Fatalf("%v", c)
	}
}

func TestCallsWithoutCredentialsAreUnauthenticated(t *testing.T) {
	rt := open(t, hms.WithConfig(securedConfig(t, newToken(), newToken())))
	registerWhoAmI(t, rt)
	_, err := whoAmI(t, rt)
	e := wantCode(t, err, hms.CodeUnauthenticated)
	if e.Details["reason"] != "missing" {
		t.Fatalf("%v", e)
	}
}

func TestAWrongTokenIsUnauthenticatedAndNotEchoed(t *testing.T) {
	rt := open(t, hms.WithConfig(securedConfig(t, newToken(), newToken())))
	registerWhoAmI(t, rt)
	wrong := newToken()
	_, err := whoAmI(t, rt, hms.WithCredentials(hms.APIKey(wrong)))
	e := wantCode(t, err, hms.CodeUnauthenticated)
	if shown := fmt.Sprintf("%v %#v", err, e); strings.Contains(shown, wrong) {
		t.Fatalf("the error shows the token: %s", shown)
	}
}

func TestDefaultCredentialsReachTheHandlerAndACallsOwnReplaceThem(t *testing.T) {
	alice, ops := newToken(), newToken()
	// The default credentials given first survive WithConfig's security section.
	rt := open(t, hms.WithDefaultCredentials(hms.APIKey(alice)), hms.WithConfig(securedConfig(t, alice, ops)))
	registerWhoAmI(t, rt)
	if got := must(whoAmI(t, rt))(t); got != "alice|admin|0" {
		t.Fatalf("default credentials: %q", got)
	}
	opsCreds := hms.WithCredentials(hms.APIKey(ops))
	if got := must(whoAmI(t, rt, opsCreds))(t); got != "ops-bot|ops,read|0" {
		t.Fatalf("a call's credentials: %q", got)
	}
	ctx := ctxT(t)
	var value map[string]any
	for _, f := range []hms.Format{hms.FormatCBOR, hms.FormatJSON} {
		if err := rt.CallValue(ctx, "hms.gotest.v1.Who/Am", map[string]any{}, &value, opsCreds, hms.WithFormat(f)); err != nil {
			t.Fatal(err)
		}
		if value["text"] != "ops-bot|ops,read|0" {
			t.Fatalf("%v: %v", f, value)
		}
	}
	raw := must(rt.CallRaw(ctx, "hms.gotest.v1.Who/Am", hms.FormatJSON, []byte("{}"), opsCreds))(t)
	if !strings.Contains(string(raw), "ops-bot") {
		t.Fatalf("CallRaw: %s", raw)
	}
	// The domain clients take the same call options.
	_, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "x"}, hms.WithCredentials(hms.APIKey(newToken())))
	wantCode(t, err, hms.CodeUnauthenticated)
	if got := must(rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "x"}))(t); got.Text != "x" {
		t.Fatalf("%v", got)
	}
	// Method handles and batches run as the runtime's default credentials.
	m := must(rt.Method("hms.gotest.v1.Who/Am", hms.FormatJSON))(t)
	defer m.Close()
	if got := must(m.CallRaw(ctx, []byte("{}")))(t); !strings.Contains(string(got), "alice|admin") {
		t.Fatalf("method handle: %s", got)
	}
}

func TestCredentialsWithoutATokenAreRefused(t *testing.T) {
	_, err := hms.Open(hms.WithDefaultCredentials(hms.Credentials{}))
	if e := wantCode(t, err, hms.CodeInvalidArgument); !strings.Contains(e.Message, "WithDefaultCredentials") {
		t.Fatalf("%v", e)
	}
	rt := open(t)
	_, err = rt.System().Echo(ctxT(t), &sysv1.EchoRequest{}, hms.WithCredentials(hms.BearerToken("")))
	if e := wantCode(t, err, hms.CodeInvalidArgument); !strings.Contains(e.Message, "no token") {
		t.Fatalf("%v", e)
	}
}
