package admission_test

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"kiln.dev/kiln/components/apiserver/admission"
)

func Example() {
	body := []byte(`{
		"metadata": {"name": "web", "namespace": "default"},
		"spec": {
			"selector": {"matchLabels": {"app": "web"}},
			"template": {
				"metadata": {"labels": {"app": "api"}},
				"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
			}
		}
	}`)
	obj := &appsv1.Deployment{}
	if err := json.Unmarshal(body, obj); err != nil {
		panic(err)
	}
	admission.Default(obj)
	fmt.Println(*obj.Spec.Replicas, obj.Spec.Strategy.RollingUpdate.MaxSurge, obj.Spec.Template.Spec.Containers[0].ImagePullPolicy)
	for _, err := range admission.Validate(obj, true) {
		fmt.Println(err)
	}
	// Output:
	// 1 25% Always
	// spec.template.metadata.labels: Invalid value: {"app":"api"}: `selector` does not match template `labels`
}
