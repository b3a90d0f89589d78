package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-ml/slipway/internal/audit"
	"github.com/slipway-ml/slipway/internal/clock"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/runtime/egress"
	"github.com/slipway-ml/slipway/internal/store"
)

// ServiceConfig wires a Service.
type ServiceConfig struct {
	Store store.Store
	Clock clock.Clock
	// Policy refuses, when a webhook is added, a URL whose literal address
	// could never be reached (nil: loopback only). Host names are checked
	// when each delivery dials.
	Policy *egress.Policy
	// Dispatcher, when set, is woken when a test ping is queued.
	Dispatcher *Dispatcher
}

// Service manages webhooks (an admin's job) and reads their deliveries;
// every change is audited in its own transaction.
type Service struct {
	store  store.Store
	clock  clock.Clock
	policy *egress.Policy
	disp   *Dispatcher
}

// NewService returns the webhook service.
func NewService(c ServiceConfig) *Service {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	return &Service{store: c.Store, clock: c.Clock, policy: c.Policy, disp: c.Dispatcher}
}

// NewWebhook is a webhook to add. An empty Secret asks for a generated one.
type NewWebhook struct {
	URL    string
	Events []string
	Secret string
}

// Secret bounds. A shorter secret is too easy to guess; printable ASCII
// keeps it the same bytes in every shell, file and language.
const (
	MinSecretBytes = 16
	MaxSecretBytes = 512
	maxURLBytes    = 2048
)

var webhookIDPattern = regexp.MustCompile(`^wh_[0-9a-f]{16}$`)

func subject(id string) string { return "webhook/" + id }

// Add validates and stores a webhook. The result carries its secret: the
// caller shows it once; nothing shows it again.
func (s *Service) Add(ctx context.Context, actor string, in NewWebhook) (domain.Webhook, error) {
	u, err := s.checkURL(in.URL)
	if err != nil {
		return domain.Webhook{}, err
	}
	events, err := ParsePatterns(in.Events)
	if err != nil {
		return domain.Webhook{}, err
	}
	secret := in.Secret
	if secret == "" {
		secret = newSecret()
	} else if err := checkSecret(secret); err != nil {
		return domain.Webhook{}, err
	}
	w := domain.Webhook{ID: newWebhookID(), URL: u, Events: events, Secret: secret, CreatedBy: actor, CreatedAt: s.clock.Now()}
	err = s.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.CreateWebhook(ctx, w); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{
			Time: w.CreatedAt, Actor: actor, Action: "webhook.create", Subject: subject(w.ID), After: auditDoc(w),
		})
		return err
	})
	if err != nil {
		return domain.Webhook{}, err
	}
	return w, nil
}

// Get returns one webhook (its secret is never serialised).
func (s *Service) Get(ctx context.Context, id string) (domain.Webhook, error) {
	if err := checkID(id); err != nil {
		return domain.Webhook{}, err
	}
	return s.store.GetWebhook(ctx, id)
}

// List returns one page of webhooks in ID order.
func (s *Service) List(ctx context.Context, p store.Page) ([]domain.Webhook, string, error) {
	return s.store.ListWebhooks(ctx, p)
}

// Remove deletes a webhook and its deliveries, pending ones included: they
// are never sent.
func (s *Service) Remove(ctx context.Context, actor, id string) (domain.Webhook, error) {
	if err := checkID(id); err != nil {
		return domain.Webhook{}, err
	}
	var w domain.Webhook
	err := s.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if w, err = tx.GetWebhook(ctx, id); err != nil {
			return err
		}
		if err := tx.DeleteWebhook(ctx, id); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: s.clock.Now(), Actor: actor, Action: "webhook.delete", Subject: subject(id), Before: auditDoc(w),
		})
		return err
	})
	if err != nil {
		return domain.Webhook{}, err
	}
	return w, nil
}

// PingData is the payload of a webhook.ping event.
type PingData struct {
	Webhook string   `json:"webhook"`
	Events  []string `json:"events"`
	SentBy  string   `json:"sent_by"`
}

// Test queues a webhook.ping event for one webhook, whatever it subscribes
// to, through the same outbox and dispatcher as every event, and returns
// the pending delivery to follow.
func (s *Service) Test(ctx context.Context, actor, id string) (domain.Delivery, error) {
	if err := checkID(id); err != nil {
		return domain.Delivery{}, err
	}
	var out domain.Delivery
	err := s.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		w, err := tx.GetWebhook(ctx, id)
		if err != nil {
			return err
		}
		d, err := newDelivery(Event{Type: TypePing, Subject: subject(id), Time: s.clock.Now(),
			Data: PingData{Webhook: id, Events: w.Events, SentBy: actor}})
		if err != nil {
			return err
		}
		d.WebhookID = id
		if out, err = tx.CreateDelivery(ctx, d); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Entry{
			Time: d.CreatedAt, Actor: actor, Action: "webhook.test", Subject: subject(id),
			After: audit.Document(map[string]any{"delivery": out.ID, "event_id": out.EventID}),
		})
		return err
	})
	if err != nil {
		return domain.Delivery{}, err
	}
	if s.disp != nil {
		s.disp.Kick()
	}
	return out, nil
}

// Deliveries lists deliveries newest first, of one webhook when
// f.WebhookID is set (ErrNotFound when it does not exist).
func (s *Service) Deliveries(ctx context.Context, f store.DeliveryFilter, p store.Page) ([]domain.Delivery, string, error) {
	if f.WebhookID != "" {
		if _, err := s.Get(ctx, f.WebhookID); err != nil {
			return nil, "", err
		}
	}
	if f.Status != "" {
		if _, err := domain.ParseDeliveryStatus(string(f.Status)); err != nil {
			return nil, "", err
		}
	}
	return s.store.ListDeliveries(ctx, f, p)
}

// Delivery returns one delivery.
func (s *Service) Delivery(ctx context.Context, id int64) (domain.Delivery, error) {
	if id < 1 {
		return domain.Delivery{}, fmt.Errorf("delivery id %d must be a number from 1: %w", id, domain.ErrInvalid)
	}
	return s.store.GetDelivery(ctx, id)
}

// checkURL accepts an absolute http or https URL with a host and no user
// name, password or fragment, whose host (when a literal address) the
// egress policy allows. A query is allowed: some receivers take their
// token there. It returns the URL in its canonical form.
func (s *Service) checkURL(raw string) (string, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("webhook url %q: %s: %w", truncate(raw, 200), fmt.Sprintf(format, a...), domain.ErrInvalid)
	}
	if raw == "" {
		return "", fmt.Errorf("webhook url is empty; give the http(s) URL events are POSTed to: %w", domain.ErrInvalid)
	}
	if len(raw) > maxURLBytes {
		return "", bad("longer than %d bytes", maxURLBytes)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
		return "", bad("contains spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("does not parse (%v)", unwrapURLError(err))
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return "", bad("has no scheme; write http:// or https://")
	default:
		return "", bad("scheme %q is not allowed; only http and https are", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", bad("has no host")
	}
	if u.User != nil {
		return "", bad("carries a user name or password; receivers authenticate deliveries by their signature")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", bad("has a fragment (#…), which is never sent")
	}
	// The egress check of model server URLs refuses queries; the query
	// plays no part in where a request goes.
	base := *u
	base.RawQuery, base.ForceQuery = "", false
	if _, err := s.policy.CheckURL(base.String()); err != nil {
		return "", fmt.Errorf("webhook %w", err)
	}
	return u.String(), nil
}

func checkSecret(secret string) error {
	if len(secret) < MinSecretBytes || len(secret) > MaxSecretBytes || !printable(secret) {
		return fmt.Errorf("webhook secret must be %d to %d printable ASCII characters without spaces (it is %d bytes): %w",
			MinSecretBytes, MaxSecretBytes, len(secret), domain.ErrInvalid)
	}
	return nil
}

func checkID(id string) error {
	if !webhookIDPattern.MatchString(id) {
		return fmt.Errorf("webhook id %q is not wh_ and 16 hex digits (see slipway webhook list): %w", truncate(id, 40), domain.ErrInvalid)
	}
	return nil
}

func newWebhookID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wh_" + hex.EncodeToString(b[:])
}

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// auditView is what the audit log keeps of a webhook. The log is readable
// by every role, and webhook URLs often embed a credential in their path
// or query (Slack, Discord, Teams), so it keeps the scheme and host and a
// digest of the whole URL: enough to tell which URL it was, not to use it.
type auditView struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	URLSHA256 string    `json:"url_sha256"`
	Events    []string  `json:"events"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func auditDoc(w domain.Webhook) json.RawMessage {
	v := auditView{ID: w.ID, Events: w.Events, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt}
	if u, err := url.Parse(w.URL); err == nil {
		v.Endpoint = u.Scheme + "://" + u.Host
	}
	sum := sha256.Sum256([]byte(w.URL))
	v.URLSHA256 = hex.EncodeToString(sum[:])
	return audit.Document(v)
}
