package config_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/config"
)

func loadTemporal(t *testing.T, env map[string]string) (config.Temporal, error) {
	t.Helper()
	var c config.Temporal
	err := config.Load(context.Background(), &c, envconfig.MapLookuper(env))
	return c, err
}

func TestTemporalOldNamesStandInForNew(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	for _, f := range []string{cert, key, ca} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := loadTemporal(t, map[string]string{"TEMPORAL_TLS_CERT": cert, "TEMPORAL_TLS_KEY": key,
		// both names, the same value: no conflict, still a warning.
		"TEMPORAL_TLS_CA": ca, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": ca})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cert, "TEMPORAL_TLS_CLIENT_KEY_PATH": key, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": ca} {
		if got, ok := c.LookupEnv(name); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q from its old name", name, got, ok, want)
		}
	}
	want := []config.Renamed{{Old: "TEMPORAL_TLS_CERT", New: "TEMPORAL_TLS_CLIENT_CERT_PATH"},
		{Old: "TEMPORAL_TLS_KEY", New: "TEMPORAL_TLS_CLIENT_KEY_PATH"}, {Old: "TEMPORAL_TLS_CA", New: "TEMPORAL_TLS_SERVER_CA_CERT_PATH"}}
	if got := c.Deprecated(); !reflect.DeepEqual(got, want) {
		t.Errorf("deprecated %v, want %v", got, want)
	}

	// New names alone: nothing deprecated; an unset name is not found.
	c, err = loadTemporal(t, map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cert, "TEMPORAL_API_KEY": "tk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Deprecated(); len(d) != 0 {
		t.Errorf("deprecated %v with only new names", d)
	}
	if v, ok := c.LookupEnv("TEMPORAL_API_KEY"); v != "tk-secret" || !ok {
		t.Errorf("TEMPORAL_API_KEY = %q, %v", v, ok)
	}
	if v, ok := c.LookupEnv("TEMPORAL_TLS_SERVER_CA_CERT_PATH"); ok {
		t.Errorf("unset TEMPORAL_TLS_SERVER_CA_CERT_PATH found: %q", v)
	}
}

func TestTemporalOldAndNewNameDiffer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for old, new := range map[string]string{"TEMPORAL_TLS_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
		"TEMPORAL_TLS_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CA": "TEMPORAL_TLS_SERVER_CA_CERT_PATH"} {
		_, err := loadTemporal(t, map[string]string{old: a, new: b})
		if err == nil || !strings.Contains(err.Error(), old+" and "+new+": both set") {
			t.Errorf("%s and %s differ: err %v, want one naming both", old, new, err)
		}
	}
}

func TestTemporalMissingFileNamesTheVariableSet(t *testing.T) {
	_, err := loadTemporal(t, map[string]string{"TEMPORAL_TLS_CA": "/nonexistent/ca.pem"})
	if err == nil || !strings.HasPrefix(err.Error(), "TEMPORAL_TLS_CA: ") {
		t.Errorf("err %v, want it to name TEMPORAL_TLS_CA", err)
	}
}
