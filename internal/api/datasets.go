package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/slipway-ml/slipway/internal/dataset"
	"github.com/slipway-ml/slipway/internal/domain"
	"github.com/slipway-ml/slipway/internal/registry"
)

// DatasetPushResponse is the answer of POST /api/v1/datasets/{name}:
// Created is false (and the status 200) when the name already had a
// version with the same bytes and roles, which is returned.
type DatasetPushResponse struct {
	Dataset domain.Dataset `json:"dataset"`
	Created bool           `json:"created"`
}

// datasetFormat takes the format from ?format=, else from the
// Content-Type (text/csv, application/x-ndjson or application/jsonl).
func datasetFormat(r *http.Request) (dataset.Format, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		switch dataset.Format(f) {
		case dataset.FormatCSV, dataset.FormatJSONL:
			return dataset.Format(f), nil
		}
		return "", fmt.Errorf("format %q is not csv or jsonl: %w", f, domain.ErrInvalid)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "text/csv":
		return dataset.FormatCSV, nil
	case "application/x-ndjson", "application/jsonl", "application/jsonlines":
		return dataset.FormatJSONL, nil
	}
	return "", fmt.Errorf("say what the dataset is: ?format=csv or ?format=jsonl, or Content-Type text/csv or application/x-ndjson (got %q): %w", mt, domain.ErrInvalid)
}

// pushDataset streams the body (the file) to the registry, which spools,
// hashes and checks it before storing anything. Roles come in the query:
// label (required), segment (repeatable), sensitive, task (classification
// or regression; inferred from the labels when absent).
func (s *Server) pushDataset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := domain.ValidateName("dataset", name); err != nil {
		return err
	}
	format, err := datasetFormat(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "format", "label", "segment", "sensitive", "task":
		default:
			return fmt.Errorf("query parameter %q is not one of format, label, segment, sensitive, task: %w", k, domain.ErrInvalid)
		}
	}
	if r.ContentLength > s.maxDataset {
		return fmt.Errorf("dataset is %d bytes, larger than this server's limit of %d: %w", r.ContentLength, s.maxDataset, &http.MaxBytesError{Limit: s.maxDataset})
	}
	res, err := s.reg.PushDataset(r.Context(), actor(r), registry.DatasetPush{
		Name: name, Format: format, Body: http.MaxBytesReader(w, r.Body, s.maxDataset+1), MaxBytes: s.maxDataset,
		Roles: dataset.Roles{Label: q.Get("label"), Segments: q["segment"], Sensitive: q.Get("sensitive"), Task: domain.Task(q.Get("task"))},
	})
	var tooBig *registry.ErrDatasetTooLarge
	if errors.As(err, &tooBig) {
		return fmt.Errorf("%w: %w", err, &http.MaxBytesError{Limit: tooBig.Limit})
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/datasets/"+res.Dataset.Ref())
	status := http.StatusCreated
	if !res.Created {
		status = http.StatusOK
	}
	writeJSON(w, status, DatasetPushResponse{Dataset: res.Dataset, Created: res.Created})
	return nil
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ds, next, err := s.reg.ListDatasets(r.Context(), strings.TrimSpace(r.URL.Query().Get("name")), p)
	if err != nil {
		return err
	}
	writeList(w, ds, next)
	return nil
}

// getDataset answers for NAME (the latest version) or NAME@N.
func (s *Server) getDataset(w http.ResponseWriter, r *http.Request) error {
	d, err := s.reg.GetDataset(r.Context(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
