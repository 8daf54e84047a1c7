"""GeoReport v2 documents as JSON and as XML, by the Spark convention the specification uses:
a list is a JSON array and, in XML, an element with one child element per item."""
import json
import re
from xml.etree.ElementTree import Element, SubElement, tostring

from werkzeug.wrappers import Response

FORMATS = ("json", "xml")
MIMETYPES = {"json": "application/json", "xml": "text/xml"}
# The element each item of a list is wrapped in, by the list's own element name.
ITEM_ELEMENTS = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "extensions": "extension",
}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# Characters XML 1.0 cannot carry at all, even escaped (control characters, lone surrogates).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def format_of(path):
    """The format a GeoReport URL asks for by its extension; JSON unless it ends in `.xml`."""
    return "xml" if path.endswith(".xml") else "json"


def xml_text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("\ufffd", str(value))


def _fill(element, name, value):
    if isinstance(value, list):
        item_name = ITEM_ELEMENTS[name]
        for item in value:
            _fill(SubElement(element, item_name), item_name, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _fill(SubElement(element, key), key, item)
    else:
        element.text = xml_text(value)


def to_xml(root, document):
    """`document` (a list or a dict) as an XML document whose root element is `root`."""
    element = Element(root)
    _fill(element, root, document)
    return XML_DECLARATION + tostring(element, encoding="unicode")


def to_json(document):
    return json.dumps(document, ensure_ascii=False)


def render(fmt, root, document, status=200):
    """A response in the format the URL asked for, UTF-8 as the specification requires."""
    body = to_xml(root, document) if fmt == "xml" else to_json(document)
    return Response(body.encode("utf-8"), status=status, content_type=f"{MIMETYPES[fmt]}; charset=utf-8")
