package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// runToken implements `switchboard token`: it prints a JWT signed with the
// configured secret, for trying auth from wscat or curl.
func runToken(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("switchboard token", flag.ContinueOnError)
	secret := fs.String("jwt-secret", "", "signing secret (default $"+envName("jwt-secret")+")")
	user := fs.String("user", "", "user name, the token's sub (required)")
	name := fs.String("name", "", "display name")
	rooms := fs.String("rooms", "", "comma-separated room globs the user may join (default: all rooms)")
	dm := fs.String("dm", "", "comma-separated user globs the user may send direct messages to (default: anyone)")
	op := fs.String("op", "", "comma-separated room globs the user operates: mutes, bans, freezes, deletes any message (default: none)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard token --user NAME [--rooms 'team-*,lobby'] [--dm 'bob,support-*'] [--op 'team-*'] [--ttl 1h]\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *secret == "" {
		*secret = getenv(envName("jwt-secret"))
	}
	switch {
	case len(*secret) < minSecretLen:
		return usageErr("token needs --jwt-secret or $%s of at least %d bytes", envName("jwt-secret"), minSecretLen)
	case !protocol.ValidUser(*user):
		return usageErr("--user must be 1-32 of A-Z a-z 0-9 _ . -")
	case *ttl <= 0:
		return usageErr("--ttl must be positive")
	}
	roomGlobs, err := globList(*rooms, "room", protocol.ValidRoom)
	if err != nil {
		return usageErr("--rooms: %v", err)
	}
	dmGlobs, err := globList(*dm, "user", protocol.ValidUser)
	if err != nil {
		return usageErr("--dm: %v", err)
	}
	opGlobs, err := globList(*op, "room", protocol.ValidRoom)
	if err != nil {
		return fmt.Errorf("%w: --op: %v", errUsage, err)
	}
	token, err := tokenAuth{secret: []byte(*secret)}.mintOp(*user, *name, roomGlobs, dmGlobs, opGlobs, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// globList splits a comma-separated flag value into glob patterns and
// validates them with checkGlobs; an empty item is an error, not skipped.
// An empty value means no list (nil): the claim is left out.
func globList(v, kind string, valid func(string) bool) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	patterns := strings.Split(v, ",")
	for i, p := range patterns {
		patterns[i] = strings.TrimSpace(p)
		if patterns[i] == "" {
			return nil, fmt.Errorf("empty pattern at item %d of %q", i+1, v)
		}
	}
	if err := checkGlobs(patterns, kind, valid); err != nil {
		return nil, err
	}
	return patterns, nil
}
