# ktpipe's commands in one image: worker (default), ktpipe (the starter CLI),
# ktsim (the simulator, for the compose demo) and healthcheck (compose's
# health checks: the runtime image has no shell or HTTP client).

# build compiles the four commands, static, for the distroless image below.
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/worker ./worker && \
    CGO_ENABLED=0 go build -trimpath -o /out/ktpipe ./starter && \
    CGO_ENABLED=0 go build -trimpath -o /out/ktsim ./cmd/ktsim && \
    CGO_ENABLED=0 go build -trimpath -o /out/healthcheck ./cmd/healthcheck && \
    mkdir -p /staging

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Staging directory for the named volume: owned by the nonroot user (65532).
COPY --from=build --chown=65532:65532 /staging /var/lib/ktpipe/staging
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/worker"]
