package authn

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// KeyID is the RFC 7638 JWK thumbprint of key: base64url (no padding) of the SHA-256 of
// {"e":…,"kty":"RSA","n":…} with members in that order and no whitespace. Any party can
// recompute it from the published key, so the kid needs no registry.
func KeyID(key *rsa.PublicKey) string {
	n, e := jwkInts(key)
	canonical := `{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// jwkInts are the base64url big-endian forms of the modulus and exponent (RFC 7518 §6.3.1).
func jwkInts(key *rsa.PublicKey) (n, e string) {
	return base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())
}

func checkKeySize(key *rsa.PublicKey) error {
	if key.N.BitLen() < MinKeyBits {
		return fmt.Errorf("authn: RSA key of %d bits: at least %d are required", key.N.BitLen(), MinKeyBits)
	}
	return nil
}

// LoadKeys reads RSA private keys from PEM files (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY") and directories. A directory contributes all its *.pem files, oldest
// modification time first (name breaks ties), so the newest key comes last, which is the
// order NewSigner expects: add a new file to rotate, delete the old one after 7 days.
// Paths keep the order given; every key must be RSA with at least 2048 bits.
func LoadKeys(paths ...string) ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("authn: signing key: %w", err)
		}
		files := []string{p}
		if info.IsDir() {
			if files, err = pemFilesByAge(p); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			k, err := readKeyFile(f)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("authn: no signing keys found in %q", paths)
	}
	return keys, nil
}

func pemFilesByAge(dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("authn: list %s: %w", dir, err)
	}
	type file struct {
		path string
		mod  time.Time
	}
	files := make([]file, 0, len(matches))
	for _, m := range matches {
		info, err := os.Stat(m)
		if err != nil {
			return nil, fmt.Errorf("authn: signing key: %w", err)
		}
		if info.Mode().IsRegular() {
			files = append(files, file{m, info.ModTime()})
		}
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].path < files[j].path
	})
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out, nil
}

func readKeyFile(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authn: signing key: %w", err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("authn: signing key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKeyPEM parses the first PEM block of b as a PKCS#1 or PKCS#8 RSA key of at
// least 2048 bits (for keys held in a secret rather than a file).
func ParsePrivateKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key is %T, not RSA", k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err := checkKeySize(&key.PublicKey); err != nil {
		return nil, err
	}
	return key, nil
}

// GenerateKeyFile writes a new 2048-bit RSA key as PKCS#8 PEM to path (mode 0600,
// parent directories 0700). It never overwrites: an existing file is an error that
// satisfies errors.Is(err, fs.ErrExist), so the local stack can call it on every start.
// 2048 bits is the floor of API.md §2 and keeps verification fast; production keys come
// from a secret, not from here.
func GenerateKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("authn: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("authn: generate key: %w", err) // wraps fs.ErrExist when present
	}
	key, err := rsa.GenerateKey(rand.Reader, MinKeyBits)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("authn: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("authn: generate key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("authn: generate key: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("authn: generate key: %w", err)
	}
	return nil
}

// JWK is one public key of a JWKS (RFC 7517), in the shape API.md §2 publishes.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// JWKS is a JSON Web Key Set: {"keys": [...]}.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK is the published form of key.
func PublicJWK(key *rsa.PublicKey) JWK {
	n, e := jwkInts(key)
	return JWK{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: KeyID(key), N: n, E: e}
}

// publicKey turns a published JWK back into a key; it refuses anything we would not sign with.
func (k JWK) publicKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" {
		return nil, fmt.Errorf("kty %q", k.Kty)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q", k.Use)
	}
	if k.Alg != "" && k.Alg != "RS256" {
		return nil, fmt.Errorf("alg %q", k.Alg)
	}
	nb, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}
	eb, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("e out of range")
	}
	e := new(big.Int).SetBytes(eb)
	if e.Int64() < 3 || e.Int64()%2 == 0 {
		return nil, errors.New("e out of range")
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(e.Int64())}
	if err := checkKeySize(key); err != nil {
		return nil, err
	}
	return key, nil
}
