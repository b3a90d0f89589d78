package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/slipway-ml/slipway/internal/api"
	"github.com/slipway-ml/slipway/internal/apiclient"
	"github.com/slipway-ml/slipway/internal/domain"
)

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "version", Short: "Push, inspect, pull and verify model versions"}
	cmd.AddCommand(newVersionPushCmd(g), newVersionListCmd(g), newVersionGetCmd(g),
		newVersionPullCmd(g), newVersionVerifyCmd(g), newVersionSetStateCmd(g), newVersionLabelCmd(g))
	return cmd
}

func versionTable(vs ...domain.Version) func() table {
	return func() table {
		t := table{header: []string{"MODEL", "VERSION", "FORMAT", "STATE", "ALIASES", "DIGEST", "SIZE", "LABELS", "CREATED BY", "CREATED"}}
		for _, v := range vs {
			t.rows = append(t.rows, []string{v.Model, strconv.Itoa(v.Number), string(v.Format), string(v.State),
				strings.Join(v.Aliases, ","), shortDigest(v.ArtifactDigest), humanBytes(v.ArtifactSize),
				kv(v.Labels), v.CreatedBy, ago(v.CreatedAt)})
		}
		return t
	}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	if d == "" {
		return "-"
	}
	return d
}

type pushFlags struct {
	format, runtimeFile, datasetURI, datasetSHA, commit, framework string
	sets, metrics, params, deps, labels                            []string
	parent                                                         int
}

func newVersionPushCmd(g *globals) *cobra.Command {
	var f pushFlags
	cmd := &cobra.Command{
		Use:   "push MODEL [PATH]",
		Short: "Upload an artifact (a file or a directory) and register it as the model's next version",
		Long: `Upload an artifact and register it as the next version of MODEL.

PATH is a file or a directory; every file is hashed (sha256), files the
server already stores are skipped, the rest are streamed, and the version
is created only after all of them are durable. Versions of format
external or openai may have no PATH.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			// Fail before hashing gigabytes when the model does not exist.
			if _, err := c.GetModel(cmd.Context(), args[0]); err != nil {
				return err
			}
			if len(args) == 2 {
				m, err := uploadArtifact(cmd.Context(), c, args[1], g.stderr)
				if err != nil {
					return err
				}
				req.Manifest = &m
			}
			v, err := c.PushVersion(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return g.emit(v, versionTable(v))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "", "artifact format: xgboost-json, process, external or openai")
	fl.StringArrayVar(&f.sets, "set", nil, "runtime option key=value (repeatable)")
	fl.StringVar(&f.runtimeFile, "runtime-config", "", "YAML file of runtime options (a map of key: value)")
	fl.StringArrayVar(&f.metrics, "metric", nil, "registration metric name=number (repeatable)")
	fl.StringVar(&f.datasetURI, "dataset", "", "URI of the training dataset")
	fl.StringVar(&f.datasetSHA, "dataset-sha256", "", "sha256 of the training dataset")
	fl.StringVar(&f.commit, "commit", "", "code commit that trained the model")
	fl.StringArrayVar(&f.params, "param", nil, "training parameter key=value (repeatable)")
	fl.StringVar(&f.framework, "framework", "", "training framework and version, e.g. xgboost==2.0.3")
	fl.StringArrayVar(&f.deps, "dep", nil, "dependency name=version (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "label key=value (repeatable)")
	fl.IntVar(&f.parent, "parent", 0, "version of the same model this one derives from")
	_ = cmd.MarkFlagRequired("format")
	g.addOutput(cmd)
	return cmd
}

func (f pushFlags) request() (api.VersionRequest, error) {
	var req api.VersionRequest
	format, err := domain.ParseFormat(f.format)
	if err != nil {
		return req, err
	}
	req.Format = format
	if f.runtimeFile != "" {
		b, err := os.ReadFile(f.runtimeFile)
		if err != nil {
			return req, fmt.Errorf("--runtime-config: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &req.RuntimeConfig); err != nil {
			return req, fmt.Errorf("--runtime-config %s must be a YAML map of option: value: %w", f.runtimeFile, err)
		}
	}
	sets, err := parseKV("set", f.sets)
	if err != nil {
		return req, err
	}
	for k, v := range sets {
		if req.RuntimeConfig == nil {
			req.RuntimeConfig = map[string]string{}
		}
		req.RuntimeConfig[k] = v
	}
	if req.Metrics, err = parseMetrics(f.metrics); err != nil {
		return req, err
	}
	if req.Labels, err = parseKV("label", f.labels); err != nil {
		return req, err
	}
	req.Lineage = domain.Lineage{DatasetURI: f.datasetURI, DatasetSHA256: f.datasetSHA, CodeCommit: f.commit,
		Framework: f.framework, ParentVersion: f.parent}
	if req.Lineage.Params, err = parseKV("param", f.params); err != nil {
		return req, err
	}
	if req.Lineage.Dependencies, err = parseKV("dep", f.deps); err != nil {
		return req, err
	}
	if f.parent < 0 {
		return req, fmt.Errorf("--parent %d must be a version number", f.parent)
	}
	return req, req.Lineage.Validate()
}

func newVersionListCmd(g *globals) *cobra.Command {
	var p apiclient.Page
	var f apiclient.VersionFilter
	var labels []string
	cmd := &cobra.Command{
		Use:   "list MODEL",
		Short: "List a model's versions, filtered by label, state or alias",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.Labels, err = parseKV("label", labels); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListVersions(cmd.Context(), args[0], f, p)
			if err != nil {
				return err
			}
			g.moreHint(l.NextCursor)
			return g.emit(l, versionTable(l.Items...))
		},
	}
	cmd.Flags().StringVar(&f.State, "state", "", "only versions in this lifecycle state")
	cmd.Flags().StringVar(&f.Alias, "alias", "", "only the version this alias points at")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "only versions with this label key=value (repeatable; all must match)")
	pageFlags(cmd, &p)
	g.addOutput(cmd)
	return cmd
}

func newVersionGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get MODEL VERSION|@alias",
		Short: "Show one version with its lineage and metrics",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.GetVersion(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if g.output == "table" || g.output == "" {
				return printVersion(g, v)
			}
			return g.emit(v, nil)
		},
	}
	g.addOutput(cmd)
	return cmd
}

func printVersion(g *globals, v domain.Version) error {
	t := table{header: []string{"FIELD", "VALUE"}}
	add := func(k, val string) {
		if val != "" {
			t.rows = append(t.rows, []string{k, val})
		}
	}
	add("model", v.Model)
	add("version", strconv.Itoa(v.Number))
	add("format", string(v.Format))
	add("state", string(v.State))
	add("aliases", strings.Join(v.Aliases, ","))
	add("artifact digest", v.ArtifactDigest)
	if v.ArtifactDigest != "" {
		add("artifact", fmt.Sprintf("%d files, %s", v.ArtifactFiles, humanBytes(v.ArtifactSize)))
	}
	add("runtime config", kv(v.RuntimeConfig))
	add("dataset", v.Lineage.DatasetURI)
	add("dataset sha256", v.Lineage.DatasetSHA256)
	add("code commit", v.Lineage.CodeCommit)
	add("framework", v.Lineage.Framework)
	add("parameters", kv(v.Lineage.Params))
	add("dependencies", kv(v.Lineage.Dependencies))
	if v.Lineage.ParentVersion > 0 {
		add("parent version", strconv.Itoa(v.Lineage.ParentVersion))
	}
	metrics := map[string]string{}
	for k, m := range v.Metrics {
		metrics[k] = strconv.FormatFloat(m, 'g', -1, 64)
	}
	add("metrics", kv(metrics))
	add("labels", kv(v.Labels))
	add("created by", v.CreatedBy)
	add("created", ago(v.CreatedAt))
	return printTable(g.stdout, t)
}

func newVersionSetStateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set-state MODEL VERSION|@alias STATE",
		Short: "Move a version along its lifecycle (registered, staging, production, archived)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := domain.ParseState(args[2])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.SetState(cmd.Context(), args[0], args[1], s)
			if err != nil {
				return err
			}
			return g.emit(v, versionTable(v))
		},
	}
	g.addOutput(cmd)
	return cmd
}

func newVersionLabelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "label MODEL VERSION|@alias key=value... key-...",
		Short: "Set labels (key=value) or remove them (key-) on a version",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.LabelsRequest
			for _, a := range args[2:] {
				if k, ok := strings.CutSuffix(a, "-"); ok && !strings.Contains(a, "=") {
					req.Remove = append(req.Remove, k)
					continue
				}
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("label %q must be key=value to set or key- to remove", a)
				}
				if req.Set == nil {
					req.Set = map[string]string{}
				}
				req.Set[k] = v
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.SetLabels(cmd.Context(), args[0], args[1], req)
			if err != nil {
				return err
			}
			return g.emit(v, versionTable(v))
		},
	}
	g.addOutput(cmd)
	return cmd
}
