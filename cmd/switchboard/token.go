package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// runToken implements `switchboard token`: it prints a JWT signed with the
// configured secret, for trying auth from wscat or curl.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchboard token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("jwt-secret", "", "signing secret (default $"+envName("jwt-secret")+")")
	user := fs.String("user", "", "user name, the token's sub (required)")
	name := fs.String("name", "", "display name")
	rooms := fs.String("rooms", "", "comma-separated room globs the user may join (default: all rooms)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard token --user NAME [--rooms 'team-*,lobby'] [--ttl 1h]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *secret == "" {
		*secret = getenv(envName("jwt-secret"))
	}
	switch {
	case len(*secret) < minSecretLen:
		return fmt.Errorf("%w: token needs --jwt-secret or $%s of at least %d bytes", errUsage, envName("jwt-secret"), minSecretLen)
	case !protocol.ValidUser(*user):
		return fmt.Errorf("%w: --user must be 1-32 of A-Z a-z 0-9 _ . -", errUsage)
	case *ttl <= 0:
		return fmt.Errorf("%w: --ttl must be positive", errUsage)
	}
	var patterns []string
	if *rooms != "" {
		patterns = splitList(*rooms)
	}
	token, err := tokenAuth{secret: []byte(*secret)}.mint(*user, *name, patterns, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}
