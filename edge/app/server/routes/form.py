"""The multipart request body as documented in OpenAPI (the routes read it themselves, in memory)."""

from __future__ import annotations


def multipart_body(with_explain_fields: bool) -> dict:
    props: dict = {"file": {"type": "string", "format": "binary", "description": "PNG, JPEG or DICOM (content is sniffed)"}}
    if with_explain_fields:
        props["method"] = {"type": "string", "enum": ["gradcam", "gradcam++", "scorecam"], "default": "gradcam"}
        props["target"] = {"type": "string", "description": "label to explain (default: positive label; multiclass: predicted)"}
        props["overlay"] = {
            "type": "boolean",
            "default": True,
            "description": "false: the grid only, no overlay PNG (the phone draws its own)",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props, "required": ["file"]}}},
        }
    }
