// Command healthcheck probes an HTTP URL for docker-compose health checks
// in ktpipe's image, which has no shell, curl or wget (distroless): it
// exits 0 when the server answers with a status below 500 within 3 s, 1
// otherwise.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL")
		os.Exit(2)
	}
	os.Exit(probe(os.Args[1], 3*time.Second))
}

func probe(url string, timeout time.Duration) int {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		fmt.Fprintln(os.Stderr, "healthcheck:", url, resp.Status)
		return 1
	}
	return 0
}
