package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// MaxBodyBytes is the largest request body any endpoint accepts (API.md §1).
const MaxBodyBytes = 1 << 20

// Decode reads a JSON body into dst strictly: application/json only, at most 1 MiB,
// no unknown fields, exactly one value. Failures are client errors with the codes of
// API.md §1, never 500s.
func Decode(r *http.Request, dst any) error {
	if err := RequireJSON(r); err != nil {
		return err
	}
	body, err := ReadBody(r)
	if err != nil {
		return err
	}
	return DecodeBytes(body, dst)
}

// RequireJSON checks the Content-Type of a request with a body.
func RequireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return apperr.New(apperr.UnsupportedMediaType, "Content-Type must be application/json")
	}
	return nil
}

// ReadBody reads the whole body, refusing more than MaxBodyBytes.
func ReadBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apperr.New(apperr.PayloadTooLarge, "request body exceeds 1 MiB")
		}
		return nil, apperr.Wrap(err, apperr.Validation, "could not read the request body")
	}
	if len(b) > MaxBodyBytes {
		return nil, apperr.New(apperr.PayloadTooLarge, "request body exceeds 1 MiB")
	}
	return b, nil
}

// DecodeBytes decodes body into dst with the rules of Decode.
func DecodeBytes(body []byte, dst any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return apperr.Invalid(apperr.Field("body", "a JSON object is required"))
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return apperr.Invalid(apperr.Field("body", "must contain a single JSON value"))
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return apperr.Invalid(apperr.Field("body", fmt.Sprintf("malformed JSON at offset %d", syn.Offset)))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return apperr.Invalid(apperr.Field(field, "must be of type "+jsonTypeName(typ.Type.Kind().String())))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return apperr.Invalid(apperr.Field("body", "malformed JSON"))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Invalid(apperr.Field(name, "unknown field"))
	default:
		var fe fieldError
		if errors.As(err, &fe) {
			return apperr.Invalid(apperr.Field(fe.Field(), fe.Error()))
		}
		return apperr.Invalid(apperr.Field("body", "malformed JSON"))
	}
}

// fieldError lets custom UnmarshalJSON methods name their field.
type fieldError interface {
	error
	Field() string
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	default:
		return "number"
	}
}
