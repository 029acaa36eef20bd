#include "src/controllers/setup.h"

namespace nixmox::controllers {}  // namespace nixmox::controllers
