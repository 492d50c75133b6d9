package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// pubStats count publish outcomes. A publish is ok when the server
// answered it (HTTP 2xx, or an ack); only ok publishes are expected to be
// delivered.
type pubStats struct {
	okPerRoom []atomic.Int64
	sent      atomic.Int64
	ok        atomic.Int64
	errs      atomic.Int64
	timeouts  atomic.Int64
	behind    atomic.Int64 // the most the publisher fell behind its schedule, ns
}

func newPubStats(rooms int) *pubStats {
	return &pubStats{okPerRoom: make([]atomic.Int64, rooms)}
}

// pace calls send(i) for i in 0 … n-1 at rate per second, from one
// goroutine, until send returns false or ctx ends. A send that blocks
// delays the ones after it; how far behind schedule publishing fell is
// recorded in ps.behind.
func pace(ctx context.Context, n int, rate float64, ps *pubStats, send func(i int) bool) {
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if -d > time.Duration(ps.behind.Load()) {
			ps.behind.Store(int64(-d))
		}
		if !send(i) {
			return
		}
	}
}

// publishAPI publishes cfg.Messages through the HTTP API with cfg.Workers
// concurrent keep-alive requests, and returns when every request is done.
func publishAPI(ctx context.Context, cfg benchConfig, t benchTarget, ps *pubStats, errs *benchErrors) {
	tr := &http.Transport{
		MaxIdleConnsPerHost: cfg.Workers,
		MaxConnsPerHost:     cfg.Workers,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	jobs := make(chan int, cfg.Workers)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			var data, body []byte
			for i := range jobs {
				data, body = publishOne(ctx, cfg, t, client, i, data, body, ps, errs)
			}
		})
	}
	pace(ctx, cfg.Messages, cfg.Rate, ps, func(i int) bool {
		select {
		case jobs <- i:
			return true
		case <-ctx.Done():
			return false
		}
	})
	close(jobs)
	wg.Wait()
}

// publishOne publishes message i; data and body are the worker's buffers.
func publishOne(ctx context.Context, cfg benchConfig, t benchTarget, client *http.Client, i int, data, body []byte, ps *pubStats, errs *benchErrors) ([]byte, []byte) {
	room := i % cfg.Rooms
	data = appendPayload(data[:0], uint64(i), time.Now().UnixNano(), cfg.Size)
	body = t.appendPublishBody(body[:0], benchRoom(room), data)
	ps.sent.Add(1)
	err := postOnce(ctx, cfg, t, client, i, body)
	switch {
	case errors.Is(err, errTimeout):
		ps.timeouts.Add(1)
		errs.note("publish timeout", err)
	case err != nil:
		ps.errs.Add(1)
		errs.note("publish", err)
	default:
		ps.ok.Add(1)
		ps.okPerRoom[room].Add(1)
	}
	return data, body
}

func postOnce(ctx context.Context, cfg benchConfig, t benchTarget, client *http.Client, i int, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, cfg.PubTimeout)
	defer cancel()
	room := benchRoom(i % cfg.Rooms)
	req, err := t.publishRequest(rctx, cfg.URLs[i%len(cfg.URLs)], room, body, cfg.APIKey)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("publish to %s after %v: %w", room, cfg.PubTimeout, errTimeout)
		}
		return fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("publish to %s after %v: %w", room, cfg.PubTimeout, errTimeout)
		}
		return fmt.Errorf("publish: read answer: %w", err)
	}
	return t.publishResult(resp.StatusCode, rb)
}

// publishWS publishes cfg.Messages from one WebSocket connection (user
// bench-pub on the first node) that joins every room first. A message is
// ok when its ack arrives; those without an answer within
// --publish-timeout after the last send are timeouts.
func publishWS(ctx context.Context, cfg benchConfig, t benchTarget, tokens *tokenAuth, ps *pubStats, errs *benchErrors) error {
	c, err := dialSub(ctx, t, cfg.URLs[0], "bench-pub", tokens)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	defer c.CloseNow()
	if err := joinAllRooms(ctx, c, t, cfg.Rooms); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.CloseNow() // ends the ack reader before wg.Wait
	wg.Go(func() { readAcks(c, ps, errs) })
	var frame []byte
	pace(ctx, cfg.Messages, cfg.Rate, ps, func(i int) bool {
		frame = append(frame[:0], `{"type":"send","room":"`...)
		frame = append(frame, benchRoom(i%cfg.Rooms)...)
		frame = append(frame, `","id":`...)
		frame = strconv.AppendInt(frame, int64(i), 10)
		frame = append(frame, `,"data":`...)
		frame = appendPayload(frame, uint64(i), time.Now().UnixNano(), cfg.Size)
		frame = append(frame, '}')
		ps.sent.Add(1)
		wctx, cancel := context.WithTimeout(ctx, cfg.PubTimeout)
		defer cancel()
		if err := c.Write(wctx, websocket.MessageText, frame); err != nil {
			ps.errs.Add(1)
			errs.note("publish", fmt.Errorf("publisher: send: %w", err))
			return false
		}
		return true
	})
	waitAcks(ctx, ps, cfg.PubTimeout)
	ps.timeouts.Store(max(ps.sent.Load()-ps.ok.Load()-ps.errs.Load(), 0))
	if n := ps.timeouts.Load(); n > 0 {
		errs.note("publish timeout", fmt.Errorf("%d sends got no ack within %v", n, cfg.PubTimeout))
	}
	return nil
}

// joinAllRooms joins rooms bench-0 … bench-(n-1), one after the other.
func joinAllRooms(ctx context.Context, c *websocket.Conn, t benchTarget, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for r := range n {
		if err := c.Write(ctx, websocket.MessageText, t.joinFrame(benchRoom(r))); err != nil {
			return fmt.Errorf("send join: %w", err)
		}
		for joined := false; !joined; {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return fmt.Errorf("read joined: %w", err)
			}
			for len(msg) > 0 && !joined {
				var line []byte
				line, msg = nextLine(msg)
				if joined, err = t.joinReply(line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readAcks counts the publisher's acks and errors until c is closed; it
// skips the publisher's own copies of the messages.
func readAcks(c *websocket.Conn, ps *pubStats, errs *benchErrors) {
	rooms := uint64(len(ps.okPerRoom))
	for {
		_, msg, err := c.Read(context.Background())
		if err != nil {
			return
		}
		for len(msg) > 0 {
			var line []byte
			line, msg = nextLine(msg)
			switch {
			case bytes.HasPrefix(line, []byte(`{"type":"ack",`)):
				if n, ok := scanID(line); ok {
					ps.ok.Add(1)
					ps.okPerRoom[n%rooms].Add(1)
				}
			case bytes.HasPrefix(line, []byte(`{"type":"error",`)):
				ps.errs.Add(1)
				errs.note("publish", fmt.Errorf("publisher: %s", snippet(line)))
			}
		}
	}
}

// scanID finds a numeric "id" in a frame.
func scanID(line []byte) (uint64, bool) {
	i := bytes.Index(line, []byte(`"id":`))
	if i < 0 {
		return 0, false
	}
	n, _, ok := scanUint(line[i+len(`"id":`):])
	return n, ok
}

// waitAcks waits until every send is answered, or for timeout.
func waitAcks(ctx context.Context, ps *pubStats, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for ps.ok.Load()+ps.errs.Load() < ps.sent.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}
