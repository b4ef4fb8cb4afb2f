package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// TestWriteTaskListMatchesWriteJSON holds the hand-built list answer to the envelope that
// encoding/json makes of it: same status, headers and bytes.
func TestWriteTaskListMatchesWriteJSON(t *testing.T) {
	t.Parallel()
	due := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	tk := task.Task{ID: "a", UserID: "u", Title: "<b>", Priority: task.Low, DueDate: &due, CreatedAt: due, UpdatedAt: due}
	tests := []struct {
		name  string
		tasks []task.Task
		page  httpx.Page
		total int
	}{
		{name: "empty", tasks: nil, page: httpx.Page{Limit: 25}, total: 0},
		{name: "beyond the end", tasks: []task.Task{}, page: httpx.Page{Offset: 50, Limit: 25}, total: 3},
		{name: "one", tasks: []task.Task{tk}, page: httpx.Page{Limit: 25}, total: 1},
		{name: "more", tasks: []task.Task{tk, tk, tk}, page: httpx.Page{Offset: 3, Limit: 3}, total: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := httptest.NewRecorder()
			out := make([]wire.Task, 0, len(tt.tasks))
			for _, x := range tt.tasks {
				out = append(out, wire.FromTask(x))
			}
			httpx.WriteJSON(want, http.StatusOK, httpx.NewList(out, tt.page, tt.total))
			got := httptest.NewRecorder()
			writeTaskList(got, tt.tasks, tt.page, tt.total)
			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("writeTaskList: %d %s\nWriteJSON: %d %s", got.Code, got.Body, want.Code, want.Body)
			}
			for _, h := range []string{"Content-Type", "Content-Length"} {
				if got.Header().Get(h) != want.Header().Get(h) {
					t.Errorf("%s: %q, want %q", h, got.Header().Get(h), want.Header().Get(h))
				}
			}
		})
	}
}
