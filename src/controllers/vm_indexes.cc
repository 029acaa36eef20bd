// The informer indexes over ProxmoxVMs, and the mapping from inventory
// changes to the ProxmoxVMs they concern. They read the raw JSON: an index
// runs on every cached object, decoding each would cost more than it says.
#include <set>

#include "src/api/reasons.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_controller.h"

namespace nixmox::controllers {
namespace {

std::vector<std::string> Keyed(const kube::Object& obj, const std::string& rest) {
  if (rest.empty()) return {};
  return {kube::NamespaceOf(obj) + "/" + rest};
}

}  // namespace

kube::IndexFunc UidTagIndex() {
  return [](const kube::Object& obj) -> std::vector<std::string> {
    const std::string uid = kube::UidOf(obj);
    if (uid.empty()) return {};
    return {UidTag(uid)};
  };
}

kube::IndexFunc ClusterVmidIndex() {
  return [](const kube::Object& obj) -> std::vector<std::string> {
    const std::string cluster = kube::StringAt(obj, {"spec", "clusterRef", "name"});
    auto status = obj.find("status");
    if (cluster.empty() || status == obj.end() || !status->is_object()) return {};
    auto vmid = status->find("vmid");
    if (vmid == status->end() || !vmid->is_number_integer()) return {};
    return Keyed(obj, cluster + "/" + std::to_string(vmid->get<long long>()));
  };
}

kube::IndexFunc ImageIndex() {
  return [](const kube::Object& obj) {
    return Keyed(obj, kube::StringAt(obj, {"spec", "imageRef", "name"}));
  };
}

kube::IndexFunc ClusterIndex() {
  return [](const kube::Object& obj) {
    return Keyed(obj, kube::StringAt(obj, {"spec", "clusterRef", "name"}));
  };
}

std::string ImagePathValue(const std::string& image_key, const std::string& store_path) {
  return image_key + "|" + store_path;
}

kube::IndexFunc ImageRunsIndex() {
  return [](const kube::Object& obj) -> std::vector<std::string> {
    const std::string image = kube::StringAt(obj, {"spec", "imageRef", "name"});
    if (image.empty()) return {};
    return {ImagePathValue(kube::NamespaceOf(obj) + "/" + image,
                           kube::StringAt(obj, {"status", "imageStorePath"}))};
  };
}

ImageConditions ReadImageConditions(const kube::Object& vm) {
  ImageConditions out;
  auto status = vm.find("status");
  if (status == vm.end() || !status->is_object()) return out;
  auto conditions = status->find("conditions");
  if (conditions == status->end() || !conditions->is_array()) return out;
  for (const kube::Object& c : *conditions) {
    if (!c.is_object()) continue;
    const bool is_true = c.value("status", "") == "True";
    if (c.value("type", "") == "Ready") out.ready = is_true;
    if (c.value("type", "") == "UpdateAvailable") {
      out.update_available = is_true;
      out.recreating = is_true && c.value("reason", "") == api::reason::kRecreating;
    }
  }
  return out;
}

kube::IndexFunc RolloutBusyIndex() {
  return [](const kube::Object& obj) -> std::vector<std::string> {
    const std::string image = kube::StringAt(obj, {"spec", "imageRef", "name"});
    if (image.empty()) return {};
    const ImageConditions conditions = ReadImageConditions(obj);
    const std::string image_key = kube::NamespaceOf(obj) + "/" + image;
    if (conditions.recreating) return {ImagePathValue(image_key, "")};
    const std::string path = kube::StringAt(obj, {"status", "imageStorePath"});
    if (!conditions.ready && !path.empty()) return {ImagePathValue(image_key, path)};
    return {};
  };
}

std::vector<std::string> VmKeysForChanges(kube::CacheReader& cache, const std::string& cluster_key,
                                          const std::vector<InventoryChange>& changes) {
  std::set<std::string> keys;
  auto add = [&](std::string_view index, const std::string& value) {
    Result<std::vector<std::string>> found = cache.KeysByIndex(ProxmoxVms(), index, value);
    if (!found.ok()) return;
    keys.insert(found->begin(), found->end());
  };
  for (const InventoryChange& change : changes) {
    for (const std::string& tag : change.tags) {
      if (IsUidTag(tag)) add(kIndexUidTag, tag);
    }
    add(kIndexClusterVmid, cluster_key + "/" + std::to_string(change.vmid));
  }
  return {keys.begin(), keys.end()};
}

}  // namespace nixmox::controllers
