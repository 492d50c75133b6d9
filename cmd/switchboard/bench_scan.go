package main

import (
	"bytes"
	"strconv"
)

// A bench message's data is {"bn":N,"bt":T,"pad":"xxx…"}: N is the message's
// number (0 … messages-1; its room is N mod rooms), T the publisher's clock
// in Unix nanoseconds when it sent the message, pad fills the data up to
// --size bytes. Both servers pass data on byte for byte, so subscribers find
// it with a substring search instead of decoding every frame.

// minPayloadSize is the smallest --size: the data with a 6-digit number and
// an empty pad. Longer numbers make the data a little larger than --size.
const minPayloadSize = len(`{"bn":123456,"bt":1700000000000000000,"pad":""}`)

var (
	keyN = []byte(`"bn":`)
	keyT = []byte(`,"bt":`)
)

// appendPayload appends message n's data, sent at t, padded to size bytes.
func appendPayload(dst []byte, n uint64, t int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"bn":`...)
	dst = strconv.AppendUint(dst, n, 10)
	dst = append(dst, `,"bt":`...)
	dst = strconv.AppendInt(dst, t, 10)
	dst = append(dst, `,"pad":"`...)
	for pad := size - (len(dst) - start) - len(`"}`); pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// scanDelivery finds a bench message's number and send time in one frame
// (one line of a WebSocket message). ok is false for any other frame.
func scanDelivery(line []byte) (n uint64, t int64, ok bool) {
	i := bytes.Index(line, keyN)
	if i < 0 {
		return 0, 0, false
	}
	rest := line[i+len(keyN):]
	n, rest, ok = scanUint(rest)
	if !ok || !bytes.HasPrefix(rest, keyT) {
		return 0, 0, false
	}
	ut, _, ok := scanUint(rest[len(keyT):])
	if !ok || ut > 1<<63-1 {
		return 0, 0, false
	}
	return n, int64(ut), true
}

// scanUint parses the decimal digits at the start of b (at most 19).
func scanUint(b []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	return v, b[i:], i > 0
}

// nextLine splits off the first frame of a WebSocket message: the server
// may batch several, one per line.
func nextLine(msg []byte) (line, rest []byte) {
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		return msg[:i], msg[i+1:]
	}
	return msg, nil
}

// seenWords is the size of a subscriber's duplicate-detection window in
// 64-bit words: the last 4 096 messages of its room (512 bytes per
// subscriber). Publishes of one room reach the server concurrently, so
// deliveries may be out of publish order, but not by thousands.
const seenWords = 64

// seen records which of one room's messages a subscriber has received, in
// a sliding window over the room's message index (N div rooms). It is used
// by the subscriber's read loop only.
type seen struct {
	base uint64 // window start, in words
	bits [seenWords]uint64
}

// mark records index i. fresh: first delivery; late: i fell behind the
// window, so whether it is a duplicate cannot be told.
func (s *seen) mark(i uint64) (fresh, late bool) {
	w := i / 64
	if w < s.base {
		return false, true
	}
	if end := s.base + seenWords; w >= end {
		shift := w - end + 1
		if shift >= seenWords {
			s.bits = [seenWords]uint64{}
		} else {
			for k := s.base; k < s.base+shift; k++ {
				s.bits[k%seenWords] = 0
			}
		}
		s.base += shift
	}
	word, bit := &s.bits[w%seenWords], uint64(1)<<(i%64)
	if *word&bit != 0 {
		return false, false
	}
	*word |= bit
	return true, false
}
