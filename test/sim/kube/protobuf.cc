#include "test/sim/kube/protobuf.h"

#include <cstdint>
#include <functional>
#include <optional>

namespace nixmox::kubesim {
namespace {

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], k[n & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += {k[n >> 18], k[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], '='};
  }
  return out;
}

struct Field {
  int number = 0;
  int wire = 0;
  uint64_t varint = 0;
  std::string bytes;
};

// Splits one message into its fields; nullopt when malformed.
std::optional<std::vector<Field>> Parse(const std::string& data) {
  std::vector<Field> fields;
  size_t pos = 0;
  auto varint = [&](uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) return false;
      uint8_t b = uint8_t(data[pos++]);
      out |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (pos < data.size()) {
    uint64_t key;
    if (!varint(key)) return std::nullopt;
    Field f;
    f.number = int(key >> 3);
    f.wire = int(key & 7);
    switch (f.wire) {
      case 0:
        if (!varint(f.varint)) return std::nullopt;
        break;
      case 1:
        if (pos + 8 > data.size()) return std::nullopt;
        pos += 8;
        break;
      case 2: {
        uint64_t len;
        if (!varint(len) || pos + len > data.size()) return std::nullopt;
        f.bytes = data.substr(pos, len);
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > data.size()) return std::nullopt;
        pos += 4;
        break;
      default:
        return std::nullopt;
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

// A map<string, X> entry: key = 1, value = 2.
std::pair<std::string, std::string> Entry(const std::string& bytes) {
  std::pair<std::string, std::string> kv;
  if (auto fs = Parse(bytes)) {
    for (const auto& f : *fs) {
      if (f.number == 1) kv.first = f.bytes;
      if (f.number == 2) kv.second = f.bytes;
    }
  }
  return kv;
}

json ObjectMeta(const std::string& bytes) {
  json md = json::object();
  auto fs = Parse(bytes);
  if (!fs) return md;
  for (const auto& f : *fs) {
    switch (f.number) {
      case 1:
        md["name"] = f.bytes;
        break;
      case 2:
        md["generateName"] = f.bytes;
        break;
      case 3:
        md["namespace"] = f.bytes;
        break;
      case 5:
        md["uid"] = f.bytes;
        break;
      case 6:
        md["resourceVersion"] = f.bytes;
        break;
      case 11: {
        auto [k, v] = Entry(f.bytes);
        md["labels"][k] = v;
        break;
      }
      case 12: {
        auto [k, v] = Entry(f.bytes);
        md["annotations"][k] = v;
        break;
      }
      case 13: {
        json ref = json::object();
        if (auto rs = Parse(f.bytes)) {
          for (const auto& r : *rs) {
            if (r.number == 1) ref["kind"] = r.bytes;
            if (r.number == 3) ref["name"] = r.bytes;
            if (r.number == 4) ref["uid"] = r.bytes;
            if (r.number == 5) ref["apiVersion"] = r.bytes;
            if (r.number == 6) ref["controller"] = r.varint != 0;
            if (r.number == 7) ref["blockOwnerDeletion"] = r.varint != 0;
          }
        }
        md["ownerReferences"].push_back(ref);
        break;
      }
      case 14:
        md["finalizers"].push_back(f.bytes);
        break;
      default:
        break;  // server-set or unused fields
    }
  }
  for (const char* k : {"name", "generateName", "namespace", "uid", "resourceVersion"}) {
    if (md.contains(k) && md[k] == "") md.erase(k);
  }
  return md;
}

}  // namespace

ApiResult DecodeProtobufObject(const std::string& body) {
  auto unsupported = [](const std::string& what) {
    return ApiError::UnsupportedMediaType(
        "kubesim decodes protobuf only for Namespace, Secret, ConfigMap and ServiceAccount (" +
        what + "); send application/json");
  };
  if (body.size() < 4 || body.compare(0, 4, std::string("k8s\0", 4)) != 0) {
    return unsupported("no k8s envelope");
  }
  auto envelope = Parse(body.substr(4));
  if (!envelope) return ApiError::BadRequest("malformed protobuf envelope");
  std::string api_version, kind, raw;
  for (const auto& f : *envelope) {
    if (f.number == 1) {
      if (auto tm = Parse(f.bytes)) {
        for (const auto& t : *tm) {
          if (t.number == 1) api_version = t.bytes;
          if (t.number == 2) kind = t.bytes;
        }
      }
    }
    if (f.number == 2) raw = f.bytes;
  }
  auto fields = Parse(raw);
  if (!fields) return ApiError::BadRequest("malformed protobuf object");
  json o = {{"apiVersion", api_version}, {"kind", kind}, {"metadata", json::object()}};
  if (api_version != "v1" || (kind != "Namespace" && kind != "Secret" && kind != "ConfigMap" &&
                              kind != "ServiceAccount")) {
    return unsupported(api_version + " " + kind);
  }
  for (const auto& f : *fields) {
    if (f.number == 1) {
      o["metadata"] = ObjectMeta(f.bytes);
      continue;
    }
    if (kind == "Secret") {
      if (f.number == 2) {
        auto [k, v] = Entry(f.bytes);
        o["data"][k] = Base64(v);
      } else if (f.number == 3) {
        o["type"] = f.bytes;
      } else if (f.number == 4) {
        auto [k, v] = Entry(f.bytes);
        o["stringData"][k] = v;
      } else if (f.number == 5) {
        o["immutable"] = f.varint != 0;
      }
    } else if (kind == "ConfigMap") {
      if (f.number == 2) {
        auto [k, v] = Entry(f.bytes);
        o["data"][k] = v;
      } else if (f.number == 3) {
        auto [k, v] = Entry(f.bytes);
        o["binaryData"][k] = Base64(v);
      } else if (f.number == 4) {
        o["immutable"] = f.varint != 0;
      }
    } else if (kind == "Namespace") {
      if (f.number == 2) {
        json spec = json::object();
        if (auto ss = Parse(f.bytes)) {
          for (const auto& s : *ss) {
            if (s.number == 1) spec["finalizers"].push_back(s.bytes);
          }
        }
        o["spec"] = spec;
      }
    } else if (kind == "ServiceAccount") {
      if (f.number == 4) o["automountServiceAccountToken"] = f.varint != 0;
    }
  }
  return o;
}

}  // namespace nixmox::kubesim
