// Decoding of the Kubernetes protobuf wire format for the few built-in kinds
// kubectl's imperative commands send that way (`kubectl create namespace |
// secret | configmap | serviceaccount` POST application/vnd.kubernetes.protobuf
// and do not fall back to JSON). kubesim always answers in JSON.
#pragma once

#include <string>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

// The object inside a "k8s\0"-prefixed runtime.Unknown envelope, as JSON.
// Namespace, Secret, ConfigMap and ServiceAccount are understood; any other
// kind is 415 UnsupportedMediaType.
ApiResult DecodeProtobufObject(const std::string& body);

}  // namespace nixmox::kubesim
