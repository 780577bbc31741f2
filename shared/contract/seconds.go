package contract

import (
	"errors"
	"regexp"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// TimeoutSecondsVar is service-cloud-api's name for the build's time limit,
// in seconds; the contract reads it as BUILD_TIMEOUT when that is unset.
const TimeoutSecondsVar = "AF_BUILD_TIMEOUT_SECONDS"

// secondsVars may be given as a bare number of seconds: the shell runner
// this one replaces read LOG_STREAM_INTERVAL=5 that way, and platforms still
// set it so.
var secondsVars = map[string]bool{"LOG_STREAM_INTERVAL": true, "BUILD_TIMEOUT": true}

var bareSecondsRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// BareSeconds turns "5" or "1.5" into "5s" / "1.5s" and leaves anything else
// (a Go duration like "30m") as it is.
func BareSeconds(v string) string {
	if bareSecondsRe.MatchString(v) {
		return v + "s"
	}
	return v
}

// Seconds wraps lookup so that LOG_STREAM_INTERVAL and BUILD_TIMEOUT may be
// a bare number of seconds, as the contract reads them: for the other
// loaders of RunnerDefaults (dispatch's configuration), so one value means
// the same wherever it is set.
func Seconds(lookup envconfig.Lookuper) envconfig.Lookuper { return bareSeconds{lookup} }

type bareSeconds struct{ l envconfig.Lookuper }

func (s bareSeconds) Lookup(key string) (string, bool) {
	v, ok := s.l.Lookup(key)
	if ok && secondsVars[key] {
		v = BareSeconds(v)
	}
	return v, ok
}

// secondsLookuper is Seconds, and reads BUILD_TIMEOUT from
// AF_BUILD_TIMEOUT_SECONDS when only that is set.
type secondsLookuper struct{ l envconfig.Lookuper }

func (s secondsLookuper) Lookup(key string) (string, bool) {
	if _, ok := s.l.Lookup(key); !ok && key == "BUILD_TIMEOUT" {
		if v, ok := s.l.Lookup(TimeoutSecondsVar); ok {
			return BareSeconds(v), true
		}
	}
	return bareSeconds(s).Lookup(key)
}

// withSeconds wraps lookup, and refuses BUILD_TIMEOUT and
// AF_BUILD_TIMEOUT_SECONDS set to different limits: which one the operator
// meant would be a guess.
func withSeconds(lookup envconfig.Lookuper) (envconfig.Lookuper, Errors) {
	a, okA := lookup.Lookup("BUILD_TIMEOUT")
	b, okB := lookup.Lookup(TimeoutSecondsVar)
	if okA && okB {
		da, errA := time.ParseDuration(BareSeconds(a))
		db, errB := time.ParseDuration(BareSeconds(b))
		if errA != nil || errB != nil || da != db {
			return secondsLookuper{lookup}, Errors{{Var: "BUILD_TIMEOUT", Err: errors.New("and " + TimeoutSecondsVar + " are both set, to different limits; set one")}}
		}
	}
	return secondsLookuper{lookup}, nil
}
