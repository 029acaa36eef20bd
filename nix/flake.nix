# nixmox as a flake: the two executables, their container images, the
# NixOS module for guests that run on Proxmox VE, and an example image.
#
# The flake lives in nix/ but builds the whole repository, so refer to it
# inside the git checkout (`nix build ./nix#nixmox-builder` from the root, or
# `git+https://...?dir=nix`): a plain `path:` reference to nix/ alone cannot
# see the sources. See nix/README.md for what has been built where.
{
  description = "nixmox: NixOS images and VMs on Proxmox VE, driven from Kubernetes";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      version = import ./version.nix ../CMakeLists.txt;

      # Only what the build reads, so edits elsewhere do not rebuild.
      src = lib.fileset.toSource {
        root = ../.;
        fileset = lib.fileset.unions [
          ../CMakeLists.txt
          ../src
          ../operator
        ];
      };

      images = import ./images.nix;
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          build = target: pkgs.callPackage ./package.nix { inherit src version target; };
          nixmox-operator = build "nixmox-operator";
          nixmox-builder = build "nixmox-builder";
        in
        {
          inherit nixmox-operator nixmox-builder;
          operator-image = images.operator { inherit pkgs version nixmox-operator; };
          builder-image = images.builder { inherit pkgs version nixmox-builder; };
          # The example NixOS image for Proxmox (qcow2, BIOS boot).
          example-qcow2 = self.nixosConfigurations."example-${pkgs.system}".config.system.build.images.qemu;
          default = nixmox-operator;
        }
      );

      nixosModules = {
        proxmox-guest = ./modules/proxmox-guest.nix;
        default = self.nixosModules.proxmox-guest;
      };

      # The example guest (examples/nixos-qcow2) for each system.
      nixosConfigurations = builtins.listToAttrs (
        map (system: {
          name = "example-${system}";
          value = lib.nixosSystem {
            modules = [
              self.nixosModules.proxmox-guest
              ./examples/nixos-qcow2/configuration.nix
              { nixpkgs.hostPlatform = system; }
            ];
          };
        }) systems
      );
    };
}
