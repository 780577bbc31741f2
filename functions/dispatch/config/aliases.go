package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sethvargo/go-envconfig"
)

// alias is another name service-cloud-api gives one of dispatch's values, so
// that a platform moving its build spawner to dispatch can keep its secret
// store as it is.
type alias struct {
	name string
	// decode turns the alias's form into dispatch's; nil when the same.
	decode func(string) (string, error)
}

// Aliases maps dispatch's variables to service-cloud-api's names for them.
// JWT_SECRET is what service-cloud-api verifies callback tokens with.
var Aliases = map[string]alias{
	"GITHUB_WEBHOOK_SECRET":  {name: "GITHUB_APP_WEBHOOK_SECRET"},
	"GITHUB_APP_PRIVATE_KEY": {name: "GITHUB_APP_PRIVATE_KEY_B64", decode: decodePEMBase64},
	"CALLBACK_SECRET":        {name: "JWT_SECRET"},
}

// AliasOf names service-cloud-api's variable for key, "" when there is none.
func AliasOf(key string) string { return Aliases[key].name }

func decodePEMBase64(v string) (string, error) {
	v = strings.Join(strings.Fields(v), "")
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
	}
	if err != nil {
		return "", errors.New("is not valid base64")
	}
	if !strings.Contains(string(b), "-----BEGIN ") {
		return "", errors.New("does not decode to a PEM key")
	}
	return string(b), nil
}

// aliasLookuper answers dispatch's name from service-cloud-api's when only
// that is set (either may come as X_FILE, through inner). Both set is an
// error, as for X and X_FILE: which one wins would be a guess.
type aliasLookuper struct {
	inner envconfig.Lookuper
	mu    sync.Mutex
	errs  []error
}

func withAliases(inner envconfig.Lookuper) *aliasLookuper { return &aliasLookuper{inner: inner} }

func (l *aliasLookuper) Lookup(key string) (string, bool) {
	v, ok := l.inner.Lookup(key)
	a, has := Aliases[key]
	if !has {
		return v, ok
	}
	av, aok := l.inner.Lookup(a.name)
	switch {
	case !aok:
		return v, ok
	case ok:
		l.fail(fmt.Errorf("%s and %s (service-cloud-api's name for it) are both set; set one", key, a.name))
		return v, ok
	}
	if a.decode != nil {
		d, err := a.decode(av)
		if err != nil {
			// Never the value: it is a secret.
			l.fail(fmt.Errorf("%s %v", a.name, err))
			return "", false
		}
		av = d
	}
	return av, true
}

func (l *aliasLookuper) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *aliasLookuper) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}
