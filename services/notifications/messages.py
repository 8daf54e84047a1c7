"""Messages and their templates: Jinja2 files `<language>/<event type>.txt`, which a region overrides without code.

A template is looked up in the override directory (TEMPLATES_DIR) first, then among the built-in
ones beside this module; a language without it falls back to Uzbek (Latin). Its first line is the
e-mail subject; what follows the first blank line is the body (and the whole SMS). Status names
come from `<language>/statuses.yml`, looked up the same way.
"""
from dataclasses import dataclass
from pathlib import Path

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from services.notifications.domain import DEFAULT_LANGUAGE, message_language
from services.notifications.exceptions import TemplateProblem

BUILT_IN = Path(__file__).with_name("templates")
STATUS_NAMES = "statuses.yml"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


class TemplateBook:
    def __init__(self, override_dir=None):
        folders = [str(folder) for folder in (override_dir, BUILT_IN) if folder]
        # Sandboxed: a region's template files are configuration, not code.
        self.environment = SandboxedEnvironment(loader=FileSystemLoader(folders), undefined=StrictUndefined,
                                                autoescape=False, trim_blocks=True, lstrip_blocks=True)

    def names(self, event_type, language):
        """The files tried for an event in a language, in order."""
        language = message_language(language)
        names = [f"{language}/{event_type}.txt"]
        if language != DEFAULT_LANGUAGE:
            names.append(f"{DEFAULT_LANGUAGE}/{event_type}.txt")
        return names

    def render(self, event_type, language, **values):
        """The message for `event_type` in `language` (or Uzbek); TemplateProblem when there is none
        or it does not render. `status` and `previous_status` also come as `status_name`, `previous_status_name`."""
        language = message_language(language)
        names = self.status_names(language)
        values.setdefault("status_name", names.get(values.get("status"), values.get("status")))
        values.setdefault("previous_status_name", names.get(values.get("previous_status"), values.get("previous_status")))
        try:
            template = self.environment.select_template(self.names(event_type, language))
            text = template.render(language=language, **values)
        except TemplateNotFound:
            raise TemplateProblem(f"no template for {event_type} in {language} or {DEFAULT_LANGUAGE}") from None
        except TemplateError as exc:
            raise TemplateProblem(f"template for {event_type} in {language} does not render: {type(exc).__name__}") from None
        return as_message(text)

    def status_names(self, language):
        """Status code -> name in `language`, over the Uzbek names (so a missing one reads in Uzbek)."""
        names = {}
        for folder_language in dict.fromkeys([DEFAULT_LANGUAGE, message_language(language)]):
            try:
                source, _, _ = self.environment.loader.get_source(self.environment, f"{folder_language}/{STATUS_NAMES}")
            except TemplateNotFound:
                continue
            names.update(yaml.safe_load(source) or {})
        return names


def as_message(text):
    """Subject (first line) and body (after the first blank line; the whole text when there is none)."""
    text = text.strip()
    head, separator, rest = text.partition("\n\n")
    subject = head.splitlines()[0].strip() if head else ""
    return Message(subject=subject, body=rest.strip() if separator else text)
