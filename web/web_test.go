package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		path, contentType, cacheControl, contains string
	}{
		{"/", "text/html; charset=utf-8", "no-cache", `<script type="module" src="app.js">`},
		{"/app.js", "text/javascript; charset=utf-8", "no-cache", "from './switchboard.js'"},
		{"/view.js", "text/javascript; charset=utf-8", "no-cache", "textContent"},
		{"/switchboard.js", "text/javascript; charset=utf-8", "no-cache", "export function connect"},
		{"/lib/stream.js", "text/javascript; charset=utf-8", "no-cache", "export class RoomStream"},
		{"/lib/connection.js", "text/javascript; charset=utf-8", "no-cache", "export class Connection"},
		{"/style.css", "text/css; charset=utf-8", "no-cache", ":root"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			res, body := get(t, srv.URL+tt.path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != tt.cacheControl {
				t.Errorf("Cache-Control = %q, want %q", got, tt.cacheControl)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
		})
	}
}

// TestHandlerEmbedsEveryImport guards the go:embed line: every module the
// page loads, directly or through an import, must be served.
func TestHandlerEmbedsEveryImport(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	seen := map[string]bool{}
	queue := []string{"/app.js"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		res, body := get(t, srv.URL+p)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", p, res.StatusCode)
			continue
		}
		for _, imp := range imports(body) {
			queue = append(queue, resolve(p, imp))
		}
	}
	// And every embedded module is used.
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".js") && !seen["/"+p] {
			t.Errorf("%s is embedded but nothing imports it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHandlerDoesNotServeTests(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	for _, p := range []string{"/test/unit.test.mjs", "/web.go", "/web_test.go", "/doc.go"} {
		if res, _ := get(t, srv.URL+p); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, res.StatusCode)
		}
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// imports returns the relative module specifiers of a module's static
// import and export … from statements.
func imports(src string) []string {
	var out []string
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "import ") && !strings.HasPrefix(line, "export ") && !strings.HasPrefix(line, "} from ") {
			continue
		}
		i := strings.Index(line, " from '")
		if i < 0 {
			continue
		}
		spec := line[i+len(" from '"):]
		if j := strings.IndexByte(spec, '\''); j >= 0 && strings.HasPrefix(spec, ".") {
			out = append(out, spec[:j])
		}
	}
	return out
}

// resolve resolves a relative specifier against the path of the importing module.
func resolve(from, spec string) string {
	dir := from[:strings.LastIndexByte(from, '/')+1]
	parts := strings.Split(dir+spec, "/")
	var clean []string
	for _, p := range parts {
		switch p {
		case ".", "":
		case "..":
			if len(clean) > 0 {
				clean = clean[:len(clean)-1]
			}
		default:
			clean = append(clean, p)
		}
	}
	return "/" + strings.Join(clean, "/")
}

func TestHandlerRevalidatesWithETag(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	res, err := http.Get(srv.URL + "/switchboard.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req, _ := http.NewRequest("GET", srv.URL+"/switchboard.js", nil)
	req.Header.Set("If-None-Match", etag)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with the same ETag = %d, want 304", res.StatusCode)
	}
	other, _ := http.Get(srv.URL + "/app.js")
	other.Body.Close()
	if other.Header.Get("ETag") == etag {
		t.Fatal("two different files share an ETag")
	}
	missing, _ := http.Get(srv.URL + "/nope.js")
	missing.Body.Close()
	if missing.StatusCode != http.StatusNotFound {
		t.Fatalf("/nope.js = %d, want 404", missing.StatusCode)
	}
}
