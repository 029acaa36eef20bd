// Checks on v1alpha1 specs beyond what the CRD's OpenAPI schema and CEL rules
// say: duplicates across list items, cross-field rules, formats a regular
// expression cannot express well (URLs, CIDRs, slot ranges, nix.conf
// values). Required fields and ranges are checked again too, because objects
// can reach a controller without passing an API server (fakes, tests).
//
// Each function returns every problem it finds, as FieldErrors whose path
// starts at the object root ("spec.disks[1].slot", "duplicate"), so that a
// controller can report them all in one InvalidSpec condition. Pure
// functions; any thread.
#pragma once

#include <string_view>
#include <vector>

#include "src/api/types.h"
#include "src/common/status.h"

namespace nixmox::api {

// Tags the operator writes on VMs (UID, image hash) start with this; users
// may not set tags with it.
inline constexpr std::string_view kReservedTagPrefix = "nixmox-";

std::vector<FieldError> Validate(const ProxmoxClusterSpec& spec);
// Local flake paths (path:, git+file:, /abs) are refused unless
// `allow_local_flakes`: in a cluster the builder Job cannot see them; the
// operator's --allow-local-flakes accepts them for builders that can (the
// sandbox, whose Jobs run on this machine, or a builder image with the flake
// baked in).
std::vector<FieldError> Validate(const NixImageSpec& spec, bool allow_local_flakes = false);
std::vector<FieldError> Validate(const ProxmoxVmSpec& spec);

// The rules on changes, the same as the CRD's CEL transition rules (for
// fakes and for a clear error before an update is sent): clusterRef may not
// change; a vmid once set may not change or be removed.
std::vector<FieldError> ValidateUpdate(const NixImageSpec& old_spec, const NixImageSpec& new_spec);
std::vector<FieldError> ValidateUpdate(const ProxmoxVmSpec& old_spec,
                                       const ProxmoxVmSpec& new_spec);

// OK when `errors` is empty, else kInvalid carrying them.
Status ToStatus(std::vector<FieldError> errors);

}  // namespace nixmox::api
