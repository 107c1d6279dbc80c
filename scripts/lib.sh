# Shared settings for the project's scripts: where built tools are cached.
# Sourced, not run.
KTPIPE_CACHE=${KTPIPE_CACHE:-$HOME/.cache/ktpipe}
KTPIPE_BIN=$KTPIPE_CACHE/bin
TEMPORAL_CLI_VERSION=v1.5.1
BQEMULATOR_VERSION=v0.8.1
TEMPORAL_BIN=$KTPIPE_BIN/temporal-$TEMPORAL_CLI_VERSION
BQEMULATOR_BIN=$KTPIPE_BIN/bigquery-emulator-$BQEMULATOR_VERSION
mkdir -p "$KTPIPE_BIN"
