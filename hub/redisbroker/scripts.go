package redisbroker

import (
	"context"
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts, embedded. redis.Script runs them with EVALSHA and falls
// back to EVAL when Redis does not have them cached (after a restart).
var (
	//go:embed lua/lifecheck.lua
	lifecheckLua string

	//go:embed lua/publish.lua
	publishLua string

	//go:embed lua/moderate.lua
	moderateLua    string
	moderateScript = redis.NewScript(moderateLua)

	//go:embed lua/moderation.lua
	moderationLua    string
	moderationScript = redis.NewScript(moderationLua)

	//go:embed lua/history.lua
	historyLua string

	//go:embed lua/senduser.lua
	sendUserLua    string
	sendUserScript = redis.NewScript(sendUserLua)

	//go:embed lua/registry.lua
	registryLua    string
	registryScript = redis.NewScript(registryLua)

	//go:embed lua/markread.lua
	markReadLua    string
	markReadScript = redis.NewScript(markReadLua)

	//go:embed lua/unread.lua
	unreadLua string

	//go:embed lua/presence.lua
	presenceLua    string
	presenceScript = redis.NewScript(presenceLua)

	// adoptScript moves the set KEYS[1] into KEYS[2] (their union), which
	// then expires in ARGV[1] ms, and returns KEYS[2]'s size: the room set
	// of a node id's earlier life, to sweep (sweep.go). The keys share a
	// hash tag.
	adoptScript = redis.NewScript(`if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SUNIONSTORE', KEYS[2], KEYS[1], KEYS[2])
  redis.call('DEL', KEYS[1])
end
local n = redis.call('SCARD', KEYS[2])
if n > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return n`)

	// bootScript returns the boot key's value, setting it to ARGV[1] when
	// missing: a value that changes tells a node Redis lost its data.
	bootScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1])
  v = ARGV[1]
end
return v`)
)

// roomScripts are the scripts that read a room's meta and history, in the
// variant for the broker's Config.Durable.
type roomScripts struct {
	publish, history, unread *redis.Script
}

// Both variants of the room scripts, made once.
var (
	durableScripts = roomScriptsWith("local life_run = false\n")
	lossyScripts   = roomScriptsWith(lifecheckLua)
)

// roomScriptsWith returns the room scripts with prelude prepended: the
// life check (lifecheck.lua), or a life_run of false when Redis is trusted
// to keep what it acknowledged.
func roomScriptsWith(prelude string) roomScripts {
	return roomScripts{
		publish: redis.NewScript(prelude + publishLua),
		history: redis.NewScript(prelude + historyLua),
		unread:  redis.NewScript(prelude + unreadLua),
	}
}

// runPipelined runs s once per args in one pipeline (on a cluster, one per
// master). A script Redis does not have cached fails there with NOSCRIPT;
// the pipeline is then run again once, sending the script itself (EVAL):
// on a cluster, loading it into every master would fail while one is down.
func runPipelined(ctx context.Context, c redis.UniversalClient, s *redis.Script, keys [][]string, args [][]any) ([]*redis.Cmd, error) {
	run := func(eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(keys))
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range keys {
				cmds[i] = eval(ctx, p, keys[i], args[i]...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(s.EvalSha)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(s.Eval)
	}
	return cmds, err
}
