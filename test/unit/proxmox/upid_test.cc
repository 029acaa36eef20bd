#include "src/proxmox/upid.h"

#include <gtest/gtest.h>

namespace nixmox::proxmox {
namespace {

TEST(PveUpidTest, ParsesEveryField) {
  auto upid = ParseUpid("UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:");
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();
  EXPECT_EQ(upid->node, "pve1");
  EXPECT_EQ(upid->pid, 0x000A1B2Cu);
  EXPECT_EQ(upid->pstart, 0x0123ABCDu);
  EXPECT_EQ(upid->starttime, 0x6650F00D);
  EXPECT_EQ(upid->type, "qmcreate");
  EXPECT_EQ(upid->id, "100");
  EXPECT_EQ(upid->user, "root@pam");
  EXPECT_EQ(upid->raw, "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:");
}

TEST(PveUpidTest, AcceptsTokenUsersNinDigitPstartAndEmptyId) {
  auto upid = ParseUpid("UPID:node-2:00001234:1ABCDEF01:6650F00D:imgcopy::nixmox@pve!ci:");
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();
  EXPECT_EQ(upid->node, "node-2");
  EXPECT_EQ(upid->pstart, 0x1ABCDEF01u);
  EXPECT_EQ(upid->type, "imgcopy");
  EXPECT_EQ(upid->id, "");
  EXPECT_EQ(upid->user, "nixmox@pve!ci");
}

TEST(PveUpidTest, RejectsMalformedUpids) {
  for (const char* bad : {
           "",
           "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam",    // no trailing colon
           "XPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:",   // prefix
           "UPID:pve1:A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:",      // pid too short
           "UPID:pve1:000A1B2C:0123ABCD:6650F00Z:qmcreate:100:root@pam:",   // not hex
           "UPID:-pve:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:",   // node name
           "UPID:pve1:000A1B2C:0123ABCD:6650F00D::100:root@pam:",           // no type
           "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100::",           // no user
           "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qm/create:100:root@pam:",  // '/' in type
           "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam:x:",
       }) {
    auto upid = ParseUpid(bad);
    EXPECT_FALSE(upid.ok()) << bad;
    EXPECT_EQ(upid.status().code(), Code::kInvalid) << bad;
  }
}

}  // namespace
}  // namespace nixmox::proxmox
