package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck implements `switchboard healthcheck`: it GETs the node's
// /readyz and returns nil on 200, an error otherwise, so that a container
// healthcheck needs no shell or curl in the image. The default URL is this
// host's /readyz on the port of $SWITCHBOARD_ADDR (8080 without it).
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("switchboard healthcheck", flag.ContinueOnError)
	url := fs.String("url", healthcheckURL(getenv(envName("addr"))), "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard healthcheck [--url http://127.0.0.1:8080/readyz] [--timeout 3s]\n\nExits 0 when the URL answers 200, 1 otherwise.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	return checkHealth(ctx, *url, *timeout)
}

// checkHealth GETs url within timeout and returns an error unless it
// answers 200.
func checkHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", url, resp.Status)
	}
	return nil
}

// healthcheckURL is the /readyz URL of a server listening on addr: its
// host, or 127.0.0.1 when addr names every interface, and its port (8080
// when addr is empty or has none).
func healthcheckURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}
