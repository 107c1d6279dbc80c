# ktpipe's commands in one image: worker (default), ktpipe (the starter CLI)
# and ktsim (the simulator, for the compose demo).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/worker ./worker && \
    CGO_ENABLED=0 go build -o /out/ktpipe ./starter && \
    CGO_ENABLED=0 go build -o /out/ktsim ./cmd/ktsim

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/worker"]
