"""promo-streams: exact, fresh war-room numbers for 618 and Double 11 (Kafka → Faust → ClickHouse)."""

__version__ = "0.1.0"
