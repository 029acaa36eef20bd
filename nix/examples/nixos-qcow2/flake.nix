# The example guest as a flake of its own: point a NixImage at it.
#
#   spec:
#     flake: git+https://<this repository>?dir=nix/examples/nixos-qcow2
#     attribute: packages.x86_64-linux.qcow2
#     format: qcow2
#
# It imports the module from ../../modules, so refer to it through the git
# repository (as above, or `./nix/examples/nixos-qcow2` inside a checkout),
# not as a lone `path:` directory.
{
  description = "nixmox example: a NixOS qcow2 image for Proxmox VE";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      system = "x86_64-linux";
    in
    {
      nixosConfigurations.web = nixpkgs.lib.nixosSystem {
        modules = [
          ../../modules/proxmox-guest.nix
          ./configuration.nix
          { nixpkgs.hostPlatform = system; }
        ];
      };

      packages.${system} =
        let
          images = self.nixosConfigurations.web.config.system.build.images;
        in
        {
          qcow2 = images.qemu;
          qcow2-efi = images.qemu-efi;
          raw = images.raw;
          default = images.qemu;
        };
    };
}
