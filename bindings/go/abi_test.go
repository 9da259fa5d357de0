package hms_test

import (
	"errors"
	"strings"
	"testing"

	hms "github.com/hms-ffi/hms/bindings/go"
)

func TestABIVersionMatchesHeader(t *testing.T) {
	// Method handles and batches need ABI 1.1: the binding requires it.
	if hms.ABIMajor != 1 || hms.ABIMinor < 1 {
		t.Fatalf("the binding is built for ABI %d.%d, not 1.1 or later", hms.ABIMajor, hms.ABIMinor)
	}
	major, minor := hms.ABIVersion()
	if major != hms.ABIMajor || minor < hms.ABIMinor {
		t.Fatalf("library ABI %d.%d, header %d.%d", major, minor, hms.ABIMajor, hms.ABIMinor)
	}
	if err := hms.CheckABI(); err != nil {
		t.Fatalf("CheckABI: %v", err)
	}
	if v := hms.LibraryVersion(); !strings.HasPrefix(v, "1.") {
		t.Fatalf("LibraryVersion = %q", v)
	}
}

func TestABICheckRefusesOtherVersions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		loaded uint32
		ok     bool
	}{
		{"same", hms.ABIMajor<<16 | hms.ABIMinor, true},
		{"newer minor", hms.ABIMajor<<16 | (hms.ABIMinor + 3), true},
		{"older minor", hms.ABIMajor<<16 | (hms.ABIMinor - 1), false},
		{"1.0", 1 << 16, false},
		{"next major", (hms.ABIMajor + 1) << 16, false},
		{"older major", (hms.ABIMajor - 1) << 16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := hms.CheckABIVersion(tc.loaded)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e := wantCode(t, err, hms.CodeIncompatible)
			if !errors.Is(err, hms.ErrIncompatible) {
				t.Fatal("not ErrIncompatible")
			}
			want := []string{e.Details["library_abi"], e.Details["binding_abi"]}
			for _, v := range want {
				if v == "" || !strings.Contains(e.Message, v) {
					t.Fatalf("message %q does not name both versions %v", e.Message, want)
				}
			}
		})
	}
}

func TestEveryCodeHasASentinel(t *testing.T) {
	codes := hms.Codes()
	if len(codes) != 22 {
		t.Fatalf("%d codes", len(codes))
	}
	for _, c := range codes {
		if c == hms.CodeOK {
			if hms.Sentinel(c) != nil {
				t.Fatal("OK has a sentinel")
			}
			continue
		}
		s := hms.Sentinel(c)
		if s == nil {
			t.Fatalf("no sentinel for %v", c)
		}
		err := error(hms.NewError(c, "boom"))
		if !errors.Is(err, s) {
			t.Fatalf("errors.Is(%v, sentinel) false", c)
		}
		for _, other := range codes {
			if other != c && other != hms.CodeOK && errors.Is(err, hms.Sentinel(other)) {
				t.Fatalf("%v matches the sentinel of %v", c, other)
			}
		}
		if strings.HasPrefix(c.String(), "CODE(") {
			t.Fatalf("%d has no name", int32(c))
		}
	}
	if got := hms.Code(42).String(); got != "CODE(42)" {
		t.Fatalf("Code(42) = %q", got)
	}
}
