package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html app.js view.js conversation.js status.js store.js style.css switchboard.js lib/*.js
var files embed.FS

// asset is one embedded file, with the ETag of its content.
type asset struct {
	body        []byte
	etag        string
	contentType string
}

// Handler serves the embedded files. Every response carries a content-hash
// ETag and "Cache-Control: no-cache": browsers keep the files but revalidate
// them on each load (a cheap 304), so after a deploy the page and its
// modules always come from the same release. Unknown paths are 404.
func Handler() http.Handler {
	assets := loadAssets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Content-Type", a.contentType)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}

func loadAssets() map[string]asset {
	assets := make(map[string]asset)
	fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(name))
		if path.Ext(name) == ".js" {
			ct = "text/javascript; charset=utf-8"
		}
		assets[name] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, contentType: ct}
		return nil
	})
	return assets
}
