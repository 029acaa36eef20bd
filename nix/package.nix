# nixmox built from the CMake project with nixpkgs' toolchain and libraries
# (the same ones Debian ships for CI). `target` picks one executable, so the
# operator and the builder are separate packages with separate closures.
{
  lib,
  stdenv,
  cmake,
  ninja,
  pkg-config,
  cpprestsdk,
  yaml-cpp,
  nlohmann_json,
  spdlog,
  prometheus-cpp,
  openssl,
  boost,
  src,
  version,
  target,
}:

stdenv.mkDerivation {
  pname = target;
  inherit version src;

  nativeBuildInputs = [
    cmake
    ninja
    pkg-config
  ];
  buildInputs = [
    cpprestsdk
    yaml-cpp
    nlohmann_json
    spdlog
    prometheus-cpp
    openssl
    boost
  ];

  # No tests and no simulators (they need gtest and run in CI, not here).
  cmakeFlags = [
    "-DCMAKE_BUILD_TYPE=Release"
    "-DNIXMOX_BUILD_TESTS=OFF"
  ];
  # Only the executable asked for.
  ninjaFlags = [ target ];

  # The project has no install rules: the executables are all there is.
  installPhase = ''
    runHook preInstall
    install -Dm755 operator/${target} $out/bin/${target}
    runHook postInstall
  '';

  meta = {
    description = "nixmox: NixOS images and VMs on Proxmox VE, driven from Kubernetes";
    mainProgram = target;
    platforms = lib.platforms.linux;
  };
}
