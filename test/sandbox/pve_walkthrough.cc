// nixmox-pve-walkthrough: drives VMs through their whole life against a Proxmox
// VE API (pve-sim in the sandbox) with nixmox's Proxmox client, printing each
// step: upload an image, create VMs that import it, configure, grow the root
// disk, start, wait for the guest agent's IPs, then shut down and destroy
// (unless --keep). Exit 0 once everything converged, 1 on any failure.
//
// The token comes from the environment (NIXMOX_PVE_TOKEN), never from argv,
// so it does not show in `ps`.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "src/common/logging.h"
#include "src/proxmox/client.h"

namespace nixmox::proxmox {
namespace {

struct Options {
  std::string url;
  std::string image;
  std::string storage = "local-lvm";
  std::string import_storage = "local";
  int count = 3;
  bool keep = false;
};

struct Vm {
  int vmid = 0;
  std::string node;
  std::string name;
  std::vector<std::string> ips;
};

[[noreturn]] void Fail(const std::string& what, const Status& status) {
  std::cerr << "walkthrough: " << what << " failed: " << status.ToString() << "\n";
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what, r.status());
  return std::move(r).value();
}

void Wait(PveClient& pve, const Upid& upid, const std::string& what) {
  WaitOptions wait;
  wait.timeout = std::chrono::minutes(5);
  wait.initial_interval = std::chrono::milliseconds(100);
  wait.max_interval = std::chrono::milliseconds(500);
  auto done = WaitForTask(pve, upid, wait, RealClock(), RealSleeper());
  if (!done.ok()) Fail(what, done.status());
}

void Step(const std::string& text) { std::cout << "==> " << text << std::endl; }

int Run(const Options& opt) {
  const char* token_text = std::getenv("NIXMOX_PVE_TOKEN");
  if (token_text == nullptr) {
    std::cerr << "walkthrough: NIXMOX_PVE_TOKEN is not set\n";
    return 2;
  }
  PveClientOptions options;
  options.base_url = opt.url;
  options.token = Must(ApiToken::Parse(token_text), "reading NIXMOX_PVE_TOKEN");
  auto pve = Must(ConnectPveClient(options), "connecting to " + opt.url);

  const auto version = Must(pve->GetVersion(), "GET /version");
  Step("Proxmox VE " + version.version + " at " + opt.url + " (token " +
       options.token.ToString() + ")");
  std::vector<std::string> nodes;
  for (const auto& n : Must(pve->ListNodes(), "GET /nodes")) {
    if (n.online()) nodes.push_back(n.node);
  }
  if (nodes.empty()) Fail("finding an online node", InternalError("no node is online"));

  const std::string filename = "nixmox-walkthrough.qcow2";
  for (const auto& node : nodes) {
    Step("upload " + opt.image + " to " + node + "/" + opt.import_storage + " as " + filename);
    UploadRequest up{"import", opt.image, filename, "", ""};
    Wait(*pve, Must(pve->UploadToStorage(node, opt.import_storage, up), "upload"), "upload task");
  }

  std::vector<Vm> vms;
  for (int i = 0; i < opt.count; ++i) {
    Vm vm;
    vm.node = nodes[i % nodes.size()];
    vm.name = "walkthrough-" + std::to_string(i + 1);
    vm.vmid = Must(pve->NextVmid(std::nullopt), "GET /cluster/nextid");
    Params p;
    p.Set("name", vm.name).SetInt("cores", 1).SetInt("memory", 1024).Set("agent", "1");
    p.Set("scsihw", "virtio-scsi-single").Set("ostype", "l26");
    DiskConfig root;
    root.file = opt.storage + ":0";
    root.import_from = opt.import_storage + ":import/" + filename;
    p.SetDisk("scsi0", root);
    NetConfig net;
    net.bridge = "vmbr0";
    p.SetNet(0, net);
    p.SetTags({"nixmox", "walkthrough"});
    Step("create VM " + std::to_string(vm.vmid) + " (" + vm.name + ") on " + vm.node +
         ", root disk imported from " + root.import_from);
    Wait(*pve, Must(pve->CreateVm(vm.node, vm.vmid, p), "create"), "create task");
    vms.push_back(vm);
  }

  for (auto& vm : vms) {
    const auto config = Must(pve->GetVmConfig(vm.node, vm.vmid), "GET config");
    ConfigUpdate update;
    update.set.SetInt("cores", 2).SetInt("memory", 2048);
    update.digest = config.digest();
    Step("VM " + std::to_string(vm.vmid) + ": cores 1 -> 2, memory 1024 -> 2048 MiB (digest " +
         config.digest().substr(0, 8) + ")");
    auto upid = Must(pve->UpdateVmConfig(vm.node, vm.vmid, update), "config update");
    if (upid) Wait(*pve, *upid, "config task");
    Step("VM " + std::to_string(vm.vmid) + ": grow scsi0 by 2G");
    auto resize = Must(pve->ResizeDisk(vm.node, vm.vmid, "scsi0", "+2G"), "resize");
    if (resize) Wait(*pve, *resize, "resize task");
    const auto after = Must(pve->GetVmConfig(vm.node, vm.vmid), "GET config");
    const auto disk = Must(after.disk("scsi0"), "reading scsi0");
    Step("VM " + std::to_string(vm.vmid) + ": scsi0 is now " + FormatDiskConfig(disk));
    Step("VM " + std::to_string(vm.vmid) + ": start");
    Wait(*pve, Must(pve->StartVm(vm.node, vm.vmid), "start"), "start task");
  }

  for (auto& vm : vms) {
    for (int attempt = 0;; ++attempt) {
      auto ifaces = pve->AgentNetworkInterfaces(vm.node, vm.vmid);
      if (ifaces.ok()) {
        for (const auto& iface : *ifaces) {
          if (iface.name == "lo") continue;
          for (const auto& ip : iface.ip_addresses) {
            if (ip.address.rfind("fe80", 0) == 0) continue;
            vm.ips.push_back(ip.address);
          }
        }
        break;
      }
      if (attempt > 600) Fail("waiting for the guest agent", ifaces.status());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Step("VM " + std::to_string(vm.vmid) + ": guest agent answers");
  }

  std::printf("\n%-6s %-16s %-6s %-8s %s\n", "VMID", "NAME", "NODE", "STATUS", "IPS");
  for (const auto& vm : vms) {
    const auto st = Must(pve->GetVmStatus(vm.node, vm.vmid), "status");
    std::string ips;
    for (const auto& ip : vm.ips) ips += (ips.empty() ? "" : ",") + ip;
    std::printf("%-6d %-16s %-6s %-8s %s\n", vm.vmid, vm.name.c_str(), vm.node.c_str(),
                st.status.c_str(), ips.c_str());
  }
  std::cout << std::endl;
  if (opt.keep) return 0;

  for (const auto& vm : vms) {
    Step("VM " + std::to_string(vm.vmid) + ": shut down, then destroy with purge");
    ShutdownOptions shutdown;
    shutdown.force_stop = true;
    Wait(*pve, Must(pve->ShutdownVm(vm.node, vm.vmid, shutdown), "shutdown"), "shutdown task");
    DeleteVmOptions del;
    del.purge = true;
    del.destroy_unreferenced_disks = true;
    Wait(*pve, Must(pve->DeleteVm(vm.node, vm.vmid, del), "destroy"), "destroy task");
  }
  const auto left = Must(pve->ListClusterResources(ResourceType::kVm), "GET /cluster/resources");
  for (const auto& r : left) {
    for (const auto& vm : vms) {
      if (r.vmid == vm.vmid) Fail("destroy", InternalError("VM " + std::to_string(vm.vmid) +
                                                           " is still listed"));
    }
  }
  Step("all " + std::to_string(vms.size()) + " VMs destroyed; /cluster/resources lists " +
       std::to_string(left.size()) + " VMs");
  return 0;
}

}  // namespace
}  // namespace nixmox::proxmox

int main(int argc, char** argv) {
  nixmox::proxmox::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "walkthrough: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--url") opt.url = next();
    else if (a == "--image") opt.image = next();
    else if (a == "--count") opt.count = std::atoi(next().c_str());
    else if (a == "--storage") opt.storage = next();
    else if (a == "--keep") opt.keep = true;
    else {
      std::cerr << "usage: nixmox-pve-walkthrough --url URL --image FILE.qcow2 [--count N] "
                   "[--storage ID] [--keep]   (token in NIXMOX_PVE_TOKEN)\n";
      return 2;
    }
  }
  if (opt.url.empty() || opt.image.empty() || opt.count < 1) {
    std::cerr << "walkthrough: --url and --image are required, --count >= 1\n";
    return 2;
  }
  if (auto s = nixmox::SetupLogging({"warn", "text"}); !s.ok()) return 2;
  return nixmox::proxmox::Run(opt);
}
