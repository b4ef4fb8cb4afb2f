package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

func compileAll() {
	compiled = map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	for _, e := range Events {
		raw, err := json.Marshal(EnvelopeSchema(e))
		if err != nil {
			compileErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			compileErr = err
			return
		}
		url := "mem://" + e.Type + ".json"
		if err := c.AddResource(url, doc); err != nil {
			compileErr = err
			return
		}
		s, err := c.Compile(url)
		if err != nil {
			compileErr = fmt.Errorf("catalog: schema of %s: %w", e.Type, err)
			return
		}
		compiled[e.Type] = s
	}
}

// Validate checks one message body (a CloudEvents envelope) against the schema of its
// type in the catalogue.
func Validate(body []byte) error {
	compileOnce.Do(compileAll)
	if compileErr != nil {
		return compileErr
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("catalog: not JSON: %w", err)
	}
	s, ok := compiled[head.Type]
	if !ok {
		return fmt.Errorf("catalog: event type %q is not catalogued", head.Type)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("catalog: %s: %w", head.Type, err)
	}
	return nil
}
