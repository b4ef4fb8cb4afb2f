package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/config"
)

func TestReaderCollectsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PORT": "x", "ON": "maybe", "WAIT": "-1s", "LIST": " a, ,b ", "NAME": " n "}
	r := config.NewReader(func(k string) string { return env[k] })
	if got := r.String("NAME", "d"); got != "n" {
		t.Fatalf("String = %q", got)
	}
	if got := r.String("MISSING", "d"); got != "d" {
		t.Fatalf("default = %q", got)
	}
	if got := r.List("LIST", nil); strings.Join(got, "|") != "a|b" {
		t.Fatalf("List = %v", got)
	}
	r.Int("PORT", 1)
	r.Bool("ON", false)
	r.Duration("WAIT", time.Second)
	r.Required("SECRET")
	err := r.Err()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"PORT", "ON", "WAIT", "SECRET is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
