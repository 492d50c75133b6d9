package main

import (
	"net"
	"strings"
	"testing"
)

// TestListenURL: the startup line's URL is localhost for an address on
// every interface, the address itself otherwise, with the bound port.
func TestListenURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ addr, bound, want string }{
		{":8080", "[::]:8080", "http://localhost:8080"},
		{"0.0.0.0:8080", "0.0.0.0:8080", "http://localhost:8080"},
		{"[::]:8081", "[::]:8081", "http://localhost:8081"},
		{":0", "[::]:43210", "http://localhost:43210"},
		{"127.0.0.1:9000", "127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"[::1]:9000", "[::1]:9000", "http://[::1]:9000"},
		{"chat.local:8080", "10.0.0.5:8080", "http://chat.local:8080"},
	} {
		bound, err := net.ResolveTCPAddr("tcp", c.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := listenURL(c.addr, bound); got != c.want {
			t.Errorf("listenURL(%q, %s) = %q, want %q", c.addr, c.bound, got, c.want)
		}
	}
}

// TestRedisMode: the startup line names Redis without a password or the
// URL's options; a cluster by its seeds.
func TestRedisMode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url     string
		cluster bool
		want    string
	}{
		{"redis://127.0.0.1:6379/0", false, "redis://127.0.0.1:6379/0"},
		{"redis://:s3cret@redis:6379/2", false, "redis://redis:6379/2"},
		{"rediss://alice:s3cret@redis:6380/0?dial_timeout=3s", false, "rediss://alice@redis:6380/0"},
		{"redis://alice:s3cret@10.0.0.1:7000?addr=10.0.0.2:7001&addr=bob:s3cret@10.0.0.3:7002", true,
			"Redis Cluster 10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002"},
	} {
		got := redisMode(c.url, c.cluster)
		if got != c.want || strings.Contains(got, "s3cret") {
			t.Errorf("redisMode(%q) = %q, want %q", c.url, got, c.want)
		}
	}
}
