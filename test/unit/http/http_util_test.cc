#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "src/http/http.h"

namespace nixmox::http {
namespace {

TEST(HeadersTest, GetIsCaseInsensitive) {
  Headers h;
  h.Add("Content-Type", "application/json");
  EXPECT_EQ(h.Get("content-type"), "application/json");
  EXPECT_EQ(h.Get("CONTENT-TYPE"), "application/json");
  EXPECT_TRUE(h.Has("cOnTeNt-TyPe"));
  EXPECT_FALSE(h.Has("Content-Length"));
}

TEST(HeadersTest, SetReplacesEveryValueOfThatNameWhateverItsCase) {
  Headers h;
  h.Add("X-Thing", "1");
  h.Add("x-thing", "2");
  h.Add("Other", "o");
  h.Set("X-THING", "3");
  ASSERT_EQ(h.entries().size(), 2u);
  EXPECT_EQ(h.Get("x-thing"), "3");
  EXPECT_EQ(h.Get("Other"), "o");
}

TEST(HeadersTest, AddKeepsOrderAndGetReturnsTheFirst) {
  Headers h;
  h.Add("Warning", "first");
  h.Add("WARNING", "second");
  EXPECT_EQ(h.Get("warning"), "first");
  ASSERT_EQ(h.entries().size(), 2u);
  EXPECT_EQ(h.entries()[1].second, "second");
  h.Remove("Warning");
  EXPECT_TRUE(h.entries().empty());
}

TEST(EqualsIgnoreCaseTest, ComparesAsciiWithoutCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Authorization", "authorization"));
  EXPECT_FALSE(EqualsIgnoreCase("Authorization", "Authorizatio"));
  EXPECT_FALSE(EqualsIgnoreCase("a", "b"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
}

TEST(PercentEncodeTest, KeepsUnreservedAndEncodesEverythingElse) {
  EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b/c?d=e&f"), "a%20b%2Fc%3Fd%3De%26f");
  EXPECT_EQ(PercentEncode("root@pam!tok"), "root%40pam%21tok");
  EXPECT_EQ(PercentEncode("\xc3\xa9"), "%C3%A9");  // UTF-8 bytes one by one
}

TEST(PercentDecodeTest, DecodesBothHexCases) {
  EXPECT_EQ(PercentDecode("a%2fb%2Fc"), "a/b/c");
  EXPECT_EQ(PercentDecode("%C3%A9"), "\xc3\xa9");
}

TEST(PercentDecodeTest, LeavesMalformedEscapesAlone) {
  EXPECT_EQ(PercentDecode("100%"), "100%");
  EXPECT_EQ(PercentDecode("%4"), "%4");
  EXPECT_EQ(PercentDecode("%zz"), "%zz");
  EXPECT_EQ(PercentDecode("%%41"), "%A");
}

TEST(PercentDecodeTest, DecodesEscapeAtTheVeryEnd) {
  EXPECT_EQ(PercentDecode("a%41"), "aA");
  EXPECT_EQ(PercentDecode("%41"), "A");
}

TEST(PercentDecodeTest, PlusIsSpaceOnlyWhenAsked) {
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_EQ(PercentDecode("a%2Bb", true), "a+b");
}

TEST(PercentDecodeTest, DecodesNulByte) {
  const std::string decoded = PercentDecode("a%00b");
  ASSERT_EQ(decoded.size(), 3u);
  EXPECT_EQ(decoded[1], '\0');
}

TEST(QueryTest, EncodeThenDecodeRoundTrips) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"labelSelector", "app=web,tier in (a,b)"}, {"empty", ""}, {"k y", "v&w=x+y"}};
  EXPECT_EQ(DecodeQuery(EncodeQuery(pairs)), pairs);
}

TEST(QueryTest, EncodeEscapesSeparators) {
  EXPECT_EQ(EncodeQuery({{"a", "1"}, {"b", "x y"}}), "a=1&b=x%20y");
  EXPECT_EQ(EncodeQuery({{"a&b", "c=d"}}), "a%26b=c%3Dd");
  EXPECT_EQ(EncodeQuery({}), "");
}

TEST(QueryTest, DecodeHandlesFormEncodingAndOddShapes) {
  const auto q = DecodeQuery("a=1&&b=x+y&flag&c=%3D&d=e=f");
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"b", "x y"}));
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"c", "="}));
  EXPECT_EQ(q[4], (std::pair<std::string, std::string>{"d", "e=f"}));
  EXPECT_TRUE(DecodeQuery("").empty());
}

TEST(ServerRequestTest, QueryValueFindsTheFirstMatch) {
  ServerRequest r;
  r.query = {{"watch", "1"}, {"watch", "0"}};
  EXPECT_EQ(r.QueryValue("watch"), "1");
  EXPECT_EQ(r.QueryValue("limit"), std::nullopt);
}

TEST(StandardReasonTest, KnowsCommonStatuses) {
  EXPECT_EQ(StandardReason(200), "OK");
  EXPECT_EQ(StandardReason(404), "Not Found");
  EXPECT_EQ(StandardReason(500), "Internal Server Error");
}

TEST(RequestTest, SetBodyReplacesBodyAndContentType) {
  Request r;
  r.body.push_back(BodyPart::File("/tmp/x"));
  r.SetBody("application/json", "{}");
  ASSERT_EQ(r.body.size(), 1u);
  EXPECT_EQ(r.body[0].data, "{}");
  EXPECT_TRUE(r.body[0].file.empty());
  EXPECT_EQ(r.headers.Get("content-type"), "application/json");
}

TEST(CancelTokenTest, RunsCallbacksOnceOnCancel) {
  CancelToken token;
  int calls = 0;
  token.OnCancel([&] { ++calls; });
  EXPECT_FALSE(token.cancelled());
  token.Cancel();
  token.Cancel();
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(calls, 1);
}

TEST(CancelTokenTest, CallbackRegisteredAfterCancelRunsAtOnce) {
  CancelToken token;
  token.Cancel();
  bool ran = false;
  token.OnCancel([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(CancelTokenTest, CancelFromAnotherThreadIsSeen) {
  CancelToken token;
  std::atomic<int> calls{0};
  for (int i = 0; i < 10; ++i) token.OnCancel([&] { ++calls; });
  std::thread t([&] { token.Cancel(); });
  t.join();
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(calls.load(), 10);
}

}  // namespace
}  // namespace nixmox::http
