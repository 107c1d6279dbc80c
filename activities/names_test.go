package activities

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"testing"
)

// Workflows schedule activities by payload's name constants; the worker
// registers the methods of *Activities and *Cleaner under their method
// names. A constant that names no registered method would fail every
// workflow that schedules it (ActivityNotRegistered), and a method
// without a constant is an activity workflows cannot reach by name.
func TestPayloadNamesAreTheRegisteredMethods(t *testing.T) {
	names := payloadNames(t)
	registered := map[string]bool{}
	for _, v := range []any{&Activities{}, &Cleaner{}} { // what app.NewWorkers registers
		typ := reflect.TypeOf(v)
		for i := range typ.NumMethod() {
			registered[typ.Method(i).Name] = true
		}
	}
	for ident, value := range names {
		if !registered[value] {
			t.Errorf("payload.%s = %q names no method of *Activities or *Cleaner", ident, value)
		}
		if ident != value {
			t.Errorf("payload.%s = %q: a name constant is spelled as the method it names", ident, value)
		}
	}
	values := map[string]bool{}
	for _, v := range names {
		values[v] = true
	}
	for m := range registered {
		if !values[m] {
			t.Errorf("activity %s has no name constant in payload/names.go", m)
		}
	}
}

// payloadNames reads the string constants of payload/names.go: every
// one is an activity name.
func payloadNames(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../payload/names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("payload.%s is not a string literal", id.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				names[id.Name] = v
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no name constants in payload/names.go")
	}
	return names
}
