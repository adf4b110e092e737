"""The REST API reference page, rendered from the OpenAPI schema the server itself serves.

Used as an MkDocs hook (mkdocs.yml `hooks:`): `mkdocs build` adds `api-reference.md`
generated from `drf_spectacular`'s schema of the URL configuration at build time, so the
reference cannot drift from the code. `python -m config.apidoc` prints the page.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PAGE_NAME = "api-reference.md"
METHODS = ("get", "post", "put", "patch", "delete")


def openapi_schema() -> dict[str, Any]:
    """The schema `/api/schema` serves. Loads the settings; touches neither the disk nor the database."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    # The schema's own quality warnings belong to `manage.py spectacular --validate`, not to the docs build.
    with GENERATOR_STATS.silence():
        return SchemaGenerator().get_schema(request=None, public=True)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for combined in ("oneOf", "anyOf", "allOf"):
        if combined in schema:
            return " or ".join(_type(part) for part in schema[combined])
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"] if value is not None)
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _body_schema(content: dict[str, Any]) -> str:
    parts = []
    for media, body in content.items():
        schema = body.get("schema", {})
        parts.append(f"{_type(schema)} as `{media}`" if schema else f"`{media}`")
    return "; ".join(parts)


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    description = (operation.get("description") or operation.get("summary") or "").strip()
    if description:
        lines += [description, ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter.get('in', '')} | {_cell(_type(parameter.get('schema', {})))} "
                f"| {'yes' if parameter.get('required') else 'no'} | {_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        lines += [f"Request body: {_body_schema(body.get('content', {}))}.", ""]
    responses = operation.get("responses", {})
    if responses:
        answers = []
        for status, response in responses.items():
            content = response.get("content")
            answers.append(f"`{status}` {_body_schema(content)}" if content else f"`{status}`")
        lines += ["Responses: " + ", ".join(answers) + ".", ""]
    return lines


def _component(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    properties = schema.get("properties")
    if not properties:
        lines += [f"Type: {_cell(_type(schema))}.", ""]
        return lines
    required = set(schema.get("required", []))
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, spec in properties.items():
        flags = [] if not spec.get("readOnly") else ["read-only"]
        description = "; ".join([*flags, spec.get("description", "")]).strip("; ")
        lines.append(
            f"| `{field}` | {_cell(_type(spec))} | {'yes' if field in required else 'no'} | {_cell(description)} |"
        )
    lines.append("")
    return lines


def api_reference_page(schema: dict[str, Any] | None = None) -> str:
    schema = schema if schema is not None else openapi_schema()
    lines = [
        "# API reference",
        "",
        "Generated from the server's OpenAPI schema when this site is built. A running server serves the same",
        "schema at `/api/schema` and an interactive explorer at `/api/docs`. Authentication, roles, errors and",
        "examples are described in [REST API](api.md).",
        "",
    ]
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in schema.get("paths", {}).items():
        segments = [part for part in path.split("/") if part and not part.startswith("{")]
        group = segments[1] if len(segments) > 1 and segments[0] == "v1" else segments[0] if segments else "/"
        for method in METHODS:
            if method in item:
                groups.setdefault(group, []).append((path, method, item[method]))
    for group in sorted(groups):
        lines += [f"## {group}", ""]
        for path, method, operation in groups[group]:
            lines += _operation(path, method, operation)
    components = schema.get("components", {}).get("schemas", {})
    if components:
        lines += ["## Schemas", ""]
        for name in sorted(components):
            lines += _component(name, components[name])
    return "\n".join(lines).rstrip() + "\n"


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated reference to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE_NAME, content=api_reference_page()))
    return files


if __name__ == "__main__":
    sys.stdout.write(api_reference_page())
