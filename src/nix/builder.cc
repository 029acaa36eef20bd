#include "src/nix/builder.h"

#include <fcntl.h>
#include <grp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <regex>

#include "src/nix/image_file.h"
#include "src/nix/upload.h"

namespace nixmox::nix {
namespace {

struct Flag {
  std::string_view name;
  bool boolean = false;
  std::function<Status(std::string_view value, BuilderOptions& options)> apply;
};

Status Set(std::string& field, std::string_view value) {
  field = std::string(value);
  return OkStatus();
}

Status Append(std::vector<std::string>& list, std::string_view value) {
  list.emplace_back(value);
  return OkStatus();
}

Result<bool> ParseBool(std::string_view text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  return InvalidError("'" + std::string(text) + "' is not true or false");
}

Result<KvmMode> ParseKvm(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "auto") return KvmMode::kAuto;
  if (lower == "required") return KvmMode::kRequired;
  if (lower == "disabled") return KvmMode::kDisabled;
  return InvalidError("'" + std::string(text) + "' is not Auto, Required or Disabled");
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"--flake", false, [](auto v, auto& o) { return Set(o.flake, v); }},
      {"--attribute", false, [](auto v, auto& o) { return Set(o.attribute, v); }},
      {"--format", false, [](auto v, auto& o) { return Set(o.format, v); }},
      {"--image", false, [](auto v, auto& o) { return Set(o.image, v); }},
      {"--pve-url", false, [](auto v, auto& o) { return Set(o.pve_url, v); }},
      {"--storage", false, [](auto v, auto& o) { return Set(o.storage, v); }},
      {"--node", false, [](auto v, auto& o) { return Append(o.nodes, v); }},
      {"--pve-insecure", true,
       [](auto v, auto& o) {
         ASSIGN_OR_RETURN(o.pve_insecure, ParseBool(v));
         return OkStatus();
       }},
      {"--substituter", false, [](auto v, auto& o) { return Append(o.nix.substituters, v); }},
      {"--trusted-public-key", false,
       [](auto v, auto& o) { return Append(o.nix.trusted_public_keys, v); }},
      {"--nix-option", false,
       [](std::string_view v, BuilderOptions& o) {
         const std::size_t eq = v.find('=');
         static const std::regex kName("[A-Za-z0-9][A-Za-z0-9-]*");
         if (eq == std::string_view::npos || eq == 0 ||
             !std::regex_match(std::string(v.substr(0, eq)), kName)) {
           return InvalidError("'" + std::string(v) + "' is not NAME=VALUE");
         }
         o.nix.options.emplace_back(std::string(v.substr(0, eq)), std::string(v.substr(eq + 1)));
         return OkStatus();
       }},
      {"--expect-revision", false, [](auto v, auto& o) { return Set(o.expect_revision, v); }},
      {"--result-file", false, [](auto v, auto& o) { return Set(o.result_file, v); }},
      {"--kvm", false,
       [](auto v, auto& o) {
         ASSIGN_OR_RETURN(o.kvm, ParseKvm(v));
         return OkStatus();
       }},
      {"--nix", false, [](auto v, auto& o) { return Set(o.nix.program, v); }},
  };
  return flags;
}

bool Matches(const std::string& text, const char* pattern) {
  return std::regex_match(text, std::regex(pattern));
}

// Every check that needs more than one flag, or that a value is well formed.
Status Validate(const BuilderOptions& o) {
  const std::pair<const char*, const std::string*> required[] = {
      {"--flake", &o.flake}, {"--attribute", &o.attribute}, {"--format", &o.format},
      {"--image", &o.image}, {"--pve-url", &o.pve_url},     {"--storage", &o.storage}};
  for (const auto& [flag, value] : required) {
    if (value->empty()) return InvalidError(std::string(flag) + " is required");
  }
  if (o.flake.front() == '-' || !Matches(o.flake, "[^\\s]+")) {
    return InvalidError("--flake: '" + o.flake + "' is not a flake reference");
  }
  if (o.attribute.front() == '-' || !Matches(o.attribute, "[^\\s#]+")) {
    return InvalidError("--attribute: '" + o.attribute + "' is not an attribute path");
  }
  auto format = LookupImageFormat(o.format);
  if (!format.ok()) return InvalidError("--format: " + format.status().message());
  if (format->upload_extension.empty()) {
    return InvalidError("--format " + o.format + ": " + format->not_uploadable_reason);
  }
  // Proxmox rewrites other characters in upload names; the volume name must
  // come back exactly as computed.
  if (!Matches(o.image, "[A-Za-z0-9][A-Za-z0-9_.-]*") || o.image.size() > 200) {
    return InvalidError("--image: '" + o.image +
                        "' must be letters, digits, '.', '_' or '-' (at most 200)");
  }
  if (!Matches(o.pve_url, "https?://[^/\\s]+/?")) {
    return InvalidError("--pve-url: '" + o.pve_url + "' is not https://HOST:PORT");
  }
  if (!Matches(o.storage, "[A-Za-z][A-Za-z0-9_.-]*")) {
    return InvalidError("--storage: '" + o.storage + "' is not a Proxmox storage id");
  }
  for (const std::string& node : o.nodes) {
    if (!Matches(node, "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?")) {
      return InvalidError("--node: '" + node + "' is not a Proxmox node name");
    }
  }
  if (o.nix.program.empty()) return InvalidError("--nix: empty path");
  if (o.result_file.empty()) return InvalidError("--result-file: empty path");
  return OkStatus();
}

std::string TrimRight(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

bool HasOption(const NixSettings& nix, std::string_view name) {
  return std::any_of(nix.options.begin(), nix.options.end(), [&](const auto& o) {
    return o.first == name || o.first == "extra-" + std::string(name);
  });
}

double Seconds(Clock::SteadyTime from, Clock::SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

// One nix stderr line as a progress message, when it says what nix is doing.
std::optional<std::string> NixActivity(std::string_view line) {
  for (std::string_view prefix : {"building '", "copying path '", "downloading '"}) {
    if (line.substr(0, prefix.size()) == prefix) {
      std::string message(line.substr(0, 200));
      while (!message.empty() && (message.back() == '.' || message.back() == ' ')) {
        message.pop_back();
      }
      return message;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<BuilderCommandLine> ParseBuilderArgs(const std::vector<std::string>& args) {
  BuilderCommandLine cl;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      cl.help = true;
      return cl;
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const std::size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto flag =
        std::find_if(Flags().begin(), Flags().end(), [&](const Flag& f) { return f.name == name; });
    if (flag == Flags().end()) {
      return InvalidError(arg.starts_with("-") ? "unknown flag " + std::string(name)
                                               : "unexpected argument '" + std::string(arg) + "'");
    }
    if (!value) {
      if (flag->boolean) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return InvalidError(std::string(name) + " needs a value");
      }
    }
    if (Status s = flag->apply(*value, cl.options); !s.ok()) {
      return InvalidError(std::string(name) + ": " + s.message());
    }
  }
  RETURN_IF_ERROR(Validate(cl.options));
  return cl;
}

std::string BuilderUsage() {
  return R"(Usage: nixmox-builder --flake REF --attribute ATTR --format qcow2|raw --image NAME
         --pve-url https://HOST:PORT --storage STORAGE [options]

Builds REF#ATTR with nix, uploads the image to Proxmox VE storage STORAGE as
import/nixmox-NAME-<storehash>.<ext>, and writes a JSON result to --result-file.

  --flake REF                 flake reference (github:o/r/main, git+https://..., path:/dir)
  --attribute ATTR            attribute to build (packages.x86_64-linux.image, ...)
  --format F                  qcow2 or raw (vma is refused: PVE cannot take it by upload)
  --image NAME                the NixImage's name, part of the volume's file name
  --pve-url URL               Proxmox VE API endpoint, https://HOST:8006
  --storage STORAGE           storage with 'import' content
  --node NODE                 upload to this node (repeatable); default: every online
                              node with the storage, or one when it is shared
  --pve-insecure              do not verify the endpoint's TLS certificate
  --substituter URL           binary cache (repeatable; replaces nix's list)
  --trusted-public-key KEY    cache signing key (repeatable; replaces nix's list)
  --nix-option NAME=VALUE     any nix setting (repeatable), e.g. sandbox=false
  --expect-revision REV       when the flake is still at REV, report unchanged, build nothing
  --result-file PATH          default /dev/termination-log
  --kvm Auto|Required|Disabled  default Auto: use /dev/kvm when usable, else emulate
  --nix PATH                  the nix binary (default: nix on PATH)

Environment: NIXMOX_PVE_TOKEN_ID (user@realm!tokenid), NIXMOX_PVE_TOKEN_SECRET,
NIXMOX_PVE_CA (PEM CA bundle, optional), NIX_ACCESS_TOKENS (optional).
Exit codes: 0 ok, 2 bad arguments, 3 build failed, 4 upload failed.
Progress lines ("nixmox-progress {...}") go to stdout, logs to stderr.
)";
}

std::string ResultFileFromArgs(const std::vector<std::string>& args) {
  std::string file = BuilderOptions().result_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--result-file" && i + 1 < args.size() && !args[i + 1].empty()) {
      file = args[i + 1];
    } else if (args[i].starts_with("--result-file=") && args[i].size() > 14) {
      file = args[i].substr(14);
    }
  }
  return file;
}

Result<BuilderSecrets> ReadSecrets(const std::vector<std::string>& env) {
  std::map<std::string, std::string, std::less<>> vars;
  for (const std::string& entry : env) {
    const std::size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  auto get = [&](const char* name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : TrimRight(it->second);
  };
  BuilderSecrets secrets;
  const std::string id = get("NIXMOX_PVE_TOKEN_ID");
  const std::string secret = get("NIXMOX_PVE_TOKEN_SECRET");
  if (id.empty()) return InvalidError("NIXMOX_PVE_TOKEN_ID is not set");
  if (secret.empty()) return InvalidError("NIXMOX_PVE_TOKEN_SECRET is not set");
  if (id.find('=') != std::string::npos || secret.find_first_of(" \t\n") != std::string::npos) {
    return InvalidError("NIXMOX_PVE_TOKEN_ID or NIXMOX_PVE_TOKEN_SECRET is malformed");
  }
  auto token = proxmox::ApiToken::Parse(id + "=" + secret);
  if (!token.ok()) {
    return InvalidError("NIXMOX_PVE_TOKEN_ID must have the form user@realm!tokenid");
  }
  secrets.token = std::move(token).value();
  secrets.ca_pem = vars.contains("NIXMOX_PVE_CA") ? vars["NIXMOX_PVE_CA"] : "";
  secrets.access_tokens = get("NIX_ACCESS_TOKENS");
  return secrets;
}

std::string RedactSecrets(const BuilderSecrets& secrets, std::string text) {
  text = secrets.token.Redact(std::move(text));
  std::vector<std::string> values = AccessTokenValues(secrets.access_tokens);
  values.push_back(secrets.access_tokens);
  for (const std::string& value : values) {
    if (value.size() < 4) continue;  // shorter ones would mangle every message
    for (std::size_t pos = 0; (pos = text.find(value, pos)) != std::string::npos;) {
      text.replace(pos, value.size(), "<redacted>");
      pos += 10;
    }
  }
  return text;
}

proxmox::WaitOptions BuilderEnvironment::DefaultWait() {
  proxmox::WaitOptions wait;
  wait.timeout = std::chrono::hours(2);  // an imgcopy of a big image between nodes
  wait.initial_interval = std::chrono::milliseconds(250);
  wait.fast_period = std::chrono::seconds(10);
  wait.max_interval = std::chrono::seconds(5);
  return wait;
}

bool KvmUsable(const std::string& device, std::string* why) {
  const int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (why != nullptr) *why = device + ": " + std::strerror(errno);
    return false;
  }
  ::close(fd);
  return true;
}

BuilderOutcome RunBuilder(const BuilderOptions& options, const BuilderSecrets& secrets,
                          const BuilderEnvironment& environment) {
  const Clock& clock = environment.clock != nullptr ? *environment.clock : RealClock();
  auto emit = [&](const Progress& p) {
    if (environment.progress == nullptr) return;
    Progress safe = p;
    safe.message = RedactSecrets(secrets, p.message);
    *environment.progress << FormatProgress(safe) << '\n' << std::flush;
  };
  auto fail = [&](Stage stage, int exit_code, const std::string& error) {
    BuilderOutcome out;
    out.exit_code = exit_code;
    out.result.ok = false;
    out.result.stage = stage;
    out.result.error = RedactSecrets(secrets, error);
    spdlog::error("{} failed: {}", StageName(stage), out.result.error);
    return out;
  };

  auto format = LookupImageFormat(options.format);
  if (!format.ok() || format->upload_extension.empty()) {
    return fail(Stage::kArguments, kExitBadArguments,
                format.ok() ? format->not_uploadable_reason : format.status().message());
  }

  // KVM: QEMU inside image builds uses it when it can open it.
  NixSettings nix = options.nix;
  bool kvm = false;
  if (options.kvm != KvmMode::kDisabled) {
    std::string why;
    kvm = KvmUsable(environment.kvm_device, &why);
    if (!kvm && options.kvm == KvmMode::kRequired) {
      return fail(Stage::kBuild, kExitBuildFailed,
                  "--kvm Required, but KVM is not usable (" + why +
                      "): run the builder where /dev/kvm is available or use --kvm Auto");
    }
    if (!kvm) {
      spdlog::warn("KVM is not usable ({}): builds that start a VM run emulated, much slower", why);
      emit({Stage::kBuild, -1, "no usable /dev/kvm: building emulated"});
    }
  }
  if (!kvm && !HasOption(nix, "system-features")) {
    // nix offers the "kvm" feature only when /dev/kvm opens; image builds
    // (vmTools.runInLinuxVM) require it and their QEMU falls back to TCG.
    nix.options.insert(nix.options.begin(), {"extra-system-features", "kvm"});
  }
  if (::geteuid() == 0 && ::getgrnam("nixbld") == nullptr && !HasOption(nix, "build-users-group")) {
    // Root nix defaults to build-users-group = nixbld and refuses to run
    // without that group; containers have none, so build as root.
    spdlog::info("no nixbld group: running builds as root (build-users-group empty)");
    nix.options.insert(nix.options.begin(), {"build-users-group", ""});
  }

  NixCli cli(nix, NixEnvironment(environment.env, secrets.access_tokens),
             [&](std::string_view line) {
               spdlog::info("nix: {}", RedactSecrets(secrets, std::string(line)));
               if (auto activity = NixActivity(line)) emit({Stage::kBuild, -1, *activity});
             });

  const auto build_start = clock.Now();
  emit({Stage::kBuild, -1, "locking " + options.flake});
  auto meta = cli.Metadata(options.flake);
  if (!meta.ok()) return fail(Stage::kBuild, kExitBuildFailed, meta.status().message());
  spdlog::info("flake {} is at {}", options.flake, meta->revision);

  BuildResult result;
  result.flake_revision = meta->revision;
  if (!options.expect_revision.empty() && meta->revision == options.expect_revision) {
    spdlog::info("the flake has not moved from {}: nothing to build", options.expect_revision);
    result.ok = true;
    result.unchanged = true;
    return {result, kExitOk};
  }

  const std::string installable =
      (meta->locked_url.empty() ? options.flake : meta->locked_url) + "#" + options.attribute;
  emit({Stage::kBuild, -1, "building " + options.attribute + " at " + meta->revision});
  auto outputs = cli.Build(installable);
  if (!outputs.ok()) return fail(Stage::kBuild, kExitBuildFailed, outputs.status().message());

  std::string store_path;
  std::filesystem::path image_file;
  Status find_status = OkStatus();
  for (const std::string& out : *outputs) {
    auto found = FindImageFile(out, *format);
    if (found.ok()) {
      store_path = out;
      image_file = *found;
      break;
    }
    if (find_status.ok() || found.status().code() == Code::kInvalid) find_status = found.status();
  }
  if (store_path.empty()) {
    return fail(Stage::kBuild, kExitBuildFailed,
                "the build produced no " + options.format + " image: " + find_status.message());
  }
  auto info = cli.Info(store_path);
  if (!info.ok()) return fail(Stage::kBuild, kExitBuildFailed, info.status().message());
  std::error_code ec;
  const auto size = std::filesystem::file_size(image_file, ec);
  if (ec) return fail(Stage::kBuild, kExitBuildFailed, image_file.string() + ": " + ec.message());

  result.store_path = store_path;
  result.nar_hash = info->nar_hash;
  result.nar_size = info->nar_size;
  result.size = static_cast<std::int64_t>(size);
  result.format = options.format;
  result.kvm = kvm;
  result.build_seconds = Seconds(build_start, clock.Now());
  spdlog::info("built {}: {} ({} bytes, nar {} {})", store_path, image_file.string(), size,
               info->nar_hash, info->nar_size);
  emit({Stage::kBuild, 100, "built " + store_path});

  const auto upload_start = clock.Now();
  proxmox::PveClientOptions pve_options;
  pve_options.base_url = options.pve_url;
  pve_options.tls.insecure_skip_verify = options.pve_insecure;
  pve_options.tls.ca_pem = secrets.ca_pem;
  pve_options.token = secrets.token;
  pve_options.clock = &clock;
  if (options.pve_insecure)
    spdlog::warn("not verifying the TLS certificate of {}", options.pve_url);
  auto pve = proxmox::ConnectPveClient(pve_options);
  if (!pve.ok()) {
    return fail(Stage::kUpload, kExitUploadFailed,
                "connecting to " + options.pve_url + ": " + pve.status().ToString());
  }

  UploadSpec spec;
  spec.file = image_file;
  spec.filename = VolumeFileName(options.image, store_path, format->upload_extension);
  spec.storage = options.storage;
  spec.nodes = options.nodes;
  // What Proxmox lists as the volume's size: qemu-img's virtual size for
  // qcow2, the file's length for raw.
  spec.listed_size = format->name == "qcow2" ? Qcow2VirtualSize(image_file).value_or(size) : size;
  spec.wait = environment.wait;
  spec.progress_interval = environment.progress_interval;
  auto uploaded = UploadImage(**pve, spec, emit, clock, proxmox::RealSleeper());
  if (!uploaded.ok()) return fail(Stage::kUpload, kExitUploadFailed, uploaded.status().ToString());

  result.ok = true;
  result.volume_id = uploaded->volume_id;
  result.nodes = uploaded->nodes;
  result.uploaded = uploaded->uploaded;
  result.upload_seconds = Seconds(upload_start, clock.Now());
  return {result, kExitOk};
}

}  // namespace nixmox::nix
