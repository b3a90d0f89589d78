package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/notify"
	"github.com/slipway-ml/slipway/internal/store"
)

// webhookRoutes are the webhook endpoints; all need admin: a webhook
// sends slipway's events, and its URL may hold a credential.
func (s *Server) webhookRoutes() []route {
	return []route{
		{"POST /api/v1/webhooks", domain.RoleAdmin, s.createWebhook},
		{"GET /api/v1/webhooks", domain.RoleAdmin, s.listWebhooks},
		{"GET /api/v1/webhooks/{id}", domain.RoleAdmin, s.getWebhook},
		{"DELETE /api/v1/webhooks/{id}", domain.RoleAdmin, s.deleteWebhook},
		{"POST /api/v1/webhooks/{id}/test", domain.RoleAdmin, s.testWebhook},
		{"GET /api/v1/webhooks/{id}/deliveries", domain.RoleAdmin, s.listDeliveries},
		{"GET /api/v1/webhook-deliveries", domain.RoleAdmin, s.listDeliveries},
		{"GET /api/v1/webhook-deliveries/{delivery}", domain.RoleAdmin, s.getDelivery},
	}
}

// WebhookRequest is the body of POST /api/v1/webhooks. Events are event
// types, families ("promotion.*") or "*". An empty Secret asks the server
// to generate one.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret,omitempty"`
}

// WebhookResponse carries a new webhook's signing secret, shown this once.
type WebhookResponse struct {
	domain.Webhook
	Secret string `json:"secret"`
}

func (s *Server) webhookService() (*notify.Service, error) {
	if s.webhooks == nil {
		return nil, fmt.Errorf("this server has no webhooks configured: %w", domain.ErrUnavailable)
	}
	return s.webhooks, nil
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	var req WebhookRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	hook, err := svc.Add(r.Context(), actor(r), notify.NewWebhook{URL: req.URL, Events: req.Events, Secret: req.Secret})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, WebhookResponse{Webhook: hook, Secret: hook.Secret})
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	hooks, next, err := svc.List(r.Context(), p)
	if err != nil {
		return err
	}
	writeList(w, hooks, next)
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	hook, err := svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hook)
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	hook, err := svc.Remove(r.Context(), actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hook)
	return nil
}

// testWebhook queues a ping and answers 202 with the pending delivery;
// GET /api/v1/webhook-deliveries/{id} follows it.
func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	d, err := svc.Test(r.Context(), actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/webhook-deliveries/"+strconv.FormatInt(d.ID, 10))
	writeJSON(w, http.StatusAccepted, d)
	return nil
}

// listDeliveries lists deliveries newest first, of one webhook under
// /webhooks/{id}/deliveries, optionally of one status (?status=).
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	f := store.DeliveryFilter{WebhookID: r.PathValue("id")}
	if st := r.URL.Query().Get("status"); st != "" {
		if f.Status, err = domain.ParseDeliveryStatus(st); err != nil {
			return err
		}
	}
	ds, next, err := svc.Deliveries(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeList(w, ds, next)
	return nil
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.webhookService()
	if err != nil {
		return err
	}
	raw := r.PathValue("delivery")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return fmt.Errorf("delivery id %q must be a number from 1: %w", truncateID(raw), domain.ErrInvalid)
	}
	d, err := svc.Delivery(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func truncateID(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
