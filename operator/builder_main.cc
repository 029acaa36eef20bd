// nixmox-builder: builds a flake's image with nix and uploads it to Proxmox
// VE (src/nix/builder.h has the whole contract). The NixImage controller runs
// it in a Job and reads the JSON result from the termination message.
//
// Exit codes (src/nix/result.h): 0 ok (or unchanged), 2 bad arguments,
// 3 build failed, 4 upload failed.
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "src/common/logging.h"
#include "src/nix/builder.h"
#include "src/nix/process.h"
#include "src/nix/result.h"

namespace nixmox::nix {
namespace {

void WriteResult(const std::string& path, const BuildResult& result) {
  const std::string message = ToMessage(result);
  std::ofstream out(path, std::ios::trunc);
  out << message;
  out.flush();
  if (!out) spdlog::error("cannot write the result to {}", path);
  spdlog::info("result: {}", message);
}

int Main(int argc, char** argv) {
  if (Status s = SetupLogging({}); !s.ok()) std::cerr << s.ToString() << "\n";
  const std::vector<std::string> args(argv + 1, argv + argc);

  auto bad_arguments = [&](const std::string& error) {
    spdlog::error("{}", error);
    std::cerr << BuilderUsage();
    BuildResult result;
    result.stage = Stage::kArguments;
    result.error = error;
    WriteResult(ResultFileFromArgs(args), result);
    return kExitBadArguments;
  };

  auto command_line = ParseBuilderArgs(args);
  if (!command_line.ok()) return bad_arguments(command_line.status().message());
  if (command_line->help) {
    std::cout << BuilderUsage();
    return kExitOk;
  }
  const BuilderOptions& options = command_line->options;

  const std::vector<std::string> env = CurrentEnvironment();
  auto secrets = ReadSecrets(env);
  if (!secrets.ok()) return bad_arguments(secrets.status().message());

  BuilderEnvironment environment;
  environment.env = env;
  environment.progress = &std::cout;
  spdlog::info("nixmox-builder {}: {}#{} ({}) to {} storage {} as {}", NIXMOX_VERSION,
               options.flake, options.attribute, options.format, options.pve_url, options.storage,
               secrets->token.ToString());
  BuilderOutcome outcome = RunBuilder(options, *secrets, environment);
  WriteResult(options.result_file, outcome.result);
  return outcome.exit_code;
}

}  // namespace
}  // namespace nixmox::nix

int main(int argc, char** argv) { return nixmox::nix::Main(argc, argv); }
