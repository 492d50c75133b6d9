package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// redisLogger routes go-redis's internal log lines (dial failures while
// Redis is down, dropped pub/sub messages) into the server's log: drops at
// warn level, the rest at debug, so an outage does not flood stderr.
type redisLogger struct{ log zerolog.Logger }

// Printf implements go-redis's internal Logging interface.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	ev := l.log.Debug()
	if strings.Contains(msg, "dropped") {
		ev = l.log.Warn()
	}
	ev.Str("component", "go-redis").Msg(msg)
}
