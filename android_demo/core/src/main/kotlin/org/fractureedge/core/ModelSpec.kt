package org.fractureedge.core

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/** A model spec that cannot be used: wrong format, version or inconsistent fields. */
class SpecException(message: String) : Exception(message)

enum class Task { BINARY, MULTICLASS }

/** Tensor element types that `edge convert` writes. */
enum class DType(val wire: String, val isQuantized: Boolean) {
    UINT8("uint8", true),
    INT8("int8", true),
    FLOAT32("float32", false)
    ;

    val bytesPerElement: Int get() = if (this == FLOAT32) 4 else 1

    /** Range of a quantized value; meaningless for [FLOAT32]. */
    val qMin: Int get() = if (this == INT8) -128 else 0
    val qMax: Int get() = if (this == INT8) 127 else 255

    companion object {
        fun parse(value: String): DType = entries.firstOrNull { it.wire == value }
            ?: throw SpecException("unsupported dtype '$value' (expected uint8, int8 or float32)")
    }
}

data class Preprocess(
    val height: Int,
    val width: Int,
    val channels: Int,
    val resize: String,
    val interpolation: String,
    val padValue: Int,
    val mean: List<Double>,
    val std: List<Double>
)

data class TensorSpec(val shape: List<Int>, val dtype: DType, val scale: Double, val zeroPoint: Int, val activation: String? = null) {
    val elementCount: Int get() = shape.fold(1) { acc, d -> acc * d }
    val byteCount: Int get() = elementCount * dtype.bytesPerElement
}

/**
 * The model spec JSON that `edge convert` writes next to each .tflite file
 * (format "fracture-edge/model-spec", version 1). Unknown keys are ignored.
 */
data class ModelSpec(
    val modelId: String,
    val bundleSha256: String,
    val precision: String,
    val task: Task,
    val labels: List<String>,
    val positiveLabel: String?,
    val threshold: Double,
    val preprocess: Preprocess,
    val input: TensorSpec,
    val output: TensorSpec
) {
    companion object {
        const val FORMAT = "fracture-edge/model-spec"
        const val VERSION = 1

        fun parse(json: String): ModelSpec {
            val root =
                try {
                    JSONObject(json)
                } catch (e: JSONException) {
                    throw SpecException("model spec is not valid JSON: ${e.message}")
                }
            return fromJson(root)
        }

        fun fromJson(root: JSONObject): ModelSpec = try {
            readSpec(root)
        } catch (e: JSONException) {
            throw SpecException("model spec is incomplete: ${e.message}")
        }

        private fun readSpec(root: JSONObject): ModelSpec {
            val format = root.optString("format")
            if (format != FORMAT) throw SpecException("model spec format is '$format', expected '$FORMAT'")
            val version = root.optInt("version", -1)
            if (version != VERSION) throw SpecException("model spec version $version is not supported (expected $VERSION)")

            val task =
                when (val t = root.getString("task")) {
                    "binary" -> Task.BINARY
                    "multiclass" -> Task.MULTICLASS
                    else -> throw SpecException("unknown task '$t' (expected binary or multiclass)")
                }
            val labels = root.getJSONArray("labels").strings()
            if (labels.isEmpty()) throw SpecException("labels must not be empty")
            if (labels.toSet().size != labels.size) throw SpecException("labels must be unique: $labels")
            val positive = if (root.has("positive_label") && !root.isNull("positive_label")) root.getString("positive_label") else null
            // Required: a default of 0.5 would silently change every decision of a tuned model.
            if (!root.has("threshold") || root.isNull("threshold")) {
                throw SpecException("model spec has no threshold (re-export it with `edge convert`; the phone never assumes 0.5)")
            }
            val threshold = root.getDouble("threshold")
            if (threshold.isNaN() || threshold < 0.0 || threshold > 1.0) throw SpecException("threshold $threshold is outside [0, 1]")

            val pre = readPreprocess(root.getJSONObject("preprocess"))
            val input = readTensor(root.getJSONObject("input"), "input")
            val output = readTensor(root.getJSONObject("output"), "output")
            val spec =
                ModelSpec(
                    modelId = root.optString("model_id", ""),
                    bundleSha256 = root.optString("bundle_sha256", ""),
                    precision = root.optString("precision", ""),
                    task = task,
                    labels = labels,
                    positiveLabel = positive,
                    threshold = threshold,
                    preprocess = pre,
                    input = input,
                    output = output
                )
            spec.validate()
            return spec
        }

        private fun readPreprocess(o: JSONObject): Preprocess {
            val size = o.getJSONArray("size").ints()
            if (size.size != 2 || size.any { it <= 0 }) throw SpecException("preprocess.size must be [height, width] > 0, got $size")
            val channels = o.getInt("channels")
            if (channels != 1 && channels != 3) throw SpecException("preprocess.channels must be 1 or 3, got $channels")
            val mean = o.getJSONArray("mean").doubles()
            val std = o.getJSONArray("std").doubles()
            if (mean.size != channels) throw SpecException("preprocess.mean has ${mean.size} values for $channels channel(s)")
            if (std.size != channels) throw SpecException("preprocess.std has ${std.size} values for $channels channel(s)")
            if (std.any { it == 0.0 || it.isNaN() }) throw SpecException("preprocess.std must be non-zero")
            val resize = o.optString("resize", "letterbox")
            if (resize != "letterbox") throw SpecException("preprocess.resize '$resize' is not supported (only letterbox)")
            val interpolation = o.optString("interpolation", "bilinear")
            if (interpolation !=
                "bilinear"
            ) {
                throw SpecException("preprocess.interpolation '$interpolation' is not supported (only bilinear)")
            }
            val pad = o.optInt("pad_value", 0)
            if (pad !in 0..255) throw SpecException("preprocess.pad_value must be 0..255, got $pad")
            return Preprocess(size[0], size[1], channels, resize, interpolation, pad, mean, std)
        }

        private fun readTensor(o: JSONObject, name: String): TensorSpec {
            val shape = o.getJSONArray("shape").ints()
            val dtype = DType.parse(o.getString("dtype"))
            val scale = o.optDouble("scale", 0.0)
            val zeroPoint = o.optInt("zero_point", 0)
            if (dtype.isQuantized) {
                if (!(scale > 0.0) || scale.isInfinite()) throw SpecException("$name.scale must be > 0 for $name dtype ${dtype.wire}")
                if (zeroPoint !in dtype.qMin..dtype.qMax) throw SpecException("$name.zero_point $zeroPoint is outside ${dtype.wire} range")
            }
            val activation = if (o.has("activation") && !o.isNull("activation")) o.getString("activation") else null
            return TensorSpec(shape, dtype, scale, zeroPoint, activation)
        }

        private fun JSONArray.strings(): List<String> = (0 until length()).map { getString(it) }

        private fun JSONArray.ints(): List<Int> = (0 until length()).map { getInt(it) }

        private fun JSONArray.doubles(): List<Double> = (0 until length()).map { getDouble(it) }
    }

    private fun validate() {
        val p = preprocess
        val expected = listOf(1, p.height, p.width, p.channels)
        if (input.shape != expected) {
            throw SpecException("input.shape ${input.shape} does not match preprocess size/channels $expected")
        }
        when (task) {
            Task.BINARY -> {
                if (labels.size != 2) throw SpecException("a binary model needs exactly 2 labels, got $labels")
                val pos = positiveLabel ?: throw SpecException("a binary model needs positive_label")
                if (pos !in labels) throw SpecException("positive_label '$pos' is not one of $labels")
                if (output.elementCount != 1) throw SpecException("a binary model outputs one probability, output.shape is ${output.shape}")
            }

            Task.MULTICLASS -> {
                if (output.elementCount != labels.size) {
                    throw SpecException("output.shape ${output.shape} does not match ${labels.size} labels")
                }
            }
        }
    }

    /** The label that is not [positiveLabel] (binary models only). */
    val negativeLabel: String?
        get() = if (task == Task.BINARY) labels.first { it != positiveLabel } else null
}
