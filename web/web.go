package web

import (
	"embed"
	"net/http"
)

//go:embed index.html
var files embed.FS

// Handler serves the embedded files. HTML is revalidated on every load so a
// new release shows at once; other assets may be cached for an hour.
func Handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" || len(r.URL.Path) > 5 && r.URL.Path[len(r.URL.Path)-5:] == ".html" {
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		fs.ServeHTTP(w, r)
	})
}
