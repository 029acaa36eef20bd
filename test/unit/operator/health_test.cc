#include "operator/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <atomic>

namespace nixmox::cmd {
namespace {

using ::testing::HasSubstr;

http::Response Get(const std::string& base_url, const std::string& path,
                   const std::string& method = "GET") {
  http::ClientOptions options;
  options.base_url = base_url;
  auto client = http::NewClient(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return {};
  http::Request request;
  request.method = method;
  request.target = path;
  auto response = (*client)->Send(request);
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  return response.ok() ? *response : http::Response{};
}

class EndpointsTest : public ::testing::Test {
 protected:
  EndpointsTest() {
    prometheus::BuildCounter()
        .Name("nixmox_test_things_total")
        .Help("things counted by the test")
        .Register(registry_)
        .Add({})
        .Increment(3);
  }

  // Health and metrics on one server (equal addresses), readiness from ready_.
  std::unique_ptr<Endpoints> StartShared() {
    EndpointOptions options;
    options.health_address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    options.ready = [this] { return ready_.load(); };
    options.registry = &registry_;
    auto endpoints = Endpoints::Start(options);
    EXPECT_TRUE(endpoints.ok()) << endpoints.status().ToString();
    return endpoints.ok() ? std::move(*endpoints) : nullptr;
  }

  prometheus::Registry registry_;
  std::atomic<bool> ready_{false};
};

TEST_F(EndpointsTest, HealthzAnswersWhetherOrNotReady) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  EXPECT_EQ(Get(*endpoints->health_url(), "/healthz").status, 200);
  ready_ = true;
  EXPECT_EQ(Get(*endpoints->health_url(), "/healthz").status, 200);
}

TEST_F(EndpointsTest, ReadyzIs503BeforeCachesSyncAnd200After) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  EXPECT_EQ(Get(*endpoints->health_url(), "/readyz").status, 503);
  ready_ = true;
  EXPECT_EQ(Get(*endpoints->health_url(), "/readyz").status, 200);
}

TEST_F(EndpointsTest, MetricsServesTheRegistryInPrometheusTextFormat) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  const http::Response response = Get(*endpoints->metrics_url(), "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.headers.Get("Content-Type").value_or(""), HasSubstr("version=0.0.4"));
  EXPECT_THAT(response.body, HasSubstr("# TYPE nixmox_test_things_total counter"));
  EXPECT_THAT(response.body, HasSubstr("nixmox_test_things_total 3"));
}

TEST_F(EndpointsTest, EqualAddressesShareOneServer) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  ASSERT_TRUE(endpoints->health_url() && endpoints->metrics_url());
  EXPECT_EQ(*endpoints->health_url(), *endpoints->metrics_url());
}

TEST_F(EndpointsTest, SeparateServersServeOnlyTheirOwnPaths) {
  EndpointOptions options;
  options.health_address = "0.0.0.0:0";
  options.metrics_address = "127.0.0.1:0";
  options.ready = [] { return true; };
  options.registry = &registry_;
  auto endpoints = Endpoints::Start(options);
  ASSERT_TRUE(endpoints.ok()) << endpoints.status().ToString();
  const std::string health = *(*endpoints)->health_url();
  const std::string metrics = *(*endpoints)->metrics_url();
  EXPECT_NE(health, metrics);
  EXPECT_EQ(Get(health, "/readyz").status, 200);
  EXPECT_EQ(Get(health, "/metrics").status, 404);
  EXPECT_EQ(Get(metrics, "/metrics").status, 200);
  EXPECT_EQ(Get(metrics, "/healthz").status, 404);
}

TEST_F(EndpointsTest, ZeroAddressDisablesThatServer) {
  EndpointOptions options;
  options.health_address = "127.0.0.1:0";
  options.metrics_address = "0";
  options.ready = [] { return true; };
  auto endpoints = Endpoints::Start(options);
  ASSERT_TRUE(endpoints.ok()) << endpoints.status().ToString();
  EXPECT_FALSE((*endpoints)->metrics_url().has_value());
  EXPECT_EQ(Get(*(*endpoints)->health_url(), "/metrics").status, 404);

  options.health_address = "0";
  options.metrics_address = "127.0.0.1:0";
  options.registry = &registry_;
  auto metrics_only = Endpoints::Start(options);
  ASSERT_TRUE(metrics_only.ok()) << metrics_only.status().ToString();
  EXPECT_FALSE((*metrics_only)->health_url().has_value());
  EXPECT_EQ(Get(*(*metrics_only)->metrics_url(), "/metrics").status, 200);
}

TEST_F(EndpointsTest, EachScrapeRefreshesOnDemandGauges) {
  prometheus::Gauge& leading = prometheus::BuildGauge()
                                   .Name("nixmox_test_leading")
                                   .Help("set before each scrape")
                                   .Register(registry_)
                                   .Add({});
  std::atomic<bool> is_leader{false};
  EndpointOptions options;
  options.health_address = "0";
  options.metrics_address = "127.0.0.1:0";
  options.registry = &registry_;
  options.before_scrape = [&] { leading.Set(is_leader ? 1 : 0); };
  auto endpoints = Endpoints::Start(options);
  ASSERT_TRUE(endpoints.ok()) << endpoints.status().ToString();
  EXPECT_THAT(Get(*(*endpoints)->metrics_url(), "/metrics").body,
              HasSubstr("nixmox_test_leading 0"));
  is_leader = true;
  EXPECT_THAT(Get(*(*endpoints)->metrics_url(), "/metrics").body,
              HasSubstr("nixmox_test_leading 1"));
}

TEST_F(EndpointsTest, OnlyGetAndHeadAreAllowed) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  const http::Response post = Get(*endpoints->health_url(), "/healthz", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.headers.Get("Allow").value_or(""), "GET, HEAD");
  EXPECT_EQ(Get(*endpoints->health_url(), "/healthz", "HEAD").status, 200);
  EXPECT_EQ(Get(*endpoints->health_url(), "/nothing").status, 404);
}

TEST_F(EndpointsTest, BadAddressIsInvalidAndMetricsNeedARegistry) {
  EndpointOptions options;
  options.health_address = "nowhere";
  options.metrics_address = "0";
  EXPECT_EQ(Endpoints::Start(options).status().code(), Code::kInvalid);

  options.health_address = "0";
  options.metrics_address = "127.0.0.1:0";
  options.registry = nullptr;
  EXPECT_EQ(Endpoints::Start(options).status().code(), Code::kInvalid);
}

TEST_F(EndpointsTest, StopClosesThePort) {
  auto endpoints = StartShared();
  ASSERT_NE(endpoints, nullptr);
  const std::string url = *endpoints->health_url();
  endpoints->Stop();
  http::ClientOptions options;
  options.base_url = url;
  auto client = http::NewClient(options);
  ASSERT_TRUE(client.ok());
  http::Request request;
  request.target = "/healthz";
  EXPECT_EQ((*client)->Send(request).status().code(), Code::kRetryable);
}

}  // namespace
}  // namespace nixmox::cmd
