"""python -m services.sender"""

from services.common.kernel import service_main
from services.common.memory import single_malloc_arena
from services.sender.config import SenderSettings
from services.sender.wiring import build_lanes

if __name__ == "__main__":
    single_malloc_arena()  # before the consumers, the producer and the driver start threads
    service_main("sender", SenderSettings, build_lanes)
