package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/api/googleapi"

	"github.com/ktpipe/ktpipe/keeptrusts"
	"github.com/ktpipe/ktpipe/payload"
	"github.com/ktpipe/ktpipe/staging"
	"github.com/ktpipe/ktpipe/warehouse"
)

// classify turns an error into what Temporal should do with it: wait for
// Retry-After, retry with backoff (5xx, 429, network), or stop (the
// request itself is wrong).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + err.Error()
	var ae *keeptrusts.APIError
	var se *warehouse.SchemaError
	var me *staging.MalformedError
	var ce *keeptrusts.ChecksumError
	var ke *staging.KeyError
	switch {
	case errors.As(err, &ke), errors.Is(err, warehouse.ErrTooManyUsers), errors.Is(err, warehouse.ErrTooManyFormerGateways):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeBadInput, err)
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		return temporal.NewApplicationErrorWithOptions(msg, payload.ErrTypeRateLimited, temporal.ApplicationErrorOptions{
			NextRetryDelay: max(ae.RetryAfter, time.Second), Cause: err})
	case errors.As(err, &ae) && ae.Code == "export_expired":
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeExpired, err)
	case errors.As(err, &ae) && (ae.Code == "cursor_expired" || ae.Code == "invalid_cursor"):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeCursorRejected, err)
	case errors.As(err, &ae) && !ae.Retryable(), keeptrusts.Untrusted(err):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeAPI, err)
	case errors.As(err, &se):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeSchema, err)
	case errors.As(err, &me):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeMalformed, err)
	case errors.As(err, &ce):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeChecksum, err)
	case googleRejected(err):
		return temporal.NewNonRetryableApplicationError(msg, payload.ErrTypeBigQuery, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// googleRejected reports whether BigQuery or Cloud Storage refused the
// request itself: HTTP 400, 403 or 404, or a job that failed for such a
// reason. Rate and quota limits (403 rateLimitExceeded) and backend
// errors are transient. See
// https://cloud.google.com/bigquery/docs/error-messages.
func googleRejected(err error) bool {
	transient := map[string]bool{"rateLimitExceeded": true, "quotaExceeded": true, "backendError": true,
		"internalError": true, "jobBackendError": true, "jobInternalError": true, "timeout": true, "stopped": true}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code != http.StatusBadRequest && ge.Code != http.StatusForbidden && ge.Code != http.StatusNotFound {
			return false
		}
		if bodyCutShort(ge.Message) {
			return false
		}
		for _, e := range ge.Errors {
			if transient[e.Reason] {
				return false
			}
		}
		return true
	}
	var be *bigquery.Error
	if errors.As(err, &be) {
		switch be.Reason {
		case "invalidQuery", "invalid", "notFound", "accessDenied", "billingNotEnabled", "responseTooLarge":
			return true
		}
	}
	return false
}

// bodyCutShort reports whether a 400 says the request did not arrive
// whole (the server timed out reading it, or it ended early) rather than
// that it was wrong. The emulator answers 400 to an upload it stopped
// reading on a busy machine; sent again, the same request succeeds.
func bodyCutShort(msg string) bool {
	return strings.Contains(msg, "i/o timeout") || strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "unexpected EOF")
}

// bigQueryTries is how many attempts an activity makes before a BigQuery
// rejection is final. Not one: the emulator answers 400 to some races
// that heal (a job id another attempt just used), and a table dropped by
// a concurrent attempt is re-created by the retry. Three attempts cost a
// few seconds, not the hours a retry-forever would.
const bigQueryTries = 3

// classifyWarehouse is classify for warehouse activities: a BigQuery
// rejection is retried until the activity's bigQueryTries-th attempt.
func classifyWarehouse(ctx context.Context, op string, err error) error {
	err = classify(op, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == payload.ErrTypeBigQuery && activity.GetInfo(ctx).Attempt < bigQueryTries {
		return temporal.NewApplicationErrorWithCause(appErr.Message(), payload.ErrTypeBigQuery, appErr.Unwrap())
	}
	return err
}
