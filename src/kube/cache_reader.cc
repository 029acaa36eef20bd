#include "src/kube/cache_reader.h"

#include "src/kube/selector.h"

namespace nixmox::kube {
namespace {
std::string TypeKey(const ResourceType& t) { return t.group + "/" + t.version + "/" + t.resource; }
}  // namespace

void CacheReader::Register(Informer& informer) {
  std::lock_guard lock(mu_);
  informers_[TypeKey(informer.type())] = &informer;
}

Result<Informer*> CacheReader::Find(const ResourceType& type) {
  std::lock_guard lock(mu_);
  auto it = informers_.find(TypeKey(type));
  if (it == informers_.end()) return InternalError("no informer caches " + type.resource);
  return it->second;
}

Result<Object> CacheReader::Get(const ResourceType& type, std::string_view ns,
                                std::string_view name) {
  ASSIGN_OR_RETURN(Informer * informer, Find(type));
  std::optional<Object> obj = informer->store().Get(MakeKey(type.namespaced ? ns : "", name));
  if (!obj) {
    return NotFoundError(type.resource + " \"" + MakeKey(ns, name) + "\" not found");
  }
  return std::move(*obj);
}

Result<ObjectList> CacheReader::List(const ResourceType& type, std::string_view ns,
                                     const ListOptions& options) {
  ASSIGN_OR_RETURN(Informer * informer, Find(type));
  ASSIGN_OR_RETURN(LabelSelector labels, LabelSelector::Parse(options.label_selector));
  ASSIGN_OR_RETURN(FieldSelector fields, FieldSelector::Parse(options.field_selector));
  // Keys are "namespace/name": other namespaces are skipped without unpacking.
  const std::string prefix = type.namespaced && !ns.empty() ? MakeKey(ns, "") : "";
  ObjectList list;
  for (const auto& stored : informer->store().List()) {
    if (!std::string_view(stored->key()).starts_with(prefix)) continue;
    Object obj = stored->Unpack();
    if (labels.Matches(obj) && fields.Matches(obj)) list.items.push_back(std::move(obj));
  }
  return list;
}

Result<std::vector<Object>> CacheReader::ByIndex(const ResourceType& type, std::string_view index,
                                                 std::string_view value) {
  ASSIGN_OR_RETURN(Informer * informer, Find(type));
  ASSIGN_OR_RETURN(auto stored, informer->store().ByIndex(index, value));
  std::vector<Object> out;
  out.reserve(stored.size());
  for (const auto& s : stored) out.push_back(s->Unpack());
  return out;
}

Result<std::vector<std::string>> CacheReader::KeysByIndex(const ResourceType& type,
                                                          std::string_view index,
                                                          std::string_view value) {
  ASSIGN_OR_RETURN(Informer * informer, Find(type));
  return informer->store().KeysByIndex(index, value);
}

Result<std::vector<std::pair<std::string, std::string>>> CacheReader::IndexEntries(
    const ResourceType& type, std::string_view index, std::string_view prefix) {
  ASSIGN_OR_RETURN(Informer * informer, Find(type));
  return informer->store().IndexEntries(index, prefix);
}

}  // namespace nixmox::kube
