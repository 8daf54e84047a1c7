"""What the catalogue is asked to change, as plain data: entrypoints build these, use cases carry them out."""
from dataclasses import dataclass


@dataclass(frozen=True)
class UpsertService:
    definition: dict  # as ServiceDefinitionSchema loaded it
    actor: str  # `role:subject` of the administrator, for the audit trail


@dataclass(frozen=True)
class ChangeServiceState:
    code: str
    state: str  # published, retired or draft
    actor: str


@dataclass(frozen=True)
class LoadCatalogue:
    document: dict  # as CatalogueDocumentSchema loaded it: groups, agencies, services, base amounts
    actor: str


@dataclass(frozen=True)
class SetBaseAmount:
    """A value of the base calculation amount (tiyin) from the day it takes effect."""

    value: dict  # as BaseAmountSchema loaded it
    actor: str
