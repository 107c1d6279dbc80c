package config_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ktpipe/ktpipe/config"
)

// configStructs lists every exported struct type of package config. The
// test below fails when a struct is added to the package but not here, so
// no config struct escapes the check.
var configStructs = map[string]any{
	"Temporal":   &config.Temporal{},
	"Keeptrusts": &config.Keeptrusts{},
	"Webhook":    &config.Webhook{},
	"BigQuery":   &config.BigQuery{},
	"Pipeline":   &config.Pipeline{},
	"Worker":     &config.Worker{},
	"Receiver":   &config.Receiver{},
	"Metrics":    &config.Metrics{},
	// OldTemporal and Renamed hold no secret; listed so the test sees
	// every struct.
	"OldTemporal": &config.OldTemporal{},
	"Renamed":     &config.Renamed{},
}

func exportedStructs(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				if _, ok := ts.Type.(*ast.StructType); ok && ts.Name.IsExported() {
					names = append(names, ts.Name.Name)
				}
			}
		}
	}
	return names
}

var secretType = reflect.TypeFor[config.Secret]()

// fillSecrets sets every Secret field reachable from v to a distinct
// value and returns those values.
func fillSecrets(v reflect.Value, path string) []string {
	switch {
	case v.Type() == secretType:
		s := "SeCrEt-" + strings.ReplaceAll(path, ".", "-")
		v.SetString(s)
		return []string{s}
	case v.Kind() == reflect.Struct:
		var out []string
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				out = append(out, fillSecrets(v.Field(i), path+"."+f.Name)...)
			}
		}
		return out
	}
	return nil
}

func TestSecretsDoNotEncode(t *testing.T) {
	listed := map[string]bool{}
	for _, name := range exportedStructs(t) {
		listed[name] = true
		if configStructs[name] == nil {
			t.Errorf("config.%s is not in configStructs: add it so its secrets are checked", name)
		}
	}
	if len(listed) == 0 {
		t.Fatal("found no config structs")
	}
	total := 0
	for name, ptr := range configStructs {
		secrets := fillSecrets(reflect.ValueOf(ptr).Elem(), name)
		total += len(secrets)
		val := reflect.ValueOf(ptr).Elem().Interface()
		encodings := map[string]string{}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			encodings["fmt "+verb] = fmt.Sprintf(verb, val)
			encodings["fmt ptr "+verb] = fmt.Sprintf(verb, ptr)
		}
		if b, err := json.Marshal(val); err != nil {
			t.Errorf("%s: json: %v", name, err)
		} else {
			encodings["json"] = string(b)
		}
		if b, err := xml.Marshal(val); err != nil {
			t.Errorf("%s: xml: %v", name, err)
		} else {
			encodings["xml"] = string(b)
		}
		var jbuf, tbuf bytes.Buffer
		slog.New(slog.NewJSONHandler(&jbuf, nil)).Info("cfg", "cfg", val, "ptr", ptr)
		slog.New(slog.NewTextHandler(&tbuf, nil)).Info("cfg", "cfg", val, "ptr", ptr)
		encodings["slog json"], encodings["slog text"] = jbuf.String(), tbuf.String()
		for _, s := range secrets {
			var j, x bytes.Buffer
			slog.New(slog.NewJSONHandler(&j, nil)).Info("secret", "s", config.Secret(s))
			slog.New(slog.NewTextHandler(&x, nil)).Info("secret", "s", config.Secret(s))
			encodings["slog json "+s], encodings["slog text "+s] = j.String(), x.String()
			for how, out := range encodings {
				if strings.Contains(out, s) || strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(s))) {
					t.Errorf("%s: %s reveals %s: %s", name, how, s, out)
				}
			}
		}
	}
	if total == 0 {
		t.Fatal("no Secret fields found: the walk checked nothing")
	}
}

// secretVar is a variable that holds a credential.
var secretVar = regexp.MustCompile(`(TOKEN|SECRET|API_KEY|KEY_DATA|PASSWORD)\b`)

// TestCredentialsAreSecrets: every variable that names a credential is
// read into a Secret, so the test above covers it; a plain string field
// would print the credential and escape that test.
func TestCredentialsAreSecrets(t *testing.T) {
	found := 0
	var walk func(tp reflect.Type, path string)
	walk = func(tp reflect.Type, path string) {
		for i := range tp.NumField() {
			f := tp.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != secretType && name == "":
				walk(f.Type, path+"."+f.Name)
			case secretVar.MatchString(name):
				found++
				if f.Type != secretType {
					t.Errorf("%s.%s (%s) is a %s: make it a config.Secret", path, f.Name, name, f.Type)
				}
			}
		}
	}
	for name, ptr := range configStructs {
		walk(reflect.TypeOf(ptr).Elem(), name)
	}
	if found == 0 {
		t.Fatal("no credential variables found: the walk checked nothing")
	}
}
