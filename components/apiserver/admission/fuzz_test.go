package admission

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzValidate feeds request bodies into a Pod and a Deployment, as the
// apiserver decodes them, and checks that defaulting and validating them
// (as a create and as an update of the valid fixture) never panics and
// that defaulting is idempotent.
func FuzzValidate(f *testing.F) {
	for _, obj := range []runtime.Object{validPod(), validDeployment()} {
		b, err := json.Marshal(obj)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`,
		`{"metadata":{"name":"x"},"spec":{"containers":[{}]}}`,
		`{"spec":{"containers":[{"name":"a","image":"b","ports":[{"containerPort":-1,"hostPort":70000}],"livenessProbe":{"httpGet":{"port":"x"},"exec":{}}}],"volumes":[{"name":"v","secret":{},"hostPath":{}}]}}`,
		`{"spec":{"replicas":-1,"selector":{"matchExpressions":[{"key":"","operator":"In"}]},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"999999999999999999999%","maxUnavailable":-1}},"template":{"metadata":{"labels":{"a":"b"}}}}}`,
		`{"spec":{"initContainers":[{"restartPolicy":"Always","startupProbe":{"grpc":{"port":0}},"lifecycle":{"preStop":{"sleep":{"seconds":-5}}}}],"dnsPolicy":"None","tolerations":[{"operator":"Lt"}]}}`,
		`{"spec":{"containers":[{"resources":{"limits":{"example.com/gpu":"0.5"},"requests":{"cpu":"-1","hugepages-2Mi":"1Gi"}},"env":[{"valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['']"}}}]}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, fresh := range []func() runtime.Object{
			func() runtime.Object { return &corev1.Pod{} },
			func() runtime.Object { return &appsv1.Deployment{} },
		} {
			obj := fresh()
			if err := json.Unmarshal(body, obj); err != nil {
				continue
			}
			Default(obj)
			_ = Validate(obj, true)
			_ = Validate(obj, false)

			again := obj.DeepCopyObject()
			Default(again)
			if !semanticEqual(again, obj) {
				t.Fatalf("Default is not idempotent on %s", body)
			}

			var old runtime.Object
			switch obj.(type) {
			case *corev1.Pod:
				old = validPod()
			default:
				old = validDeployment()
			}
			Default(old)
			_ = ValidateUpdate(obj, old, true)
			_ = ValidateUpdate(old, obj, true)
		}
	})
}
