package org.fractureedge.core

import org.json.JSONObject

/** Spec JSON builders shared by the tests. */
object Fixtures {
    fun binarySpecJson(): JSONObject = JSONObject(
        """
            {"format": "fracture-edge/model-spec", "version": 1,
             "model_id": "fracatlas-custom", "bundle_sha256": "abc123",
             "precision": "int8", "task": "binary",
             "labels": ["fractured", "not_fractured"], "positive_label": "fractured",
             "threshold": 0.35,
             "preprocess": {"size": [224, 224], "channels": 1, "resize": "letterbox",
                            "interpolation": "bilinear", "pad_value": 0, "mean": [0.0], "std": [255.0]},
             "input": {"shape": [1, 224, 224, 1], "dtype": "uint8", "scale": 0.003921569, "zero_point": 0},
             "output": {"shape": [1, 1], "dtype": "uint8", "scale": 0.00390625, "zero_point": 0, "activation": "sigmoid"}}
        """.trimIndent()
    )

    fun multiclassSpecJson(): JSONObject {
        val o = binarySpecJson()
        o.put("task", "multiclass")
        o.put("labels", org.json.JSONArray(listOf("a", "b", "c")))
        o.remove("positive_label")
        o.put("precision", "fp16")
        o.getJSONObject("preprocess").put("size", org.json.JSONArray(listOf(4, 6))).put("channels", 3)
            .put("mean", org.json.JSONArray(listOf(1.0, 2.0, 3.0)))
            .put("std", org.json.JSONArray(listOf(2.0, 4.0, 8.0)))
        o.put("input", JSONObject("""{"shape": [1, 4, 6, 3], "dtype": "float32"}"""))
        o.put("output", JSONObject("""{"shape": [1, 3], "dtype": "float32", "activation": "softmax"}"""))
        return o
    }

    fun binarySpec(): ModelSpec = ModelSpec.fromJson(binarySpecJson())

    fun multiclassSpec(): ModelSpec = ModelSpec.fromJson(multiclassSpecJson())

    fun argb(r: Int, g: Int, b: Int, a: Int = 0xFF): Int = (a shl 24) or (r shl 16) or (g shl 8) or b
}
