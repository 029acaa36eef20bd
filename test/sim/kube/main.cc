// kubesim: serves the Kubernetes API test server on a port.
//
//   kubesim [--listen HOST:PORT] [--token T] [--kubeconfig-out PATH] [--tls]
//           [--run-jobs] [--work-dir DIR] [--watch-window N] [--log-level L]
//
// Prints "kubesim: serving on URL" on stdout once it accepts connections (and
// the kubeconfig, if asked for, is written). Runs until SIGINT or SIGTERM.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "src/common/logging.h"
#include "src/http/http.h"
#include "src/http/tls_util.h"
#include "test/sim/kube/job_runner.h"
#include "test/sim/kube/kubesim.h"

namespace {

namespace fs = std::filesystem;
using nixmox::kubesim::json;

void Usage() {
  std::cerr << "usage: kubesim [--listen HOST:PORT] [--token T] [--kubeconfig-out PATH] [--tls]\n"
               "               [--run-jobs] [--work-dir DIR] [--watch-window N]\n"
               "               [--log-level L]\n";
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned n =
        (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], k[n & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned n = (unsigned char)in[i] << 16;
    out += {k[n >> 18], k[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned n = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], '='};
  }
  return out;
}

// A kubeconfig in YAML (JSON is valid YAML, and kubectl reads either).
bool WriteKubeconfig(const fs::path& path, const std::string& url, const std::string& token,
                     const std::string& ca_pem) {
  json cluster = {{"server", url}};
  if (!ca_pem.empty()) cluster["certificate-authority-data"] = Base64(ca_pem);
  json user = json::object();
  if (!token.empty()) user["token"] = token;
  json config = {
      {"apiVersion", "v1"},
      {"kind", "Config"},
      {"clusters", {{{"name", "kubesim"}, {"cluster", cluster}}}},
      {"users", {{{"name", "kubesim"}, {"user", user}}}},
      {"contexts",
       {{{"name", "kubesim"},
         {"context", {{"cluster", "kubesim"}, {"user", "kubesim"}, {"namespace", "default"}}}}}},
      {"current-context", "kubesim"},
      {"preferences", json::object()}};
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    out << config.dump(2) << "\n";
    if (!out) return false;
  }
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::string token;
  std::string kubeconfig_out;
  std::string work_dir;
  std::string log_level = "info";
  bool tls = false;
  bool run_jobs = false;
  size_t watch_window = 10000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--listen")
      listen = value();
    else if (a == "--token")
      token = value();
    else if (a == "--kubeconfig-out")
      kubeconfig_out = value();
    else if (a == "--work-dir")
      work_dir = value();
    else if (a == "--log-level")
      log_level = value();
    else if (a == "--tls")
      tls = true;
    else if (a == "--run-jobs")
      run_jobs = true;
    else if (a == "--watch-window") {
      try {
        watch_window = std::stoul(value());
        if (watch_window == 0) throw std::invalid_argument("0");
      } catch (const std::exception&) {
        Usage();
        return 2;
      }
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::cerr << "kubesim: unknown flag " << a << "\n";
      Usage();
      return 2;
    }
  }
  if (auto st = nixmox::SetupLogging({log_level, "text"}); !st.ok()) {
    std::cerr << "kubesim: " << st.ToString() << "\n";
    return 2;
  }

  // Block the stop signals before any thread starts, so sigwait sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  fs::path scratch = fs::temp_directory_path() / ("kubesim-" + std::to_string(getpid()));
  fs::create_directories(scratch);

  nixmox::http::ServerOptions server_options;
  server_options.listen = listen;
  std::string ca_pem;
  if (tls) {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto cert =
        nixmox::http::GenerateSelfSignedCert("kubesim", {"127.0.0.1", "::1", "localhost", host});
    if (!cert.ok()) {
      std::cerr << "kubesim: " << cert.status().ToString() << "\n";
      return 1;
    }
    server_options.tls_cert_file = (scratch / "tls.crt").string();
    server_options.tls_key_file = (scratch / "tls.key").string();
    if (auto st = nixmox::http::WritePemFile(server_options.tls_cert_file, cert->cert_pem);
        !st.ok()) {
      std::cerr << "kubesim: " << st.ToString() << "\n";
      return 1;
    }
    if (auto st = nixmox::http::WritePemFile(server_options.tls_key_file, cert->key_pem);
        !st.ok()) {
      std::cerr << "kubesim: " << st.ToString() << "\n";
      return 1;
    }
    ca_pem = cert->cert_pem;
  }

  nixmox::kubesim::Options options;
  options.token = token;
  options.watch_window = watch_window;
  auto sim = std::make_unique<nixmox::kubesim::KubeSim>(options);
  std::unique_ptr<nixmox::kubesim::JobRunner> runner;
  if (run_jobs) {
    nixmox::kubesim::JobRunnerOptions ro;
    ro.work_dir = work_dir.empty() ? scratch / "pods" : fs::path(work_dir);
    runner = std::make_unique<nixmox::kubesim::JobRunner>(*sim, ro);
    runner->Start();
  }
  auto server =
      nixmox::http::StartServer(server_options, [&sim](const nixmox::http::ServerRequest& r) {
        auto resp = sim->Handle(r);
        // Method, path and status only: never headers (the token) or bodies (secrets).
        spdlog::debug("{} {} -> {}", r.method, r.path, resp.status);
        return resp;
      });
  if (!server.ok()) {
    std::cerr << "kubesim: " << server.status().ToString() << "\n";
    return 1;
  }
  std::string url = (*server)->url();
  std::string address = url.substr(url.find("://") + 3);
  sim->SetServerAddress(address);
  if (!kubeconfig_out.empty() && !WriteKubeconfig(kubeconfig_out, url, token, ca_pem)) {
    std::cerr << "kubesim: cannot write " << kubeconfig_out << "\n";
    return 1;
  }
  std::cout << "kubesim: serving on " << url << std::endl;

  int sig = 0;
  sigwait(&stop, &sig);
  sim->Shutdown();
  (*server)->Stop();
  runner.reset();
  server->reset();
  sim.reset();
  std::error_code ec;
  fs::remove_all(scratch, ec);
  return 0;
}
