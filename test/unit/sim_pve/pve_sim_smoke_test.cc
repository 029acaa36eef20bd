// Starts the real pve-sim binary on a free loopback port, reads the URL it
// prints, and drives it with the real http::Client.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "src/http/http.h"

namespace nixmox {
namespace {

class PveSimProcess {
 public:
  PveSimProcess() {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl(PVE_SIM_BINARY, PVE_SIM_BINARY, "--listen", "127.0.0.1:0", "--token",
            "root@pam!smoke=0a1b2c3d", "--task-ms", "50", "--auth-fail-delay-ms", "10",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[256] = {0};
    if (out_ != nullptr && fgets(line, sizeof line, out_) != nullptr) {
      url_ = line;
      while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
    }
  }
  ~PveSimProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (out_ != nullptr) fclose(out_);
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string url_;
};

TEST(PveSimSmokeTest, BinaryServesVersionAndRejectsBadTokens) {
  PveSimProcess sim;
  ASSERT_EQ(sim.url().rfind("http://127.0.0.1:", 0), 0u) << sim.url();
  http::ClientOptions opts;
  opts.base_url = sim.url();
  auto client = http::NewClient(opts);
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  http::Request req;
  req.target = "/api2/json/version";
  req.headers.Set("Authorization", "PVEAPIToken=root@pam!smoke=0a1b2c3d");
  auto resp = (*client)->Send(req);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->headers.Get("Content-Type"), "application/json;charset=UTF-8");
  EXPECT_NE(resp->body.find("\"release\":\"8.4\""), std::string::npos);

  req.headers.Set("Authorization", "PVEAPIToken=root@pam!smoke=wrong");
  resp = (*client)->Send(req);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 401);
  EXPECT_EQ(resp->reason, "Authentication failed!");

  http::Request bad;
  bad.target = "/api2/json/nodes/pve1/qemu/100/config";
  bad.headers.Set("Authorization", "PVEAPIToken=root@pam!smoke=0a1b2c3d");
  resp = (*client)->Send(bad);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 500);
  EXPECT_EQ(resp->reason, "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist");
}

}  // namespace
}  // namespace nixmox
