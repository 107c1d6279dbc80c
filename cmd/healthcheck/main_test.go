package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
	defer srv.Close()
	if got := probe(srv.URL, time.Second); got != 0 {
		t.Errorf("200: exit %d", got)
	}
	code = http.StatusUnauthorized // up, just refusing an anonymous probe
	if got := probe(srv.URL, time.Second); got != 0 {
		t.Errorf("401: exit %d", got)
	}
	code = http.StatusServiceUnavailable
	if got := probe(srv.URL, time.Second); got != 1 {
		t.Errorf("503: exit %d", got)
	}
	srv.Close()
	if got := probe(srv.URL, time.Second); got != 1 {
		t.Errorf("closed: exit %d", got)
	}
}
