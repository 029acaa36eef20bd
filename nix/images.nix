# Container images (dockerTools) for the operator and for the builder Job.
# Load one with `docker load < $(nix build --print-out-paths ./nix#builder-image)`.
{
  # The operator: one static-ish executable, CA certificates, a non-root user.
  operator =
    {
      pkgs,
      version,
      nixmox-operator,
    }:
    pkgs.dockerTools.buildLayeredImage {
      name = "nixmox-operator";
      tag = version;
      contents = [
        nixmox-operator
        pkgs.cacert
      ];
      config = {
        Entrypoint = [ "${nixmox-operator}/bin/nixmox-operator" ];
        User = "65532:65532";
        Env = [ "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" ];
        Labels."org.opencontainers.image.title" = "nixmox-operator";
      };
    };

  # The builder: nixmox-builder with nix, qemu-img, coreutils, a shell and CA
  # certificates, and a nix database that knows the image's own store paths
  # (so nix does not fetch or rebuild what is already there). It runs as
  # root (nix without a daemon writes /nix); /nix/store must stay writable,
  # so the Pod cannot use readOnlyRootFilesystem.
  builder =
    {
      pkgs,
      version,
      nixmox-builder,
    }:
    let
      # Containers have no nixbld users and usually cannot create the
      # namespaces nix's sandbox needs, so builds run as root, unsandboxed.
      # The Job may still pass any of these as --nix-option.
      nixConf = pkgs.writeTextDir "etc/nix/nix.conf" ''
        experimental-features = nix-command flakes
        build-users-group =
        sandbox = false
        max-jobs = auto
      '';
    in
    pkgs.dockerTools.buildLayeredImageWithNixDb {
      name = "nixmox-builder";
      tag = version;
      contents = [
        nixmox-builder
        pkgs.nix
        pkgs.qemu-utils
        pkgs.coreutils
        pkgs.bashInteractive
        pkgs.gitMinimal # fetching git+https:// flakes
        pkgs.cacert
        pkgs.dockerTools.binSh # /bin/sh, which derivation builders may name
        pkgs.dockerTools.usrBinEnv
        pkgs.dockerTools.fakeNss # root in /etc/passwd: nix looks up its home
        nixConf
      ];
      extraCommands = ''
        mkdir -p tmp root
        chmod 1777 tmp
      '';
      config = {
        Entrypoint = [ "${nixmox-builder}/bin/nixmox-builder" ];
        User = "0:0";
        WorkingDir = "/root";
        Env = [
          "PATH=/bin:/usr/bin"
          "HOME=/root"
          "USER=root"
          "TMPDIR=/tmp"
          "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"
          "NIX_SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"
        ];
        Labels."org.opencontainers.image.title" = "nixmox-builder";
      };
    };
}
