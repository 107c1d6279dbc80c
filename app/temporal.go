package app

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/BurntSushi/toml"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"

	"github.com/ktpipe/ktpipe/config"
	"github.com/ktpipe/ktpipe/metrics"
)

// Where ktpipe connects when neither the profile file nor a variable
// says: the local dev server (127.0.0.1, not localhost, which may resolve
// to ::1 where the dev server does not listen) and its namespace.
const (
	DefaultTemporalAddress   = "127.0.0.1:7233"
	DefaultTemporalNamespace = "default"
)

// TemporalOptions are the client options of cfg, resolved the way the
// Temporal CLI resolves them (go.temporal.io/sdk/contrib/envconfig): the
// profile TEMPORAL_PROFILE (default "default") of TEMPORAL_CONFIG_FILE
// (default the CLI's own file; none is fine), then the TEMPORAL_*
// variables over it. HostPort and Namespace are always set.
func TemporalOptions(cfg config.Temporal) (client.Options, error) {
	opts, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{EnvLookup: cfg})
	if err != nil {
		var parse toml.ParseError
		if errors.As(err, &parse) {
			// The parser quotes what it found, which can be the start of a
			// secret (an unquoted api_key): say where, never what.
			err = fmt.Errorf("the profile file does not parse at line %d (after key %q)", parse.Position.Line, parse.LastKey)
		}
		file, _ := cfg.LookupEnv("TEMPORAL_CONFIG_FILE")
		file = cmp.Or(file, envconfig.DefaultConfigFilePath())
		if _, statErr := os.Stat(file); file == "" || statErr != nil {
			file = "no profile file" // the error came from the variables
		}
		return client.Options{}, fmt.Errorf("temporal client configuration (TEMPORAL_* variables; profile %q of %s): %w",
			cmp.Or(cfg.Profile, envconfig.DefaultConfigFileProfile), file, err)
	}
	opts.HostPort = cmp.Or(opts.HostPort, DefaultTemporalAddress)
	opts.Namespace = cmp.Or(opts.Namespace, DefaultTemporalNamespace)
	return opts, nil
}

// DialTemporal connects to the configured Temporal cluster.
func DialTemporal(cfg config.Temporal, logger *slog.Logger) (client.Client, error) {
	c, _, err := dialTemporal(cfg, logger, nil)
	return c, err
}

// dialTemporal connects with the SDK's metrics going to m (nil: none) and
// returns the options it dialled with.
func dialTemporal(cfg config.Temporal, logger *slog.Logger, m *metrics.Metrics) (client.Client, client.Options, error) {
	for _, r := range cfg.Deprecated() {
		logger.Warn("deprecated variable: "+r.Old+" is now "+r.New+"; the old name goes in the next release", "old", r.Old, "new", r.New)
	}
	opts, err := TemporalOptions(cfg)
	if err != nil {
		return nil, opts, err
	}
	opts.Logger = log.NewStructuredLogger(logger)
	if m != nil {
		opts.MetricsHandler = m.SDKHandler()
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, opts, fmt.Errorf("connect to Temporal at %s, namespace %s: %w", opts.HostPort, opts.Namespace, err)
	}
	return c, opts, nil
}
