"""python -m services.event_publisher"""

from services.common.kernel import service_main
from services.event_publisher.config import EventPublisherSettings
from services.event_publisher.wiring import build_lanes

if __name__ == "__main__":
    service_main("event-publisher", EventPublisherSettings, build_lanes)
