# An example NixOS guest for Proxmox VE. With ../../modules/proxmox-guest.nix
# it becomes a qcow2 image through nixpkgs' own image builder:
#   config.system.build.images.qemu       qcow2, BIOS boot (what nixmox uploads)
#   config.system.build.images.qemu-efi   qcow2, UEFI boot (Proxmox: bios: ovmf)
#   config.system.build.images.raw       raw, BIOS boot
# (`nixos-rebuild build-image --image-variant qemu` builds the same thing.)
{ lib, pkgs, ... }:
{
  networking.hostName = lib.mkDefault "nixmox-example";

  # Users, keys and addresses come from Proxmox's cloud-init drive
  # (ProxmoxVM spec.cloudInit); nothing secret is baked into the image.
  nixmox.proxmoxGuest.cloudInit.enable = true;

  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
    settings.PermitRootLogin = "prohibit-password";
  };

  # Variant-only settings go into image.modules.<variant>, e.g.
  #   image.modules.qemu = { virtualisation.diskSize = 8192; };
  # By default the image is as small as its contents; the root grows to the
  # VM's disk on first boot.

  environment.systemPackages = [ pkgs.htop ];

  system.stateVersion = "25.05";
}
