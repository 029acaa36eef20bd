# An image flake with no inputs: it needs no network and no nixpkgs, so CI,
# the tests and the sandbox run a real `nix build` with Debian's nix-bin.
#
# The builders are /bin/sh and the HOST's qemu-img, called by absolute path,
# so this flake builds only outside nix's sandbox:
#
#   nix --extra-experimental-features 'nix-command flakes' \
#       --option sandbox false --option substituters '' \
#       build --no-link --json path:$PWD#qcow2
#
# (as root without a nixbld group also --option build-users-group '').
# The images are real but empty disks: enough for Proxmox to import and for a
# VM to be created from them, not to boot an operating system.
{
  description = "nixmox offline example: tiny qcow2/raw disk images made with qemu-img";

  outputs = { self }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];

      # A derivation whose output directory holds one disk image, like
      # nixpkgs' image builders ($out/<name>.<format>).
      disk = system: { name, format, size }:
        derivation {
          inherit name system format size;
          builder = "/bin/sh";
          args = [
            "-c"
            ''
              set -e
              qemu_img=
              for candidate in /usr/bin/qemu-img /bin/qemu-img /run/current-system/sw/bin/qemu-img /usr/local/bin/qemu-img; do
                if [ -x "$candidate" ]; then qemu_img=$candidate; break; fi
              done
              if [ -z "$qemu_img" ]; then
                echo "nixmox offline example: no qemu-img on the host (install qemu-utils)" >&2
                exit 1
              fi
              /bin/mkdir -p "$out"
              "$qemu_img" create -q -f "$format" "$out/$name.$format" "$size"
              echo "made $out/$name.$format ($format, $size)"
            ''
          ];
        };

      # Fails on purpose, with a message the failure tests look for.
      broken = system:
        derivation {
          name = "broken";
          inherit system;
          builder = "/bin/sh";
          args = [
            "-c"
            ''
              echo "nixmox offline example: this attribute fails on purpose" >&2
              exit 1
            ''
          ];
        };

      forSystem = system: {
        qcow2 = disk system { name = "offline"; format = "qcow2"; size = "64M"; };
        # The same disk, larger: a different image (store path) from the same flake.
        qcow2-v2 = disk system { name = "offline-v2"; format = "qcow2"; size = "96M"; };
        raw = disk system { name = "offline"; format = "raw"; size = "16M"; };
        broken = broken system;
        default = (forSystem system).qcow2;
      };
    in
    {
      packages = builtins.listToAttrs (map (system: { name = system; value = forSystem system; }) systems);
    };
}
