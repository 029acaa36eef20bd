#include "operator/options.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace nixmox::cmd {
namespace {

using std::chrono::milliseconds;

// One flag: how to apply its value. Boolean flags get "true" when given bare.
struct Flag {
  std::string_view name;
  bool boolean = false;
  std::function<Status(std::string_view value, OperatorOptions& options)> apply;
};

Result<int> ParseCount(std::string_view text, int min) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return InvalidError("'" + std::string(text) + "' is not a whole number");
  }
  if (value < min) {
    return InvalidError("must be at least " + std::to_string(min) + ", got " + std::string(text));
  }
  return value;
}

Result<bool> ParseBool(std::string_view text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  return InvalidError("'" + std::string(text) + "' is not true or false");
}

Result<milliseconds> ParsePositiveDuration(std::string_view text) {
  ASSIGN_OR_RETURN(milliseconds d, ParseDuration(text));
  if (d <= milliseconds(0)) return InvalidError("must be longer than 0");
  return d;
}

// "host:port", "[v6]:port" or ":port" (all interfaces, as controller-runtime
// reads it), or "0" for off. Returns the address with the host filled in.
Result<std::string> ParseBindAddress(std::string_view text) {
  if (text == kDisabled) return std::string(text);
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return InvalidError("'" + std::string(text) + "' is not HOST:PORT (or 0 to disable)");
  }
  const std::string_view port = text.substr(colon + 1);
  int port_number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || port_number < 0 ||
      port_number > 65535) {
    return InvalidError("'" + std::string(text) + "' has no valid port");
  }
  if (colon == 0) return "0.0.0.0" + std::string(text);
  return std::string(text);
}

Status CheckLogLevel(std::string_view level) {
  for (std::string_view known : {"trace", "debug", "info", "warn", "error"}) {
    if (level == known) return OkStatus();
  }
  return InvalidError("'" + std::string(level) + "' is not trace, debug, info, warn or error");
}

Status CheckLogFormat(std::string_view format) {
  if (format == "text" || format == "json") return OkStatus();
  return InvalidError("'" + std::string(format) + "' is not text or json");
}

// A Kubernetes quantity: digits with an optional fraction and suffix
// ("500m", "2Gi", "1.5", "4"); the API server has the last word.
Status SetQuantity(std::map<std::string, api::Quantity>& into, const char* name,
                   std::string_view v) {
  size_t i = 0;
  while (i < v.size() && (std::isdigit(static_cast<unsigned char>(v[i])) || v[i] == '.')) ++i;
  static const std::set<std::string_view> kSuffixes = {"",   "m",  "k",  "M",  "G",  "T",
                                                       "Ki", "Mi", "Gi", "Ti", "Pi", "E"};
  if (i == 0 || !kSuffixes.contains(v.substr(i))) {
    return InvalidError("'" + std::string(v) + "' is not a quantity (e.g. 500m, 2, 4Gi)");
  }
  into[name] = api::Quantity{std::string(v)};
  return OkStatus();
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"kubeconfig", false,
       [](std::string_view v, OperatorOptions& o) {
         o.kubeconfig = v;
         return OkStatus();
       }},
      {"namespace", false,
       [](std::string_view v, OperatorOptions& o) {
         o.watch_namespace = v;
         return OkStatus();
       }},
      {"leader-elect", true,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.leader_elect, ParseBool(v));
         return OkStatus();
       }},
      {"leader-election-namespace", false,
       [](std::string_view v, OperatorOptions& o) {
         o.leader_election_namespace = v;
         return OkStatus();
       }},
      {"leader-election-id", false,
       [](std::string_view v, OperatorOptions& o) {
         if (v.empty()) return InvalidError("must not be empty");
         o.leader_election_id = v;
         return OkStatus();
       }},
      {"metrics-bind-address", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.metrics_bind_address, ParseBindAddress(v));
         return OkStatus();
       }},
      {"health-probe-bind-address", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.health_probe_bind_address, ParseBindAddress(v));
         return OkStatus();
       }},
      {"max-concurrent-reconciles", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.max_concurrent_reconciles, ParseCount(v, 1));
         return OkStatus();
       }},
      {"proxmox-max-inflight", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.proxmox_max_inflight, ParseCount(v, 0));
         return OkStatus();
       }},
      {"inventory-period", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.inventory_period, ParsePositiveDuration(v));
         return OkStatus();
       }},
      {"agent-period", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.agent_period, ParsePositiveDuration(v));
         return OkStatus();
       }},
      {"agent-retry", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.agent_retry, ParsePositiveDuration(v));
         return OkStatus();
       }},
      {"task-poll", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.task_poll, ParsePositiveDuration(v));
         return OkStatus();
       }},
      {"probe-networks", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.probe_networks, controllers::ParseCidrList(v));
         return OkStatus();
       }},
      {"log-level", false,
       [](std::string_view v, OperatorOptions& o) {
         RETURN_IF_ERROR(CheckLogLevel(v));
         o.log.level = v;
         return OkStatus();
       }},
      {"log-format", false,
       [](std::string_view v, OperatorOptions& o) {
         RETURN_IF_ERROR(CheckLogFormat(v));
         o.log.format = v;
         return OkStatus();
       }},
      {"builder-image", false,
       [](std::string_view v, OperatorOptions& o) {
         if (v.empty()) return InvalidError("must not be empty");
         o.builder.image = v;
         return OkStatus();
       }},
      {"builder-command", false,
       [](std::string_view v, OperatorOptions& o) {
         if (v.empty()) return InvalidError("must not be empty");
         o.builder.command = v;
         return OkStatus();
       }},
      {"builder-cpu-request", false,
       [](std::string_view v, OperatorOptions& o) {
         return SetQuantity(o.builder.resources.requests, "cpu", v);
       }},
      {"builder-memory-request", false,
       [](std::string_view v, OperatorOptions& o) {
         return SetQuantity(o.builder.resources.requests, "memory", v);
       }},
      {"builder-memory-limit", false,
       [](std::string_view v, OperatorOptions& o) {
         return SetQuantity(o.builder.resources.limits, "memory", v);
       }},
      {"builder-kvm-resource", false,
       [](std::string_view v, OperatorOptions& o) {
         o.builder.kvm_resource = v;
         return OkStatus();
       }},
      {"builder-service-account", false,
       [](std::string_view v, OperatorOptions& o) {
         o.builder.service_account = v;
         return OkStatus();
       }},
      {"builder-nix-option", false,
       [](std::string_view v, OperatorOptions& o) {
         const size_t equals = v.find('=');
         if (equals == 0 || equals == std::string_view::npos) {
           return InvalidError("'" + std::string(v) + "' is not NAME=VALUE");
         }
         o.builder.nix_options.emplace_back(v);
         return OkStatus();
       }},
      {"allow-local-flakes", true,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.allow_local_flakes, ParseBool(v));
         return OkStatus();
       }},
      {"graceful-shutdown", false,
       [](std::string_view v, OperatorOptions& o) {
         ASSIGN_OR_RETURN(o.graceful_shutdown, ParseDuration(v));
         return OkStatus();
       }},
  };
  return flags;
}

const Flag* FindFlag(std::string_view name) {
  for (const Flag& flag : Flags()) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// A number then a unit, the unit's length in milliseconds.
std::optional<double> UnitMillis(std::string_view unit) {
  if (unit == "h") return 3600000.0;
  if (unit == "m") return 60000.0;
  if (unit == "s") return 1000.0;
  if (unit == "ms") return 1.0;
  return std::nullopt;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return InvalidError("'" + std::string(text) + "' is not a duration (" + std::string(why) +
                        "; e.g. 500ms, 30s, 2m, 1h30m)");
  };
  if (text == "0") return milliseconds(0);
  if (text.empty()) return bad("empty");
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t number_start = i;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
      ++i;
    }
    const std::string_view number_text = text.substr(number_start, i - number_start);
    const size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);

    double number = 0;
    const auto [end, ec] =
        std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
    if (number_text.empty() || ec != std::errc() ||
        end != number_text.data() + number_text.size()) {
      return bad("expected a number");
    }
    const std::optional<double> unit_ms = UnitMillis(unit);
    if (!unit_ms) return bad(unit.empty() ? "missing unit" : "unknown unit");
    total += number * *unit_ms;
  }
  // A year is plenty for anything this process waits on.
  if (total > 365.0 * 24 * 3600 * 1000) return bad("too long");
  return milliseconds(std::llround(total));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  if (d.count() == 0) return "0s";
  std::string out;
  long long left = d.count();
  for (const auto& [unit, size] :
       {std::pair<const char*, long long>{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}}) {
    if (left >= size) {
      out += std::to_string(left / size) + unit;
      left %= size;
    }
  }
  return out;
}

Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine result;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      result.help = true;
      continue;
    }
    if (arg.substr(0, 2) != "--" || arg.size() == 2) {
      return InvalidError("unexpected argument '" + std::string(arg) + "'");
    }
    const std::string_view body = arg.substr(2);
    const size_t equals = body.find('=');
    const std::string_view name = body.substr(0, equals);
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) return InvalidError("unknown flag --" + std::string(name));

    std::string_view value;
    if (equals != std::string_view::npos) {
      value = body.substr(equals + 1);
    } else if (flag->boolean) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return InvalidError("flag --" + std::string(name) + " needs a value");
    }
    if (Status s = flag->apply(value, result.options); !s.ok()) {
      return InvalidError("--" + std::string(name) + ": " + s.message());
    }
  }
  return result;
}

std::string Usage() {
  return R"(usage: nixmox-operator [flags]

Runs the nixmox controllers (ProxmoxCluster, ProxmoxVM) against the Kubernetes
API server until SIGTERM or SIGINT.

  --kubeconfig PATH                  kubeconfig to use (default: in-cluster
                                     service account, else $KUBECONFIG, else ~/.kube/config)
  --namespace NS                     watch only this namespace (default: all)
  --leader-elect[=true|false]        run the controllers only while holding the lease
  --leader-election-namespace NS     namespace of the Lease (default: the pod's namespace,
                                     else "default")
  --leader-election-id NAME          name of the Lease (default nixmox-operator)
  --metrics-bind-address HOST:PORT   serve /metrics here (default 127.0.0.1:8080; 0 disables)
  --health-probe-bind-address HOST:PORT
                                     serve /healthz and /readyz here (default 0.0.0.0:8081;
                                     0 disables)
  --max-concurrent-reconciles N      workers per controller (default 4)
  --proxmox-max-inflight N           cap on concurrent Proxmox requests per cluster
                                     (default 8; 0: the cluster spec alone decides)
  --inventory-period DURATION        Proxmox inventory poll period for every cluster
                                     (default: each ProxmoxCluster's spec)
  --agent-period DURATION            how often the guest agent is asked for addresses
                                     (default 60s; longer when re-asking every running
                                     VM would take over half a cluster's request budget)
  --agent-retry DURATION             how soon a guest agent that does not answer yet (a
                                     guest booting) is asked again, doubling (default 5s)
  --task-poll DURATION               how often a running Proxmox task is looked at
                                     (default 2s)
  --probe-networks CIDR,CIDR         probe reachability only inside these networks
                                     (default: every address)
  --log-level LEVEL                  trace, debug, info, warn or error (default info)
  --log-format FORMAT                text or json (default text)
  --graceful-shutdown DURATION       time in-flight reconciles get on shutdown (default 30s)
  --builder-image IMAGE              container image of NixImage builder Jobs
                                     (default ghcr.io/nixmox/nixmox-builder:0.1.0)
  --builder-command PATH             what the builder container runs (default nixmox-builder)
  --builder-cpu-request Q            builder CPU request, e.g. 2 (spec.builder.resources wins)
  --builder-memory-request Q         builder memory request, e.g. 4Gi
  --builder-memory-limit Q           builder memory limit, e.g. 8Gi
  --builder-kvm-resource NAME        device-plugin resource giving /dev/kvm, e.g.
                                     devices.kubevirt.io/kvm (default: none; kvm Required
                                     then mounts the host's /dev/kvm, privileged)
  --builder-service-account NAME     service account of builder Pods (default: the
                                     namespace's default; its token is not mounted)
  --builder-nix-option NAME=VALUE    nix.conf option for every build (repeatable)
  --allow-local-flakes               accept path: and /absolute flakes (builders that can
                                     see them, like the sandbox's)
  --help                             show this help

Durations: 500ms, 30s, 2m, 1h30m.
)";
}

std::string DescribeOptions(const OperatorOptions& options) {
  std::ostringstream out;
  out << "namespace=" << (options.watch_namespace.empty() ? "<all>" : options.watch_namespace);
  out << " kubeconfig=" << (options.kubeconfig.empty() ? "<default>" : options.kubeconfig);
  if (options.leader_elect) {
    out << " leader-elect=true lease=" << options.leader_election_namespace << "/"
        << options.leader_election_id;
  } else {
    out << " leader-elect=false";
  }
  out << " metrics=" << options.metrics_bind_address
      << " health=" << options.health_probe_bind_address
      << " max-concurrent-reconciles=" << options.max_concurrent_reconciles
      << " proxmox-max-inflight=" << options.proxmox_max_inflight << " inventory-period="
      << (options.inventory_period ? FormatDuration(*options.inventory_period) : "<spec>")
      << " agent-period=" << FormatDuration(options.agent_period)
      << " agent-retry=" << FormatDuration(options.agent_retry)
      << " task-poll=" << FormatDuration(options.task_poll) << " probe-networks=";
  if (options.probe_networks.empty()) out << "<all>";
  for (size_t i = 0; i < options.probe_networks.size(); ++i) {
    out << (i ? "," : "") << options.probe_networks[i].ToString();
  }
  out << " log=" << options.log.level << "/" << options.log.format
      << " graceful-shutdown=" << FormatDuration(options.graceful_shutdown)
      << " builder-image=" << options.builder.image
      << " builder-kvm-resource=" << (options.builder.kvm_resource.empty()
                                          ? "<none>"
                                          : options.builder.kvm_resource)
      << " allow-local-flakes=" << (options.allow_local_flakes ? "true" : "false");
  return out.str();
}

std::string PodNamespace(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string ns;
  std::getline(in, ns);
  while (!ns.empty() && std::isspace(static_cast<unsigned char>(ns.back()))) ns.pop_back();
  return ns.empty() ? "default" : ns;
}

}  // namespace nixmox::cmd
