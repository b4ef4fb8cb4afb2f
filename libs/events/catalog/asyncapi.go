package catalog

import (
	"encoding/json"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// reflector turns a contract type into a JSON Schema: inline, every field with a json tag
// required (the producers always write them), no extra properties.
func reflector() *jsonschema.Reflector {
	return &jsonschema.Reflector{
		DoNotReference:             true,
		ExpandedStruct:             true,
		RequiredFromJSONSchemaTags: false,
		AllowAdditionalProperties:  false,
		Anonymous:                  true,
	}
}

// Schema is the JSON Schema of a contract type. Pointer, slice and map fields may be
// null on the wire (encoding/json writes nil as null), so their schemas say so.
func Schema(v any) *jsonschema.Schema {
	s := reflector().Reflect(v)
	s.Version = ""
	s.ID = ""
	allowNulls(reflect.TypeOf(v), s)
	return s
}

func allowNulls(t reflect.Type, s *jsonschema.Schema) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice && s.Items != nil {
			s = s.Items
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || s == nil || s.Properties == nil {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		ps, ok := s.Properties.Get(name)
		if !ok {
			continue
		}
		allowNulls(f.Type, ps)
		switch f.Type.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			if ps.Type != "" {
				inner := *ps
				*ps = jsonschema.Schema{AnyOf: []*jsonschema.Schema{&inner, {Type: "null"}}}
			}
		}
	}
}

// envelope wraps a data schema in the CloudEvents 1.0 structured envelope.
func envelope(typ string, data *jsonschema.Schema) map[string]any {
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"specversion", "id", "source", "type", "time", "datacontenttype", "data"},
		"properties": map[string]any{
			"specversion":     map[string]any{"const": "1.0"},
			"id":              map[string]any{"type": "string", "description": "UUID v7; also the Nats-Msg-Id header"},
			"source":          map[string]any{"type": "string"},
			"type":            map[string]any{"const": typ},
			"subject":         map[string]any{"type": "string", "description": "the user the fact is about"},
			"time":            map[string]any{"type": "string", "format": "date-time"},
			"datacontenttype": map[string]any{"const": "application/json"},
			"data":            data,
		},
	}
}

// EnvelopeSchema is the full schema of one event type's message (for validation).
func EnvelopeSchema(e Event) map[string]any { return envelope(e.Type, Schema(e.Payload)) }

func key(subject string) string { return strings.NewReplacer(".", "_").Replace(subject) }

// AsyncAPI renders the AsyncAPI 3.0 document.
func AsyncAPI() ([]byte, error) {
	channels := map[string]any{}
	operations := map[string]any{}
	messages := map[string]any{}
	for _, e := range Events {
		k := key(e.Type)
		msg := map[string]any{
			"name":        e.Type,
			"title":       e.Type,
			"summary":     e.Description,
			"contentType": "application/cloudevents+json",
			"headers": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"Nats-Msg-Id": map[string]any{"type": "string", "description": "the event id: JetStream drops a duplicate publish"},
					"traceparent": map[string]any{"type": "string", "description": "W3C trace context"},
				},
			},
			"payload": EnvelopeSchema(e),
		}
		messages[k] = msg
		channels[k] = map[string]any{
			"address":     e.Type,
			"description": "JetStream stream " + e.Stream + ". " + e.Description,
			"messages":    map[string]any{k: map[string]any{"$ref": "#/components/messages/" + k}},
		}
		operations["publish_"+k] = map[string]any{
			"action":      "send",
			"summary":     "Published by " + e.Producer + " through its transactional outbox.",
			"channel":     map[string]any{"$ref": "#/channels/" + k},
			"x-producer":  e.Producer,
			"x-consumers": nonNil(e.Consumers),
		}
		for _, c := range e.Consumers {
			operations[c+"_receives_"+k] = map[string]any{
				"action":  "receive",
				"summary": c + " consumes it with a durable pull consumer and an inbox (exactly once in effect).",
				"channel": map[string]any{"$ref": "#/channels/" + k},
			}
		}
	}
	for _, ep := range Endpoints {
		k := key(ep.Subject)
		reqK, repK := k+"_request", k+"_reply"
		messages[reqK] = map[string]any{"name": reqK, "contentType": "application/json", "payload": Schema(ep.Request)}
		messages[repK] = map[string]any{"name": repK, "contentType": "application/json", "payload": Schema(ep.Reply),
			"description": "On failure the reply carries the Nats-Service-Error and Nats-Service-Error-Code headers with an API error code."}
		channels[k] = map[string]any{
			"address":     ep.Subject,
			"description": "NATS request-reply (nats.go/micro), answered by " + ep.Service + ". " + ep.Description,
			"messages": map[string]any{
				reqK: map[string]any{"$ref": "#/components/messages/" + reqK},
				repK: map[string]any{"$ref": "#/components/messages/" + repK},
			},
		}
		operations["request_"+k] = map[string]any{
			"action":   "send",
			"summary":  "Called by " + strings.Join(ep.Callers, ", ") + "; answered by " + ep.Service + ".",
			"channel":  map[string]any{"$ref": "#/channels/" + k},
			"messages": []any{map[string]any{"$ref": "#/channels/" + k + "/messages/" + reqK}},
			"reply": map[string]any{
				"channel":  map[string]any{"$ref": "#/channels/" + k},
				"messages": []any{map[string]any{"$ref": "#/channels/" + k + "/messages/" + repK}},
			},
		}
	}
	doc := map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":       "Perpetua Flow events",
			"version":     "1.0.0",
			"description": "Facts published on JetStream (one stream per producing service, CloudEvents 1.0 structured JSON, Nats-Msg-Id = event id) and the request-reply endpoints between services. Payload types are the Go contracts in libs/events/<producer> and libs/rpc/<service>rpc; a v2 type is added beside v1, never changed in place.",
		},
		"defaultContentType": "application/json",
		"servers": map[string]any{
			"nats": map[string]any{"host": "nats.nats.svc.cluster.local:4222", "protocol": "nats", "description": "NATS with JetStream"},
		},
		"channels":   channels,
		"operations": operations,
		"components": map[string]any{"messages": messages},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
