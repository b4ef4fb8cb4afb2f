package focus_test

import (
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/focus"
)

func TestStop(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 30, 22, 30, 0, 0, time.UTC)
	s := focus.Session{ID: "s", StartedAt: start}
	tests := []struct {
		name string
		now  time.Time
		secs int
		end  time.Time
	}{
		{"across midnight and the month end", start.Add(95 * time.Minute), 95 * 60, start.Add(95 * time.Minute)},
		{"exactly four hours", start.Add(4 * time.Hour), 4 * 3600, start.Add(4 * time.Hour)},
		{"after the deadline, before the job", start.Add(6 * time.Hour), 4 * 3600, start.Add(4 * time.Hour)},
		{"clock behind the start", start.Add(-time.Minute), 0, start.Add(-time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, secs := focus.Stop(s, tc.now, focus.ByUser)
			if secs != tc.secs || *got.ElapsedSeconds != tc.secs || !got.EndedAt.Equal(tc.end) || got.EndedBy != focus.ByUser || got.Open() {
				t.Fatalf("Stop = %+v, %d; want %d seconds ending %v", got, secs, tc.secs, tc.end)
			}
		})
	}
	if !s.Open() || !s.AutoCloseAt().Equal(time.Date(2026, 12, 1, 2, 30, 0, 0, time.UTC)) {
		t.Fatalf("open %v auto close %v", s.Open(), s.AutoCloseAt())
	}
}
