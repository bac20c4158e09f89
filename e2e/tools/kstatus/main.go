// Command kstatus prints the status that sigs.k8s.io/cli-utils' kstatus computes for each
// Kubernetes object it reads, so the tests can prove what Flux (whose health checks are
// kstatus) and `kubectl wait`-style tools conclude from Tollgate's status, with the library
// itself rather than a re-implementation of its rules.
//
// Input on stdin: JSON objects, one after another (one per line, as `kubectl get -o json`
// pieces, or pretty-printed), or a List of them. Output: one JSON line per object:
//
//	{"apiVersion":"tollgate.dev/v1alpha1","kind":"Canary","namespace":"ns","name":"app",
//	 "status":"InProgress","message":"step 1/5: ..."}
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

func compute(u *unstructured.Unstructured) (verdict, error) {
	result, err := status.Compute(u)
	if err != nil {
		return verdict{}, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return verdict{
		APIVersion: u.GetAPIVersion(),
		Kind:       u.GetKind(),
		Namespace:  u.GetNamespace(),
		Name:       u.GetName(),
		Status:     result.Status.String(),
		Message:    result.Message,
	}, nil
}

// objects decodes one JSON value into the objects it holds (a List holds its items). The
// unstructured JSON scheme keeps integers as int64, which kstatus' generation check needs.
func objects(raw []byte) ([]*unstructured.Unstructured, error) {
	decoded, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
	if err != nil {
		return nil, err
	}
	switch obj := decoded.(type) {
	case *unstructured.Unstructured:
		return []*unstructured.Unstructured{obj}, nil
	case *unstructured.UnstructuredList:
		items := make([]*unstructured.Unstructured, len(obj.Items))
		for i := range obj.Items {
			items[i] = &obj.Items[i]
		}
		return items, nil
	default:
		return nil, fmt.Errorf("unexpected object %T", decoded)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(bufio.NewReader(in))
	encoder := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		found, err := objects(raw)
		if err != nil {
			return err
		}
		for _, u := range found {
			v, err := compute(u)
			if err != nil {
				return err
			}
			if err := encoder.Encode(v); err != nil {
				return err
			}
		}
	}
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.json  (JSON objects or a List on stdin)")
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
