package control

import (
	"context"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"

	"github.com/ktpipe/ktpipe/config"
)

// dialBigQuery mirrors app.DialBigQuery; control cannot import app (app
// builds workers, control only steers them).
func dialBigQuery(ctx context.Context, cfg config.BigQuery) (*bigquery.Client, error) {
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint), option.WithoutAuthentication())
	}
	return bigquery.NewClient(ctx, cfg.Project, opts...)
}
