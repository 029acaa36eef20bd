#include "src/controllers/vm_controller.h"

namespace nixmox::controllers {}  // namespace nixmox::controllers
