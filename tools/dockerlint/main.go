// Command dockerlint lints Dockerfiles without Docker: it runs BuildKit's
// own build checks (the rules of `docker build --check`, experimental ones
// included) on each file given, and adds one of ktpipe's: every base image
// is pinned to a version tag or digest, never :latest or untagged. With
// -context DIR it also checks the build context DIR/.dockerignore leaves:
// source only, no VCS data, executables, test binaries or files over 1 MiB.
// Any finding exits 1.
//
// A module of its own, so BuildKit stays out of ktpipe's go.mod; built
// once by scripts/install-tools.sh.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	context := flag.String("context", "", "also check the build context in this directory against its .dockerignore")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: dockerlint [-context DIR] Dockerfile...")
		os.Exit(2)
	}
	bad := 0
	if *context != "" {
		findings, err := lintContext(*context)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dockerlint:", err)
			os.Exit(2)
		}
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, f)
		}
		bad += len(findings)
	}
	for _, path := range flag.Args() {
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

// maxContextFile is the largest file the build context may hold: source
// is small; anything bigger is data or a build output.
const maxContextFile = 1 << 20

// lintContext walks the build context as Docker would send it (the
// .dockerignore applied with Docker's own matcher) and names what is not
// source.
func lintContext(dir string) ([]string, error) {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	var out []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		ignored, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if ignored {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case rel == ".git" || strings.HasPrefix(rel, ".git/"):
			out = append(out, "build context: "+rel+": VCS data; add .git to .dockerignore")
			if d.IsDir() {
				return filepath.SkipDir
			}
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > maxContextFile {
				out = append(out, fmt.Sprintf("build context: %s: %d bytes, not source; ignore it", rel, info.Size()))
			} else if executable(path) || strings.HasSuffix(rel, ".test") {
				out = append(out, "build context: "+rel+": a compiled binary; ignore it")
			}
		}
		return nil
	})
	return out, err
}

// executable reports whether a file starts like an ELF, Mach-O or PE binary.
func executable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false
	}
	switch string(magic[:]) {
	case "\x7fELF", "\xcf\xfa\xed\xfe", "\xce\xfa\xed\xfe", "\xfe\xed\xfa\xcf", "\xfe\xed\xfa\xce":
		return true
	}
	return magic[0] == 'M' && magic[1] == 'Z'
}
