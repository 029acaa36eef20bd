#include "src/kube/informer.h"

#include <gtest/gtest.h>

#include <deque>

#include "src/kube/cache_reader.h"

namespace nixmox::kube {
namespace {

Object Vm(const std::string& ns, const std::string& name, const std::string& rv,
          const std::string& image = "") {
  Object o = {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", rv}}}};
  if (!image.empty()) {
    o["spec"]["image"] = image;
    o["metadata"]["labels"]["image"] = image;
  }
  return o;
}

WatchEvent Ev(WatchEvent::Type t, Object o) { return WatchEvent{t, std::move(o)}; }

// Scripted list and watch results; records what each call asked for.
class FakeListerWatcher : public ListerWatcher {
 public:
  struct Watch {
    std::vector<WatchEvent> events;
    Status end;
  };
  std::deque<Result<ObjectList>> lists;
  std::deque<Watch> watches;
  std::vector<ListOptions> list_calls, watch_calls;

  Result<ObjectList> List(const ListOptions& o) override {
    list_calls.push_back(o);
    if (lists.empty()) return InternalError("no scripted list");
    auto r = std::move(lists.front());
    lists.pop_front();
    return r;
  }
  Status Watch(const ListOptions& o, const std::function<bool(const WatchEvent&)>& on_event,
               std::shared_ptr<http::CancelToken>) override {
    watch_calls.push_back(o);
    if (watches.empty()) return CancelledError("no scripted watch");
    auto w = std::move(watches.front());
    watches.pop_front();
    for (const auto& e : w.events) {
      if (!on_event(e)) break;
    }
    return w.end;
  }
};

ObjectList ListOf(std::vector<Object> items, std::string rv, std::string cont = "") {
  return ObjectList{std::move(items), std::move(rv), std::move(cont)};
}

const ResourceType kVms{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"};

class InformerTest : public ::testing::Test {
 protected:
  InformerTest() {
    InformerOptions o;
    o.clock = &clock_;
    o.resync_period = std::chrono::minutes(10);
    informer_ = std::make_unique<Informer>(lw_, kVms, std::move(o));
    EventHandlers h;
    h.on_add = [this](const Object& obj) { log_.push_back("add " + KeyOf(obj)); };
    h.on_update = [this](const Object& old, const Object& cur) {
      log_.push_back("update " + KeyOf(cur) + " " + ResourceVersionOf(old) + "->" +
                     ResourceVersionOf(cur));
    };
    h.on_delete = [this](const Object& obj) { log_.push_back("delete " + KeyOf(obj)); };
    informer_->AddHandlers(h);
  }
  Status Round() { return informer_->reflector().ListAndWatch(nullptr); }

  FakeClock clock_;
  FakeListerWatcher lw_;
  std::unique_ptr<Informer> informer_;
  std::vector<std::string> log_;
};

TEST_F(InformerTest, ListThenWatchFillsCacheAndCallsHandlers) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1"), Vm("n", "b", "2")}, "10"));
  lw_.watches.push_back({{Ev(WatchEvent::Type::kAdded, Vm("n", "c", "11")),
                          Ev(WatchEvent::Type::kModified, Vm("n", "a", "12")),
                          Ev(WatchEvent::Type::kDeleted, Vm("n", "b", "13"))},
                         OkStatus()});
  EXPECT_FALSE(informer_->HasSynced());
  EXPECT_TRUE(Round().ok());
  EXPECT_TRUE(informer_->HasSynced());
  EXPECT_EQ(log_, (std::vector<std::string>{"add n/a", "add n/b", "add n/c", "update n/a 1->12",
                                            "delete n/b"}));
  EXPECT_EQ(informer_->store().Keys(), (std::vector<std::string>{"n/a", "n/c"}));
  EXPECT_EQ(ResourceVersionOf(*informer_->store().Get("n/a")), "12");
  // The watch started from the list's resourceVersion, with bookmarks and a timeout.
  ASSERT_EQ(lw_.watch_calls.size(), 1u);
  EXPECT_EQ(lw_.watch_calls[0].resource_version, "10");
  EXPECT_TRUE(lw_.watch_calls[0].allow_watch_bookmarks);
  ASSERT_TRUE(lw_.watch_calls[0].timeout_seconds.has_value());
  EXPECT_GE(*lw_.watch_calls[0].timeout_seconds, 300);
  EXPECT_LT(*lw_.watch_calls[0].timeout_seconds, 600);
}

TEST_F(InformerTest, ReconnectsFromLastSeenVersionIncludingBookmarks) {
  lw_.lists.push_back(ListOf({}, "10"));
  lw_.watches.push_back(
      {{Ev(WatchEvent::Type::kAdded, Vm("n", "a", "11")),
        Ev(WatchEvent::Type::kBookmark, {{"metadata", {{"resourceVersion", "15"}}}})},
       OkStatus()});  // the server ended the watch (timeout)
  lw_.watches.push_back({{}, RetryableError("connection reset")});
  lw_.watches.push_back({{Ev(WatchEvent::Type::kModified, Vm("n", "a", "16"))}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(Round().code(), Code::kRetryable);
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(lw_.list_calls.size(), 1u);  // never relisted
  ASSERT_EQ(lw_.watch_calls.size(), 3u);
  EXPECT_EQ(lw_.watch_calls[1].resource_version, "15");
  EXPECT_EQ(lw_.watch_calls[2].resource_version, "15");
  EXPECT_EQ(informer_->reflector().last_resource_version(), "16");
  EXPECT_EQ(informer_->store().size(), 1u);  // a bookmark is not an object
}

TEST_F(InformerTest, RelistAfterGoneReplacesCacheAndEmitsDeletes) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1"), Vm("n", "b", "2"), Vm("n", "c", "3")}, "10"));
  lw_.watches.push_back({{}, GoneError("too old resource version")});
  // While we were away: b was deleted, c changed, d appeared; a is unchanged.
  lw_.lists.push_back(ListOf({Vm("n", "a", "1"), Vm("n", "c", "30"), Vm("n", "d", "31")}, "40"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_EQ(Round().code(), Code::kGone);
  EXPECT_TRUE(informer_->reflector().needs_relist());
  log_.clear();
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(log_, (std::vector<std::string>{"delete n/b", "add n/d", "update n/c 3->30"}));
  EXPECT_EQ(informer_->store().Keys(), (std::vector<std::string>{"n/a", "n/c", "n/d"}));
  EXPECT_EQ(lw_.watch_calls.back().resource_version, "40");
}

TEST_F(InformerTest, ErrorEventStatusForcesRelist) {
  lw_.lists.push_back(ListOf({}, "10"));
  lw_.watches.push_back({{}, InternalError("ERROR event: etcd fell over")});
  lw_.lists.push_back(ListOf({Vm("n", "x", "50")}, "50"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_EQ(Round().code(), Code::kInternal);
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(lw_.list_calls.size(), 2u);
  EXPECT_EQ(informer_->store().size(), 1u);
}

TEST_F(InformerTest, ListFollowsPagesBeforeReplacing) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1")}, "10", "page2"));
  lw_.lists.push_back(ListOf({Vm("n", "b", "2")}, "10"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  ASSERT_EQ(lw_.list_calls.size(), 2u);
  EXPECT_EQ(lw_.list_calls[1].continue_token, "page2");
  EXPECT_EQ(informer_->store().size(), 2u);
}

TEST_F(InformerTest, ListFailingMidwayLeavesNoPagesBehind) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1")}, "10", "page2"));
  lw_.lists.push_back(RetryableError("connection reset"));
  lw_.lists.push_back(ListOf({Vm("n", "b", "2")}, "20"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_EQ(Round().code(), Code::kRetryable);
  EXPECT_FALSE(informer_->HasSynced());
  EXPECT_EQ(informer_->store().size(), 0u);
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(informer_->store().Keys(), (std::vector<std::string>{"n/b"}));
  EXPECT_EQ(log_, (std::vector<std::string>{"add n/b"}));
  EXPECT_EQ(lw_.watch_calls.back().resource_version, "20");
}

TEST_F(InformerTest, HandlersGetTheObjectsExactlyAsListedAndWatched) {
  Object a = Vm("n", "a", "1", "img1");
  a["status"] = {{"vmid", 100}, {"ratio", 0.25}, {"conditions", {{{"type", "Ready"}}}}};
  Object a2 = a;
  a2["metadata"]["resourceVersion"] = "11";
  a2["status"]["vmid"] = -1;
  std::vector<Object> seen;
  EventHandlers h;
  h.on_add = [&](const Object& o) { seen.push_back(o); };
  h.on_update = [&](const Object& old, const Object& cur) {
    seen.push_back(old);
    seen.push_back(cur);
  };
  informer_->AddHandlers(h);
  lw_.lists.push_back(ListOf({a}, "10"));
  lw_.watches.push_back({{Ev(WatchEvent::Type::kModified, a2)}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(seen, (std::vector<Object>{a, a, a2}));
  EXPECT_EQ(*informer_->store().Get("n/a"), a2);
}

TEST_F(InformerTest, FailedListLeavesCacheUnsynced) {
  lw_.lists.push_back(ForbiddenError("cannot list proxmoxvms"));
  EXPECT_EQ(Round().code(), Code::kForbidden);
  EXPECT_FALSE(informer_->HasSynced());
  EXPECT_TRUE(lw_.watch_calls.empty());
}

TEST_F(InformerTest, IndexesFollowUpdatesAndDeletes) {
  ASSERT_TRUE(informer_
                  ->AddIndex("image",
                             [](const Object& o) {
                               std::string img = StringAt(o, {"spec", "image"});
                               return img.empty() ? std::vector<std::string>{}
                                                  : std::vector<std::string>{img};
                             })
                  .ok());
  EXPECT_EQ(informer_->AddIndex("image", NamespaceIndex).code(), Code::kAlreadyExists);
  lw_.lists.push_back(ListOf(
      {Vm("n", "a", "1", "img1"), Vm("n", "b", "2", "img1"), Vm("n", "c", "3", "img2")}, "10"));
  lw_.watches.push_back({{Ev(WatchEvent::Type::kModified, Vm("n", "b", "11", "img2")),
                          Ev(WatchEvent::Type::kDeleted, Vm("n", "c", "12", "img2"))},
                         OkStatus()});
  EXPECT_TRUE(Round().ok());
  auto img1 = informer_->store().ByIndex("image", "img1");
  ASSERT_TRUE(img1.ok());
  ASSERT_EQ(img1->size(), 1u);
  EXPECT_EQ((*img1)[0]->key(), "n/a");
  auto img2 = informer_->store().ByIndex("image", "img2");
  ASSERT_EQ(img2->size(), 1u);
  EXPECT_EQ(NameOf((*img2)[0]->Unpack()), "b");
  EXPECT_EQ(informer_->store().ByIndex("nope", "x").status().code(), Code::kNotFound);

  CacheReader reader;
  reader.Register(*informer_);
  auto by_index = reader.ByIndex(kVms, "image", "img2");
  ASSERT_TRUE(by_index.ok());
  ASSERT_EQ(by_index->size(), 1u);
  EXPECT_EQ((*by_index)[0], Vm("n", "b", "11", "img2"));
  EXPECT_EQ(*reader.KeysByIndex(kVms, "image", "img1"), (std::vector<std::string>{"n/a"}));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(*reader.IndexEntries(kVms, "image", "img"),
            (Entries{{"img1", "n/a"}, {"img2", "n/b"}}));
  EXPECT_EQ(reader.KeysByIndex(kVms, "nope", "x").status().code(), Code::kNotFound);
  EXPECT_EQ(reader.KeysByIndex(resources::Pods(), "image", "x").status().code(), Code::kInternal);
}

TEST_F(InformerTest, ResyncCallsUpdateForEveryObjectWhenDue) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1"), Vm("n", "b", "2")}, "10"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  log_.clear();
  informer_->ResyncIfDue();
  EXPECT_TRUE(log_.empty());
  clock_.Advance(std::chrono::minutes(10));
  informer_->ResyncIfDue();
  EXPECT_EQ(log_, (std::vector<std::string>{"update n/a 1->1", "update n/b 2->2"}));
  log_.clear();
  informer_->ResyncIfDue();  // not due again yet
  EXPECT_TRUE(log_.empty());
}

TEST_F(InformerTest, LateHandlerSeesExistingObjectsAsAdds) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1")}, "10"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  std::vector<std::string> late;
  informer_->AddHandlers({[&](const Object& o) { late.push_back(KeyOf(o)); }, nullptr, nullptr});
  EXPECT_EQ(late, (std::vector<std::string>{"n/a"}));
}

TEST_F(InformerTest, InitialListGoesToOnInitialAddWhenSet) {
  std::vector<std::string> initial, added;
  EventHandlers h;
  h.on_add = [&](const Object& o) { added.push_back(KeyOf(o)); };
  h.on_initial_add = [&](const Object& o) { initial.push_back(KeyOf(o)); };
  informer_->AddHandlers(h);
  lw_.lists.push_back(ListOf({Vm("n", "a", "1"), Vm("n", "b", "2")}, "10"));
  lw_.watches.push_back(
      {{Ev(WatchEvent::Type::kAdded, Vm("n", "c", "11"))}, GoneError("too old resource version")});
  // The relist finds d, created while the watch was down: a creation, not the initial list.
  lw_.lists.push_back(
      ListOf({Vm("n", "a", "1"), Vm("n", "b", "2"), Vm("n", "c", "11"), Vm("n", "d", "12")}, "20"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_EQ(Round().code(), Code::kGone);
  EXPECT_TRUE(Round().ok());
  EXPECT_EQ(initial, (std::vector<std::string>{"n/a", "n/b"}));
  EXPECT_EQ(added, (std::vector<std::string>{"n/c", "n/d"}));
  // A handler without on_initial_add still sees the initial list as adds.
  EXPECT_EQ(log_, (std::vector<std::string>{"add n/a", "add n/b", "add n/c", "add n/d"}));

  // A handler added late gets the cached objects as the initial list.
  std::vector<std::string> late_initial, late_added;
  EventHandlers late;
  late.on_add = [&](const Object& o) { late_added.push_back(KeyOf(o)); };
  late.on_initial_add = [&](const Object& o) { late_initial.push_back(KeyOf(o)); };
  informer_->AddHandlers(late);
  EXPECT_EQ(late_initial, (std::vector<std::string>{"n/a", "n/b", "n/c", "n/d"}));
  EXPECT_TRUE(late_added.empty());
}

TEST_F(InformerTest, CacheReaderGetsAndListsWithSelectors) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1", "img1"), Vm("m", "b", "2", "img2")}, "10"));
  lw_.watches.push_back({{}, OkStatus()});
  EXPECT_TRUE(Round().ok());
  CacheReader reader;
  reader.Register(*informer_);
  auto a = reader.Get(kVms, "n", "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(NameOf(*a), "a");
  EXPECT_EQ(reader.Get(kVms, "n", "b").status().code(), Code::kNotFound);
  EXPECT_EQ(reader.Get(resources::Pods(), "n", "a").status().code(), Code::kInternal);
  ListOptions o;
  EXPECT_EQ(reader.List(kVms, "", o)->items.size(), 2u);
  EXPECT_EQ(reader.List(kVms, "m", o)->items.size(), 1u);
  o.label_selector = "image=img1";
  auto l = reader.List(kVms, "", o);
  ASSERT_EQ(l->items.size(), 1u);
  EXPECT_EQ(NameOf(l->items[0]), "a");
  o.label_selector = "image in (";
  EXPECT_EQ(reader.List(kVms, "", o).status().code(), Code::kInvalid);
}

TEST_F(InformerTest, RunStopsOnRequest) {
  lw_.lists.push_back(ListOf({Vm("n", "a", "1")}, "10"));
  // No scripted watch: the fake answers Cancelled, as a cancelled stream would.
  Stop stop;
  std::thread runner([&] { informer_->Run(stop); });
  EXPECT_TRUE(informer_->WaitForSync(stop));
  stop.Request();
  runner.join();
  EXPECT_EQ(informer_->store().size(), 1u);
}

}  // namespace
}  // namespace nixmox::kube
