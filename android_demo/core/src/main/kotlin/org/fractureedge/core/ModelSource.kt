package org.fractureedge.core

/**
 * The spec of a .tflite: the copy embedded in the file (`fracture_edge_spec`) when there is one,
 * else the JSON sidecar. A sidecar's `tflite_sha256` is checked against the file, so a model
 * and a spec from different `edge convert` runs are refused instead of giving wrong answers.
 */
object ModelSource {
    class Resolved(val spec: ModelSpec, val sha256: String, val specOrigin: String)

    fun resolve(modelName: String, model: ByteArray, sidecarJson: String?): Resolved {
        val sha = DeviceReport.sha256Hex(model)
        val sidecar =
            try {
                sidecarJson?.let { org.json.JSONObject(it) }
            } catch (e: org.json.JSONException) {
                throw SpecException("${ModelFiles.specFor(modelName)} is not valid JSON: ${e.message}")
            }
        val want = sidecar?.optString("tflite_sha256", "").orEmpty()
        if (want.isNotEmpty() && !want.equals(sha, ignoreCase = true)) {
            throw SpecException(
                "$modelName does not match its spec: its sha256 is ${sha.take(12)}…, the spec says ${want.take(12)}… " +
                    "(copy the .tflite and its .json from the same `edge convert` run)"
            )
        }
        TfliteMetadata.spec(model)?.let { return Resolved(it, sha, "embedded in $modelName") }
        val side = sidecar ?: throw SpecException("$modelName carries no embedded spec and its .json spec is missing")
        return Resolved(ModelSpec.fromJson(side), sha, "${ModelFiles.specFor(modelName)} (sidecar)")
    }
}
