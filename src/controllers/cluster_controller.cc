#include "src/controllers/cluster_controller.h"

namespace nixmox::controllers {}  // namespace nixmox::controllers
