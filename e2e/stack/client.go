package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Exchange is one call a Client made: the request as it was sent (its body already read,
// kept in RequestBody) and the answer as it was received.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Response    Response
}

var (
	observersMu sync.RWMutex
	observers   []func(t testing.TB, ex Exchange)
)

// Observe registers f to see every exchange of every Client (of any stack) once its answer
// is read, with the test the client belongs to; calls may be concurrent. The end-to-end
// tests register the OpenAPI contract check this way (contract_test.go), so every request
// any suite makes through a Client is validated without the suites doing anything.
func Observe(f func(t testing.TB, ex Exchange)) {
	observersMu.Lock()
	defer observersMu.Unlock()
	observers = append(observers, f)
}

func notify(t testing.TB, ex Exchange) {
	observersMu.RLock()
	fs := observers
	observersMu.RUnlock()
	for _, f := range fs {
		f(t, ex)
	}
}

// Client calls the gateway as one signed-in user.
type Client struct {
	t       testing.TB
	base    string
	http    *http.Client
	Token   string
	Refresh string
	UserID  string
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
}

// Data decodes {"data": ...} into v.
func (r Response) Data(t testing.TB, v any) {
	t.Helper()
	var env struct{ Data json.RawMessage }
	r.JSON(t, &env)
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("data: %v: %s", err, r.Body)
	}
}

// ErrorCode is the code of an error envelope, or "".
func (r Response) ErrorCode() string {
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Error.Code
}

// NewClient is an anonymous client of the gateway.
func (s *Stack) NewClient() *Client {
	return &Client{t: s.t, base: s.GatewayURL, http: &http.Client{Timeout: 30 * time.Second}}
}

// SignIn signs a new user in through the dev login and returns their client.
func (s *Stack) SignIn(email string) *Client {
	s.t.Helper()
	c := s.NewClient()
	resp := c.Do("POST", "/api/v1/auth/dev/login", map[string]string{"email": email, "name": "E2E User"}, nil)
	if resp.Status != http.StatusOK {
		s.t.Fatalf("dev login: %d %s", resp.Status, resp.Body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		User         struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	resp.JSON(s.t, &tok)
	c.Token, c.Refresh, c.UserID = tok.AccessToken, tok.RefreshToken, tok.User.ID
	return c
}

// For is the client reporting to t: a subtest's failures (and the contract check's
// mismatches) then end that subtest, not its parent from the subtest's goroutine, which
// would stop every other subtest of the stack with it.
func (c *Client) For(t testing.TB) *Client {
	cp := *c
	cp.t = t
	return &cp
}

// Do sends body (marshalled to JSON unless it is []byte or nil) with the client's token.
func (c *Client) Do(method, path string, body any, headers map[string]string) Response {
	c.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
		rd = bytes.NewReader(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	notify(c.t, Exchange{Request: req, RequestBody: raw, Response: r})
	return r
}

// Must is Do that fails the test unless the status is want.
func (c *Client) Must(want int, method, path string, body any, headers map[string]string) Response {
	c.t.Helper()
	r := c.Do(method, path, body, headers)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// Eventually polls f until it returns nil or the deadline passes.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not within %v: %v", timeout, err)
}

// Errorf is fmt.Errorf, for Eventually's callbacks.
var Errorf = fmt.Errorf
