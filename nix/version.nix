# The version from CMakeLists.txt's `project(nixmox VERSION x.y.z)`, so the
# packages and images carry the same version as the binaries.
cmakeLists:
let
  lines = builtins.filter builtins.isString (builtins.split "\n" (builtins.readFile cmakeLists));
  found = builtins.filter (m: m != null) (
    map (builtins.match "project\\(nixmox VERSION ([0-9.]+).*") lines
  );
in
if found == [ ] then throw "no project(nixmox VERSION ...) in ${toString cmakeLists}" else builtins.head (builtins.head found)
