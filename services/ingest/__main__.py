"""python -m services.ingest"""

from services.common.kernel import service_main
from services.ingest.config import IngestSettings
from services.ingest.wiring import build_lanes

if __name__ == "__main__":
    service_main("ingest", IngestSettings, build_lanes)
