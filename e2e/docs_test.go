package e2e_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/e2e/contract"
	"github.com/perpetua-flow/backend/e2e/stack"
)

// chromiumEnv turns on the rendering check: CI machines may have no browser.
const chromiumEnv = "E2E_CHROMIUM"

// minInk is the share of non-white pixels a rendered /docs has at least: Redoc's
// "Loading ..." page has well under 1%, the rendered reference about 30% (its dark
// code panel).
const minInk = 0.05

// The gateway serves /docs (Redoc, its bundle from the gateway itself), the OpenAPI
// document it is rendered from, and the AsyncAPI document of the events. With
// E2E_CHROMIUM=1 a headless Chromium also renders /docs: the screenshot must not be blank
// and the rendered DOM must hold the operations Redoc drew from the document.
func testDocs(t *testing.T, s *stack.Stack) {
	c := s.NewClient().For(t)
	page := c.Must(http.StatusOK, "GET", "/docs", nil, nil)
	if !strings.Contains(string(page.Body), "<redoc") || !strings.Contains(string(page.Body), "/docs/assets/redoc.standalone.js") {
		t.Fatalf("/docs is not the Redoc page: %s", page.Body)
	}
	resp, err := http.Get(s.GatewayURL + "/docs/assets/redoc.standalone.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the Redoc bundle: %d", resp.StatusCode)
	}

	spec := c.Must(http.StatusOK, "GET", "/openapi.json", nil, nil)
	path, err := contract.RepoPath(contract.DocumentPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spec.Body, want) {
		t.Fatalf("/openapi.json differs from %s", contract.DocumentPath)
	}
	var async struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
	}
	c.Must(http.StatusOK, "GET", "/asyncapi.json", nil, nil).JSON(t, &async)
	if !strings.HasPrefix(async.AsyncAPI, "3.") || len(async.Channels) == 0 {
		t.Fatalf("/asyncapi.json: asyncapi %q with %d channels", async.AsyncAPI, len(async.Channels))
	}

	if os.Getenv(chromiumEnv) == "" {
		t.Skipf("rendering /docs in headless Chromium is off; run it with %s=1", chromiumEnv)
	}
	renderDocs(t, s.GatewayURL+"/docs")
}

// renderDocs screenshots url in headless Chromium and dumps its DOM after Redoc ran.
func renderDocs(t *testing.T, url string) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatalf("%s=1 but no Chromium on PATH (Debian: apt-get install -y chromium)", chromiumEnv)
	}
	dir := t.TempDir()
	shot := filepath.Join(dir, "docs.png")
	// One run both screenshots the page and prints its DOM, once Redoc has fetched the
	// document and rendered (it does so after the load event: the virtual time budget
	// lets it finish). About 10 s on an idle machine.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1280,900",
		"--virtual-time-budget=15000", "--screenshot="+shot, "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.Bytes())
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if share := inkShare(img); share < minInk {
		t.Fatalf("the screenshot of /docs is blank or still loading (%.2f%% of pixels are not white)", share*100)
	}

	dom := stdout.String()
	// Redoc draws one section per operation, anchored by its operationId, and the
	// document's title: the static page holds neither.
	for _, want := range []string{"operation/createTask", "operation/chat", "Perpetua Flow API"} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the rendered /docs lacks %q (%d bytes of DOM)", want, len(dom))
		}
	}
	if os.Getenv("E2E_DOCS_SCREENSHOT") != "" {
		raw, _ := os.ReadFile(shot)
		_ = os.WriteFile(os.Getenv("E2E_DOCS_SCREENSHOT"), raw, 0o644)
	}
}

// inkShare is the share of pixels that are not (nearly) white.
func inkShare(img image.Image) float64 {
	b := img.Bounds()
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xF000 || g < 0xF000 || bl < 0xF000 {
				ink++
			}
		}
	}
	return float64(ink) / float64(b.Dx()*b.Dy())
}
