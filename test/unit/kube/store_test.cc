#include "src/kube/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <thread>

#include "src/kube/packed_object.h"

namespace nixmox::kube {
namespace {

// A ProxmoxVM as the API server sends it, with values of every JSON type.
Object SampleVm() {
  return Object::parse(R"({
    "apiVersion": "nixmox.io/v1alpha1", "kind": "ProxmoxVM",
    "metadata": {"name": "web-1", "namespace": "apps", "resourceVersion": "4711",
                 "uid": "44d94c89-1387-41cb-b191-5d01956ba8c1", "generation": 3,
                 "labels": {"app": "web"}, "finalizers": ["nixmox.io/vm"],
                 "annotations": {"nixmox.io/reconcile": "Paused", "empty": ""}},
    "spec": {"clusterRef": {"name": "pve"}, "cores": 2, "memoryMiB": 4096,
             "balloon": 0.5, "offset": -17, "big": 18446744073709551615,
             "small": -9223372036854775808, "protected": true, "pool": null,
             "disks": [{"slot": "scsi0", "sizeGiB": 20}, {"slot": "scsi1", "sizeGiB": 100}],
             "tags": [], "extra": {}},
    "status": {"vmid": 100, "node": "pve1",
               "conditions": [{"type": "Ready", "status": "True", "reason": "Running",
                               "message": "VM 100 runs on pve1 at 10.0.0.7",
                               "lastTransitionTime": "2026-11-23T21:11:31Z"}]}
  })");
}

Object Vm(const std::string& ns, const std::string& name, const std::string& rv,
          const std::string& image = "") {
  Object o = {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", rv}}}};
  if (!image.empty()) o["spec"]["image"] = image;
  return o;
}

std::vector<std::string> ImageIndex(const Object& o) {
  std::string img = StringAt(o, {"spec", "image"});
  return img.empty() ? std::vector<std::string>{} : std::vector<std::string>{img};
}

std::vector<std::string> KeysOf(const std::vector<StoredPtr>& objects) {
  std::vector<std::string> keys;
  for (const auto& o : objects) keys.push_back(o->key());
  return keys;
}

TEST(PackedObjectTest, UnpacksExactlyWhatWasPacked) {
  const Object vm = SampleVm();
  const Object back = PackedObject(vm).Unpack();
  EXPECT_EQ(back, vm);
  EXPECT_EQ(back.dump(), vm.dump());
  // Number kinds survive too, not only their values.
  EXPECT_TRUE(back["spec"]["cores"].is_number_unsigned());
  EXPECT_TRUE(back["spec"]["offset"].is_number_integer());
  EXPECT_FALSE(back["spec"]["offset"].is_number_unsigned());
  EXPECT_TRUE(back["spec"]["balloon"].is_number_float());
  EXPECT_EQ(back["spec"]["big"].get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(back["spec"]["small"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
}

TEST(PackedObjectTest, PacksScalarsAndSignedValuesAndLongStrings) {
  const Object signed_positive = std::int64_t{5};
  for (const Object& v :
       {Object(nullptr), Object(false), Object(0), Object(-1), signed_positive, Object(1e300),
        Object(std::string(100000, 'x')), Object::array({1, "two", nullptr}), Object::object()}) {
    const Object back = PackedObject(v).Unpack();
    EXPECT_EQ(back, v) << v.dump().substr(0, 80);
    EXPECT_EQ(back.type(), v.type()) << v.dump().substr(0, 80);
  }
  EXPECT_TRUE(PackedObject().Unpack().is_null());
}

TEST(PackedObjectTest, IsFarSmallerThanTheJsonText) {
  KeyTable keys;
  const Object vm = SampleVm();
  PackedObject(vm, keys);  // the first pack teaches the table the member names
  const PackedObject packed(vm, keys);
  EXPECT_LT(packed.size(), vm.dump().size() * 3 / 4);
}

TEST(PackedObjectTest, NamesBeyondTheTableStayInline) {
  KeyTable keys(/*capacity=*/2);
  const std::string long_name(KeyTable::kMaxNameLength + 1, 'n');
  const Object obj = {{"a", 1}, {"b", 2}, {"c", {{"d", 3}}}, {long_name, 4}};
  const PackedObject packed(obj, keys);
  EXPECT_EQ(keys.size(), 2u);  // full: c and d stayed inline, as did the long name
  EXPECT_EQ(packed.Unpack(), obj);
  EXPECT_EQ(keys.Intern("a"), keys.Intern("a"));
  EXPECT_FALSE(keys.Intern("c").has_value());
  EXPECT_FALSE(keys.Intern(long_name).has_value());
}

TEST(PackedObjectTest, PacksConcurrentlyWithOneTable) {
  KeyTable keys;
  std::vector<std::thread> threads;
  std::vector<int> equal(4, 0);  // not vector<bool>: its bits share words
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      bool all = true;
      for (int i = 0; i < 200; ++i) {
        Object obj = {{"field" + std::to_string((i + t) % 50), i}, {"common", t}};
        all = all && PackedObject(obj, keys).Unpack() == obj;
      }
      equal[t] = all ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(equal, std::vector<int>(4, 1));
  EXPECT_EQ(keys.size(), 51u);
}

TEST(StoreTest, GetReturnsAnEqualCopy) {
  Store store;
  const Object vm = SampleVm();
  EXPECT_EQ(store.Upsert(store.Pack(vm)), nullptr);
  auto got = store.Get("apps/web-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, vm);
  EXPECT_FALSE(store.Get("apps/web-2").has_value());
  auto listed = store.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]->key(), "apps/web-1");
  EXPECT_EQ(listed[0]->resource_version(), "4711");
  EXPECT_EQ(listed[0]->Unpack(), vm);
}

TEST(StoreTest, UpsertAndRemoveReturnThePreviousObject) {
  Store store;
  store.Upsert(store.Pack(Vm("n", "a", "1", "img1")));
  StoredPtr old = store.Upsert(store.Pack(Vm("n", "a", "2", "img2")));
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->Unpack(), Vm("n", "a", "1", "img1"));
  EXPECT_EQ(ResourceVersionOf(*store.Get("n/a")), "2");
  StoredPtr removed = store.Remove("n/a");
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->resource_version(), "2");
  EXPECT_EQ(store.Remove("n/a"), nullptr);
  EXPECT_EQ(store.size(), 0u);
}

TEST(StoreTest, ReplaceReportsAddsUpdatesAndDeletesByResourceVersion) {
  Store store;
  Store::ReplaceResult first;
  {
    std::vector<StoredPtr> list;
    for (const Object& o : {Vm("n", "b", "2"), Vm("n", "a", "1"), Vm("n", "c", "3")}) {
      list.push_back(store.Pack(o));
    }
    first = store.Replace(std::move(list));
  }
  EXPECT_EQ(KeysOf(first.added), (std::vector<std::string>{"n/a", "n/b", "n/c"}));
  EXPECT_TRUE(first.updated.empty());
  EXPECT_TRUE(first.deleted.empty());

  std::vector<StoredPtr> list;
  for (const Object& o : {Vm("n", "a", "1"), Vm("n", "c", "30"), Vm("n", "d", "31")}) {
    list.push_back(store.Pack(o));
  }
  auto result = store.Replace(std::move(list));
  EXPECT_EQ(KeysOf(result.added), (std::vector<std::string>{"n/d"}));
  ASSERT_EQ(result.updated.size(), 1u);
  EXPECT_EQ(result.updated[0].first->resource_version(), "3");
  EXPECT_EQ(result.updated[0].second->resource_version(), "30");
  EXPECT_EQ(KeysOf(result.deleted), (std::vector<std::string>{"n/b"}));
  EXPECT_EQ(result.deleted[0]->Unpack(), Vm("n", "b", "2"));
  EXPECT_EQ(store.Keys(), (std::vector<std::string>{"n/a", "n/c", "n/d"}));
}

TEST(StoreTest, PackReusesTheStoredObjectAtTheSameResourceVersion) {
  Store store;
  StoredPtr a = store.Pack(Vm("n", "a", "1"));
  store.Upsert(a);
  EXPECT_EQ(store.Pack(Vm("n", "a", "1")), a);  // a relist of an unchanged object
  EXPECT_NE(store.Pack(Vm("n", "a", "2")), a);
  Object no_version = Vm("n", "a", "");
  store.Upsert(store.Pack(no_version));
  EXPECT_NE(store.Pack(no_version), store.Pack(no_version));  // nothing to compare by
}

TEST(StoreTest, IndexesFollowUpsertsRemovesAndReplaces) {
  Store store;
  ASSERT_TRUE(store.AddIndex("image", ImageIndex).ok());
  EXPECT_EQ(store.AddIndex("image", NamespaceIndex).code(), Code::kAlreadyExists);
  store.Upsert(store.Pack(Vm("n", "b", "1", "img1")));
  store.Upsert(store.Pack(Vm("n", "a", "1", "img1")));
  store.Upsert(store.Pack(Vm("n", "c", "1", "img2")));
  EXPECT_EQ(KeysOf(*store.ByIndex("image", "img1")), (std::vector<std::string>{"n/a", "n/b"}));
  EXPECT_EQ(*store.KeysByIndex("image", "img1"), (std::vector<std::string>{"n/a", "n/b"}));

  store.Upsert(store.Pack(Vm("n", "b", "2", "img2")));
  store.Remove("n/c");
  EXPECT_EQ(*store.KeysByIndex("image", "img1"), (std::vector<std::string>{"n/a"}));
  EXPECT_EQ(*store.KeysByIndex("image", "img2"), (std::vector<std::string>{"n/b"}));
  EXPECT_TRUE(store.KeysByIndex("image", "img3")->empty());

  store.Replace({store.Pack(Vm("n", "a", "3", "img3")), store.Pack(Vm("n", "e", "1", "img1"))});
  EXPECT_EQ(*store.KeysByIndex("image", "img1"), (std::vector<std::string>{"n/e"}));
  EXPECT_TRUE(store.KeysByIndex("image", "img2")->empty());
  EXPECT_EQ(*store.KeysByIndex("image", "img3"), (std::vector<std::string>{"n/a"}));

  EXPECT_EQ(store.ByIndex("nope", "x").status().code(), Code::kNotFound);
  EXPECT_EQ(store.KeysByIndex("nope", "x").status().code(), Code::kNotFound);
  EXPECT_EQ(store.IndexEntries("nope", "").status().code(), Code::kNotFound);
}

TEST(StoreTest, IndexAddedLaterCoversStoredAndAlreadyPackedObjects) {
  Store store;
  store.Upsert(store.Pack(Vm("n", "a", "1", "img1")));
  StoredPtr packed_before = store.Pack(Vm("m", "b", "1", "img1"));
  ASSERT_TRUE(store.AddIndex("image", ImageIndex).ok());
  ASSERT_TRUE(store.AddIndex("namespace", NamespaceIndex).ok());
  store.Upsert(packed_before);
  EXPECT_EQ(*store.KeysByIndex("image", "img1"), (std::vector<std::string>{"m/b", "n/a"}));
  EXPECT_EQ(*store.KeysByIndex("namespace", "n"), (std::vector<std::string>{"n/a"}));
  EXPECT_EQ(*store.KeysByIndex("namespace", "m"), (std::vector<std::string>{"m/b"}));
  EXPECT_EQ(*store.Get("m/b"), Vm("m", "b", "1", "img1"));
}

TEST(StoreTest, IndexValuesMayBeManyOrNone) {
  Store store;
  ASSERT_TRUE(store
                  .AddIndex("tags",
                            [](const Object& o) {
                              std::vector<std::string> out;
                              for (const auto& t : o.value("tags", Object::array())) {
                                out.push_back(t.get<std::string>());
                              }
                              return out;
                            })
                  .ok());
  ASSERT_TRUE(store.AddIndex("image", ImageIndex).ok());
  Object many = Vm("n", "a", "1", "img1");
  many["tags"] = {"x", "y", std::string(300, 'z')};
  store.Upsert(store.Pack(many));
  store.Upsert(store.Pack(Vm("n", "b", "1")));
  EXPECT_EQ(*store.KeysByIndex("tags", "y"), (std::vector<std::string>{"n/a"}));
  EXPECT_EQ(*store.KeysByIndex("tags", std::string(300, 'z')), (std::vector<std::string>{"n/a"}));
  EXPECT_EQ(*store.KeysByIndex("image", "img1"), (std::vector<std::string>{"n/a"}));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(*store.IndexEntries("tags", ""),
            (Entries{{"x", "n/a"}, {"y", "n/a"}, {std::string(300, 'z'), "n/a"}}));
  store.Remove("n/a");
  EXPECT_TRUE(store.IndexEntries("tags", "")->empty());
  EXPECT_TRUE(store.IndexEntries("image", "")->empty());
}

TEST(StoreTest, IndexEntriesSelectsByValuePrefix) {
  Store store;
  ASSERT_TRUE(store.AddIndex("image", ImageIndex).ok());
  for (const Object& o : {Vm("n", "a", "1", "pve/101"), Vm("n", "b", "1", "pve/100"),
                          Vm("n", "c", "1", "pve2/100"), Vm("n", "d", "1", "pve/100")}) {
    store.Upsert(store.Pack(o));
  }
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(*store.IndexEntries("image", "pve/"),
            (Entries{{"pve/100", "n/b"}, {"pve/100", "n/d"}, {"pve/101", "n/a"}}));
  EXPECT_EQ(store.IndexEntries("image", "")->size(), 4u);
  EXPECT_TRUE(store.IndexEntries("image", "q")->empty());
}

TEST(StoreTest, ReadersRunBesideTheWriter) {
  Store store;
  ASSERT_TRUE(store.AddIndex("image", ImageIndex).ok());
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done) {
      for (const auto& o : store.List()) {
        if (KeyOf(o->Unpack()) != o->key()) ++bad;
      }
      const auto keys = store.KeysByIndex("image", "img");
      for (const auto& key : *keys) {
        if (auto got = store.Get(key); got && KeyOf(*got) != key) ++bad;
      }
    }
  });
  for (int i = 0; i < 500; ++i) {
    const std::string name = "vm" + std::to_string(i % 20);
    store.Upsert(store.Pack(Vm("n", name, std::to_string(i), i % 2 ? "img" : "other")));
    if (i % 7 == 0) store.Remove("n/" + name);
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  const auto keys = store.KeysByIndex("image", "img");
  ASSERT_FALSE(keys->empty());
  for (const auto& key : *keys) {
    EXPECT_EQ(StringAt(*store.Get(key), {"spec", "image"}), "img") << key;
  }
}

}  // namespace
}  // namespace nixmox::kube
