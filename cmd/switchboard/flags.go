package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// errUsage marks a usage error: a bad flag, environment value or
// combination of them. main prints it on one line and exits with code 2;
// every other error exits with code 1.
var errUsage = errors.New("usage")

// usageError is a usage error's one-line message; errors.Is(err, errUsage)
// recognizes it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func (e usageError) Is(target error) bool { return target == errUsage }

// usageErr returns a usage error with the formatted message.
func usageErr(format string, a ...any) error {
	return usageError{fmt.Sprintf(format, a...)}
}

// parseFlags parses args with fs, the flags of the command fs.Name()
// ("switchboard", "switchboard token", …). --help or -h prints fs's usage
// to stdout and returns flag.ErrHelp. Any other failure returns a one-line
// usage error naming the flag, the value and the form wanted, and pointing
// to --help: the flag package's own message and the whole usage are never
// printed. Extra arguments are refused.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var bad error // the first bad value, described
	orig := map[string]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		orig[f.Name] = f.Value
		f.Value = describedValue{f.Value, f.Name, &bad}
	})
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.VisitAll(func(f *flag.Flag) { f.Value = orig[f.Name] })
	fs.SetOutput(stdout)
	hint := " (see " + fs.Name() + " --help)"
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case bad != nil:
		return usageErr("%v%s", bad, hint)
	case err != nil:
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			msg = "unknown flag --" + name
		} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
			msg = "--" + name + " needs a value"
		}
		return usageErr("%s%s", msg, hint)
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q%s", fs.Arg(0), hint)
	}
	return nil
}

// describedValue is a flag's Value while parseFlags parses: it records the
// first value Set refuses, described by badValue.
type describedValue struct {
	flag.Value
	name string
	bad  *error
}

func (v describedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && *v.bad == nil {
		*v.bad = badValue("--"+v.name, s, v.Value, err)
	}
	return err
}

// IsBoolFlag tells the flag package that a bool flag needs no value.
func (v describedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// String is nil-safe: the flag package calls it on a zero Value.
func (v describedValue) String() string {
	if v.Value == nil {
		return ""
	}
	return v.Value.String()
}

// badValue describes value, refused by the flag value v with err, given
// as where (--rate-limit or SWITCHBOARD_RATE_LIMIT): the form v wants for
// the flag package's own types, err's message for the others.
func badValue(where, value string, v flag.Value, err error) error {
	want := err.Error()
	if g, ok := v.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			want = "want true or false"
		case int, int64, uint, uint64:
			want = "want a whole number"
		case float64:
			want = "want a number"
		case time.Duration:
			want = "want a duration like 5s or 250ms"
		}
	}
	return fmt.Errorf("%s %q: %s", where, value, want)
}
