package org.fractureedge.core

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/** Grad-CAM grid from `/v1/explain`: values in 0..1, row-major, covering the whole original image. */
data class HeatmapGrid(
    val method: String,
    val targetLabel: String?,
    val rows: Int,
    val cols: Int,
    val values: FloatArray,
    val pngBase64: String?
) {
    fun at(row: Int, col: Int): Float = values[row * cols + col]

    override fun equals(other: Any?): Boolean = other is HeatmapGrid && method == other.method && targetLabel == other.targetLabel &&
        rows == other.rows && cols == other.cols && values.contentEquals(other.values) && pngBase64 == other.pngBase64

    override fun hashCode(): Int = (method.hashCode() * 31 + rows) * 31 + cols + values.contentHashCode()
}

/** The body of a 200 answer from `/v1/predict` or `/v1/explain`. */
data class ServerPrediction(
    val modelId: String,
    val modelSha256: String,
    val task: String,
    val label: String,
    val probabilities: Map<String, Double>,
    val positiveProbability: Double?,
    val threshold: Double?,
    val decision: Boolean?,
    val timingsMs: Map<String, Double>,
    val heatmap: HeatmapGrid?,
    /** Only when asked for (`types=true`) and well-formed; see [fractureTypeProblem] otherwise. */
    val fractureType: FractureType? = null,
    /** Why a type that was asked for is absent (malformed or missing field); null when not asked. */
    val fractureTypeProblem: String? = null
)

/** The `{"error": {"code", "message"}}` body of a 4xx/5xx answer. */
data class ServerError(val code: String, val message: String)

object ServerResponse {
    /**
     * Parses a predict or explain body; throws [ServerException.MalformedResponse] on anything unexpected
     * in the fracture result. `fracture_type` is read only when [typesAsked], and a bad one never fails the
     * answer: the type is dropped and [ServerPrediction.fractureTypeProblem] says why.
     */
    fun parsePrediction(body: String, requireHeatmap: Boolean = false, typesAsked: Boolean = false): ServerPrediction = try {
        readPrediction(JSONObject(body), requireHeatmap, typesAsked)
    } catch (e: JSONException) {
        throw ServerException.MalformedResponse("the server's answer is not the expected JSON: ${e.message}")
    } catch (e: IllegalArgumentException) {
        throw ServerException.MalformedResponse("the server's answer is inconsistent: ${e.message}")
    }

    /** Reads an error body; null when the body is not in the documented error format. */
    fun parseError(body: String?): ServerError? {
        if (body.isNullOrBlank()) return null
        return try {
            val err = JSONObject(body).optJSONObject("error") ?: return null
            ServerError(err.optString("code", ""), err.optString("message", ""))
        } catch (e: JSONException) {
            null
        }
    }

    private fun readPrediction(o: JSONObject, requireHeatmap: Boolean, typesAsked: Boolean): ServerPrediction {
        val model = o.optJSONObject("model")
        val probsJson = o.getJSONObject("probabilities")
        val probabilities = LinkedHashMap<String, Double>()
        for (key in probsJson.keys()) {
            val p = probsJson.getDouble(key)
            require(p.isFinite() && p in -1e-6..1.0 + 1e-6) { "probability of '$key' is $p, outside [0, 1]" }
            probabilities[key] = p
        }
        require(probabilities.isNotEmpty()) { "no probabilities" }
        val label = o.getString("label")
        require(label in probabilities) { "label '$label' has no probability" }
        val timings = LinkedHashMap<String, Double>()
        o.optJSONObject("timings_ms")?.let { t -> for (key in t.keys()) timings[key] = t.optDouble(key) }
        val heatmap = o.optJSONObject("heatmap")?.let { readHeatmap(it) }
        require(!requireHeatmap || heatmap != null) { "no heatmap in the answer" }
        var type: FractureType? = null
        var typeProblem: String? = null
        if (typesAsked) {
            if (!o.has("fracture_type")) {
                typeProblem = "the server sent no fracture type"
            } else {
                try {
                    type = FractureTypeParser.parse(o.opt("fracture_type"))
                } catch (e: IllegalArgumentException) {
                    typeProblem = "the server's fracture type is malformed: ${e.message}"
                }
            }
        }
        return ServerPrediction(
            modelId = model?.optString("id", "") ?: "",
            modelSha256 = model?.optString("sha256", "") ?: "",
            task = o.optString("task", ""),
            label = label,
            probabilities = probabilities,
            positiveProbability = o.optDoubleOrNull("positive_probability"),
            threshold = o.optDoubleOrNull("threshold"),
            decision = if (o.has("decision") && !o.isNull("decision")) o.getBoolean("decision") else null,
            timingsMs = timings,
            heatmap = heatmap,
            fractureType = type,
            fractureTypeProblem = typeProblem
        )
    }

    private fun readHeatmap(h: JSONObject): HeatmapGrid {
        val grid = h.getJSONArray("grid")
        val shape = h.optJSONArray("grid_shape")
        val rows = shape?.getInt(0) ?: grid.length()
        val cols = shape?.getInt(1) ?: grid.getJSONArray(0).length()
        require(rows > 0 && cols > 0) { "heatmap grid_shape [$rows, $cols] is empty" }
        require(grid.length() == rows) { "heatmap has ${grid.length()} rows, grid_shape says $rows" }
        val values = FloatArray(rows * cols)
        for (r in 0 until rows) {
            val row: JSONArray = grid.getJSONArray(r)
            require(row.length() == cols) { "heatmap row $r has ${row.length()} values, grid_shape says $cols" }
            for (c in 0 until cols) {
                val v = row.getDouble(c)
                require(v.isFinite()) { "heatmap value at [$r, $c] is $v" }
                values[r * cols + c] = v.coerceIn(0.0, 1.0).toFloat()
            }
        }
        return HeatmapGrid(
            method = h.optString("method", ""),
            targetLabel = if (h.has("target_label") && !h.isNull("target_label")) h.getString("target_label") else null,
            rows = rows,
            cols = cols,
            values = values,
            pngBase64 = if (h.has("png_base64") && !h.isNull("png_base64")) h.getString("png_base64") else null
        )
    }

    private fun JSONObject.optDoubleOrNull(key: String): Double? = if (has(key) && !isNull(key)) getDouble(key) else null
}
