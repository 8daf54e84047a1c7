"""Regional intake's Open311 GeoReport v2 face (services, service definitions, requests, tokens;
JSON and XML), mixed into IntakeService."""
from services.intake.open311.service import Open311

__all__ = ["Open311"]
