package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/slipway-ml/slipway/internal/deployment"
	"github.com/slipway-ml/slipway/internal/metrics"
	"github.com/slipway-ml/slipway/internal/runtime"
)

// constUpstream answers every request on its connections with the same
// bytes, reading requests with a fixed buffer, so that it allocates
// nothing per request: what BenchmarkServeRemote counts is the gateway's.
func constUpstream(b *testing.B, answer string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(answer)) + "\r\n\r\n" + answer)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 16<<10)
				for {
					// Head, then a body of Content-Length bytes.
					n := -1
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if n > 0 {
						if _, err := br.Discard(n); err != nil {
							return
						}
					}
					if _, err := nc.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkServeRemote is one request through the gateway's own server
// and its HTTP/1.1 proxy path, from a keep-alive client connection to an
// upstream that allocates nothing: the gateway's whole cost per request,
// system calls included, as bench/gateway's wrk sees it (one connection
// at a time, so latency rather than throughput).
func BenchmarkServeRemote(b *testing.B) {
	for _, api := range []string{"oip", "openai"} {
		b.Run(api, func(b *testing.B) {
			proto, model, path, body, answer := runtime.ProtocolOIP, "fraud", "/v2/models/fraud/infer", inferBody, oipAnswer
			if api == "openai" {
				proto, model, path, body = runtime.ProtocolOpenAI, "chat", "/v1/chat/completions", openAIChat
				answer = `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`
			}
			u, _ := url.Parse("http://" + constUpstream(b, answer))
			rv := deployment.RouteVersion{Version: 1, Weight: 100, Endpoint: runtime.Endpoint{Protocol: proto, URL: u, Transport: &http.Transport{}}}
			src := &routeSource{}
			src.t.Store(deployment.NewTable(route(model, "production", rv)))
			g := New(Config{Routes: src, Metrics: metrics.New(nil, nil), Log: slog.New(slog.DiscardHandler)})
			defer g.CloseIdleConnections()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = g.Serve(ln) }()
			defer func() { _ = g.srv.Close() }()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			req := []byte("POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body)
			br := bufio.NewReaderSize(nc, 16<<10)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := nc.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
					b.Fatal(resp.StatusCode, err)
				}
			}
		})
	}
}
