package httpx

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Pagination defaults and bounds (API.md §1).
const (
	DefaultLimit = 25
	MaxLimit     = 100
)

// Page is the offset/limit of a list request.
type Page struct {
	Offset int
	Limit  int
}

// Pagination is the list envelope's page block.
type Pagination struct {
	Offset  int  `json:"offset"`
	Limit   int  `json:"limit"`
	Total   int  `json:"total"`
	HasMore bool `json:"has_more"`
}

// List is the list envelope: {"data": [...], "pagination": {...}}.
type List[T any] struct {
	Data       []T        `json:"data"`
	Pagination Pagination `json:"pagination"`
}

// ParsePage reads offset and limit from the query, with the defaults and bounds of API.md.
func ParsePage(r *http.Request) (Page, error) { return ParsePageQuery(r.URL.Query()) }

// ParsePageQuery is ParsePage for a query already parsed (r.URL.Query() parses it anew
// at every call).
func ParsePageQuery(q url.Values) (Page, error) {
	p := Page{Offset: 0, Limit: DefaultLimit}
	var v apperr.Validator
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		v.Check(err == nil && n >= 0, "offset", "must be an integer ≥ 0")
		p.Offset = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		v.Check(err == nil && n >= 1 && n <= MaxLimit, "limit", "must be an integer from 1 to 100")
		p.Limit = n
	}
	return p, v.Err()
}

// NewList builds the envelope; items is never encoded as null.
func NewList[T any](items []T, p Page, total int) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Data: items, Pagination: Pagination{
		Offset: p.Offset, Limit: p.Limit, Total: total, HasMore: p.Offset+len(items) < total,
	}}
}
