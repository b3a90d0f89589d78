package evalrun

import (
	"fmt"
	"slices"
	"strings"

	"github.com/slipway-ml/slipway/internal/domain"
)

// matchFeatures decides which dataset columns feed the model, in the
// model's input order, before any row runs:
//
//   - a model that names its features (XGBoost JSON carries
//     feature_names; slipway's runtimes publish them in the OIP metadata)
//     reads each from the dataset column of that name. Every name must be
//     a column (else the missing ones are named), and every column must be
//     a feature or have a role — label, segment, sensitive — (else the
//     extra ones are named). A role column the model names is a feature
//     too; the label never is.
//   - a model that declares only its input width gets the columns without
//     a role, in the file's order, and their count must be that width.
//   - a model that declares neither gets those columns unchecked.
//
// Without names, column order matters, and a JSON Lines file has none, so
// it must be a CSV.
func matchFeatures(d domain.Dataset, in inputShape) (domain.FeatureMatch, error) {
	roles := d.RoleColumns()
	has := make(map[string]bool, len(d.Columns))
	var free []string
	for _, c := range d.Columns {
		has[c.Name] = true
		if !slices.Contains(roles, c.Name) {
			free = append(free, c.Name)
		}
	}
	if in.names != nil {
		if slices.Contains(in.names, d.Label) {
			return domain.FeatureMatch{}, fmt.Errorf("the model takes the dataset's label column %q as a feature; an evaluation cannot show a model its answer: %w", d.Label, domain.ErrInvalid)
		}
		var missing, extra []string
		for _, n := range in.names {
			if !has[n] {
				missing = append(missing, n)
			}
		}
		for _, c := range free {
			if !slices.Contains(in.names, c) {
				extra = append(extra, c)
			}
		}
		if len(missing) > 0 || len(extra) > 0 {
			var parts []string
			if len(missing) > 0 {
				parts = append(parts, fmt.Sprintf("missing columns %s", list(missing)))
			}
			if len(extra) > 0 {
				parts = append(parts, fmt.Sprintf("extra columns %s (neither features nor label, segment or sensitive)", list(extra)))
			}
			return domain.FeatureMatch{}, fmt.Errorf("dataset %s does not match the %d features the model names: %s: %w",
				d.Ref(), len(in.names), strings.Join(parts, "; "), domain.ErrInvalid)
		}
		return domain.FeatureMatch{Rule: domain.MatchByName, Columns: slices.Clone(in.names)}, nil
	}
	if d.Format != "csv" {
		return domain.FeatureMatch{}, fmt.Errorf("the model does not name its features, so columns are matched by position, and a %s dataset has no column order; push the dataset as CSV in the model's feature order: %w", d.Format, domain.ErrInvalid)
	}
	if len(free) == 0 {
		return domain.FeatureMatch{}, fmt.Errorf("dataset %s has no columns besides its label, segments and sensitive column: %w", d.Ref(), domain.ErrInvalid)
	}
	if in.width == 0 {
		return domain.FeatureMatch{Rule: domain.MatchUnchecked, Columns: free}, nil
	}
	if len(free) != in.width {
		return domain.FeatureMatch{}, fmt.Errorf("the model takes %d features and does not name them; dataset %s has %d columns besides its label, segments and sensitive column (%s): %w",
			in.width, d.Ref(), len(free), list(free), domain.ErrInvalid)
	}
	return domain.FeatureMatch{Rule: domain.MatchByCount, Columns: free}, nil
}

// list quotes up to 20 names.
func list(names []string) string {
	q := make([]string, 0, min(len(names), 21))
	for i, n := range names {
		if i == 20 {
			q = append(q, fmt.Sprintf("… %d more", len(names)-20))
			break
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return "[" + strings.Join(q, ", ") + "]"
}
