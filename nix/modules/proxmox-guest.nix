# proxmox-guest: what a NixOS image needs to boot well as a Proxmox VE VM.
#
# - the QEMU guest agent (Proxmox reads the VM's addresses through it, and
#   shuts it down cleanly with it);
# - a serial console (console=ttyS0) besides the screen, for `qm terminal`
#   and for VMs made with `serial0: socket`;
# - virtio drivers in the initrd (disk on virtio-scsi/virtio-blk, virtio-net);
# - a root filesystem that grows to the disk: the image is as small as its
#   contents, the VM's disk is what the ProxmoxVM asks for;
# - optionally cloud-init, for Proxmox's cloud-init drive (ide2: user, SSH
#   keys, network settings).
#
# Import it next to the image variant (`system.build.images.qemu`, see
# ../examples/nixos-qcow2); it also works on its own.
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  cfg = config.nixmox.proxmoxGuest;
in
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  options.nixmox.proxmoxGuest = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Whether to set the machine up as a Proxmox VE guest.";
    };

    serialConsole = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether the kernel and a login prompt also use the first serial port
        (ttyS0). The serial console comes last, so it is /dev/console.
      '';
    };

    cloudInit = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Whether cloud-init reads Proxmox's cloud-init drive (NoCloud or
          ConfigDrive) for users, SSH keys and network settings. Off: the
          first interface gets its address by DHCP.
        '';
      };
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        services.qemuGuest.enable = true;

        boot.initrd.availableKernelModules = [
          "virtio_pci"
          "virtio_scsi"
          "virtio_blk"
          "virtio_net"
          "sr_mod" # the cloud-init drive is a CD-ROM
          "ahci"
          "sd_mod"
        ];
        boot.initrd.kernelModules = [
          "virtio_balloon"
          "virtio_console"
          "virtio_rng"
        ];

        # Grow the partition and the filesystem to the disk on boot.
        boot.growPartition = true;
        fileSystems."/" = {
          device = lib.mkDefault "/dev/disk/by-label/nixos";
          fsType = lib.mkDefault "ext4";
          autoResize = lib.mkDefault true;
        };

        # Proxmox attaches the disk as virtio-scsi (sda) or virtio-blk (vda);
        # the bootloader lives in the image, so this only matters for rebuilds.
        boot.loader.timeout = lib.mkDefault 1;

        networking.useDHCP = lib.mkDefault (!cfg.cloudInit.enable);
      }

      (lib.mkIf cfg.serialConsole {
        boot.kernelParams = [
          "console=tty0"
          "console=ttyS0,115200n8"
        ];
        boot.loader.grub.extraConfig = ''
          serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
          terminal_input --append serial
          terminal_output --append serial
        '';
      })

      (lib.mkIf cfg.cloudInit.enable {
        services.cloud-init = {
          enable = true;
          network.enable = true;
          settings.datasource_list = [
            "NoCloud"
            "ConfigDrive"
          ];
        };
        networking.useNetworkd = lib.mkDefault true;
        # cloud-init grows the root itself as well; both are harmless together.
      })
    ]
  );
}
