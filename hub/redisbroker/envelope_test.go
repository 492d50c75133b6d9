package redisbroker

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []hub.Event{
		{},
		{Kind: hub.EventKick, Exclude: "bob"},
		{Kind: hub.EventFrame, Exclude: "", Frame: []byte(`{"type":"typing"}`)},
		{Kind: hub.EventFrame, Exclude: "a:b", Frame: []byte("1:2:3")},
	} {
		got, err := decodeEvent(encodeEvent(e))
		if err != nil || !equalEvent(got, e) {
			t.Errorf("round trip of %+v = %+v, %v", e, got, err)
		}
	}
}

func TestDecodePublication(t *testing.T) {
	p, err := decodePublication(`pabc:42:{"seq":42}`)
	if err != nil || p.Epoch != "abc" || p.Seq != 42 || string(p.Frame) != `{"seq":42}` {
		t.Errorf("decodePublication = %+v, %v", p, err)
	}
	for _, bad := range []string{"", "p", "pabc", "pabc:x:", "e0:0:", "x"} {
		if _, err := decodePublication(bad); err == nil {
			t.Errorf("decodePublication(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "e", "e1", "e1:", "e1:5:ab", "ex:0:", "e1:-1:", "e300:0:"} {
		if _, err := decodeEvent(bad); err == nil {
			t.Errorf("decodeEvent(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(hub.Event{Kind: hub.EventFrame, Exclude: "bob", Frame: []byte(`{}`)}))
	f.Add("e1:3:bo")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := decodeEvent(s)
		if err != nil {
			return
		}
		if again, err := decodeEvent(encodeEvent(e)); err != nil || !equalEvent(again, e) {
			t.Errorf("%q decodes to %+v, which does not round-trip", s, e)
		}
	})
}

func equalEvent(a, b hub.Event) bool {
	return a.Kind == b.Kind && a.Exclude == b.Exclude && bytes.Equal(a.Frame, b.Frame)
}

// FuzzDecodePublication: any input either fails or decodes to a publication
// whose envelope, rebuilt as publish.lua builds it, decodes the same.
func FuzzDecodePublication(f *testing.F) {
	f.Add(`pe1:42:{"type":"message","room":"r","seq":42}`)
	f.Add("p:1:")
	f.Add("pe1:x:{}")
	f.Add("e0:0:{}")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decodePublication(s)
		if err != nil {
			return
		}
		if strings.Contains(p.Epoch, ":") {
			t.Fatalf("%q decodes to an epoch with a colon: %q", s, p.Epoch)
		}
		env := "p" + p.Epoch + ":" + strconv.FormatUint(p.Seq, 10) + ":" + string(p.Frame)
		again, err := decodePublication(env)
		if err != nil || again.Seq != p.Seq || again.Epoch != p.Epoch || !bytes.Equal(again.Frame, p.Frame) {
			t.Fatalf("%q decodes to %+v, which does not round-trip: %+v, %v", s, p, again, err)
		}
	})
}
