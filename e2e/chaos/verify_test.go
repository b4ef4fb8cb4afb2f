package chaos

import (
	"regexp"
	"testing"
	"time"
)

func TestSubjectRegexpMatchesLikeNATS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		filters []string
		subject string
		want    bool
	}{
		{"literal", []string{"auth.user.created"}, "auth.user.created", true},
		{"literal is anchored", []string{"auth.user.created"}, "auth.user.created.v2", false},
		{"star is one token", []string{"billing.credits.*"}, "billing.credits.consumed", true},
		{"star is not two tokens", []string{"billing.credits.*"}, "billing.credits.a.b", false},
		{"gt is the rest", []string{"tasks.>"}, "tasks.task.completed", true},
		{"gt needs a token", []string{"tasks.>"}, "tasks", false},
		{"any of several", []string{"a.b", "billing.subscription.*"}, "billing.subscription.renewed", true},
		{"dots are literal", []string{"a.b"}, "axb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := regexp.MustCompile(subjectRegexp(tc.filters)).MatchString(tc.subject); got != tc.want {
				t.Fatalf("%v matches %q = %v, want %v", tc.filters, tc.subject, got, tc.want)
			}
		})
	}
}

func TestReportAttributesFindingsToTheirWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	var r Report
	r.add(t0.Add(time.Second), true, "lost in the window")
	r.add(t0.Add(2*time.Second), false, "doubled in the window")
	r.add(t0.Add(time.Minute), true, "lost later")
	r.add(time.Time{}, false, "no single write")
	r.MissingTasks = []string{"x"}
	if lost, dup := r.In(t0, t0.Add(10*time.Second)); lost != 1 || dup != 1 {
		t.Fatalf("In = %d lost, %d duplicated; want 1 and 1", lost, dup)
	}
	if r.Lost() != 1 {
		t.Fatalf("Lost = %d, want 1 (the missing task)", r.Lost())
	}
}
