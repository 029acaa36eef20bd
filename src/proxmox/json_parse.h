// Lenient reading of Proxmox JSON into the types of types.h. Internal to
// src/proxmox (the client and its tests); never throws.
//
// Proxmox serialises Perl scalars as whatever they last were: "101" or 101,
// 0/1/"0"/"1"/""/true for booleans. These helpers accept all of them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "src/common/status.h"
#include "src/proxmox/types.h"

namespace nixmox::proxmox::internal {

std::optional<std::int64_t> LenientInt(const nlohmann::json& v);
std::optional<double> LenientDouble(const nlohmann::json& v);
std::optional<bool> LenientBool(const nlohmann::json& v);
// Strings as they are, numbers in decimal, booleans as 1/0; null -> "".
std::string LenientString(const nlohmann::json& v);

// Field lookups on an object; absent or unparseable -> fallback.
std::int64_t IntField(const nlohmann::json& obj, std::string_view key, std::int64_t fallback = 0);
double DoubleField(const nlohmann::json& obj, std::string_view key, double fallback = 0);
bool BoolField(const nlohmann::json& obj, std::string_view key, bool fallback = false);
std::string StringField(const nlohmann::json& obj, std::string_view key);

// Each returns Internal when the shape is wrong (not an object/array where one is needed).
Result<VersionInfo> ParseVersion(const nlohmann::json& data);
Result<std::vector<NodeInfo>> ParseNodes(const nlohmann::json& data);
Result<NodeStatus> ParseNodeStatus(const nlohmann::json& data);
Result<std::vector<ClusterResource>> ParseClusterResources(const nlohmann::json& data);
Result<std::vector<VmSummary>> ParseVmList(const nlohmann::json& data);
Result<VmConfig> ParseVmConfig(const nlohmann::json& data);
Result<std::vector<PendingEntry>> ParseVmPending(const nlohmann::json& data);
Result<VmStatus> ParseVmStatus(const nlohmann::json& data);
Result<TaskStatus> ParseTaskStatus(const nlohmann::json& data, const Upid& upid);
Result<std::vector<TaskLogLine>> ParseTaskLog(const nlohmann::json& data);
Result<std::vector<StorageContent>> ParseStorageContent(const nlohmann::json& data);
// The `result` of agent/network-get-interfaces; an agent-side error becomes a Status.
Result<std::vector<GuestInterface>> ParseGuestInterfaces(const nlohmann::json& data);

}  // namespace nixmox::proxmox::internal
