// Server-side defaults and validation of built-in kinds, as the API server's
// registry strategies apply them on create and update. Each function fills in
// defaults on `object` and appends what is invalid to `causes`; `old` is the
// stored object on an update, null on a create. Only what nixmox's charts,
// manifests and tests exercise is modelled.
#pragma once

#include <string>
#include <vector>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

// A core/v1 PodSpec at `path` ("spec", "spec.template.spec"): restartPolicy,
// dnsPolicy, schedulerName, terminationGracePeriodSeconds and per-container
// defaults; containers with a name and an image are required.
void AdmitPodSpec(json& pod_spec, const std::string& path, std::vector<Cause>& causes);

// apps/v1 Deployment: the apps/v1 defaults (replicas 1, RollingUpdate 25%/25%,
// revisionHistoryLimit 10, progressDeadlineSeconds 600), a selector that
// matches the template's labels and is immutable, restartPolicy Always, an
// empty status on create.
void AdmitDeployment(json& object, const json* old, std::vector<Cause>& causes);

// policy/v1 PodDisruptionBudget: minAvailable and maxUnavailable exclusive and
// not negative, a zeroed status on create.
void AdmitPodDisruptionBudget(json& object, const json* old, std::vector<Cause>& causes);

// rbac.authorization.k8s.io/v1 Role and ClusterRole (`namespaced` tells which):
// every rule names verbs, and either API groups with resources or (cluster
// roles only) non-resource URLs.
void AdmitRole(const json& object, bool namespaced, std::vector<Cause>& causes);

// RoleBinding and ClusterRoleBinding: a roleRef in the RBAC group (the
// default) that cannot change, and subjects of a known kind (service accounts
// with a namespace in cluster role bindings; users and groups get the RBAC
// group as their default apiGroup).
void AdmitRoleBinding(json& object, const json* old, bool namespaced, std::vector<Cause>& causes);

// Whether a metav1.LabelSelector (matchLabels, matchExpressions) selects
// `labels`. An empty selector selects everything.
bool LabelSelectorMatches(const json& selector, const json& labels);

}  // namespace nixmox::kubesim
