// Package contract checks HTTP exchanges against the OpenAPI document the gateway serves
// (services/gateway/openapi/openapi.json), with kin-openapi's request and response
// validators, so the document cannot drift from what the services really answer. It also
// renders the document's surface as stable text for a golden test.
package contract

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// DocumentPath is the document's place in the repository, relative to its root.
const DocumentPath = "services/gateway/openapi/openapi.json"

// bodyLimit is how much of a body a mismatch report quotes.
const bodyLimit = 600

func init() {
	// Bodies the document describes as text (the calendar feed, the SSE streams, the docs
	// page and its bundle, Prometheus' exposition): validated as strings.
	for _, ct := range []string{"text/calendar", "text/event-stream", "text/html", "application/javascript", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// Validator validates exchanges against one document and counts what it saw.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	server *url.URL // requests are routed as if sent to the document's first server

	mu   sync.Mutex
	seen map[string]int // "METHOD /template STATUS" → exchanges
	n    int
}

// Load reads and validates the document at path and prepares its router.
func Load(path string) (*Validator, error) {
	doc, err := LoadDocument(path)
	if err != nil {
		return nil, err
	}
	if len(doc.Servers) == 0 {
		return nil, errors.New("contract: the document lists no server")
	}
	server, err := url.Parse(doc.Servers[0].URL)
	if err != nil {
		return nil, fmt.Errorf("contract: server url: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: router: %w", err)
	}
	return &Validator{doc: doc, router: router, server: server, seen: map[string]int{}}, nil
}

// LoadDocument reads the document and checks it is a valid OpenAPI document.
func LoadDocument(path string) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("contract: load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("contract: %s is not a valid OpenAPI document: %w", path, err)
	}
	return doc, nil
}

// RepoPath finds path (relative to the repository root, the directory holding go.work)
// from the working directory.
func RepoPath(path string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, path), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("contract: go.work not found above the working directory")
		}
		dir = parent
	}
}

// Doc is the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Check validates one exchange: the request against its operation when the service
// accepted it (a 4xx answer is usually a test sending bad input on purpose), and the
// answer always — its status must be documented for the operation, its declared headers
// present and valid, and its body must match the schema of its content type.
func (v *Validator) Check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return v.check(req, reqBody, status, header, body, status < 400)
}

// CheckResponse validates only the answer, for requests sent malformed on purpose that a
// lenient service may still accept (such as a probe of every route with an empty body).
func (v *Validator) CheckResponse(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return v.check(req, reqBody, status, header, body, false)
}

func (v *Validator) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte, validateRequest bool) error {
	ctx := context.Background()
	u := *req.URL
	u.Scheme, u.Host = v.server.Scheme, v.server.Host
	vr := req.Clone(ctx)
	vr.URL, vr.Host = &u, u.Host
	vr.Body = io.NopCloser(bytes.NewReader(reqBody))
	what := fmt.Sprintf("%s %s → %d", req.Method, req.URL.RequestURI(), status)

	route, params, err := v.router.FindRoute(vr)
	if err != nil {
		// A path the document does not know may only be answered as an unknown route.
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			v.count(req.Method+" (no route)", status)
			return nil
		}
		return fmt.Errorf("%s: the document has no operation for it (%v); body: %s", what, err, clip(body))
	}
	v.count(req.Method+" "+route.Path, status)

	reqOpts := &openapi3filter.Options{MultiError: true, AuthenticationFunc: authenticate}
	reqOpts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: reqOpts}
	var errs []error
	if validateRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("request: %w; request body: %s", err, clip(reqBody)))
		}
	}
	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	respOpts.WithCustomSchemaErrorFunc(schemaError)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: respOpts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, fmt.Errorf("response: %w; body: %s", err, clip(body)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s (operation %s): %w", what, route.Operation.OperationID, errors.Join(errs...))
	}
	return nil
}

// schemaError is one line: where, what, and the value (test data, safe to print) — the
// default message dumps the whole schema.
func schemaError(err *openapi3.SchemaError) string {
	val, _ := json.Marshal(err.Value)
	return fmt.Sprintf("at /%s: %s (value %s)", strings.Join(err.JSONPointer(), "/"), err.Reason, clip(val))
}

// Documents reports whether the document has an operation for method on a concrete path,
// under any template it fits ({param} matches one non-empty segment): DELETE
// /api/v1/notifications/read-all is DELETE /api/v1/notifications/{id}.
func (v *Validator) Documents(method, path string) bool {
	segs := strings.Split(path, "/")
	for tmpl, item := range v.doc.Paths.Map() {
		if item.GetOperation(method) == nil {
			continue
		}
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		fits := true
		for i := range ts {
			param := strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")
			if param && segs[i] == "" || !param && ts[i] != segs[i] {
				fits = false
				break
			}
		}
		if fits {
			return true
		}
	}
	return false
}

// authenticate accepts a bearer scheme only when the request carries a bearer token, so a
// secured operation answered 2xx without one shows as a mismatch (it should be public).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme == nil || in.SecurityScheme.Type != "http" || !strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
		return nil
	}
	if h := in.RequestValidationInput.Request.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return nil
	}
	return errors.New("no bearer token")
}

func (v *Validator) count(op string, status int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[fmt.Sprintf("%s %d", op, status)]++
	v.n++
}

// Coverage is how many exchanges were checked, and each operation and status seen.
func (v *Validator) Coverage() (int, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.seen))
	for k, n := range v.seen {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(out)
	return v.n, out
}

// Unexercised lists the operations ("METHOD /template") no checked exchange reached.
func (v *Validator) Unexercised() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	reached := map[string]bool{}
	for k := range v.seen {
		op := k[:strings.LastIndexByte(k, ' ')]
		reached[op] = true
	}
	var out []string
	for _, op := range Operations(v.doc) {
		if !reached[op.Method+" "+op.Path] {
			out = append(out, op.Method+" "+op.Path)
		}
	}
	return out
}

// Operation is one method of one path of the document.
type Operation struct {
	Method, Path string
	*openapi3.Operation
}

// Operations lists the document's operations sorted by path then method.
func Operations(doc *openapi3.T) []Operation {
	var out []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, Operation{Method: method, Path: path, Operation: op})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Summary renders the document's surface, one line per operation (security, parameters,
// request body, statuses with their schemas and headers), then one line per component
// schema with its fields, then the SHA-256 of the canonical JSON (keys sorted, no
// whitespace) so that any other change — a description, an example — changes the golden
// file too.
func Summary(raw []byte) (string, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "openapi %s, %s %s\n\n", doc.OpenAPI, doc.Info.Title, doc.Info.Version)
	for _, op := range Operations(doc) {
		fmt.Fprintf(&b, "%s %s  %s  security=%s\n", op.Method, op.Path, op.OperationID, security(doc, op.Operation))
		var params []string
		for _, p := range op.Parameters {
			if p.Value == nil {
				continue
			}
			req := ""
			if p.Value.Required {
				req = "*"
			}
			params = append(params, fmt.Sprintf("%s:%s%s", p.Value.In, p.Value.Name, req))
		}
		sort.Strings(params)
		if len(params) > 0 {
			fmt.Fprintf(&b, "    params %s\n", strings.Join(params, " "))
		}
		if rb := op.RequestBody; rb != nil && rb.Value != nil {
			fmt.Fprintf(&b, "    body %s\n", content(rb.Ref, rb.Value.Content, rb.Value.Required))
		}
		if op.Responses != nil {
			codes := make([]string, 0, op.Responses.Len())
			for code := range op.Responses.Map() {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			for _, code := range codes {
				r := op.Responses.Value(code)
				line := "    " + code
				if r.Ref != "" {
					line += " " + shortRef(r.Ref)
				}
				if r.Value != nil {
					if len(r.Value.Content) > 0 {
						line += " " + content("", r.Value.Content, false)
					}
					var hs []string
					for h := range r.Value.Headers {
						hs = append(hs, h)
					}
					sort.Strings(hs)
					if len(hs) > 0 {
						line += " headers=" + strings.Join(hs, ",")
					}
				}
				b.WriteString(line + "\n")
			}
		}
	}
	b.WriteString("\n")
	names := make([]string, 0, len(doc.Components.Schemas))
	for name := range doc.Components.Schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := doc.Components.Schemas[name].Value
		var fields []string
		for f := range s.Properties {
			if contains(s.Required, f) {
				f += "*"
			}
			fields = append(fields, f)
		}
		sort.Strings(fields)
		fmt.Fprintf(&b, "schema %s %s {%s}\n", name, strings.Join(s.Type.Slice(), "|"), strings.Join(fields, " "))
	}
	var canon any
	if err := json.Unmarshal(raw, &canon); err != nil {
		return "", err
	}
	flat, err := json.Marshal(canon) // encoding/json sorts map keys
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(flat)
	fmt.Fprintf(&b, "\nsha256 %s\n", hex.EncodeToString(sum[:]))
	return b.String(), nil
}

func security(doc *openapi3.T, op *openapi3.Operation) string {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	if len(reqs) == 0 {
		return "none"
	}
	var names []string
	for _, r := range reqs {
		if len(r) == 0 {
			names = append(names, "optional")
		}
		for n := range r {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

func content(ref string, c openapi3.Content, required bool) string {
	var parts []string
	for mt, m := range c {
		s := mt
		if m.Schema != nil {
			if m.Schema.Ref != "" {
				s += ":" + shortRef(m.Schema.Ref)
			} else if m.Schema.Value != nil {
				s += ":" + describe(m.Schema.Value)
			}
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	out := strings.Join(parts, ",")
	if ref != "" {
		out = shortRef(ref) + " " + out
	}
	if required {
		out += " (required)"
	}
	return out
}

// describe names an inline schema by its shape: the data envelope's item ref, or its type
// and fields.
func describe(s *openapi3.Schema) string {
	var fields []string
	for f, p := range s.Properties {
		if p.Ref != "" {
			f += "=" + shortRef(p.Ref)
		} else if p.Value != nil && p.Value.Items != nil && p.Value.Items.Ref != "" {
			f += "=[]" + shortRef(p.Value.Items.Ref)
		}
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var alts []string
	for _, a := range append(append(s.AllOf, s.OneOf...), s.AnyOf...) {
		if a.Ref != "" {
			alts = append(alts, shortRef(a.Ref))
		}
	}
	out := strings.Join(s.Type.Slice(), "|")
	if len(fields) > 0 {
		out += "{" + strings.Join(fields, " ") + "}"
	}
	if len(alts) > 0 {
		out += "(" + strings.Join(alts, "|") + ")"
	}
	return out
}

func shortRef(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clip(b []byte) string {
	if len(b) > bodyLimit {
		return string(b[:bodyLimit]) + "…"
	}
	return string(b)
}
