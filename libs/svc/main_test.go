package svc

import (
	"context"
	"io"
	"testing"
)

func TestDispatchChoosesRunOrMigrate(t *testing.T) {
	t.Parallel()
	var called string
	run := func(context.Context, func(string) string, io.Writer, func(string)) error { called = "run"; return nil }
	migrate := func(context.Context, func(string) string, io.Writer) error { called = "migrate"; return nil }
	tests := []struct {
		args    []string
		migrate MigrateFunc
		want    string
		wantErr bool
	}{
		{nil, migrate, "run", false},
		{[]string{"migrate"}, migrate, "migrate", false},
		{[]string{"migrate"}, nil, "", true},
		{[]string{"serve"}, migrate, "", true},
	}
	for _, tt := range tests {
		called = ""
		err := dispatch(context.Background(), tt.args, run, tt.migrate)
		if (err != nil) != tt.wantErr || called != tt.want {
			t.Errorf("%v: called %q, err %v", tt.args, called, err)
		}
	}
}
