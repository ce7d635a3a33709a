"""The multipart request body as documented in OpenAPI (the routes read it themselves, in memory)."""

from __future__ import annotations


def multipart_body(with_explain_fields: bool, types: bool = False) -> dict:
    props: dict = {"file": {"type": "string", "format": "binary", "description": "PNG, JPEG or DICOM (content is sniffed)"}}
    if with_explain_fields:
        props["method"] = {"type": "string", "enum": ["gradcam", "gradcam++", "scorecam"], "default": "gradcam"}
        props["target"] = {"type": "string", "description": "label to explain (default: positive label; multiclass: predicted)"}
        props["overlay"] = {
            "type": "boolean",
            "default": True,
            "description": "false: the grid only, no overlay PNG (the phone draws its own)",
        }
    if types:
        props["types"] = {
            "type": "boolean",
            "default": False,
            "description": "true: add 'fracture_type', the fracture-type model's answer with its measured accuracy "
            "(weak: a guess, not a finding)",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": props, "required": ["file"]}}},
        }
    }
