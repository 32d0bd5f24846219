// Command kstatus prints the kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) of
// Kubernetes objects: the status Flux's health checks (and kpt, and
// `kubectl wait`-style tooling built on cli-utils) compute for a resource.
//
// It reads JSON from stdin: one object, a List (`kind: ...List` with
// `items`), or several objects one after the other. For each object it prints
// one JSON line: {"kind","namespace","name","status","message"}.
//
// The test suite uses it to prove that CvmInstance conditions mean what Flux
// thinks they mean (tests/e2e/gitops.rs). Built and cached by
// hack/setup-tools.sh; never committed as a binary.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		// apimachinery's decoder: integers as int64, as unstructured expects.
		var raw map[string]interface{}
		if err := utiljson.Unmarshal(doc, &raw); err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		objs := []map[string]interface{}{raw}
		if items, ok := raw["items"].([]interface{}); ok {
			objs = objs[:0]
			for _, it := range items {
				if m, ok := it.(map[string]interface{}); ok {
					objs = append(objs, m)
				}
			}
		}
		for _, o := range objs {
			u := &unstructured.Unstructured{Object: o}
			res, err := status.Compute(u)
			if err != nil {
				return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			if err := enc.Encode(line{
				Kind:      u.GetKind(),
				Namespace: u.GetNamespace(),
				Name:      u.GetName(),
				Status:    res.Status.String(),
				Message:   res.Message,
			}); err != nil {
				return err
			}
		}
	}
}
