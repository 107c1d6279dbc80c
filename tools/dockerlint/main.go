// Command dockerlint lints Dockerfiles without Docker: it runs BuildKit's
// own build checks (the rules of `docker build --check`, experimental ones
// included) on each file given, and adds one of ktpipe's: every base image
// is pinned to a version tag or digest, never :latest or untagged. Any
// finding exits 1.
//
// A module of its own, so BuildKit stays out of ktpipe's go.mod; built
// once by scripts/install-tools.sh.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerlint Dockerfile...")
		os.Exit(2)
	}
	bad := 0
	for _, path := range os.Args[1:] {
		findings, err := lint(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dockerlint:", err)
			os.Exit(2)
		}
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, f)
		}
		bad += len(findings)
	}
	if bad > 0 {
		os.Exit(1)
	}
}

func lint(path string) ([]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []string
	for _, w := range res.Warnings {
		n := 0
		if w.Location != nil {
			n = w.Location.Start.Line
		}
		out = append(out, fmt.Sprintf("%s:%d: %s", path, n, w.Short))
	}
	lint := linter.New(&linter.Config{ExperimentalAll: true, Warn: func(rule, _, url, msg string, loc []parser.Range) {
		out = append(out, fmt.Sprintf("%s:%d: %s: %s (%s)", path, line(loc), rule, msg, url))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	names := map[string]bool{}
	for _, s := range stages {
		if s.Name != "" {
			names[strings.ToLower(s.Name)] = true
		}
	}
	for _, s := range stages {
		img := s.BaseName
		if names[strings.ToLower(img)] || img == "scratch" {
			continue
		}
		tag := ""
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			tag = img[i+1:]
		}
		if !strings.Contains(img, "@sha256:") && (tag == "" || tag == "latest") {
			out = append(out, fmt.Sprintf("%s:%d: UnpinnedBaseImage: %q: pin a version tag or digest", path, line(s.Location), img))
		}
	}
	return out, nil
}

func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}
