package gateway

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// A client that sends a whole oversize body while the server has already
// answered 413 and stopped reading still gets the 413, not a reset: the
// server lingers, dropping the rest, before it closes.
func TestServerOversizeBodyAnswerSurvivesTheRest(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge) // without reading the body
	}), ServerConfig{})
	body := bytes.Repeat([]byte("x"), 16<<20)
	for range 5 {
		resp, err := http.Post("http://"+addr+"/", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("the client got no answer: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	}
}
