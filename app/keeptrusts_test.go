package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/ktpipe/ktpipe/app"
	"github.com/ktpipe/ktpipe/config"
)

// The Keeptrusts client NewKeeptrusts builds carries the configured token
// and bounds: KEEPTRUSTS_MAX_RESPONSE_BYTES refuses a bigger response.
func TestNewKeeptrustsCarriesTokenAndBounds(t *testing.T) {
	const token = "tok-very-secret"
	big := `[{"id":"` + strings.Repeat("g", 1<<20) + `"}]` // just over 1 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, big)
	}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		max     string
		wantErr bool
	}{{"1048576", true}, {"4194304", false}} {
		var cfg config.Keeptrusts
		env := map[string]string{"KEEPTRUSTS_BASE_URL": srv.URL, "KEEPTRUSTS_API_TOKEN": token, "KEEPTRUSTS_MAX_RESPONSE_BYTES": tt.max}
		if err := config.Load(context.Background(), &cfg, envconfig.MapLookuper(env)); err != nil {
			t.Fatal(err)
		}
		api, err := app.NewKeeptrusts(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = api.Gateways(context.Background())
		if tt.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "KEEPTRUSTS_MAX_RESPONSE_BYTES")) {
			t.Errorf("max %s: err %v, want an error: %v", tt.max, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Error("the error carries the token")
		}
	}
}
