"""python -m services.sender"""

from services.common.kernel import service_main
from services.sender.config import SenderSettings
from services.sender.wiring import build_lanes

if __name__ == "__main__":
    service_main("sender", SenderSettings, build_lanes)
