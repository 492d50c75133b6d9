package main

import (
	"errors"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// checkRedisURL reports whether v, when set, is a Redis URL go-redis
// accepts (a cluster's seed list when cluster). The error never repeats
// v, which may hold a password.
func checkRedisURL(v string, cluster bool) error {
	if v == "" {
		return nil
	}
	var err error
	if cluster {
		_, err = redis.ParseClusterURL(v)
	} else {
		_, err = redis.ParseURL(v)
	}
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if cluster {
		return errors.New(err.Error() + ": want redis://[user:password@]host:port?addr=host2:port2&addr=…")
	}
	return errors.New(err.Error() + ": want redis://[user:password@]host:port/db")
}

// redisMode describes the Redis of v, for the log, without any password
// or query parameter: redis://host:6379/0 (with user@ when the URL names a
// user), or for a cluster "Redis Cluster" and its seeds, host:port,….
func redisMode(v string, cluster bool) string {
	u, err := url.Parse(v)
	if err != nil {
		return "Redis"
	}
	if cluster {
		seeds := append([]string{u.Host}, u.Query()["addr"]...)
		for i, s := range seeds { // host:port only, never user:password@
			seeds[i] = s[strings.LastIndex(s, "@")+1:]
		}
		return "Redis Cluster " + strings.Join(seeds, ",")
	}
	u.User = withoutPassword(u.User)
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// withoutPassword keeps a URL's user name and drops its password.
func withoutPassword(u *url.Userinfo) *url.Userinfo {
	if u == nil || u.Username() == "" {
		return nil
	}
	return url.User(u.Username())
}
