package config

import (
	"cmp"
	"fmt"
	"os"
	"strings"
)

// Temporal says how ktpipe reaches Temporal. The connection (address,
// namespace, API key, TLS) is Temporal's own client configuration: the
// TEMPORAL_* variables and the profile file the Temporal CLI reads, which
// app.TemporalOptions resolves with go.temporal.io/sdk/contrib/envconfig
// (a profile from TEMPORAL_CONFIG_FILE, then these variables over it).
// They are read here, from the same environment as every other setting,
// so that tests and the local stack can hand them in a map; none has a
// default, or it would override the profile file (app fills 127.0.0.1:7233
// and "default" when neither sets them).
type Temporal struct {
	Address   string `env:"TEMPORAL_ADDRESS"`
	Namespace string `env:"TEMPORAL_NAMESPACE"`
	// APIKey authenticates to Temporal Cloud; it implies TLS.
	APIKey Secret `env:"TEMPORAL_API_KEY"`
	// TLS is "true" or "false" (also 1 or 0) to turn TLS on or off
	// whatever else is set; empty: on when an API key or a TLS setting is.
	TLS string `env:"TEMPORAL_TLS"`
	// mTLS client certificate and key, and the CA that signs the server's
	// certificate (Temporal Cloud or self-hosted): files, or their PEM.
	TLSClientCertPath   string `env:"TEMPORAL_TLS_CLIENT_CERT_PATH"`
	TLSClientKeyPath    string `env:"TEMPORAL_TLS_CLIENT_KEY_PATH"`
	TLSServerCACertPath string `env:"TEMPORAL_TLS_SERVER_CA_CERT_PATH"`
	TLSClientCertData   string `env:"TEMPORAL_TLS_CLIENT_CERT_DATA"`
	TLSClientKeyData    Secret `env:"TEMPORAL_TLS_CLIENT_KEY_DATA"`
	TLSServerCACertData string `env:"TEMPORAL_TLS_SERVER_CA_CERT_DATA"`
	TLSServerName       string `env:"TEMPORAL_TLS_SERVER_NAME"`
	// TLSDisableHostVerification skips checking the server's name
	// ("true"/"false"); for test clusters only.
	TLSDisableHostVerification string `env:"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"`
	// Profile names the profile of ConfigFile (default "default");
	// ConfigFile is the Temporal CLI's TOML profile file (default
	// $XDG_CONFIG_HOME/temporalio/temporal.toml, ~/.config/... on Linux).
	Profile    string `env:"TEMPORAL_PROFILE"`
	ConfigFile string `env:"TEMPORAL_CONFIG_FILE"`

	TaskQueue string `env:"KTPIPE_TASK_QUEUE, default=ktpipe"`
	// UIURL is the Temporal UI that `ktpipe status` links workflows to;
	// empty: the dev server's UI (port 8233) on the address's host, or
	// Temporal Cloud's for a *.tmprl.cloud address.
	UIURL string `env:"KTPIPE_TEMPORAL_UI_URL"`

	// Old holds the names ktpipe read before it used Temporal's.
	Old OldTemporal
}

// OldTemporal are the variables ktpipe named itself before it read
// Temporal's names. Each still works for one release, in place of its
// successor, with a warning; they go in the release after.
type OldTemporal struct {
	TLSCert string `env:"TEMPORAL_TLS_CERT"`
	TLSKey  string `env:"TEMPORAL_TLS_KEY"`
	TLSCA   string `env:"TEMPORAL_TLS_CA"`
}

// Renamed is an old variable and the name that replaces it.
type Renamed struct{ Old, New string }

// renamed lists the old names, in the order of Temporal.pairs.
var renamed = []Renamed{
	{"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_CLIENT_CERT_PATH"},
	{"TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CLIENT_KEY_PATH"},
	{"TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
}

// pairs returns each old variable's value beside its successor's.
func (c Temporal) pairs() [][2]string {
	return [][2]string{{c.Old.TLSCert, c.TLSClientCertPath}, {c.Old.TLSKey, c.TLSClientKeyPath}, {c.Old.TLSCA, c.TLSServerCACertPath}}
}

// current is c with each old variable's value in its successor's place
// where the successor is unset.
func (c Temporal) current() Temporal {
	c.TLSClientCertPath = cmp.Or(c.TLSClientCertPath, c.Old.TLSCert)
	c.TLSClientKeyPath = cmp.Or(c.TLSClientKeyPath, c.Old.TLSKey)
	c.TLSServerCACertPath = cmp.Or(c.TLSServerCACertPath, c.Old.TLSCA)
	return c
}

// Deprecated lists the old names that are set; the worker and the CLI
// log one warning for each.
func (c Temporal) Deprecated() []Renamed {
	var out []Renamed
	for i, p := range c.pairs() {
		if p[0] != "" {
			out = append(out, renamed[i])
		}
	}
	return out
}

// LookupEnv returns the TEMPORAL_* variable key as read, an old name
// standing in for its successor. With Environ it is the lookup that
// Temporal's envconfig reads the environment through (its EnvLookup), so
// the variables are those of the map or environment Load read.
func (c Temporal) LookupEnv(key string) (string, bool) {
	c = c.current()
	var v string
	switch key {
	case "TEMPORAL_ADDRESS":
		v = c.Address
	case "TEMPORAL_NAMESPACE":
		v = c.Namespace
	case "TEMPORAL_API_KEY":
		v = c.APIKey.Reveal()
	case "TEMPORAL_TLS":
		v = c.TLS
	case "TEMPORAL_TLS_CLIENT_CERT_PATH":
		v = c.TLSClientCertPath
	case "TEMPORAL_TLS_CLIENT_KEY_PATH":
		v = c.TLSClientKeyPath
	case "TEMPORAL_TLS_SERVER_CA_CERT_PATH":
		v = c.TLSServerCACertPath
	case "TEMPORAL_TLS_CLIENT_CERT_DATA":
		v = c.TLSClientCertData
	case "TEMPORAL_TLS_CLIENT_KEY_DATA":
		v = c.TLSClientKeyData.Reveal()
	case "TEMPORAL_TLS_SERVER_CA_CERT_DATA":
		v = c.TLSServerCACertData
	case "TEMPORAL_TLS_SERVER_NAME":
		v = c.TLSServerName
	case "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION":
		v = c.TLSDisableHostVerification
	case "TEMPORAL_PROFILE":
		v = c.Profile
	case "TEMPORAL_CONFIG_FILE":
		v = c.ConfigFile
	}
	// Empty is unset, as for every other variable: an empty value does
	// not clear the profile file's.
	return v, v != ""
}

// Environ lists no variables: ktpipe reads the names above, not the
// TEMPORAL_GRPC_META_* family (a profile file's grpc_meta sets headers).
func (Temporal) Environ() []string { return nil }

// Validate checks what types alone cannot, naming the variable.
func (c Temporal) Validate() error {
	if !taskQueuePattern.MatchString(c.TaskQueue) {
		return fmt.Errorf("KTPIPE_TASK_QUEUE: %q must be letters, digits, '.', '_' or '-'", c.TaskQueue)
	}
	if c.Address != "" && !strings.Contains(c.Address, ":") {
		return fmt.Errorf("TEMPORAL_ADDRESS: %q must be host:port", c.Address)
	}
	for i, p := range c.pairs() {
		if p[0] != "" && p[1] != "" && p[0] != p[1] {
			r := renamed[i]
			return fmt.Errorf("%s and %s: both set, to different values; %s is the old name of %s: set only %s", r.Old, r.New, r.Old, r.New, r.New)
		}
	}
	for _, b := range []struct{ name, v string }{{"TEMPORAL_TLS", c.TLS}, {"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", c.TLSDisableHostVerification}} {
		switch strings.ToLower(b.v) {
		case "", "true", "false", "1", "0":
		default:
			return fmt.Errorf("%s: %q must be true or false", b.name, b.v)
		}
	}
	cur := c.current()
	files := []struct{ name, path string }{{"TEMPORAL_TLS_CLIENT_CERT_PATH", cur.TLSClientCertPath},
		{"TEMPORAL_TLS_CLIENT_KEY_PATH", cur.TLSClientKeyPath}, {"TEMPORAL_TLS_SERVER_CA_CERT_PATH", cur.TLSServerCACertPath}}
	for i, p := range c.pairs() {
		if p[1] == "" && p[0] != "" {
			files[i].name = renamed[i].Old
		}
	}
	// TEMPORAL_CONFIG_FILE may be missing (the CLI's rule: no file, no
	// profile); a certificate named explicitly may not.
	for _, f := range files {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	return nil
}
