package resources

// Builtin returns every resource kiln serves, in the order discovery lists
// them: the core group first, then the named groups by kube-apiserver's group
// priority (ties broken by group name, as kube-apiserver's aggregated
// discovery does), then metrics.k8s.io (an aggregated API in kube), then
// gitops.kiln.dev. Within a group version resources are
// sorted by name, as kube-apiserver lists them.
//
// Each group is served at the one version kube-apiserver prefers; autoscaling
// also serves horizontalpodautoscalers at v1, after v2. Groups that have no
// stable version (internal.apiserver.k8s.io, lifecycle.k8s.io) are served at
// their newest version. extensions/v1beta1, which k8s.io/client-go still
// registers, is not served: kube-apiserver stopped serving it in v1.22 and its
// kinds are all served by apps, networking.k8s.io and policy.
//
// Every call returns a fresh slice that shares nothing with other calls, so
// callers may modify it.
func Builtin() []Resource {
	return []Resource{
		// Core group, /api/v1.
		{
			Version: "v1", Name: "bindings", Singular: "binding",
			Kind: "Binding", Namespaced: true,
			Verbs: createVerbs(),
		},
		{
			Version: "v1", Name: "componentstatuses", Singular: "componentstatus",
			Kind: "ComponentStatus", ListKind: "ComponentStatusList",
			ShortNames: []string{"cs"},
			Verbs:      []string{"get", "list"},
		},
		{
			Version: "v1", Name: "configmaps", Singular: "configmap",
			Kind: "ConfigMap", ListKind: "ConfigMapList", Namespaced: true,
			ShortNames: []string{"cm"},
			Verbs:      standardVerbs(),
		},
		{
			Version: "v1", Name: "endpoints", Singular: "endpoints",
			Kind: "Endpoints", ListKind: "EndpointsList", Namespaced: true,
			ShortNames: []string{"ep"},
			Verbs:      standardVerbs(),
		},
		{
			Version: "v1", Name: "events", Singular: "event",
			Kind: "Event", ListKind: "EventList", Namespaced: true,
			ShortNames: []string{"ev"},
			Verbs:      standardVerbs(),
		},
		{
			Version: "v1", Name: "limitranges", Singular: "limitrange",
			Kind: "LimitRange", ListKind: "LimitRangeList", Namespaced: true,
			ShortNames: []string{"limits"},
			Verbs:      standardVerbs(),
		},
		{
			Version: "v1", Name: "namespaces", Singular: "namespace",
			Kind: "Namespace", ListKind: "NamespaceList",
			ShortNames: []string{"ns"},
			Verbs:      noDeleteCollectionVerbs(),
			Subresources: []Subresource{
				{Name: "finalize", Version: "v1", Kind: "Namespace", Verbs: []string{"update"}},
				status("", "v1", "Namespace"),
			},
		},
		{
			Version: "v1", Name: "nodes", Singular: "node",
			Kind: "Node", ListKind: "NodeList",
			ShortNames: []string{"no"},
			Verbs:      standardVerbs(),
			Subresources: []Subresource{
				proxy("NodeProxyOptions"),
				status("", "v1", "Node"),
			},
		},
		{
			Version: "v1", Name: "persistentvolumeclaims", Singular: "persistentvolumeclaim",
			Kind: "PersistentVolumeClaim", ListKind: "PersistentVolumeClaimList", Namespaced: true,
			ShortNames:   []string{"pvc"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("", "v1", "PersistentVolumeClaim")},
		},
		{
			Version: "v1", Name: "persistentvolumes", Singular: "persistentvolume",
			Kind: "PersistentVolume", ListKind: "PersistentVolumeList",
			ShortNames:   []string{"pv"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("", "v1", "PersistentVolume")},
		},
		{
			Version: "v1", Name: "pods", Singular: "pod",
			Kind: "Pod", ListKind: "PodList", Namespaced: true,
			ShortNames: []string{"po"},
			Categories: []string{"all"},
			Verbs:      standardVerbs(),
			Subresources: []Subresource{
				stream("attach", "PodAttachOptions"),
				{Name: "binding", Version: "v1", Kind: "Binding", Verbs: createVerbs()},
				{Name: "ephemeralcontainers", Version: "v1", Kind: "Pod", Verbs: statusVerbs()},
				{Name: "eviction", Group: "policy", Version: "v1", Kind: "Eviction", Verbs: createVerbs()},
				stream("exec", "PodExecOptions"),
				// Discovery reports the Pod kind for log, although the
				// response is plain text; kube-apiserver does the same.
				{Name: "log", Version: "v1", Kind: "Pod", Verbs: []string{"get"}},
				stream("portforward", "PodPortForwardOptions"),
				proxy("PodProxyOptions"),
				{Name: "resize", Version: "v1", Kind: "Pod", Verbs: statusVerbs()},
				status("", "v1", "Pod"),
			},
		},
		{
			Version: "v1", Name: "podtemplates", Singular: "podtemplate",
			Kind: "PodTemplate", ListKind: "PodTemplateList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Version: "v1", Name: "replicationcontrollers", Singular: "replicationcontroller",
			Kind: "ReplicationController", ListKind: "ReplicationControllerList", Namespaced: true,
			ShortNames: []string{"rc"},
			Categories: []string{"all"},
			Verbs:      standardVerbs(),
			Subresources: []Subresource{
				scale(),
				status("", "v1", "ReplicationController"),
			},
		},
		{
			Version: "v1", Name: "resourcequotas", Singular: "resourcequota",
			Kind: "ResourceQuota", ListKind: "ResourceQuotaList", Namespaced: true,
			ShortNames:   []string{"quota"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("", "v1", "ResourceQuota")},
		},
		{
			Version: "v1", Name: "secrets", Singular: "secret",
			Kind: "Secret", ListKind: "SecretList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Version: "v1", Name: "serviceaccounts", Singular: "serviceaccount",
			Kind: "ServiceAccount", ListKind: "ServiceAccountList", Namespaced: true,
			ShortNames: []string{"sa"},
			Verbs:      standardVerbs(),
			Subresources: []Subresource{
				{Name: "token", Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest", Verbs: createVerbs()},
			},
		},
		{
			Version: "v1", Name: "services", Singular: "service",
			Kind: "Service", ListKind: "ServiceList", Namespaced: true,
			ShortNames: []string{"svc"},
			Categories: []string{"all"},
			Verbs:      noDeleteCollectionVerbs(),
			Subresources: []Subresource{
				proxy("ServiceProxyOptions"),
				status("", "v1", "Service"),
			},
		},

		// apps/v1.
		{
			Group: "apps", Version: "v1", Name: "controllerrevisions", Singular: "controllerrevision",
			Kind: "ControllerRevision", ListKind: "ControllerRevisionList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Group: "apps", Version: "v1", Name: "daemonsets", Singular: "daemonset",
			Kind: "DaemonSet", ListKind: "DaemonSetList", Namespaced: true,
			ShortNames:   []string{"ds"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("apps", "v1", "DaemonSet")},
		},
		{
			Group: "apps", Version: "v1", Name: "deployments", Singular: "deployment",
			Kind: "Deployment", ListKind: "DeploymentList", Namespaced: true,
			ShortNames:   []string{"deploy"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{scale(), status("apps", "v1", "Deployment")},
		},
		{
			Group: "apps", Version: "v1", Name: "replicasets", Singular: "replicaset",
			Kind: "ReplicaSet", ListKind: "ReplicaSetList", Namespaced: true,
			ShortNames:   []string{"rs"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{scale(), status("apps", "v1", "ReplicaSet")},
		},
		{
			Group: "apps", Version: "v1", Name: "statefulsets", Singular: "statefulset",
			Kind: "StatefulSet", ListKind: "StatefulSetList", Namespaced: true,
			ShortNames:   []string{"sts"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{scale(), status("apps", "v1", "StatefulSet")},
		},

		// events.k8s.io/v1. The same events as core v1 events, and like
		// kube-apiserver it shares the short name ev with them.
		{
			Group: "events.k8s.io", Version: "v1", Name: "events", Singular: "event",
			Kind: "Event", ListKind: "EventList", Namespaced: true,
			ShortNames: []string{"ev"},
			Verbs:      standardVerbs(),
		},

		// authentication.k8s.io/v1.
		{
			Group: "authentication.k8s.io", Version: "v1", Name: "selfsubjectreviews", Singular: "selfsubjectreview",
			Kind:  "SelfSubjectReview",
			Verbs: createVerbs(),
		},
		{
			Group: "authentication.k8s.io", Version: "v1", Name: "tokenreviews", Singular: "tokenreview",
			Kind:  "TokenReview",
			Verbs: createVerbs(),
		},

		// authorization.k8s.io/v1.
		{
			Group: "authorization.k8s.io", Version: "v1", Name: "localsubjectaccessreviews", Singular: "localsubjectaccessreview",
			Kind: "LocalSubjectAccessReview", Namespaced: true,
			Verbs: createVerbs(),
		},
		{
			Group: "authorization.k8s.io", Version: "v1", Name: "selfsubjectaccessreviews", Singular: "selfsubjectaccessreview",
			Kind:  "SelfSubjectAccessReview",
			Verbs: createVerbs(),
		},
		{
			Group: "authorization.k8s.io", Version: "v1", Name: "selfsubjectrulesreviews", Singular: "selfsubjectrulesreview",
			Kind:  "SelfSubjectRulesReview",
			Verbs: createVerbs(),
		},
		{
			Group: "authorization.k8s.io", Version: "v1", Name: "subjectaccessreviews", Singular: "subjectaccessreview",
			Kind:  "SubjectAccessReview",
			Verbs: createVerbs(),
		},

		// autoscaling/v2, the preferred version, then autoscaling/v1. Only v2
		// is in the all category, so that a client expanding categories over
		// every version gets horizontalpodautoscalers once. kube-apiserver
		// reports all on both versions, but kubectl reads only the preferred
		// one, so it sees the same thing.
		{
			Group: "autoscaling", Version: "v2", Name: "horizontalpodautoscalers", Singular: "horizontalpodautoscaler",
			Kind: "HorizontalPodAutoscaler", ListKind: "HorizontalPodAutoscalerList", Namespaced: true,
			ShortNames:   []string{"hpa"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("autoscaling", "v2", "HorizontalPodAutoscaler")},
		},
		{
			Group: "autoscaling", Version: "v1", Name: "horizontalpodautoscalers", Singular: "horizontalpodautoscaler",
			Kind: "HorizontalPodAutoscaler", ListKind: "HorizontalPodAutoscalerList", Namespaced: true,
			ShortNames:   []string{"hpa"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("autoscaling", "v1", "HorizontalPodAutoscaler")},
		},

		// batch/v1.
		{
			Group: "batch", Version: "v1", Name: "cronjobs", Singular: "cronjob",
			Kind: "CronJob", ListKind: "CronJobList", Namespaced: true,
			ShortNames:   []string{"cj"},
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("batch", "v1", "CronJob")},
		},
		{
			Group: "batch", Version: "v1", Name: "jobs", Singular: "job",
			Kind: "Job", ListKind: "JobList", Namespaced: true,
			Categories:   []string{"all"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("batch", "v1", "Job")},
		},

		// certificates.k8s.io/v1.
		{
			Group: "certificates.k8s.io", Version: "v1", Name: "certificatesigningrequests", Singular: "certificatesigningrequest",
			Kind: "CertificateSigningRequest", ListKind: "CertificateSigningRequestList",
			ShortNames: []string{"csr"},
			Verbs:      standardVerbs(),
			Subresources: []Subresource{
				{Name: "approval", Group: "certificates.k8s.io", Version: "v1", Kind: "CertificateSigningRequest", Verbs: statusVerbs()},
				status("certificates.k8s.io", "v1", "CertificateSigningRequest"),
			},
		},
		{
			Group: "certificates.k8s.io", Version: "v1", Name: "clustertrustbundles", Singular: "clustertrustbundle",
			Kind: "ClusterTrustBundle", ListKind: "ClusterTrustBundleList",
			Verbs: standardVerbs(),
		},
		{
			Group: "certificates.k8s.io", Version: "v1", Name: "podcertificaterequests", Singular: "podcertificaterequest",
			Kind: "PodCertificateRequest", ListKind: "PodCertificateRequestList", Namespaced: true,
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("certificates.k8s.io", "v1", "PodCertificateRequest")},
		},

		// networking.k8s.io/v1.
		{
			Group: "networking.k8s.io", Version: "v1", Name: "ingressclasses", Singular: "ingressclass",
			Kind: "IngressClass", ListKind: "IngressClassList",
			Verbs: standardVerbs(),
		},
		{
			Group: "networking.k8s.io", Version: "v1", Name: "ingresses", Singular: "ingress",
			Kind: "Ingress", ListKind: "IngressList", Namespaced: true,
			ShortNames:   []string{"ing"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("networking.k8s.io", "v1", "Ingress")},
		},
		{
			Group: "networking.k8s.io", Version: "v1", Name: "ipaddresses", Singular: "ipaddress",
			Kind: "IPAddress", ListKind: "IPAddressList",
			Verbs: standardVerbs(),
		},
		{
			Group: "networking.k8s.io", Version: "v1", Name: "networkpolicies", Singular: "networkpolicy",
			Kind: "NetworkPolicy", ListKind: "NetworkPolicyList", Namespaced: true,
			ShortNames: []string{"netpol"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "networking.k8s.io", Version: "v1", Name: "servicecidrs", Singular: "servicecidr",
			Kind: "ServiceCIDR", ListKind: "ServiceCIDRList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("networking.k8s.io", "v1", "ServiceCIDR")},
		},

		// policy/v1. Eviction is served only as the pods/eviction subresource.
		{
			Group: "policy", Version: "v1", Name: "poddisruptionbudgets", Singular: "poddisruptionbudget",
			Kind: "PodDisruptionBudget", ListKind: "PodDisruptionBudgetList", Namespaced: true,
			ShortNames:   []string{"pdb"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("policy", "v1", "PodDisruptionBudget")},
		},

		// rbac.authorization.k8s.io/v1.
		{
			Group: "rbac.authorization.k8s.io", Version: "v1", Name: "clusterrolebindings", Singular: "clusterrolebinding",
			Kind: "ClusterRoleBinding", ListKind: "ClusterRoleBindingList",
			Verbs: standardVerbs(),
		},
		{
			Group: "rbac.authorization.k8s.io", Version: "v1", Name: "clusterroles", Singular: "clusterrole",
			Kind: "ClusterRole", ListKind: "ClusterRoleList",
			Verbs: standardVerbs(),
		},
		{
			Group: "rbac.authorization.k8s.io", Version: "v1", Name: "rolebindings", Singular: "rolebinding",
			Kind: "RoleBinding", ListKind: "RoleBindingList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Group: "rbac.authorization.k8s.io", Version: "v1", Name: "roles", Singular: "role",
			Kind: "Role", ListKind: "RoleList", Namespaced: true,
			Verbs: standardVerbs(),
		},

		// storage.k8s.io/v1.
		{
			Group: "storage.k8s.io", Version: "v1", Name: "csidrivers", Singular: "csidriver",
			Kind: "CSIDriver", ListKind: "CSIDriverList",
			Verbs: standardVerbs(),
		},
		{
			Group: "storage.k8s.io", Version: "v1", Name: "csinodes", Singular: "csinode",
			Kind: "CSINode", ListKind: "CSINodeList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("storage.k8s.io", "v1", "CSINode")},
		},
		{
			Group: "storage.k8s.io", Version: "v1", Name: "csistoragecapacities", Singular: "csistoragecapacity",
			Kind: "CSIStorageCapacity", ListKind: "CSIStorageCapacityList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Group: "storage.k8s.io", Version: "v1", Name: "storageclasses", Singular: "storageclass",
			Kind: "StorageClass", ListKind: "StorageClassList",
			ShortNames: []string{"sc"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "storage.k8s.io", Version: "v1", Name: "volumeattachments", Singular: "volumeattachment",
			Kind: "VolumeAttachment", ListKind: "VolumeAttachmentList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("storage.k8s.io", "v1", "VolumeAttachment")},
		},
		{
			Group: "storage.k8s.io", Version: "v1", Name: "volumeattributesclasses", Singular: "volumeattributesclass",
			Kind: "VolumeAttributesClass", ListKind: "VolumeAttributesClassList",
			ShortNames: []string{"vac"},
			Verbs:      standardVerbs(),
		},

		// admissionregistration.k8s.io/v1. Every resource is in the
		// api-extensions category, as in kube-apiserver.
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "mutatingadmissionpolicies", Singular: "mutatingadmissionpolicy",
			Kind: "MutatingAdmissionPolicy", ListKind: "MutatingAdmissionPolicyList",
			Categories: []string{"api-extensions"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "mutatingadmissionpolicybindings", Singular: "mutatingadmissionpolicybinding",
			Kind: "MutatingAdmissionPolicyBinding", ListKind: "MutatingAdmissionPolicyBindingList",
			Categories: []string{"api-extensions"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "mutatingwebhookconfigurations", Singular: "mutatingwebhookconfiguration",
			Kind: "MutatingWebhookConfiguration", ListKind: "MutatingWebhookConfigurationList",
			Categories: []string{"api-extensions"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "validatingadmissionpolicies", Singular: "validatingadmissionpolicy",
			Kind: "ValidatingAdmissionPolicy", ListKind: "ValidatingAdmissionPolicyList",
			Categories:   []string{"api-extensions"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy")},
		},
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "validatingadmissionpolicybindings", Singular: "validatingadmissionpolicybinding",
			Kind: "ValidatingAdmissionPolicyBinding", ListKind: "ValidatingAdmissionPolicyBindingList",
			Categories: []string{"api-extensions"},
			Verbs:      standardVerbs(),
		},
		{
			Group: "admissionregistration.k8s.io", Version: "v1", Name: "validatingwebhookconfigurations", Singular: "validatingwebhookconfiguration",
			Kind: "ValidatingWebhookConfiguration", ListKind: "ValidatingWebhookConfigurationList",
			Categories: []string{"api-extensions"},
			Verbs:      standardVerbs(),
		},

		// apiextensions.k8s.io/v1. Not in client-go's scheme; its types live
		// in k8s.io/apiextensions-apiserver.
		{
			Group: "apiextensions.k8s.io", Version: "v1", Name: "customresourcedefinitions", Singular: "customresourcedefinition",
			Kind: "CustomResourceDefinition", ListKind: "CustomResourceDefinitionList",
			ShortNames:   []string{"crd", "crds"},
			Categories:   []string{"api-extensions"},
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("apiextensions.k8s.io", "v1", "CustomResourceDefinition")},
		},

		// scheduling.k8s.io/v1.
		{
			Group: "scheduling.k8s.io", Version: "v1", Name: "priorityclasses", Singular: "priorityclass",
			Kind: "PriorityClass", ListKind: "PriorityClassList",
			ShortNames: []string{"pc"},
			Verbs:      standardVerbs(),
		},

		// coordination.k8s.io/v1.
		{
			Group: "coordination.k8s.io", Version: "v1", Name: "leases", Singular: "lease",
			Kind: "Lease", ListKind: "LeaseList", Namespaced: true,
			Verbs: standardVerbs(),
		},

		// node.k8s.io/v1.
		{
			Group: "node.k8s.io", Version: "v1", Name: "runtimeclasses", Singular: "runtimeclass",
			Kind: "RuntimeClass", ListKind: "RuntimeClassList",
			Verbs: standardVerbs(),
		},

		// discovery.k8s.io/v1.
		{
			Group: "discovery.k8s.io", Version: "v1", Name: "endpointslices", Singular: "endpointslice",
			Kind: "EndpointSlice", ListKind: "EndpointSliceList", Namespaced: true,
			Verbs: standardVerbs(),
		},

		// resource.k8s.io/v1. It has the same group priority as
		// discovery.k8s.io and sorts after it by name.
		{
			Group: "resource.k8s.io", Version: "v1", Name: "deviceclasses", Singular: "deviceclass",
			Kind: "DeviceClass", ListKind: "DeviceClassList",
			Verbs: standardVerbs(),
		},
		{
			Group: "resource.k8s.io", Version: "v1", Name: "devicetaintrules", Singular: "devicetaintrule",
			Kind: "DeviceTaintRule", ListKind: "DeviceTaintRuleList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("resource.k8s.io", "v1", "DeviceTaintRule")},
		},
		{
			Group: "resource.k8s.io", Version: "v1", Name: "resourceclaims", Singular: "resourceclaim",
			Kind: "ResourceClaim", ListKind: "ResourceClaimList", Namespaced: true,
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("resource.k8s.io", "v1", "ResourceClaim")},
		},
		{
			Group: "resource.k8s.io", Version: "v1", Name: "resourceclaimtemplates", Singular: "resourceclaimtemplate",
			Kind: "ResourceClaimTemplate", ListKind: "ResourceClaimTemplateList", Namespaced: true,
			Verbs: standardVerbs(),
		},
		{
			Group: "resource.k8s.io", Version: "v1", Name: "resourceslices", Singular: "resourceslice",
			Kind: "ResourceSlice", ListKind: "ResourceSliceList",
			Verbs: standardVerbs(),
		},

		// flowcontrol.apiserver.k8s.io/v1.
		{
			Group: "flowcontrol.apiserver.k8s.io", Version: "v1", Name: "flowschemas", Singular: "flowschema",
			Kind: "FlowSchema", ListKind: "FlowSchemaList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema")},
		},
		{
			Group: "flowcontrol.apiserver.k8s.io", Version: "v1", Name: "prioritylevelconfigurations", Singular: "prioritylevelconfiguration",
			Kind: "PriorityLevelConfiguration", ListKind: "PriorityLevelConfigurationList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration")},
		},

		// internal.apiserver.k8s.io/v1alpha1, alpha only.
		{
			Group: "internal.apiserver.k8s.io", Version: "v1alpha1", Name: "storageversions", Singular: "storageversion",
			Kind: "StorageVersion", ListKind: "StorageVersionList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("internal.apiserver.k8s.io", "v1alpha1", "StorageVersion")},
		},

		// storagemigration.k8s.io/v1.
		{
			Group: "storagemigration.k8s.io", Version: "v1", Name: "storageversionmigrations", Singular: "storageversionmigration",
			Kind: "StorageVersionMigration", ListKind: "StorageVersionMigrationList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("storagemigration.k8s.io", "v1", "StorageVersionMigration")},
		},

		// lifecycle.k8s.io/v1alpha1, alpha only. It is new in v1.37 and its
		// kube-apiserver group priority is not recorded here, so it goes
		// after the other Kubernetes groups.
		{
			Group: "lifecycle.k8s.io", Version: "v1alpha1", Name: "evictionrequests", Singular: "evictionrequest",
			Kind: "EvictionRequest", ListKind: "EvictionRequestList", Namespaced: true,
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("lifecycle.k8s.io", "v1alpha1", "EvictionRequest")},
		},
		{
			Group: "lifecycle.k8s.io", Version: "v1alpha1", Name: "evictions", Singular: "eviction",
			Kind: "Eviction", ListKind: "EvictionList", Namespaced: true,
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("lifecycle.k8s.io", "v1alpha1", "Eviction")},
		},

		// metrics.k8s.io/v1beta1, the resource metrics API that
		// metrics-server serves in kube (kubectl top). Nothing is
		// stored: the API server asks the kubelets.
		{
			Group: "metrics.k8s.io", Version: "v1beta1", Name: "nodes", Singular: "nodemetrics",
			Kind: "NodeMetrics", ListKind: "NodeMetricsList",
			Verbs: []string{"get", "list"},
		},
		{
			Group: "metrics.k8s.io", Version: "v1beta1", Name: "pods", Singular: "podmetrics",
			Kind: "PodMetrics", ListKind: "PodMetricsList", Namespaced: true,
			Verbs: []string{"get", "list"},
		},

		// gitops.kiln.dev/v1alpha1, kiln's own kind.
		{
			Group: "gitops.kiln.dev", Version: "v1alpha1", Name: "sources", Singular: "source",
			Kind: "Source", ListKind: "SourceList",
			Verbs:        standardVerbs(),
			Subresources: []Subresource{status("gitops.kiln.dev", "v1alpha1", "Source")},
		},
	}
}

// The helpers below return a fresh slice or value on every call, so that
// resources never share backing arrays.

// standardVerbs are the verbs of a resource backed by a plain generic store.
func standardVerbs() []string {
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// noDeleteCollectionVerbs are the verbs of namespaces and services, whose
// kube-apiserver storage does not implement deletecollection.
func noDeleteCollectionVerbs() []string {
	return []string{"create", "delete", "get", "list", "patch", "update", "watch"}
}

// createVerbs are the verbs of create-only resources and subresources.
func createVerbs() []string {
	return []string{"create"}
}

// statusVerbs are the verbs of a subresource that updates part of its
// parent: status, scale, approval, ephemeralcontainers and resize.
func statusVerbs() []string {
	return []string{"get", "patch", "update"}
}

// status returns the status subresource of a resource of the given kind.
func status(group, version, kind string) Subresource {
	return Subresource{Name: "status", Group: group, Version: version, Kind: kind, Verbs: statusVerbs()}
}

// scale returns the scale subresource, which speaks autoscaling/v1 Scale
// whatever the parent's group.
func scale() Subresource {
	return Subresource{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: statusVerbs()}
}

// proxy returns the proxy subresource of a core v1 pod, node or service.
// kube-apiserver maps the proxied HTTP methods to these verbs.
func proxy(optionsKind string) Subresource {
	return Subresource{Name: "proxy", Version: "v1", Kind: optionsKind, Verbs: []string{"create", "delete", "get", "patch", "update"}}
}

// stream returns a core v1 pods streaming subresource (attach, exec,
// portforward), which answers both GET and POST upgrades.
func stream(name, optionsKind string) Subresource {
	return Subresource{Name: name, Version: "v1", Kind: optionsKind, Verbs: []string{"create", "get"}}
}
