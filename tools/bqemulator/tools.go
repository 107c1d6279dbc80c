//go:build tools

// Package bqemulator pins the BigQuery emulator the tests run against. It
// lives in a module of its own so its heavy dependencies (GoogleSQL) never
// enter ktpipe's build.
package bqemulator

import _ "github.com/goccy/bigquery-emulator/cmd/bigquery-emulator"
