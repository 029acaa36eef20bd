#include "src/controllers/reachability.h"

namespace nixmox::controllers {}  // namespace nixmox::controllers
