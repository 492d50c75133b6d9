package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: the healthcheck command succeeds on 200 only, and says
// in one line why it failed.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/readyz"
	}
	refused := "http://" + freeAddr(t) + "/readyz"
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"ready", status(200), true},
		{"draining", status(503), false},
		{"not found", status(404), false},
		{"refused", refused, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(t.Context(), []string{"healthcheck", "--url", tc.url, "--timeout", "2s"}, func(string) string { return "" }, &stderr, &stderr)
			if tc.ok != (err == nil) {
				t.Fatalf("healthcheck %s = %v, want ok %v", tc.url, err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "healthcheck: ")) {
				t.Errorf("error %q: want one line starting with \"healthcheck: \"", err)
			}
			if errors.Is(err, errUsage) {
				t.Errorf("error %v is a usage error; want exit code 1", err)
			}
		})
	}
}

// TestHealthcheckURL: the default URL follows $SWITCHBOARD_ADDR.
func TestHealthcheckURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		":9000":          "http://127.0.0.1:9000/readyz",
		"0.0.0.0:9001":   "http://127.0.0.1:9001/readyz",
		"[::]:9002":      "http://127.0.0.1:9002/readyz",
		"127.0.0.1:8081": "http://127.0.0.1:8081/readyz",
		"[::1]:8082":     "http://[::1]:8082/readyz",
		"garbage":        "http://127.0.0.1:8080/readyz",
	} {
		if got := healthcheckURL(addr); got != want {
			t.Errorf("healthcheckURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestHealthcheckAddr: without --url, the command checks the /readyz of
// the port in $SWITCHBOARD_ADDR.
func TestHealthcheckAddr(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	getenv := func(k string) string {
		if k == "SWITCHBOARD_ADDR" {
			return ":" + srv.URL[strings.LastIndex(srv.URL, ":")+1:]
		}
		return ""
	}
	if err := run(t.Context(), []string{"healthcheck"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck with SWITCHBOARD_ADDR=%s: %v", getenv("SWITCHBOARD_ADDR"), err)
	}
}

// TestHealthcheckUsage: a bad flag is a usage error.
func TestHealthcheckUsage(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	for _, args := range [][]string{{"--bogus"}, {"--timeout", "0s"}} {
		err := run(t.Context(), append([]string{"healthcheck"}, args...), func(string) string { return "" }, &stderr, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("healthcheck %v = %v, want a usage error", args, err)
		}
	}
}
