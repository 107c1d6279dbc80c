package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.temporal.io/sdk/client"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
)

// temporalOptions loads config.Temporal from env, as the worker and the
// CLI do, and resolves its client options. The user's own profile file
// (~/.config/temporalio/temporal.toml) is hidden, so only env counts.
func temporalOptions(t *testing.T, env map[string]string) (client.Options, error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var c config.Temporal
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil {
		t.Fatalf("config: %v", err)
	}
	return app.TemporalOptions(c)
}

// writePair writes a self-signed certificate and its key as PEM files.
func writePair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func tlsOf(t *testing.T, o client.Options) *tls.Config {
	t.Helper()
	if o.ConnectionOptions.TLS == nil {
		t.Fatal("TLS is off")
	}
	return o.ConnectionOptions.TLS
}

func TestTemporalOptionsDefaults(t *testing.T) {
	o, err := temporalOptions(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.HostPort != "127.0.0.1:7233" || o.Namespace != "default" || o.ConnectionOptions.TLS != nil || o.Credentials != nil {
		t.Fatalf("defaults: %s %s tls %v credentials %v", o.HostPort, o.Namespace, o.ConnectionOptions.TLS, o.Credentials)
	}
}

// Temporal's own names reach the client options: the names the Temporal
// CLI and SDKs read.
func TestTemporalOptionsFromTemporalsNames(t *testing.T) {
	cert, key := writePair(t)
	o, err := temporalOptions(t, map[string]string{
		"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "ns.acct",
		"TEMPORAL_TLS_CLIENT_CERT_PATH": cert, "TEMPORAL_TLS_CLIENT_KEY_PATH": key,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": cert, "TEMPORAL_TLS_SERVER_NAME": "tmprl.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.HostPort != "ns.acct.tmprl.cloud:7233" || o.Namespace != "ns.acct" {
		t.Errorf("address %s namespace %s", o.HostPort, o.Namespace)
	}
	tc := tlsOf(t, o)
	if len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.ServerName != "tmprl.example" {
		t.Errorf("tls: %d certificates, root CAs %v, server name %q", len(tc.Certificates), tc.RootCAs != nil, tc.ServerName)
	}

	// An API key alone turns TLS on and authenticates.
	o, err = temporalOptions(t, map[string]string{"TEMPORAL_API_KEY": "tk-very-secret"})
	if err != nil {
		t.Fatal(err)
	}
	tlsOf(t, o)
	if o.Credentials == nil {
		t.Error("TEMPORAL_API_KEY: no credentials")
	}
}

// The profile file the Temporal CLI reads: TEMPORAL_CONFIG_FILE and
// TEMPORAL_PROFILE choose it, and a variable overrides the profile's value.
func TestTemporalOptionsFromProfileFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.toml")
	toml := `
[profile.default]
address = "127.0.0.1:7233"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "tk-from-file"
`
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := temporalOptions(t, map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "cloud"})
	if err != nil {
		t.Fatal(err)
	}
	if o.HostPort != "ns.acct.tmprl.cloud:7233" || o.Namespace != "ns.acct" || o.Credentials == nil {
		t.Errorf("profile cloud: address %s namespace %s credentials %v", o.HostPort, o.Namespace, o.Credentials != nil)
	}
	tlsOf(t, o) // the profile's API key implies TLS
	o, err = temporalOptions(t, map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "cloud", "TEMPORAL_NAMESPACE": "other.acct"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "other.acct" || o.HostPort != "ns.acct.tmprl.cloud:7233" {
		t.Errorf("variable over profile: address %s namespace %s", o.HostPort, o.Namespace)
	}
	// A profile that is not in the file is an error that says which.
	if _, err := temporalOptions(t, map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "staging"}); err == nil ||
		!strings.Contains(err.Error(), `profile "staging" of `+file) {
		t.Errorf("missing profile: %v", err)
	}
}

// The names ktpipe used before still work, in place of Temporal's.
func TestTemporalOptionsFromOldNames(t *testing.T) {
	cert, key := writePair(t)
	o, err := temporalOptions(t, map[string]string{"TEMPORAL_TLS_CERT": cert, "TEMPORAL_TLS_KEY": key, "TEMPORAL_TLS_CA": cert})
	if err != nil {
		t.Fatal(err)
	}
	if tc := tlsOf(t, o); len(tc.Certificates) != 1 || tc.RootCAs == nil {
		t.Errorf("old names: %d certificates, root CAs %v", len(tc.Certificates), tc.RootCAs != nil)
	}
}

// A certificate without its key is an error naming the variables, and no
// error carries the API key.
func TestTemporalOptionsHalfTLS(t *testing.T) {
	cert, _ := writePair(t)
	_, err := temporalOptions(t, map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": cert, "TEMPORAL_API_KEY": "tk-very-secret"})
	if err == nil || !strings.Contains(err.Error(), "TEMPORAL_* variables") || !strings.Contains(err.Error(), "cert or key path") {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "tk-very-secret") {
		t.Fatal("the error carries the API key")
	}
}

// A worker or CLI given an old name logs one warning naming the old and
// the new name, and never the API key.
func TestDialTemporalWarnsOfOldNames(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cert, key := writePair(t)
	// Nothing listens there: the dial fails fast, after the warnings.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var c config.Temporal
	env := map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_TLS_CERT": cert, "TEMPORAL_TLS_CLIENT_KEY_PATH": key, "TEMPORAL_API_KEY": "tk-very-secret"}
	if err := config.Load(context.Background(), &c, envconfig.MapLookuper(env)); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cl, err := app.DialTemporal(c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		cl.Close()
		t.Fatal("dialled a closed port")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("dial error does not name the address: %v", err)
	}
	var warnings []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "deprecated") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "old=TEMPORAL_TLS_CERT") || !strings.Contains(warnings[0], "new=TEMPORAL_TLS_CLIENT_CERT_PATH") {
		t.Errorf("want one warning naming TEMPORAL_TLS_CERT and TEMPORAL_TLS_CLIENT_CERT_PATH; log:\n%s", logs.String())
	}
	if strings.Contains(logs.String()+err.Error(), "tk-very-secret") {
		t.Error("the API key reached the log or the error")
	}
}

// A profile file that does not parse is reported by line and key, never
// by what the parser found there: an unquoted api_key would otherwise
// put the start of the key in a log line.
func TestProfileFileErrorHidesTheValue(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte("[profile.default]\naddress = \"127.0.0.1:7233\"\napi_key = SEKRET123abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := temporalOptions(t, map[string]string{"TEMPORAL_CONFIG_FILE": file})
	if err == nil {
		t.Fatal("a profile file that does not parse was taken")
	}
	if strings.Contains(err.Error(), "SEKRET") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("error %q: want the line, not the value", err)
	}
}
