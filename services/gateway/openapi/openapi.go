// Package openapi serves the API description (openapi.json, OpenAPI 3.1), the events'
// description (asyncapi.json, AsyncAPI 3.0) and a reference page rendered by Redoc.
// Redoc's standalone bundle (MIT, redoc 2.5.4 from the npm registry, see
// assets/REDOC-LICENSE) is embedded and served by the gateway itself, so the page works
// offline and its CSP only has to allow our own origin.
package openapi

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed openapi.json
var spec []byte

// asyncSpec is catalog.AsyncAPI() (libs/events/catalog) written out, so the gateway does
// not link the JSON Schema reflector and validator the catalogue needs; a test in
// e2e/contract fails when the copy differs from the catalogue and rewrites it with -update.
//
//go:embed asyncapi.json
var asyncSpec []byte

//go:embed assets
var assets embed.FS

// Spec is the embedded document.
func Spec() []byte { return spec }

// DocsCSP relaxes API.md §1's policy for the docs page only: Redoc runs our own script,
// injects its styles inline, fetches /openapi.json and starts its search worker from a blob.
const DocsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AssetsPrefix is where the Redoc bundle is served.
const AssetsPrefix = "/docs/assets/"

const docsPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Perpetua Flow API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="` + AssetsPrefix + `redoc.standalone.js"></script>
</body>
</html>
`

// ServeSpec answers GET /openapi.json.
func ServeSpec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(spec)
}

// ServeAsyncAPI answers GET /asyncapi.json: the AsyncAPI 3.0 document of the events.
func ServeAsyncAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(asyncSpec)
}

// ServeDocs answers GET /docs with the Redoc page.
func ServeDocs(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", DocsCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write([]byte(docsPage))
}

// Assets serves the embedded Redoc bundle under AssetsPrefix.
func Assets() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	files := http.StripPrefix(AssetsPrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}
