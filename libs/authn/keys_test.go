package authn_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
)

// The example of RFC 7638 §3.1.
func TestKeyIDIsTheRFC7638Thumbprint(t *testing.T) {
	t.Parallel()
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got, want := authn.KeyID(key), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("KeyID = %s, want %s", got, want)
	}
}

func TestSignerPublishesJWKS(t *testing.T) {
	t.Parallel()
	key := authntest.Key(t)
	s, err := authn.NewSigner([]*rsa.PrivateKey{key, keyB()}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 {
		t.Fatalf("%d keys, want 2", len(got.Keys))
	}
	for i, k := range []*rsa.PrivateKey{key, keyB()} {
		j := got.Keys[i]
		if j["kty"] != "RSA" || j["use"] != "sig" || j["alg"] != "RS256" || j["kid"] != authn.KeyID(&k.PublicKey) || j["e"] != "AQAB" ||
			j["n"] != base64.RawURLEncoding.EncodeToString(k.N.Bytes()) || len(j) != 6 {
			t.Fatalf("key %d: %v", i, j)
		}
	}
	if s.KeyID() != got.Keys[1]["kid"] {
		t.Fatal("the newest (last) key must sign")
	}
}

func TestNewSignerRefusesWeakOrMissingKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		keys []*rsa.PrivateKey
		iss  string
	}{
		{"no keys", nil, "x"},
		{"1024-bit key", []*rsa.PrivateKey{mustKey(1024)}, "x"},
		{"nil key", []*rsa.PrivateKey{nil}, "x"},
		{"no issuer", []*rsa.PrivateKey{authntest.Key(t)}, ""},
	}
	for _, tc := range cases {
		if _, err := authn.NewSigner(tc.keys, tc.iss, "aud"); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestSignRefusesClaimsVerifyWouldRefuse(t *testing.T) {
	t.Parallel()
	s, err := authn.NewSigner([]*rsa.PrivateKey{authntest.Key(t)}, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	ok := authn.Claims{UserID: uuid.NewString(), SessionID: uuid.NewString(), Tier: authn.TierFree}
	for name, mutate := range map[string]func(*authn.Claims){
		"sub not a UUID": func(c *authn.Claims) { c.UserID = "42" },
		"no session":     func(c *authn.Claims) { c.SessionID = "" },
		"bad tier":       func(c *authn.Claims) { c.Tier = "gold" },
	} {
		c := ok
		mutate(&c)
		if _, err := s.Sign(c, time.Minute); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	older, newer := filepath.Join(dir, "z-old.pem"), filepath.Join(dir, "a-new.pem")
	for _, p := range []string{older, newer} {
		if err := authn.GenerateKeyFile(p); err != nil {
			t.Fatal(err)
		}
	}
	// Modification time, not name, decides which key is newest.
	base := time.Now().Add(-time.Hour)
	if err := os.Chtimes(older, base, base); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(newer, base.Add(time.Minute), base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := authn.GenerateKeyFile(newer); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateKeyFile over an existing file: %v", err)
	}
	if info, err := os.Stat(newer); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", info.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o600); err != nil {
		t.Fatal(err)
	}

	keys, err := authn.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := authn.LoadKeys(older)
	two, _ := authn.LoadKeys(newer)
	if len(keys) != 2 || !keys[0].Equal(one[0]) || !keys[1].Equal(two[0]) {
		t.Fatalf("LoadKeys(dir) = %d keys in the wrong order", len(keys))
	}
	s, err := authn.NewSigner(keys, authn.DefaultIssuer, authn.DefaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID() != authn.KeyID(&two[0].PublicKey) {
		t.Fatal("the most recently modified file must sign")
	}

	// PKCS#1 is read as well; a weak key, a non-key and a missing path are refused.
	pkcs1 := filepath.Join(t.TempDir(), "k.pem")
	writePEM(t, pkcs1, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(authntest.Key(t)))
	if k, err := authn.LoadKeys(pkcs1); err != nil || !k[0].Equal(authntest.Key(t)) {
		t.Fatalf("PKCS#1: %v", err)
	}
	weak := filepath.Join(t.TempDir(), "weak.pem")
	writePEM(t, weak, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(mustKey(1024)))
	cert := filepath.Join(t.TempDir(), "cert.pem")
	writePEM(t, cert, "CERTIFICATE", []byte("x"))
	for _, p := range []string{weak, cert, filepath.Join(dir, "missing.pem"), t.TempDir()} {
		if _, err := authn.LoadKeys(p); err == nil {
			t.Errorf("LoadKeys(%s): no error", p)
		}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
