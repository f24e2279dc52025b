"""python -m services.router"""

from services.common.kernel import service_main
from services.router.config import RouterSettings
from services.router.wiring import build_lanes

if __name__ == "__main__":
    service_main("router", RouterSettings, build_lanes)
